"""The PHP signer (integrations/mediawiki/src/Verp.php) against bounced.verp on random inputs.

Each random case is three requests answered by both implementations: sign a return path
(random ASCII address, subject, stream, day, prefix, domain and key), verify an address
(the Python-signed return path, often altered, on a random day), and parse a random key
file. Any answer that differs is a difference; the target is none.

    .venv/bin/python bench/php_signer_diff.py [--count 20000] [--seed N]

prints the differences per operation (and the first few in full). Needs ``php`` on PATH.
The test suite runs the same comparison (tests/test_php_signer.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout

from tests.support.php_signer_diff import (
    NON_ASCII,
    compare,
    php_missing,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--unicode", action="store_true",
                        help=f"addresses also of non-ASCII characters ({NON_ASCII})")
    args = parser.parse_args()
    reason = php_missing()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    report = compare(args.count, args.seed, NON_ASCII if args.unicode else "")
    print("\n".join(report.lines()))
    return 1 if report.total_differences else 0


if __name__ == "__main__":
    sys.exit(main())
