"""The README's sending examples (smtplib, aiosmtplib, Django) run against a local SMTP server:
the envelope sender is the signed return path, the visible From: stays the application's."""

from __future__ import annotations

import asyncio
import email
import re
from collections.abc import Callable, Iterator
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from bounced.verp import Keyring, Verifier, fingerprint

from .helpers import KEY_LINE, ROOT, write_keys
from .mta.remote import CaptureServer, Received

README = (ROOT / "README.md").read_text()
SECTION = "## Sending with the signed return path"
APP_FROM = "Example Wiki <wiki@example.org>"
USER_ID, ADDRESS = "4711", "alice@example.net"


def section(title: str) -> str:
    """The README text from heading ``title`` to the next level-2 heading."""
    start = README.index(title + "\n")
    end = README.find("\n## ", start + len(title))
    return README[start:] if end < 0 else README[start:end]


def python_block(title: str, marker: str) -> str:
    """The one ```python block in section ``title`` containing ``marker``."""
    blocks = re.findall(r"```python\n(.*?)```", section(title), flags=re.S)
    [block] = [b for b in blocks if marker in b]
    return str(block)


def replace_once(code: str, old: str, new: str) -> str:
    assert code.count(old) == 1, f"the README example no longer contains {old!r}"
    return code.replace(old, new)


@pytest.fixture(name="capture")
def capture_fixture() -> Iterator[CaptureServer]:
    """An aiosmtpd server on 127.0.0.1 that accepts and records every message."""
    with CaptureServer() as server:
        yield server


def namespace_with_signer(tmp_path: Path) -> dict[str, Any]:
    """What the README's signing example leaves behind (``signer``), with a test key file."""
    keys = write_keys(tmp_path / "verp-keys")
    code = replace_once(python_block("## Signing return paths", "Signer"),
                        "/etc/bounced/verp-keys", str(keys))
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    return namespace


def run_example(marker: str, namespace: dict[str, Any], port: int,
                endpoint: tuple[str, str] | None) -> Callable[..., Any]:
    """Execute the example containing ``marker`` (pointed at ``port``); its send_welcome."""
    code = python_block(SECTION, marker)
    if endpoint is not None:
        old, new = endpoint
        code = replace_once(code, old, new.format(port=port))
    exec(code, namespace)
    send: Callable[..., Any] = namespace["send_welcome"]
    return send


def assert_signed_and_from_the_app(received: Received) -> None:
    """MAIL FROM is a valid return path for the user; From: and To: are the message's own."""
    token = Verifier(Keyring.from_text(KEY_LINE), domain="bounces.example.org").verify(
        received.mail_from)
    assert (token.subject, token.fingerprint) == (USER_ID, fingerprint(ADDRESS))
    assert received.rcpt_tos == (ADDRESS,)
    msg = email.message_from_bytes(received.data, policy=default)
    assert msg.get_all("From") == [APP_FROM]
    assert msg["To"] == ADDRESS
    assert msg["Subject"] == "Welcome to Example Wiki"
    headers = received.data.split(b"\r\n\r\n", 1)[0].lower()
    assert received.mail_from.lower().encode() not in headers  # readers never see it


def test_smtplib_example_sends_with_the_signed_envelope_sender(
    tmp_path: Path, capture: CaptureServer,
) -> None:
    """The smtplib example's MAIL FROM is the signed return path; From: is the app's."""
    namespace = namespace_with_signer(tmp_path)
    send = run_example("import smtplib", namespace, capture.port,
                       ('smtplib.SMTP("localhost", 25)', 'smtplib.SMTP("127.0.0.1", {port})'))
    send(USER_ID, ADDRESS)
    [received] = capture.wait_for(1, timeout=10)
    assert_signed_and_from_the_app(received)


async def test_aiosmtplib_example_sends_with_the_signed_envelope_sender(
    tmp_path: Path, capture: CaptureServer,
) -> None:
    """The aiosmtplib example's MAIL FROM is the signed return path; From: is the app's."""
    namespace = namespace_with_signer(tmp_path)
    send = run_example("import aiosmtplib", namespace, capture.port,
                       ('hostname="localhost", port=25', 'hostname="127.0.0.1", port={port}'))
    await asyncio.wait_for(send(USER_ID, ADDRESS), 20)
    [received] = await asyncio.to_thread(capture.wait_for, 1, 10)
    assert_signed_and_from_the_app(received)


def test_django_example_sends_with_the_signed_envelope_sender(
    tmp_path: Path, capture: CaptureServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Django's EmailMessage with the return path as from_email: signed MAIL FROM, app's From:."""
    pytest.importorskip("django", reason="Django is not installed (pip install -e '.[test]')")
    from django.conf import settings

    if not settings.configured:
        settings.configure()
    monkeypatch.setattr(settings, "EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
    monkeypatch.setattr(settings, "EMAIL_HOST", "127.0.0.1")
    monkeypatch.setattr(settings, "EMAIL_PORT", capture.port)
    monkeypatch.setattr(settings, "EMAIL_TIMEOUT", 10)
    namespace = namespace_with_signer(tmp_path)
    send = run_example("django.core.mail", namespace, capture.port, None)
    send(USER_ID, ADDRESS)
    [received] = capture.wait_for(1, timeout=10)
    assert_signed_and_from_the_app(received)
