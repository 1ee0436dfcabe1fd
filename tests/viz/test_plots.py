"""The figures draw what they are given (`thermosgd.viz.plots`): the arrays of
`thermosgd.analysis.figure_data`, the maps of an isotropic study; the marked argmin is the
minimum of the drawn map."""

import numpy as np
import pytest

from tests.analysis.tables import ideal_gas_table, optimizer_gas_table
from thermosgd import analysis as A
from thermosgd.viz import plots

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def drawn(monkeypatch):
    """The figures `plots` saves, by file name (still open: their artists can be read)."""
    figs = {}
    save = plots._save

    def keep(fig, path):
        figs[path.name] = fig
        fig.canvas.draw()  # lay out as when saving
        return path

    monkeypatch.setattr(plots, "_save", keep)
    yield figs
    plots._save = save
    for f in figs.values():
        plots.plt.close(f)


def _marker(ax, label: str) -> tuple[float, float]:
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return float(line.get_xdata()[0]), float(line.get_ydata()[0])


def test_adamw_potential_figure_marks_the_minimum_of_the_drawn_map(drawn, tmp_path):
    """Each panel's colours are the map the analysis computed (G - min G at lambda sqrt(s)),
    and the white square, the argmin the analysis reports, sits on its smallest value."""
    t = optimizer_gas_table("adamw")
    res = A.analyze(t)
    arrays = A.optimizer_figure_arrays(t, res["optimizers"])
    paths = plots.optimizer_figures(res["optimizers"], arrays, tmp_path)
    assert [p.name for p in paths] == [f"lr-adamw0.9-0.999-nn-{k}.png" for k in plots.NN_FIGURES]
    fig = drawn["lr-adamw0.9-0.999-nn-potential.png"]
    panels = [ax for ax in fig.axes if ax.get_title().startswith("target cell")]
    assert len(panels) == len(arrays[0]["potential"]["maps"]) == 9
    for ax, m in zip(panels, arrays[0]["potential"]["maps"], strict=True):
        (sc,) = ax.collections
        values, where = sc.get_array(), sc.get_offsets()
        k = int(np.argmin(values))
        assert tuple(where[k]) == _marker(ax, "argmin")
        assert k == m["argmin"] and values[k] == 1e-4  # the map's zero, clipped for LogNorm
        top = np.nanmax(m["map"])
        np.testing.assert_array_equal(values, np.clip(m["map"] / top, 1e-4, 1.0))


def test_nn_figures_of_every_protocol(tmp_path):
    for p in ("elr", "sphere"):
        t = ideal_gas_table(p)
        res = A.analyze(t)
        paths = plots.nn_figures(res, A.figure_arrays(t, res), tmp_path)
        assert [x.name for x in paths] == [f"{p}-nn-{k}.png" for k in plots.NN_FIGURES]
        assert all(x.read_bytes().startswith(PNG) for x in paths)


class _Config:
    protocol, dim, grid_shape, axes = "elr", 3, (3, 3), ("elr", "wd")


def _iso_table() -> dict:
    """A 3x3 isotropic-study table with the columns `isotropic_figures` reads."""
    elr, wd = (a.ravel() for a in np.meshgrid([0.02, 0.05, 0.1], [0.01, 0.03, 0.1],
                                              indexing="ij"))
    T = elr / 2
    r = np.sqrt(2 * T / wd)
    t = {"elr": elr, "wd": wd, "stationary": np.ones(9, bool), "temperature": T,
         "radius": r, "radius_theory": r, "radius_discrete": 1.01 * r}
    for k, v in (("energy", 10 * T), ("entropy_dir", np.log(T)), ("entropy", np.log(T) + 1)):
        t[k] = v
        for s in ("_theory", "_equipartition", "_se"):
            t[k + s] = np.full(9, 0.01) if s == "_se" else t[k]
    return t


def test_isotropic_potential_maps_are_drawn_as_given(drawn, tmp_path):
    # the maps are given (the study's summary computes them): the marked argmin of each
    # panel is where its map is zero
    maps = []
    for i, j in ((0, 0), (1, 2), (2, 1)):
        m = np.arange(1.0, 10.0).reshape(3, 3)
        m[(i + 1) % 3, j] = 0.0
        maps.append({"target": [i, j], "map": m})
    paths = plots.isotropic_figures(_iso_table(), _Config(), tmp_path, maps)
    assert [p.name for p in paths] == [f"elr-{k}.png" for k in
                                       ("equation-of-state", "energy-entropy", "entropy",
                                        "potential")]
    fig = drawn["elr-potential.png"]
    for m in maps:
        i, j = m["target"]
        panel = next(ax for ax in fig.axes if ax.get_title() == f"target ({i}, {j})")
        assert _marker(panel, "argmin") == ((i + 1) % 3, j)
        assert _marker(panel, "target") == (i, j)
