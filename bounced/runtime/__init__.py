"""The running daemon: its parts started and stopped in order (``daemon``), the process's
entry point under systemd (``app``), the checks before it binds (``support``), retention."""
