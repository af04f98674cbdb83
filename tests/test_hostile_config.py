"""Hostile senders and broken configurations: no lie about an address, no key or store made
where none should be, check-config as strict as serve, secrets kept from commands, one slow
action or message holding nothing else back, terminal control characters escaped."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bounced.classify.codes import STATUS_REASONS
from bounced.config import REASONS, ActionSettings, config_path
from bounced.model import Event, utcnow
from bounced.outbox.actions import LogAction
from bounced.outbox.dispatch import Dispatcher
from bounced.verp import fingerprint

from .helpers import (
    BOUNCED,
    ROOT,
    DaemonProcess,
    asend,
    base_env,
    days_ago,
    dsn,
    free_port,
    make_settings,
    running_daemon,
    smtp_send,
)

ATTACKER = "mallory@example.net"  # the token is signed for this address
VICTIM = "ceo@bigcorp.example"  # what the forged reports name


def run(env: Mapping[str, str], *args: str, cwd: Path | None = None,
        data: bytes | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([BOUNCED, *args], env={**os.environ, **env}, capture_output=True,
                          text=data is None, input=data, timeout=60, check=False, cwd=cwd)
    stderr = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode()
    assert "Traceback" not in stderr, stderr
    return proc


def sign(env: Mapping[str, str], subject: str, address: str, days: int) -> str:
    at = (utcnow().date() - dt.timedelta(days=days)).isoformat()
    proc = run(env, "sign", "--subject", subject, "--address", address, "--at", at)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def wait_for(condition: Callable[[], Any], what: str, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {within} s waiting for {what}")


def capture_script(tmp_path: Path) -> Path:
    """A command action that appends the event and the environment it got to a file."""
    script = tmp_path / "capture.py"
    script.write_text(textwrap.dedent(f"""\
        import json, os, sys
        line = {{"event": json.load(sys.stdin), "env": dict(os.environ)}}
        with open({str(tmp_path / 'captured.jsonl')!r}, "a") as fh:
            fh.write(json.dumps(line) + "\\n")
        """))
    return script


def captured(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "captured.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- item 5: an event names an address only when it is the one the token was signed for ----


def test_forged_address_is_never_named_and_command_gets_no_secret(tmp_path: Path) -> None:
    """Three bounces for a token signed for the sender's own address, each naming a victim's
    address, sent over SMTP to `bounced serve`: the unconfirm event delivered to a command
    names no address (the victim's nowhere in it), the incidents record the mismatch
    (`status` says so), and the command's environment has neither the store URL nor
    PGPASSWORD."""
    config = tmp_path / "bounced.toml"
    config.write_text(f'[actions.capture]\ntype = "command"\n'
                      f'command = [{json.dumps(sys.executable)}, '
                      f'{json.dumps(str(capture_script(tmp_path)))}]\n')
    env = base_env(tmp_path, BOUNCED_SMTP_LISTEN=f"127.0.0.1:{free_port()}",
                   BOUNCED_LOG_FORMAT="json", BOUNCED_CONFIG=str(config), PGPASSWORD="hunter2")
    daemon = DaemonProcess(env, tmp_path / "daemon.log")
    daemon.start()
    try:
        for days in (10, 6, 2):
            rp = sign(env, "4711", ATTACKER, days)
            reply = smtp_send(daemon.port, [rp], dsn(VICTIM, return_path=rp))
            assert reply["DATA"][0] == 250, reply
        [line] = wait_for(lambda: captured(tmp_path), "the unconfirm event")
    finally:
        daemon.stop()
    event = line["event"]
    assert event["type"] == "address.unconfirmed" and event["subject"] == "4711"
    assert event["fingerprint"] == fingerprint(ATTACKER)
    assert event["address"] is None
    assert VICTIM not in json.dumps(event) and "bigcorp" not in json.dumps(event)
    assert [e["address_mismatch"] for e in event["evidence"]] == [True, True, True]
    assert "BOUNCED_STORE_URL" not in line["env"] and "PGPASSWORD" not in line["env"]
    assert "hunter2" not in json.dumps(line["env"])
    status = run(env, "status", "--subject", "4711")
    assert status.returncode == 0, status.stderr
    assert VICTIM not in status.stdout and "(not the token's)" in status.stdout
    assert "UNCONFIRMED" in status.stdout
    report = json.loads(run(env, "status", "--subject", "4711", "--json").stdout)
    [address] = report["addresses"]
    assert address["address"] is None
    assert all(i["address"] is None and i["address_mismatch"] for i in address["incidents"])


async def test_only_the_tokens_address_is_named_on_both_backends(
    tmp_path: Path, store_url: str,
) -> None:
    """On SQLite and PostgreSQL: forged reports never put the victim's address in an event, a
    decision, an incident or the HTTP API, nor feed the victim domain's breaker; a report
    naming both the victim and the token's own address records the token's address only,
    and from then on the address is known."""
    settings = make_settings(tmp_path, store_url)
    async with running_daemon(settings) as d:
        for days in (10, 6, 2):
            rp = d.signer.return_path("s1", ATTACKER, day=days_ago(days))
            assert (await asend(d.port, [rp], dsn(VICTIM, return_path=rp)))["DATA"][0] == 250
        both = d.signer.return_path("s1", ATTACKER, day=days_ago(1))
        body = dsn(VICTIM, return_path=both).replace(
            b"Final-Recipient: rfc822; " + VICTIM.encode(),
            b"Final-Recipient: rfc822; " + ATTACKER.encode() + b"\r\nAction: failed\r\n"
            b"Status: 5.1.1\r\n\r\nFinal-Recipient: rfc822; " + VICTIM.encode())
        assert (await asend(d.port, [both], body))["DATA"][0] == 250
        for _ in range(200):
            if (await d.store.queue_counts())["done"] == 4:
                break
            await asyncio.sleep(0.05)
        events = [e for e, _ in await d.store.events()]
        async with aiohttp.ClientSession() as http, http.get(
                f"http://127.0.0.1:{d.http_port}/v1/addresses?subject=s1") as resp:
            api = await resp.text()
        breakers = await d.store.breakers()
        incidents = await d.store.incidents("s1", fingerprint(ATTACKER))
    [unconfirmed] = [e for e in events if e.type == "address.unconfirmed"]
    # The token's own address, once a report named it (in the same batch, it may be known
    # by the time of the decision), or none: never the victim's.
    assert unconfirmed.payload["address"] in (None, ATTACKER)
    assert VICTIM not in json.dumps([e.payload for e in events])
    assert VICTIM not in api and json.loads(api)["addresses"][0]["address"] == ATTACKER
    assert not breakers
    assert sorted((i.address, i.address_mismatch) for i in incidents) == [
        ("", True), ("", True), ("", True), (ATTACKER, False)]


# --- item 6: only `serve` makes a development key ---------------------------------------------


def test_deliver_without_keys_exits_75_and_makes_no_key(tmp_path: Path) -> None:
    """`bounced deliver` with no key configured (the pipe cannot read the daemon's systemd
    credential) exits 75, so the mail server keeps the bounce, and generates no key; `sign`
    and `verify` fail with one clear line and generate none either."""
    keyed = base_env(tmp_path)
    assert run(keyed, "migrate").returncode == 0
    rp = sign(keyed, "1", ATTACKER, 1)
    env = {k: v for k, v in keyed.items() if k != "BOUNCED_VERP_KEYS_FILE"}
    proc = run(env, "deliver", rp, data=dsn(ATTACKER, return_path=rp))
    assert proc.returncode == 75, proc.stderr
    assert b"no signing key" in proc.stderr
    for args in (["sign", "--subject", "1", "--address", ATTACKER], ["verify", rp]):
        other = run(env, *args)
        assert other.returncode == 1 and "no signing key" in other.stderr, other.stderr
        assert len(other.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "state").exists()


# --- item 7 and issue 17: read commands open an existing store or fail clearly ---------------


def test_read_commands_never_create_a_store(tmp_path: Path) -> None:
    """`status`, `queue`, `show`, `events` and `breaker list` with a mistyped SQLite path, or
    run from another directory on the defaults, exit non-zero naming the path, and create no
    database (main answered "no incidents recorded; confirmed" from a new empty one)."""
    env = base_env(tmp_path, BOUNCED_STORE_URL=f"sqlite:///{tmp_path / 'bouncd.db'}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    defaults = {k: v for k, v in env.items()
                if k not in ("BOUNCED_STORE_URL", "BOUNCED_STORE_STATE_DIR")}
    for args in (["status", "--subject", "4711"], ["queue"], ["show", "1"], ["events"],
                 ["breaker", "list"]):
        for e, cwd in ((env, None), (defaults, elsewhere)):
            proc = run(e, *args, cwd=cwd)
            assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
            assert "no bounced store at" in proc.stderr and "bounced migrate" in proc.stderr
            assert "confirmed" not in proc.stdout
    assert not (tmp_path / "bouncd.db").exists()
    assert list(elsewhere.iterdir()) == []


def test_one_default_configuration_path(tmp_path: Path) -> None:
    """Every command reads $BOUNCED_CONFIG, else /etc/bounced/bounced.toml when it exists,
    else the built-in defaults; set but empty, $BOUNCED_CONFIG means the built-in defaults.
    A shell with the service's configuration reads its store from any directory."""
    here = str(ROOT / "config" / "bounced.toml")
    assert config_path({}, default=here) == here
    assert config_path({}, default="/nonexistent/bounced.toml") is None
    assert config_path({"BOUNCED_CONFIG": "/srv/b.toml"}, default=here) == "/srv/b.toml"
    assert config_path({"BOUNCED_CONFIG": ""}, default=here) is None
    db = tmp_path / "service.db"
    config = tmp_path / "bounced.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{db}"\n')
    env = {"BOUNCED_CONFIG": str(config)}
    assert run(env, "migrate").returncode == 0
    proc = run(env, "queue", cwd=tmp_path.parent)
    assert proc.returncode == 0 and "pending" in proc.stdout, proc.stderr


def test_misspelt_environment_variable_is_named(tmp_path: Path) -> None:
    """A `BOUNCED_*` variable bounced does not read gets a warning naming the nearest one it
    reads (it was ignored silently); a misspelt key of a known section is an error."""
    env = base_env(tmp_path)
    assert run(env, "migrate").returncode == 0
    proc = run({**env, "BOUNCED_SMPT_LISTEN": "127.0.0.1:2600"}, "queue")
    assert proc.returncode == 0
    assert "BOUNCED_SMPT_LISTEN" in proc.stderr and "BOUNCED_SMTP_LISTEN" in proc.stderr
    bad = run({**env, "BOUNCED_STORE_ULR": "sqlite:///x.db"}, "queue")
    assert bad.returncode == 1 and "did you mean BOUNCED_STORE_URL?" in bad.stderr


# --- item 8: check-config runs every check serve runs -------------------------------------


BAD_CONFIGS = {
    "webhook without a secret": (
        '[actions.app]\ntype = "webhook"\nurl = "http://127.0.0.1:9/hook"\n',
        "a webhook needs a secret"),
    "missing secret_file": (
        '[actions.app]\ntype = "webhook"\nurl = "http://127.0.0.1:9/hook"\n'
        'secret_file = "/nonexistent/secret"\n', "secret_file"),
    "counting_reasons typo": (
        '[policy]\ncounting_reasons = ["userunknow"]\n', "did you mean 'userunknown'"),
    "command that does not exist": (
        '[actions.app]\ntype = "command"\ncommand = ["/nonexistent/unconfirm"]\n',
        "no such executable file"),
    "command not in PATH": (
        '[actions.app]\ntype = "command"\ncommand = ["bounced-no-such-program"]\n',
        "not found in PATH"),
    "missing http token_file": (
        '[http]\ntoken_file = "/nonexistent/token"\n', "[http] token_file"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_check_config_refuses_what_serve_refuses(tmp_path: Path, case: str) -> None:
    """For each configuration `serve` refuses before it binds, `check-config` exits 1 with
    the same one-line message (main passed all of these)."""
    text, message = BAD_CONFIGS[case]
    config = tmp_path / "bounced.toml"
    config.write_text(text)
    env = base_env(tmp_path, BOUNCED_SMTP_LISTEN=f"127.0.0.1:{free_port()}",
                   BOUNCED_CONFIG=str(config))
    checked = run(env, "check-config")
    assert checked.returncode == 1 and message in checked.stderr, checked.stderr
    served = run(env, "serve")
    assert served.returncode == 1 and message in served.stderr, served.stderr
    assert checked.stderr.strip() == served.stderr.strip().replace("serve", "check-config", 1)


def test_check_config_refuses_the_development_key(tmp_path: Path) -> None:
    """`check-config` refuses a development key `serve` generated earlier, as the docs say
    (main accepted it once it existed); `sign` may still use it (the quick start)."""
    env = {k: v for k, v in base_env(tmp_path).items() if k != "BOUNCED_VERP_KEYS_FILE"}
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "dev-keys").write_text(
        "k1 c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0zMmJ5dGVzISE=\n")
    proc = run(env, "check-config")
    assert proc.returncode == 1 and "development key" in proc.stderr, proc.stderr
    assert run(env, "sign", "--subject", "1", "--address", ATTACKER).returncode == 0


def test_check_config_reports_the_store_without_creating_it(tmp_path: Path,
                                                           pg_database: str) -> None:
    """`check-config` opens the store as serve would, but creates nothing: a SQLite file not
    there yet and an empty PostgreSQL database are reported as such (exit 0) and stay as
    they were; a store directory bounced could not create fails it."""
    env = base_env(tmp_path)
    proc = run(env, "check-config")
    assert proc.returncode == 0 and "not created yet" in proc.stdout, proc.stderr
    assert not (tmp_path / "bounced.db").exists()
    proc = run({**env, "BOUNCED_STORE_URL": pg_database}, "check-config")
    assert proc.returncode == 0 and "no schema yet" in proc.stdout, proc.stderr
    assert run({**env, "BOUNCED_STORE_URL": pg_database}, "queue").returncode == 1
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = run({**env, "BOUNCED_STORE_URL": f"sqlite:///{blocker}/sub/b.db"}, "check-config")
    assert proc.returncode == 1 and "[store] url" in proc.stderr, proc.stderr


def test_every_reason_the_classifier_gives_may_be_counted() -> None:
    """The vocabulary counting_reasons is checked against holds every reason of the status
    code table (a reason missing there would be refused as a typo)."""
    assert set(STATUS_REASONS.values()) <= set(REASONS)


# --- item 9: one hanging action holds back no other ---------------------------------------


class Hanging:
    """An action that never answers (its own timeout does not work)."""

    def __init__(self) -> None:
        self.name, self.events, self.timeout = "hanging", ("bounce.unrecognised",), 1.0

    async def deliver(self, event: Event, body: bytes) -> None:
        await asyncio.sleep(3600)


async def test_hanging_action_delays_no_other(tmp_path: Path, store_url: str) -> None:
    """With one action that never answers, another action's deliveries of 30 events are all
    made at once (main waited for the slowest delivery of each round of 20), and the hanging
    one's attempts are cut after their time-out and retried later."""
    from bounced.store import open_store

    settings = make_settings(tmp_path, store_url)
    store = open_store(store_url)
    await store.open()
    try:
        await seed_events(store, 30)
        fast = LogAction(ActionSettings(name="fast", type="log",
                                        events=("bounce.unrecognised",)))
        dispatcher = Dispatcher(store, dataclasses.replace(settings.outbox, poll_interval=0.1),
                                [Hanging(), fast], utcnow)
        task = asyncio.create_task(dispatcher.run())
        try:
            started = time.monotonic()
            while time.monotonic() - started < 10:
                states = [s for _, s in await store.events(100)]
                if sum(s.get("fast") == "delivered" for s in states) == 30:
                    break
                await asyncio.sleep(0.05)
            took = time.monotonic() - started
            assert sum(s.get("fast") == "delivered" for s in states) == 30
            assert took < 3, took
            assert all(s.get("hanging") == "pending" for s in states)
            await asyncio.sleep(1.5)  # past the hanging one's time limit (1 s + margin)
        finally:
            dispatcher.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        outbox = await store.outbox_counts()
        assert outbox["pending"] == 30 and outbox["delivered"] == 30
    finally:
        await store.close()


async def seed_events(store: Any, n: int) -> None:
    """``n`` bounce.unrecognised events in the outbox, written as the worker writes them."""
    from bounced.model import NewMessage, TokenFields
    from bounced.policy import core

    now = utcnow()
    token = TokenFields(subject="s", stream=None, key_id="k1", day=now.date(),
                        fingerprint="fp", token_id="s.t")
    await store.add_messages([NewMessage(now, "test", "", "rcpt", token, b"x")] * n)
    jobs = await store.claim("seed", now, dt.timedelta(minutes=5), n)
    outcomes = [(job, core.Outcome(kind="unknown", classification={}, incidents=()), None)
                for job in jobs]
    await core.finish_batch(store, outcomes, "seed", now)  # type: ignore[arg-type]


# --- item 9: terminal control characters from reports are printed escaped -----------------


async def test_status_and_show_escape_control_characters(tmp_path: Path) -> None:
    """A diagnostic carrying terminal escape sequences is printed escaped by `status` and
    `show` (tables and plain lines; `--json` stays JSON); a long one is cut with an
    ellipsis, and a second bounce of the same sent message says why it does not count."""
    settings = make_settings(tmp_path)
    hostile = "550 5.1.1 user unknown \x1b]0;pwned\x07\x1b[2J \x9b31m" + " padding" * 12
    async with running_daemon(settings) as d:
        rp = d.signer.return_path("77", "bob@example.net", day=days_ago(3))
        for _ in range(2):
            body = dsn("bob@example.net", return_path=rp, diagnostic=hostile)
            assert (await asend(d.port, [rp], body))["DATA"][0] == 250
        for _ in range(200):
            if (await d.store.queue_counts())["done"] == 2:
                break
            await asyncio.sleep(0.05)
    env = base_env(tmp_path)
    status = run(env, "status", "--subject", "77").stdout
    show = run(env, "show", "1").stdout
    for out in (status, show):
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", out), out
        assert "\\x1b]0;pwned\\x07" in out
    assert "user unknown" in status and " padd..." in status
    assert "yes" in status and "no (repeat)" in status
    assert "same sent message" in status
    data = json.loads(run(env, "status", "--subject", "77", "--json").stdout)
    assert "\x1b" in data["addresses"][0]["incidents"][0]["diagnostic"]


# --- worker: a hard time budget per classification ------------------------------------------


SLOW_CLASSIFIER = '''\
import re, time
import bounced.queue.worker as worker

real = worker.classify


def slow(raw):
    """Slow by construction for a marked message: a pattern that backtracks exponentially,
    again and again (bounded, so that a worker without a budget still ends one day)."""
    if b"X-Test-Slow: yes" in raw:
        started = time.monotonic()
        while time.monotonic() - started < 60:
            re.fullmatch(r"(x+x+)+y", "x" * 26)
    return real(raw)


worker.classify = slow
'''


def slow_message(return_path: str) -> bytes:
    return b"X-Test-Slow: yes\r\n" + dsn("slow@example.net", return_path=return_path)


def test_worker_process_quarantines_a_message_over_its_budget(tmp_path: Path) -> None:
    """`bounced serve` (worker in its own process): a message whose classification runs past
    [worker] classify_budget_seconds is quarantined with that reason after one attempt, the
    regex stopped in the middle, and the other messages are processed meanwhile."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_CLASSIFIER)  # loaded by every process
    env = base_env(tmp_path, BOUNCED_SMTP_LISTEN=f"127.0.0.1:{free_port()}",
                   BOUNCED_LOG_FORMAT="json", BOUNCED_WORKER_CLASSIFY_BUDGET_SECONDS="1",
                   PYTHONPATH=str(site))
    daemon = DaemonProcess(env, tmp_path / "daemon.log")
    daemon.start()
    try:
        slow = sign(env, "1", "slow@example.net", 1)
        assert smtp_send(daemon.port, [slow], slow_message(slow))["DATA"][0] == 250
        for n in range(3):
            rp = sign(env, f"ok{n}", "ok@example.net", 1)
            assert smtp_send(daemon.port, [rp], dsn("ok@example.net", return_path=rp))[
                "DATA"][0] == 250

        def settled() -> Any:
            queue = json.loads(run(env, "queue", "--json").stdout)
            return queue if queue["counts"]["done"] == 3 and \
                queue["counts"]["quarantined"] == 1 else None

        queue = wait_for(settled, "the queue to settle", within=20)
    finally:
        daemon.stop()
    [job] = queue["latest"]["quarantined"]
    assert job["subject"] == "1" and job["attempts"] == 1
    assert job["error"] == "classification exceeded 1 s"


async def test_in_process_worker_quarantines_a_message_over_its_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the worker in the daemon's process ([worker] own_process = false) the budget
    holds too: the slow message is quarantined, the next one processed."""
    namespace: dict[str, Any] = {}
    exec(SLOW_CLASSIFIER, namespace)
    monkeypatch.setattr("bounced.queue.worker.classify", namespace["slow"])
    settings = make_settings(tmp_path, BOUNCED_WORKER_CLASSIFY_BUDGET_SECONDS="0.5")
    async with running_daemon(settings) as d:
        slow = d.signer.return_path("1", "slow@example.net", day=days_ago(1))
        assert (await asend(d.port, [slow], slow_message(slow)))["DATA"][0] == 250
        ok = d.signer.return_path("2", "ok@example.net", day=days_ago(1))
        assert (await asend(d.port, [ok], dsn("ok@example.net", return_path=ok)))[
            "DATA"][0] == 250
        for _ in range(200):
            counts = await d.store.queue_counts()
            if counts["done"] + counts["quarantined"] == 2:
                break
            await asyncio.sleep(0.05)
        [quarantined] = await d.store.messages("quarantined")
    assert counts["done"] == 1 and quarantined.subject == "1"
    assert quarantined.last_error == "classification exceeded 0.5 s"
