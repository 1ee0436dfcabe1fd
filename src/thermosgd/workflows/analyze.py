"""Analyze a directory and report on it: the stages chained, the files written.

* `run_analysis`: load a sweep's (or study's) results table (`thermosgd.analysis.load_table`),
  analyze it (`thermosgd.analysis.analyze`, with the reproduction's `ACCEPTANCE` thresholds),
  draw its figures (`thermosgd.analysis.figure_data.figure_arrays` ->
  `thermosgd.viz.plots.nn_figures`) and write ``analysis.json`` (`write_analysis`);
  `format_analysis` is its summary for the command line.
* `write_report` / `render_report`: find the studies under a directory (`find_sections`:
  network analyses, isotropic studies, tracked schedules, predictions), read what they wrote
  (analyzing a collected table that has no ``analysis.json`` yet, figures drawn into a
  temporary directory), and render one self-contained HTML page (`thermosgd.viz.report`).

The acceptance thresholds of the cpu reproduction (issue "sweeps, analysis, report") are a
workflow concern, not the analysis': they live here (`ACCEPTANCE`).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

from thermosgd.analysis import analyze, figure_arrays, load_table
from thermosgd.io import atomic_write_text, write_json
from thermosgd.viz import report as _report

__all__ = [
    "ACCEPTANCE",
    "acceptance_lines",
    "draw_figures",
    "find_sections",
    "format_analysis",
    "render_report",
    "run_analysis",
    "write_analysis",
    "write_report",
]

#: acceptance thresholds of the cpu reproduction (issue "sweeps, analysis, report"): Maxwell
#: max relative error per protocol, fraction of stationary runs whose radius (pressure) is
#: within 5% of the discretization-corrected prediction, distance of the potential argmin to
#: its target in grid cells. Optimizer groups are held to the lr-protocol numbers.
ACCEPTANCE = {"maxwell_max_rel_error": {"elr": 0.10, "lr": 0.15},
              "eos_fraction_within_5pct": 0.90, "potential_max_distance_cells": 1}


# --------------------------------------------------------------------------------------------
# analysis.json


def draw_figures(table, result: dict, out_dir: str | os.PathLike) -> list[Path]:
    """The network figures of ``result`` (the `thermosgd.analysis.analyze` of ``table``),
    written as PNGs into ``out_dir`` (`thermosgd.viz.plots.nn_figures`); returns their paths."""
    from thermosgd.viz.plots import nn_figures  # matplotlib

    return nn_figures(result, figure_arrays(table, result), out_dir)


def write_analysis(result: dict, directory: str | os.PathLike) -> Path:
    """Atomically write ``result`` as ``<directory>/analysis.json``; returns the path."""
    path = Path(directory) / "analysis.json"
    write_json(path, result)
    return path


def run_analysis(directory: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                 figures: bool = True, strict: bool = True) -> dict:
    """Load ``<directory>/results.csv`` (or ``.parquet``), analyze it against `ACCEPTANCE`,
    write the figures and then ``analysis.json`` into ``out_dir`` (default: ``directory``).
    Nothing is written when the analysis fails (ValueError)."""
    cols = load_table(directory)
    result = analyze(cols, strict=strict, thresholds=ACCEPTANCE)
    out = Path(out_dir) if out_dir is not None else Path(directory)
    if figures:
        result["figures"] = [p.name for p in draw_figures(cols, result, out)]
    write_analysis(result, out)
    return result


def format_analysis(result: dict) -> str:
    """A few human-readable lines per protocol and optimizer group (for the command line)."""

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f}%"

    lines = []
    for p, r in result["protocols"].items():
        if "error" in r:
            lines.append(f"== {p}: not analyzed: {r['error']}")
            continue
        lines.append(f"== {p}: {r['stationary_runs']}/{r['runs']} stationary runs, d={r['dim']}")
        if "equation_of_state" in r:
            e = r["equation_of_state"]
            lines.append(f"   {e['quantity']}: worst rel. error "
                         f"{pct(e['max_rel_error_discrete'])} (discretization-corrected), "
                         f"{pct(e['max_rel_error_sde'])} (SDE); "
                         f"{pct(e['fraction_within_discrete'])} of runs within "
                         f"{100 * e['tolerance']:.0f}%")
        if "maxwell" in r:
            m = r["maxwell"]
            coef = ", ".join(f"{k} {v:+.3f}" for k, v in m["coefficients"].items())
            lines.append(f"   entropy fit R^2 {r['entropy_fit']['r2']:.4f}; {m['relation']}: "
                         f"max rel. error {pct(m['max_rel_error'])}; normalized {coef}")
        if "collapse" in r:
            coll = ", ".join(f"{q} {v['ratio']:.3f}"
                             for q, v in r["collapse"]["quantities"].items()
                             if v["ratio"] is not None)
            lines.append(f"   collapse onto {r['collapse']['variable']} (scatter/spread): "
                         f"{coll}")
        if "potential" in r:
            lines.append(f"   potential argmin: max distance to target "
                         f"{r['potential']['max_distance_cells']} cell(s)")
        lines += _unavailable_lines(r)
    for r in result.get("optimizers", []):
        if "error" in r:
            lines.append(f"== lr, {r['label']}: not analyzed: {r['error']}")
            continue
        head = f"== lr, {r['label']}: {r['stationary_runs']}/{r['runs']} stationary runs"
        if "equation_of_state" in r:
            e = r["equation_of_state"]
            head += (f"; radius worst/median error {pct(e['max_rel_error_discrete'])}/"
                     f"{pct(e['median_rel_error_discrete'])} (discrete), "
                     f"{pct(e['max_rel_error_sde'])}/{pct(e['median_rel_error_sde'])} (SDE)")
        if "maxwell" in r:
            m = r["maxwell"]
            head += (f"; {m['relation']}: max rel. error {pct(m['max_rel_error'])} "
                     f"(R^2 {r['entropy_fit']['r2']:.4f})")
        lines += [head, *_unavailable_lines(r)]
    if "acceptance" in result:
        lines += acceptance_lines(result["acceptance"])
    return "\n".join(lines)


def acceptance_lines(acc: dict) -> list[str]:
    """The acceptance verdict (`thermosgd.analysis.acceptance_checks`) for the command line:
    one line (all passed, or FAILED and the failed checks, with how many passed), then one
    indented line per check the sweep's size cannot resolve, with what it needs."""
    checks = acc["checks"]
    passed = sum(c["passed"] is True for c in checks)
    failed = [c for c in checks if c["passed"] is False]
    missing = [c for c in checks if not c.get("assessed", True) and c["threshold"] is not None]
    if failed:
        head = "acceptance: FAILED " + "; ".join(f"{c['protocol']} {c['check']}"
                                                 for c in failed)
        head += f" ({passed} passed)"
    elif missing:
        head = f"acceptance: {passed} check(s) passed, none failed"
    else:
        head = "acceptance: all checks passed"
    if missing:
        head += f"; {len(missing)} not assessed at this size:"
    out = [head]
    for c in missing:
        why = (c.get("note") or "").removeprefix("not assessed at this size: ")
        out.append(f"   not assessed: {c['protocol']} {c['check']}: {why}")
    return out


def _unavailable_lines(r: dict) -> list[str]:
    """The parts of a protocol's analysis that were not computed, one line each, and the
    per-run states when the analysis is partial (a small sweep)."""
    lines = [f"   not computed: {u['section']}: {u['reason']}" for u in r.get("unavailable", [])]
    if lines and r.get("runs_table"):
        rate, second = r["axes"]
        lines.append(f"   runs ({rate}, {second}: stationary, radius, T, S):")
        for row in r["runs_table"]:
            state = ", ".join("n/a" if row.get(q) is None else f"{row[q]:.4g}"
                              for q in ("radius", "temperature", "entropy"))
            lines.append(f"     {row['run']}: {row[rate]:.3g}, {row[second]:.3g}: "
                         f"{'yes' if row['stationary'] else 'no'}, {state}"
                         + (f" ({row['reasons']})" if row["reasons"] else ""))
    return lines


# --------------------------------------------------------------------------------------------
# the report of a directory


def _is_state_table(path: Path) -> bool:
    """Whether a results table holds stationary states (a protocol and an entropy per run),
    as opposed to e.g. the collected summaries of a sweep of isotropic studies."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
        else:
            with open(path, newline="") as f:
                names = next(csv.reader(f), [])
    except (OSError, ImportError, ValueError):
        return False

    def has(name: str) -> bool:
        return name in names or any(n.endswith("." + name) for n in names)

    return has("protocol") and has("entropy")


def find_sections(directory: str | os.PathLike, max_depth: int = 3) -> list[tuple[str, Path]]:
    """The report sections under ``directory``: [("nn" | "isotropic" | "schedule" |
    "prediction", path), ...], in name order; a directory that is a section is not searched
    further (except for a prediction's sub-directories)."""
    root = Path(directory)
    if not root.is_dir():
        raise ValueError(f"{directory}: not a directory")
    found: list[tuple[str, Path]] = []

    def visit(d: Path, depth: int) -> None:
        has = {p.name for p in d.iterdir() if p.is_file()}
        if "schedule.json" in has:  # thermosgd schedule track
            found.append(("schedule", d))
            return
        if "prediction.json" in has:  # thermosgd schedule validate (sub-directories go on)
            found.append(("prediction", d))
        if "summary.json" in has and "results.csv" in has:
            found.append(("isotropic", d))
            return
        if "analysis.json" in has or any(
                n in has and _is_state_table(d / n) for n in ("results.csv", "results.parquet")):
            found.append(("nn", d))
            return
        if depth < max_depth:  # e.g. a sweep of isotropic studies: SWEEP/runs/<run>/
            for sub in sorted(p for p in d.iterdir() if p.is_dir()):
                if not sub.name.startswith((".", "__")):
                    visit(sub, depth + 1)

    visit(root, 0)
    return found


def _files(d: Path, names) -> list[Path]:
    return [d / f for f in names if (d / f).is_file()]


def _config_files(d: Path) -> dict[str, str]:
    return {name: (d / name).read_text(errors="replace") for name in _report.CONFIG_FILES
            if (d / name).is_file()}


def _isotropic(d: Path, title: str, sid: str) -> str:
    """An isotropic study's section, with the networks' analysis of its grid."""
    s = json.loads((d / "summary.json").read_text())
    proto = s.get("config", {}).get("protocol", "?")
    try:
        general = analyze(load_table(d), strict=False)["protocols"].get(proto)
    except ValueError as err:
        general = {"error": str(err)}
    figs = _files(d, s.get("figures") or sorted(p.name for p in d.glob("*.png")))
    return _report.isotropic_section(s, figs, general, title, sid)


def _network(d: Path, title: str, sid: str, tmp: Path) -> str:
    """A network analysis' section: ``analysis.json`` and its figures, or (none yet) the
    collected table analyzed now, figures drawn into ``tmp``."""
    if (d / "analysis.json").is_file():
        result = json.loads((d / "analysis.json").read_text())
        figs = {f.name: f for f in _files(d, result.get("figures", []))}
    else:
        try:
            cols = load_table(d)
            result = analyze(cols, strict=False, thresholds=ACCEPTANCE)
        except ValueError as err:
            return _report.error_section(title, sid, str(err))
        figs = {p.name: p for p in draw_figures(cols, result, tmp / sid)}
    return _report.nn_section(result, figs, title, sid, _config_files(d))


def _section(kind: str, d: Path, rel: str, sid: str, tmp: Path) -> tuple[str, str]:
    if kind == "isotropic":
        name = f"Isotropic model: {rel}"
        return name, _isotropic(d, name, sid)
    if kind == "schedule":
        name = f"Scheduled run: {rel}"
        doc = json.loads((d / "schedule.json").read_text())
        return name, _report.schedule_section(doc, _files(d, doc.get("figures", [])), name, sid)
    if kind == "prediction":
        name = f"Predicted stationary states: {rel}"
        doc = json.loads((d / "prediction.json").read_text())
        return name, _report.prediction_section(doc, _files(d, doc.get("figures", [])), name,
                                                sid)
    name = f"Networks: {rel}"
    return name, _network(d, name, sid, tmp)


def render_report(source, *, title: str | None = None, table=None) -> str:
    """The report as an HTML string (see `write_report`)."""
    sections: list[tuple[str, str]] = []  # (toc title, html)
    with tempfile.TemporaryDirectory(prefix="thermosgd-report-") as tmp:
        if isinstance(source, dict):
            figs = ({p.name: p for p in draw_figures(table, source, Path(tmp))}
                    if table is not None else {})
            sections.append(("Analysis", _report.nn_section(source, figs, "Analysis", "s0")))
            origin = "an analysis result"
        else:
            root = Path(source)
            found = find_sections(root)
            if not found:
                raise ValueError(
                    f"{source}: nothing to report: no analysis.json, results.csv/parquet "
                    f"(thermosgd collect / analyze) or isotropic summary.json (thermosgd "
                    f"isotropic) in it or in its sub-directories")
            origin = str(root.resolve())
            for i, (kind, d) in enumerate(found):
                rel = d.relative_to(root).as_posix() if d != root else root.name
                sections.append(_section(kind, d, rel, f"s{i}", Path(tmp)))
        # figures are embedded while rendering, before the temporary directory goes
        return _report.render_page(sections, title=title or "thermosgd report", origin=origin)


def write_report(source, out_html: str | os.PathLike, *, title: str | None = None,
                 table=None) -> Path:
    """Render the report of ``source`` and write it atomically to ``out_html``; returns the
    path.

    ``source`` is an analysis result (the dict of `thermosgd.analysis.analyze`, optionally
    with ``table=`` to draw its figures), or a directory searched by `find_sections` (itself,
    then its sub-directories up to three levels, in name order); each study found becomes a
    section: set-up, tables of theory against measurement (with the paper's numbers alongside
    for reference), figures, and the excluded runs with the reasons. Figures are read (or
    drawn) and embedded while rendering, so the page stays valid when the directory moves.
    Raises ValueError when the directory holds nothing to report.
    """
    text = render_report(source, title=title, table=table)
    out = Path(out_html)
    atomic_write_text(out, text)
    return out

