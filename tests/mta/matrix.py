"""Run every scenario through every MTA that can run here, all at once, and keep the bounces.

    .venv/bin/python -m tests.mta.matrix                 # run, print the matrix and timing
    .venv/bin/python -m tests.mta.matrix --write         # ... and rewrite tests/mta_corpus
    .venv/bin/python -m tests.mta.matrix --mta postfix --mta exim --write

Needs root and the MTAs that ``.ci/install-mta`` installs; an MTA that cannot run is
listed with the reason (and ``--write`` keeps its committed files). A scenario an MTA
cannot do (its adapter's ``lacks``) is no cell of the matrix and no test: it is listed
with the reason, after a run and by ``--unsupported`` (no run, no root needed). Each MTA gets its own
instance under a temp dir; all of them send to one ``world.World`` concurrently, and each
bounce is attributed by its envelope recipient ``bounce-<mta>-<submission>@<bounce domain>``.

Corpus files are ``tests/mta_corpus/emails/<mta>-<version>-<scenario>.eml``, normalised for
stable diffs (``normalise``): this run's loopback addresses and port become 127.0.0.2
(the MX), 127.0.0.4 (the refusing host), 127.0.0.53 and 2525; every date becomes
``Thu, 01 Jan 2026 00:00:00 +0000`` (ISO forms ``2026-01-01 00:00:00``); MIME boundaries,
queue ids and message ids become numbered placeholders (each consistently within its
file); the machine's hostname becomes ``host.invalid``. Nothing else is touched.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .adapters import LIFETIME, EximMatrix, MatrixMTA, PostfixMatrix, SubmitError
from .remote import Received
from .scenarios import (
    APP_FROM,
    BY_NAME,
    EXPIRY,
    SCENARIOS,
    Scenario,
    labels,
    message_for,
    submissions,
)
from .world import World, namespace_reason

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "mta_corpus"


def adapter_classes() -> dict[str, type[MatrixMTA]]:
    """Every MTA of the matrix, in the order of the tables."""
    from .chasquid import ChasquidMatrix
    from .courier import CourierMatrix
    from .dma import DmaMatrix
    from .opensmtpd import OpenSMTPDMatrix
    from .sendmail import SendmailMatrix

    classes: list[type[MatrixMTA]] = [PostfixMatrix, EximMatrix, SendmailMatrix,
                                      OpenSMTPDMatrix, CourierMatrix, DmaMatrix,
                                      ChasquidMatrix]
    return {c.kind: c for c in classes}


@dataclass
class Outcome:
    """One cell of the matrix: a bounce produced (``raw``), or missing with why; or a
    scenario the MTA cannot do ("unsupported", with why: listed, not a test)."""

    mta: str
    scenario: str
    status: str  # "produced", "missing", "unsupported"
    detail: str = ""
    raw: bytes | None = None
    file: str = ""


@dataclass
class MTARun:
    """What one MTA did: version, cells, seconds from start to stop."""

    kind: str
    label: str
    version: str = ""
    skipped: str = ""  # cannot run here (not installed, not root): the reason
    error: str = ""  # installed but did not start
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    log_tail: str = ""


def unsupported_cells(kind: str) -> dict[str, str]:
    """The scenarios ``kind`` cannot do, each with why (its adapter's ``lacks``): the
    matrix has no cell and the suite no test for them."""
    lacks = adapter_classes()[kind].lacks
    return {s.name: "; ".join(lacks[f] for f in sorted(s.requires) if f in lacks)
            for s in SCENARIOS if s.requires & lacks.keys()}


def supported_cells() -> list[tuple[str, str]]:
    """Every (MTA, scenario) the matrix runs: the test parameters."""
    return [(kind, s.name) for kind in adapter_classes() for s in SCENARIOS
            if s.name not in unsupported_cells(kind)]


def sender_for(kind: str, submission: str, domain: str) -> str:
    return f"bounce-{kind}-{submission}@{domain}"


def file_name(kind: str, version: str, scenario: str, part: int = 0) -> str:
    suffix = f"-part{part}" if part else ""
    return f"{kind}-{version}-{scenario}{suffix}.eml"


# -- normalisation --------------------------------------------------------------------------

_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
_DAYS = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
RFC_DATE = re.compile(
    rf"(?:(?:{_DAYS}),?\s+)?\d{{1,2}}\s+(?:{_MONTHS})\s+\d{{4}}\s+\d{{1,2}}:\d{{2}}(?::\d{{2}})?"
    rf"(?:\s+(?:[+-]\d{{4}}|UTC?|GMT|[A-Z]{{3,4}}))?(?:\s+\([A-Za-z ]{{1,10}}\))?")
CTIME_DATE = re.compile(rf"(?:{_DAYS})\s+(?:{_MONTHS})\s+\d{{1,2}}\s+\d{{2}}:\d{{2}}:\d{{2}}"
                        rf"(?:\s+[A-Z]{{3,4}})?\s+\d{{4}}")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|\s?[+-]\d{2}:?\d{2})?")
BOUNDARY = re.compile(r"""boundary\s*=\s*(?:"([^"]+)"|([^\s;]+))""", re.IGNORECASE)
MSG_ID_HEADER = re.compile(
    r"^(?:Message-ID|In-Reply-To|References|Original-Envelope-Id|X-Original-Message-ID)"
    r":[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
MSG_ID = re.compile(r"<([^<>@\s]+)@([^<>\s]+)>")
RECEIVED_ID = re.compile(r"\bid\s+([A-Za-z0-9][A-Za-z0-9._-]{5,})", re.IGNORECASE)
ENVID = re.compile(r"^Original-Envelope-Id:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


def normalise(raw: bytes, volatile: dict[str, str], queue_id_patterns: Sequence[str] = ()
              ) -> bytes:
    """Replace what changes from run to run (see the module docstring); bytes preserved."""
    text = raw.decode("latin-1")  # byte-transparent: UTF-8 and 8-bit text survive as is
    hostname = socket.gethostname()
    replacements = dict(volatile)
    if hostname and len(hostname) > 3:
        replacements[hostname] = "host.invalid"
        fqdn = socket.getfqdn()
        if fqdn != hostname and len(fqdn) > 3:
            replacements[fqdn] = "host.invalid"
    for old in sorted(replacements, key=len, reverse=True):
        if old.isdigit():
            text = re.sub(rf"(?<![\d.]){re.escape(old)}(?!\d)", replacements[old], text)
        else:
            text = text.replace(old, replacements[old])
    placeholders: dict[str, str] = {}

    def hold(value: str, kind: str) -> None:
        if value and value not in placeholders and len(value) >= 6:
            placeholders[value] = f"{kind}{sum(1 for v in placeholders.values() if v.startswith(kind)) + 1:02d}"

    for match in BOUNDARY.finditer(text):
        hold(match.group(1) or match.group(2), "=_matrix_boundary_")
    for header in MSG_ID_HEADER.finditer(text):
        for local, _domain in MSG_ID.findall(header.group(1)):
            hold(local, "matrix-msgid-")
    for match in ENVID.finditer(text):
        if not match.group(1).startswith("matrix-"):
            hold(match.group(1), "matrix-envid-")
    for match in RECEIVED_ID.finditer(text):
        hold(match.group(1), "QID")
    for pattern in queue_id_patterns:
        for match in re.finditer(pattern, text):
            hold(match.group(0), "QID")
    for old in sorted(placeholders, key=len, reverse=True):
        text = text.replace(old, placeholders[old])
    text = RFC_DATE.sub("Thu, 01 Jan 2026 00:00:00 +0000", text)
    text = CTIME_DATE.sub("Thu Jan  1 00:00:00 2026", text)
    text = ISO_DATE.sub("2026-01-01 00:00:00", text)
    return text.encode("latin-1")


def report_text(raw: bytes) -> str:
    """The MTA's own words, lowercased: the bounce up to the returned copy of our message
    (whose To: header names every recipient of it, failed or not)."""
    text = raw.decode("utf-8", "replace")
    cut = text.find(f"From: {APP_FROM}")
    return (text if cut < 0 else text[:cut]).lower()


# -- running --------------------------------------------------------------------------------

def _plan(adapter: MatrixMTA) -> tuple[dict[str, list[Scenario]], list[Outcome]]:
    """The submissions this MTA makes (each with the scenarios it yields), and the cells
    it has no bounce for: unsupported (its declared ``lacks``), or missing because the
    running MTA turned out to lack a feature declared supported (EHLO without DSN or
    SMTPUTF8: a build or configuration that changed, which is a failure, not a skip)."""
    unsupported = unsupported_cells(adapter.kind)
    detected = {f: why for f, why in adapter.all_lacks().items() if f not in adapter.lacks}
    plan: dict[str, list[Scenario]] = {}
    left_out = []
    for name, group in submissions().items():
        for scenario in group:
            if scenario.name in unsupported:
                left_out.append(Outcome(adapter.kind, scenario.name, "unsupported",
                                        unsupported[scenario.name]))
            elif scenario.requires & detected.keys():
                left_out.append(Outcome(adapter.kind, scenario.name, "missing", "; ".join(
                    f"{detected[f]}, but the adapter declares it supported"
                    for f in sorted(scenario.requires & detected.keys()))))
            else:
                plan.setdefault(name, []).append(scenario)
    return plan, left_out


def run_mta(adapter: MatrixMTA, world: World, log: Callable[[str], None] = print) -> MTARun:
    """Start ``adapter``, submit every scenario it supports, collect the bounces, stop."""
    run = MTARun(adapter.kind, adapter.label)
    reason = adapter.missing_reason()
    if reason is not None:
        run.skipped = reason
        return run
    started = time.monotonic()
    for attempt in range(1, 4):  # a free port can be taken before the MTA binds it
        try:
            run.version = adapter.version()
            adapter.start(world)
            break
        except Exception as exc:  # installed but broken: a failure, not a skip
            run.error = f"{adapter.label} did not start (attempt {attempt}): {exc}"
            run.log_tail = adapter.log_tail()
            adapter.stop()
            shutil.rmtree(adapter.workdir, ignore_errors=True)
            adapter.workdir.mkdir()
            adapter.workdir.chmod(0o755)
    else:
        return run
    run.error = ""
    try:
        plan, left_out = _plan(adapter)
        run.outcomes.extend(left_out)
        senders = {name: sender_for(adapter.kind, name, world.bounce_domain) for name in plan}
        failed_submit: dict[str, str] = {}
        for name, group in plan.items():
            first = group[0]
            try:
                adapter.submit(senders[name], first.recipients,
                               message_for(first, senders[name]), first.mail_options,
                               first.rcpt_options)
            except (SubmitError, OSError) as exc:
                failed_submit[name] = f"submission failed: {exc}"
        assert world.smtp is not None
        wanted = {n: len(g) for n, g in plan.items() if n not in failed_submit}
        expiring = any(EXPIRY in s.requires for g in plan.values() for s in g)
        timeout = LIFETIME + 45 if expiring else 40

        def arrived(messages: list[Received]) -> bool:
            got: dict[str, list[Received]] = {n: [] for n in wanted}
            rcpt_to_name = {senders[n].lower(): n for n in wanted}
            for m in messages:
                for rcpt in m.rcpt_tos:
                    name = rcpt_to_name.get(rcpt.lower())
                    if name is not None:
                        got[name].append(m)
            for name, count in wanted.items():
                if count > 1 and len(got[name]) < count:  # a delay notice, then the final
                    return False
                if count == 1:  # every failed recipient reported (some MTAs: one bounce each)
                    texts = [report_text(m.data) for m in got[name]]
                    if not all(any(e.recipient.lower() in t for t in texts)
                               for e in plan[name][0].expected):
                        return False
            return True

        complete = world.smtp.wait(arrived, timeout)
        if complete:
            time.sleep(0.5)  # nothing more is expected; a stray duplicate would show here
        messages = world.smtp.snapshot()
        for name, group in plan.items():
            got = [m for m in messages if senders[name].lower() in
                   (r.lower() for r in m.rcpt_tos)]
            if name in failed_submit:
                run.outcomes.extend(Outcome(adapter.kind, s.name, "missing",
                                            failed_submit[name]) for s in group)
                continue
            if len(group) == 1 and group[0].requires & {EXPIRY} and got:
                picks = [got[-1]]  # delay warnings before the final failure: not asked for
            elif len(group) > 1 and len(got) >= 1:
                # a delay notice and the final failure: first and last arrival
                picks: list[Received | None] = [got[0] if len(got) > 1 else None, got[-1]]
            else:
                picks = [got[0] if got else None] if len(got) <= 1 else list(got)
            if len(group) == 1 and len(picks) > 1:  # one bounce per recipient
                def rank(message: Received | None, scenario: Scenario = group[0]) -> int:
                    text = report_text(message.data) if message else ""
                    return next((i for i, e in enumerate(scenario.expected)
                                 if e.recipient.lower() in text), len(scenario.expected))

                picks.sort(key=rank)  # parts numbered in the scenario's order, not arrival's
                for part, message in enumerate(picks, 1):
                    assert message is not None
                    run.outcomes.append(Outcome(
                        adapter.kind, group[0].name, "produced", f"part {part}",
                        raw=message.data,
                        file=file_name(adapter.kind, run.version, group[0].name, part)))
                continue
            for scenario, message in zip(group, picks, strict=False):
                if message is None:
                    run.outcomes.append(Outcome(adapter.kind, scenario.name, "missing",
                                                f"no bounce within {timeout}s"))
                else:
                    run.outcomes.append(Outcome(
                        adapter.kind, scenario.name, "produced", raw=message.data,
                        file=file_name(adapter.kind, run.version, scenario.name)))
    finally:
        run.log_tail = adapter.log_tail()
        adapter.stop()
        run.seconds = time.monotonic() - started
    volatile = {**world.volatile(), **adapter.volatile()}
    for outcome in run.outcomes:
        if outcome.raw is not None:
            outcome.raw = normalise(outcome.raw, volatile, adapter.queue_id_patterns)
    order = {s.name: i for i, s in enumerate(SCENARIOS)}
    run.outcomes.sort(key=lambda o: (order[o.scenario], o.file))
    log(f"{adapter.label} {run.version}: {sum(o.status == 'produced' for o in run.outcomes)} "
        f"bounces in {run.seconds:.1f}s")
    return run


@dataclass
class MatrixResult:
    runs: list[MTARun]
    seconds: float


def run_matrix(kinds: Sequence[str] | None = None, workdir: Path | None = None,
               log: Callable[[str], None] = print) -> MatrixResult:
    """Every MTA (or ``kinds``) concurrently against one world; bounded by the timeouts."""
    classes = adapter_classes()
    chosen = list(kinds) if kinds else list(classes)
    reason = namespace_reason()
    if reason is not None:  # nothing of the matrix can run: every MTA says why
        return MatrixResult([MTARun(k, classes[k].label, skipped=reason) for k in chosen], 0.0)
    base = Path(tempfile.mkdtemp(prefix="bounced-matrix-", dir=workdir))
    base.chmod(0o755)
    started = time.monotonic()
    try:
        with World(base / "world") as world:
            adapters = []
            for kind in chosen:
                directory = base / kind
                directory.mkdir()
                directory.chmod(0o755)
                adapters.append(classes[kind](directory))
            lock = threading.Lock()

            def logged(line: str) -> None:
                with lock:
                    log(line)

            with ThreadPoolExecutor(max_workers=len(adapters)) as pool:
                runs = list(pool.map(lambda a: run_mta(a, world, logged), adapters))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return MatrixResult(runs, time.monotonic() - started)


# -- the corpus -----------------------------------------------------------------------------

def manifest_row(run: MTARun, outcome: Outcome) -> dict[str, object]:
    """A manifest line in tests/corpus/manifest.jsonl's format (plus ``scenario``)."""
    scenario = BY_NAME[outcome.scenario]
    expected = list(scenario.expected)
    if outcome.detail.startswith("part ") and outcome.raw is not None:
        text = report_text(outcome.raw)
        expected = [e for e in expected if e.recipient.lower() in text]
    return {
        "file": outcome.file,
        "origin": f"bounced MTA matrix: {run.label} {run.version}, scenario "
                  f"{scenario.name} ({scenario.what})",
        "kind": "mta-matrix", "module": run.label, "family": run.label, "category": "bounce",
        "scenario": scenario.name,
        **labels(run.kind, scenario, expected),
    }


def relabel(out: Path = CORPUS) -> int:
    """Rewrite the manifest's labels from the scenarios and their corrections, the bounces
    as they are (no MTA run). Returns the number of rows whose labels changed."""
    path = out / "manifest.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    changed = 0
    for row in rows:
        scenario = BY_NAME[row["scenario"]]
        mta = row["file"].split("-", 1)[0]
        named = {e["recipient"] for e in row["expected"]}
        new = labels(mta, scenario, [e for e in scenario.expected if e.recipient in named])
        old = {k: row.pop(k) for k in ("expected", "corrected_from", "why") if k in row}
        changed += old != new
        row.update(new)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return changed


def write_corpus(result: MatrixResult, out: Path = CORPUS) -> list[str]:
    """Replace the files of every MTA that ran; keep the others. Returns the files written."""
    emails = out / "emails"
    emails.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.jsonl"
    rows: dict[str, dict[str, object]] = {}
    if manifest_path.exists():
        for line in manifest_path.read_text().splitlines():
            row = json.loads(line)
            rows[row["file"]] = row
    kinds_path = out / "expected-kinds.json"
    kinds: dict[str, str] = {"_comment": "Delay notices (kind delay); every other file of "
                             "this corpus is a bounce."}
    if kinds_path.exists():
        kinds.update(json.loads(kinds_path.read_text()))
    written = []
    for run in result.runs:
        if not run.version or not any(o.raw for o in run.outcomes):
            continue
        for path in emails.glob(f"{run.kind}-*.eml"):
            path.unlink()
            rows.pop(path.name, None)
            kinds.pop(path.name, None)
        for outcome in run.outcomes:
            if outcome.raw is None:
                continue
            (emails / outcome.file).write_bytes(outcome.raw)
            rows[outcome.file] = manifest_row(run, outcome)
            if BY_NAME[outcome.scenario].kind != "bounce":
                kinds[outcome.file] = BY_NAME[outcome.scenario].kind
            written.append(outcome.file)
    manifest_path.write_text("".join(json.dumps(rows[k], ensure_ascii=False) + "\n"
                                     for k in sorted(rows)))
    kinds_path.write_text(json.dumps(dict(sorted(kinds.items(), key=lambda kv: (
        not kv[0].startswith("_"), kv[0]))), indent=1, ensure_ascii=False) + "\n")
    cells_path = out / "matrix.json"
    cells: dict[str, object] = {}
    if cells_path.exists():
        cells = json.loads(cells_path.read_text())
    for run in result.runs:
        if run.version and any(o.raw for o in run.outcomes):
            cells[run.kind] = {"label": run.label, "version": run.version,
                               "cells": {o.scenario: (o.status if o.status != "unsupported"
                                                      else f"unsupported: {o.detail}")
                                         for o in run.outcomes}}
    cells_path.write_text(json.dumps(cells, indent=1, ensure_ascii=False) + "\n")
    return written


def table(result: MatrixResult) -> str:
    """The matrix as text: one line per MTA, one column per scenario."""
    names = [s.name for s in SCENARIOS]
    lines = [f"{'MTA':<22} " + " ".join(f"{i + 1:>2}" for i in range(len(names)))]
    notes = []
    for run in result.runs:
        label = f"{run.label} {run.version}".strip()
        if run.skipped or run.error:
            lines.append(f"{label:<22} " + (f"not run: {run.skipped}" if run.skipped
                                            else f"FAILED: {run.error}"))
            continue
        marks = []
        for name in names:
            cells = [o for o in run.outcomes if o.scenario == name]
            status = cells[0].status if cells else "missing"
            marks.append({"produced": " +", "unsupported": " -", "missing": " !"}[status])
            for o in cells:
                if o.status != "produced":
                    notes.append(f"  {run.kind} {name}: {o.status}: {o.detail}")
        lines.append(f"{label:<22} " + " ".join(marks) + f"   ({run.seconds:.0f}s)")
    legend = "  ".join(f"{i + 1}={n}" for i, n in enumerate(names))
    return "\n".join([*lines, "(+ produced, - unsupported: no cell, ! missing)", legend, *notes])


def unsupported_table() -> str:
    """Every scenario each MTA cannot do, with why (no cell of the matrix, no test)."""
    lines = []
    for kind, cls in adapter_classes().items():
        cells = unsupported_cells(kind)
        lines.append(f"{cls.label}: {len(SCENARIOS) - len(cells)} of {len(SCENARIOS)} "
                     f"scenarios" + (", cannot do:" if cells else ", all of them"))
        lines.extend(f"  {name}: {why}" for name, why in cells.items())
    return "\n".join(lines)


def _words(raw: bytes, recipient: str, limit: int = 6) -> list[str]:
    """The report's lines about ``recipient`` (its address, diagnostic, status, action)."""
    text = report_text(raw)
    local = recipient.rsplit("@", 1)[0].lower()
    lines = [" ".join(line.split()) for line in text.splitlines()]
    keep = []
    for i, line in enumerate(lines):
        if local in line or re.match(r"(diagnostic-code|status|action|subject):", line):
            keep.append(line + (" " + lines[i + 1] if i + 1 < len(lines)
                                and lines[i + 1] and local in line else ""))
    return [k[:200] for k in dict.fromkeys(keep)][:limit]


def misreads(corpus: Path = CORPUS) -> str:
    """Markdown: every recipient or message of the corpus the classifier reads otherwise
    than the label, with the words of the bounce that matter (for the classifier's work)."""
    kinds_path = corpus / "expected-kinds.json"
    kinds = json.loads(kinds_path.read_text()) if kinds_path.exists() else {}
    out = []
    for line in (corpus / "manifest.jsonl").read_text().splitlines():
        row = json.loads(line)
        raw = (corpus / "emails" / row["file"]).read_bytes()
        kind, got = classification(raw)
        by_address = {g[0].lower(): g for g in got}
        wrong = []
        expected_kind = kinds.get(row["file"], "bounce")
        if kind != expected_kind:
            wrong.append(f"kind {kind}, expected {expected_kind}")
        for exp in row["expected"]:
            g = by_address.get(exp["recipient"].lower())
            label = f"{exp['reason']}{' hard' if exp['hardbounce'] else ''}"
            if g is None:
                wrong.append(f"{exp['recipient']}: not found (expected {label})")
            elif g[3] != exp["reason"] or g[4] != exp["hardbounce"]:
                wrong.append(f"{exp['recipient']}: got {g[3]}{' hard' if g[4] else ''} "
                             f"({g[1]}, {g[2] or 'no status'}), expected {label}")
        if wrong:
            words = _words(raw, row["expected"][0]["recipient"]) if row["expected"] else []
            out.append(f"- `{row['file']}` ({row['scenario']}): " + "; ".join(wrong)
                       + "".join(f"\n    - `{w}`" for w in words))
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mta", action="append", choices=list(adapter_classes()),
                        help="run only this MTA (repeatable)")
    parser.add_argument("--write", action="store_true",
                        help=f"rewrite the corpus in {CORPUS.relative_to(ROOT)}")
    parser.add_argument("--out", type=Path, default=CORPUS, help="corpus directory")
    parser.add_argument("--logs", action="store_true", help="print each MTA's log tail")
    parser.add_argument("--unsupported", action="store_true",
                        help="only list the scenarios each MTA cannot do, with why (no MTA run)")
    parser.add_argument("--misreads", action="store_true",
                        help="only list the committed corpus's misread bounces (no MTA run)")
    parser.add_argument("--relabel", action="store_true",
                        help="only rewrite the manifest's labels from the scenarios and their "
                             "corrections (no MTA run)")
    args = parser.parse_args(argv)
    if args.misreads:
        print(misreads(args.out), end="")
        return 0
    if args.unsupported:
        print(unsupported_table())
        return 0
    if args.relabel:
        print(f"{relabel(args.out)} manifest rows relabelled")
        return 0
    result = run_matrix(args.mta)
    print(table(result))
    if args.logs:
        for run in result.runs:
            print(f"--- {run.label} log tail\n{run.log_tail}")
    print(f"live matrix: {result.seconds:.1f}s wall clock for "
          f"{sum(1 for r in result.runs if not r.skipped and not r.error)} MTAs")
    if args.write:
        written = write_corpus(result, args.out)
        print(f"wrote {len(written)} files to {args.out}")
    missing = [o for r in result.runs for o in r.outcomes if o.status == "missing"]
    return 1 if missing or any(r.error for r in result.runs) else 0


def classification(raw: bytes) -> tuple[str, list[tuple[str, str, str, str, bool]]]:
    """What bounced's classifier makes of a bounce: kind and per recipient (address,
    action, status, reason, hard), sorted. Two bounces that read the same compare equal."""
    from bounced.classify import classify

    report = classify(raw)
    return report.kind, sorted((r.address, r.action, r.status, r.reason, r.hard)
                               for r in report.recipients)


if __name__ == "__main__":
    sys.exit(main())
