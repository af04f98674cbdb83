"""A decision's evidence names every incident it counted by its stored id, the incident of
the bounce that made the decision included (it was decided before that one was stored)."""

from __future__ import annotations

from pathlib import Path

from bounced.api.views import address_report

from .helpers import asend, days_ago, dsn, make_settings, running_daemon
from .test_actions import until


async def test_evidence_ids_are_the_stored_incidents(
        tmp_path: Path, store_url: str) -> None:
    """Three bounces unconfirm an address: the decision's evidence (`bounced status --json`,
    GET /v1/addresses) carries the three incidents' ids, none null."""
    async with running_daemon(make_settings(tmp_path, store_url=store_url)) as d:
        for age in (10, 6, 2):
            rp = d.signer.return_path("ev1", "eve@example.net", day=days_ago(age))
            reply = await asend(d.port, [rp], dsn("eve@example.net", return_path=rp))
            assert reply["DATA"][0] == 250

        async def decided() -> bool:
            report = await address_report(d.store, "ev1", None)
            return bool(report["addresses"] and report["addresses"][0]["decisions"])

        await until(decided, "the unconfirm decision")
        [address] = (await address_report(d.store, "ev1", None))["addresses"]
    incident_ids = sorted(i["id"] for i in address["incidents"])
    [decision] = address["decisions"]
    assert sorted(e["id"] for e in decision["evidence"]) == incident_ids
    assert None not in incident_ids and len(incident_ids) == 3
