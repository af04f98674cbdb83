"""A raw SMTP client on a socket, for the hostile-input tests and bench/hostile_bench.py: it
sends exactly the bytes given (invalid UTF-8, long lines, case variants of a token), which
smtplib and aiosmtplib would refuse or rewrite, and reads whole (multi-line) replies."""

from __future__ import annotations

import contextlib
import socket


class SMTPConn:
    """A raw SMTP client on a socket: sends exactly the bytes given, reads whole replies."""

    def __init__(self, port: int, timeout: float = 20.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.banner = self.reply()

    def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed after {lines!r}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if line[3:4] != b"-":
                return int(line[:3]), "\n".join(lines)

    def cmd(self, line: bytes) -> tuple[int, str]:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def send_data(self, body: bytes) -> None:
        """The message after DATA's 354, dot-stuffed, without the final dot."""
        lines = body.split(b"\r\n")
        if lines and lines[-1] == b"":
            lines.pop()
        self.sock.sendall(b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n"
                                   for ln in lines))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
