"""The domain breaker end to end: a burst of counting bounces from one receiving domain holds
unconfirms and sends an alert event; an operator releases it over HTTP."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import aiohttp

from bounced.config import Settings

from .helpers import asend, days_ago, dsn, running_daemon
from .test_actions import SECRET as WEBHOOK_SECRET
from .test_actions import Receiver, receiving, secret_file, settings_with, until, verify

TOKEN = secrets.token_urlsafe(24)


def breaker_settings(tmp_path: Path, receiver: Receiver, **env: str) -> Settings:
    """One counting bounce unconfirms; the breaker trips at 3 addresses of one domain."""
    token_file = tmp_path / "http-token"
    token_file.write_text(TOKEN + "\n")
    return settings_with(
        tmp_path,
        {"app": {"type": "webhook", "url": receiver.url, "secret_file": secret_file(tmp_path)}},
        BOUNCED_POLICY_MIN_BOUNCES="1", BOUNCED_POLICY_MIN_SPAN_DAYS="0",
        BOUNCED_BREAKER_MIN_ADDRESSES="3", BOUNCED_BREAKER_WINDOW_MINUTES="60",
        BOUNCED_HTTP_TOKEN_FILE=str(token_file), **env,
    )


async def bounce(d: Any, subject: str, address: str, status: str = "5.1.1",
                 action: str = "failed", sent_days_ago: int = 2) -> None:
    """One bounce, processed before this returns."""
    before = (await d.store.queue_counts())["done"]
    rp = d.signer.return_path(subject, address, day=days_ago(sent_days_ago))
    reply = await asend(d.port, [rp], dsn(address, status, action, return_path=rp))
    assert reply["DATA"][0] == 250, reply

    async def processed() -> bool:
        return bool((await d.store.queue_counts())["done"] > before)

    await until(processed, f"the bounce for {address} processed", within=10)


async def states(d: Any, subjects: list[str]) -> list[str]:
    return [(await d.store.address_states(subject=s))[0].state for s in subjects]


def received(receiver: Receiver) -> list[dict[str, Any]]:
    """Verified events, one per id, in the order they occurred (retries may overtake)."""
    events: dict[str, dict[str, Any]] = {}
    for seen in receiver.seen:
        events.setdefault(seen.id, verify(WEBHOOK_SECRET, seen.headers, seen.body))
    return sorted(events.values(), key=lambda e: e["occurred_at"])


async def test_burst_from_one_domain_trips_breaker_and_holds_unconfirms(tmp_path: Path, store_url: str) -> None:
    """A burst from one domain trips its breaker: later unconfirms are held and an alert is sent."""
    async with receiving() as receiver, running_daemon(
        breaker_settings(tmp_path, receiver, BOUNCED_STORE_URL=store_url)) as d:
        subjects = [f"s{n}" for n in range(5)]
        for n, subject in enumerate(subjects):
            await bounce(d, subject, f"user{n}@Burst.Example")
        assert await states(d, subjects) == ["unconfirmed"] * 2 + ["confirmed"] * 3
        for subject in subjects[2:]:
            [state] = await d.store.address_states(subject=subject)
            [decision] = await d.store.decisions(subject, state.fingerprint)
            assert decision.action == "held"
            assert "held: the breaker for burst.example is tripped" in decision.rule
        await until(lambda: len(received(receiver)) == 3, "three events")
        await asyncio.sleep(0.5)  # nothing else comes
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{d.http_port}"
            async with http.get(f"{base}/v1/breakers") as resp:
                breakers = await resp.json()
            async with http.get(f"{base}/metrics") as resp:
                metrics = await resp.text()
    events = received(receiver)
    assert [(e["type"], e["subject"]) for e in events] == [
        ("address.unconfirmed", "s0"), ("address.unconfirmed", "s1"), ("breaker.tripped", None)]
    tripped = events[2]
    assert tripped["domain"] == "burst.example"
    assert "3 distinct addresses at burst.example within 60 minutes" in tripped["rule"]
    assert [(b["domain"], b["state"], b["addresses"]) for b in breakers] == [
        ("burst.example", "tripped", 3)]
    assert "bounced_breaker_trips_total 1.0" in metrics
    assert 'bounced_decisions_total{action="held"} 3.0' in metrics


async def test_same_bounces_spread_over_domains_or_not_counting_trip_nothing(
    tmp_path: Path, store_url: str,
) -> None:
    """The same bounces spread over domains, from one address, or not counting, trip nothing."""
    async with receiving() as receiver, running_daemon(
        breaker_settings(tmp_path, receiver, BOUNCED_STORE_URL=store_url)) as d:
        spread = [f"s{n}" for n in range(5)]
        for n, subject in enumerate(spread):
            await bounce(d, subject, f"user@domain{n}.example")
        for age in (9, 7, 5, 3):  # one address of one domain, four messages
            await bounce(d, "same", "same@one.example", sent_days_ago=age)
        for n in range(4):  # deferrals and policy rejections at one domain
            await bounce(d, f"d{n}", f"user{n}@busy.example", "4.2.2", "delayed")
            await bounce(d, f"b{n}", f"user{n}@blocking.example", "5.7.1")
        assert await states(d, [*spread, "same"]) == ["unconfirmed"] * 6
        assert await d.store.breakers() == []
        await until(lambda: len(received(receiver)) == 6, "six events")
    assert {e["type"] for e in received(receiver)} == {"address.unconfirmed"}


async def test_release_needs_token_sends_event_and_resumes_unconfirms(tmp_path: Path, store_url: str) -> None:
    """Releasing a breaker needs the token, sends breaker.released, and unconfirms resume."""
    async with receiving() as receiver, running_daemon(
        breaker_settings(tmp_path, receiver, BOUNCED_STORE_URL=store_url)) as d:
        for n in range(3):
            await bounce(d, f"s{n}", f"user{n}@burst.example")
        assert await states(d, ["s2"]) == ["confirmed"]
        url = f"http://127.0.0.1:{d.http_port}/v1/breakers/BURST.example/release"
        async with aiohttp.ClientSession() as http:
            async with http.post(url) as resp:
                assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
            async with http.post(url, headers={"Authorization": "Bearer wrong"}) as resp:
                assert resp.status == 401
            assert (await d.store.breakers())[0]["state"] == "tripped"
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with http.post(url, headers=auth) as resp:
                assert resp.status == 200
                assert await resp.json() == {"domain": "burst.example", "state": "released"}
            async with http.post(url, headers=auth) as resp:
                assert resp.status == 404
        [breaker] = await d.store.breakers()
        assert breaker["state"] == "released" and breaker["released_at"] is not None
        await bounce(d, "s3", "user3@burst.example")
        await bounce(d, "s2", "user2@burst.example", sent_days_ago=1)
        assert await states(d, ["s2", "s3"]) == ["unconfirmed", "unconfirmed"]
        await until(lambda: len(received(receiver)) == 6, "six events")
    assert [(e["type"], e["subject"]) for e in received(receiver)] == [
        ("address.unconfirmed", "s0"), ("address.unconfirmed", "s1"), ("breaker.tripped", None),
        ("breaker.released", None), ("address.unconfirmed", "s3"), ("address.unconfirmed", "s2")]
    released = received(receiver)[3]
    assert released["domain"] == "burst.example"
    assert "released" in released["rule"]
