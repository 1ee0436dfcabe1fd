"""``python -m thermosgd.cli``: the ``thermosgd`` command."""

import sys

from thermosgd.cli import main

__all__: list[str] = []

sys.exit(main())
