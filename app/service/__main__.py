"""``python -m app.service``: the same entry point as ``python -m app serve``."""

import sys

from app.cli import main

raise SystemExit(main(["serve", *sys.argv[1:]]))
