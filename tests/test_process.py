"""The daemon as a process: crash safety, graceful stop, systemd notification and unit file."""

from __future__ import annotations

import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from bounced.config import load_settings

from .helpers import (
    BOUNCED,
    ROOT,
    DaemonProcess,
    base_env,
    days_ago,
    dsn,
    free_port,
    signer,
    smtp_send,
)

ALICE = "alice@example.net"


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return base_env(tmp_path, BOUNCED_SMTP_LISTEN=f"127.0.0.1:{free_port()}",
                    BOUNCED_LOG_FORMAT="json", **extra)


def job_states(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT state FROM messages ORDER BY id")]


def test_sigkill_right_after_250_loses_nothing(tmp_path: Path) -> None:
    """A message acknowledged with 250 survives SIGKILL and is processed after the restart."""
    env = env_for(tmp_path, BOUNCED_WORKER_ENABLED="false")
    rp = signer(load_settings(env=env)).return_path("4711", ALICE, day=days_ago(3))
    daemon = DaemonProcess(env, tmp_path / "daemon.log")
    daemon.start()
    try:
        reply = smtp_send(daemon.port, [rp], dsn(ALICE, return_path=rp))
        assert reply["DATA"][0] == 250
        assert daemon.kill(signal.SIGKILL) == -signal.SIGKILL
    finally:
        daemon.stop()
    assert job_states(tmp_path / "bounced.db") == ["pending"]
    restarted = DaemonProcess({**env, "BOUNCED_WORKER_ENABLED": "true"}, tmp_path / "daemon.log")
    restarted.start()
    try:
        deadline = time.monotonic() + 20
        while job_states(tmp_path / "bounced.db") != ["done"] and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        restarted.stop()
    assert job_states(tmp_path / "bounced.db") == ["done"]
    with sqlite3.connect(tmp_path / "bounced.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM incidents").fetchone()[0] == 1


def test_sigterm_stops_cleanly_and_notifies_systemd(tmp_path: Path) -> None:
    """Under a notify socket the daemon asks for more start time while it opens the store
    (systemd's start timeout must not stop a long migration), sends READY=1 once listening
    and STOPPING=1 on SIGTERM."""
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(sock_path))
        notify.settimeout(20)
        env = env_for(tmp_path, NOTIFY_SOCKET=str(sock_path))
        daemon = DaemonProcess(env, tmp_path / "daemon.log")
        daemon.start()
        try:
            starting = notify.recv(4096).decode()  # more start time, asked at once
            assert "EXTEND_TIMEOUT_USEC=" in starting
            ready = starting
            while "READY=1" not in ready:
                ready = notify.recv(4096).decode()
            assert f"127.0.0.1:{daemon.port}" in ready
            started = time.monotonic()
            assert daemon.kill(signal.SIGTERM) == 0
            assert time.monotonic() - started < 15
            assert "STOPPING=1" in notify.recv(4096).decode()
        finally:
            daemon.stop()
    log = (tmp_path / "daemon.log").read_text()
    assert '"event": "bounced.stopped"' in log
    assert "Traceback" not in log


def test_development_key_generated_with_warning(tmp_path: Path) -> None:
    """With no key configured the daemon generates a development key and warns loudly."""
    env = env_for(tmp_path)
    env.pop("BOUNCED_VERP_KEYS_FILE")
    daemon = DaemonProcess(env, tmp_path / "daemon.log")
    daemon.start()
    daemon.stop()
    assert (tmp_path / "state" / "dev-keys").exists()
    assert (tmp_path / "state" / "dev-keys").stat().st_mode & 0o077 == 0
    assert "DEVELOPMENT key" in (tmp_path / "daemon.log").read_text()


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    """When the SMTP port is taken the daemon exits 1 with one line naming the setting."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = base_env(tmp_path, BOUNCED_SMTP_LISTEN=f"127.0.0.1:{port}", BOUNCED_LOG_FORMAT="json")
        proc = subprocess.run(
            [BOUNCED, "serve"], env={**__import__("os").environ, **env},
            capture_output=True, timeout=30, check=False,
        )
    assert proc.returncode == 1
    last = proc.stderr.decode().strip().splitlines()[-1]
    assert last == f"bounced serve: [smtp] listen 127.0.0.1:{port}: Address already in use"
    assert b"Traceback" not in proc.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_file_verifies(tmp_path: Path) -> None:
    """systemd/bounced.service passes systemd-analyze verify (ExecStart pointed at this venv)."""
    unit = (ROOT / "systemd" / "bounced.service").read_text()
    bounced = BOUNCED
    unit = unit.replace("/usr/local/bin/bounced", str(bounced))
    path = tmp_path / "bounced.service"
    path.write_text(unit)
    proc = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if "bounced.service" in line]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr
    for option in ("Type=notify", "DynamicUser=yes", "StateDirectory=bounced",
                   "LoadCredential=verp-keys:", "NoNewPrivileges=yes", "ProtectSystem=strict"):
        assert option in unit
