"""`thermosgd reproduce`: presets, the end-to-end pipeline on a tiny preset, resumability."""

import pytest

from thermosgd import reproduce as rp

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_presets_expand_to_valid_sweeps():
    for name, p in rp.PRESETS.items():
        spec = rp.nn_spec(name, data_dir="/data" if p.needs_data_dir else None)
        from thermosgd.sweep import expand

        runs = expand(spec)
        protocols = {c["protocol"] for _, c in runs}
        if name == "cpu-nonsi":  # one protocol, every mlp variant
            from thermosgd.models import MLP_VARIANTS

            assert protocols == {"elr"} and len(runs) == 6 * 9
            assert {c["variant"] for _, c in runs} == set(MLP_VARIANTS)
            continue
        if name == "cpu-optimizers":  # fixed LR under SGD, heavy ball and AdamW, 4x3 each
            assert protocols == {"lr"} and len(runs) == 36
            assert {c["optimizer"] for _, c in runs} == {"sgd", "momentum", "adamw"}
            assert {c.get("momentum") for _, c in runs} == {None, 0.9}
            continue
        if name == "cpu-generalization":  # ELR and LR grids on digits with a held-out split
            assert protocols == {"elr", "lr"} and len(runs) == 50
            assert {c["test_fraction"] for _, c in runs} == {0.2}
            continue
        assert protocols == {"lr", "elr", "sphere"}, name
    assert len(expand(rp.nn_spec("cpu"))) == 75
    with pytest.raises(ValueError, match="needs --data-dir"):
        rp.nn_spec("paper-convnet-cifar10")
    assert [c.protocol for c in rp.isotropic_configs("paper")] == ["elr", "lr", "sphere"]
    assert rp.isotropic_configs("paper")[0].grid_shape == (17, 17)


def test_tiny_preset_end_to_end_and_resume(tmp_path, monkeypatch):
    monkeypatch.setitem(rp.ISOTROPIC_PRESETS, "tiny", {
        "lr": {"lr": "0.05,0.1", "wd": "0.05,0.1"}, "elr": {"elr": "0.05,0.1", "wd": "0.05,0.1"},
        "sphere": {"elr": "0.05,0.1", "radius": "1,2"},
        "steps": 5000, "dim": 3, "sigma": 1.0, "queue_size": 100})
    grid = rp._nn_grids([0.01, 0.02, 0.04], [0.01, 0.03], [0.5, 1.0], [0.01, 0.03],
                        [0.01, 0.02, 0.04], [1.0, 2.0])
    monkeypatch.setitem(rp.PRESETS, "tiny", rp.Preset(
        "test", isotropic="tiny", grid=grid,
        base={"model": "mlp", "hidden": [8, 8], "data": "digits", "label_noise": 0.3,
              "steps": 300, "device": "cpu", "noise_batches": 4}))
    logs = []
    report = rp.reproduce("tiny", tmp_path, progress=False, log=logs.append)
    assert report.is_file() and report.stat().st_size > 10_000
    for proto in ("elr", "lr", "sphere"):
        assert (tmp_path / "isotropic" / proto / "summary.json").is_file()
    assert (tmp_path / "nn" / "results.csv").is_file()
    assert (tmp_path / "nn" / "analysis.json").is_file()
    text = report.read_text()
    assert "<img" in text and "Maxwell" in text
    # a second call redoes nothing
    logs.clear()
    rp.reproduce("tiny", tmp_path, progress=False, log=logs.append)
    assert sum("already done" in m for m in logs) == 3
    assert any("16 done" in m for m in logs)


def test_unknown_preset(tmp_path):
    with pytest.raises(ValueError, match="unknown preset"):
        rp.reproduce("nope", tmp_path)
