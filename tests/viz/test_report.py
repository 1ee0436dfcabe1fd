"""The HTML sections render what they are given (`thermosgd.viz.report`): escaping, the
paper's reference rows, optional parts (acceptance, checks, the networks' analysis of an
isotropic grid) left out when absent, one self-contained page."""

import re

import pytest

from tests.analysis.tables import _merge, ideal_gas_table, optimizer_gas_table
from thermosgd import analysis as A
from thermosgd.viz import report as R
from thermosgd.workflows.analyze import ACCEPTANCE


@pytest.fixture(scope="module")
def result():
    t = _merge(ideal_gas_table("elr", delta=0.05), ideal_gas_table("lr", delta=-0.1))
    t["stationary"][3] = False
    t["reasons"][3] = "radius drifting <2%> & loss trending"
    return A.analyze(t, thresholds=ACCEPTANCE)


def test_nn_section_tables_escaping_and_paper_rows(result):
    html = R.nn_section(result, {}, "Digits <MLP>", "s3",
                        {"sweep.json": '{"name": "digits-mlp", "grid": {"elr": [0.001]}}',
                         "notes.txt": "not a config file"})
    assert html.startswith('<h2 id="s3">Digits &lt;MLP&gt;</h2>')
    assert '<h4>sweep.json</h4><pre>{\n  &quot;name&quot;: &quot;digits-mlp&quot;' in html
    assert "notes.txt" not in html and "<img" not in html
    assert "radius drifting &lt;2%&gt; &amp; loss trending" in html and "<2%>" not in html
    # this analysis, then the paper's rows of the protocol (paper.md 9.7), for reference
    elr = html[html.index('id="elr"'):html.index('id="lr"')]
    assert elr.count('<tr class="ref">') == sum(r["protocol"] == "elr"
                                                for r in R.PAPER_NN_RESULTS) == 4
    assert "paper: ConvNet-8 / CIFAR-10" in elr and "6.52%" in elr
    m = result["protocols"]["elr"]["maxwell"]
    assert f"{100 * m['max_rel_error']:.2f}%" in elr
    assert "Acceptance checks" in html
    verdict = "all checks passed" if result["acceptance"]["all_passed"] else "some checks failed"
    assert verdict in html


def test_parts_that_are_not_given_are_left_out():
    t = _merge(optimizer_gas_table("sgd"), optimizer_gas_table("momentum"))
    r = A.analyze(t)  # no thresholds: no acceptance, no checks per optimizer group
    html = R.nn_section(r, {}, "x", "s0")
    assert "Acceptance checks" not in html and 'id="optimizers"' in html
    assert "paper:" not in html.split('id="lr-momentum0.9"')[1]  # paper rows: SGD only
    iso = {"config": {"protocol": "elr", "dim": 3, "elr": [0.1], "wd": [0.01]},
           "grid_points": 1, "stationary_points": 1, "non_stationary": []}
    for general in (None, {"error": "too few"}):
        page = R.isotropic_section(iso, [], general, "iso", "s1")
        assert "The networks' analysis" not in page and "<img" not in page
    assert R.error_section("n <1>", "s2", "only 3 runs").endswith(
        '<p class="err">Cannot analyze this table: only 3 runs</p>')


def test_render_page_is_one_self_contained_page():
    page = R.render_page([("A <b>", "<h2 id=\"s0\">A</h2>"), ("B", "<p>b</p>")],
                         title="T & U", origin="/some/dir", now="2026-01-02 03:04")
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</body></html>\n")
    assert "<title>T &amp; U</title>" in page
    assert ", 2026-01-02 03:04; source: /some/dir</p>" in page
    assert '<li><a href="#s0">A &lt;b&gt;</a></li><li><a href="#s1">B</a></li>' in page
    assert "<script" not in page and not re.search(r'(src|href)="(?!data:|#)', page)
