"""What each ``bounced`` subcommand does, given settings; printing only, no business rules."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

from bounced.api.views import address_details, address_report, counts_label
from bounced.config import PolicySettings, Settings, redact
from bounced.config.keys import make_verifier
from bounced.exceptions import ConfigError, NotFound
from bounced.exits import EXIT_FAIL, EXIT_OK
from bounced.model import JOB_STATES, Incident, bound_address, utcnow
from bounced.policy import core
from bounced.runtime.support import check_store, preflight
from bounced.store import Store, open_ready_store
from bounced.store.reports import AddressQuery, EventQuery
from bounced.verp import InvalidToken, Signer, generate_key_line

CELL_WIDTH = 60
ELLIPSIS = "..."
# Characters a terminal acts on (C0 and C1 controls, DEL) and the bidirectional overrides that
# reorder what is shown: reports and envelopes are written by strangers, so they are printed
# escaped (\x1b, \u202e), never raw.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# What JSON's own escaping leaves raw (it escapes the C0 controls already; a raw line break in
# its output is its own indentation).
_JSON_CONTROLS = re.compile(r"[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean(value: Any) -> str:
    """A value as text that is safe to print on a terminal: control characters escaped."""
    text = "" if value is None else str(value)
    return _CONTROLS.sub(lambda m: _escape(m.group()), text)


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_json(obj: Any) -> str:
    """Indented JSON, non-ASCII text kept readable, control characters as \\u escapes (JSON's
    own escaping leaves DEL, C1 controls and bidi overrides raw)."""
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=str)
    return _JSON_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _fit(text: str, width: int) -> str:
    """The cell cut to ``width`` characters, with an ellipsis when something was cut."""
    return text if len(text) <= width else text[: width - len(ELLIPSIS)] + ELLIPSIS


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], out: TextIO) -> None:
    """A plain aligned table; cells escaped and cut to CELL_WIDTH (with an ellipsis)."""
    cells = [[_fit(clean(c), CELL_WIDTH) for c in r] for r in [headers, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, r in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


@asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[Store]:
    store = await open_ready_store(settings)
    try:
        yield store
    finally:
        await store.close()


def keygen(out_path: Path, key_id: str | None, force: bool, out: TextIO) -> int:
    try:
        line = generate_key_line(key_id)
    except ValueError as exc:
        raise ConfigError(f"--id: {exc}") from None
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(out_path, flags, 0o600)
    except FileExistsError:
        raise ConfigError(f"{out_path} exists; use --force to overwrite it") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {out_path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as fh:
        fh.write("# bounced signing keys: '<key-id> <secret>' per line; the first signs,\n")
        fh.write("# the others (retired keys) still verify. Keep this file secret.\n")
        fh.write(line + "\n")
    print(f"wrote key {line.split()[0]!r} to {out_path}", file=out)
    return EXIT_OK


async def check_config(settings: Settings, path: str | None, out: TextIO) -> int:
    """Every check `serve` makes before it binds (the same function), the development key
    refused, and the store opened if it exists (never created)."""
    checked = preflight(settings, dev_key="refuse")
    store = await check_store(settings)
    print(f"configuration OK ({path or 'built-in defaults'})", file=out)
    print(f"  smtp listen   {settings.smtp.listen}", file=out)
    print(f"  store         {store}", file=out)
    print(f"  verp domain   {settings.verp.domain} (prefix {settings.verp.prefix!r})", file=out)
    print(f"  signing keys  {checked.key_source}", file=out)
    if settings.http.enabled:
        writes = "on" if checked.http_token else "off (no token)"
        print(f"  http          {settings.http.listen} (write endpoints {writes})", file=out)
    for a in settings.actions:
        print(f"  action        {a.name}: {a.type} {a.url or ' '.join(a.command)}".rstrip(),
              file=out)
    p = settings.policy
    print(f"  policy        {p.min_bounces} bounces, span {p.min_span_days} days, "
          f"window {p.window_days} days", file=out)
    return EXIT_OK


def sign(settings: Settings, subject: str, address: str, stream: str | None,
         at: dt.date | None, out: TextIO) -> int:
    verifier, _ = make_verifier(settings)
    signer = Signer(verifier.keyring, domain=settings.verp.domain, prefix=settings.verp.prefix)
    try:
        print(signer.return_path(subject, address, stream=stream, day=at), file=out)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return EXIT_OK


def verify(settings: Settings, address: str, at: dt.date | None, out: TextIO) -> int:
    verifier, _ = make_verifier(settings)
    today = at or utcnow().date()
    try:
        token = verifier.verify(address, today=today)
    except InvalidToken as exc:
        print(clean(f"invalid ({exc.reason}): {exc}"), file=out)
        return EXIT_FAIL
    for label, value in (
        ("subject", token.subject), ("stream", token.stream or "-"), ("key id", token.key_id),
        ("issued", token.day.isoformat()), ("age", f"{token.age_days(today)} days"),
        ("fingerprint", token.fingerprint),
    ):
        print(f"{label:<12} {clean(value)}", file=out)
    return EXIT_OK


INCIDENT_HEADERS = ["received", "sent", "kind", "status", "reason", "counts", "address",
                    "diagnostic"]
MISMATCH = "(not the token's)"
NOTES = {
    "no (repeat)": "no (repeat): a bounce of the same sent message (same token) counts already; "
                   "one sent message counts once",
    "no (temporary)": "no (temporary): a 4xx notaccept proves nothing about the address",
    MISMATCH: f"{MISMATCH}: the report named an address other than the one the return path "
              "was signed for; it is not recorded (`bounced show ID` shows the report)",
}


def _incident_row(i: Incident, policy: PolicySettings) -> list[Any]:
    return [_when(i.received_at), i.send_day.isoformat(), i.kind, i.status, i.reason,
            counts_label(policy, i), MISMATCH if i.mismatch else i.bound_address,
            " ".join(i.diagnostic.split())]


def _incident_table(incidents: Sequence[Incident], policy: PolicySettings, out: TextIO) -> None:
    """The incidents, then a line for each note their cells refer to (why one does not count,
    why an address is missing)."""
    rows = [_incident_row(i, policy) for i in incidents]
    table(rows, INCIDENT_HEADERS, out)
    used = {cell for row in rows for cell in row[5:7]}
    for key, note in NOTES.items():
        if key in used:
            print(note, file=out)


async def status(settings: Settings, subject: str | None, address: str | None, as_json: bool,
                 out: TextIO) -> int:
    async with _store(settings) as store:
        if as_json:
            print(json.dumps(await address_report(store, subject, address), indent=2), file=out)
            return EXIT_OK
        fp, details = await address_details(store, subject, address)
    if not details:
        who = f"subject {subject}" if subject else f"address {address} (fingerprint {fp})"
        print(clean(f"{who}: no incidents recorded; confirmed"), file=out)
        return EXIT_OK
    for s, incidents, decisions in details:
        address = bound_address(s.address, s.fingerprint) or "?"
        print(clean(f"subject {s.subject}  address {address}  fingerprint {s.fingerprint}"),
              file=out)
        print(f"state   {s.state.upper()}" + (f" since {_when(s.changed_at)}" if s.changed_at
                                              else ""), file=out)
        if s.reconfirmed_at:
            print(f"reconfirmed {_when(s.reconfirmed_at)} (history before it does not count)",
                  file=out)
        for d in decisions[:5]:
            print(clean(f"decision {_when(d.decided_at)} {d.action}: {d.rule}"), file=out)
        print(file=out)
        _incident_table(incidents, settings.policy, out)
        print(file=out)
    return EXIT_OK


async def reconfirm(settings: Settings, subject: str, out: TextIO) -> int:
    async with _store(settings) as store:
        decisions = await core.reconfirm(store, subject, utcnow())
    if not decisions:
        print(f"subject {subject}: nothing recorded, nothing to reconfirm", file=out)
        return EXIT_OK
    for d in decisions:
        print(f"subject {subject} fingerprint {d.fingerprint}: confirmed again", file=out)
    return EXIT_OK


async def migrate(settings: Settings, out: TextIO) -> int:
    store = await open_ready_store(settings, create=True)
    await store.close()
    print(f"schema up to date: {redact(settings.store_url)}", file=out)
    return EXIT_OK


async def queue(settings: Settings, state: str | None, limit: int, as_json: bool,
                out: TextIO) -> int:
    if state is not None and state not in JOB_STATES:
        raise ConfigError(f"--state: one of {', '.join(JOB_STATES)}")
    async with _store(settings) as store:
        counts = await store.queue_counts()
        latest = {s: await store.messages(s, limit) for s in ([state] if state else JOB_STATES)}
    if as_json:
        print(json.dumps({"counts": counts, "latest": {
            s: [{"id": m.id, "received_at": m.received_at.isoformat(), "subject": m.subject,
                 "kind": m.kind, "attempts": m.attempts, "error": m.last_error} for m in ms]
            for s, ms in latest.items()}}, indent=2), file=out)
        return EXIT_OK
    table([[s, counts.get(s, 0)] for s in JOB_STATES], ["state", "jobs"], out)
    for s, ms in latest.items():
        if ms:
            print(f"\nlatest {s}:", file=out)
            table([[m.id, _when(m.received_at), m.subject, m.kind or "", m.attempts,
                    m.last_error or ""] for m in ms],
                  ["id", "received", "subject", "kind", "attempts", "error"], out)
    return EXIT_OK


async def show(settings: Settings, message_id: int, raw_too: bool, out: TextIO) -> int:
    async with _store(settings) as store:
        info, raw, incidents = await store.message(message_id)
    for label, value in (
        ("id", info.id), ("state", info.state), ("received", _when(info.received_at)),
        ("peer", info.peer), ("mail from", info.mail_from or "<>"), ("rcpt to", info.rcpt_to),
        ("subject", info.subject), ("stream", info.stream or "-"), ("key id", info.key_id),
        ("send day", info.send_day.isoformat()), ("fingerprint", info.fingerprint),
        ("size", info.size), ("attempts", info.attempts), ("kind", info.kind or "-"),
        ("error", info.last_error or "-"), ("raw", "kept" if info.has_raw else "purged"),
    ):
        print(f"{label:<12} {clean(value)}", file=out)
    if info.classification:
        print("\nclassification:", file=out)
        print(safe_json(info.classification), file=out)
    print("\nincidents:", file=out)
    _incident_table(incidents, settings.policy, out)
    if raw_too and raw is not None:
        print("\nraw message:", file=out)
        out.flush()
        sys.stdout.buffer.write(raw)
    return EXIT_OK


async def reprocess(settings: Settings, ids: list[int], failed: bool, quarantined: bool,
                    out: TextIO) -> int:
    states = [s for s, on in (("failed", failed), ("quarantined", quarantined)) if on]
    async with _store(settings) as store:
        n = await store.requeue(ids=ids, states=states)
        missed = [why for i in ids if (why := await _not_queued(store, i))] \
            if n < len(ids) else []
    print(f"queued {n} message(s) for processing again", file=out)
    for why in missed:  # "queued 0" alone did not say which id was wrong, nor why
        print(f"bounced reprocess: {why}", file=sys.stderr)
    return EXIT_OK if n or not ids else EXIT_FAIL


async def _not_queued(store: Store, message_id: int) -> str | None:
    """Why ``reprocess`` did not queue a message it was given (None if it did)."""
    try:
        info, _, _ = await store.message(message_id)
    except NotFound:
        return f"no stored message with id {message_id}"
    if not info.has_raw:
        return f"message {message_id}: its raw message was purged; nothing to process again"
    if info.state == "processing":
        return f"message {message_id}: being processed now"
    return None


async def process(settings: Settings, out: TextIO) -> int:
    from bounced.queue.worker import Worker

    async with _store(settings) as store:
        n = await Worker(store, settings, utcnow).drain()
    print(f"processed {n} message(s)", file=out)
    return EXIT_OK


async def purge(settings: Settings, raw_days: int | None, dry_run: bool, out: TextIO) -> int:
    from bounced.runtime.retention import purge_once

    async with _store(settings) as store:
        counts = await purge_once(store, settings, utcnow(), dry_run=dry_run, raw_days=raw_days)
    verb = "would purge" if dry_run else "purged"
    print(f"{verb} {counts['raw_messages']} raw message(s) and {counts['incidents']} "
          "incident(s)", file=out)
    return EXIT_OK


async def breaker(settings: Settings, action: str, domain: str | None, out: TextIO) -> int:
    async with _store(settings) as store:
        if action == "release":
            if not domain:
                raise ConfigError("breaker release: name the DOMAIN")
            if not await core.release_breaker(store, domain.lower(), utcnow()):
                print(f"no tripped breaker for {domain}", file=out)
                return EXIT_FAIL
            print(f"breaker for {domain} released", file=out)
            return EXIT_OK
        rows = await store.breakers()
    if not rows:
        print("no domain breaker has tripped", file=out)
        return EXIT_OK
    table([[r["domain"], r["state"], r["addresses"], _when(r["tripped_at"]),
            _when(r["released_at"])] for r in rows],
          ["domain", "state", "addresses", "tripped", "released"], out)
    return EXIT_OK


async def events(settings: Settings, query: EventQuery, as_json: bool, out: TextIO) -> int:
    from bounced.api.overview import event_json, event_page

    async with _store(settings) as store:
        items, cursor = await event_page(store, query)
    if as_json:
        for event, states in items:
            print(json.dumps(event_json(event, states)), file=out)
    else:
        table([[_when(e.occurred_at), e.type, e.subject or "", e.id,
                ", ".join(f"{a}:{st}" for a, st in sorted(states.items()))
                or _undelivered(settings, e.type)]
               for e, states in items], ["occurred", "type", "subject", "id", "deliveries"], out)
    _more(cursor)
    return EXIT_OK


def _undelivered(settings: Settings, event_type: str) -> str:
    """Why an event has no delivery: no action would take it, or the dispatcher has not
    reached it yet."""
    if not settings.actions:
        return "(no action configured)"
    if not any(event_type in a.events for a in settings.actions):
        return "(no action takes this type)"
    return "(not yet fanned out)"


def _more(cursor: str | None) -> None:
    """Where the next page starts, on stderr (stdout stays one table or JSON per line)."""
    if cursor is not None:
        print(f"more: add --cursor {cursor}", file=sys.stderr)


async def addresses(settings: Settings, query: AddressQuery, as_json: bool, out: TextIO) -> int:
    from bounced.api.overview import address_json, address_page

    async with _store(settings) as store:
        items, cursor = await address_page(store, query)
    if as_json:
        for a in items:
            print(json.dumps(address_json(a)), file=out)
    elif items:
        table([[_when(a.changed_at), a.state, a.subject,
                bound_address(a.address, a.fingerprint) or "", a.incidents,
                a.last_reason or "", _when(a.last_incident_at), a.rule or ""] for a in items],
              ["changed", "state", "subject", "address", "incidents", "last reason",
               "last incident", "rule"], out)
    else:
        print("no address matches", file=out)
    _more(cursor)
    return EXIT_OK


async def stats(settings: Settings, since: dt.datetime | None, as_json: bool,
                out: TextIO) -> int:
    from bounced.api.overview import DEFAULT_SINCE, parse_since, summary

    now = utcnow()
    async with _store(settings) as store:
        s = await summary(store, since or parse_since(DEFAULT_SINCE, now), now)
    if as_json:
        print(json.dumps(s, indent=2), file=out)
        return EXIT_OK
    print(f"since {s['since'][:19].replace('T', ' ')} UTC", file=out)
    kinds = ", ".join(f"{k} {n}" for k, n in s["messages"].items()) or "none"
    print(f"messages   {kinds}", file=out)
    inc = s["incidents"]
    print(f"incidents  {inc['total']} ({inc['counting']} counting against the address)",
          file=out)
    d = s["decisions"]
    print(f"decisions  unconfirmed {d['unconfirm']}, reconfirmed {d['reconfirm']}, "
          f"held by a breaker {d['held']}", file=out)
    q, o = s["queue"], s["outbox"]
    print("queue      " + ", ".join(f"{k} {n}" for k, n in q["jobs"].items())
          + _age(", oldest waiting", q["oldest_job_age_seconds"]), file=out)
    print("outbox     " + ", ".join(f"{k} {n}" for k, n in o["deliveries"].items())
          + _age(", oldest pending", o["oldest_pending_age_seconds"]), file=out)
    if s["bounces_by_reason"]:
        print("\nbounces by reason:", file=out)
        table([[r["reason"], r["bounces"], r["counting"]] for r in s["bounces_by_reason"]],
              ["reason", "bounces", "counting"], out)
    if s["top_domains"]:
        print("\ntop receiving domains:", file=out)
        table([[r["domain"], r["incidents"], r["addresses"], r["counting"]]
               for r in s["top_domains"]], ["domain", "incidents", "addresses", "counting"], out)
    tripped = [b for b in s["breakers"] if b["state"] == "tripped"]
    if tripped:
        print("\ntripped breakers (bounced breaker release DOMAIN):", file=out)
        table([[b["domain"], b["addresses"], (b["tripped_at"] or "")[:19].replace("T", " ")]
               for b in tripped], ["domain", "addresses", "tripped"], out)
    return EXIT_OK


def _age(label: str, seconds: float | None) -> str:
    if seconds is None:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{label} {seconds / size:.1f}{unit}"
    return f"{label} {seconds:.0f}s"
