"""The ``thermosgd`` command line: one module per command, each parsing its options and
calling one library function (a workflow of `thermosgd.workflows`, or a library entry point).

Commands (in the order ``thermosgd --help`` lists them): `isotropic`, `train`, `sweep`,
`collect`, `reproduce`, `analyze`, `report`, `schedule` (predict, process, validate, track).
Bad input (an option argparse refuses, or a ValueError of the library) is one line
``thermosgd: error: ...`` on stderr with exit status 2, never a traceback.

Building the parser is light (``thermosgd --help`` loads no torch, numba, scipy or
matplotlib): options take their choices from `thermosgd.spec`, `thermosgd.sweep` and
`thermosgd.workflows.preset_table`, and each command imports its workflow when it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys

from thermosgd.cli import analyze, collect, isotropic, report, reproduce, schedule, sweep, train
from thermosgd.cli._common import Parser

__all__ = ["COMMANDS", "build_parser", "main"]

#: the command modules, in the order of ``thermosgd --help``
COMMANDS = (isotropic, train, sweep, collect, reproduce, analyze, report, schedule)


def build_parser() -> argparse.ArgumentParser:
    """The ``thermosgd`` parser with every command."""
    parser = Parser(
        prog="thermosgd",
        description="Thermodynamics of SGD on scale-invariant networks: measure and predict "
                    "temperature, pressure, volume, energy and entropy.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a message is emitted."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # StreamHandler.__init__ assigns it
        pass


def _show_messages() -> None:
    """The package's informational messages (e.g. "resuming from step N") on stderr, once."""
    log = logging.getLogger("thermosgd")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("thermosgd: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the process's arguments) and run the command; returns the
    exit status (2 for bad input, reported in one line)."""
    parser = build_parser()
    _show_messages()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        return args.func(args)
    except ValueError as e:  # UsageError and invalid configurations
        print(f"thermosgd: error: {e}", file=sys.stderr)
        return 2
