"""An incident, decision, event or line of output names an address only when it is the one
the token was signed for: a forged report cannot make bounced name or unconfirm someone else."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from pathlib import Path

import aiohttp

from bounced.classify.model import RecipientReport, Report
from bounced.model import Job, TokenFields
from bounced.queue.worker import incidents_for
from bounced.verp import fingerprint

from .cmdline import ATTACKER, VICTIM, capture_script, captured, run, sign, wait_for
from .helpers import (
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

# --- an event names an address only when it is the one the token was signed for ----


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


# --- a report that says the token's address got the message ------------------------------

def _job(address: str) -> Job:
    token = TokenFields(subject="4711", stream=None, key_id="k1", day=days_ago(3),
                        fingerprint=fingerprint(address), token_id="t1")
    return Job(id=1, received_at=dt.datetime.now(dt.UTC), mail_from="", rcpt_to="",
               token=token, raw=None, attempts=0)


def _recipient(address: str, action: str, reason: str, hard: bool) -> RecipientReport:
    return RecipientReport(address=address, action=action, status="5.1.1" if hard else "",
                           reply_code="550" if hard else "", reason=reason, hard=hard,
                           diagnostic="550 5.1.1 User unknown" if hard else "",
                           remote_mta="")


def test_a_report_that_delivered_the_tokens_address_records_nothing_against_it() -> None:
    """A report delivered to the token's address and failed for another (a text notice of
    several recipients) is no failure of this address: nothing is recorded. Failed for
    another alone, it is recorded as the design says, without that address."""
    other = "max.nyx@isp-seventythree.example"
    failed_other = _recipient(other, "failed", "userunknown", True)
    mixed = Report(kind="bounce", recipients=(
        _recipient(ATTACKER, "delivered", "delivered", False), failed_other))
    assert incidents_for(_job(ATTACKER), mixed) == ()
    relayed = Report(kind="bounce", recipients=(
        _recipient(ATTACKER, "relayed", "delivered", False), failed_other))
    assert incidents_for(_job(ATTACKER), relayed) == ()
    [incident] = incidents_for(_job(ATTACKER), Report(kind="bounce", recipients=(failed_other,)))
    assert (incident.address, incident.address_mismatch, incident.hard) == ("", True, True)
    [own] = incidents_for(_job(other), mixed)
    assert (own.address, own.address_mismatch, own.reason) == (other, False, "userunknown")
