"""``thermosgd sweep``: an isotropic sweep run, rerun (nothing redone) and refused options;
bad input in one line with exit status 2; the sweep file format (README example, --help
epilog, the setting names are the CLI's option names); --keep-checkpoints."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.conftest import ISO_BASE, assert_usage_error, run_main
from thermosgd.cli import build_parser
from thermosgd.cli.sweep import EPILOG
from thermosgd.io import read_csv
from thermosgd.sweep import expand
from thermosgd.workflows.runners import ISOTROPIC_KEYS, RUNNERS, TRAIN_KEYS
from thermosgd.workflows.sweep import sweep_spec

README = Path(__file__).resolve().parents[2] / "README.md"


def test_sweep_runs_and_collects(iso_sweep):
    assert iso_sweep.res.rc == 0, iso_sweep.res.err
    assert "sweep iso: 2 done" in iso_sweep.res.out
    t = read_csv(iso_sweep.dir / "results.csv")
    assert list(t["state"]) == ["done", "done"] and sorted(t["seed"]) == [0, 1]
    assert (iso_sweep.dir / "results.parquet").is_file()


def test_sweep_rerun_redoes_nothing(iso_sweep):
    records = sorted(iso_sweep.dir.glob("runs/*/record.json"))
    before = [p.read_bytes() for p in records]
    res = run_main(["sweep", str(iso_sweep.config), "--out", str(iso_sweep.dir),
                    "--no-progress"])
    assert res.rc == 0 and "2 done" in res.out
    assert [p.read_bytes() for p in records] == before


def test_bad_input_is_one_line_exit_2(tmp_path):
    out = str(tmp_path / "o")
    assert_usage_error(run_main(["sweep", str(tmp_path / "nope.json"), "--out", out]),
                       "does not exist")
    iso = tmp_path / "i.json"
    iso.write_text(json.dumps({"kind": "isotropic", "base": ISO_BASE, "grid": {"seed": [0]}}))
    assert_usage_error(run_main(["sweep", str(iso), "--out", out, "--variant", "si"]),
                       "--variant is for train sweeps")
    assert_usage_error(run_main(["sweep", str(iso), "--out", out, "--beta2", "0.9"]),
                       "--optimizer, --momentum, --beta2 and --keep-checkpoints are for "
                       "train sweeps")
    assert_usage_error(run_main(["sweep", str(iso), "--out", out, "--workers", "0"]),
                       "workers == 0, must be >= 1")
    assert not (tmp_path / "o").exists()


def _options(command: str) -> set[str]:
    """The option names (underscores) of ``thermosgd COMMAND``."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {a.dest for a in sub.choices[command]._actions if a.option_strings} - {"help"}


def test_readme_sweep_file_loads_and_validates(tmp_path):
    (text,) = re.findall(r"### Sweep files\n.*?```yaml\n(.*?)```", README.read_text(),
                         flags=re.S)
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    spec = sweep_spec(path)
    runs = expand(spec, RUNNERS)  # every run's TrainConfig is built and checked
    assert len(runs) == 6 and spec.kind == "train" and spec.workers == 1
    assert runs[0][1]["label_noise"] == 0.3 and runs[0][1]["keep_checkpoints"] is False


def test_setting_names_are_the_cli_option_names():
    """One spelling both ways: a train run's settings are the `thermosgd train` options
    (less those of the command itself, plus the config-only seeds), the sweep file's top-level
    keys include the `thermosgd sweep` options, and the --help epilog lists exactly them."""
    command_only = {"no_batch", "no_resume", "overwrite", "progress", "out"}
    config_only = {"data_seed", "init_seed"}
    assert _options("train") - command_only == set(TRAIN_KEYS) - config_only
    listed = set(re.findall(r"[a-z][a-z0-9-]*", EPILOG.replace("\n ", " ")))
    assert {k.replace("_", "-") for k in (*TRAIN_KEYS, *ISOTROPIC_KEYS)} <= listed
    for k in ("executor", "workers", "ray-address", "cpus-per-task", "gpus-per-task",
              "max-batch"):
        assert k in listed and k.replace("-", "_") in _options("sweep") | {"max_batch"}
    res = run_main(["sweep", "--help"])
    assert res.rc == 0 and EPILOG in res.out  # printed as written, not re-wrapped


def test_unknown_settings_are_listed(tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("kind: train\nbase: {protocol: elr, threads: 1, colour: red}\n"
                   "grid: {elr: [0.01], wd: [0.01]}\n")
    res = run_main(["sweep", str(cfg), "--out", str(tmp_path / "o")])
    assert_usage_error(res, "unknown train setting(s) 'colour' in base; train runs accept "
                            "(dashes or underscores): protocol, lr,")
    assert "threads, keep_checkpoints" in res.err


def test_keep_checkpoints(tmp_path):
    """A train sweep removes each finished run's checkpoint.pt unless --keep-checkpoints; the
    option is a run option: rerunning with it redoes nothing."""
    cfg = tmp_path / "s.yaml"
    cfg.write_text("kind: train\nbase: {protocol: elr, steps: 40, hidden: [8], log-every: 5, "
                   "noise-every: 20, noise-batches: 4, queue-size: 10, test-evals: 0, "
                   "device: cpu}\ngrid: {elr: [0.01], wd: [0.01]}\n")
    res = run_main(["sweep", str(cfg), "--out", str(tmp_path / "a"), "--no-progress"])
    assert res.rc == 0 and "1 done" in res.out, res.err
    (run,) = (tmp_path / "a" / "runs").iterdir()
    assert (run / "stationary.json").is_file() and not (run / "checkpoint.pt").exists()
    before = (run / "record.json").read_bytes()
    res = run_main(["sweep", str(cfg), "--out", str(tmp_path / "a"), "--no-progress",
                    "--keep-checkpoints"])
    assert res.rc == 0 and (run / "record.json").read_bytes() == before
    res = run_main(["sweep", str(cfg), "--out", str(tmp_path / "b"), "--no-progress",
                    "--keep-checkpoints"])
    assert res.rc == 0 and (tmp_path / "b" / "runs" / run.name / "checkpoint.pt").is_file()
