"""A reader of the classifier that raises is not swallowed: classify carries on with the
others and names it in the report, and the worker logs it and counts it in a metric."""

from __future__ import annotations

from pathlib import Path

import pytest

from bounced.classify import classify
from bounced.classify.detectors import DETECTORS
from bounced.classify.detectors.base import Detection
from bounced.classify.parse import Mail
from bounced.queue.worker import Tally, Worker
from bounced.store import open_store

from .helpers import days_ago, dsn, make_settings, signer
from .test_store_contract import message

ALICE = "alice@example.net"


class Broken:
    """A detector with a bug."""

    name = "dsn"

    def detect(self, mail: Mail) -> Detection | None:
        raise IndexError("list index out of range")


@pytest.fixture
def broken_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    """The DSN detector replaced by one that raises."""
    detectors = tuple(Broken() if d.name == "dsn" else d for d in DETECTORS)
    monkeypatch.setattr("bounced.classify.core.DETECTORS", detectors)


def test_a_raising_reader_is_named_and_the_others_carry_on(broken_dsn: None) -> None:
    """The report names the detector that raised; the text detector still finds the
    recipient of a DSN (its human-readable part)."""
    report = classify(dsn(ALICE))
    assert report.failures == ("detector dsn: IndexError: list index out of range",)
    assert report.kind == "bounce"
    assert [r.address for r in report.recipients] == [ALICE]


def test_a_clean_message_has_no_failures() -> None:
    """Nothing raised: nothing named."""
    assert classify(dsn(ALICE)).failures == ()


def test_the_tally_carries_failures_across_processes() -> None:
    """The worker process's tally of failures survives its trip to the daemon."""
    tally = Tally()
    tally.classify_failures["detector dsn"] += 2
    assert Tally.from_dict(tally.to_dict()).classify_failures == {"detector dsn": 2}
    assert tally


async def test_the_worker_logs_and_counts_a_raising_reader(
    tmp_path: Path, broken_dsn: None, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The message is processed, the failure is logged with the job and counted in
    bounced_classify_failures_total by reader."""
    settings = make_settings(tmp_path)
    store = open_store(settings.store_url)
    await store.open()
    try:
        rp = signer(settings).return_path("s1", ALICE, day=days_ago(1))
        m = message("t1", subject="s1")
        [mid] = await store.add_messages([type(m)(
            received_at=m.received_at, peer=m.peer, mail_from="", rcpt_to=rp, token=m.token,
            raw=dsn(ALICE, return_path=rp))])
        worker = Worker(store, settings, lambda: m.received_at)
        await worker.drain()
        info, _, incidents = await store.message(mid)
        assert info.state == "done" and len(incidents) == 1
        metrics = worker.metrics.render().decode()
        assert 'bounced_classify_failures_total{reader="detector dsn"} 1.0' in metrics
        logged = caplog.text + capsys.readouterr().out + capsys.readouterr().err
        assert "classify.reader_failed" in logged and "IndexError" in logged
    finally:
        await store.close()
