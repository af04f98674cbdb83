"""pytest fixtures over the MTA harness.

Register them in a test module or conftest by importing the functions (the fixture names
differ from the function names, so the import does not shadow test arguments)::

    from .mta.fixtures import mta_capture_fixture, mta_remote_fixture, postfix_factory_fixture

Fixtures: ``mta_remote`` (RemoteServer), ``mta_capture`` (CaptureServer accepting every
recipient), ``postfix_factory`` (call it with PostfixInstance's keyword arguments; returns a
started instance, stops and removes every instance it made at teardown, skips the test when
Postfix cannot run here, and keeps each instance's log as ``tmp_path/postfix-N.log``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .postfix import PostfixInstance, skip_unless_postfix
from .remote import CaptureServer, RemoteServer

PostfixFactory = Callable[..., PostfixInstance]


@pytest.fixture(name="mta_remote")
def mta_remote_fixture() -> Iterator[RemoteServer]:
    """The "remote" domain's aiosmtpd server, stopped after the test."""
    with RemoteServer() as server:
        yield server


@pytest.fixture(name="mta_capture")
def mta_capture_fixture() -> Iterator[CaptureServer]:
    """A bounced stand-in that accepts and records everything, stopped after the test."""
    with CaptureServer() as server:
        yield server


@pytest.fixture(name="postfix_factory")
def postfix_factory_fixture(tmp_path: Path) -> Iterator[PostfixFactory]:
    """Start private Postfix instances on demand; all are stopped and removed afterwards."""
    skip_unless_postfix()
    started: list[PostfixInstance] = []

    def make(**kwargs: Any) -> PostfixInstance:
        kwargs.setdefault("log_copy", tmp_path / f"postfix-{len(started) + 1}.log")
        instance = PostfixInstance(**kwargs)
        instance.start()
        started.append(instance)
        return instance

    try:
        yield make
    finally:
        errors = []
        for instance in reversed(started):
            try:
                instance.stop()
            except Exception as exc:  # stop the others, then report
                errors.append(exc)
        if errors:
            raise errors[0]
