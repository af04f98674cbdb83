"""A store URL an operator got wrong: every command says so in one line naming the store (its
password hidden) and the cause, and exits non-zero (the pipe 75: the mail server keeps the
bounce); never a traceback."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from .cmdline import run
from .conftest import PG_ADMIN_DSN, pg_skip_reason
from .helpers import base_env, free_port

PASSWORD = "s3cret-pw"


def pg_url(*, user: str | None = None, port: int | str | None = None,
           database: str = "test", query: str = "") -> str:
    parts = urlsplit(PG_ADMIN_DSN)
    return (f"postgresql://{user or parts.username or 'postgres'}:{PASSWORD}@"
            f"{parts.hostname or '127.0.0.1'}:{port or parts.port or 5432}/{database}{query}")


def one_line(stderr: str | bytes) -> str:
    text = stderr if isinstance(stderr, str) else stderr.decode()
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert PASSWORD not in text
    return lines[0]


@pytest.mark.parametrize("case", ["refused", "no database", "no role", "port out of range",
                                  "bad option", "bad IPv6 host"])
def test_postgresql_url_mistakes_are_one_line(tmp_path: Path, case: str) -> None:
    """Each mistake, for a read command, the pipe and serve (main: a traceback for a port out
    of range or a bracket left open; a bare "ConnectionRefusedError" that named no store; a
    bad sslmode retried for a minute as if the server were down)."""
    if case not in ("port out of range", "bad IPv6 host") and pg_skip_reason():
        pytest.skip(str(pg_skip_reason()))
    url, cause = {
        "refused": (pg_url(port=free_port()), "Connection refused"),
        "no database": (pg_url(database="no_such_db_here"),
                        'database "no_such_db_here" does not exist'),
        "no role": (pg_url(user="no_such_role_here"), 'role "no_such_role_here" does not exist'),
        "port out of range": (pg_url(port=99999), "Port out of range"),
        "bad option": (pg_url(query="?sslmode=bogus"), "sslmode"),
        "bad IPv6 host": (f"postgresql://postgres:{PASSWORD}@[::1:5432/test", "Invalid IPv6 URL"),
    }[case]
    shown = url.replace(PASSWORD, "***")
    env = base_env(tmp_path, BOUNCED_STORE_URL=url)
    status = run(env, "status", "--subject", "s1")
    assert status.returncode == 1
    line = one_line(status.stderr)
    assert shown in line and cause in line, line
    sign = run(env, "sign", "--subject", "s1", "--address", "a@example.net")
    if sign.returncode == 0:  # the URL is checked with the rest of the configuration
        piped = run(env, "deliver", sign.stdout.strip(), data=b"Subject: x\r\n\r\nbody\r\n")
    else:
        piped = run(env, "deliver", "bounce-x@bounces.example.test", data=b"x\r\n\r\n")
    assert piped.returncode == 75
    line = one_line(piped.stderr)
    assert shown in line and cause in line, line
    if case == "refused":
        return  # serve waits a minute for a server that is not up yet (tested elsewhere)
    served = run(env, "serve")
    assert served.returncode == 1
    line = one_line(served.stderr)
    assert shown in line and cause in line, line
