"""Seeded outputs of every stage, to show that a refactoring changes no number.

Runs a fixed set of small studies through the CLI (the isotropic quick preset, isotropic
momentum/AdamW chains, a digits sweep over the three protocols and the three optimizers plus a
non-scale-invariant variant, its collected table and analysis, a scheduled run tracked against
its equilibrium path) and hashes every result file after dropping what legitimately varies
between runs (wall times, dates, absolute paths). `--write` stores the manifest; `--check`
recomputes it and lists every file whose content differs.

    .venv/bin/python benchmarks/golden_outputs.py --write   # before a refactoring
    .venv/bin/python benchmarks/golden_outputs.py --check   # after it: exit 1 on any change

About 3 minutes on 2 cores. Bit-identity holds on one machine kind with the same thread count
(the script pins NUMBA_NUM_THREADS and torch threads to 2).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

MANIFEST = Path(__file__).with_name("golden_manifest.json")
#: keys and columns whose values depend on the machine's speed, the date or the directory
VOLATILE = re.compile(r"(seconds|_s$|^time|wall|elapsed|date|path|dir$|directory|created|"
                      r"hostname|version|per_step|steps_per_s|duration)", re.I)

SWEEP = """\
kind: train
base:
  model: mlp
  hidden: [32, 32]
  data: digits
  label_noise: 0.3
  batch_size: 128
  steps: 8000
  device: cpu
  test_fraction: 0.2
  test_evals: 2
grid:
  - {protocol: [elr], elr: [0.005, 0.015, 0.045], wd: [0.003, 0.01, 0.03]}
  - {protocol: [lr], lr: [0.3, 1.0, 3.0], wd: [0.003, 0.01, 0.03]}
  - {protocol: [sphere], elr: [0.005, 0.015, 0.045], radius: [1.0, 2.0, 4.0]}
  - {protocol: [lr], optimizer: [momentum], momentum: [0.9], lr: [0.1], wd: [0.005, 0.02]}
  - {protocol: [lr], optimizer: [adamw], momentum: [0.9], beta2: [0.999], lr: [0.003],
     wd: [0.05, 0.2]}
  - {protocol: [elr], variant: [bn-affine], elr: [0.02], wd: [0.01]}
"""


def _run(out: Path, *args: str) -> None:
    cmd = [sys.executable, "-m", "thermosgd.cli", *args]
    env = {**os.environ, "NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "2",
           "PYTHONHASHSEED": "0"}
    r = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({r.returncode}):\n{r.stderr[-3000:]}")


def produce(out: Path) -> None:
    """Every study of the manifest, written under ``out``."""
    _run(out, "isotropic", "--preset", "quick", "--no-figures", "--out", "iso")
    _run(out, "isotropic", "--optimizer", "momentum", "--momentum", "0.9", "--protocol", "lr",
         "--lr", "0.01,0.03", "--wd", "0.01,0.03", "--steps", "60000", "--no-figures",
         "--out", "iso-momentum")
    _run(out, "isotropic", "--optimizer", "adamw", "--protocol", "lr", "--lr", "0.003,0.01",
         "--wd", "0.03,0.1", "--dim", "10", "--steps", "60000", "--no-figures",
         "--out", "iso-adamw")
    (out / "sweep.yaml").write_text(SWEEP)
    _run(out, "sweep", "sweep.yaml", "--out", "nn")
    _run(out, "collect", "nn")
    _run(out, "analyze", "nn", "--no-figures", "--lenient")
    _run(out, "schedule", "track", "--schedule", "step", "--milestones", "600", "--steps",
         "1200", "--burn-in", "600", "--hidden", "16,16", "--noise-every", "300",
         "--no-figures", "--out", "track")


def _canonical_json(text: str) -> str:
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in sorted(x.items()) if not VOLATILE.search(k)}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return json.dumps(strip(json.loads(text)), sort_keys=True)


def _canonical_csv(text: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return ""
    keep = [i for i, name in enumerate(rows[0]) if not VOLATILE.search(name)]
    return "\n".join(",".join(r[i] for i in keep if i < len(r)) for r in rows)


def manifest(out: Path) -> dict[str, str]:
    """sha256 of the canonical content of every .csv/.json result under ``out``."""
    digests = {}
    for p in sorted(out.rglob("*")):
        if p.suffix not in (".csv", ".json") or p.name == "status.json":
            continue
        text = p.read_text()
        canon = _canonical_json(text) if p.suffix == ".json" else _canonical_csv(text)
        digests[str(p.relative_to(out))] = hashlib.sha256(canon.encode()).hexdigest()
    return digests


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help=f"store the manifest in {MANIFEST}")
    mode.add_argument("--check", action="store_true", help="compare with the stored manifest")
    ap.add_argument("--keep", type=Path, default=None,
                    help="produce the outputs in this directory (kept) instead of a temporary one")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = a.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        produce(out)
        got = manifest(out)
    if a.write:
        MANIFEST.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        print(f"wrote {MANIFEST}: {len(got)} files")
        return 0
    want = json.loads(MANIFEST.read_text())
    changed = sorted(k for k in want.keys() & got.keys() if want[k] != got[k])
    missing, extra = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
    for name, items in (("changed", changed), ("missing", missing), ("new", extra)):
        for k in items:
            print(f"{name}: {k}")
    same = len(want.keys() & got.keys()) - len(changed)
    print(f"{same} of {len(want)} files bit-identical; {len(changed)} changed, "
          f"{len(missing)} missing, {len(extra)} new")
    return 1 if changed or missing else 0


if __name__ == "__main__":
    sys.exit(main())
