"""A self-contained HTML report: render what it is given.

The page opens in any browser without network access: inline CSS, figures embedded as base64
PNG, no scripts and no external resources. It is made of sections, each rendered from what a
study wrote (or an analysis returned):

* `nn_section`: a network analysis (the dict of `thermosgd.analysis.analyze`, its figures by
  file name, the sweep's configuration files) with the paper's numbers alongside
  (`PAPER_NN_RESULTS`);
* `isotropic_section`: an isotropic study (``summary.json``, its figures, and the networks'
  analysis of the same grid);
* `schedule_section`, `prediction_section`: a tracked schedule, predicted stationary states;

and `render_page` puts them on one page with a table of contents. Finding the sections of a
directory, analyzing its tables and drawing their figures is the workflow's
(`thermosgd.workflows.analyze.write_report`).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from thermosgd import __version__
from thermosgd.viz._names import optimizer_slug

__all__ = [
    "CONFIG_FILES",
    "PAPER_NN_RESULTS",
    "error_section",
    "isotropic_section",
    "nn_section",
    "prediction_section",
    "render_page",
    "schedule_section",
]

#: the paper's numbers (saved notebook outputs, paper.md section 9.7), for reference in reports.
#: "maxwell_coefficients" are normalized by (d-1)/2 except where the key says "/(a1-a2)".
PAPER_NN_RESULTS = [
    {"model": "ConvNet-8 / CIFAR-10", "dim": 24408, "protocol": "elr", "r2": 0.99748,
     "max_rel_error": 0.0652, "coefficients": {"a2": -1.128, "2a4": -0.0159, "a5": -0.0056}},
    {"model": "ConvNet-8 / CIFAR-10", "dim": 24408, "protocol": "lr", "r2": 0.99260,
     "max_rel_error": 0.176, "coefficients": {"a1-a2": 0.989, "2a3-a5": -0.038,
                                              "2a4-a5": -0.033}},
    {"model": "ConvNet-8 / CIFAR-10", "dim": 24408, "protocol": "sphere", "r2": 0.99585},
    {"model": "ConvNet-16 / CIFAR-100", "dim": 97200, "protocol": "elr", "r2": 0.97912,
     "max_rel_error": 0.0395, "coefficients": {"a2": -0.930, "2a4": -0.0015, "a5": 0.0088}},
    {"model": "ConvNet-16 / CIFAR-100", "dim": 97200, "protocol": "lr", "r2": 0.84117,
     "max_rel_error": 0.233, "coefficients": {"a1-a2": 0.659, "2a3-a5": -0.047,
                                              "2a4-a5": 0.0007}},
    {"model": "ConvNet-16 / CIFAR-100", "dim": 97200, "protocol": "sphere", "r2": 0.94096},
    {"model": "ResNet-18 (k=4) / CIFAR-10", "dim": 43692, "protocol": "elr", "r2": 0.99255,
     "max_rel_error": 0.0246, "coefficients": {"a2": -1.029, "2a4": -0.0079, "a5": 0.0002}},
    {"model": "ResNet-18 (k=4) / CIFAR-10", "dim": 43692, "protocol": "lr", "r2": 0.99393,
     "max_rel_error": 0.0295, "coefficients": {"a1-a2": 0.993, "(2a3-a5)/(a1-a2)": 0.0049,
                                              "(2a4-a5)/(a1-a2)": 0.0046}},
    {"model": "ResNet-18 (k=4) / CIFAR-10", "dim": 43692, "protocol": "sphere", "r2": 0.99581},
    {"model": "ResNet-18 (k=4) / CIFAR-100", "dim": 43692, "protocol": "elr", "r2": 0.99489,
     "max_rel_error": 0.0190, "coefficients": {"a2": -1.022, "2a4": -0.0063, "a5": 0.0005}},
    {"model": "ResNet-18 (k=4) / CIFAR-100", "dim": 43692, "protocol": "lr", "r2": 0.98938,
     "max_rel_error": 0.0563, "coefficients": {"a1-a2": 1.075, "(2a3-a5)/(a1-a2)": 8e-5,
                                              "(2a4-a5)/(a1-a2)": -0.0076}},
    {"model": "ResNet-18 (k=4) / CIFAR-100", "dim": 43692, "protocol": "sphere", "r2": 0.99528},
]

#: the configuration files of a study directory shown in its set-up, in this order
CONFIG_FILES = ("sweep.json", "sweep.yaml", "sweep.yml", "config.json")
_PROTO_NAME = {"elr": "fixed effective learning rate (ELR) + weight decay",
               "lr": "fixed learning rate (LR) + weight decay",
               "sphere": "fixed sphere (projected, ELR step)"}

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1200px;
padding:0 24px 48px;color:#1d1d1f;line-height:1.45}
h1{margin:24px 0 4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:40px}
h3{margin-top:28px}h4{margin:18px 0 6px}
.meta{color:#666;font-size:13px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f4f4f6}td.l,th.l{text-align:left}
tr.ref td{color:#666;background:#fafafa;font-style:italic}
.pass{color:#137333;font-weight:600}.fail{color:#c5221f;font-weight:600}
.na{color:#888}
figure{margin:12px 0 24px}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:12px;color:#555}
pre{background:#f6f8fa;padding:8px 12px;overflow-x:auto;font-size:12px}
.err{background:#fdecea;border-left:4px solid #c5221f;padding:8px 12px}
nav ul{columns:2;font-size:14px}
details summary{cursor:pointer;color:#1a5fb4}
"""


# --------------------------------------------------------------------------------------------
# small formatting helpers


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _num(v, digits: int = 4) -> str:
    if v is None:
        return '<span class="na">n/a</span>'
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return _e(v)
    if not math.isfinite(f):
        return '<span class="na">n/a</span>' if math.isnan(f) else _e(f)
    return f"{f:.{digits}g}"


def _pct(v, digits: int = 2) -> str:
    if v is None or not math.isfinite(float(v)):
        return '<span class="na">n/a</span>'
    return f"{100 * float(v):.{digits}f}%"


def _verdict(passed) -> str:
    if passed is None:
        return '<span class="na">reported</span>'
    return '<span class="pass">pass</span>' if passed else '<span class="fail">FAIL</span>'


def _table(header: list[str], rows: list[list[str]], *, left: int = 1,
           classes: list[str] | None = None) -> str:
    """An HTML table; cells are already-escaped HTML; the first ``left`` columns align left."""
    th = "".join(f'<th class="l">{h}</th>' if i < left else f"<th>{h}</th>"
                 for i, h in enumerate(header))
    body = []
    for k, r in enumerate(rows):
        cls = f' class="{classes[k]}"' if classes and classes[k] else ""
        tds = "".join(f'<td class="l">{c}</td>' if i < left else f"<td>{c}</td>"
                      for i, c in enumerate(r))
        body.append(f"<tr{cls}>{tds}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _hp(d: dict) -> str:
    return ", ".join(f"{k} = {_num(v)}" for k, v in d.items())


def _config_block(files: Mapping[str, str]) -> str:
    """The study's configuration files ({name: text}, `CONFIG_FILES` order), JSON indented."""
    parts = []
    for name in CONFIG_FILES:
        if name in files:
            text = files[name]
            if name.endswith(".json"):
                try:
                    text = json.dumps(json.loads(text), indent=2)
                except ValueError:
                    pass
            parts.append(f"<h4>{_e(name)}</h4><pre>{_e(text)}</pre>")
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# network analyses


def _paper_rows(protocol: str) -> list[dict]:
    return [r for r in PAPER_NN_RESULTS if r["protocol"] == protocol]


def _maxwell_table(r: dict) -> str:
    m, fit = r["maxwell"], r["entropy_fit"]
    keys = list(m["coefficients"])
    header = ["", "d", "R<sup>2</sup>", "max rel. error"] + [
        f"{_e(k)} (ideal {_num(m['ideal'][k])})" for k in keys]
    rows = [["<b>this analysis</b>", str(r["dim"]), _num(fit["r2"], 5), _pct(m["max_rel_error"])]
            + [f"{m['coefficients'][k]:+.4f} &plusmn; {_num(m['coefficients_stderr'][k], 2)}"
               for k in keys]]
    classes = [""]
    for p in _paper_rows(r["protocol"]) if r.get("optimizer", "sgd") == "sgd" else []:
        coeffs = p.get("coefficients", {})
        cells = []
        for k in keys:
            if k in coeffs:
                cells.append(f"{coeffs[k]:+.4f}")
            elif f"({k})/(a1-a2)" in coeffs:
                cells.append(f"{coeffs[f'({k})/(a1-a2)']:+.4f} (/(a1-a2))")
            else:
                cells.append('<span class="na">&mdash;</span>')
        err = (_pct(p["max_rel_error"]) if "max_rel_error" in p
               else '<span class="na">&mdash;</span>')
        rows.append([f"paper: {_e(p['model'])}", str(p["dim"]), _num(p["r2"], 5), err, *cells])
        classes.append("ref")
    return _table(header, rows, classes=classes)


def _nn_protocol(r: dict, figures: dict[str, Path]) -> str:
    p = r["protocol"]
    out = [f'<h3 id="{_e(p)}">{_e(p)}: {_e(_PROTO_NAME[p])}</h3>']
    if "error" in r:
        out.append(f'<p class="err">Not analyzed: {_e(r["error"])}</p>')
        out.append(_excluded(r.get("excluded", [])))
        return "".join(out)
    rate, second = r["axes"]
    out.append(f"<p>d = {r['dim']} scale-invariant parameters; {r['stationary_runs']} of "
               f"{r['runs']} runs stationary and used. Grid: {_e(rate)} &isin; "
               f"{{{', '.join(_num(v, 3) for v in r['grid'][rate])}}}, {_e(second)} &isin; "
               f"{{{', '.join(_num(v, 3) for v in r['grid'][second])}}}.</p>")

    if "equation_of_state" in r:
        out.append(_eos_part(r))
    if "maxwell" in r:
        out.append(_maxwell_part(r))
    if "collapse" in r:
        out.append(_collapse_part(r))
    if "potential" in r:
        out.append(_potential_part(r))
    if r.get("unavailable"):
        out.append("<h4>Not computed</h4><ul>" + "".join(
            f"<li>{_e(u['section'])}: {_e(u['reason'])}</li>" for u in r["unavailable"])
            + "</ul>")
    names = [("equation-of-state", "equation of state"), ("collapse", "collapse of T, U, sigma^2"),
             ("entropy", "entropy, quadratic fit and Maxwell derivative"),
             ("potential", "potential maps")]
    figs = [_img(figures[f"{p}-nn-{k}.png"], f"{p}: {cap}") for k, cap in names
            if f"{p}-nn-{k}.png" in figures]
    if figs:
        out.append("<h4>Figures</h4>" + "".join(figs))
    if r.get("runs_table"):
        out.append(_runs_table(r, open_=bool(r.get("unavailable"))))
    out.append(_excluded(r["excluded"]))
    return "".join(out)


def _runs_table(r: dict, open_: bool) -> str:
    """Every run of the protocol with its measured state (open when the analysis is partial:
    on a small sweep it is what there is)."""
    rate, second = r["axes"]
    rows = r["runs_table"]
    qs = [q for q in ("radius", "pressure", "temperature", "energy", "entropy", "sigma2")
          if any(q in x for x in rows)]
    return (f"<details{' open' if open_ else ''}><summary>all {len(rows)} runs, measured "
            f"state</summary>" + _table(
                ["run", rate, second, "stationary", *qs],
                [[_e(x["run"]), _num(x[rate]), _num(x[second]), _num(x["stationary"]),
                  *(_num(x.get(q)) for q in qs)] for x in rows]) + "</details>")


def _eos_part(r: dict) -> str:
    rate, second = r["axes"]
    out = []
    e = r["equation_of_state"]
    q = e["quantity"]
    out.append(f"<h4>Equation of state: measured {_e(q)} against the predictions</h4>")
    out.append(_table(
        ["prediction", "worst |rel. error|", "median |rel. error|",
         f"runs within {100 * e['tolerance']:.0f}%", "worst run"],
        [["SDE (ideal-gas law)", _pct(e["max_rel_error_sde"]), _pct(e["median_rel_error_sde"]),
          _pct(e["fraction_within_sde"], 0), _e(e["worst_run_sde"])],
         ["discretization-corrected", _pct(e["max_rel_error_discrete"]),
          _pct(e["median_rel_error_discrete"]), _pct(e["fraction_within_discrete"], 0),
          _e(e["worst_run_discrete"])]]))
    pts = e["points"]
    out.append(f"<details><summary>all {len(pts)} stationary runs</summary>" + _table(
        ["run", rate, second, f"measured {q}", "SDE", "discretized", "rel. error SDE",
         "rel. error discr."],
        [[_e(pt["run"]), _num(pt[rate]), _num(pt[second]), _num(pt["measured"]),
          _num(pt["sde"]), _num(pt["discrete"]), _pct(pt["rel_error_sde"]),
          _pct(pt["rel_error_discrete"])] for pt in pts]) + "</details>")
    return "".join(out)


def _maxwell_part(r: dict) -> str:
    p = r["protocol"]
    out = []
    m = r["maxwell"]
    out.append(f"<h4>Entropy: quadratic fit over ({_e(r['entropy_fit']['x'])}, "
               f"{_e(r['entropy_fit']['y'])}) and the Maxwell relation {_e(m['relation'])}</h4>")
    out.append(f"<p>Prediction {_num(m['theory'])} nats; the fitted derivative ranges over "
               f"[{_num(m['derivative_min'])}, {_num(m['derivative_max'])}] on the grid. "
               f"Coefficients normalized by {_num(m['normalization'])}"
               f"{' (d-1)' if p == 'sphere' or r.get('optimizer') == 'adamw' else ' ((d-1)/2)'}"
               ", "
               f"&plusmn; their standard errors from the fit. Paper rows "
               f"(paper.md 9.7) for reference.</p>")
    out.append(_maxwell_table(r))
    if r["entropy_fit"].get("warning"):
        out.append(f'<p class="err">{_e(r["entropy_fit"]["warning"])}</p>')
    return "".join(out)


def _collapse_part(r: dict) -> str:
    out = []
    c = r["collapse"]
    out.append(f"<h4>Collapse onto {_e(c['variable'])}</h4><p>ratio = scatter across "
               f"{_e(c['groups'])} at fixed {_e(c['variable'])} (rms of the std of the "
               f"interpolated curves) / spread of the quantity over all runs; 0 = perfect "
               f"collapse, ~1 = none.</p>")
    out.append(_table(
        ["quantity", "ratio", "scatter", "spread", "scale", f"{_e(c['variable'])} values compared"],
        [[_e(k), _num(v["ratio"], 3), _num(v["scatter"], 3), _num(v["spread"], 3),
          _e(v["scale"]), str(v["n_compared"])] for k, v in c["quantities"].items()]))
    return "".join(out)


def _potential_part(r: dict) -> str:
    out = []
    pot = r["potential"]
    out.append(f"<h4>Potential minimization: {_e(pot['name'])}</h4>")
    out.append(_table(
        ["target run", "target", "argmin run", "argmin", "distance (cells)"],
        [[_e(t["target_run"]), _hp(t["target"]), _e(t["argmin_run"]), _hp(t["argmin"]),
          str(t["distance_cells"])] for t in pot["targets"]]))
    return "".join(out)


def _excluded(rows: list[dict]) -> str:
    if not rows:
        return "<h4>Excluded runs</h4><p>None: every run was stationary.</p>"
    keys = [k for k in rows[0] if k not in ("run", "row", "reasons", "protocol")]
    return f"<h4>Excluded runs ({len(rows)})</h4>" + _table(
        ["run", *keys, "why"],
        [[_e(x["run"]), *(_num(x.get(k)) for k in keys), _e(x["reasons"])] for x in rows],
        left=1)


def _acceptance(result: dict) -> str:
    acc = result.get("acceptance")
    if not acc:
        return ""
    rows = [[_e(c["protocol"]), _e(c["check"]) + (f"<br><small>{_e(c['note'])}</small>"
                                                    if c.get("note") else ""), _num(c["value"]),
             _e(c["threshold"] or ""), _verdict(c["passed"]) if c.get("assessed", True)
             else '<span class="na">not assessed</span>'] for c in acc["checks"]]
    head = ('<span class="pass">all checks passed</span>' if acc["all_passed"]
            else '<span class="fail">some checks failed</span>' if acc.get("failed", True)
            else f'none failed; {len(acc["not_assessed"])} not assessed at this size')
    return (f"<h3>Acceptance checks</h3><p>{head}</p>"
            + _table(["protocol", "check", "value", "threshold", "result"], rows, left=2))


def nn_section(result: dict, figures: Mapping[str, Path], title: str, sid: str,
               config_files: Mapping[str, str] | None = None) -> str:
    """A network analysis (`thermosgd.analysis.analyze`; with the acceptance checks and the
    optimizer groups' checks when the result has them): set-up, acceptance, one part per
    protocol, generalization, non-SI variants, optimizer groups. ``figures`` maps the figure
    file names of `thermosgd.viz.plots.nn_figures` to their paths; ``config_files`` the
    sweep's configuration files (`CONFIG_FILES`) to their text."""
    out = [f'<h2 id="{sid}">{_e(title)}</h2>']
    setup = [[_e(p), _e(_PROTO_NAME.get(p, p)), _num(r.get("dim")), _num(r.get("runs")),
              _num(r.get("stationary_runs"))] for p, r in result["protocols"].items()]
    out.append("<h3>Set-up</h3>" + _table(
        ["protocol", "description", "d", "runs", "stationary"], setup, left=2))
    if config_files:
        out.append(_config_block(config_files))
    out.append(_acceptance(result))
    for r in result["protocols"].values():
        out.append(_nn_protocol(r, figures))
    if result.get("generalization"):
        out.append(_generalization(result["generalization"], figures))
    if result.get("non_si"):
        out.append(_non_si(result["non_si"], figures))
    if result.get("optimizers"):
        out.append(_optimizers(result["optimizers"], figures))
    return "".join(out)


def _optimizers(groups: list[dict], figures: dict[str, Path]) -> str:
    """Section: the fixed-LR analysis per optimizer (plain SGD, heavy ball, AdamW)."""
    out = ['<h3 id="optimizers">Momentum and AdamW: the fixed-LR protocol per optimizer</h3>',
           "<p>Each optimizer's runs are analyzed as the paper's LR protocol, against that "
           "optimizer's closed forms (docs/theory.md): heavy ball r*<sup>4</sup> = &eta; (d-1) "
           "&sigma;<sup>2</sup> / (2 &lambda; (1-&beta;)), T = sqrt(&eta; &lambda; "
           "&sigma;<sup>2</sup> / (2 (d-1) (1-&beta;))), Maxwell slope (d-1)/2; AdamW "
           "r*<sup>2</sup> = &eta; d / (2 &lambda;) (independent of the noise), T = &sigma; "
           "sqrt(&eta; &lambda; / (2 (d-1))) (equal second moments assumed), pressure &lambda; "
           "sqrt(s), Maxwell slope d-1. Checks use the paper's LR thresholds (Maxwell &le; 15%, "
           "radius within 5% for &ge; 90% of the stationary runs).</p>"]
    rows = []
    for g in groups:
        if "error" in g:
            rows.append([_e(g["label"]), _num(g.get("runs")), "&mdash;", "&mdash;", "&mdash;",
                         "&mdash;", f'<span class="fail">not analyzed: {_e(g["error"])}</span>'])
            continue
        e, m = g.get("equation_of_state", {}), g.get("maxwell", {})
        rows.append([_e(g["label"]), f"{g['stationary_runs']}/{g['runs']}",
                     f"{_pct(e.get('max_rel_error_sde'))} / "
                     f"{_pct(e.get('median_rel_error_sde'))}",
                     f"{_pct(e.get('max_rel_error_discrete'))} / "
                     f"{_pct(e.get('median_rel_error_discrete'))}",
                     _e(m.get("relation", "not computed")), _pct(m.get("max_rel_error")),
                     "<br>".join(f"{_verdict(c['passed'])} {_e(c['check'])}"
                                 for c in g.get("checks", []))])
    out.append(_table(["optimizer", "stationary runs", "radius vs SDE: worst / median",
                       "radius vs discrete: worst / median", "Maxwell relation",
                       "max rel. error", "checks"], rows, left=1))
    for g in groups:
        slug = optimizer_slug(g)
        figs = {f"lr-nn-{k}.png": figures[f"lr-{slug}-nn-{k}.png"]
                for k in ("equation-of-state", "collapse", "entropy", "potential")
                if f"lr-{slug}-nn-{k}.png" in figures}
        body = _nn_protocol(g, figs)
        body = body.replace(f'<h3 id="lr">lr: {_e(_PROTO_NAME["lr"])}</h3>',
                            f'<h3 id="lr-{_e(slug)}">lr, {_e(g["label"])}</h3>', 1)
        out.append(body)
    return "".join(out)


def _non_si(res: dict, figures: dict[str, Path]) -> str:
    """Section: gas-law and Maxwell errors against the distance from scale invariance."""
    dist = res["distance"]
    out = ['<h3 id="non-si">Non-scale-invariant networks: errors against the distance from '
           "scale invariance</h3>",
           "<p>Every model variant trains <i>all</i> its trainable parameters as one group "
           "with the protocol; radius, volume and noise are measured on that group. Distance "
           "from scale invariance, medians over the stationary runs: <b>radial</b> = |&lang;"
           "&nabla;L, w&rang;| / (|&nabla;L| |w|) of the mean probe gradient (window mean), "
           "<b>radial rms</b> = the same for the minibatch gradients, <b>loss change</b> = "
           "max over c &isin; {1/2, 2} of |L(cw) - L(w)| / L(w) at the end of the window (the "
           "model as it runs, normalization eps included). The paper's analysis above uses "
           "the <i>si</i> runs only. Maxwell: the quadratic entropy fit of each variant's "
           "grid; slope ratio = mean fitted slope / theory (ideal 1).</p>"]
    rows = []
    for e in res["variants"]:
        note = e.get("maxwell_error") or e.get("entropy_fit_warning") or ""
        rows.append([_e(e["variant"]), _e(e["protocol"]), _num(e["dim"]),
                     f"{e['stationary_runs']}/{e['runs']}",
                     _num(e.get("si_radial_gradient_median"), 3),
                     _num(e.get("si_radial_gradient_rms_median"), 3),
                     _num(e.get("si_loss_change_median"), 3),
                     _pct(e.get("eos_median_rel_error_discrete"), 1),
                     _pct(e.get("eos_max_rel_error_discrete"), 1),
                     _pct(e.get("eos_median_rel_error_sde"), 1),
                     _pct(e.get("eos_max_rel_error_sde"), 1),
                     _pct(e.get("maxwell_max_rel_error"), 1),
                     _num(e.get("maxwell_slope_ratio"), 3), _num(e.get("entropy_fit_r2"), 4),
                     f"<small>{_e(note)}</small>"])
    out.append(_table(["variant", "protocol", "d", "stationary", "radial", "radial rms",
                       "loss change", "EOS median (discr.)", "EOS worst (discr.)",
                       "EOS median (SDE)", "EOS worst (SDE)", "Maxwell max error",
                       "slope ratio", "R<sup>2</sup>", "note"], rows, left=2))
    if res["correlations"]:
        out.append(f"<p>Spearman rank correlation of the distance ({_e(dist)}) with the "
                   "errors, 95% percentile bootstrap interval, p-value of &rho; = 0:</p>")
        out.append(_table(
            ["protocol", "over", "x", "y", "&rho;", "95% interval", "p", "n"],
            [[_e(c["protocol"]), _e(c["over"]), _e(c["x"]), _e(c["y"]), _num(c["rho"], 3),
              f"[{_num(c['ci_low'], 3)}, {_num(c['ci_high'], 3)}]", _num(c["p_value"], 2),
              str(c["n"])] for c in res["correlations"]], left=4))
    else:
        out.append('<p class="na">Too few stationary runs for a rank correlation.</p>')
    if "non-si-errors.png" in figures:
        out.append(_img(figures["non-si-errors.png"], "errors against the distance from "
                                                      "scale invariance (log-log)"))
    excl = [{"run": x["run"], "variant": e["variant"], "reasons": x["reasons"]}
            for e in res["variants"] for x in e["excluded"]]
    if excl:
        out.append(f"<details><summary>{len(excl)} excluded run(s)</summary>" + _table(
            ["run", "variant", "why"],
            [[_e(x["run"]), _e(x["variant"]), _e(x["reasons"])] for x in excl]) + "</details>")
    return "".join(out)


_GEN_NAMES = {"entropy": "S", "entropy_dir": "S_dir", "temperature": "T",
              "gap_loss": "gap (test - train loss)", "gap_acc": "gap (train - test acc.)",
              "eval_test_loss": "test loss", "eval_test_acc": "test accuracy"}


def _generalization(groups: list[dict], figures: dict[str, Path]) -> str:
    out = ['<h3 id="generalization">Entropy, temperature and generalization</h3>',
           "<p>Across the stationary runs: Spearman rank correlation &rho; of each state "
           "variable with each generalization outcome (window means of whole-set evaluations, "
           "BN in eval mode), with a 95% percentile bootstrap interval over runs and the "
           "p-value of &rho; = 0. Intervals that exclude 0 are shown in bold. Train loss and "
           "accuracy are measured on the training labels (including any random labels), test "
           "ones on clean held-out labels.</p>"]
    for g in groups:
        name = ("all protocols together" if g["protocol"] == "all" else
                f"protocol {g['protocol']}" + (f", {g['optimizer']}" if g["optimizer"] else ""))
        rows = []
        for c in g["correlations"]:
            sig = c["ci_low"] > 0 or c["ci_high"] < 0
            rho = f"{c['rho']:+.3f}"
            rows.append([_e(_GEN_NAMES.get(c["x"], c["x"])), _e(_GEN_NAMES.get(c["y"], c["y"])),
                         f"<b>{rho}</b>" if sig else rho,
                         f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]", _num(c["p_value"], 2),
                         str(c["n"])])
        out.append(f"<h4>{_e(name)} ({g['runs']} runs)</h4>" + _table(
            ["state", "outcome", "&rho;", "95% interval", "p", "runs"], rows, left=2))
    if "generalization.png" in figures:
        out.append(_img(figures["generalization.png"], "generalization against T and S"))
    return "".join(out)


# --------------------------------------------------------------------------------------------
# isotropic studies


def isotropic_section(s: dict, figures: Sequence[Path], general: dict | None, title: str,
                      sid: str) -> str:
    """An isotropic study: its ``summary.json`` (``s``), set-up, theory against measurement,
    entropy slopes, the networks' analysis of the same grid (``general``: the protocol's
    `thermosgd.analysis.analyze` entry, None or {"error"} to leave it out), potential argmins,
    its figures (PNG paths) and the non-stationary points."""
    c = s.get("config", {})
    proto = c.get("protocol", "?")
    key = "pressure" if proto == "sphere" else "radius"
    out = [f'<h2 id="{sid}">{_e(title)}</h2>',
           f"<p>Isotropic-noise model, protocol <b>{_e(proto)}</b> "
           f"({_e(_PROTO_NAME.get(proto, proto))}): {s.get('stationary_points')} of "
           f"{s.get('grid_points')} grid points stationary.</p>"]
    cfg = [[_e(k), _e(json.dumps(v)) if isinstance(v, list) else _num(v) if v is not None
            else '<span class="na">auto</span>'] for k, v in c.items() if v != []]
    out.append("<h3>Set-up</h3>" + _table(["parameter", "value"], cfg))

    rows = [[f"{_e(key)} vs discretization-corrected",
             _pct(s.get(f"{key}_max_rel_error_discrete"))],
            [f"{_e(key)} vs SDE (ideal-gas law)", _pct(s.get(f"{key}_max_rel_error_sde"))],
            ["energy U vs exact vMF", _pct(s.get("energy_max_rel_error_exact"))],
            ["energy U vs exact vMF + finite-step correction",
             _pct(s.get("energy_max_rel_error_discrete"))],
            ["entropy S_dir vs exact vMF (nats, absolute)",
             _num(s.get("entropy_dir_max_abs_error_exact"), 3)],
            ["entropy S_dir vs exact vMF + finite-step shift (nats, absolute)",
             _num(s.get("entropy_dir_max_abs_error_discrete"), 3)]]
    out.append("<h3>Theory against measurement (worst over stationary points)</h3>"
               + _table(["quantity", "worst error"], rows))

    mrows = []
    for name, m in (s.get("maxwell") or {}).items():
        spread = m.get("std_over_rows", m.get("stderr"))
        mrows.append([_e(name), _num(m.get("measured")), _num(spread, 2), _num(m.get("theory")),
                      _num(m.get("normalized")), str(m.get("rows", ""))])
    if mrows:
        out.append("<h3>Entropy slopes (linear fits along the grid rows)</h3>" + _table(
            ["slope", "measured", "&plusmn; (std over rows)", "theory", "normalized by (d-1)/2",
             "rows"], mrows))
        ref = {"elr": "paper toy (d=3): dS/dlog(wd) normalized -0.9989 &plusmn; 0.0052",
               "lr": "paper toy (d=3): difference 1.0008; dS/dlog(wd) 0.0131 &plusmn; 0.0071, "
                     "dS/dlog(lr) 1.0139 &plusmn; 0.0090"}.get(proto)
        if ref:
            out.append(f'<p class="meta">Reference: {ref} (paper.md section 13).</p>')

    # the networks' analysis applied to the same grid (quadratic fit, paper's Maxwell numbers)
    if general and "maxwell" in general:
        out.append("<h3>The networks' analysis on this grid (quadratic fit of S)</h3>"
                   + _maxwell_table(general))
    if general and "collapse" in general:
        coll = general["collapse"]["quantities"]
        out.append(f"<p>Collapse ratios onto {_e(general['collapse']['variable'])}: "
                   + ", ".join(f"{_e(k)} {_num(v['ratio'], 3)}" for k, v in coll.items())
                   + ".</p>")

    pot = s.get("potential_argmin") or {}
    if pot.get("targets"):
        out.append(f"<h3>Potential argmin (max distance {pot.get('max_distance_cells')} cell(s))"
                   "</h3>" + _table(
                       ["potential", "target (grid index)", "argmin", "distance (cells)"],
                       [[_e(t["potential"]), _e(t["target"]), _e(t["argmin"]),
                         str(t["distance"])] for t in pot["targets"]]))

    if figures:
        out.append("<h3>Figures</h3>" + "".join(
            _img(f, f.name.removesuffix(".png").replace("-", " ")) for f in figures))
    ns = s.get("non_stationary") or []
    if ns:
        keys = [k for k in ns[0] if k != "why"]
        out.append(f"<h3>Non-stationary points ({len(ns)})</h3>" + _table(
            [*keys, "why"], [[*(_num(x[k]) for k in keys), _e(x["why"])] for x in ns],
            left=0))
    else:
        out.append("<h3>Non-stationary points</h3><p>None.</p>")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# scheduled runs (thermosgd schedule track)


def schedule_section(doc: dict, figures: Sequence[Path], title: str, sid: str) -> str:
    """A tracked schedule (``schedule.json`` of `thermosgd.schedules.track`): set-up, the
    trajectory against the equilibrium curve, its figures (PNG paths)."""
    c, s, noise = doc.get("config") or {}, doc.get("summary") or {}, doc.get("noise") or {}
    rate = "lr" if c.get("protocol") == "lr" else "elr"
    out = [f'<h2 id="{sid}">{_e(title)}</h2>',
           f"<p>BN-MLP (d = {_e(doc.get('dim'))}) on digits, protocol <b>{_e(c.get('protocol'))}"
           f"</b>, <b>{_e(c.get('schedule'))}</b> schedule of {_e(rate)} from "
           f"{_num(c.get(rate))}, wd {_num(c.get('wd'))} ({_e(c.get('wd_schedule'))}), "
           f"{_e(c.get('steps'))} steps after a burn-in of {_e(c.get('burn_in'))}. Noise curve "
           f"sigma<sup>2</sup>(elr), Q(elr): {_e(noise.get('source', '?'))}. The lagged path "
           "iterates the mean one-step radial map with Q at its stationary value for the "
           "current effective learning rate; the radial map driven by the measured Q isolates "
           "the radial dynamics (docs/schedules.md).</p>"]
    cfg = [[_e(k), _e(json.dumps(v)) if isinstance(v, list) else _num(v) if v is not None
            else '<span class="na">-</span>'] for k, v in c.items()]
    out.append("<h3>Set-up</h3>" + _table(["parameter", "value"], cfg))
    rows = [["max |V/V<sub>eq</sub> - 1|, measured", _pct(s.get("max_abs_gap_measured"))],
            ["max |V/V<sub>eq</sub> - 1|, lagged path", _pct(s.get("max_abs_gap_predicted"))],
            ["V: RMS rel. error of the lagged path", _pct(s.get("volume_rms_rel_error_lagged"))],
            ["V: RMS rel. error of the equilibrium curve",
             _pct(s.get("volume_rms_rel_error_equilibrium"))],
            ["V: RMS rel. error of the radial map with the measured Q",
             _pct(s.get("volume_rms_rel_error_lagged_measured_q"))],
            ["T: RMS rel. error of the lagged path",
             _pct(s.get("temperature_rms_rel_error_lagged"))],
            ["T: RMS rel. error of the equilibrium curve",
             _pct(s.get("temperature_rms_rel_error_equilibrium"))],
            ["V / T: RMS rel. error of the path with relaxing noise (angular rate h = "
             f"{_num(doc.get('angular_rate'), 3)})",
             f"{_pct(s.get('volume_rms_rel_error_angular'))} / "
             f"{_pct(s.get('temperature_rms_rel_error_angular'))}"],
            ["radial relaxation time (steps), min..max",
             f"{_num(s.get('tau_min'), 3)}..{_num(s.get('tau_max'), 3)}"],
            ["max quasi-static ratio tau |d log V<sub>eq</sub>/dt|",
             _num(s.get("max_quasi_static"), 3)]]
    if "milestone" in s:
        fit = s.get("q_relaxation")
        rows.append([f"relaxation time of Q after step {_e(s['milestone'])} (fit)",
                     '<span class="na">no fit</span>' if not fit else
                     f"{_num(fit['tau'], 3)} &plusmn; {_num(fit['tau_se'], 2)}"])
        rows.append(["radial relaxation time there", _num(s.get("tau_after_milestone"), 3)])
        rows.append(["angular rate h = 1 / (tau<sub>Q</sub> mean elr) implied",
                     _num(s.get("angular_rate_fit"), 3)])
    out.append("<h3>Trajectory against the equilibrium curve</h3>"
               + _table(["quantity", "value"], rows))
    if figures:
        out.append("<h3>Figures</h3>" + "".join(
            _img(f, f.name.removesuffix(".png").replace("-", " ")) for f in figures))
    return "".join(out)


def prediction_section(doc: dict, figures: Sequence[Path], title: str, sid: str) -> str:
    """Predicted stationary states (``prediction.json`` of `thermosgd.schedules`): errors of
    the predicted radius and temperature per validation, and its figures (PNG paths)."""
    out = [f'<h2 id="{sid}">{_e(title)}</h2>',
           "<p>The noise curve sigma<sup>2</sup>(elr), Q(elr) fitted on one protocol's "
           "stationary runs predicts the other protocol's runs from their hyperparameters "
           "alone (docs/schedules.md). Relative errors of the predicted radius and "
           "temperature; 'inside': runs whose predicted stationary elr lies in the fitted "
           "range.</p>"]
    rows = []
    for v in doc.get("validations", []):
        noise = v.get("noise") or {}
        r, ri, t, ti = (v.get(k) or {} for k in ("radius", "radius_inside", "temperature",
                                                 "temperature_inside"))
        rows.append([_e(v.get("label")), _e(noise.get("source", "")),
                     f"{_e(v.get('n'))} ({_e(v.get('n_extrapolated'))} / "
                     f"{_e(v.get('n_unreachable'))})",
                     f"{_pct(r.get('median'))} / {_pct(r.get('max'))}",
                     f"{_pct(ri.get('median'))} / {_pct(ri.get('max'))}",
                     f"{_pct(t.get('median'))} / {_pct(t.get('max'))}",
                     f"{_pct(ti.get('median'))} / {_pct(ti.get('max'))}"])
    out.append(_table(["fit -> predict", "noise curve", "runs (outside range / unreachable)",
                       "radius: median / max", "radius inside", "T: median / max",
                       "T inside"], rows, left=2))
    out += [_img(f, "predicted against measured radius and temperature") for f in figures]
    return "".join(out)


# --------------------------------------------------------------------------------------------
# the page


def error_section(title: str, sid: str, message: str) -> str:
    """A section saying why a table could not be analyzed."""
    return (f'<h2 id="{sid}">{_e(title)}</h2><p class="err">Cannot analyze this table: '
            f"{_e(message)}</p>")


def render_page(sections: Sequence[tuple[str, str]], *, title: str, origin: str,
                now: str | None = None) -> str:
    """The HTML page: ``sections`` are (table-of-contents title, HTML) pairs, their anchors
    ``s0``, ``s1``, ... in order; ``origin`` says what the report is of; ``now`` the date shown
    (default: the current time, minutes)."""
    now = now or _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    toc = "".join(f'<li><a href="#s{i}">{_e(n)}</a></li>' for i, (n, _) in enumerate(sections))
    body = "".join(h for _, h in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="icon" href="data:,"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head><body>"
            f"<h1>{_e(title)}</h1><p class=\"meta\">thermosgd {_e(__version__)}, {now}; "
            f"source: {_e(origin)}</p>"
            "<p class=\"meta\">Thermodynamics of SGD on scale-invariant parameters "
            "(arXiv 2511.07308): temperature T, pressure p = weight decay, volume V = r<sup>2"
            "</sup>/2, energy U = training loss, entropy S of the stationary state; ideal-gas "
            "law pV = (d-1)T/2 and the Maxwell relations.</p>"
            f"<nav><ul>{toc}</ul></nav>{body}</body></html>\n")
