"""pytest fixtures over the MTA harness.

Register them in a test module or conftest by importing the functions (the fixture names
differ from the function names, so the import does not shadow test arguments)::

    from .mta.fixtures import mta_capture_fixture, mta_factory_fixture, mta_remote_fixture

Fixtures:
- ``mta_remote``: RemoteServer (the "remote" domain), stopped after the test.
- ``mta_capture``: CaptureServer accepting every recipient (a bounced stand-in).
- ``mta_factory``: parametrised over Postfix and Exim (test ids ``[postfix]``/``[exim]``,
  both marked ``postfix``); call it with ``make_mta``'s keyword arguments to get a started
  instance (``.kind`` says which MTA). Skips when that MTA cannot run here; stops and
  removes every instance at teardown (or earlier with ``.stop_all()``); keeps each log as
  ``tmp_path/<kind>-N.log``.
- ``postfix_factory``: the same for Postfix only, taking PostfixInstance's arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .base import MTAInstance
from .factory import MTA_KINDS, make_mta, missing_reason
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


def _stop_all(started: list[MTAInstance]) -> None:
    errors = []
    for instance in reversed(started):
        try:
            instance.stop()
        except Exception as exc:  # stop the others, then report
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture(name="postfix_factory")
def postfix_factory_fixture(tmp_path: Path) -> Iterator[PostfixFactory]:
    """Start private Postfix instances on demand; all are stopped and removed afterwards."""
    skip_unless_postfix()
    started: list[MTAInstance] = []

    def make(**kwargs: Any) -> PostfixInstance:
        kwargs.setdefault("log_copy", tmp_path / f"postfix-{len(started) + 1}.log")
        instance = PostfixInstance(**kwargs)
        instance.start()
        started.append(instance)
        return instance

    try:
        yield make
    finally:
        _stop_all(started)


class MTAFactory:
    """Starts instances of one MTA ``kind`` with ``make_mta``'s arguments; stops them all."""

    def __init__(self, kind: str, log_dir: Path) -> None:
        self.kind = kind
        self.log_dir = log_dir
        self.started: list[MTAInstance] = []

    def __call__(self, **kwargs: Any) -> MTAInstance:
        kwargs.setdefault("log_copy", self.log_dir / f"{self.kind}-{len(self.started) + 1}.log")
        instance = make_mta(self.kind, **kwargs)
        instance.start()
        self.started.append(instance)
        return instance

    def stop_all(self) -> None:
        """Stop every instance started so far (bounded); the first error is raised."""
        started, self.started = self.started, []
        _stop_all(started)


@pytest.fixture(
    name="mta_factory",
    params=[pytest.param(kind, marks=pytest.mark.postfix, id=kind) for kind in MTA_KINDS],
)
def mta_factory_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MTAFactory]:
    """Start Postfix or Exim instances (one parameter each); all stopped afterwards."""
    kind: str = request.param
    reason = missing_reason(kind)
    if reason is not None:
        pytest.skip(reason)
    factory = MTAFactory(kind, tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()
