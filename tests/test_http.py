"""The HTTP interface over real 127.0.0.1 sockets: health, metrics, the address API, writes
guarded by the bearer token, HTTP ingest, and the OpenAPI document against the router."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from bounced.config import Settings

from .helpers import DOMAIN, ROOT, asend, base_env, days_ago, dsn, running_daemon, smtp_send
from .test_actions import settings_with, until

ALICE = "alice@example.net"
TOKEN = secrets.token_urlsafe(24)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def _no_token_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process daemon reads os.environ: only what a test sets there counts."""
    monkeypatch.delenv("BOUNCED_HTTP_TOKEN", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def with_token(tmp_path: Path, **env: str) -> Settings:
    """Settings whose write endpoints take TOKEN (from [http] token_file), with a log action."""
    path = tmp_path / "http-token"
    path.write_text(TOKEN + "\n")
    return settings_with(tmp_path, {"journal": {"type": "log"}},
                         BOUNCED_HTTP_TOKEN_FILE=str(path), **env)


class Client:
    """Requests to one daemon's HTTP port; answers as (status, decoded body)."""

    def __init__(self, session: aiohttp.ClientSession, port: int | None) -> None:
        assert port is not None
        self.session = session
        self.base = f"http://127.0.0.1:{port}"

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.base + path, **kwargs) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await self.request("POST", path, **kwargs)


@contextlib.asynccontextmanager
async def client(d: Any) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(session, d.http_port)


async def processed(d: Any, count: int) -> None:
    async def done() -> bool:
        return bool((await d.store.queue_counts())["done"] >= count)

    await until(done, f"{count} messages processed", within=10)


async def unconfirm(d: Any, subject: str, address: str = ALICE) -> None:
    for age in (10, 6, 2):
        rp = d.signer.return_path(subject, address, day=days_ago(age))
        assert (await asend(d.port, [rp], dsn(address, return_path=rp)))["DATA"][0] == 250


# --- health --------------------------------------------------------------------------------


async def test_healthz_200_while_store_answers_503_when_it_does_not(tmp_path: Path) -> None:
    """/healthz is 200 while the store works, 503 while it is broken, 200 once it is repaired."""
    async with running_daemon(with_token(tmp_path)) as d, client(d) as http:
        status, body = await http.get("/healthz")
        assert status == 200, body
        assert body["status"] == "ok" and body["store"] == "ok"
        assert body["worker"]["enabled"] and body["worker"]["alive"]
        assert body["queue"]["pending"] == 0 and "pending" in body["outbox"]

        def rename(old: str, new: str) -> None:
            with contextlib.closing(sqlite3.connect(tmp_path / "bounced.db", timeout=10)) as db:
                db.execute(f"ALTER TABLE {old} RENAME TO {new}")
                db.commit()

        await asyncio.to_thread(rename, "messages", "messages_away")
        status, body = await http.get("/healthz")
        assert status == 503 and body["status"] == "unhealthy", body
        await asyncio.to_thread(rename, "messages_away", "messages")
        assert (await http.get("/healthz"))[0] == 200


# --- metrics -------------------------------------------------------------------------------


def documented_metrics() -> list[str]:
    text = (ROOT / "docs" / "webhooks.md").read_text()
    return re.findall(r"^\| `(bounced_[a-z_]+)` \|", text, re.M)


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(exposition) for s in family.samples}


async def test_metrics_after_traffic_carry_the_documented_counters(tmp_path: Path) -> None:
    """After SMTP and HTTP traffic /metrics has every documented metric with the right counts."""
    async with running_daemon(with_token(tmp_path)) as d, client(d) as http:
        await unconfirm(d, "u1")
        rp = d.signer.return_path("u2", ALICE, day=days_ago(1))
        status, _ = await http.post("/v1/bounces", params={"recipient": rp}, headers=AUTH,
                                    data=dsn(ALICE, return_path=rp))
        assert status == 202
        bad = f"bounce-nonsense@{DOMAIN}"
        refused = await asyncio.to_thread(smtp_send, d.port, [bad], b"x")
        assert refused[bad][0] == 550
        await processed(d, 4)

        async def delivered() -> bool:
            return [s for _, s in await d.store.events()] == [{"journal": "delivered"}]

        await until(delivered, "the event delivered")
        status, text = await http.get("/metrics")
    assert status == 200
    families = {f.name for f in text_string_to_metric_families(text)}
    names = documented_metrics()
    assert len(names) >= 10
    assert {re.sub(r"_total$", "", n) for n in names} <= families
    got = samples(text)

    def value(name: str, **labels: str) -> float:
        return got.get((name, frozenset(labels.items())), 0.0)

    assert value("bounced_messages_accepted_total", via="smtp") == 3
    assert value("bounced_messages_accepted_total", via="http") == 1
    assert sum(v for (n, _), v in got.items() if n == "bounced_messages_rejected_total") == 1
    assert value("bounced_messages_classified_total", kind="bounce") == 4
    assert value("bounced_incidents_total", reason="userunknown", counts="yes") == 4
    assert value("bounced_decisions_total", action="unconfirm") == 1
    assert value("bounced_action_deliveries_total", action="journal", result="delivered") == 1
    assert value("bounced_queue_jobs", state="done") == 4
    assert value("bounced_outbox_deliveries", state="delivered") == 1
    assert value("bounced_processing_seconds_count") == 4


# --- addresses and reconfirmation ----------------------------------------------------------


async def test_addresses_match_the_status_command(tmp_path: Path) -> None:
    """/v1/addresses by subject or address says exactly what `bounced status --json` says."""
    async with running_daemon(with_token(tmp_path)) as d, client(d) as http:
        await unconfirm(d, "u1")
        await processed(d, 3)
        for query, flag in (({"subject": "u1"}, ["--subject", "u1"]),
                            ({"address": ALICE}, ["--address", ALICE]),
                            ({"subject": "nobody"}, ["--subject", "nobody"])):
            status, report = await http.get("/v1/addresses", params=query)
            assert status == 200
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bounced.cli", "status", *flag, "--json",
                stdout=asyncio.subprocess.PIPE, cwd=ROOT,
                env={**os.environ, **base_env(tmp_path)})
            out, _ = await proc.communicate()
            assert proc.returncode == 0
            assert report == json.loads(out), query
        status, report = await http.get("/v1/addresses", params={"subject": "u1"})
        [address] = report["addresses"]
        assert address["state"] == "unconfirmed" and len(address["incidents"]) == 3
        assert "3 counting bounces" in address["decisions"][0]["rule"]
        for query in ({"subject": ""}, {"subject": "u1", "address": ALICE},
                      {"address": "nobody"}):  # no address: 200 "confirmed" before
            assert (await http.get("/v1/addresses", params=query))[0] == 400


async def test_reconfirm_needs_the_bearer_token(tmp_path: Path) -> None:
    """Reconfirm without the token is 401 and changes nothing; with it the address is confirmed."""
    async with running_daemon(with_token(tmp_path)) as d, client(d) as http:
        await unconfirm(d, "u1")
        await processed(d, 3)
        path = "/v1/subjects/u1/reconfirm"
        for headers in ({}, {"Authorization": "Bearer " + "x" * len(TOKEN)},
                        {"Authorization": TOKEN}):
            status, body = await http.post(path, headers=headers)
            assert status == 401 and "error" in body
        assert (await d.store.address_states(subject="u1"))[0].state == "unconfirmed"
        status, body = await http.post(path, headers=AUTH)
        assert status == 200
        [state] = await d.store.address_states(subject="u1")
        assert state.state == "confirmed" and state.reconfirmed_at is not None
        assert body["subject"] == "u1"
        assert [x["fingerprint"] for x in body["reconfirmed"]] == [state.fingerprint]
        types = [e.type for e, _ in await d.store.events()]
        assert sorted(types) == ["address.reconfirmed", "address.unconfirmed"]


async def test_token_from_environment_and_scheme_in_any_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The token can come from $BOUNCED_HTTP_TOKEN; the Bearer scheme is matched in any case."""
    monkeypatch.setenv("BOUNCED_HTTP_TOKEN", TOKEN)
    async with running_daemon(settings_with(tmp_path, {})) as d, client(d) as http:
        status, body = await http.post("/v1/subjects/u9/reconfirm",
                                       headers={"Authorization": f"bearer {TOKEN}"})
        assert (status, body) == (200, {"subject": "u9", "reconfirmed": []})


async def test_writes_refused_with_403_when_no_token_is_configured(tmp_path: Path) -> None:
    """Without a configured token every write endpoint answers 403, whatever is sent."""
    async with running_daemon(settings_with(tmp_path, {})) as d, client(d) as http:
        rp = d.signer.return_path("u1", ALICE, day=days_ago(1))
        for path in ("/v1/subjects/u1/reconfirm", "/v1/bounces?recipient=" + rp,
                     "/v1/breakers/example.net/release"):
            status, body = await http.post(path, headers=AUTH, data=b"x")
            assert status == 403 and "no [http] token" in body["error"], path
        assert (await d.store.queue_counts())["pending"] == 0


# --- HTTP ingest ---------------------------------------------------------------------------


async def test_http_ingest_stores_and_processes_like_smtp(tmp_path: Path) -> None:
    """A bounce posted to /v1/bounces is stored (202) and counts exactly like one sent by SMTP."""
    async with running_daemon(with_token(tmp_path)) as d, client(d) as http:
        for age in (10, 6):
            rp = d.signer.return_path("u1", ALICE, day=days_ago(age))
            assert (await asend(d.port, [rp], dsn(ALICE, return_path=rp)))["DATA"][0] == 250
        rp = d.signer.return_path("u1", ALICE, day=days_ago(2))
        raw = dsn(ALICE, return_path=rp)
        status, body = await http.post("/v1/bounces", headers={
            **AUTH, "X-Envelope-Recipient": rp, "X-Envelope-Sender": "<>",
            "Content-Type": "message/rfc822"}, data=raw)
        assert status == 202 and body["subject"] == "u1"
        await processed(d, 3)
        info, stored, incidents = await d.store.message(body["id"])
        assert stored == raw and info.rcpt_to == rp and info.peer == "http:127.0.0.1"
        assert info.state == "done" and info.kind == "bounce"
        assert [(i.reason, i.counts) for i in incidents] == [("userunknown", True)]
        assert (await d.store.address_states(subject="u1"))[0].state == "unconfirmed"


async def test_http_ingest_refuses_bad_requests_and_stores_nothing(tmp_path: Path) -> None:
    """Bad return path 422, bad token 401, no recipient or no message 400, too large 413:
    nothing is stored."""
    settings = with_token(tmp_path, BOUNCED_SMTP_MAX_MESSAGE_SIZE="100000")
    async with running_daemon(settings) as d, client(d) as http:
        rp = d.signer.return_path("u1", ALICE, day=days_ago(1))
        raw = dsn(ALICE, return_path=rp)
        tampered = rp.replace("bounce-", "bounce-x", 1)
        expired = d.signer.return_path("u1", ALICE, day=days_ago(60))
        for recipient in (tampered, expired, f"someone@{DOMAIN}", "not an address"):
            status, body = await http.post("/v1/bounces", params={"recipient": recipient},
                                           headers=AUTH, data=raw)
            assert status == 422 and body["reason"], (recipient, body)
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            status, _ = await http.post("/v1/bounces", params={"recipient": rp},
                                        headers=headers, data=raw)
            assert status == 401
        assert (await http.post("/v1/bounces", headers=AUTH, data=raw))[0] == 400
        for empty in (b"", b"\r\n\r\n"):  # no message: JSON 400 (blank lines were stored)
            status, body = await http.post("/v1/bounces", params={"recipient": rp},
                                           headers=AUTH, data=empty)
            assert (status, body) == (400, {"error": "empty message body"}), (empty, body)
        status, _ = await http.post("/v1/bounces", params={"recipient": rp}, headers=AUTH,
                                    data=raw + b"x" * 200_000)
        assert status == 413
        assert set((await d.store.queue_counts()).values()) == {0}


# --- the other read endpoints --------------------------------------------------------------


async def test_events_endpoint_lists_latest_events_with_delivery_states(tmp_path: Path) -> None:
    """/v1/events lists the newest events first with their delivery states, honouring limit."""
    async with running_daemon(with_token(tmp_path)) as d, client(d) as http:
        await unconfirm(d, "u1")
        await processed(d, 3)
        status, _ = await http.post("/v1/subjects/u1/reconfirm", headers=AUTH)
        assert status == 200

        async def both_delivered() -> bool:
            _, events = await http.get("/v1/events")
            return [e["deliveries"] for e in events] == [{"journal": "delivered"}] * 2

        await until(both_delivered, "both events delivered")
        _, events = await http.get("/v1/events")
        assert [e["type"] for e in events] == ["address.reconfirmed", "address.unconfirmed"]
        assert events[1]["subject"] == "u1" and len(events[1]["evidence"]) == 3
        _, latest = await http.get("/v1/events", params={"limit": "1"})
        assert latest == events[:1]
        assert (await http.get("/v1/events", params={"limit": "many"}))[0] == 400


# --- the OpenAPI document ------------------------------------------------------------------


async def test_openapi_is_valid_and_documents_exactly_the_routes_served(tmp_path: Path) -> None:
    """/openapi.json is valid OpenAPI 3.1 and documents exactly the routes served and guarded."""
    async with running_daemon(with_token(tmp_path)) as d, client(d) as http:
        status, spec = await http.get("/openapi.json")
        assert status == 200 and spec["openapi"].startswith("3.1")
        validate(spec)
        assert d.daemon.http is not None
        served = {(r.method, r.resource.canonical)
                  for r in d.daemon.http.app().router.routes()
                  if r.method != "HEAD" and r.resource is not None}
        documented = {(method.upper(), path)
                      for path, item in spec["paths"].items() for method in item}
        assert served == documented
        for path, item in spec["paths"].items():
            for method, op in item.items():
                assert op.get("responses"), (method, path)
                concrete = re.sub(r"\{[^}]+\}", "x", path)
                status, _ = await http.request(method.upper(), concrete)
                if op.get("security"):
                    assert status == 401, (method, path)
                    assert {"401", "403"} <= set(op["responses"]), (method, path)
                else:
                    assert status in (200, 400, 404), (method, path, status)
                    assert str(status) in op["responses"], (method, path, status)
