"""``thermosgd train``: a tiny grid trained into one directory with its results table; bad
input in one line with exit status 2; an interrupt says how to resume."""

from __future__ import annotations

import pytest

from tests.cli.conftest import assert_usage_error, run_main
from thermosgd.io import read_csv

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--hidden", "8,8", "--label-noise", "0.3", "--log-every", "5", "--noise-every", "20",
        "--noise-batches", "4", "--queue-size", "10", "--test-evals", "2", "--device", "cpu",
        "--no-progress"]


def test_train_grid_writes_runs_and_table(tmp_path):
    out = tmp_path / "grid"
    res = run_main(["train", "--protocol", "elr", "--elr", "0.01,0.02", "--wd", "0.01",
                    "--steps", "60", *TINY, "--out", str(out)])
    assert res.rc == 0, res.err
    names = ["elr1.00e-02_wd1.00e-02", "elr2.00e-02_wd1.00e-02"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == names
    t = read_csv(out / "results.csv")
    assert list(t["name"]) == names and list(t["status"]) == ["complete", "complete"]
    assert res.out.count("== elr") == 2
    assert f"wrote 2 run(s) under {out}/ and {out}/results.csv" in res.out


@pytest.mark.parametrize("args,msg", [
    (["--elr", "0.01,0.01", "--wd", "0.1"], "the grid lists a hyperparameter value twice"),
    (["--elr", "0.01", "--wd", "0.1", "--beta2", "0.9"],
     "--momentum and --beta2 need --optimizer momentum or adamw"),
    (["--elr", "0.01", "--wd", "0.1", "--threads", "0"], "--threads must be >= 1, got 0"),
    (["--elr", "0.01", "--wd", "0.1", "--hidden", "8,x"], "cannot parse --hidden"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, msg):
    res = run_main(["train", "--protocol", "elr", *args, "--steps", "60", "--out",
                    str(tmp_path / "o")])
    assert_usage_error(res, msg)
    assert not (tmp_path / "o").exists()


def test_interrupt_exits_130_and_says_how_to_resume(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # the command imports its workflow when it runs, so the workflow's run_grid is patched
    monkeypatch.setattr("thermosgd.workflows.train.run_grid", interrupted)
    res = run_main(["train", "--protocol", "elr", "--elr", "0.01", "--wd", "0.01", "--out",
                    str(tmp_path / "o")])
    assert res.rc == 130 and "run the same command again to resume" in res.err


def test_a_resumed_run_says_from_which_step(tmp_path):
    from thermosgd.train import TrainConfig, train

    out = tmp_path / "grid"
    args = ["train", "--protocol", "elr", "--elr", "0.01", "--wd", "0.01", "--steps", "60",
            *TINY, "--out", str(out)]
    first = run_main(args)
    assert first.rc == 0 and "resuming" not in first.err
    # a run stopped after 30 of 60 steps, then continued by the same command
    run_dir = out / "elr1.00e-02_wd1.00e-02"
    for p in run_dir.iterdir():
        p.unlink()
    cfg = TrainConfig(protocol="elr", elr=0.01, wd=0.01, steps=60, hidden=(8, 8),
                      label_noise=0.3, log_every=5, noise_every=20, noise_batches=4,
                      queue_size=10, test_evals=2, device="cpu")
    train(cfg, run_dir, progress=False, max_steps_this_call=30)
    res = run_main(args)
    assert res.rc == 0, res.err
    assert "thermosgd: elr1.00e-02_wd1.00e-02: resuming from step 30 of 60" in res.err


def test_keep_checkpoints(tmp_path):
    args = ["train", "--protocol", "elr", "--elr", "0.01", "--wd", "0.01", "--steps", "40",
            *TINY]
    assert run_main([*args, "--out", str(tmp_path / "a")]).rc == 0
    assert run_main([*args, "--out", str(tmp_path / "b"), "--keep-checkpoints"]).rc == 0
    name = "elr1.00e-02_wd1.00e-02"
    assert not (tmp_path / "a" / name / "checkpoint.pt").exists()
    assert (tmp_path / "b" / name / "checkpoint.pt").is_file()
    # the finished run is recognised without its checkpoint: not retrained
    before = (tmp_path / "a" / name / "stationary.json").read_bytes()
    res = run_main([*args, "--out", str(tmp_path / "a")])
    assert res.rc == 0 and (tmp_path / "a" / name / "stationary.json").read_bytes() == before
