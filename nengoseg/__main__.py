"""``python -m nengoseg``: the ``nengoseg`` command (how a sweep starts each trial)."""

import sys

from nengoseg.cli import main

if __name__ == "__main__":
    sys.exit(main())
