"""The whole loop with a real MediaWiki: a wiki on SQLite (served by ``php -S`` on 127.0.0.1)
with the Bounced extension sends its users' mail through a private Postfix to a scripted
remote; the remote's refusals come back as Postfix's DSNs to a real ``bounced serve``, whose
signed webhook unconfirms the dead address in the wiki's database; the user confirms again
and the wiki tells bounced. Also: the receiver's refusals, and the maintenance script of the
``command`` action under the sandbox setting it needs.

Skipped with the reason where PHP, MediaWiki, faketime or Postfix is missing
(``.ci/install-mediawiki`` and ``.ci/install-mta`` install them).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bounced.config import ActionSettings, load_settings
from bounced.verp import Keyring, Verifier, fingerprint

from .helpers import (
    BOUNCED,
    DOMAIN,
    KEY_LINE,
    ROOT,
    asend,
    base_env,
    days_ago,
    dsn,
    make_settings,
    running_daemon,
)
from .mta import postfix
from .mta.net import LOOPBACK, free_port, port_open, wait_until
from .mta.postfix import PostfixInstance
from .mta.remote import RemoteServer

MEDIAWIKI = Path("/usr/share/mediawiki")
EXTENSION = ROOT / "integrations" / "mediawiki"
DROP_IN = EXTENSION / "systemd" / "bounced-mediawiki.conf"
REMOTE = "remote.test"
SECRET = "whsec_" + base64.b64encode(b"mediawiki-e2e-webhook-secret-32b").decode()
HTTP_TOKEN = "mediawiki-e2e-http-token-0123456789"
ADMIN_PASSWORD = "Admin-password-for-e2e-1"


def wiki_missing() -> str | None:
    """Why a test wiki cannot run here, or None."""
    if shutil.which("php") is None:
        return "php is not installed (.ci/install-mediawiki installs it)"
    if not (MEDIAWIKI / "maintenance" / "install.php").exists():
        return f"MediaWiki is not installed in {MEDIAWIKI} (.ci/install-mediawiki installs it)"
    return None


def loop_missing() -> str | None:
    """Why the whole loop cannot run here, or None."""
    if shutil.which("faketime") is None:
        return "faketime is not installed (.ci/install-mediawiki installs it)"
    return wiki_missing() or postfix.missing_reason()



# -- the wiki ---------------------------------------------------------------------------------

LOCAL_SETTINGS = """
# --- the test's additions -------------------------------------------------------------
$wgPasswordSender = 'wiki@wiki.test';
$wgSMTP = [ 'host' => '127.0.0.1', 'port' => (int)getenv( 'E2E_SMTP_PORT' ),
    'IDHost' => 'wiki.test', 'localhost' => 'wiki.test', 'auth' => false ];
$wgDebugLogGroups['Bounced'] = '{log}';
wfLoadExtension( 'Bounced', '{extension}/extension.json' );
$wgBouncedKeyFile = '{keys}';
$wgBouncedDomain = '{domain}';
$wgBouncedStream = 'wiki';
$wgBouncedUrl = getenv( 'E2E_BOUNCED_URL' ) ?: null;
$wgBouncedHttpToken = '{token}';
$wgBouncedWebhookSecret = '{secret}';
"""


@dataclass(frozen=True)
class WikiUser:
    name: str
    email: str
    id: int

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.email)


class Wiki:
    """A MediaWiki on SQLite in ``root`` (install.php), served by ``php -S`` on 127.0.0.1;
    MW_CONFIG_FILE points every PHP process at it, /etc/mediawiki is never touched."""

    def __init__(self, root: Path, keys: Path) -> None:
        self.root = root
        self.keys = keys
        self.port = 0
        self.log = root / "bounced-extension.log"
        self.db = root / "data" / "my_wiki.sqlite"
        self.settings = root / "LocalSettings.php"
        self.env: dict[str, str] = {}
        self.server: subprocess.Popen[bytes] | None = None

    @property
    def events_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/rest.php/bounced/v1/events"

    def php(self, *argv: str, stdin: str | None = None, env: Mapping[str, str] | None = None,
            faketime: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A PHP program in MediaWiki's directory, for this wiki (``faketime``: a clock offset
        such as ``-9d``)."""
        cmd = ["php", *argv]
        if faketime is not None:
            cmd = ["faketime", "-f", faketime, *cmd]
        full_env = {**os.environ, "MW_CONFIG_FILE": str(self.settings),
                    "FAKETIME_DONT_FAKE_MONOTONIC": "1", **self.env, **(env or {})}
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, cwd=MEDIAWIKI,
                              env=full_env, timeout=timeout, check=False)

    def eval(self, code: str, **kw: Any) -> str:
        """Run PHP code in the wiki (maintenance/eval.php); its output. Fails unless the code
        got to its end ('DONE') without a PHP warning."""
        done = self.php("maintenance/eval.php", stdin=code + "\necho 'DONE';\n", **kw)
        out = done.stdout + done.stderr
        assert done.returncode == 0 and out.rstrip().endswith("DONE"), out
        assert "Warning" not in out and "Fatal" not in out, out
        return out.rstrip().removesuffix("DONE")

    def install(self) -> None:
        self.port = free_port()
        done = self.php("maintenance/install.php", "--dbtype", "sqlite", "--dbpath",
                        str(self.db.parent), "--confpath", str(self.root), "--server",
                        f"http://{LOOPBACK}:{self.port}", "--scriptpath", "", "--lang", "en",
                        "--pass", ADMIN_PASSWORD, "E2E Wiki", "Admin")
        assert done.returncode == 0, done.stdout + done.stderr
        self.settings.write_text(self.settings.read_text() + LOCAL_SETTINGS.format(
            log=self.log, extension=EXTENSION, keys=self.keys, domain=DOMAIN,
            token=HTTP_TOKEN, secret=SECRET))

    def start(self) -> None:
        env = {**os.environ, "MW_CONFIG_FILE": str(self.settings)}
        self.server = subprocess.Popen(
            ["php", "-S", f"{LOOPBACK}:{self.port}", "-t", str(MEDIAWIKI)], env=env,
            stdout=subprocess.DEVNULL, stderr=(self.root / "php-server.log").open("wb"),
            start_new_session=True)
        wait_until(lambda: port_open(self.port) or self.server is None
                   or self.server.poll() is not None, 20, "php -S listening")
        assert self.server.poll() is None, (self.root / "php-server.log").read_text()

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(5)
        self.server = None

    def add_users(self, *people: tuple[str, str]) -> dict[str, WikiUser]:
        """Accounts whose address was confirmed 30 days ago, by name."""
        code = "".join(
            f"$u = User::createNew( {json.dumps(name)}, [ 'email' => {json.dumps(email)} ] );\n"
            "$u->setEmailAuthenticationTimestamp( wfTimestamp( TS_MW, time() - 30 * 86400 ) );\n"
            "$u->saveSettings();\n"
            "echo $u->getId(), \"\\n\";\n" for name, email in people)
        ids = [int(x) for x in self.eval(code).split()]
        return {name: WikiUser(name, email, i) for (name, email), i in zip(people, ids,
                                                                            strict=True)}

    def send_mail(self, users: list[WikiUser], days_ago: int) -> None:
        """The wiki mails each user (User::sendMail, as notifications do), its clock set
        ``days_ago`` days back."""
        code = "".join(
            f"$s = User::newFromName( {json.dumps(u.name)} )->sendMail( 'Your watchlist', "
            "'A page on your watchlist was changed; this is the wiki telling you.' );\n"
            "if ( !$s->isOK() ) { echo 'SEND FAILED ', $s->getWikiText(); exit( 1 ); }\n"
            for u in users)
        self.eval(code, faketime=f"-{days_ago}d" if days_ago else None)

    def confirm_again(self, user: WikiUser, **kw: Any) -> None:
        """What Special:ConfirmEmail does with a valid code: confirmEmail(), saveSettings()."""
        self.eval(f"$u = User::newFromId( {user.id} )->getInstanceForUpdate();\n"
                  "$u->confirmEmail(); $u->saveSettings();\n", **kw)

    def confirmed_at(self, user: WikiUser) -> str | None:
        """user_email_authenticated in the wiki's database (None: unconfirmed)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as db:
            [(value,)] = db.execute("SELECT user_email_authenticated FROM user WHERE user_id = ?",
                                    (user.id,)).fetchall()
        return value.decode() if isinstance(value, bytes) else value

    def post_event(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, Any]:
        """POST to the extension's REST route; (status, JSON answer)."""
        request = urllib.request.Request(self.events_url, data=body, method="POST", headers={
            "content-type": "application/json", **headers})
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


def signed(event_id: str, body: bytes, secret: str = SECRET,
           timestamp: int | None = None) -> dict[str, str]:
    """Standard Webhooks headers, as bounced signs a delivery."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{event_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": event_id, "webhook-timestamp": stamp,
            "webhook-signature": "v1," + base64.b64encode(digest).decode()}


def event_body(payload: Mapping[str, Any]) -> bytes:
    """The body bounced sends for an event (keys sorted, no whitespace)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


@pytest.fixture(name="wiki", scope="module")
def wiki_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wiki]:
    """One wiki for the module (installing takes a second or two), served while it runs."""
    reason = wiki_missing()
    if reason is not None:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("wiki")
    keys = root / "verp-keys"
    keys.write_text(KEY_LINE + "\n")
    wiki = Wiki(root, keys)
    wiki.install()
    wiki.start()
    try:
        yield wiki
    finally:
        wiki.stop()


# -- bounced ----------------------------------------------------------------------------------

class BouncedServe:
    """``bounced serve`` as a process, with a webhook action to the wiki."""

    def __init__(self, tmp: Path, webhook_url: str) -> None:
        self.smtp_port, self.http_port = free_port(), free_port()
        self.env = {**os.environ, **base_env(
            tmp, BOUNCED_SMTP_LISTEN=f"{LOOPBACK}:{self.smtp_port}",
            BOUNCED_HTTP_LISTEN=f"{LOOPBACK}:{self.http_port}", BOUNCED_HTTP_TOKEN=HTTP_TOKEN,
            BOUNCED_ACTION_WIKI_SECRET=SECRET, BOUNCED_OUTBOX_RETRY_BASE_SECONDS="0.5",
            BOUNCED_LOG_FORMAT="json")}
        self.config = tmp / "bounced.toml"
        self.config.write_text(f'[actions.wiki]\ntype = "webhook"\nurl = "{webhook_url}"\n'
                               "timeout = 15\n")
        self.log = tmp / "bounced.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bounced.cli", "serve", "--config", str(self.config)],
            env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log.open("wb"))

        def ready() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        wait_until(ready, 30, "bounced serve healthy", detail=self.log.read_text)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def address(self, user: WikiUser) -> dict[str, Any] | None:
        """bounced's record of the user's address (state, incidents, decisions), or None."""
        found = [a for a in self.get(f"/v1/addresses?subject={user.id}")["addresses"]
                 if a["fingerprint"] == user.fingerprint]
        return found[0] if found else None

    def state(self, user: WikiUser) -> str:
        """The address's state in bounced ('' before any bounce)."""
        record = self.address(user)
        return str(record["state"]) if record else ""

    def incidents(self, user: WikiUser) -> int:
        record = self.address(user)
        return len(record["incidents"]) if record else 0

    def events(self) -> list[dict[str, Any]]:
        return list(self.get("/v1/events?limit=100"))


# -- the loop ---------------------------------------------------------------------------------

def wait_incidents(bounced: BouncedServe, mta: PostfixInstance,
                   expected: Mapping[WikiUser, int]) -> None:
    """Wait (bounded) until bounced has recorded each user's bounces and Postfix is idle."""
    def done() -> bool:
        return all(bounced.incidents(u) >= n for u, n in expected.items())

    wait_until(done, 30, f"bounced to record {[(u.name, n) for u, n in expected.items()]}",
               interval=0.2, detail=lambda: mta.log_tail() + "\n" + bounced.log.read_text()[-2000:])
    mta.wait_queue_empty(20)
    assert {u.name: bounced.incidents(u) for u in expected} == \
        {u.name: n for u, n in expected.items()}


def wait_delivered(bounced: BouncedServe, event_type: str, subject: int) -> dict[str, Any]:
    """The event of that type for the subject, once bounced delivered it to the wiki."""
    def delivered() -> dict[str, Any] | None:
        for event in bounced.events():
            if event["type"] == event_type and event["subject"] == str(subject):
                return event if event["deliveries"] == {"wiki": "delivered"} else None
        return None

    return wait_until(delivered, 30, f"{event_type} for {subject} delivered to the wiki",
                      interval=0.2, detail=lambda: json.dumps(bounced.events())[-2000:])


@pytest.mark.postfix
@pytest.mark.skipif(loop_missing() is not None, reason=str(loop_missing()))
def test_the_wiki_unconfirms_only_the_dead_address_and_confirms_it_again(
    wiki: Wiki, tmp_path: Path,
) -> None:
    """9, 4, 0 days of 550 5.1.1: unconfirmed in the wiki after the third bounce, not before;
    recent bounces, a 5.7.1 block and delivered mail change nothing; a replayed event
    changes nothing; confirming again clears bounced's history."""
    users = wiki.add_users(("Dead", f"unknown1@{REMOTE}"), ("Recent", f"unknown2@{REMOTE}"),
                           ("Blocked", f"blocked1@{REMOTE}"), ("Alice", f"alice@{REMOTE}"))
    dead, recent, blocked, alice = users.values()
    bounced = BouncedServe(tmp_path, wiki.events_url)
    bounced.start()
    try:
        with RemoteServer() as remote, PostfixInstance(
                bounce_port=bounced.smtp_port, remote_port=remote.port, bounce_domain=DOMAIN,
                remote_domain=REMOTE, log_copy=tmp_path / "postfix.log") as mta:
            wiki.env = {"E2E_SMTP_PORT": str(mta.port), "E2E_BOUNCED_URL": bounced.url}
            run_the_loop(wiki, bounced, mta, remote, dead, recent, blocked, alice)
    finally:
        wiki.env = {}
        bounced.stop()


def run_the_loop(wiki: Wiki, bounced: BouncedServe, mta: PostfixInstance, remote: RemoteServer,
                 dead: WikiUser, recent: WikiUser, blocked: WikiUser, alice: WikiUser) -> None:
    everyone = (dead, recent, blocked, alice)
    wiki.send_mail([dead, blocked, alice], days_ago=9)
    wiki.send_mail([dead, blocked], days_ago=4)
    wiki.send_mail([recent], days_ago=2)
    wiki.send_mail([recent], days_ago=1)
    wait_incidents(bounced, mta, {dead: 2, blocked: 2, recent: 2, alice: 0})
    # Two bounces, a span of 5 days: the rule has not fired, the wiki still trusts everyone.
    assert [wiki.confirmed_at(u) is not None for u in everyone] == [True] * 4
    assert bounced.state(dead) == "confirmed"

    wiki.send_mail([dead, recent, blocked, alice], days_ago=0)
    wait_incidents(bounced, mta, {dead: 3, blocked: 3, recent: 3, alice: 0})
    unconfirmed = wait_delivered(bounced, "address.unconfirmed", dead.id)
    assert (unconfirmed["subject"], unconfirmed["fingerprint"]) == (str(dead.id),
                                                                     dead.fingerprint)
    assert [wiki.confirmed_at(u) is not None for u in everyone] == [False, True, True, True]
    assert [bounced.state(u) for u in everyone] == ["unconfirmed", "confirmed", "confirmed", ""]
    assert "unconfirmed the address of user" in wiki.log.read_text()

    # What reached the remote: Alice's two messages, each with a return path signed for her.
    verifier = Verifier(Keyring.from_text(KEY_LINE), domain=DOMAIN)
    delivered = remote.messages
    assert [m.rcpt_tos for m in delivered] == [(alice.email,)] * 2
    for message in delivered:
        token = verifier.verify(message.mail_from)
        assert (token.subject, token.stream, token.fingerprint) == (str(alice.id), "wiki",
                                                                     alice.fingerprint)
    today = dt.datetime.now(dt.UTC).date()
    assert sorted(verifier.verify(m.mail_from).age_days(today) for m in delivered) == [0, 9]

    # bounced's event delivered again (a retry, or a replay): nothing changes.
    payload = {k: v for k, v in unconfirmed.items() if k != "deliveries"}
    body = event_body(payload)
    assert wiki.post_event(body, signed(payload["id"], body)) == (
        200, {"outcome": "unchanged", "detail": f"user {dead.id} is already unconfirmed"})
    assert wiki.confirmed_at(dead) is None

    # The user confirms the address again: bounced hears of it and forgets the old bounces.
    wiki.confirm_again(dead)
    assert wiki.confirmed_at(dead) is not None
    record = bounced.address(dead)
    assert record is not None and record["state"] == "confirmed" and record["reconfirmed_at"]
    assert [d["action"] for d in record["decisions"]] == ["reconfirm", "unconfirm"]
    assert f"reconfirmed user {dead.id}" in wiki.log.read_text()
    wait_delivered(bounced, "address.reconfirmed", dead.id)  # the wiki answers 2xx, ignores it
    assert wiki.post_event(body, signed(payload["id"], body)) == (
        200, {"outcome": "ignored",
              "detail": f"user {dead.id} confirmed the address again after the event"})
    assert wiki.confirmed_at(dead) is not None

    # One more bounce counts alone now: the address stays confirmed in bounced and the wiki.
    wiki.send_mail([dead], days_ago=0)
    wait_incidents(bounced, mta, {dead: 4})
    assert bounced.state(dead) == "confirmed"
    assert [e["type"] for e in bounced.events() if e["subject"] == str(dead.id)] == [
        "address.reconfirmed", "address.unconfirmed"]
    assert wiki.confirmed_at(dead) is not None


# -- the receiver on its own ------------------------------------------------------------------

def unconfirm_event(user: WikiUser, *, event_id: str, address: str | None = None,
                    occurred_at: str | None = None, **changes: Any) -> dict[str, Any]:
    """An address.unconfirmed event as bounced writes it, for ``user`` (or another address)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())
    return {"type": "address.unconfirmed", "id": event_id, "subject": str(user.id),
            "fingerprint": fingerprint(address or user.email), "address": None,
            "rule": "3 counting bounces (at least 3) within 60 days", "evidence": [],
            "occurred_at": occurred_at or now, **changes}


def test_the_receiver_refuses_what_it_cannot_verify(wiki: Wiki) -> None:
    """Another secret, an old or future timestamp, a changed body, missing headers: 401;
    a verified body that is not the event named in the headers: 400. Nothing changes."""
    [user] = wiki.add_users(("Mallory-target", "target@example.net")).values()
    event = unconfirm_event(user, event_id="evt_" + "1" * 32)
    body = event_body(event)
    other = "whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode()
    now = int(time.time())
    refused = [
        wiki.post_event(body, signed(event["id"], body, secret=other)),
        wiki.post_event(body, signed(event["id"], body, timestamp=now - 301)),
        # (a minute past the tolerance: the wiki reads its clock a moment after `now`)
        wiki.post_event(body, signed(event["id"], body, timestamp=now + 360)),
        wiki.post_event(body.replace(b"address.unconfirmed", b"address.unconfirmeD"),
                        signed(event["id"], body)),
        wiki.post_event(body, {}),
    ]
    assert [status for status, _ in refused] == [401] * 5, refused
    assert refused[1][1] == {"error": "webhook-timestamp is outside the tolerance (300 s)"}
    not_that_event = event_body({**event, "id": "evt_" + "2" * 32})
    assert wiki.post_event(not_that_event, signed(event["id"], not_that_event))[0] == 400
    assert wiki.post_event(b"[1, 2", signed(event["id"], b"[1, 2"))[0] == 400
    no_fingerprint = event_body({**event, "fingerprint": None})
    assert wiki.post_event(no_fingerprint, signed(event["id"], no_fingerprint)) == (
        400, {"error": "address.unconfirmed without a valid fingerprint"})
    assert wiki.confirmed_at(user) is not None
    assert wiki.post_event(body, signed(event["id"], body))[1] == {
        "outcome": "unconfirmed", "detail": f"user {user.id}: address unconfirmed"}
    assert wiki.confirmed_at(user) is None


def test_the_receiver_ignores_events_that_no_longer_apply(wiki: Wiki) -> None:
    """Bounces of an address the user has since replaced, a confirmation newer than the
    event, unknown users, foreign subjects and other event types: 200, nothing changes."""
    users = wiki.add_users(("Mover", "new-address@example.net"),
                           ("Reconfirmer", "reconfirmer@example.net"))
    mover, reconfirmer = users.values()
    wiki.eval(f"$u = User::newFromId( {reconfirmer.id} )->getInstanceForUpdate();\n"
              "$u->setEmailAuthenticationTimestamp( wfTimestampNow() ); $u->saveSettings();\n")
    hour_ago = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 3600))
    cases = [
        (unconfirm_event(mover, event_id="evt_a", address="old-address@example.net"),
         f"user {mover.id} has another address now"),
        (unconfirm_event(reconfirmer, event_id="evt_b", occurred_at=hour_ago),
         f"user {reconfirmer.id} confirmed the address again after the event"),
        (unconfirm_event(mover, event_id="evt_c", subject="999999"), "no user 999999"),
        (unconfirm_event(mover, event_id="evt_d", subject="User_42"),
         'subject "User_42" is not a user id'),
        ({**unconfirm_event(mover, event_id="evt_e"), "type": "complaint.received"},
         'event type "complaint.received"'),
    ]
    for event, why in cases:
        body = event_body(event)
        assert wiki.post_event(body, signed(event["id"], body)) == (
            200, {"outcome": "ignored", "detail": why})
    assert wiki.confirmed_at(mover) is not None and wiki.confirmed_at(reconfirmer) is not None


def test_a_failed_reconfirm_call_does_not_break_the_confirmation(wiki: Wiki) -> None:
    """bounced unreachable when a user confirms again: the wiki confirms, and logs why
    bounced was not told."""
    [user] = wiki.add_users(("Offline", "offline@example.net")).values()
    wiki.eval(f"$u = User::newFromId( {user.id} )->getInstanceForUpdate();\n"
              "$u->setEmailAuthenticationTimestamp( null ); $u->saveSettings();\n")
    closed = free_port()
    wiki.confirm_again(user, env={"E2E_BOUNCED_URL": f"http://{LOOPBACK}:{closed}"})
    assert wiki.confirmed_at(user) is not None
    log = wiki.log.read_text()
    assert (f"reconfirm of user {user.id} failed (http://{LOOPBACK}:{closed}/v1/subjects/"
            f"{user.id}/reconfirm)") in log


# -- the command action -----------------------------------------------------------------------

SCRIPT = EXTENSION / "maintenance" / "bouncedEvent.php"
# Run a program with writable-and-executable memory refused, as the unit's
# MemoryDenyWriteExecute=yes does (prctl PR_SET_MDWE, Linux 6.3 and later).
MDWE = ("import ctypes, os, sys\n"
        "if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:\n"
        "    sys.exit('PR_SET_MDWE: ' + os.strerror(ctypes.get_errno()))\n"
        "os.execvp(sys.argv[1], sys.argv[1:])\n")


def mdwe_supported() -> bool:
    done = subprocess.run([sys.executable, "-c", MDWE, "true"], capture_output=True,
                          check=False, timeout=30)
    return done.returncode == 0


def command_env(wiki: Wiki) -> dict[str, str]:
    return {"MW_CONFIG_FILE": str(wiki.settings), "MW_INSTALL_PATH": str(MEDIAWIKI)}


def test_the_maintenance_script_applies_an_event_from_stdin(wiki: Wiki) -> None:
    """bouncedEvent.php as bounced's command action runs it (JSON on stdin, the event id in
    the environment): exit 0 and one line; again: unchanged; not an event: exit 65."""
    [user] = wiki.add_users(("Piped", "piped@example.net")).values()
    event = unconfirm_event(user, event_id="evt_" + "3" * 32)
    env = {**command_env(wiki), "BOUNCED_EVENT_ID": event["id"],
           "BOUNCED_EVENT_TYPE": event["type"]}
    runs = [wiki.php("-d", "pcre.jit=0", str(SCRIPT), stdin=event_body(event).decode(), env=env)
            for _ in range(2)]
    assert [(r.returncode, r.stdout, r.stderr) for r in runs] == [
        (0, f"unconfirmed: user {user.id}: address unconfirmed\n", ""),
        (0, f"unchanged: user {user.id} is already unconfirmed\n", "")]
    assert wiki.confirmed_at(user) is None
    bad = wiki.php(str(SCRIPT), stdin="{not json", env=env)
    assert (bad.returncode, bad.stderr.strip()) == (65, "bouncedEvent: the input is not a "
                                                        "JSON object")
    other = wiki.php(str(SCRIPT), stdin=event_body({**event, "id": "evt_x"}).decode(), env=env)
    assert other.returncode == 65 and "BOUNCED_EVENT_ID" in other.stderr


def test_php_under_memory_deny_write_execute_needs_pcre_jit_off(wiki: Wiki) -> None:
    """Under the unit's MemoryDenyWriteExecute=yes PHP warns about its PCRE JIT on every run;
    the drop-in's command line (-d pcre.jit=0) runs the script cleanly."""
    if not mdwe_supported():
        pytest.skip("prctl(PR_SET_MDWE), to refuse W+X memory as systemd does, needs Linux 6.3+")
    [user] = wiki.add_users(("Sandboxed", "sandboxed@example.net")).values()
    body = event_body({**unconfirm_event(user, event_id="evt_s"), "type": "breaker.tripped"})
    env = command_env(wiki)
    with_jit = subprocess.run([sys.executable, "-c", MDWE, "php", str(SCRIPT)], input=body,
                              capture_output=True, env={**os.environ, **env}, timeout=60,
                              check=False)
    assert b"Allocation of JIT memory failed" in with_jit.stderr
    without = subprocess.run([sys.executable, "-c", MDWE, "php", "-d", "pcre.jit=0", str(SCRIPT)],
                             input=body, capture_output=True, env={**os.environ, **env},
                             timeout=60, check=False)
    assert (without.returncode, without.stderr) == (0, b""), without.stderr
    assert without.stdout == b'ignored: event type "breaker.tripped"\n'
    command = (DROP_IN.read_text().split("command = ", 1)[1].split("\n#     events")[0])
    assert '"-d", "pcre.jit=0"' in command


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_the_drop_in_verifies_with_the_shipped_unit(tmp_path: Path) -> None:
    """The unit plus the drop-in's settings passes systemd-analyze verify; the sandbox's
    settings the drop-in discusses stay on."""
    unit = (ROOT / "systemd" / "bounced.service").read_text()
    unit = unit.replace("/usr/local/bin/bounced", BOUNCED)
    settings = [line for line in DROP_IN.read_text().splitlines()
                if line and not line.startswith(("#", "["))]
    assert settings == ["SupplementaryGroups=www-data"]
    merged = unit.replace("[Install]", "\n".join(settings) + "\n\n[Install]")
    path = tmp_path / "bounced.service"
    path.write_text(merged)
    proc = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if "bounced.service" in line]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr
    for kept in ("DynamicUser=yes", "MemoryDenyWriteExecute=yes", "ProtectSystem=strict"):
        assert kept in merged


async def test_bounced_runs_the_maintenance_script_as_its_command_action(
    wiki: Wiki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bounced with the drop-in's command action (under MemoryDenyWriteExecute where the
    kernel can): three counting bounces over 9 days unconfirm the user in the wiki."""
    [user] = wiki.add_users(("Commanded", "commanded@example.net")).values()
    for name, value in command_env(wiki).items():
        monkeypatch.setenv(name, value)  # passed on to the command by the action's pass_env
    command = ["php", "-d", "pcre.jit=0", str(SCRIPT)]
    if mdwe_supported():
        command = [sys.executable, "-c", MDWE, *command]
    action = ActionSettings(name="wiki", type="command", command=tuple(command), timeout=30,
                            events=("address.unconfirmed",),
                            pass_env=tuple(command_env(wiki)))
    settings = dataclasses.replace(make_settings(tmp_path), actions=(action,))
    async with running_daemon(settings) as d:
        for age in (9, 4, 0):
            rp = d.signer.return_path(str(user.id), user.email, day=days_ago(age))
            reply = await asend(d.port, [rp], dsn(user.email, return_path=rp))
            assert reply["DATA"][0] == 250, reply
        deadline = time.monotonic() + 30
        while (states := await d.store.events(10)) == [] or states[0][1] != {
                "wiki": "delivered"}:
            assert time.monotonic() < deadline, states
            await asyncio.sleep(0.1)
        [(event, _)] = states
        assert (event.type, event.payload["subject"]) == ("address.unconfirmed", str(user.id))
    assert wiki.confirmed_at(user) is None


# -- the README ---------------------------------------------------------------------------------

def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("\n## MediaWiki\n", 1)[1].split("\n## ", 1)[0]


def test_readme_names_every_setting_and_its_bounced_config_loads(tmp_path: Path) -> None:
    """The README's LocalSettings.php lines are the extension's settings, all of them, and its
    bounced configuration examples load."""
    section = readme_section()
    [php] = re.findall(r"```php\n(.*?)```", section, flags=re.S)
    manifest = json.loads((EXTENSION / "extension.json").read_text())
    assert sorted(set(re.findall(r"\$wg(Bounced\w+)", php))) == sorted(manifest["config"])
    assert "wfLoadExtension( 'Bounced' );" in php and manifest["name"] == "Bounced"
    blocks = re.findall(r"```toml\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2
    for i, block in enumerate(blocks):
        config = tmp_path / f"bounced-{i}.toml"
        config.write_text(block)
        settings = load_settings(config, env=base_env(tmp_path, BOUNCED_ACTION_WIKI_SECRET=SECRET))
        [action] = settings.actions
        assert (action.name, action.events) == ("wiki", ("address.unconfirmed",))
    command = blocks[1].split("command = ", 1)[1].split("\nevents")[0]
    drop_in = DROP_IN.read_text().split("command = ", 1)[1].split("\n#     events")[0]
    assert json.loads(command) == json.loads(drop_in.replace("#", ""))
