"""Actions end to end: signed webhooks through failures, an outage and a restart; commands;
the payload; dry run; the receiver documented in docs/webhooks.md."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import inspect
import json
import os
import re
import secrets
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bounced.config import Settings, load_settings

from .helpers import (
    KEY_LINE,
    ROOT,
    DaemonProcess,
    asend,
    base_env,
    days_ago,
    dsn,
    free_port,
    running_daemon,
    signer,
    smtp_send,
)

ALICE = "alice@example.net"
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


# --- a receiver that checks signatures the way the Standard Webhooks spec says -------------


class BadSignature(Exception):
    pass


def secret_key(secret: str) -> bytes:
    assert secret.startswith("whsec_")
    return base64.b64decode(secret.removeprefix("whsec_"))


def standard_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """``v1,`` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))."""
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def verify(secret: str, headers: Mapping[str, str], body: bytes, tolerance: int = 300) -> Any:
    """The event a signed request carries; BadSignature if it is not genuine or too old."""
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        raise BadSignature(f"timestamp {timestamp} outside the tolerance")
    expected = standard_signature(secret, msg_id, timestamp, body)
    if not any(hmac.compare_digest(sig, expected)
               for sig in headers["webhook-signature"].split(" ")):
        raise BadSignature("no signature matches")
    return json.loads(body)


@dataclass
class Seen:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    """A webhook endpoint on 127.0.0.1 that answers 500 while ``failing`` and can be stopped
    (socket closed) and started again on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.seen: list[Seen] = []
        self.failing = False
        # Answer this many requests only after ``slow_seconds`` (the sender times out first).
        self.slow = 0
        self.slow_seconds = 0.0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        # Stop waits at most 2 s for requests in flight: an AppRunner setting since aiohttp 3.9,
        # a TCPSite one before (Debian 12 has 3.8, where AppRunner passes it on to every
        # connection's handler, which then closes connections at once).
        modern = tuple(int(n) for n in aiohttp.__version__.split(".")[:2]) >= (3, 9)
        self._runner = web.AppRunner(app, access_log=None,
                                     **({"shutdown_timeout": 2} if modern else {}))
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True,
                          **({} if modern else {"shutdown_timeout": 2})).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = 500 if self.failing else 200
        self.seen.append(Seen({k.lower(): v for k, v in request.headers.items()}, body, status))
        if self.slow > 0:
            self.slow -= 1
            await asyncio.sleep(self.slow_seconds)
        return web.Response(status=status)

    def attempts(self, event_id: str) -> int:
        return sum(1 for s in self.seen if s.id == event_id)

    def accepted(self) -> dict[str, list[Seen]]:
        """Requests answered 2xx, by webhook-id (more than one: a duplicate delivery)."""
        result: dict[str, list[Seen]] = {}
        for s in self.seen:
            if s.status == 200:
                result.setdefault(s.id, []).append(s)
        return result


@contextlib.asynccontextmanager
async def receiving(port: int | None = None) -> AsyncIterator[Receiver]:
    receiver = Receiver(port)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


# --- configuration and waiting ---------------------------------------------------------------


def write_config(tmp_path: Path, actions: Mapping[str, Mapping[str, Any]]) -> Path:
    """A TOML file with one ``[actions.NAME]`` table per action (JSON values are valid TOML)."""
    lines = []
    for name, values in actions.items():
        lines.append(f"[actions.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path = tmp_path / "bounced.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def settings_with(tmp_path: Path, actions: Mapping[str, Mapping[str, Any]],
                  **env: str) -> Settings:
    return load_settings(write_config(tmp_path, actions), env=base_env(tmp_path, **env))


def secret_file(tmp_path: Path) -> str:
    path = tmp_path / "webhook-secret"
    path.write_text(SECRET + "\n")
    return str(path)


async def until(condition: Callable[[], Any], what: str, within: float = 20.0) -> None:
    """Poll ``condition`` (plain or async) until it is true."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {within} s waiting for {what}")


def not_a_bounce(return_path: str) -> bytes:
    return (f"From: someone@example.org\r\nTo: {return_path}\r\nSubject: hello\r\n\r\n"
            "Thanks for the newsletter.\r\n").encode()


async def unconfirm(d: Any, subject: str, address: str = ALICE) -> None:
    """Three counting bounces sent 10, 6 and 2 days ago: the address is unconfirmed."""
    for age in (10, 6, 2):
        rp = d.signer.return_path(subject, address, day=days_ago(age))
        reply = await asend(d.port, [rp], dsn(address, return_path=rp,
                                              diagnostic=f"550 5.1.1 <{address}>: no mailbox "
                                                         f"(sent {age} days ago)"))
        assert reply["DATA"][0] == 250, reply


async def send_unrecognised(d: Any, subject: str) -> None:
    rp = d.signer.return_path(subject, ALICE, day=days_ago(1))
    assert (await asend(d.port, [rp], not_a_bounce(rp)))["DATA"][0] == 250


async def delivery_states(d: Any) -> dict[str, dict[str, str]]:
    return {e.id: states for e, states in await d.store.events(500)}


# --- a daemon process, an unreliable receiver, a restart ------------------------------------


def db_outbox(db: Path) -> tuple[dict[str, Any], list[tuple[str, str, str | None, str | None]]]:
    """(payload by event id, [(event id, state, last_error, claimed_by)]) read from the file."""
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        events = {r[0]: json.loads(r[1]) for r in conn.execute("SELECT id, payload FROM events")}
        deliveries = conn.execute(
            "SELECT event_id, state, last_error, claimed_by FROM deliveries").fetchall()
    return events, deliveries


async def test_webhook_events_survive_failures_outage_and_restart(tmp_path: Path) -> None:
    """Through 500s, an outage and a restart every event arrives, signed; repeats keep the id."""
    db = tmp_path / "bounced.db"
    async with receiving() as receiver:
        receiver.failing = True
        env = base_env(
            tmp_path, BOUNCED_SMTP_LISTEN=f"127.0.0.1:{free_port()}", BOUNCED_LOG_FORMAT="json",
            BOUNCED_OUTBOX_RETRY_BASE_SECONDS="0.2", BOUNCED_OUTBOX_RETRY_MAX_SECONDS="1",
            BOUNCED_CONFIG=str(write_config(tmp_path, {"app": {
                "type": "webhook", "url": receiver.url, "timeout": 1}})),
            BOUNCED_ACTION_APP_SECRET=SECRET,
        )
        sign = signer(load_settings(env=env))
        first = DaemonProcess(env, tmp_path / "daemon.log")
        second = DaemonProcess(env, tmp_path / "daemon.log")
        try:
            await asyncio.to_thread(first.start)
            messages = [(rp, dsn(ALICE, return_path=rp)) for rp in (
                sign.return_path("u1", ALICE, day=days_ago(age)) for age in (10, 6, 2))]
            messages += [(rp, not_a_bounce(rp)) for rp in (
                sign.return_path(s, ALICE, day=days_ago(1)) for s in ("u2", "u3"))]
            for rp, raw in messages:
                reply = await asyncio.to_thread(smtp_send, first.port, [rp], raw)
                assert reply["DATA"][0] == 250, reply

            def refused_twice() -> bool:
                events, _ = db_outbox(db)
                return len(events) == 3 and all(receiver.attempts(e) >= 2 for e in events)

            await until(refused_twice, "every event refused twice with HTTP 500")
            await receiver.stop()  # the socket is closed: connections are refused

            def refused_connection() -> bool:
                _, rows = db_outbox(db)
                return len(rows) == 3 and all("ClientConnectorError" in (r[2] or "") for r in rows)

            await until(refused_connection, "an attempt against the closed socket")
            await asyncio.to_thread(first.stop)
            events, rows = db_outbox(db)
            assert [(state, claimed) for _, state, _, claimed in rows] == [("pending", None)] * 3

            await asyncio.to_thread(second.start)
            await asyncio.sleep(0.8)  # the new process finds the receiver down too
            receiver.failing = False
            receiver.slow, receiver.slow_seconds = 1, 1.5  # processed, but after the timeout
            await receiver.start()
            await until(lambda: [r[1] for r in db_outbox(db)[1]] == ["delivered"] * 3,
                        "every delivery delivered after the restart", within=30)
        finally:
            await asyncio.to_thread(first.stop)
            await asyncio.to_thread(second.stop)

    events, _ = db_outbox(db)
    assert sorted(e["type"] for e in events.values()) == [
        "address.unconfirmed", "bounce.unrecognised", "bounce.unrecognised"]
    accepted = receiver.accepted()
    assert set(accepted) == set(events)
    for seen in receiver.seen:
        payload = verify(SECRET, seen.headers, seen.body)
        assert payload == events[seen.id] and payload["id"] == seen.id
    bodies = {s.id: {x.body for x in receiver.seen if x.id == s.id} for s in receiver.seen}
    assert all(len(b) == 1 for b in bodies.values()), "a retry changed the body"
    assert any(len(copies) == 2 for copies in accepted.values()), "no duplicate delivery"


async def test_webhook_not_sent_again_once_accepted(tmp_path: Path) -> None:
    """A receiver answering 2xx gets each event exactly once, signed with the configured secret."""
    async with receiving() as receiver:
        settings = settings_with(tmp_path, {"app": {
            "type": "webhook", "url": receiver.url, "secret_file": secret_file(tmp_path)}})
        async with running_daemon(settings) as d:
            for subject in ("a", "b"):
                await send_unrecognised(d, subject)
            await until(lambda: len(receiver.seen) == 2, "two deliveries")
            await asyncio.sleep(1.0)  # several dispatcher polls: nothing more is sent
            states = await delivery_states(d)
    assert len(receiver.seen) == 2 and set(receiver.accepted()) == set(states)
    assert all(s == {"app": "delivered"} for s in states.values())
    for seen in receiver.seen:
        assert verify(SECRET, seen.headers, seen.body)["type"] == "bounce.unrecognised"
        assert seen.headers["content-type"] == "application/json"


# --- command actions -----------------------------------------------------------------------

ACTION_SCRIPT = """\
import json, os, pathlib, sys, time
mode, log = sys.argv[1], pathlib.Path(sys.argv[2])
event = json.load(sys.stdin)
runs = 0
if log.exists():
    runs = sum(json.loads(line)["id"] == event["id"] for line in log.read_text().splitlines())
with log.open("a") as out:
    out.write(json.dumps({"id": event["id"], "env": os.environ["BOUNCED_EVENT_ID"],
                          "event": event}) + "\\n")
if mode == "fail-twice" and runs < 2:
    print("not now", file=sys.stderr)
    sys.exit(3)
if mode == "hang-once" and runs < 1:
    time.sleep(30)
"""


def runs_of(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


async def test_command_retried_after_timeout_or_failure_never_after_success(
    tmp_path: Path,
) -> None:
    """A command that times out or exits non-zero runs again; one that exits 0 runs once."""
    script = tmp_path / "action.py"
    script.write_text(ACTION_SCRIPT)
    modes = {"ok": "ok", "flaky": "fail-twice", "slow": "hang-once"}
    actions = {name: {"type": "command", "timeout": 1.5,
                      "command": [sys.executable, str(script), mode, str(tmp_path / name)]}
               for name, mode in modes.items()}
    settings = settings_with(tmp_path, actions, BOUNCED_OUTBOX_RETRY_BASE_SECONDS="0.1",
                             BOUNCED_OUTBOX_RETRY_MAX_SECONDS="0.5")
    async with running_daemon(settings) as d:
        for subject in ("a", "b"):
            await send_unrecognised(d, subject)

        async def all_delivered() -> bool:
            states = await delivery_states(d)
            return len(states) == 2 and all(
                s == dict.fromkeys(modes, "delivered") for s in states.values())

        await until(all_delivered, "every command delivered", within=30)
        await asyncio.sleep(0.8)  # several dispatcher polls: nothing runs again
        payloads = {e.id: e.payload for e, _ in await d.store.events()}
    for name, expected_runs in (("ok", 1), ("flaky", 3), ("slow", 2)):
        runs = runs_of(tmp_path / name)
        assert sorted(r["id"] for r in runs) == sorted(list(payloads) * expected_runs), name
        assert all(r["event"] == payloads[r["id"]] and r["env"] == r["id"] for r in runs)
    metrics = d.daemon.metrics.render().decode()
    assert 'bounced_action_deliveries_total{action="flaky",result="failed"} 4.0' in metrics
    assert 'bounced_action_deliveries_total{action="ok",result="delivered"} 2.0' in metrics


async def test_command_timeout_kills_what_the_command_started(tmp_path: Path) -> None:
    """A command's timeout also kills what it started, on time, and the event is retried."""
    script = tmp_path / "spawn.py"
    script.write_text(
        "import subprocess, sys\n"
        f"open({str(tmp_path / 'runs')!r}, 'a').write('run\\n')\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(tmp_path / 'child')!r}, 'w').write(str(child.pid))\n"
        "child.wait()\n")
    settings = settings_with(
        tmp_path, {"cmd": {"type": "command", "timeout": 1,
                           "command": [sys.executable, str(script)]}},
        BOUNCED_OUTBOX_RETRY_BASE_SECONDS="30")
    async with running_daemon(settings) as d:
        started = time.monotonic()
        await send_unrecognised(d, "a")

        def timed_out() -> bool:
            return d.daemon.metrics.registry.get_sample_value(
                "bounced_action_deliveries_total", {"action": "cmd", "result": "failed"}) == 1

        await until(timed_out, "the timeout", within=10)
        assert time.monotonic() - started < 5
        child = int((tmp_path / "child").read_text())
        await until(lambda: not pid_alive(child), "the child killed", within=5)
        assert [s for _, s in await d.store.events()] == [{"cmd": "pending"}]
        assert (tmp_path / "runs").read_text() == "run\n"


async def test_command_gets_the_environment_without_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A command gets the event id and type, PATH and the variables its pass_env names, and
    nothing else of the daemon's environment (no keys, tokens, store URL or PGPASSWORD)."""
    monkeypatch.setenv("BOUNCED_VERP_KEYS", KEY_LINE)
    monkeypatch.setenv("BOUNCED_HTTP_TOKEN", "t" * 24)
    monkeypatch.setenv("BOUNCED_ACTION_APP_SECRET", SECRET)
    monkeypatch.setenv("BOUNCED_STORE_URL", "postgresql://bounced:hunter2@db/bounced")
    monkeypatch.setenv("PGPASSWORD", "hunter2")
    monkeypatch.setenv("APP_SETTING", "kept")
    monkeypatch.setenv("OTHER_SETTING", "not passed")
    code = f"import json, os; json.dump(dict(os.environ), open({str(tmp_path / 'env')!r}, 'w'))"
    settings = settings_with(
        tmp_path, {"cmd": {"type": "command", "command": [sys.executable, "-c", code],
                           "pass_env": ["APP_SETTING"]}})
    async with running_daemon(settings) as d:
        await send_unrecognised(d, "a")
        await until((tmp_path / "env").exists, "the command run")
        [(event, _)] = await d.store.events()
    env = json.loads((tmp_path / "env").read_text())
    assert env["APP_SETTING"] == "kept" and env["PATH"] == os.environ["PATH"]
    assert (env["BOUNCED_EVENT_ID"], env["BOUNCED_EVENT_TYPE"]) == (event.id, event.type)
    assert not {"BOUNCED_VERP_KEYS", "BOUNCED_HTTP_TOKEN", "BOUNCED_ACTION_APP_SECRET",
                "BOUNCED_STORE_URL", "PGPASSWORD", "OTHER_SETTING"} & set(env)
    assert "hunter2" not in json.dumps(env)


async def test_command_interrupted_by_shutdown_runs_again_at_next_start(tmp_path: Path) -> None:
    """A command still running when the daemon stops is killed and runs again at the next start."""
    script = tmp_path / "slow.py"
    script.write_text(
        "import os, pathlib, sys, time\n"
        f"runs = pathlib.Path({str(tmp_path / 'runs')!r})\n"
        "first = not runs.exists()\n"
        "runs.open('a').write(str(os.getpid()) + '\\n')\n"
        "if first:\n"
        "    time.sleep(60)\n")
    settings = settings_with(
        tmp_path, {"cmd": {"type": "command", "timeout": 100,
                           "command": [sys.executable, str(script)]}},
        BOUNCED_SMTP_SHUTDOWN_GRACE="0.5")
    async with running_daemon(settings) as d:
        await send_unrecognised(d, "a")
        await until((tmp_path / "runs").exists, "the command started")
    [first] = (tmp_path / "runs").read_text().split()
    await until(lambda: not pid_alive(int(first)), "the command killed", within=5)
    [(_, state, error, claimed)] = db_outbox(tmp_path / "bounced.db")[1]
    assert (state, claimed) == ("pending", None) and "interrupted" in (error or "")
    started = time.monotonic()
    async with running_daemon(settings) as d:

        async def delivered() -> bool:
            return [s for _, s in await d.store.events()] == [{"cmd": "delivered"}]

        await until(delivered, "the delivery after the restart", within=10)
    assert time.monotonic() - started < 5  # not after the claim's lease (120 s)
    assert len((tmp_path / "runs").read_text().split()) == 2


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie waiting for its new parent counts as gone
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    return False


# --- the payload ---------------------------------------------------------------------------


async def test_unconfirmed_payload_names_rule_and_evidence(tmp_path: Path) -> None:
    """address.unconfirmed names subject, address, fingerprint, rule, time and each incident."""
    async with receiving() as receiver:
        settings = settings_with(tmp_path, {"app": {
            "type": "webhook", "url": receiver.url, "secret_file": secret_file(tmp_path),
            "events": ["address.unconfirmed"]}})
        async with running_daemon(settings) as d:
            await unconfirm(d, "user-42")
            await until(receiver.accepted, "the event")
            [state] = await d.store.address_states(subject="user-42")
    [[seen]] = receiver.accepted().values()
    event = verify(SECRET, seen.headers, seen.body)
    assert event["type"] == "address.unconfirmed"
    assert event["id"] == seen.id and re.fullmatch(r"evt_[0-9a-f]{32}", event["id"])
    assert (event["subject"], event["address"], event["fingerprint"]) == (
        "user-42", ALICE, state.fingerprint)
    assert "3 counting bounces" in event["rule"] and "span 8 days" in event["rule"]
    occurred = dt.datetime.fromisoformat(event["occurred_at"])
    assert occurred.tzinfo is not None and abs(occurred - dt.datetime.now(dt.UTC)) < dt.timedelta(
        minutes=1)
    evidence = event["evidence"]
    assert [e["send_day"] for e in evidence] == [days_ago(n).isoformat() for n in (10, 6, 2)]
    for item, age in zip(evidence, (10, 6, 2), strict=True):
        assert (item["status"], item["reason"], item["reply_code"], item["hard"]) == (
            "5.1.1", "userunknown", "550", True)
        assert f"(sent {age} days ago)" in item["diagnostic"]
        assert item["remote_mta"] == "mx.example.net"
        assert item["reporting_mta"] == "mx.example.net"
        assert item["address"] == ALICE
        assert dt.datetime.fromisoformat(item["received_at"]) <= occurred


# --- dry run -------------------------------------------------------------------------------


async def test_dry_run_records_and_shows_decisions_but_runs_no_action(tmp_path: Path) -> None:
    """In dry run the decision and its event are recorded and shown, and no action runs."""
    script = tmp_path / "action.py"
    script.write_text(ACTION_SCRIPT)
    async with receiving() as receiver:
        settings = settings_with(
            tmp_path,
            {"app": {"type": "webhook", "url": receiver.url, "secret_file": secret_file(tmp_path)},
             "cmd": {"type": "command",
                     "command": [sys.executable, str(script), "ok", str(tmp_path / "cmd")]}},
            BOUNCED_OUTBOX_DRY_RUN="true",
        )
        async with running_daemon(settings) as d:
            await unconfirm(d, "u7")

            async def recorded() -> bool:
                return any(s for s in (await delivery_states(d)).values())

            await until(recorded, "the event fanned out")
            await asyncio.sleep(0.6)  # a few dispatcher polls
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{d.http_port}"
                async with http.get(f"{url}/v1/addresses", params={"subject": "u7"}) as resp:
                    report = await resp.json()
                async with http.get(f"{url}/v1/events") as resp:
                    listed = await resp.json()
    [address] = report["addresses"]
    assert address["state"] == "unconfirmed"
    assert [x["action"] for x in address["decisions"]] == ["unconfirm"]
    [event] = listed
    assert event["type"] == "address.unconfirmed" and event["subject"] == "u7"
    assert event["deliveries"] == {"app": "skipped", "cmd": "skipped"}
    assert receiver.seen == [] and not (tmp_path / "cmd").exists()


# --- the documented receiver ---------------------------------------------------------------


def documented_receiver() -> str:
    """The complete Python receiver in docs/webhooks.md (the block after its marker)."""
    text = (ROOT / "docs" / "webhooks.md").read_text()
    match = re.search(r"<!-- receiver-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "docs/webhooks.md lost its receiver example"
    return match.group(1)


async def read_line(stream: asyncio.StreamReader, within: float = 15.0) -> Any:
    line = await asyncio.wait_for(stream.readline(), within)
    assert line, "the receiver exited"
    return json.loads(line)


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


async def post_signed(url: str, body: bytes, msg_id: str, timestamp: int,
                      signature: str | None = None) -> int:
    headers = {"content-type": "application/json", "webhook-id": msg_id,
               "webhook-timestamp": str(timestamp),
               "webhook-signature": signature or standard_signature(
                   SECRET, msg_id, str(timestamp), body)}
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as resp:
        return resp.status


async def test_documented_receiver_accepts_real_delivery_once(tmp_path: Path) -> None:
    """The receiver in docs/webhooks.md verifies a delivery, acts once, and refuses forgeries."""
    path = tmp_path / "receiver.py"
    path.write_text(documented_receiver())
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(path), stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "BOUNCED_WEBHOOK_SECRET": SECRET, "PORT": str(port),
             "RECEIVER_DB": str(tmp_path / "receiver.db")})
    assert proc.stdout is not None
    try:
        await until(lambda: port_open(port), "the receiver listening", within=10)
        settings = settings_with(tmp_path, {"app": {
            "type": "webhook", "url": f"http://127.0.0.1:{port}/bounced",
            "secret_file": secret_file(tmp_path)}})
        async with running_daemon(settings) as d:
            await unconfirm(d, "user-1")
            handled = await read_line(proc.stdout)
            [(event, _)] = await d.store.events()
        assert handled == {"handled": "address.unconfirmed", "id": event.id,
                           "subject": "user-1", "address": ALICE}
        url = f"http://127.0.0.1:{port}/bounced"
        body = json.dumps(event.payload).encode()
        now = int(time.time())
        # The same event again (a retry after a lost answer): accepted, not acted on twice.
        assert await post_signed(url, body, event.id, now) == 204
        assert await post_signed(url, body, event.id, now, signature="v1,Zm9yZ2Vk") == 401
        assert await post_signed(url, body, event.id, now - 3600) == 401
        fresh = {**event.payload, "id": "evt_fresh", "subject": "user-2"}
        assert await post_signed(url, json.dumps(fresh).encode(), "evt_fresh", now) == 204
        assert (await read_line(proc.stdout))["id"] == "evt_fresh"  # not the duplicate
    finally:
        proc.terminate()
        await proc.wait()


# --- syslog --------------------------------------------------------------------------------


async def test_syslog_action_sends_each_event_to_a_local_socket_and_over_udp(
    tmp_path: Path,
) -> None:
    """A running daemon sends an unconfirm to syslog, to a Unix datagram socket (as /dev/log
    is) and over UDP: one RFC 3164 line each (facility and severity in the priority, the
    program bounced with its pid), carrying the event's type, id and JSON."""
    path = str(tmp_path / "log.sock")
    local = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    local.bind(path)
    remote = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    remote.bind(("127.0.0.1", 0))
    try:
        settings = settings_with(tmp_path, {
            "local": {"type": "syslog", "address": path, "facility": "local3",
                      "events": ["address.unconfirmed"]},
            "remote": {"type": "syslog", "address": f"udp://127.0.0.1:{remote.getsockname()[1]}",
                       "events": ["address.unconfirmed"]}})
        async with running_daemon(settings) as d:
            await unconfirm(d, "user-7")
            lines = [await asyncio.wait_for(asyncio.to_thread(s.recv, 65536), 20)
                     for s in (local, remote)]
    finally:
        local.close()
        remote.close()
    for line, facility in zip(lines, (19, 1), strict=True):  # local3, user
        m = re.fullmatch(rb"<(\d+)>(\w{3} [ \d]\d \d\d:\d\d:\d\d) (\S+) bounced\[(\d+)\]: "
                         rb"address\.unconfirmed (evt_[0-9a-f]{32}) (\{.*\})", line)
        assert m is not None, line
        assert int(m[1]) == facility * 8 + 5  # notice
        event = json.loads(m[6])
        assert (event["type"], event["id"], event["subject"]) == (
            "address.unconfirmed", m[5].decode(), "user-7")
    assert json.loads(lines[0].partition(b": ")[2].split(b" ", 2)[2])["id"] == \
        json.loads(lines[1].partition(b": ")[2].split(b" ", 2)[2])["id"]


async def test_syslog_action_retries_while_its_socket_is_missing(tmp_path: Path) -> None:
    """A syslog socket that is not there (syslog not running yet) fails the delivery, which
    is retried; once the socket exists the event arrives."""
    from bounced.config import ActionSettings
    from bounced.model import Event
    from bounced.outbox.actions import DeliveryError, SyslogAction

    path = tmp_path / "later.sock"
    action = SyslogAction(ActionSettings(name="s", type="syslog", address=str(path)))
    event = Event(id="evt_1", type="breaker.tripped", subject=None, fingerprint=None,
                  occurred_at=dt.datetime.now(dt.UTC), payload={"type": "breaker.tripped"})
    with pytest.raises(DeliveryError, match=r"later\.sock"):
        await action.deliver(event, b"{}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        await action.deliver(event, b'{"type":"breaker.tripped"}')
        line = sock.recv(65536)
    assert line.startswith(b"<12>")  # user, warning: a tripped breaker
    assert line.endswith(b'breaker.tripped evt_1 {"type":"breaker.tripped"}')


def test_every_action_type_is_a_class_registered_by_its_name(tmp_path: Path) -> None:
    """Each type the settings accept has its class (adding one is a class and its settings),
    and a syslog action's settings are checked as the others' are."""
    from bounced.config import ACTION_TYPES, ConfigError
    from bounced.outbox.actions import ACTIONS

    assert set(ACTIONS) == set(ACTION_TYPES)
    for table, error in (({"type": "syslog", "facility": "local9"}, "facility"),
                         ({"type": "syslog", "address": "syslog.example.net"}, "address"),
                         ({"type": "syslog", "address": "udp://host"}, "address")):
        with pytest.raises(ConfigError, match=rf"\[actions\.s\] {error}"):
            settings_with(tmp_path, {"s": table})
