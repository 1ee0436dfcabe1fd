"""Acceptance of the `fmnist-convnet` preset (issue 10, item 4): the paper's ConvNet on
Fashion-MNIST on CPU. Runs the preset's network sweep (resumable: finished runs are reused)
with ``--workers`` processes in sweep batches of at most ``--max-batch`` runs (so both cores
get work: the sweep groups each protocol's 16 runs into one batch otherwise), the analysis and
the report (as `thermosgd reproduce --preset fmnist-convnet` does), times it (wall and CPU,
load averages at both ends) and writes the section "fmnist-convnet preset" of
docs/results.md from the analysis: the issue's checks against its thresholds, the Maxwell
coefficients beside the paper's ConvNet-8/CIFAR-10 values, sigma^2 collapse, stationary
counts, wall time against the 90-minute target.

    python benchmarks/fmnist_convnet_acceptance.py [--out runs/fmnist-convnet] [--workers 2]
    python benchmarks/fmnist_convnet_acceptance.py --no-run   # only rewrite the doc section
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import time
from pathlib import Path

from cpu_preset_acceptance import _v
from docsection import write_section

NAME = "fmnist-convnet"
START, END = "<!-- fmnist-convnet-preset:start -->", "<!-- fmnist-convnet-preset:end -->"
#: the issue's thresholds: EOS fraction, Maxwell max relative error per protocol; wall minutes
EOS_FRACTION = 0.9
MAXWELL_LIMIT = {"elr": 0.10, "lr": 0.20}
TARGET_MINUTES = 90.0
#: the paper's ConvNet-8 / CIFAR-10 entropy fits (paper.md 9.7, saved notebook outputs)
PAPER = {"elr": {"max_rel_error": 0.065, "r2": 0.99748,
                 "coefficients": {"a2": -1.128, "2a4": -0.0159, "a5": -0.0056}},
         "lr": {"max_rel_error": 0.176, "r2": 0.99260,
                "coefficients": {"a1-a2": 0.989, "2a3-a5": -0.038, "2a4-a5": -0.033}},
         "sphere": {"max_rel_error": None, "r2": 0.99585, "coefficients": {}}}


def run(out: Path, workers: int, max_batch: int, **size) -> dict:
    """The preset's sweep + analysis + report into ``out``; returns the timing record (also
    written to ``out/timing.json``; a resumed sweep adds its wall and CPU time to the record
    there). ``size``: `nn_spec`'s steps / grid_values / settings (a smoke run)."""
    from thermosgd.workflows.analyze import format_analysis, run_analysis, write_report
    from thermosgd.workflows.presets import nn_spec
    from thermosgd.workflows.sweep import run_sweep

    tf = out / "timing.json"
    before = json.loads(tf.read_text()) if tf.is_file() else {"wall_s": 0.0, "cpu_s": 0.0,
                                                             "sessions": 0}
    spec = dataclasses.replace(nn_spec(NAME, workers=workers, **size), max_batch=max_batch)
    load0, t0 = os.getloadavg(), time.perf_counter()
    counts = run_sweep(spec, out / "nn", progress=False)
    print("network runs: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    print(format_analysis(run_analysis(out / "nn", strict=False)))
    write_report(out, out / "report.html", title=f"thermosgd reproduce --preset {NAME}")
    wall = time.perf_counter() - t0
    cpu = sum(getattr(resource.getrusage(who), f) for who in
              (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for f in ("ru_utime", "ru_stime"))
    timing = {"wall_s": before["wall_s"] + wall, "cpu_s": before["cpu_s"] + cpu,
              "sessions": before["sessions"] + 1, "workers": workers, "max_batch": max_batch,
              "load_start": before.get("load_start", list(load0)),
              "load_end": list(os.getloadavg()), "cores": os.cpu_count(),
              "date": time.strftime("%Y-%m-%d"), "counts": counts}
    tf.write_text(json.dumps(timing, indent=2))
    return timing


def _paper_coef(proto: str) -> str:
    c = PAPER[proto]["coefficients"]
    return ", ".join(f"{k} {v:+.4g}" for k, v in c.items()) or "-"


def _timing_line(t: dict | None) -> str:
    if not t:
        return "Wall time: not measured by this script (--no-run without timing.json)."
    m = t["wall_s"] / 60
    verdict = "meets" if m <= TARGET_MINUTES else "misses"
    return (f"Wall time {m:.0f} min ({t['cpu_s'] / 60:.0f} min of CPU) with {t['workers']} "
            f"worker(s), sweep batches of <= {t['max_batch']}, on {t['cores']} cores shared with "
            f"other jobs (1-minute load average {t['load_start'][0]:.1f} at the start, "
            f"{t['load_end'][0]:.1f} at the end): {verdict} the {TARGET_MINUTES:.0f}-minute "
            f"target" + (f" (summed over {t['sessions']} resumed sessions)." if t["sessions"] > 1
                           else "."))


def _why(r: dict, part: str) -> str:
    """Why the analysis has no ``part`` (its "unavailable" reason), or the protocol's error."""
    if "error" in r:
        return r["error"]
    return next((u["reason"] for u in r.get("unavailable", []) if u["section"].startswith(part)),
                "not computed")


def _check_rows(proto: str, r: dict) -> list[str]:
    """The issue's checks of one protocol: EOS fraction, Maxwell error, sigma2 collapse."""
    q = "pressure" if proto == "sphere" else "radius"
    name = (f"{q} within 5% of the discretization-corrected prediction (fraction of stationary "
            "runs)")
    eos = r.get("equation_of_state")
    if eos:
        frac = eos["fraction_within_discrete"]
        rows = [f"| {proto} | {name} | {_v(frac, True)} | >= {EOS_FRACTION:.0%} | "
                f"{_v(frac is not None and frac >= EOS_FRACTION)} |"]
    else:
        rows = [f"| {proto} | {name} | {_why(r, 'equation of state')} | >= {EOS_FRACTION:.0%} | "
                "no |"]
    if proto in MAXWELL_LIMIT:
        lim, paper = MAXWELL_LIMIT[proto], PAPER[proto]["max_rel_error"]
        name = f"Maxwell max relative error (paper ConvNet-8/C10: {paper:.1%})"
        if r.get("maxwell"):
            v = r["maxwell"]["max_rel_error"]
            rows.append(f"| {proto} | {name} | {_v(v, True)} | <= {lim:.0%} | {_v(v <= lim)} |")
        else:
            rows.append(f"| {proto} | {name} | {_why(r, 'Maxwell')} | <= {lim:.0%} | no |")
    if r.get("collapse"):
        s = r["collapse"]["quantities"].get("sigma2", {})
        rows.append(f"| {proto} | sigma2 collapse ratio onto {r['collapse']['variable']} | "
                    f"{_v(s.get('ratio'))} | reported | - |")
    else:
        rows.append(f"| {proto} | sigma2 collapse ratio | {_why(r, 'collapse')} | reported | - |")
    return rows


def _fit_row(proto: str, r: dict) -> str:
    """Stationary count, entropy fit and Maxwell coefficients beside the paper's."""
    m, eos, fit = r.get("maxwell"), r.get("equation_of_state"), r.get("entropy_fit") or {}
    coef = (", ".join(f"{k} {v:+.3f}" for k, v in m["coefficients"].items()) if m
            else _why(r, "Maxwell"))
    pe = PAPER[proto]["max_rel_error"]
    err = (f"{_v(eos['max_rel_error_discrete'], True)} / {_v(eos['max_rel_error_sde'], True)}"
           if eos else "-")
    return (f"| {proto} | {r.get('stationary_runs', 0)}/{r.get('runs', '?')} | "
            f"{_v(fit.get('r2'))} ({PAPER[proto]['r2']}) | {m['relation'] if m else '-'} | "
            f"{_v(m['max_rel_error'] if m else None, True)} "
            f"({'-' if pe is None else f'{pe:.1%}'}) | {coef} | {_paper_coef(proto)} | {err} |")


def section(out: Path, timing: dict | None) -> str:
    """The Markdown section (between the markers) from ``out/nn/analysis.json``."""
    from thermosgd.workflows.preset_table import PRESETS

    a = json.loads((out / "nn" / "analysis.json").read_text())
    lines = [START, "## fmnist-convnet preset: the paper's ConvNet on Fashion-MNIST (CPU)", "",
             f"Generated by `python benchmarks/fmnist_convnet_acceptance.py` on "
             f"{(timing or {}).get('date', time.strftime('%Y-%m-%d'))} from "
             f"`{out}/nn/analysis.json`: {PRESETS[NAME].description}.", "",
             _timing_line(timing), "",
             "| protocol | check | value | threshold (issue 10) | pass |", "|---|---|---|---|---|"]
    for proto, r in a["protocols"].items():
        lines += _check_rows(proto, r)
    lines += ["", "| protocol | stationary runs | R^2 of the entropy fit (paper) | Maxwell "
              "relation | max rel. error (paper) | normalized coefficients | paper's "
              "(ConvNet-8/C10) | worst EOS error (discrete / SDE) |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [_fit_row(proto, r) for proto, r in a["protocols"].items()]
    lines += ["", f"Excluded (non-stationary or diverged) runs: {len(a.get('excluded', []))}; "
              f"the analysis' own checks and every run's state are in `{out}/report.html`.", END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/fmnist-convnet"))
    ap.add_argument("--doc", type=Path, default=Path("docs/results.md"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-batch", type=int, default=8,
                    help="runs per sweep batch (each batch trains batched, 4 configs a model)")
    ap.add_argument("--no-run", action="store_true", help="only rewrite the doc section "
                    "(timing from OUT/timing.json when there)")
    ap.add_argument("--steps", type=int, default=None, help="smoke runs: steps per run")
    ap.add_argument("--grid-values", type=int, default=None,
                    help="smoke runs: at most this many values per grid axis")
    ap.add_argument("--settings", type=json.loads, default=None,
                    help='smoke runs: shared settings as JSON, e.g. {"batch_size": 16}')
    a = ap.parse_args(argv)
    if a.no_run:
        tf = a.out / "timing.json"
        timing = json.loads(tf.read_text()) if tf.is_file() else None
    else:
        timing = run(a.out, a.workers, a.max_batch, steps=a.steps, grid_values=a.grid_values,
                     settings=a.settings)
    new = section(a.out, timing)
    write_section(a.doc, START, END, new)
    print(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
