"""``python -m bounced``: the ``bounced`` command, for an environment without its script."""

import sys

from bounced.cli import main

if __name__ == "__main__":
    sys.exit(main())
