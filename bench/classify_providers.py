"""The provider-wordings table: documented SMTP replies of large providers, classified.

    .venv/bin/python bench/classify_providers.py [--table DIR] [--misses FILE] [--rows]

Each row of tests/classify/providers/*.toml is one reply as the provider documents it, with
the reason and hard flag it must get (the labelling rules are in that folder's README.md).
Every reply is put into two bounces, as the sending side's MTA would write them around it:

- ``dsn``: an RFC 3464 report as Postfix writes it (text part "host MX[IP] said: REPLY (in
  reply to RCPT TO command)", Remote-MTA naming the provider's MX host, the reply's
  enhanced status as Status, the reply joined into one folded Diagnostic-Code line);
- ``exim``: a plain-text bounce as Exim writes it (no DSN part: the address, the host, "SMTP
  error from remote mail server after RCPT TO:<addr>:", the reply's lines as received);
- ``qmail``: a plain-text bounce as qmail-send writes it ("<addr>:", "IP does not like
  recipient." or another of its stage sentences, "Remote host said: REPLY"; for a 4xx,
  "I'm not going to try again; this message has been in the queue too long.", so there
  ``expired`` is also right).

Prints, per form and for all forms together: rows, recipients found, reason right, hard right,
the soft replies called hard (each named) and the hard ones missed; then the same per
provider. ``--misses FILE`` writes every row whose reason or hard flag is wrong, with what
was expected and what came out, as Markdown.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout

from tests.support.classify_providers import (
    FORMS,
    TABLE,
    Figures,
    TableError,
    _render,
    evaluate,
    figures,
    load,
    misses,
    misses_markdown,
)


def _line(name: str, f: Figures) -> str:
    return (f"{name:<34} {f.results:>5} {f.found:>7.1f} {f.reason_right:>8.1f} "
            f"{f.hard_right:>8.1f} {len(f.soft_called_hard):>6} {len(f.missed_hard):>6}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", type=Path, default=TABLE, help="folder of the *.toml rows")
    p.add_argument("--misses", type=Path, help="write every miss to this Markdown file")
    p.add_argument("--rows", action="store_true", help="print every miss on the terminal")
    args = p.parse_args()
    try:
        rows = load(args.table)
    except (TableError, tomllib.TOMLDecodeError, OSError) as exc:
        print(f"classify_providers: {exc}", file=sys.stderr)
        return 2
    results = evaluate(rows)
    print(f"provider table: {len(rows)} rows, {len({r.provider for r in rows})} providers, "
          f"{len({r.file for r in rows})} files; each row as a Postfix DSN, an Exim and a "
          "qmail text bounce")
    head = (f"{'':<34} {'n':>5} {'found%':>7} {'reason%':>8} {'hard%':>8} {'s->h':>6} "
            f"{'missH':>6}")
    print(head)
    for form in FORMS:
        print(_line(form, figures([r for r in results if r.form == form])))
    total = figures(results)
    print(_line("all forms", total))
    print(f"soft replies called hard ({len(total.soft_called_hard)}): "
          f"{', '.join(total.soft_called_hard) or 'none'}")
    print(f"hard replies missed ({len(total.missed_hard)}): "
          f"{', '.join(total.missed_hard) or 'none'}")
    print()
    print("per provider (all forms)")
    print(head)
    for provider in sorted({r.provider for r in rows}, key=str.lower):
        print(_line(provider[:34], figures([r for r in results if r.row.provider == provider])))
    if args.rows:
        print()
        for r in misses(results):
            print(f"{r.key}: expected {'|'.join(r.accepted)} hard={r.row.hard}, got "
                  f"{r.reason or '-'} hard={r.hard} ({_render(r.row, r.row.one_line)[:90]})")
    if args.misses:
        args.misses.write_text(misses_markdown(results) + "\n", encoding="utf-8")
        print(f"\nmisses written to {args.misses}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
