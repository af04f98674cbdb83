"""`bounced classify [--json] FILE... | -`: one report per input, a table or JSON lines."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import BinaryIO, TextIO

from bounced.classify.core import classify
from bounced.classify.model import Report

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
MAX_INPUT = 64 * 1024 * 1024  # bytes read from one input
# A raw message starts with a header field ("Name:"), or an mbox "From " line.
HEADER_START = re.compile(rb"(?:From |[!-9;-~]+[ \t]*:)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bounced classify",
                                description="Classify bounce messages (one report per input).")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("files", nargs="+", metavar="FILE", help="message files, or - for stdin")
    return p


def _table(path: str, report: Report) -> list[str]:
    head = f"{path}: {report.kind}"
    if report.feedback_type:
        head += f" ({report.feedback_type})"
    lines = [head]
    for r in report.recipients:
        hard = "hard" if r.hard else "soft"
        code = " ".join(x for x in (r.reply_code, r.status) if x) or "-"
        lines.append(f"  {r.address:<40} {r.action or '-':<9} {code:<12} {r.reason:<16} {hard}")
        if r.diagnostic:
            lines.append(f"      {r.diagnostic[:160]}")
    if report.original.message_id or report.original.subject:
        lines.append(f"  original: {report.original.message_id}  {report.original.subject[:60]}")
    return lines


def _read(path: str, stdin: TextIO | BinaryIO) -> bytes:
    if path == "-":
        stream = getattr(stdin, "buffer", stdin)
        data = stream.read(MAX_INPUT)
        return data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape")
    with open(path, "rb") as fh:
        return fh.read(MAX_INPUT)


def main(argv: list[str], stdout: TextIO | None = None,
         stdin: TextIO | BinaryIO | None = None) -> int:
    """Classify each input; exit 1 if any could not be read (the others are still done)."""
    out = stdout or sys.stdout
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    as_json = args.json or not out.isatty()
    status = EXIT_OK
    for path in args.files:
        try:
            raw = _read(path, stdin or sys.stdin)
        except OSError as exc:
            print(f"bounced classify: {path}: {exc.strerror or exc}", file=sys.stderr)
            status = EXIT_FAIL
            continue
        report = classify(raw)
        if report.kind == "unknown" and not HEADER_START.match(raw):
            print(f"bounced classify: {path}: not a mail message (it does not start with "
                  "header fields); give the raw message, headers included", file=sys.stderr)
            status = EXIT_FAIL
        if as_json:
            obj = {"file": path, **report.to_json()}
            print(json.dumps(obj, ensure_ascii=False), file=out)
        else:
            print("\n".join(_table(path, report)), file=out)
    return status
