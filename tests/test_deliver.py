"""Pipe mode: `bounced deliver` reads one message from stdin and answers with sysexits codes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bounced.config import load_settings

from .helpers import BOUNCED, base_env, days_ago, dsn, signer

ALICE = "alice@example.net"


def deliver(env: dict[str, str], data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run([BOUNCED, "deliver", *args], input=data, capture_output=True,
                          env={**os.environ, **env}, timeout=60, check=False)
    assert b"Traceback" not in proc.stderr, proc.stderr
    return proc


def ready_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The settings of a store that exists (`bounced deliver` never creates one)."""
    env = base_env(tmp_path, **extra)
    subprocess.run([BOUNCED, "migrate"], env={**os.environ, **env}, check=True,
                   capture_output=True)
    return env


def pending(env: dict[str, str]) -> str:
    return subprocess.run([BOUNCED, "queue"], capture_output=True, text=True, check=True,
                          env={**os.environ, **env}).stdout


def test_valid_token_stored_exit_0_then_processed(tmp_path: Path) -> None:
    """A bounce piped in with a valid recipient is stored (exit 0) and processed later."""
    env = ready_env(tmp_path, BOUNCED_LOG_FORMAT="json")
    rp = signer(load_settings(env=env)).return_path("4711", ALICE, day=days_ago(2))
    assert deliver(env, dsn(ALICE, return_path=rp), rp).returncode == 0
    assert "pending      1" in pending(env)
    subprocess.run([BOUNCED, "process"], env={**os.environ, **env}, check=True,
                   capture_output=True)
    out = subprocess.run([BOUNCED, "status", "--subject", "4711"], env={**os.environ, **env},
                         capture_output=True, text=True, check=True).stdout
    assert "userunknown" in out


def test_recipient_from_mta_environment(tmp_path: Path) -> None:
    """The recipient comes from $RECIPIENT (Postfix) or $LOCAL_PART/$DOMAIN (Exim)."""
    env = ready_env(tmp_path)
    rp = signer(load_settings(env=env)).return_path("1", ALICE, day=days_ago(1))
    local, _, domain = rp.partition("@")
    assert deliver({**env, "RECIPIENT": rp}, dsn(ALICE)).returncode == 0
    assert deliver({**env, "LOCAL_PART": local, "DOMAIN": domain}, dsn(ALICE)).returncode == 0
    assert "pending      2" in pending(env)


def test_bad_token_exit_67_nothing_stored(tmp_path: Path) -> None:
    """A forged or malformed recipient exits 67 (EX_NOUSER) with one line saying why (the
    mail server quotes it in its bounce), and stores nothing."""
    env = ready_env(tmp_path, BOUNCED_LOG_FORMAT="json")
    proc = deliver(env, dsn(ALICE), "bounce-nonsense@bounces.example.test")
    assert proc.returncode == 67
    assert proc.stderr.decode().splitlines() == [
        "bounced deliver: bounce-nonsense@bounces.example.test: token does not have 2 or 3 "
        "dot-separated parts"]
    assert "pending      0" in pending(env)


def test_store_unavailable_exit_75(tmp_path: Path) -> None:
    """When the store cannot be opened the exit code is 75 so the mail server retries."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    env = base_env(tmp_path, BOUNCED_STORE_URL=f"sqlite:///{blocker}/x.db")
    rp = signer(load_settings(env=env)).return_path("1", ALICE, day=days_ago(1))
    assert deliver(env, dsn(ALICE), rp).returncode == 75


def test_no_recipient_and_too_large(tmp_path: Path) -> None:
    """No recipient anywhere exits 64; a message over the size limit exits 65."""
    env = base_env(tmp_path, BOUNCED_SMTP_MAX_MESSAGE_SIZE="100")
    assert deliver(env, dsn(ALICE)).returncode == 64
    rp = signer(load_settings(env=env)).return_path("1", ALICE, day=days_ago(1))
    assert deliver(env, dsn(ALICE), rp).returncode == 65


def test_empty_message_exit_65_nothing_stored_headers_only_stored(tmp_path: Path) -> None:
    """An empty stdin, or blank lines only, is not a bounce: exit 65 (the mail server returns
    it, and the postmaster sees it) with one line on stderr, and nothing is stored (it was
    stored as an empty message, exit 0). A message of header fields only, as some mail
    systems write a bounce, is stored."""
    env = ready_env(tmp_path)
    rp = signer(load_settings(env=env)).return_path("1", ALICE, day=days_ago(1))
    for empty in (b"", b"\r\n", b"\n\n  \r\n"):
        proc = deliver(env, empty, rp)
        assert proc.returncode == 65, (empty, proc)
        assert proc.stderr.decode().strip().splitlines() == [
            "bounced deliver: empty message on stdin, nothing stored"], proc.stderr
    assert "pending      0" in pending(env)
    headers_only = (b"From: MAILER-DAEMON@mx.example.net\r\nTo: " + rp.encode() + b"\r\n"
                    b"Subject: Mail delivery failed\r\nX-Failed-Recipients: " + ALICE.encode()
                    + b"\r\n")
    assert deliver(env, headers_only, rp).returncode == 0
    assert "pending      1" in pending(env)
