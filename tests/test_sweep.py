"""Sweeps: grid expansion, LIST syntax, injected runners and batches, the resumable atomic
store, failures, a killed sweep, Ray for real."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from thermosgd import sweep
from thermosgd.sweep import SweepSpec, collect, read_status, run_dir
from thermosgd.workflows.runners import RUNNERS


# the package's run kinds (train, isotropic), injected as the CLI and the workflows do
def expand(spec, runners=RUNNERS):
    return sweep.expand(spec, runners)


def execute(spec, sweep_dir, **kw):
    return sweep.execute(spec, sweep_dir, **{"runners": RUNNERS, **kw})


def load_spec(path, **kw):
    return sweep.load_spec(path, **{"runners": RUNNERS, **kw})

ISO_BASE = {"protocol": "elr", "wd": [0.05], "steps": 4000, "queue_size": 50, "n_blocks": 4}


def iso_spec(**kw):
    return SweepSpec(kind="isotropic", base=ISO_BASE,
                     grid={"elr": [[0.05], [0.1]], "seed": [0, 1]}, **kw)


def test_expand_names_and_validation():
    runs = expand(iso_spec())
    assert [r for r, _ in runs] == ["elr_[0.05]-seed_0", "elr_[0.05]-seed_1",
                                    "elr_[0.1]-seed_0", "elr_[0.1]-seed_1"]
    assert runs[0][1]["wd"] == [0.05] and runs[0][1]["seed"] == 0
    bad = SweepSpec(kind="isotropic", base=ISO_BASE, grid={"elr": [[-1.0]]})
    with pytest.raises(ValueError, match=r"run elr_\[-1.0\]: elr == \(-1.0,\), must be > 0"):
        expand(bad)


@pytest.mark.parametrize("doc,msg", [
    ({"kind": "nope", "grid": {}}, "unknown run kind"),
    ({"kind": "isotropic", "grid": {"seed": []}}, "non-empty list"),
    ({"kind": "isotropic", "grid": {}, "executor": "slurm"},
     "executor == 'slurm', must be one of local, ray"),
    ({"kind": "isotropic", "grid": {"seed": [1]}, "base": {"seed": 2}}, "both in 'base'"),
    ({"kind": "isotropic", "grid": {}, "colour": 1},
     r"unknown top-level key\(s\) \['colour'\]; known \(dashes or underscores\): kind, grid"),
    ({"kind": "isotropic", "grid": {}, "base": {"seed": 1, "sead": 2}},
     r"unknown isotropic setting\(s\) 'sead' in base; isotropic runs accept"),
    ({"kind": "train", "grid": [{"elr": [0.1]}, {"lr": [0.1], "threadz": [1]}]},
     r"'threadz' in grid\[1\]; train runs accept .*threads, keep_checkpoints"),
    ({"kind": "train", "grid": {}, "base": {"batch-size": 8, "batch_size": 8}},
     "'batch_size' is given twice"),
    ({"grid": {}}, "needs 'kind'"),
])
def test_bad_spec(tmp_path, doc, msg):
    p = tmp_path / "s.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=msg):
        load_spec(p)


def test_yaml_spec_and_missing_file(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("kind: isotropic\ngrid:\n  seed: [0, 1]\nbase:\n  protocol: lr\n")
    s = load_spec(p, workers=2)
    assert s.grid == {"seed": [0, 1]} and s.workers == 2
    with pytest.raises(ValueError, match="does not exist"):
        load_spec(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{kind: ")
    with pytest.raises(ValueError, match="cannot parse"):
        load_spec(tmp_path / "broken.json")


def test_execute_resume_and_collect(tmp_path):
    spec = iso_spec()
    counts = execute(spec, tmp_path, progress=False)
    assert counts == {"done": 4}
    first = {rid: os.stat(run_dir(tmp_path, rid) / "record.json").st_mtime_ns
             for rid, _ in expand(spec)}
    assert execute(spec, tmp_path, progress=False) == {"done": 4}  # nothing recomputed
    again = {rid: os.stat(run_dir(tmp_path, rid) / "record.json").st_mtime_ns
             for rid, _ in expand(spec)}
    assert first == again
    cols = collect(tmp_path)
    assert list(cols["run"]) == sorted(first) and set(cols["state"]) == {"done"}
    assert "maxwell.dS/dlog(wd).theory" in cols
    import pandas as pd

    df = pd.read_parquet(tmp_path / "results.parquet")
    assert len(df) == 4 and (tmp_path / "results.csv").is_file()
    # a changed configuration in the same directory is refused, results untouched
    changed = SweepSpec(kind="isotropic", base={**ISO_BASE, "steps": 5000},
                        grid={"elr": [[0.05], [0.1]], "seed": [0, 1]})
    with pytest.raises(ValueError, match="another configuration"):
        execute(changed, tmp_path, progress=False)


def test_failures_are_recorded_and_the_sweep_goes_on(tmp_path):
    def flaky(config, rdir):
        if config["x"] == 2:
            raise RuntimeError("boom at x=2")
        if config["x"] == 3:
            return {"diverged": True}
        return {"y": config["x"] ** 2}

    spec = SweepSpec(kind="flaky", grid={"x": [1, 2, 3, 4]})
    runners = {"flaky": sweep.Runner(flaky)}
    assert execute(spec, tmp_path, progress=False, runners=runners) == {
        "done": 2, "failed": 1, "diverged": 1}
    st = read_status(run_dir(tmp_path, "x_2"))
    assert st["state"] == "failed" and "boom at x=2" in st["error"]
    cols = collect(tmp_path, parquet=False)
    assert cols["y"].tolist() == [1, None, None, 16]
    # failed runs are retried only on request
    runners = {"flaky": sweep.Runner(lambda c, d: {"y": -1})}
    assert execute(spec, tmp_path, progress=False, runners=runners)["failed"] == 1
    assert execute(spec, tmp_path, retry_failed=True, progress=False, runners=runners) == {
        "done": 3, "diverged": 1}


def test_killed_sweep_resumes_without_redoing_finished_runs(tmp_path):
    script = tmp_path / "run_sweep.py"
    log = tmp_path / "calls.log"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from thermosgd import sweep
        def slow(config, rdir):
            with open({str(log)!r}, "a") as f:
                f.write(str(config["x"]) + "\\n")
            time.sleep(0.4)
            return {{"y": config["x"]}}
        spec = sweep.SweepSpec(kind="slow", grid={{"x": list(range(8))}})
        sweep.execute(spec, sys.argv[1], progress=False, runners={{"slow": sweep.Runner(slow)}})
    """))
    out = tmp_path / "sw"
    p = subprocess.Popen([sys.executable, str(script), str(out)])
    deadline = time.time() + 60
    while time.time() < deadline:
        done = [d for d in (out / "runs").glob("*") if read_status(d)["state"] == "done"]
        if len(done) >= 3:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    finished = {d.name for d in (out / "runs").glob("*") if read_status(d)["state"] == "done"}
    assert 3 <= len(finished) < 8
    subprocess.run([sys.executable, str(script), str(out)], check=True)
    calls = [int(v) for v in log.read_text().split()]
    states = [read_status(out / "runs" / f"x_{i}")["state"] for i in range(8)]
    assert states == ["done"] * 8
    # every finished run ran exactly once; only the interrupted one may have run twice
    assert all(calls.count(int(n[2:])) == 1 for n in finished)
    assert len(calls) <= 9 and sorted(set(calls)) == list(range(8))


def test_local_process_pool(tmp_path):
    counts = execute(iso_spec(workers=2), tmp_path, progress=False)
    assert counts == {"done": 4}


def test_ray_executor_on_a_local_ray_instance(tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        counts = execute(iso_spec(executor="ray"), tmp_path, progress=False)
    finally:
        ray.shutdown()
    assert counts == {"done": 4}
    rec = json.loads((run_dir(tmp_path, "elr_[0.1]-seed_1") / "record.json").read_text())
    assert rec["grid_points"] == 1 and np.isfinite(rec["simulation_seconds"])


def test_unreachable_ray_address(tmp_path):
    pytest.importorskip("ray")
    with pytest.raises(ValueError, match="cannot reach a Ray cluster"):
        execute(iso_spec(executor="ray", ray_address="127.0.0.1:1"), tmp_path, progress=False)


def test_cli_sweep_and_collect(tmp_path, capsys):
    from thermosgd.cli import main

    cfg = tmp_path / "s.json"
    cfg.write_text(json.dumps({"kind": "isotropic", "base": ISO_BASE,
                               "grid": {"elr": [[0.05]], "seed": [0, 1]}}))
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "o")]) == 0
    assert "2 done" in capsys.readouterr().out
    assert main(["collect", str(tmp_path / "o")]) == 0
    assert main(["sweep", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and err.count("\n") == 1


def test_list_of_grids_is_a_union():
    spec = SweepSpec(kind="isotropic", base={"steps": 4000, "queue_size": 50},
                     grid=[{"protocol": ["elr"], "elr": [[0.1]], "wd": [[0.1]]},
                           {"protocol": ["sphere"], "elr": [[0.1]], "radius": [[1.0], [2.0]]}])
    assert [r for r, _ in expand(spec)] == [
        "protocol_elr-elr_[0.1]-wd_[0.1]", "protocol_sphere-elr_[0.1]-radius_[1.0]",
        "protocol_sphere-elr_[0.1]-radius_[2.0]"]


def test_cli_sweep_variant_axis(tmp_path, capsys):
    """--variant adds a grid axis to every grid of a train sweep (replacing the config's)."""
    from thermosgd.cli import main

    cfg = tmp_path / "s.json"
    base = {"protocol": "elr", "steps": 60, "hidden": [8, 8], "log_every": 5,
            "noise_every": 20, "noise_batches": 4, "queue_size": 10, "test_evals": 2,
            "device": "cpu", "variant": "si"}
    cfg.write_text(json.dumps({"kind": "train", "base": base,
                               "grid": {"elr": [0.01], "wd": [0.01]}}))
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "o"), "--variant", "si,head"]) == 0
    assert "2 done" in capsys.readouterr().out
    rows = sweep.collect_rows(tmp_path / "o")
    assert sorted(r["variant"] for r in rows) == ["head", "si"]
    assert all(np.isfinite(r["si_loss_change"]) for r in rows)
    iso = tmp_path / "i.json"
    iso.write_text(json.dumps({"kind": "isotropic", "base": ISO_BASE, "grid": {"seed": [0]}}))
    assert main(["sweep", str(iso), "--out", str(tmp_path / "p"), "--variant", "si"]) == 2
    assert "--variant is for train sweeps" in capsys.readouterr().err


def test_cli_sweep_optimizer_options(tmp_path, capsys):
    """--optimizer/--beta2 replace the config's, --momentum is a grid axis of every grid."""
    from thermosgd.cli import main

    cfg = tmp_path / "s.json"
    base = {"protocol": "lr", "steps": 60, "hidden": [8, 8], "log_every": 5,
            "noise_every": 20, "noise_batches": 4, "queue_size": 10, "test_evals": 0,
            "device": "cpu", "optimizer": "momentum"}
    cfg.write_text(json.dumps({"kind": "train", "base": base,
                               "grid": {"lr": [3e-3], "wd": [0.1]}}))
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "o"), "--optimizer", "adamw",
                 "--momentum", "0.9,0.5", "--beta2", "0.99"]) == 0
    assert "2 done" in capsys.readouterr().out
    rows = sweep.collect_rows(tmp_path / "o")
    assert sorted(r["momentum"] for r in rows) == [0.5, 0.9]
    assert {(r["optimizer"], r["beta2"]) for r in rows} == {("adamw", 0.99)}
    iso = tmp_path / "i.json"
    iso.write_text(json.dumps({"kind": "isotropic", "base": ISO_BASE, "grid": {"seed": [0]}}))
    assert main(["sweep", str(iso), "--out", str(tmp_path / "p"), "--optimizer", "adamw"]) == 2
    assert "train sweeps" in capsys.readouterr().err


def test_parse_list_values_and_log_ranges():
    assert sweep.parse_list("0.1, 0.2,") == (0.1, 0.2)
    # log:START:STOP:NUM = START (STOP/START)^(k/(NUM-1)): 1e-3, 1e-2, 1e-1 (to round-off)
    np.testing.assert_allclose(sweep.parse_list("log:1e-3:1e-1:3"), [1e-3, 1e-2, 1e-1],
                               rtol=1e-15)
    assert sweep.parse_list("log:2:2:1") == (2.0,)
    for bad, msg in (("log:1:2", "use log:START:STOP:NUM"), ("log:0:1:3", "must be > 0"),
                     ("a,b", "comma-separated"), (" ", "empty list")):
        with pytest.raises(ValueError, match=msg):
            sweep.parse_list(bad)


def _square(config, rdir):
    return {"y": config["x"] ** 2, "single": True}


def test_injected_runner_batches_configs_that_differ_in_batchable_keys(tmp_path):
    calls = []

    def batch(configs, dirs):
        calls.append(sorted(c["x"] for c in configs))
        return [{"y": c["x"] ** 2, "single": False} for c in configs]

    runners = {"sq": sweep.Runner(_square, batch=batch, batchable=("x",))}
    spec = SweepSpec(kind="sq", grid={"x": [1, 2, 3], "z": [0, 1]}, max_batch=2)
    assert execute(spec, tmp_path, progress=False, runners=runners) == {"done": 6}
    # two groups (z = 0, 1) of three x values, cut into batches of at most 2: 1 config alone
    # goes through the single runner
    assert sorted(calls) == [[1, 2], [1, 2]]
    rows = {r["run"]: r for r in sweep.collect_rows(tmp_path)}
    assert rows["x_3-z_0"]["single"] is True and rows["x_1-z_1"]["single"] is False
    assert all(r["y"] == r["x"] ** 2 for r in rows.values())
    # batch off: every run alone
    again = SweepSpec(kind="sq", grid={"x": [4, 5]}, batch=False)
    execute(again, tmp_path / "b", progress=False, runners=runners)
    assert len(calls) == 2
    # a kind the runners do not know, and a config its check refuses
    with pytest.raises(ValueError, match="unknown run kind 'sq'; choose one of flaky"):
        expand(spec, {"flaky": sweep.Runner(_square)})

    def check(config):
        if config["x"] > 2:
            raise ValueError(f"x == {config['x']}, must be <= 2")

    strict = {"sq": sweep.Runner(_square, check=check)}
    with pytest.raises(ValueError, match=r"run x_3-z_0: x == 3, must be <= 2"):
        expand(spec, strict)


def test_sweep_imports_no_run_kind():
    """sweep is generic: importing it loads neither the training nor the isotropic simulator
    (the runners live in thermosgd.workflows.runners)."""
    code = ("import sys, thermosgd.sweep; "
            "bad = [m for m in sys.modules if m.startswith(('thermosgd.train', "
            "'thermosgd.sim', 'thermosgd.isotropic', 'thermosgd.workflows', 'torch'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_settings_are_the_cli_option_names_with_dashes_or_underscores(tmp_path):
    """A train sweep's settings are `thermosgd train`'s options, dashes or underscores (the
    spec holds underscores); `threads` and `keep_checkpoints` are run options."""
    p = tmp_path / "s.yaml"
    p.write_text(textwrap.dedent("""\
        kind: train
        max-batch: 8
        base: {protocol: elr, label-noise: 0.3, batch-size: 32, threads: 1, device: cpu}
        grid: {elr: [0.01], noise-batches: [4, 8], wd: [0.01]}
    """))
    s = load_spec(p)
    assert s.max_batch == 8
    assert s.base == {"protocol": "elr", "label_noise": 0.3, "batch_size": 32, "threads": 1,
                      "device": "cpu"}
    assert list(s.grid) == ["elr", "noise_batches", "wd"]
    runs = expand(s)  # every config builds its TrainConfig
    assert [c["noise_batches"] for _, c in runs] == [4, 8]
    # a Python spec gets the same spelling
    assert SweepSpec(kind="train", base={"batch-size": 8}).base == {"batch_size": 8}
    with pytest.raises(ValueError, match="threads == 0, must be >= 1"):
        expand(SweepSpec(kind="train", base={"protocol": "elr", "threads": 0},
                         grid={"elr": [0.01], "wd": [0.01]}))


def test_run_options_do_not_change_a_runs_identity(tmp_path):
    """A stored run whose config differs only in a runner's options (how it runs) is the same
    run: not refused, not redone; any other difference is refused."""
    runners = {"sq": sweep.Runner(_square, keys=("x", "threads"), options=("threads",))}
    spec = SweepSpec(kind="sq", base={"threads": 1}, grid={"x": [2]})
    assert execute(spec, tmp_path, progress=False, runners=runners) == {"done": 1}
    other = SweepSpec(kind="sq", base={"threads": 4}, grid={"x": [2]})
    batches, counts = sweep.plan(other, tmp_path, runners)
    assert batches == [] and counts == {"done": 1}
    with pytest.raises(ValueError, match="unknown sq setting"):
        expand(SweepSpec(kind="sq", base={"y": 1}, grid={"x": [2]}), runners)
