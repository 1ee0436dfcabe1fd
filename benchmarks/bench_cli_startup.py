"""Start-up time of the ``thermosgd`` command line: ``thermosgd --help`` (and a command's
``--help``) against a baseline of the same help with every command's workflow imported first,
as the CLI did before its command modules imported their workflows inside ``run()``
(issue 13: a light parser), measured in the same run.

Each repeat runs, in a fresh interpreter and in an interleaved order (load from other processes
hits all alike):

* ``python``:    ``python -c pass``, the interpreter's own start-up (the floor);
* ``help``:      ``python -m thermosgd.cli --help``;
* ``cmd-help``:  ``python -m thermosgd.cli train --help``;
* ``eager``:     the workflows (`EAGER`: torch, numba, scipy, matplotlib behind them) imported,
  then ``thermosgd --help``: the baseline.

Printed: the median wall time of each in seconds, the ratios help / eager and cmd-help / eager,
the modules of `HEAVY` that ``import thermosgd.cli`` loads (none expected) and the machine
load (``os.getloadavg``) before and after.

    .venv/bin/python benchmarks/bench_cli_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

__all__ = ["EAGER", "HEAVY", "main", "time_command"]

#: the workflow modules the command modules used to import at module level
EAGER = ("thermosgd.workflows.train", "thermosgd.workflows.sweep",
         "thermosgd.workflows.analyze", "thermosgd.workflows.isotropic",
         "thermosgd.workflows.reproduce", "thermosgd.workflows.schedule_studies",
         "thermosgd.schedules", "thermosgd.sim.isotropic")

#: heavy dependencies the parser must not load
HEAVY = ("torch", "numba", "scipy", "matplotlib")

_CASES = {
    "python": ["-c", "pass"],
    "help": ["-m", "thermosgd.cli", "--help"],
    "cmd-help": ["-m", "thermosgd.cli", "train", "--help"],
    "eager": ["-c", f"import {', '.join(EAGER)}; import sys; from thermosgd.cli import main; "
                    "sys.exit(main(['--help']))"],
}


def time_command(args: list[str]) -> float:
    """Wall seconds of ``python ARGS`` (stdout discarded; must exit 0)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    """Time the cases, print medians and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="runs of each case")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()
    times: dict[str, list[float]] = {k: [] for k in _CASES}
    for i in range(args.repeats):
        order = list(_CASES) if i % 2 == 0 else list(reversed(_CASES))
        for k in order:
            times[k].append(time_command(_CASES[k]))
    load1 = os.getloadavg()
    med = {k: statistics.median(v) for k, v in times.items()}
    probe = ("import sys, thermosgd.cli; "
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    heavy = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                           text=True).stdout.strip()
    print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f} ({os.cpu_count()} CPUs); "
          f"{args.repeats} repeats, median wall seconds:")
    for k, v in med.items():
        print(f"  {k:9s} {v:6.3f}  (min {min(times[k]):.3f}, max {max(times[k]):.3f})")
    print(f"help / eager = {med['help'] / med['eager']:.3f}; "
          f"cmd-help / eager = {med['cmd-help'] / med['eager']:.3f}")
    print(f"heavy modules loaded by 'import thermosgd.cli': {heavy or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
