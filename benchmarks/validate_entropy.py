"""Validation of the sphere entropy estimators against exact von Mises-Fisher entropies.

Writes the tables between the markers of docs/entropy.md (the prose around them is kept):

1. bias (mean estimate - exact) and spread (std over repeats) of both methods on vMF samples,
   D in {3, 10, 50, 200, 1000}, kappa from uniform to very concentrated, N in {1000, 4000};
2. slopes dS/dlog(kappa): least-squares line through estimates at kappa * 2^{-2..2} (N = 4000,
   independent samples, 4 per kappa at D <= 10) vs the same fit of the exact entropies;
3. Gaussian sanity checks in R^D (knn_entropy) against the closed form;
4. error bars: the reported (jackknife) stderr vs the spread over independent repeats;
5. (own markers) chord vs angles vs scale (the authors' notebook mode) at D = 3 and 10,
   kappa in {1, 10, 100, 1000}, with the mean direction generic or on the last angle's cut.

    .venv/bin/python benchmarks/validate_entropy.py            # full tables (~5-10 min, 2 cores)
    .venv/bin/python benchmarks/validate_entropy.py --only scale   # only table 5 (~15 s)
    .venv/bin/python benchmarks/validate_entropy.py --quick --out /tmp/entropy.md   # smoke test
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np

from docsection import write_section
from thermosgd.estimators.entropy import knn_entropy, sphere_entropy
from thermosgd.theory import vmf

BEGIN = "<!-- BEGIN validate_entropy.py (generated: do not edit by hand) -->"
END = "<!-- END validate_entropy.py -->"
METHODS = ("chord", "angles")
BEGIN_SCALE = "<!-- BEGIN validate_entropy.py scale table (generated: do not edit by hand) -->"
END_SCALE = "<!-- END validate_entropy.py scale table -->"
SCALE_METHODS = ("chord", "angles", "scale")


def mean_direction(d: int) -> np.ndarray:
    return np.random.default_rng(1000 + d).standard_normal(d)  # a generic direction


def estimates(d, kappa, n, repeats, method, seed0):
    mu = mean_direction(d)
    out = []
    for r in range(repeats):
        x = vmf.sample(n, mu, kappa, seed=seed0 + r)
        out.append(sphere_entropy(x, method=method))
    return out


def fmt(x: float, nd: int = 2) -> str:
    return f"{x:+.{nd}f}"


def bias_table(dims, kappas, ns, reps) -> list[str]:
    lines = [
        "| D | kappa | kappa/D | exact S | "
        + " | ".join(f"{m} N={n}: bias (spread)" for n in ns for m in METHODS)
        + " |",
        "|---:|---:|---:|---:|" + "---:|" * (len(ns) * len(METHODS)),
    ]
    for d in dims:
        for kappa in kappas:
            exact = float(vmf.entropy(d, kappa))
            cells = []
            for n in ns:
                for method in METHODS:
                    est = estimates(d, kappa, n, reps[n], method, seed0=int(kappa) % 997 + 7 * n)
                    v = np.array([e.value for e in est])
                    nd = 3 if d <= 10 else 2
                    cells.append(f"{fmt(v.mean() - exact, nd)} ({v.std(ddof=1):.{nd}f})")
            lines.append(
                f"| {d} | {kappa:g} | {kappa / d:g} | {exact:.3f} | " + " | ".join(cells) + " |"
            )
            print(lines[-1], flush=True)
    return lines


def slope_table(dims, ratios, n) -> tuple[list[str], dict]:
    lines = [
        "| D | kappa | kappa/D | exact dS/dlog kappa | exact fit | "
        + " | ".join(f"{m}: fit (rel. err)" for m in METHODS)
        + " |",
        "|---:|---:|---:|---:|---:|" + "---:|" * len(METHODS),
    ]
    worst = {m: {} for m in METHODS}
    steps = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    for d in dims:
        mu = mean_direction(d)
        for ratio in ratios:
            kappa = ratio * d
            ks = kappa * 2.0**steps
            x = np.log(ks)
            exact_fit = np.polyfit(x, vmf.entropy(d, ks), 1)[0]
            exact_der = float(vmf.entropy_slope(d, kappa))
            reps = 4 if d <= 10 else 1  # slope noise ~ stderr / (d/2): average at low d
            xs = np.repeat(x, reps)
            samples = [
                vmf.sample(n, mu, kk, seed=31 * d + i) for i, kk in enumerate(np.repeat(ks, reps))
            ]
            cells = []
            for method in METHODS:
                vals = [sphere_entropy(s, method=method).value for s in samples]
                slope = np.polyfit(xs, vals, 1)[0]
                err = slope / exact_fit - 1.0
                worst[method][(d, ratio)] = err
                cells.append(f"{slope:.3f} ({100 * err:+.2f}%)")
            lines.append(
                f"| {d} | {kappa:g} | {ratio:g} | {exact_der:.3f} | {exact_fit:.3f} | "
                + " | ".join(cells)
                + " |"
            )
            print(lines[-1], flush=True)
    return lines, worst


def gaussian_table(dims, ns, reps) -> list[str]:
    lines = [
        "| D | " + " | ".join(f"N={n}: bias (spread)" for n in ns) + " |",
        "|---:|" + "---:|" * len(ns),
    ]
    for d in dims:
        cells = []
        for n in ns:
            rng = np.random.default_rng(d * 7 + n)
            a = rng.standard_normal((d, d)) / math.sqrt(d) + np.eye(d)  # anisotropic
            exact = 0.5 * d * math.log(2 * math.pi * math.e) + 0.5 * np.linalg.slogdet(a @ a.T)[1]
            v = np.array(
                [knn_entropy(rng.standard_normal((n, d)) @ a.T).value for _ in range(reps[n])]
            )
            cells.append(f"{fmt(v.mean() - exact, 3)} ({v.std(ddof=1):.3f})")
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines


def stderr_table(configs, n, repeats) -> list[str]:
    lines = [
        "| D | kappa | method | N | spread over repeats | mean reported stderr | ratio |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for d, kappa, method in configs:
        est = estimates(d, kappa, n, repeats, method, seed0=5000)
        spread = np.std([e.value for e in est], ddof=1)
        se = math.sqrt(np.mean([e.stderr**2 for e in est]))
        lines.append(
            f"| {d} | {kappa:g} | {method} | {n} | {spread:.4f} | {se:.4f} | {spread / se:.2f} |"
        )
        print(lines[-1], flush=True)
    return lines


def scale_directions(d: int) -> dict[str, np.ndarray]:
    """Mean directions of table 5: 'generic' = |mean_direction(d)| (positive components: every
    angle in (0, pi/2), the last one >= pi/2 from its cut), 'table 1' = mean_direction(d) itself,
    'cut' = -e_{D-1} (the last angle phi_{D-1} = atan2(x_D, x_{D-1}) wraps at +-pi through the
    mode)."""
    return {
        "generic": np.abs(mean_direction(d)),
        "table 1": mean_direction(d),
        "cut": -np.eye(d)[d - 2],
    }


def cut_distance(mu: np.ndarray) -> float:
    """pi - |phi_{D-1}| of the direction mu: how far its last angle is from the +-pi cut."""
    return math.pi - abs(math.atan2(mu[-1], mu[-2]))


def scale_table(dims, kappas, n, reps) -> list[str]:
    lines = [
        "| D | kappa | mean direction | pi - abs(phi_{D-1}) | exact S | "
        + " | ".join(f"{m}: bias (spread)" for m in SCALE_METHODS)
        + " |",
        "|---:|---:|---|---:|---:|" + "---:|" * len(SCALE_METHODS),
    ]
    for d in dims:
        for kappa in kappas:
            exact = float(vmf.entropy(d, kappa))
            for where, mu in scale_directions(d).items():
                # same seeds for both directions: the samples differ by a rotation only
                xs = [vmf.sample(n, mu, kappa, seed=9000 + 37 * d + r) for r in range(reps)]
                cells = []
                for method in SCALE_METHODS:
                    v = np.array([sphere_entropy(x, method=method).value for x in xs]) - exact
                    cells.append(f"{fmt(v.mean(), 3)} ({v.std(ddof=1):.3f})")
                lines.append(
                    f"| {d} | {kappa:g} | {where} | {cut_distance(mu):.2f} | {exact:.3f} | "
                    + " | ".join(cells)
                    + " |"
                )
                print(lines[-1], flush=True)
    return lines


def scale_section(quick: bool) -> str:
    t0 = time.perf_counter()
    if quick:
        dims, kappas, n, reps = [3], [10.0, 1000.0], 300, 3
    else:
        dims, kappas, n, reps = [3, 10], [1.0, 10.0, 100.0, 1000.0], 1000, 20
    print("## scale")
    rows = scale_table(dims, kappas, n, reps)
    elapsed = time.perf_counter() - t0
    flag = " --quick" if quick else ""
    return "\n".join([
        BEGIN_SCALE,
        "",
        f"### 5. chord vs angles vs scale on vMF (N = {n}, {reps} repeats)",
        "",
        f"Generated by `benchmarks/validate_entropy.py --only scale{flag}` in {elapsed:.0f} s "
        f"({os.cpu_count()} CPUs). Bias = mean(estimate) - exact (`thermosgd.theory.vmf.entropy`), "
        "(spread) = std of one estimate over the repeats, nats; the standard error of the mean "
        "bias is spread / sqrt(repeats). Mean direction: 'generic' = the direction of table 1 "
        "with all components made positive (every angle in (0, pi/2)), 'table 1' = the one of "
        "table 1, 'cut' = -e_{D-1}, where the last angle phi_{D-1} = atan2(x_D, x_{D-1}) wraps "
        "from +pi to -pi through the mode; pi - abs(phi_{D-1}) is the distance of the mode's last "
        "angle from that cut. All directions use the same seeds, so their samples differ by a "
        "rotation only and the rotation-invariant chord column repeats (up to rounding).",
        "",
        *rows,
        "",
        END_SCALE,
    ])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs/entropy.md"))
    ap.add_argument("--only", choices=["scale"], default=None,
                    help="regenerate only this table (its own markers), keep the rest")
    args = ap.parse_args(argv)
    if args.only == "scale":
        write_section(Path(args.out), BEGIN_SCALE, END_SCALE, scale_section(args.quick))
        print(f"wrote {args.out}")
        return

    t0 = time.perf_counter()
    if args.quick:
        dims, kappas, ns = [3, 50], [0.0, 100.0, 1e4], [300, 600]
        reps = {300: 2, 600: 2}
        sdims, sratios, sn = [3, 50], [100.0], 600
        gdims, gns, greps = [2, 10], [500], {500: 2}
        sconf, sn_err, sreps = [(3, 100.0, "chord")], 300, 5
    else:
        dims = [3, 10, 50, 200, 1000]
        kappas = [0.0, 1.0, 10.0, 1e2, 1e3, 1e4, 1e5, 1e6]
        ns = [1000, 4000]
        reps = {1000: 5, 4000: 3}
        sdims, sratios, sn = dims, [1.0, 10.0, 100.0, 1000.0], 4000
        gdims, gns, greps = [1, 2, 3, 5, 10, 20, 50], [1000, 4000], {1000: 5, 4000: 3}
        sconf = [
            (3, 100.0, "chord"),
            (3, 1e4, "angles"),
            (10, 1e3, "chord"),
            (50, 5e3, "chord"),
            (50, 5e3, "angles"),
            (200, 2e4, "chord"),
            (1000, 1e5, "chord"),
            (1000, 1e5, "angles"),
        ]
        sn_err, sreps = 1000, 30

    print("## bias")
    bias = bias_table(dims, kappas, ns, reps)
    print("## slopes")
    slopes, worst = slope_table(sdims, sratios, sn)
    print("## gaussian")
    gauss = gaussian_table(gdims, gns, greps)
    print("## error bars")
    errs = stderr_table(sconf, sn_err, sreps)
    elapsed = time.perf_counter() - t0

    def worst_line(method, min_ratio):
        errs_m = [abs(e) for (d, r), e in worst[method].items() if r >= min_ratio]
        return max(errs_m) if errs_m else float("nan")

    summary = [
        f"Worst |relative slope error| at N = {sn} over D in {sdims}: "
        + "; ".join(
            f"{m}: {100 * worst_line(m, 0.0):.2f}% for kappa >= D, "
            f"{100 * worst_line(m, 10.0):.2f}% for kappa >= 10 D"
            for m in METHODS
        )
        + "."
    ]
    block = [
        BEGIN,
        "",
        f"Generated by `benchmarks/validate_entropy.py{' --quick' if args.quick else ''}` in "
        f"{elapsed:.0f} s ({os.cpu_count()} CPUs). Samples from `thermosgd.theory.vmf.sample`, "
        "exact values from `thermosgd.theory.vmf.entropy` / `entropy_slope`; k = 1.",
        "",
        "### 1. vMF: bias = mean(estimate) - exact, (spread) = std over repeats, nats",
        "",
        f"Repeats: {', '.join(f'{reps[n]} at N = {n}' for n in ns)}.",
        "",
        *bias,
        "",
        f"### 2. vMF slopes dS/dlog kappa (N = {sn})",
        "",
        "Least-squares line through the estimates at kappa * 2^{-2, -1, 0, 1, 2} (independent "
        "samples; 4 per kappa at D <= 10, where the slope (D-1)/2 is small against the noise), "
        "compared with the same fit of the exact entropies ('exact fit'); the exact derivative "
        "at kappa is shown too. Relative error = estimated fit / exact fit - 1. The fit's noise "
        "is about stderr / sqrt(sum (x - mean x)^2 * reps) = stderr / (2.2 sqrt(reps)).",
        "",
        *slopes,
        "",
        *summary,
        "",
        "### 3. Gaussian sanity check: knn_entropy vs (D/2) log(2 pi e) + (1/2) log det C",
        "",
        "Anisotropic C = A A^T, A = I + G/sqrt(D). Bias (spread) in nats, repeats "
        + ", ".join(f"{greps[n]} at N = {n}" for n in gns)
        + ".",
        "",
        *gauss,
        "",
        f"### 4. Error bars: reported stderr (jackknife) vs spread over {sreps} repeats",
        "",
        *errs,
        "",
        END,
    ]
    text = "\n".join(block) + "\n"
    out = Path(args.out)
    if out.exists() and BEGIN in out.read_text():
        old = out.read_text()
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1] if END in rest else "\n"
        text = head + text.rstrip("\n") + tail
    elif out.exists():
        text = out.read_text().rstrip("\n") + "\n\n" + text
    else:
        text = "# Entropy estimators\n\n" + text
    out.write_text(text)
    write_section(out, BEGIN_SCALE, END_SCALE, scale_section(args.quick))
    print(f"wrote {out} ({elapsed:.0f} s + table 5)")


if __name__ == "__main__":
    main()
