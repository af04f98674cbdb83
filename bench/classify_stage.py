"""The SMTP stage the classifier reads from each bounce of the MTA corpus, against the
stage the remote refused at (known by construction: tests/mta/world.py).

    .venv/bin/python bench/classify_stage.py [--misreads]

Prints the share of failed recipients whose stage (RCPT, DATA, MAIL, HELO, CONN, or none
when there was no SMTP dialogue) the reason rules read as it was. A report that does not
name the stage (OpenSMTPD quotes the reply alone) reads as none: counted as a misread.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout

from tests.support.classify_stage import score_mta_corpus


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--misreads", action="store_true", help="list the misread recipients")
    args = p.parse_args()
    score = score_mta_corpus()
    if args.misreads:
        print("\n".join(score.misreads))
    print(f"mta corpus: stage read right for {score.right} of {score.total} failed "
          f"recipients ({score.percent:.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
