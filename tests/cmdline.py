"""What the command-line tests of several modules share: running the interpreter's bounced,
signing with it, waiting for a condition, and a command action that records what it got."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import textwrap
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bounced.model import utcnow

from .helpers import (
    BOUNCED,
)

ATTACKER = "mallory@example.net"  # the token is signed for this address
VICTIM = "ceo@bigcorp.example"  # what the forged reports name


def run(env: Mapping[str, str], *args: str, cwd: Path | None = None,
        data: bytes | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([BOUNCED, *args], env={**os.environ, **env}, capture_output=True,
                          text=data is None, input=data, timeout=60, check=False, cwd=cwd)
    stderr = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode()
    assert "Traceback" not in stderr, stderr
    return proc


def sign(env: Mapping[str, str], subject: str, address: str, days: int) -> str:
    at = (utcnow().date() - dt.timedelta(days=days)).isoformat()
    proc = run(env, "sign", "--subject", subject, "--address", address, "--at", at)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def wait_for(condition: Callable[[], Any], what: str, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {within} s waiting for {what}")


def capture_script(tmp_path: Path) -> Path:
    """A command action that appends the event and the environment it got to a file."""
    script = tmp_path / "capture.py"
    script.write_text(textwrap.dedent(f"""\
        import json, os, sys
        line = {{"event": json.load(sys.stdin), "env": dict(os.environ)}}
        with open({str(tmp_path / 'captured.jsonl')!r}, "a") as fh:
            fh.write(json.dumps(line) + "\\n")
        """))
    return script


def captured(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "captured.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


