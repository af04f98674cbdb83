"""``python -m bounced.cli``: the ``bounced`` command."""

import sys

from bounced.cli import main

if __name__ == "__main__":
    sys.exit(main())
