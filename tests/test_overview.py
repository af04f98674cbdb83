"""The operator's lists and summaries: `bounced addresses`, `events --type/--since`, `stats`,
and the same over HTTP, on both store backends, with real SMTP traffic where it matters."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from bounced.api import overview
from bounced.api.overview import BadQuery
from bounced.model import (
    AddressState,
    Decision,
    DomainStats,
    Incident,
    NewMessage,
    Plan,
    TokenFields,
)
from bounced.policy import core
from bounced.policy.core import Outcome
from bounced.store import Store
from bounced.store.reports import AddressQuery, EventQuery
from bounced.verp import fingerprint

from .helpers import ROOT, asend, base_env, days_ago, dsn, make_settings, running_daemon

UTC = dt.UTC
NOW = dt.datetime.now(UTC).replace(microsecond=0)
LEASE = dt.timedelta(seconds=60)


def at(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


class Decide:
    """A planner that counts every incident and unconfirms when told to (at a given time)."""

    def __init__(self, unconfirm_at: dt.datetime | None) -> None:
        self.unconfirm_at = unconfirm_at

    def __call__(self, state: AddressState | None, history: Sequence[Incident],
                 new: Sequence[Incident], domain: DomainStats | None = None) -> Plan:
        marked = tuple(dataclasses.replace(i, counts=i.kind == "bounce") for i in new)
        decision = None
        if self.unconfirm_at is not None:
            decision = Decision(subject=new[0].subject, fingerprint=new[0].fingerprint,
                                action="unconfirm", rule=f"rule for {new[0].address}",
                                decided_at=self.unconfirm_at,
                                evidence=tuple(i.evidence() for i in marked))
        return Plan(incidents=marked, decision=decision)


_seq = iter(range(1, 10**6))


async def bounce(store: Store, subject: str, address: str, received: dt.datetime, *,
                 reason: str = "userunknown", kind: str = "bounce",
                 unconfirm_at: dt.datetime | None = None) -> None:
    """One processed message for ``subject`` with one incident for ``address``."""
    n = next(_seq)
    token = TokenFields(subject=subject, stream=None, key_id="k1", day=received.date(),
                        fingerprint=fingerprint(address), token_id=f"t{n}")
    [mid] = await store.add_messages([NewMessage(
        received_at=received, peer="127.0.0.1", mail_from="", rcpt_to=f"bounce-t{n}@b.test",
        token=token, raw=b"raw\r\n")])
    [job] = [j for j in await store.claim("w", NOW, LEASE, 100) if j.id == mid]
    incident = Incident(
        id=None, message_id=mid, subject=subject, fingerprint=token.fingerprint,
        address=address, token_id=token.token_id, send_day=token.day, received_at=received,
        kind=kind, action="failed", status="5.1.1", reply_code="550", reason=reason,
        hard=True, counts=False, diagnostic="550 5.1.1 unknown", remote_mta="mx.test")
    outcome = Outcome(kind=kind, classification={"kind": kind}, incidents=(incident,))
    assert await core.finish(store, job, "w", outcome, Decide(unconfirm_at), NOW) is not None


async def seeded(store: Store) -> None:
    """Five addresses: three unconfirmed (2, 5 and 20 days ago), two still confirmed."""
    await bounce(store, "u1", "one@example.net", at(3), unconfirm_at=at(2))
    await bounce(store, "u2", "two@Example.NET", at(6), reason="mailboxfull",
                 unconfirm_at=at(5))
    await bounce(store, "u3", "three@other.example", at(21), unconfirm_at=at(20))
    await bounce(store, "u4", "four@example.net", at(1), reason="blocked")
    await bounce(store, "u5", "five@other.example", at(0.5), kind="delay", reason="expired")


# --- parsing what operators ask ------------------------------------------------------------


def test_since_takes_durations_days_and_moments_and_names_what_is_wrong() -> None:
    """--since/since= take 90m, 24h, 7d, 2w, a day or a moment; anything else is one line."""
    assert overview.parse_since("7d", NOW) == NOW - dt.timedelta(days=7)
    assert overview.parse_since("24H", NOW) == NOW - dt.timedelta(hours=24)
    assert overview.parse_since("2w", NOW) == NOW - dt.timedelta(weeks=2)
    assert overview.parse_since("90m", NOW) == NOW - dt.timedelta(minutes=90)
    assert overview.parse_since("2026-03-01", NOW) == dt.datetime(2026, 3, 1, tzinfo=UTC)
    assert overview.parse_since("2026-03-01T10:30", NOW) == dt.datetime(2026, 3, 1, 10, 30,
                                                                       tzinfo=UTC)
    assert overview.parse_since("2026-03-01T10:30+02:00", NOW) == dt.datetime(
        2026, 3, 1, 8, 30, tzinfo=UTC)
    for bad in ("7", "d", "-7d", "7 days", "2026-02-30", "yesterday", "1e9d", "x" * 500,
                "\x1b[2J", "999999w", "0001-01-01T00:00+01:00"):
        with pytest.raises(BadQuery) as err:
            overview.parse_since(bad, NOW)
        message = str(err.value)
        assert message.startswith("since: ") and "\n" not in message and len(message) < 250
        assert "\x1b" not in message


def test_cursors_round_trip_and_tampered_ones_are_refused() -> None:
    """A cursor names the last item seen; one that is not ours is a one-line error."""
    event = dataclasses.make_dataclass("E", ["occurred_at", "id"])(NOW, "evt_1")
    cursor = overview.event_cursor(event)
    assert overview.parse_event_cursor(cursor) == (NOW, "evt_1")
    for bad in ("", "!!!", "e30", overview._encode("a", [None, "s", "f"]),
                overview._encode("e", ["not a date", "x"]), overview._encode("e", [1, 2]),
                overview._encode("e", ["2026-01-01T00:00:00", "x"]), "A" * 5000):
        if bad == "":
            assert overview.parse_event_cursor(bad) is None
            continue
        with pytest.raises(BadQuery, match=r"^cursor: "):
            overview.parse_event_cursor(bad)
    with pytest.raises(BadQuery, match=r"^type: "):
        overview.parse_types(["address.unconfirmed,nope"])
    with pytest.raises(BadQuery, match=r"^domain: "):
        overview.parse_domain("exa mple.net")
    assert overview.parse_domain("@Example.NET.") == "example.net"


# --- the store's queries, both backends ----------------------------------------------------


async def test_address_list_filters_by_state_change_time_and_domain(store: Store) -> None:
    """Addresses unconfirmed since a moment, at a domain (any case), latest change first."""
    await seeded(store)

    async def subjects(**kw: Any) -> list[str]:
        return [a.subject for a in await store.address_list(AddressQuery(**kw))]

    assert await subjects(state="unconfirmed") == ["u1", "u2", "u3"]
    assert await subjects(state="unconfirmed", since=at(7)) == ["u1", "u2"]
    assert await subjects(state="unconfirmed", since=at(7), domain="example.net") == ["u1", "u2"]
    assert await subjects(state="unconfirmed", domain="other.example") == ["u3"]
    assert await subjects(state="confirmed") == ["u5", "u4"]  # never changed: last
    assert await subjects(domain="x.example") == []
    assert await subjects(domain="_xample.net") == []  # LIKE wildcards are literal
    [one] = await store.address_list(AddressQuery(state="unconfirmed", limit=1))
    assert (one.address, one.domain, one.incidents, one.last_reason, one.rule) == (
        "one@example.net", "example.net", 1, "userunknown", "rule for one@example.net")
    assert one.changed_at == at(2) and one.last_incident_at == at(3)


async def test_address_pages_neither_repeat_nor_skip_while_addresses_change(
        store: Store) -> None:
    """Paging with the cursor gives every address once, though new ones arrive meanwhile."""
    for n in range(7):
        await bounce(store, f"p{n}", f"p{n}@example.net", at(10 + n), unconfirm_at=at(9 + n))
    for n in range(3):  # never changed: they come last, in a stable order too
        await bounce(store, f"q{n}", f"q{n}@example.net", at(1))
    seen: list[str] = []
    query = AddressQuery(limit=3)
    while True:
        items, cursor = await overview.address_page(store, query)
        seen += [a.subject for a in items]
        # A newer change arrives between pages: it sorts before the cursor, never into a page.
        await bounce(store, f"new{len(seen)}", f"new{len(seen)}@example.net", at(0.1),
                     unconfirm_at=at(0.05))
        if cursor is None:
            break
        query = dataclasses.replace(query, after=overview.parse_address_cursor(cursor))
    assert seen[:7] == [f"p{n}" for n in range(7)]
    assert sorted(seen[7:]) == ["q0", "q1", "q2"] and len(seen) == 10


async def test_event_list_filters_by_type_and_time_and_pages(store: Store) -> None:
    """Events of the given types since a moment, newest first, paged by the cursor."""
    await seeded(store)
    await core.reconfirm(store, "u1", NOW)
    events = await store.event_list(EventQuery())
    assert [e.type for e, _ in events] == ["address.reconfirmed"] + ["address.unconfirmed"] * 3
    unconfirmed = await store.event_list(EventQuery(types=("address.unconfirmed",),
                                                    since=at(7)))
    assert [e.subject for e, _ in unconfirmed] == ["u1", "u2"]
    both = await store.event_list(EventQuery(types=("address.unconfirmed",
                                                    "address.reconfirmed"), limit=2))
    assert [e.subject for e, _ in both] == ["u1", "u1"]
    page, cursor = await overview.event_page(store, EventQuery(limit=3))
    assert cursor is not None and len(page) == 3
    rest, end = await overview.event_page(store, EventQuery(
        limit=3, after=overview.parse_event_cursor(cursor)))
    assert end is None and [e.subject for e, _ in rest] == ["u3"]
    assert rest[0][1] == {}  # not fanned out: no delivery yet


async def test_summary_counts_reasons_domains_decisions_days_and_queues(store: Store) -> None:
    """The summary of a period: bounces by reason, top domains, decisions, per day; and the
    queue and outbox as they stand."""
    await seeded(store)
    await store.add_messages([NewMessage(
        received_at=at(0.25), peer="p", mail_from="", rcpt_to="bounce-x@b.test",
        token=TokenFields(subject="w", stream=None, key_id="k1", day=NOW.date(),
                          fingerprint="fw", token_id="tw"), raw=b"x")])
    s = await overview.summary(store, at(7), NOW)
    assert s["messages"] == {"bounce": 3, "delay": 1, "unprocessed": 1}
    assert s["incidents"] == {"total": 4, "counting": 3, "by_kind": {"bounce": 3, "delay": 1}}
    assert s["bounces_by_reason"] == [
        {"reason": "blocked", "bounces": 1, "counting": 1},
        {"reason": "mailboxfull", "bounces": 1, "counting": 1},
        {"reason": "userunknown", "bounces": 1, "counting": 1}]
    assert s["top_domains"][0] == {"domain": "example.net", "incidents": 3, "addresses": 3,
                                   "counting": 3}
    assert s["top_domains"][1]["domain"] == "other.example"
    assert s["decisions"] == {"unconfirm": 2, "reconfirm": 0, "held": 0}
    days = s["daily"]["days"]
    assert days[0] == at(7).date().isoformat() and days[-1] == NOW.date().isoformat()
    assert sum(s["daily"]["decisions"]["unconfirm"]) == 2
    assert s["daily"]["decisions"]["unconfirm"][days.index(at(2).date().isoformat())] >= 1
    assert set(s["daily"]["bounces_by_reason"]) == {"blocked", "mailboxfull", "userunknown"}
    assert all(len(v) == len(days) for v in s["daily"]["bounces_by_reason"].values())
    assert s["queue"]["jobs"]["pending"] == 1 and s["queue"]["jobs"]["done"] == 5
    assert s["queue"]["oldest_job_at"] == at(0.25).isoformat()
    assert 0.25 * 86400 - 5 < s["queue"]["oldest_job_age_seconds"] < 0.25 * 86400 + 5
    assert s["outbox"]["deliveries"]["unfanned"] == 3
    assert s["outbox"]["oldest_unfanned_at"] == at(20).isoformat()
    assert s["breakers"] == []
    everything = await overview.summary(store, at(30), NOW)
    assert everything["decisions"]["unconfirm"] == 3
    with pytest.raises(BadQuery, match=r"^since: "):
        await overview.summary(store, NOW + dt.timedelta(days=1), NOW)


# --- the daemon: HTTP and the command line agree -------------------------------------------


def cli(tmp_path: Path, store_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **base_env(tmp_path, BOUNCED_STORE_URL=store_url)}
    return subprocess.run([sys.executable, "-m", "bounced.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


async def unconfirm_over_smtp(d: Any, subject: str, address: str) -> None:
    for age in (10, 6, 2):
        rp = d.signer.return_path(subject, address, day=days_ago(age))
        assert (await asend(d.port, [rp], dsn(address, return_path=rp)))["DATA"][0] == 250


async def test_summary_leaves_incidents_without_a_bound_address_out_of_the_domains(
    store: Store,
) -> None:
    """An incident whose report named another address than the token's (no receiving domain)
    counts in the totals and the reasons, and makes no empty row among the top domains."""
    await bounce(store, "u1", "one@example.net", at(1))
    n = next(_seq)
    token = TokenFields(subject="u9", stream=None, key_id="k1", day=at(1).date(),
                        fingerprint=fingerprint("nine@example.org"), token_id=f"t{n}")
    [mid] = await store.add_messages([NewMessage(
        received_at=at(1), peer="127.0.0.1", mail_from="", rcpt_to=f"bounce-t{n}@b.test",
        token=token, raw=b"raw\r\n")])
    [job] = [j for j in await store.claim("w", NOW, LEASE, 100) if j.id == mid]
    unbound = Incident(
        id=None, message_id=mid, subject="u9", fingerprint=token.fingerprint, address="",
        token_id=token.token_id, send_day=token.day, received_at=at(1), kind="bounce",
        action="failed", status="5.1.1", reply_code="550", reason="userunknown", hard=True,
        counts=False, diagnostic="550 5.1.1 unknown", remote_mta="mx.test",
        address_mismatch=True)
    await core.finish(store, job, "w", Outcome(kind="bounce", classification={},
                                               incidents=(unbound,)), Decide(None), NOW)
    s = await overview.summary(store, at(7), NOW)
    assert s["incidents"]["total"] == 2
    assert [d["domain"] for d in s["top_domains"]] == ["example.net"]


async def test_http_lists_and_stats_say_what_the_commands_say(
        tmp_path: Path, store_url: str) -> None:
    """Real bounces over SMTP; /v1/addresses, /v1/events and /v1/stats page through them and
    agree with `bounced addresses`, `events` and `stats` --json."""
    settings = make_settings(tmp_path, store_url)
    async with running_daemon(settings) as d, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{d.http_port}"
        for n in range(3):
            await unconfirm_over_smtp(d, f"s{n}", f"user{n}@example.net")
        await unconfirm_over_smtp(d, "t0", "user@elsewhere.example")

        async def get(path: str, **params: str) -> tuple[int, Any, Any]:
            async with http.get(base + path, params=params) as resp:
                return resp.status, await resp.json(), resp.headers

        for _ in range(200):
            _, items, _ = await get("/v1/addresses", state="unconfirmed")
            if len(items) == 4:
                break
            await asyncio.sleep(0.05)
        assert len(items) == 4
        status, page, headers = await get("/v1/addresses", state="unconfirmed", since="7d",
                                          domain="example.net", limit="2")
        assert status == 200 and len(page) == 2
        link, cursor = headers["Link"], headers["X-Next-Cursor"]
        _, rest, headers = await get("/v1/addresses", state="unconfirmed", since="7d",
                                     domain="example.net", limit="2", cursor=cursor)
        assert "Link" not in headers
        listed = page + rest
        assert sorted(a["subject"] for a in listed) == ["s0", "s1", "s2"]
        assert all(a["incidents"] == 3 and "3 counting bounces" in a["rule"] for a in listed)
        # The Link header's URL is the same query with the cursor.
        assert link.startswith("</v1/addresses?") and link.endswith('>; rel="next"')
        async with http.get(base + link[1:].partition(">")[0]) as resp:
            assert await resp.json() == rest

        proc = cli(tmp_path, store_url, "addresses", "--state", "unconfirmed", "--since", "7d",
                   "--domain", "example.net", "--json", "--limit", "2")
        assert proc.returncode == 0, proc.stderr
        assert [json.loads(line) for line in proc.stdout.splitlines()] == page
        assert proc.stderr.strip() == f"more: add --cursor {cursor}"
        proc = cli(tmp_path, store_url, "addresses", "--state", "unconfirmed", "--since", "7d",
                   "--domain", "example.net", "--json", "--limit", "2", "--cursor", cursor)
        assert [json.loads(line) for line in proc.stdout.splitlines()] == rest

        _, events, _ = await get("/v1/events", type="address.unconfirmed", since="1d")
        assert sorted(e["subject"] for e in events) == ["s0", "s1", "s2", "t0"]
        proc = cli(tmp_path, store_url, "events", "--type", "address.unconfirmed", "--since",
                   "1d", "--json")
        assert [json.loads(line)["id"] for line in proc.stdout.splitlines()] == [
            e["id"] for e in events]
        assert (await get("/v1/events", type="breaker.tripped"))[1] == []

        status, stats, _ = await get("/v1/stats", since="30d")
        assert status == 200
        # The answers are what the OpenAPI document says they are.
        _, spec, _ = await get("/openapi.json")
        for name, value in (("Stats", stats), ("AddressSummary", listed[0]),
                            ("Event", events[0])):
            jsonschema.Draft202012Validator(
                {"$ref": f"#/components/schemas/{name}", "components": spec["components"]},
                format_checker=jsonschema.FormatChecker()).validate(value)
        assert stats["decisions"]["unconfirm"] == 4 and stats["incidents"]["counting"] == 12
        assert stats["top_domains"][0] == {"domain": "example.net", "incidents": 9,
                                           "addresses": 3, "counting": 9}
        assert stats["queue"]["jobs"]["done"] == 12
        proc = cli(tmp_path, store_url, "stats", "--since", "30d", "--json")
        assert proc.returncode == 0, proc.stderr
        from_cli = json.loads(proc.stdout)
        assert {k: v for k, v in from_cli.items() if k not in ("since", "now", "queue",
                                                                "outbox")} == {
            k: v for k, v in stats.items() if k not in ("since", "now", "queue", "outbox")}
        table = cli(tmp_path, store_url, "stats")
        assert table.returncode == 0, table.stderr
        assert "decisions  unconfirmed 4" in table.stdout
        assert "userunknown" in table.stdout and "example.net" in table.stdout


async def test_hostile_list_queries_get_one_line_400s(tmp_path: Path) -> None:
    """Bad filters, limits and cursors are refused with 400 and a one-line error naming the
    parameter; nothing is a 500."""
    async with running_daemon(make_settings(tmp_path)) as d, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{d.http_port}"
        for path, params, name in (
            ("/v1/addresses", {"since": "last week"}, "since"),
            ("/v1/addresses", {"state": "dead"}, "state"),
            ("/v1/addresses", {"domain": "<script>"}, "domain"),
            ("/v1/addresses", {"limit": "0"}, "limit"),
            ("/v1/addresses", {"limit": "501"}, "limit"),
            ("/v1/addresses", {"cursor": "Zm9v"}, "cursor"),
            ("/v1/addresses", {"cursor": overview.event_cursor(
                dataclasses.make_dataclass("E", ["occurred_at", "id"])(NOW, "x"))}, "cursor"),
            ("/v1/events", {"type": "address.deleted"}, "type"),
            ("/v1/events", {"since": "\x00"}, "since"),
            ("/v1/events", {"cursor": "\u00e9t\u00e9"}, "cursor"),
            ("/v1/stats", {"since": "2999-01-01"}, "since"),
            ("/v1/stats", {"since": "99999999w"}, "since"),
            ("/v1/stats", {"since": "999999w"}, "since"),
        ):
            async with http.get(base + path, params=params) as resp:
                body = await resp.json()
                assert resp.status == 400, (path, params, body)
                assert body["error"].startswith(f"{name}: ") and "\n" not in body["error"]


def test_command_line_mistakes_are_one_line_usage_errors(tmp_path: Path) -> None:
    """Wrong --since, --state, --type, --domain or --cursor: exit 2, one line naming it."""
    url = f"sqlite:///{tmp_path / 'bounced.db'}"
    for args, option in (
        (["addresses", "--since", "fortnight"], "--since"),
        (["addresses", "--state", "dead"], "--state"),
        (["addresses", "--domain", "not a domain"], "--domain"),
        (["addresses", "--cursor", "garbage"], "--cursor"),
        (["events", "--type", "address.deleted"], "--type"),
        (["events", "--since", "2026-13-01"], "--since"),
        (["stats", "--since", "7x"], "--since"),
    ):
        proc = cli(tmp_path, url, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        [error] = [line for line in proc.stderr.splitlines() if "error:" in line]
        assert option in error, error
    for command in ("addresses", "stats"):
        assert cli(tmp_path, url, command, "--help").returncode == 0


async def test_sqlite_summary_never_holds_up_the_intake(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a summary's read transaction is open on SQLite, a message is still stored at
    once: reports read through a connection of their own, outside the writer's lock."""
    import threading

    from bounced.store import open_store
    from bounced.store.sqlite import reports as sqlite_reports

    store = open_store(f"sqlite:///{tmp_path / 'bounced.db'}")
    await store.open()
    inside, release = threading.Event(), threading.Event()
    real = sqlite_reports._snapshot

    def held(conn: Any, statements: Any) -> Any:
        db = conn._conn
        db.execute("BEGIN").close()
        db.execute("SELECT COUNT(*) FROM messages").fetchall()  # the snapshot is taken
        inside.set()
        release.wait(20)
        db.execute("ROLLBACK").close()
        return real(conn, statements)

    monkeypatch.setattr(sqlite_reports, "_snapshot", held)
    try:
        summary = asyncio.create_task(store.summary(at(7), NOW))
        assert await asyncio.to_thread(inside.wait, 10)
        stored = await asyncio.wait_for(store.add_messages([NewMessage(
            received_at=NOW, peer="p", mail_from="", rcpt_to="bounce-x@b.test",
            token=TokenFields(subject="x", stream=None, key_id="k1", day=NOW.date(),
                              fingerprint="fx", token_id="tx"), raw=b"x")]), 5)
        assert len(stored) == 1 and not summary.done()
        release.set()
        assert (await summary).queue["pending"] == 1
    finally:
        release.set()
        await store.close()
