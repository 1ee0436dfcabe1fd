"""Analyzing a directory and reporting on it (`thermosgd.workflows.analyze`): analysis.json
and figures, the command line, the HTML report of sweeps, isotropic studies and nested trees
(content, self-containment, rendering in headless Chromium)."""

import base64
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from tests.analysis.tables import (
    VARIANTS,
    _merge,
    _variant_table,
    ideal_gas_table,
    optimizer_gas_table,
)
from thermosgd import analysis as A
from thermosgd.io import write_csv
from thermosgd.sim.isotropic import IsotropicConfig
from thermosgd.viz.plots import optimizer_figures
from thermosgd.workflows.analyze import (
    ACCEPTANCE,
    acceptance_lines,
    find_sections,
    format_analysis,
    render_report,
    run_analysis,
    write_report,
)
from thermosgd.workflows.isotropic import run_study

PNG = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------
# analysis.json, figures, the command line


def test_write_and_run_analysis(tmp_path):
    t = _merge(ideal_gas_table("elr", eos_noise=0.01), ideal_gas_table("sphere"))
    write_csv(tmp_path / "results.csv", t)
    r = run_analysis(tmp_path)
    doc = json.loads((tmp_path / "analysis.json").read_text())  # strict JSON: no NaN
    assert doc["protocols"]["elr"]["maxwell"]["max_rel_error"] == pytest.approx(
        r["protocols"]["elr"]["maxwell"]["max_rel_error"])
    assert sorted(doc["figures"]) == sorted(
        f"{p}-nn-{k}.png" for p in ("elr", "sphere")
        for k in ("equation-of-state", "collapse", "entropy", "potential"))
    for name in doc["figures"]:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_analysis_writes_nothing_when_it_fails(tmp_path):
    t = ideal_gas_table("elr")
    t["dim"][0] = 7.0  # runs of two models: not analyzable together
    write_csv(tmp_path / "results.csv", t)
    (tmp_path / "analysis.json").write_text('{"old": 1}')
    with pytest.raises(ValueError, match="the runs have dim"):
        run_analysis(tmp_path)
    assert (tmp_path / "analysis.json").read_text() == '{"old": 1}'
    assert not list(tmp_path.glob("*.png"))


def test_format_analysis():
    t = _merge(ideal_gas_table("elr", delta=0.05), ideal_gas_table("lr", delta=0.2),
               ideal_gas_table("sphere"))
    text = format_analysis(A.analyze(t, thresholds=ACCEPTANCE))
    assert "FAILED lr Maxwell" in text and "== sphere: 24/24 stationary runs" in text
    assert "acceptance" not in format_analysis(A.analyze(t))  # no thresholds, no verdict
    opt = _merge(optimizer_gas_table("sgd"), optimizer_gas_table("adamw"))
    text = format_analysis(A.analyze(opt, thresholds=ACCEPTANCE))
    assert "== lr, adamw 0.9/0.999: 20/20 stationary runs" in text
    assert "dS/dlog(lr) - dS/dlog(wd) = d-1" in text


def test_cli_analyze(tmp_path, capsys):
    from thermosgd.cli import main

    write_csv(tmp_path / "results.csv", _merge(ideal_gas_table("elr"), ideal_gas_table("lr")))
    assert main(["analyze", str(tmp_path), "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "== elr: 30/30 stationary runs" in out and "acceptance: all checks passed" in out
    assert json.loads((tmp_path / "analysis.json").read_text())["n_runs"] == 65
    t = ideal_gas_table("elr")
    t["dim"][0] = 7.0
    write_csv(tmp_path / "bad" / "results.csv", t)
    assert main(["analyze", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("thermosgd: error: protocol 'elr': the runs have dim")
    assert err.count("\n") == 1 and not (tmp_path / "bad" / "analysis.json").exists()
    assert main(["analyze", str(tmp_path / "bad"), "--lenient", "--no-figures"]) == 0
    assert "not analyzed" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# the report of a directory


def _nn_table(protocols=("elr", "lr", "sphere")):
    kw = {"elr": {"grad_ratio": 0.3, "delta": 0.05}, "lr": {"delta": -0.1}, "sphere": {}}
    t = _merge(*(ideal_gas_table(p, eos_noise=0.01, **kw[p]) for p in protocols))
    t["stationary"][3] = False
    t["reasons"][3] = "radius drifting <2%> & loss trending"  # must be escaped in HTML
    t["diverged"][-1], t["stationary"][-1] = True, False
    return t


def _images(page: str) -> list[bytes]:
    srcs = re.findall(r'<img src="([^"]*)"', page)
    out = []
    for s in srcs:
        assert s.startswith("data:image/png;base64,"), s[:40]
        out.append(base64.b64decode(s.split(",", 1)[1], validate=True))
    return out


def _self_contained(page: str) -> None:
    # no scripts, no external references (every src is a data: URI, no links but anchors)
    assert "<script" not in page
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    assert "url(" not in page and "@import" not in page


@pytest.fixture(scope="module")
def nn_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    write_csv(d / "results.csv", _nn_table())
    (d / "sweep.json").write_text(json.dumps({"name": "digits-mlp", "grid": {"elr": [1e-3]}}))
    run_analysis(d)
    return d


@pytest.fixture(scope="module")
def iso_dir(tmp_path_factory):
    # a tiny real isotropic study (3x3 grid, 2e4 steps: ~3 s once numba's cache is warm)
    d = tmp_path_factory.mktemp("iso") / "elr"
    c = IsotropicConfig("elr", elr=(0.02, 0.05, 0.1), wd=(0.01, 0.03, 0.1), steps=20_000,
                        queue_size=100)
    run_study(c, d, progress=False)
    return d


def test_report_of_an_analysis_directory(nn_dir, tmp_path):
    out = write_report(nn_dir, tmp_path / "report.html", title="Digits <MLP>")
    page = out.read_text()
    _self_contained(page)
    imgs = _images(page)
    assert len(imgs) == 12 and all(b.startswith(PNG) for b in imgs)
    assert "<title>Digits &lt;MLP&gt;</title>" in page
    # set-up: the sweep's config; the tables; the paper's numbers alongside
    assert "digits-mlp" in page and "sweep.json" in page
    for text in ("Equation of state", "Maxwell relation dS/dlog(wd) = -(d-1)/2",
                 "dS/dlog(lr) - dS/dlog(wd) = (d-1)/2", "Collapse onto lr*wd",
                 "G = U - T* S + p* V", "F = U - T* S (per radius)",
                 "paper: ConvNet-8 / CIFAR-10", "6.52%", "17.60%", "Acceptance checks"):
        assert text in page, text
    r = json.loads((nn_dir / "analysis.json").read_text())
    assert f"{100 * r['protocols']['elr']['maxwell']['max_rel_error']:.2f}%" in page
    # excluded runs and why, escaped
    assert "elr/run003" in page and "radius drifting &lt;2%&gt; &amp; loss trending" in page
    assert "diverged; flagged non-stationary" in page
    assert "<2%>" not in page


def test_report_analyzes_a_collected_table_without_writing_there(tmp_path):
    d = tmp_path / "sweep"
    write_csv(d / "results.csv", _nn_table(("elr",)))  # one protocol: 4 figures
    page = render_report(d)
    assert len(_images(page)) == 4
    assert sorted(p.name for p in d.iterdir()) == ["results.csv"]


def test_report_of_a_result_dict(tmp_path):
    t = _nn_table(("sphere",))
    r = A.analyze(t, thresholds=ACCEPTANCE)
    assert len(_images(render_report(r))) == 0
    page = render_report(r, table=t)
    assert len(_images(page)) == 4 and "source: an analysis result" in page


def test_report_of_an_isotropic_study_and_a_nested_directory(iso_dir, nn_dir, tmp_path):
    page = render_report(iso_dir)
    _self_contained(page)
    s = json.loads((iso_dir / "summary.json").read_text())
    assert len(_images(page)) == len(s["figures"]) == 4
    assert "Isotropic model" in page and "Entropy slopes" in page and "dS/dlog(wd)" in page
    assert f"{s['maxwell']['dS/dlog(wd)']['measured']:.4g}" in page
    assert "The networks' analysis on this grid" in page
    # a reproduce-like tree: isotropic/<protocol> studies and a network sweep
    root = tmp_path / "repro"
    shutil.copytree(iso_dir, root / "isotropic" / "elr")
    shutil.copytree(nn_dir, root / "nn")
    (root / "nn" / "runs" / "x").mkdir(parents=True)  # run directories are not searched
    assert [(k, p.relative_to(root).as_posix()) for k, p in find_sections(root)] == [
        ("isotropic", "isotropic/elr"), ("nn", "nn")]
    page = render_report(root)
    assert len(_images(page)) == 4 + 12
    assert page.index("Isotropic model: isotropic/elr") < page.index("Networks: nn")


def test_report_of_a_failed_protocol(tmp_path):
    t = _merge(ideal_gas_table("elr"), ideal_gas_table("lr"))
    t["stationary"][:27] = False
    d = tmp_path / "sweep"
    write_csv(d / "results.csv", t)
    page = render_report(d)
    assert ("<li>Maxwell relation (quadratic entropy fit): needs &gt;= 6 stationary runs on a "
            "2-D grid (&gt;= 3 values per axis), have 3") in page
    assert "not assessed at this size" in page  # no verdict on parts the runs do not give
    t["dim"][0] = 7.0
    write_csv(d / "results.csv", t)
    assert "Not analyzed: protocol &#x27;elr&#x27;: the runs have dim" in render_report(d)


def test_nothing_to_report(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="nothing to report"):
        write_report(tmp_path / "empty", tmp_path / "r.html")
    with pytest.raises(ValueError, match="not a directory"):
        write_report(tmp_path / "missing", tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


# ---------------------------------------------------------------------------------------------
# headless Chromium

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not installed (Debian: apt-get install chromium chromium-driver)")

# Injected first in <head> of a copy of the page: records script and resource errors and
# console.error calls, then on load writes the image status into the DOM for --dump-dom.
PROBE = """<script>
window.__errors=[];
window.addEventListener('error',function(e){var t=e.target;window.__errors.push('error: '+
(e.message||(t&&(t.src||t.href||t.tagName))||'unknown').slice(0,120));},true);
(function(){var ce=console.error;console.error=function(){window.__errors.push(
'console.error: '+Array.prototype.join.call(arguments,' '));return ce.apply(console,arguments);};
})();
window.addEventListener('load',function(){var im=document.images,bad=[];
for(var i=0;i<im.length;i++){if(!(im[i].complete&&im[i].naturalWidth>0))bad.push(i);}
var d=document.createElement('pre');d.id='__probe';d.textContent='PROBE'+JSON.stringify(
{images:im.length,broken:bad,errors:window.__errors})+'EBORP';document.body.appendChild(d);});
</script>"""


def _chromium(page_path, tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}",
         "--enable-logging=stderr", "--v=0", *args, page_path.resolve().as_uri()],
        capture_output=True, text=True, timeout=60, check=False)


def _render(html_path, tmp_path) -> dict:
    """Load a copy of the page with PROBE in Chromium; return the probe's findings plus the
    console messages Chromium logged."""
    probed = tmp_path / f"probed-{html_path.name}"
    probed.write_text(html_path.read_text().replace("<head>", "<head>" + PROBE, 1))
    res = _chromium(probed, tmp_path, "--virtual-time-budget=10000", "--dump-dom")
    m = re.search(r'<pre id="__probe">PROBE(.*?)EBORP</pre>', res.stdout)
    assert m, f"no probe result (exit {res.returncode}): {res.stderr[-2000:]}"
    out = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    out["console"] = [ln for ln in res.stderr.splitlines() if ":CONSOLE" in ln]
    return out


@needs_chromium
def test_probe_detects_broken_images_and_console_errors(tmp_path):
    # the harness itself: one good 1x1 PNG, one corrupt image, one console.error
    good = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAA"
            "AABJRU5ErkJggg==")
    p = tmp_path / "bad.html"
    p.write_text(f'<!DOCTYPE html><html><head></head><body><img src="data:image/png;base64,'
                 f'{good}"><img src="data:image/png;base64,AAAA">'
                 "<script>console.error('boom')</script></body></html>")
    r = _render(p, tmp_path)
    assert r["images"] == 2 and r["broken"] == [1]
    assert any("boom" in e for e in r["errors"]) and r["console"]


@needs_chromium
def test_reports_render_in_chromium(nn_dir, iso_dir, tmp_path):
    for name, src, n_img in (("nn.html", nn_dir, 12), ("iso.html", iso_dir, 4)):
        out = write_report(src, tmp_path / name)
        r = _render(out, tmp_path)
        assert r["images"] == n_img and r["broken"] == [], (name, r)
        assert r["errors"] == [] and r["console"] == [], (name, r)
    shot = tmp_path / "shot.png"
    _chromium(tmp_path / "nn.html", tmp_path, "--hide-scrollbars", "--window-size=1280,2000",
              f"--screenshot={shot}")
    assert shot.read_bytes().startswith(PNG)
    assert np.frombuffer(shot.read_bytes()[16:24], dtype=">u4").tolist() == [1280, 2000]


def test_cli_report(nn_dir, tmp_path, capsys):
    from thermosgd.cli import main

    assert main(["report", str(nn_dir), "--out", str(tmp_path / "r.html"), "--title", "T"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'r.html'}"
    assert "<title>T</title>" in (tmp_path / "r.html").read_text()
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "nothing to report" in capsys.readouterr().err


def test_non_si_section_from_a_sweep_directory(tmp_path):
    """A table with model variants: the paper's sections for the SI runs, plus the non-SI
    section (per-variant table, rank correlations, the log-log figure)."""
    t = _variant_table(VARIANTS)
    t["stationary"][-1] = False
    t["reasons"][-1] = "loss trending"
    write_csv(tmp_path / "results.csv", {k: np.asarray(v, dtype=object) for k, v in t.items()})
    page = render_report(tmp_path)
    _self_contained(page)
    i = page.index('id="non-si"')
    sec = page[i:]
    for name, *_ in VARIANTS:
        assert f'<td class="l">{name}</td>' in sec
    assert "Maxwell max rel. error" in sec and "1 excluded run(s)" in sec
    assert "head/elr/run008" in sec and "loss trending" in sec
    imgs = _images(sec)
    assert len(imgs) == 1 and imgs[0].startswith(PNG)


def test_optimizer_section(tmp_path):
    """Momentum and AdamW runs: the paper's lr section keeps SGD; one optimizer section with the
    summary table and a subsection per optimizer (its Maxwell relation, no paper rows for
    momentum and AdamW); a failing group is shown as FAIL. Figures: the four fixed-LR figures
    of a group, named after it (drawn for one group: matplotlib is the slow part)."""
    bad = optimizer_gas_table("adamw", radius_power=4)
    t = _merge(optimizer_gas_table("sgd"), optimizer_gas_table("momentum"), bad)
    result = A.analyze(t, strict=False, thresholds=ACCEPTANCE)
    page = render_report(result)
    _self_contained(page)
    sec = page[page.index('id="optimizers"'):]
    for sid in ("lr-sgd", "lr-momentum0.9", "lr-adamw0.9-0.999"):
        assert f'id="{sid}"' in sec
    adamw = sec[sec.index('id="lr-adamw0.9-0.999"'):]
    assert "dS/dlog(lr) - dS/dlog(wd) = d-1" in adamw and "paper:" not in adamw
    assert "FAIL" in sec.split('id="lr-sgd"')[0]  # the summary table flags the AdamW group
    groups = result["optimizers"][2:]
    paths = optimizer_figures(groups, A.optimizer_figure_arrays(bad, groups), tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        f"lr-adamw0.9-0.999-nn-{k}.png" for k in ("equation-of-state", "collapse", "entropy",
                                                   "potential"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


@pytest.mark.parametrize("grid,n_stationary", [(((0.1,), (0.01,)), 1),
                                               (((0.1, 0.3), (0.01, 0.03)), 1),
                                               (((0.1, 0.3), (0.01, 0.03)), 0)])
def test_report_of_a_small_sweep_shows_what_there_is(tmp_path, grid, n_stationary):
    """A 1-run and a 4-run sweep: the set-up names d and the stationary count (no n/a, no
    unlabeled column), the equation of state and every run's state are shown, the figure
    that can be drawn is embedded, and what needs more runs is listed with the reason."""
    t = ideal_gas_table("lr", rates=grid[0], second=grid[1])
    n = t["radius"].size
    t["stationary"][n_stationary:] = False
    t["run"] = np.array([f"run{k}" for k in range(n)], dtype=object)
    write_csv(tmp_path / "results.csv", t)
    text = render_report(tmp_path)
    setup = re.search(r"<h3>Set-up</h3>(.*?)</table>", text, flags=re.S).group(1)
    assert "<th></th>" not in setup and "<th class=\"l\"></th>" not in setup
    assert 'class="na"' not in setup
    assert f"<td>{A.analyze(t)['protocols']['lr']['dim']}</td><td>{n}</td>" \
           f"<td>{n_stationary}</td>" in setup
    assert "<h4>Not computed</h4>" in text
    assert ("Maxwell relation (quadratic entropy fit): needs &gt;= 6 stationary runs on a 2-D "
            f"grid (&gt;= 3 values per axis), have {n_stationary}") in text
    assert f"all {n} runs, measured state" in text
    assert all(f"run{k}" in text for k in range(n))
    assert ("<h4>Equation of state" in text) == (n_stationary > 0)
    assert text.count("data:image/png;base64,") == 1  # the equation-of-state figure
    assert "lr: equation of state</figcaption>" in text


def test_acceptance_lines_never_fail_what_the_size_cannot_resolve():
    # issue 10, item 6: a 3x3 elr grid (the quick preset's size) passes what it resolves and
    # lists the potential check as not assessed, with what it needs; a resolved violation
    # (lr, 20% Maxwell error on 7x5) is FAILED
    small = ideal_gas_table("elr", rates=(1e-3, 3e-3, 1e-2), second=(1e-3, 1e-2, 1e-1))
    lines = acceptance_lines(A.analyze(small, thresholds=ACCEPTANCE)["acceptance"])
    assert lines[0] == ("acceptance: 2 check(s) passed, none failed; 1 not assessed at this "
                        "size:")
    assert lines[1].startswith("   not assessed: elr potential argmin distance to target "
                               "(cells): on a 3-value axis")
    assert "FAILED" not in "\n".join(lines)
    bad = acceptance_lines(A.analyze(_merge(small, ideal_gas_table("lr", delta=0.2)),
                                   thresholds=ACCEPTANCE)["acceptance"])
    assert bad[0].startswith("acceptance: FAILED lr Maxwell max relative error")
    assert bad[0].endswith("; 1 not assessed at this size:")
    assert acceptance_lines(A.analyze(ideal_gas_table("elr"), thresholds=ACCEPTANCE)[
        "acceptance"]) == ["acceptance: all checks passed"]
