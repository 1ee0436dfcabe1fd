"""External check: a re-implementation of the authors' isotropic-noise loop beside thermosgd.

"Theirs" is written here from the description of `notebooks/VMF.ipynb` in
/work/shared/reference/reference-implementation.md (sections 2.1-2.3, 4.5-4.9) and paper.md
section 8, not from the authors' code: float32 torch, all chains in one tensor, autograd
gradient of L = 1 + <mu, w>/|w| (mu: torch seed 44), tangent noise (sigma/|w|) P_perp xi, step
w <- w - eta_t (grad + eps + lambda w) with eta_t = eta (LR) or eta-tilde |w|^2 (ELR; sphere:
lambda = 0, then projection to radius r), all chains starting from the same direction (torch
seed 42). Every 50 iterations |w| (before projection) and the loss are logged and w is pushed
into a queue of 1000; radius and energy are means over the last 5000 logs (250k iterations);
the entropy is their 'scale' angle estimator, averaged over the last 10 estimates taken every
steps/50 iterations, plus (D-1) log r.

"Ours" is `thermosgd.sim.isotropic` (simulate + stationary_table, chord entropy) on the same grids
(d = 3, sigma = 1; elr/lr/wd in logspace(-3, -1, 5), sphere radius in logspace(-1, 1, 5)).
Extra runs isolate the effect of the 50-step snapshot spacing on the entropy. Everything runs
single-threaded (torch and numba), so the timings are per thread. Writes the whole of
docs/external-check.md from the numbers of the run.

    python benchmarks/external_check.py                 # full check, 2e6 steps (~10 min)
    python benchmarks/external_check.py --quick         # smoke run (~1-2 min), doc to /tmp
    python benchmarks/external_check.py --reuse runs/external-check/results.pkl  # doc only
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import pickle
import platform
import time
from pathlib import Path

import numba
import numpy as np
import torch
from scipy.signal import lfilter
from sklearn.neighbors import NearestNeighbors

from thermosgd.estimators.entropy import sphere_entropy
from thermosgd.sim.isotropic import IsotropicConfig, simulate, stationary_table

DIM = 3
SIGMA = 1.0
GRID = tuple(float(v) for v in np.logspace(-3, -1, 5))
RADII = tuple(float(v) for v in np.logspace(-1, 1, 5))
PROTOCOLS = ("elr", "lr", "sphere")
LOG_FREQ = 50  # their log_freq = queue_freq
QUEUE = 1000  # their queue_size
RADIUS_LOGS = 5000  # radius and energy: mean over the last 5000 logs (250k iterations)
N_ESTIMATES = 50  # entropy every steps/50 iterations ...
LAST_ESTIMATES = 10  # ... averaged over the last 10
KL_CLIP = 1e-8  # distance floor of their KL estimator (EntropyLogger's thr)
EULER = 0.5772156649015329
REPLICAS = 10  # thermosgd replicas in the snapshot-spacing runs
TIMING_STEPS = 20_000  # steps of their loop per timing block
TIMING_STEPS_OURS = 400_000  # steps of thermosgd per timing block
TIMING_REPEATS = 3  # interleaved blocks; the best (least disturbed) one counts
# What the notebook printed for the 17x17 grids (reference-implementation.md section 2.4),
# quoted for comparison; not measured here.
PAPER = {"elr dS/dlog(wd)": (-0.9989, 0.0052), "lr dS/dlog(wd)": (0.0131, 0.0071),
         "lr dS/dlog(lr)": (1.0139, 0.0090), "lr difference": (1.0008, None)}
DEFAULT_DOC = Path("docs/external-check.md")
DEFAULT_RESULTS = Path("runs/external-check/results.pkl")


def mixed_spacing(steps: int) -> int:
    """Snapshot spacing of the 'mixed' queues: 1000 snapshots over the last half of the run
    (1000 steps for 2e6 steps), a multiple of the log period."""
    return max(LOG_FREQ, (steps // 2 // QUEUE) // LOG_FREQ * LOG_FREQ)


# --------------------------------------------------------------------------------------------
# the authors' loop (re-implementation)


def chain_table() -> dict[str, np.ndarray]:
    """The 75 chains of the three regimes in one tensor: ELR 25, LR 25, sphere 25, each in
    thermosgd's C order (rate index, second-axis index)."""
    rate, wd, rset, fix_elr, sphere, proto = [], [], [], [], [], []
    for p in PROTOCOLS:
        second = RADII if p == "sphere" else GRID
        for a in GRID:
            for b in second:
                rate.append(a)
                wd.append(0.0 if p == "sphere" else b)
                rset.append(b if p == "sphere" else 1.0)
                fix_elr.append(p != "lr")
                sphere.append(p == "sphere")
                proto.append(p)
    return {"rate": np.array(rate), "wd": np.array(wd), "rset": np.array(rset),
            "fix_elr": np.array(fix_elr), "sphere": np.array(sphere), "protocol": np.array(proto)}


def _loss(x: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    return 1 + (x @ mu) / x.norm(dim=1)


def _step(x, mu, rate, wd, fix_elr, sphere, rset, one, sigma):
    """One iteration of every chain: autograd gradient, tangent noise, (E)LR step, projection.
    Returns (w after the step and projection, w before projection, loss at the pre-step w)."""
    x = x.detach().requires_grad_(True)
    loss = _loss(x, mu)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    with torch.no_grad():
        norm = x.norm(dim=1, keepdim=True)
        eps = sigma * torch.randn_like(x) / norm
        eps = eps - (eps * x).sum(1, keepdim=True) * x / norm**2
        lr = rate * torch.where(fix_elr, norm**2, one)  # ELR: eta-tilde |w|^2, norm before step
        pre = x - lr * (grad + eps + wd * x)
        post = torch.where(sphere, rset * pre / pre.norm(dim=1, keepdim=True), pre)
    return post, pre, loss.detach()


def _tensors(chains: dict, idx=None):
    sel = slice(None) if idx is None else idx

    def col(k, dtype=torch.float32):
        return torch.as_tensor(chains[k][sel], dtype=dtype)[:, None]

    rate, wd, rset = col("rate"), col("wd"), col("rset")
    fix_elr, sphere = col("fix_elr", torch.bool), col("sphere", torch.bool)
    return rate, wd, fix_elr, sphere, rset, torch.ones_like(rate)


def _start(rset: torch.Tensor, sphere: torch.Tensor):
    torch.manual_seed(44)
    mu = torch.randn(DIM)
    mu = mu / mu.norm()
    torch.manual_seed(42)
    x0 = torch.randn(DIM)
    x0 = x0 / x0.norm()
    init_norm = torch.where(sphere, rset, torch.ones_like(rset))  # 1 for ELR/LR, r for sphere
    return mu, (x0[None, :] * init_norm).clone()


def authors_loop(steps: int, log=print) -> dict:
    """Run the 75 chains for ``steps`` iterations; returns the logs, the queues at the last 10
    entropy estimates, one extra 'mixed' queue (1000 snapshots every mixed_spacing(steps)
    iterations over the last half; an observer only, for the spacing study) and the wall
    time of the iteration loop."""
    chains = chain_table()
    rate, wd, fix_elr, sphere, rset, one = _tensors(chains)
    mu, x = _start(rset, sphere)
    b = x.shape[0]
    n_logs = steps // LOG_FREQ
    norms = torch.empty(n_logs, b)
    losses = torch.empty(n_logs, b)
    queue = torch.empty(QUEUE, b, DIM)
    ent_every = steps // N_ESTIMATES
    est_iters = [it for it in range(ent_every, steps + 1, ent_every)
                 if it // LOG_FREQ >= QUEUE][-LAST_ESTIMATES:]
    m = mixed_spacing(steps)
    mixed_at = {steps - m * j: QUEUE - 1 - j for j in range(QUEUE)}
    mixed = torch.full((QUEUE, b, DIM), float("nan"))
    saved = []
    t0 = time.perf_counter()
    next_report = 0.1
    for k in range(n_logs):
        for _ in range(LOG_FREQ):
            x, pre, loss = _step(x, mu, rate, wd, fix_elr, sphere, rset, one, SIGMA)
        it = (k + 1) * LOG_FREQ
        norms[k] = pre.norm(dim=1)  # xs: w after the step, before any projection
        losses[k] = loss  # L at the pre-step point of this iteration
        queue[k % QUEUE] = x  # w after projection
        if it in mixed_at:
            mixed[mixed_at[it]] = x
        if it in est_iters:
            saved.append(queue.clone())  # FIFO order is irrelevant for a k-NN estimate
        if it >= next_report * steps:
            log(f"  their loop: {it:,}/{steps:,} steps, {time.perf_counter() - t0:.0f} s")
            next_report += 0.1
    seconds = time.perf_counter() - t0
    return {"chains": chains, "mu": mu.numpy(), "norms": norms.numpy(), "losses": losses.numpy(),
            "queues": torch.stack(saved).numpy(), "mixed": mixed.numpy(), "est_iters": est_iters,
            "mixed_spacing": m, "seconds": seconds, "steps": steps}


def time_their_loop(protocol: str | None, steps: int) -> float:
    """us/step of their step (no logging) for the 75 chains in one tensor (protocol None) or
    the 25 chains of one regime, as the notebook runs them."""
    chains = chain_table()
    idx = None if protocol is None else np.flatnonzero(chains["protocol"] == protocol)
    rate, wd, fix_elr, sphere, rset, one = _tensors(chains, idx)
    mu, x = _start(rset, sphere)
    for _ in range(200):
        x, _, _ = _step(x, mu, rate, wd, fix_elr, sphere, rset, one, SIGMA)
    t0 = time.perf_counter()
    for _ in range(steps):
        x, _, _ = _step(x, mu, rate, wd, fix_elr, sphere, rset, one, SIGMA)
    return (time.perf_counter() - t0) / steps * 1e6


def timing_blocks(log=print) -> dict:
    """Best of TIMING_REPEATS interleaved blocks: their loop (75 chains; each regime alone)
    and thermosgd `simulate` (each protocol, 25 chains), us/step, one thread each."""
    best: dict = {}
    for rep in range(TIMING_REPEATS):
        for p in (None, *PROTOCOLS):
            key = ("theirs", p or "all")
            best[key] = min(best.get(key, math.inf), time_their_loop(p, TIMING_STEPS))
        for p in PROTOCOLS:
            sim = simulate(thermo_config(p, TIMING_STEPS_OURS), progress=False)
            key = ("ours", p)
            best[key] = min(best.get(key, math.inf), sim.seconds / TIMING_STEPS_OURS * 1e6)
        log(f"  timing block {rep + 1}/{TIMING_REPEATS}: "
            + ", ".join(f"{a} {b} {v:.2f}" for (a, b), v in best.items()))
    best[("ours", "all")] = sum(best[("ours", p)] for p in PROTOCOLS)
    return {f"{a}_{b}": v for (a, b), v in best.items()}


# --------------------------------------------------------------------------------------------
# their entropy estimator (re-implementation, independent of thermosgd.estimators.entropy)


def to_spherical(x: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (N, D): radius, phi_1..phi_{D-1}; phi_k = atan2(|x_{k+1:}|, x_k) for k <= D-2,
    phi_{D-1} = atan2(x_D, x_{D-1}) (float32, as their tensors)."""
    d = x.shape[1]
    rho = torch.sqrt(torch.flip(torch.cumsum(torch.flip(x * x, [1]), 1), [1]))
    phis = [torch.atan2(rho[:, k + 1], x[:, k]) for k in range(d - 2)]
    phis.append(torch.atan2(x[:, d - 1], x[:, d - 2]))
    return torch.stack([rho[:, 0], *phis], 1)


def kl_entropy_scale(a: np.ndarray) -> tuple[float, np.ndarray, int]:
    """Their entropy_kozachenko_leonenko(mode='scale') on points a (N, m): centre, divide each
    coordinate by its std, 1-NN (sklearn), log(N-1) + gamma + m <log rho> + log V_m, plus
    sum_j log std_j. Returns (H, per-point m log rho_i, number of distances clipped)."""
    n, dm = a.shape
    a = a - a.mean(0)
    s = a.std(0)
    z = a / s
    dist = NearestNeighbors(n_neighbors=2).fit(z).kneighbors(z)[0][:, 1]
    clipped = int(np.count_nonzero(dist < KL_CLIP))
    term = dm * np.log(np.maximum(dist, KL_CLIP))
    log_vol = dm / 2 * math.log(math.pi) - math.lgamma(dm / 2 + 1)
    h = float(term.mean()) + log_vol + math.log(n - 1) + EULER + float(np.log(s).sum())
    return h, term, clipped


def authors_sphere_entropy(w) -> tuple[float, float, int]:
    """Their spherical entropy of snapshots w (N, D): normalise, angles, 'scale' KL, plus the
    expected log-Jacobian mean_i sum_{k=1}^{D-2} (D-1-k) log sin phi_k (no clipping).
    Returns (S, an i.i.d. standard error std_i(term_i)/sqrt(N), clipped distances)."""
    w = torch.as_tensor(np.asarray(w), dtype=torch.float32)
    u = w / w.norm(dim=1, keepdim=True)
    ang = to_spherical(u)[:, 1:]
    d = w.shape[1]
    mult = torch.arange(d - 2, 0, -1, dtype=torch.float32)
    log_jac = (mult * torch.log(torch.sin(ang[:, : d - 2]))).sum(1).double().numpy()
    h, term, clipped = kl_entropy_scale(ang.double().numpy())
    per_point = term + log_jac
    se = float(per_point.std(ddof=1) / math.sqrt(len(per_point)))
    return h + float(log_jac.mean()), se, clipped


def theirs_stats(raw: dict, log=print) -> dict:
    """Their radius, energy and entropies per chain from the loop's logs and queues."""
    norms = raw["norms"][-RADIUS_LOGS:].astype(np.float64)
    losses = raw["losses"][-RADIUS_LOGS:].astype(np.float64)
    t0 = time.perf_counter()
    q = raw["queues"]  # (estimates, QUEUE, chains, D)
    n_est, _, b, _ = q.shape
    s50 = np.empty((n_est, b))
    clipped = 0
    for e in range(n_est):
        for c in range(b):
            s50[e, c], _, cl = authors_sphere_entropy(q[e, :, c])
            clipped += cl
    t_est = (time.perf_counter() - t0) / n_est
    sm = np.empty(b)
    sm_se = np.empty(b)
    for c in range(b):
        sm[c], sm_se[c], cl = authors_sphere_entropy(raw["mixed"][:, c])
        clipped += cl
    log(f"  their estimator: {t_est:.2f} s per estimate of {b} chains, {clipped} clipped")
    return {"radius": norms.mean(0), "radius_se": _block_se(norms),
            "energy": losses.mean(0), "energy_se": _block_se(losses),
            "entropy_dir": s50.mean(0), "entropy_dir_se": s50.std(0, ddof=1) / math.sqrt(n_est),
            "entropy_dir_estimates": s50, "entropy_dir_mixed": sm, "entropy_dir_mixed_se": sm_se,
            "estimator_seconds": t_est, "clipped": clipped}


def _block_se(v: np.ndarray, n_blocks: int = 10) -> np.ndarray:
    """Batch-means standard error of the mean of v along axis 0 (n_blocks equal blocks)."""
    n = v.shape[0] // n_blocks * n_blocks
    means = v[-n:].reshape(n_blocks, n // n_blocks, -1).mean(1)
    return means.std(0, ddof=1) / math.sqrt(n_blocks)


# --------------------------------------------------------------------------------------------
# thermosgd


def thermo_config(protocol: str, steps: int, **kw) -> IsotropicConfig:
    axes = {"elr": {"elr": GRID, "wd": GRID}, "lr": {"lr": GRID, "wd": GRID},
            "sphere": {"elr": GRID, "radius": RADII}}[protocol]
    kw = {"queue_size": QUEUE, "init_radius": 1.0, **kw}
    return IsotropicConfig(protocol, **axes, dim=DIM, sigma=SIGMA, steps=steps, **kw)


KEEP = ("lr", "elr", "wd", "radius_set", "temperature", "radius", "radius_se", "energy",
        "energy_se", "pressure", "pressure_se", "entropy_dir", "entropy_dir_se", "entropy",
        "entropy_se", "entropy_dir_theory", "entropy_dir_discrete", "stationary", "relaxed",
        "drifting", "diverged", "queue_spacing", "mixing_time", "burn_in")


def thermo_runs(steps: int, log=print) -> dict:
    """thermosgd default runs (one per protocol) and the two replicated spacing runs
    (queue spacing forced to 50 and to mixed_spacing(steps): burn_in = steps - 1000 spacing)."""
    simulate(thermo_config("elr", 5000, queue_size=100), progress=False)  # load the JIT cache
    out: dict = {}
    m = mixed_spacing(steps)
    for p in PROTOCOLS:
        c = thermo_config(p, steps)
        sim = simulate(c, progress=False)
        table = stationary_table(sim)
        out[p] = {k: np.asarray(table[k]) for k in KEEP}
        out[p]["seconds"] = sim.seconds
        log(f"  thermosgd {p}: {sim.seconds:.1f} s, burn-in {sim.burn_in}, spacing "
            f"{int(sim.spacing[0])}, stationary {int(table['stationary'].sum())}/25")
        for label, spacing in (("s50", LOG_FREQ), ("smix", m)):
            cr = thermo_config(p, steps, replicas=REPLICAS, burn_in=steps - QUEUE * spacing)
            simr = simulate(cr, progress=False)
            assert int(simr.spacing[0]) == spacing
            est = sphere_entropy(simr.queue, method="chord")
            v = np.asarray(est.value).reshape(-1, REPLICAS)
            out[p][label] = v.mean(1)
            out[p][label + "_se"] = v.std(1, ddof=1) / math.sqrt(REPLICAS)
            out[p][label + "_seconds"] = simr.seconds
            log(f"  thermosgd {p} x{REPLICAS} replicas, spacing {spacing}: {simr.seconds:.1f} s")
    return out


def thermo_estimators_on_theirs(raw: dict) -> dict:
    """thermosgd's chord estimator (and method='scale' where available) on the loop's queues."""
    q = np.moveaxis(raw["queues"], 2, 1).astype(np.float64)  # (estimates, chains, N, D)
    mixed = np.moveaxis(raw["mixed"], 1, 0).astype(np.float64)
    out = {}
    t0 = time.perf_counter()
    out["chord50"] = np.asarray(sphere_entropy(q, method="chord", duplicates="drop").value)
    out["chord_seconds"] = (time.perf_counter() - t0) / q.shape[0]
    out["chord_mixed"] = np.asarray(sphere_entropy(mixed, method="chord",
                                                   duplicates="drop").value)
    try:
        out["scale50"] = np.asarray(sphere_entropy(q, method="scale", duplicates="drop").value)
        out["scale_mixed"] = np.asarray(sphere_entropy(mixed, method="scale",
                                                       duplicates="drop").value)
    except ValueError as err:  # thermosgd without method="scale"
        out["scale_error"] = str(err)
    return out


# --------------------------------------------------------------------------------------------
# a model of the spacing bias: 2-D Gaussian AR(1) (OU of the tangent angles, rate eta-tilde)


def _rate_key(rate: float) -> float:
    return round(math.log10(rate), 6)


def _ar1_kl(rho: float, windows: int, rng: np.random.Generator) -> tuple[float, float]:
    """Mean and stderr of the 'scale' KL entropy of N = 1000 points of a stationary 2-D
    Gaussian AR(1) with lag coefficient rho (rho = 0: i.i.d.), over ``windows`` windows."""
    vals = []
    for _ in range(windows):
        xi = rng.standard_normal((QUEUE, 2))
        xi[1:] *= math.sqrt(1.0 - rho * rho)  # x_0 stationary, x_i = rho x_{i-1} + innovation
        vals.append(kl_entropy_scale(lfilter([1.0], [1.0, -rho], xi, axis=0))[0])
    return float(np.mean(vals)), float(np.std(vals, ddof=1) / math.sqrt(windows))


def ar1_table(spacings: tuple[int, ...], windows: int, seed: int = 0) -> dict:
    """The spacing bias in a model: the tangent angles near the mode are an OU process with
    rate eta-tilde per step (curvature 1), so snapshots s steps apart have correlation
    (1 - eta-tilde)^s. KL means on such AR(1) windows, per stationary eta-tilde of the grids
    (logspace(-3, -1, 9)) and spacing, and on i.i.d. windows ("iid")."""
    rng = np.random.default_rng(seed)
    out: dict = {"iid": _ar1_kl(0.0, 2 * windows, rng)}
    for rate in np.logspace(-3, -1, 9):
        out[_rate_key(rate)] = {sp: _ar1_kl((1.0 - rate) ** sp, windows, rng) for sp in spacings}
    return out


# --------------------------------------------------------------------------------------------
# analysis


def row_slopes(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Unweighted least-squares slope of y on x along axis 1 per row with >= 3 masked points."""
    out = np.full(y.shape[0], np.nan)
    for i in range(y.shape[0]):
        m = mask[i] & np.isfinite(y[i])
        if m.sum() >= 3:
            out[i] = np.polyfit(x[i, m], y[i, m], 1)[0]
    return out


def full_entropy(s_dir, radius):
    return s_dir + (DIM - 1) * np.log(radius)


def analyse(raw: dict, th: dict, ours: dict, on_theirs: dict, timing: dict, ar1: dict,
            total_seconds: float) -> dict:
    chains = raw["chains"]
    res: dict = {"steps": raw["steps"], "mixed_spacing": raw["mixed_spacing"], "ar1": ar1,
                 "timing": timing, "total_seconds": total_seconds, "clipped": th["clipped"],
                 "est_iters": raw["est_iters"], "mu": raw["mu"], "chains": raw["chains"]}
    for p in PROTOCOLS:
        idx = np.flatnonzero(chains["protocol"] == p)
        o = ours[p]
        t = {k: v[idx] for k, v in th.items() if isinstance(v, np.ndarray) and v.ndim == 1}
        if p == "sphere":
            rset = chains["rset"][idx]
            t["pressure"] = (t["radius"] - rset) / (chains["rate"][idx] * rset**3)
            t["pressure_se"] = t["radius_se"] / (chains["rate"][idx] * rset**3)
            t["radius"] = rset.copy()
            t["radius_se"] = np.zeros(25)
        t["entropy"] = full_entropy(t["entropy_dir"], t["radius"])
        t["entropy_mixed"] = full_entropy(t["entropy_dir_mixed"], t["radius"])
        e = {}
        for k, v in on_theirs.items():  # (estimates, chains) -> mean over estimates
            if isinstance(v, np.ndarray):
                e[k] = v[:, idx].mean(0) if v.ndim == 2 else v[idx]
        res[p] = {"theirs": t, "ours": o, "thermo_on_theirs": e}
    res["scale_error"] = on_theirs.get("scale_error")
    return res


# --------------------------------------------------------------------------------------------
# the document


def f(v, fmt="+.3f"):
    return "n/a" if v is None or not np.isfinite(v) else format(v, fmt)


def pm(values, fmt="+.3f"):
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "n/a"
    if v.size == 1:
        return format(v[0], fmt)
    return f"{format(v.mean(), fmt)} +- {format(v.std(ddof=1), fmt.lstrip('+'))}"


def masks(p: str, res: dict) -> tuple[np.ndarray, np.ndarray]:
    """(radius/full-entropy mask, energy/direction-entropy mask) of comparable points."""
    o = res[p]["ours"]
    stat = o["stationary"].astype(bool) & ~o["diverged"].astype(bool)
    if p == "lr":
        return stat, stat
    return stat, ~o["diverged"].astype(bool)


def _max_abs(a: np.ndarray, m: np.ndarray) -> float:
    a = np.abs(a[m & np.isfinite(a)])
    return float(a.max()) if a.size else float("nan")


def _where_max(a: np.ndarray, m: np.ndarray, p: str) -> str:
    """'(rate, second)' of the grid point where |a| is largest among the masked points."""
    v = np.where(m & np.isfinite(a), np.abs(a), -np.inf)
    k = int(np.argmax(v))
    second = RADII if p == "sphere" else GRID
    return f"at ({GRID[k // 5]:.2g}, {second[k % 5]:.2g})"


def agreement(res: dict) -> tuple[list[str], dict]:
    """Per-regime agreement table rows and the numbers quoted in the findings."""
    rows, q = [], {}
    for p in PROTOCOLS:
        t, o = res[p]["theirs"], res[p]["ours"]
        m_r, m_u = masks(p, res)
        key = "pressure" if p == "sphere" else "radius"
        rel = t[key] / o[key] - 1
        z = (t[key] - o[key]) / np.hypot(t[key + "_se"], o[key + "_se"])
        zu = (t["energy"] - o["energy"]) / np.hypot(t["energy_se"], o["energy_se"])
        rel_u = t["energy"] / o["energy"] - 1
        ds = t["entropy_dir"] - o["entropy_dir"]
        dsm = t["entropy_dir_mixed"] - o["entropy_dir"]
        zs = dsm / np.hypot(t["entropy_dir_mixed_se"], o["entropy_dir_se"])
        dS = t["entropy"] - o["entropy"]
        dSm = t["entropy_mixed"] - o["entropy"]
        q[p] = {"key": key, "rel": _max_abs(rel, m_r), "z": _max_abs(z, m_r),
                "rel_u": _max_abs(rel_u, m_u), "z_u": _max_abs(zu, m_u),
                "ds": ds[m_u], "dsm": dsm[m_u], "z_s": _max_abs(zs, m_u)}
        rows.append(
            f"| {p} | {int(m_r.sum())}/25, {int(m_u.sum())}/25 | {key}: "
            f"{100 * q[p]['rel']:.2f}% {_where_max(rel, m_r, p)} (max abs z {q[p]['z']:.1f}) | "
            f"{100 * q[p]['rel_u']:.2f}% {_where_max(rel_u, m_u, p)} (max abs z "
            f"{q[p]['z_u']:.1f}) | {pm(ds[m_u])} | {pm(dsm[m_u])} (max abs z "
            f"{q[p]['z_s']:.1f}) | {pm(dS[m_r])} | {pm(dSm[m_r])} |")
    return rows, q


def _grid(v) -> np.ndarray:
    return np.asarray(v, dtype=float).reshape(5, 5)


_LW = np.tile(np.log(np.array(GRID)), (5, 1))  # log of the rate / wd axis, per row
_LR = np.tile(np.log(np.array(RADII)), (5, 1))  # log of the sphere radius axis, per row
_HALF = (DIM - 1) / 2


def elr_summary(S: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """ELR: dS/dlog(wd) per elr row and their mean, normalized by (d-1)/2."""
    a = row_slopes(_LW, S, mask) / _HALF
    return np.append(a, np.nanmean(a) if np.isfinite(a).any() else np.nan)


def lr_summary(S: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """LR: mean dS/dlog(wd) over lr rows, mean dS/dlog(lr) over wd columns, their difference."""
    a = np.nanmean(row_slopes(_LW, S, mask)) / _HALF
    b = np.nanmean(row_slopes(_LW, S.T, mask.T)) / _HALF
    return np.array([a, b, b - a])


def sphere_summary(S: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sphere: mean dS/dlog(r) over elr rows, mean dS/dlog(elr) over r columns."""
    a = np.nanmean(row_slopes(_LR, S, mask)) / _HALF
    b = np.nanmean(row_slopes(_LW, S.T, mask.T)) / _HALF
    return np.array([a, b])


def propagated_se(fn, se: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Standard error of the linear functional fn(S, mask) of the 25 points for independent
    point errors se: sqrt(sum_k (dfn/dS_k)^2 se_k^2)."""
    base = fn(np.zeros((5, 5)), mask)
    var = np.zeros_like(base)
    for k in range(25):
        e = np.zeros(25)
        e[k] = 1.0
        g = fn(e.reshape(5, 5), mask) - base
        if mask.flat[k]:
            var = var + (g * se.flat[k]) ** 2
    return np.sqrt(var)


def _se_full(s_dir_se, radius, radius_se):
    return np.hypot(_grid(s_dir_se), (DIM - 1) * _grid(radius_se) / _grid(radius))


def slope_variants(res: dict) -> dict:
    """Per regime: {label: (S grid, S standard-error grid or None, mask)}."""
    m = res["mixed_spacing"]
    out = {}
    for p in PROTOCOLS:
        t, o, e = res[p]["theirs"], res[p]["ours"], res[p]["thermo_on_theirs"]
        mask = _grid(o["stationary"]).astype(bool) & ~_grid(o["diverged"]).astype(bool)
        v = {}
        if p == "elr":
            v["theirs, all points (as the notebook fits)"] = (
                _grid(t["entropy"]), None, np.ones((5, 5), bool))
        v["theirs (spacing 50)"] = (
            _grid(t["entropy"]), _se_full(t["entropy_dir_se"], t["radius"], t["radius_se"]), mask)
        v[f"theirs, S_dir from the mixed queue (spacing {m})"] = (
            _grid(t["entropy_mixed"]),
            _se_full(t["entropy_dir_mixed_se"], t["radius"], t["radius_se"]), mask)
        v["thermosgd chord on their spacing-50 queues"] = (
            full_entropy(_grid(e["chord50"]), _grid(t["radius"])), None, mask)
        v["thermosgd (chord, default spacing)"] = (_grid(o["entropy"]), _grid(o["entropy_se"]),
                                                   mask)
        for key, sp in (("s50", LOG_FREQ), ("smix", m)):
            v[f"thermosgd, spacing {sp} ({REPLICAS} replicas)"] = (
                full_entropy(_grid(o[key]), _grid(o["radius"])),
                _se_full(o[key + "_se"], o["radius"], o["radius_se"]), mask)
        if p != "sphere":
            v[REFERENCE] = (full_entropy(_grid(o["entropy_dir_discrete"]), _grid(o["radius"])),
                            None, mask)
        out[p] = v
    return out


REFERENCE = "reference: exact vMF S_dir with the finite-step shift, thermosgd's radius"
SUMMARY = {"elr": elr_summary, "lr": lr_summary, "sphere": sphere_summary}


def summaries(res: dict) -> dict:
    """{regime: {label: (values, propagated stderr or None, per-row slopes for the spread)}}."""
    out = {}
    for p, variants in slope_variants(res).items():
        fn = SUMMARY[p]
        out[p] = {}
        for k, (S, se, mask) in variants.items():
            val = fn(S, mask)
            err = None if se is None else propagated_se(fn, se, mask)
            out[p][k] = (val, err, S, mask)
    return out


def _vse(v, e, fmt="+.4f"):
    return f(v, fmt) + ("" if e is None or not np.isfinite(e) else f" [{e:.4f}]")


def slope_block(res: dict, summ: dict) -> list[str]:
    """The Maxwell-slope tables."""
    rows = ["| ELR: dS/dlog(wd) / ((d-1)/2), theory -1 | "
            + " | ".join(f"elr = {e:.2g}" for e in GRID)
            + " | mean over rows +- std [stderr] |", "|---" * 7 + "|"]
    for k, (val, err, S, mask) in summ["elr"].items():
        spread = row_slopes(_LW, S, mask) / _HALF
        sd = f" +- {np.nanstd(spread, ddof=1):.4f}" if np.isfinite(spread).sum() > 1 else ""
        rows.append(f"| {k} | " + " | ".join(f(x, "+.4f") for x in val[:5])
                    + f" | {f(val[5], '+.4f')}{sd}"
                    + ("" if err is None else f" [{err[5]:.4f}]") + " |")
    pv, ps = PAPER["elr dS/dlog(wd)"]
    rows += [f"| paper's 17x17 grid (notebook output, quoted) | | | | | | {pv:+.4f} +- {ps:.4f} |",
             "", "| LR (normalized by (d-1)/2) | dS/dlog(wd) at fixed lr, theory 0 | "
             "dS/dlog(lr) at fixed wd, theory 1 | difference, theory 1 (Maxwell) |",
             "|---|---|---|---|"]
    for k, (val, err, S, mask) in summ["lr"].items():
        sa = np.nanstd(row_slopes(_LW, S, mask) / _HALF, ddof=1)
        sb = np.nanstd(row_slopes(_LW, S.T, mask.T) / _HALF, ddof=1)
        e = [None] * 3 if err is None else err
        rows.append(f"| {k} | {f(val[0], '+.4f')} +- {sa:.4f}"
                    + ("" if e[0] is None else f" [{e[0]:.4f}]")
                    + f" | {f(val[1], '+.4f')} +- {sb:.4f}"
                    + ("" if e[1] is None else f" [{e[1]:.4f}]")
                    + f" | {_vse(val[2], e[2])} |")
    pa, pas = PAPER["lr dS/dlog(wd)"]
    pb, pbs = PAPER["lr dS/dlog(lr)"]
    rows += [f"| paper's 17x17 grid (notebook output, quoted) | {pa:+.4f} +- {pas:.4f} | "
             f"{pb:+.4f} +- {pbs:.4f} | {PAPER['lr difference'][0]:+.4f} |", "",
             "| sphere (normalized by (d-1)/2) | dS/dlog(r) at fixed elr, theory 2 | "
             "dS/dlog(elr) at fixed r, theory 1 (equipartition) |", "|---|---|---|"]
    for k, (val, err, _, _) in summ["sphere"].items():
        e = [None] * 2 if err is None else err
        rows.append(f"| {k} | {_vse(val[0], e[0])} | {_vse(val[1], e[1])} |")
    o = res["sphere"]["ours"]
    allm = np.ones((5, 5), bool)
    for label, key in (("exact vMF S_dir at T = elr/2", "entropy_dir_theory"),
                       ("same with the finite-step shift (d-1)/2 log(1 + elr/2)",
                        "entropy_dir_discrete")):
        val = sphere_summary(_grid(o[key]), allm)
        rows.append(f"| {label} | (+2 by construction) | {val[1]:+.4f} |")
    return rows


def ar1_grid_bias(res: dict, p: str, spacing: int) -> np.ndarray:
    """AR(1)-model entropy bias (vs i.i.d.) at each grid point of regime p, at the chain's
    stationary eta-tilde (lr: sqrt(2 eta lambda/((d-1) sigma^2)))."""
    chains = res["chains"]
    idx = np.flatnonzero(chains["protocol"] == p)
    rate = chains["rate"][idx]
    if p == "lr":  # eta / r*^2 with r*^4 = eta (d-1) sigma^2 / (2 lambda)
        rate = np.sqrt(2.0 * rate * chains["wd"][idx] / ((DIM - 1) * SIGMA**2))
    table = res["ar1"]
    return _grid([table[_rate_key(r)][spacing][0] - table["iid"][0] for r in rate])


def shift_rows(res: dict, summ: dict) -> tuple[list[str], dict]:
    """Slope shifts from the snapshot spacing (50 minus mixed) per code, and the model."""
    m = res["mixed_spacing"]
    pairs = {"their loop, their estimator": ("theirs (spacing 50)",
                                             f"theirs, S_dir from the mixed queue (spacing {m})"),
             f"thermosgd simulator, chord ({REPLICAS} replicas)": (
                 f"thermosgd, spacing {LOG_FREQ} ({REPLICAS} replicas)",
                 f"thermosgd, spacing {m} ({REPLICAS} replicas)")}
    cols = (("lr", 0), ("lr", 1), ("lr", 2), ("elr", 5), ("sphere", 1))
    rows = [f"| spacing 50 minus {m} | LR dS/dlog(wd) | LR dS/dlog(lr) | LR difference | "
            "ELR dS/dlog(wd) (mean over rows) | sphere dS/dlog(elr) |", "|---|---|---|---|---|---|"]
    q = {}
    for label, (a, b) in pairs.items():
        vals = []
        for p, i in cols:
            va, ea = summ[p][a][0][i], summ[p][a][1][i]
            vb, eb = summ[p][b][0][i], summ[p][b][1][i]
            vals.append((va - vb, math.hypot(ea, eb)))
        q[label] = vals
        rows.append(f"| {label} | " + " | ".join(_vse(v, e) for v, e in vals) + " |")
    model = []
    for p, i in cols:
        mask = _grid(res[p]["ours"]["stationary"]).astype(bool)
        shift = ar1_grid_bias(res, p, LOG_FREQ) - ar1_grid_bias(res, p, m)
        model.append(SUMMARY[p](shift, mask)[i])
    q["model"] = model
    rows.append("| AR(1) model of the bias, same points | "
                + " | ".join(f"{v:+.4f}" for v in model) + " |")
    return rows, q


def spacing_rows(res: dict) -> tuple[list[str], dict]:
    m = res["mixed_spacing"]
    rows = [f"| elr | mixing time 1/elr (steps) | lag-{LOG_FREQ} correlation (1-elr)^{LOG_FREQ} "
            f"| AR(1) model: 50 - {m} | their loop + their estimator, ELR: 50 - {m} | "
            f"same, sphere: 50 - {m} | their loop + thermosgd chord, ELR: 50 - {m} | "
            f"thermosgd sim + chord ({REPLICAS} replicas), ELR: 50 - {m} | same, sphere: "
            f"50 - {m} | theirs (50) - reference, ELR | thermosgd (default) - reference, ELR |",
            "|---" * 11 + "|"]
    q = {}
    for i, e in enumerate(GRID):
        sl = slice(5 * i, 5 * i + 5)
        te, oe = res["elr"]["theirs"], res["elr"]["ours"]
        ts, os_ = res["sphere"]["theirs"], res["sphere"]["ours"]
        ce = res["elr"]["thermo_on_theirs"]
        ar = res["ar1"][_rate_key(e)]
        q[e] = {"theirs": (te["entropy_dir"] - te["entropy_dir_mixed"])[sl],
                "sphere": (ts["entropy_dir"] - ts["entropy_dir_mixed"])[sl],
                "chord": (ce["chord50"] - ce["chord_mixed"])[sl],
                "thermo": (oe["s50"] - oe["smix"])[sl],
                "thermo_sphere": (os_["s50"] - os_["smix"])[sl],
                "model": ar[LOG_FREQ][0] - ar[m][0],
                "model_50": ar[LOG_FREQ][0] - res["ar1"]["iid"][0],
                "model_mix": ar[m][0] - res["ar1"]["iid"][0],
                "bias_theirs": (te["entropy_dir"] - oe["entropy_dir_discrete"])[sl],
                "bias_ours": (oe["entropy_dir"] - oe["entropy_dir_discrete"])[sl]}
        r = q[e]
        rows.append(f"| {e:.2g} | {1 / e:.0f} | {(1 - e) ** LOG_FREQ:.3f} | {r['model']:+.3f} | "
                    + " | ".join(pm(r[k]) for k in ("theirs", "sphere", "chord", "thermo",
                                                    "thermo_sphere", "bias_theirs", "bias_ours"))
                    + " |")
    return rows, q


def point_table(res: dict, p: str) -> list[str]:
    t, o, e = res[p]["theirs"], res[p]["ours"], res[p]["thermo_on_theirs"]
    m = res["mixed_spacing"]
    second = "r" if p == "sphere" else "wd"
    rate = "elr" if p != "lr" else "lr"
    if p == "sphere":
        head = (f"| {rate} | {second} | lambda_eff theirs | lambda_eff ours | U theirs | U ours "
                f"| S_dir theirs (50) | S_dir theirs ({m}) | S_dir chord on their queues (50) "
                f"| S_dir ours | S_dir reference | S theirs | S ours |")
        n_cols = 13
    else:
        head = (f"| {rate} | {second} | stationary (relaxed) | r theirs | r ours | r: rel. diff "
                f"| U theirs | U ours | S_dir theirs (50) | S_dir theirs ({m}) | S_dir chord on "
                f"their queues (50) | S_dir ours | S_dir reference | S theirs | S ours |")
        n_cols = 15
    rows = [head, "|---" * n_cols + "|"]
    seconds = RADII if p == "sphere" else GRID
    for k in range(25):
        a, b = GRID[k // 5], seconds[k % 5]
        common = (f"{t['energy'][k]:.5f} | {o['energy'][k]:.5f} | {t['entropy_dir'][k]:+.3f} | "
                  f"{t['entropy_dir_mixed'][k]:+.3f} | {e['chord50'][k]:+.3f} | "
                  f"{o['entropy_dir'][k]:+.3f} | {o['entropy_dir_discrete'][k]:+.3f} | "
                  f"{t['entropy'][k]:+.3f} | {o['entropy'][k]:+.3f} |")
        if p == "sphere":
            rows.append(f"| {a:.2g} | {b:.2g} | {t['pressure'][k]:.4g} | {o['pressure'][k]:.4g} | "
                        + common)
        else:
            flag = ("yes" if o["stationary"][k] else "no") + (
                " (yes)" if o["relaxed"][k] else " (no)")
            rel = 100 * (t["radius"][k] / o["radius"][k] - 1)
            rows.append(f"| {a:.2g} | {b:.2g} | {flag} | {t['radius'][k]:.4f} | "
                        f"{o['radius'][k]:.4f} | {rel:+.2f}% | " + common)
    return rows


def write_doc(res: dict, path: Path, command: str) -> str:
    steps = res["steps"]
    m = res["mixed_spacing"]
    tm = res["timing"]
    summ = summaries(res)
    slopes = slope_block(res, summ)
    shifts, qsh = shift_rows(res, summ)
    sp_rows, qsp = spacing_rows(res)
    ag_rows, qa = agreement(res)
    e0 = GRID[0]
    b0 = qsp[e0]
    k50 = "theirs (spacing 50)"
    kdef = "thermosgd (chord, default spacing)"
    lr50, lrdef, lrref = summ["lr"][k50], summ["lr"][kdef], summ["lr"][REFERENCE]
    lrmix_o = summ["lr"][f"thermosgd, spacing {m} ({REPLICAS} replicas)"]
    el50, eldef = summ["elr"][k50], summ["elr"][kdef]
    sh_t = qsh["their loop, their estimator"]
    sh_o = qsh[f"thermosgd simulator, chord ({REPLICAS} replicas)"]
    sh_m = qsh["model"]
    chord_minus_scale = np.concatenate(
        [res[p]["thermo_on_theirs"]["chord50"] - res[p]["theirs"]["entropy_dir"]
         for p in PROTOCOLS])
    sc = res.get("scale_diff")
    ours_total = sum(tm["thermo_seconds"].values())
    bt = tm["best"]
    lines = [
        "# External check: the authors' isotropic-noise loop, re-implemented, beside thermosgd",
        "",
        f"Generated by `{command}` on {res['date']} ({res['machine']}); every number below is "
        f"formatted by that script from its own run ({res['total_seconds'] / 60:.1f} min in "
        "total; every simulation is seeded, so a rerun reproduces all numbers but the "
        "timings). Nothing here comes from the authors' code, which we do not have: \"theirs\" "
        "is a re-implementation, in `benchmarks/external_check.py`, of the loop and entropy "
        "estimator described in the reference study of `notebooks/VMF.ipynb` "
        "(reference-implementation.md sections 2.1-2.3 and 4.5-4.9; paper.md section 8).",
        "",
        "## Setup",
        "",
        f"* d = {DIM}, sigma = {SIGMA:g}, {steps:,} steps, initial radius 1 (sphere: r). Grids "
        f"of 5 x 5: elr, lr and wd in logspace(-3, -1, 5), sphere radius in logspace(-1, 1, 5).",
        "* **Theirs** (float32 torch, one tensor of all 75 chains of the three regimes): autograd "
        "gradient of L = 1 + <mu, w>/|w| (mu from torch seed 44), tangent noise "
        "(sigma/|w|) P_perp xi, w <- w - eta_t (grad + eps + lambda w) with eta_t = eta (LR) or "
        "eta-tilde |w|^2 (ELR; the norm before the step); sphere: lambda = 0, the ELR step, then "
        f"projection to r. All chains start from one direction (torch seed 42). Every {LOG_FREQ} "
        f"iterations: |w| before projection and the pre-step loss are logged, w (after "
        f"projection) is pushed into a queue of {QUEUE}. Radius and U: means over the last "
        f"{RADIUS_LOGS} logs ({RADIUS_LOGS * LOG_FREQ:,} iterations); sphere pressure "
        "lambda_eff = (mean |w'| - r)/(eta-tilde r^3). Entropy: their 'scale' estimator "
        f"(normalise, hyperspherical angles in float32, each angle centred and divided by its "
        f"std, sklearn 1-NN, log(N-1) + gamma + d<log rho> + log V_d + sum log std, plus the "
        f"mean log sin phi_1 without clipping), averaged over the last {LAST_ESTIMATES} "
        f"estimates taken every steps/{N_ESTIMATES} = {steps // N_ESTIMATES:,} iterations "
        f"(at iterations {res['est_iters'][0]:,} ... {res['est_iters'][-1]:,}); "
        "S = S_dir + (d-1) log r. "
        f"Distances below {KL_CLIP:g} would be clipped: {res['clipped']} were.",
        "* Assumptions where the description is silent: the FIFO order of the queue is not "
        "kept (irrelevant to a k-NN estimate); the std uses ddof = 0 (KL + sum log std does "
        "not depend on a common factor); the entropy is computed only at the 10 estimates "
        "that enter the average (the notebook computes all 50); the three regimes share one "
        "tensor and so one random stream (the notebook runs them one at a time). The queue's "
        f"mode -mu lies at angles (phi_1, phi_2) = ({res['mode_angles'][0]:.2f}, "
        f"{res['mode_angles'][1]:.2f}) rad, away from the polar axis and from the cut of the "
        "periodic azimuth at +-pi.",
        f"* An observer in the same loop also keeps a **mixed queue**: {QUEUE} snapshots every "
        f"{m} iterations over the last {QUEUE * m:,} (the authors have no such queue); it "
        "separates the snapshot spacing from everything else.",
        "* **Ours**: `thermosgd.sim.isotropic.simulate` + `stationary_table` (float64 numba "
        "kernel, chord k-NN entropy of one queue of 1000 snapshots spread over the stationary "
        "window, default burn-in) on the same grids. Its flags decide which points are comparable: "
        "radius and full entropy where `stationary` (relaxed, not drifting); U and S_dir also at "
        "every ELR and sphere point (their direction law depends only on eta-tilde, not on "
        "the radius); in LR everything depends on the radius, so only `stationary` points.",
        f"* Spacing runs of thermosgd: {REPLICAS} replicas per grid point with the queue "
        f"spacing forced to {LOG_FREQ} (burn_in = steps - {QUEUE} x {LOG_FREQ}, i.e. their "
        f"window) and to {m} (burn_in = steps - {QUEUE} x {m}); the chord entropy of each "
        "replica's queue, averaged (as they average 10 windows).",
        "* Everything single-threaded (`torch.set_num_threads(1)`, `numba.set_num_threads(1)`).",
        "",
        "## Findings",
        "",
        f"1. **Snapshot spacing biases their entropy low at small rates.** The angular mixing "
        f"time is ~1/eta-tilde steps ({1 / e0:.0f} at eta-tilde = {e0:g}), "
        f"{1 / e0 / LOG_FREQ:.0f}x their {LOG_FREQ}-step snapshot spacing: consecutive snapshots "
        f"are correlated ({(1 - e0) ** LOG_FREQ:.2f} at lag {LOG_FREQ}), the 1-NN distances shrink "
        f"and S_dir comes out low. At ELR = {e0:g} (mean +- std over the 5 wd points) their "
        f"queue minus the mixed queue of the same chains, same estimator, is {pm(b0['theirs'])} "
        f"nats (sphere regime, same eta-tilde: {pm(b0['sphere'])}); thermosgd's chord "
        f"estimator on the same two queues gives {pm(b0['chord'])}, and thermosgd's own "
        f"simulator with the queue spacing forced to {LOG_FREQ} vs {m} gives {pm(b0['thermo'])} "
        f"(sphere: {pm(b0['thermo_sphere'])}). A 2-D Gaussian AR(1) with the same lag "
        f"correlation predicts {b0['model']:+.3f} ({b0['model_50']:+.3f} against i.i.d. "
        f"samples at spacing {LOG_FREQ}, {b0['model_mix']:+.3f} at {m}). Against the exact "
        f"vMF entropy (with the finite-step shift) their S_dir at ELR = {e0:g} is off by "
        f"{pm(b0['bias_theirs'])}, thermosgd's by {pm(b0['bias_ours'])}. The shift falls off "
        f"with the rate: {pm(qsp[GRID[1]]['theirs'])} at {GRID[1]:.2g}, "
        f"{pm(qsp[GRID[-1]]['theirs'])} at {GRID[-1]:.2g} (table below).",
        f"2. **It cancels in the Maxwell difference but shifts each LR slope.** In LR the "
        f"direction law, and so the bias, depends on eta lambda only; it moves dS/dlog(lr) and "
        f"dS/dlog(wd) alike and drops out of their difference. Spacing 50 minus spacing {m} "
        f"(normalized slopes, [propagated standard error]): their loop dS/dlog(wd) "
        f"{_vse(*sh_t[0])}, dS/dlog(lr) {_vse(*sh_t[1])}, difference {_vse(*sh_t[2])} "
        f"({abs(sh_t[2][0]) / sh_t[2][1]:.1f} standard errors from 0); thermosgd's simulator "
        f"({REPLICAS} replicas, so less noise) {_vse(*sh_o[0])}, {_vse(*sh_o[1])}, "
        f"{_vse(*sh_o[2])} ({abs(sh_o[2][0]) / sh_o[2][1]:.1f} standard errors); the AR(1) "
        f"model {sh_m[0]:+.4f}, {sh_m[1]:+.4f}, {sh_m[2]:+.4f}. "
        f"Their LR slopes: dS/dlog(wd) {_vse(lr50[0][0], lr50[1][0])} (theory 0; the paper's "
        f"17x17 grid printed {PAPER['lr dS/dlog(wd)'][0]:+.4f}), dS/dlog(lr) "
        f"{_vse(lr50[0][1], lr50[1][1])} (paper {PAPER['lr dS/dlog(lr)'][0]:+.4f}); thermosgd "
        f"(default spacing) {_vse(lrdef[0][0], lrdef[1][0])} and "
        f"{_vse(lrdef[0][1], lrdef[1][1])}, thermosgd at spacing {m} ({REPLICAS} replicas) "
        f"{_vse(lrmix_o[0][0], lrmix_o[1][0])} and {_vse(lrmix_o[0][1], lrmix_o[1][1])}, and "
        f"the exact vMF entropy with the finite-step shift at thermosgd's radii "
        f"{lrref[0][0]:+.4f} and {lrref[0][1]:+.4f}: what remains of dS/dlog(wd) once the "
        f"spacing bias is gone is the finite-step term. In ELR the bias is constant along each row "
        f"(fixed eta-tilde), so dS/dlog(wd) is untouched (shift {_vse(*sh_t[3])}, model "
        f"{sh_m[3]:+.4f}). On the sphere nothing cancels: dS/dlog(elr) at fixed r is raised by "
        f"{_vse(*sh_t[4])} (their loop), {_vse(*sh_o[4])} (thermosgd), model {sh_m[4]:+.4f}.",
        "3. **Agreements** at the comparable points (table below; z = difference / combined "
        "standard error): "
        + "; ".join(f"{p} {qa[p]['key']} max abs rel. diff {100 * qa[p]['rel']:.2f}% (max abs z "
                    f"{qa[p]['z']:.1f})" for p in PROTOCOLS)
        + ". U: " + "; ".join(f"{p} {100 * qa[p]['rel_u']:.2f}% (max abs z {qa[p]['z_u']:.1f})"
                              for p in PROTOCOLS)
        + f". S_dir, their estimator on the mixed queue ({m}) minus thermosgd: "
        + "; ".join(f"{p} {pm(qa[p]['dsm'])} nats (max abs z {qa[p]['z_s']:.1f})"
                    for p in PROTOCOLS)
        + f". Maxwell slopes: ELR dS/dlog(wd) theirs {_vse(el50[0][5], el50[1][5])} vs "
        f"thermosgd {_vse(eldef[0][5], eldef[1][5])} (mean over the stationary rows, theory "
        f"-1); LR difference theirs {_vse(lr50[0][2], lr50[1][2])} vs thermosgd "
        f"{_vse(lrdef[0][2], lrdef[1][2])} (theory 1). The two estimators agree on the same "
        f"snapshots: thermosgd's chord entropy of their spacing-50 queues minus their 'scale' "
        f"estimate is {pm(chord_minus_scale)} nats over the 75 chains.",
        f"4. **Runtime** (one thread each, best of {TIMING_REPEATS} interleaved blocks): their "
        f"loop {bt['theirs_all']:.1f} us/step for the 75 chains in one tensor, thermosgd "
        f"{bt['ours_all']:.2f} us/step for the same 75 chains (three runs of 25): "
        f"**{bt['theirs_all'] / bt['ours_all']:.0f}x**. Run one regime at a time as the "
        "notebook does, their loop takes "
        + ", ".join(f"{bt['theirs_' + p]:.1f}" for p in PROTOCOLS)
        + " us/step (ELR, LR, sphere; 25 chains) vs thermosgd "
        + ", ".join(f"{bt['ours_' + p]:.2f}" for p in PROTOCOLS) + " us/step: "
        + ", ".join(f"{bt['theirs_' + p] / bt['ours_' + p]:.0f}x" for p in PROTOCOLS)
        + f". Over the whole run (shared machine) the averages were {tm['theirs_us']:.1f} and "
        f"{ours_total / steps * 1e6:.2f} us/step.",
        "",
        "## Agreement per regime",
        "",
        "Comparable points (thermosgd flags, see Setup): the first count is for radius/pressure "
        "and full S, the second for U and S_dir. Relative differences are theirs/ours - 1, "
        "with the (rate, wd or r) of the largest; "
        "z = difference / combined standard error (theirs: batch means of 10 blocks of the "
        "5000 logs, or the spread of the 10 entropy estimates; ours: thermosgd's errors). "
        "Entropy differences are theirs - ours in nats, mean +- std over the points.",
        "",
        "| regime | points | radius or pressure: max abs rel. diff | U: max abs rel. diff | "
        f"S_dir: theirs (50) - ours | S_dir: theirs ({m}) - ours | S: theirs (50) - ours | "
        f"S: theirs ({m}) - ours |",
        "|---|---|---|---|---|---|---|---|",
        *ag_rows,
        "",
        "## Maxwell slopes",
        "",
        "Unweighted least-squares slopes of the full entropy S against the log of one "
        "hyperparameter, per row or column of the 5 x 5 grid, on the same points for every "
        "variant (thermosgd's `stationary` flags, at least 3 points per row; rows with fewer "
        "are n/a), normalized by (d-1)/2; mean over rows +- std over rows, and in brackets "
        "the standard error of the mean propagated from the per-point entropy errors.",
        "",
        *slopes,
        "",
        f"Effect of the snapshot spacing on the slopes: the same fits with the spacing-50 "
        f"entropies minus those with the spacing-{m} entropies of the same code (radius "
        "unchanged), [propagated standard error, treating the two as independent]. The model "
        "row applies the AR(1) bias (next section) at each point's stationary eta-tilde "
        "(LR: sqrt(2 eta lambda/((d-1) sigma^2))).",
        "",
        *shifts,
        "",
        "## The snapshot-spacing effect, by rate",
        "",
        f"S_dir differences in nats, mean +- std over the 5 points of each ELR (or sphere) row; "
        f"\"50 - {m}\" is the entropy from the queue at {LOG_FREQ}-step spacing minus that at "
        f"{m}-step spacing of the same code. The AR(1) column is the model prediction "
        "(linearised tangent dynamics, rate eta-tilde per step). \"reference\": exact vMF "
        "S_dir at kappa = 1/T with thermosgd's finite-step shift (d-1)/2 log(1 + eta-tilde/2) "
        "(`entropy_dir_discrete`).",
        "",
        *sp_rows,
        "",
    ]
    if sc is not None:
        lines += [
            "## Their estimator vs thermosgd's `sphere_entropy(method=\"scale\")`",
            "",
            f"On the same snapshots (their {LOG_FREQ}-spacing queues, 10 estimates x 75 chains, "
            f"and the mixed queues): this script's re-implementation minus thermosgd's 'scale' "
            f"is {sc['mean']:+.2e} +- {sc['std']:.2e} nats (max abs {sc['max']:.2e}). Expected "
            "differences: log(N-1) + gamma vs psi(N) - psi(1) (-1/(2N) = "
            f"{-1 / (2 * QUEUE):+.1e}), float32 vs float64 angles, and thermosgd's clipping of "
            "sin phi at 1e-8.",
            "",
        ]
    elif res.get("scale_error"):
        lines += [f"thermosgd's `sphere_entropy` has no method='scale' here: {res['scale_error']}",
                  ""]
    lines += [
        "## Runtime (single-threaded)",
        "",
        f"Best of {TIMING_REPEATS} interleaved blocks ({TIMING_STEPS:,} steps of their loop, "
        f"{TIMING_STEPS_OURS:,} of thermosgd, per block; their step without the logging), and "
        f"the averages over the whole {steps:,}-step run.",
        "",
        "| code | chains per run | us/step, best block | ns per chain-step | us/step, whole run |",
        "|---|---|---|---|---|",
        f"| theirs: torch float32 autograd, all 3 regimes in one tensor | 75 | "
        f"{bt['theirs_all']:.1f} | {bt['theirs_all'] / 75 * 1e3:.0f} | {tm['theirs_us']:.1f} "
        "(with logging) |",
    ]
    for p in PROTOCOLS:
        lines.append(f"| theirs, {p} alone | 25 | {bt['theirs_' + p]:.1f} | "
                     f"{bt['theirs_' + p] / 25 * 1e3:.0f} | |")
    for p in PROTOCOLS:
        us = tm["thermo_seconds"][p] / steps * 1e6
        lines.append(f"| thermosgd `simulate`, {p} | 25 | {bt['ours_' + p]:.2f} | "
                     f"{bt['ours_' + p] / 25 * 1e3:.1f} | {us:.2f} |")
    us_all = ours_total / steps * 1e6
    lines += [
        f"| thermosgd, the three runs together | 75 | {bt['ours_all']:.2f} | "
        f"{bt['ours_all'] / 75 * 1e3:.1f} | {us_all:.2f} |",
        "",
        f"Ratio, 75 chains: **{bt['theirs_all'] / bt['ours_all']:.0f}x** (best blocks), "
        f"{tm['theirs_us'] / us_all:.0f}x (whole run). The machine was shared with other jobs "
        f"(1-minute load average {res['load'][0]:.1f} at the start, {res['load'][1]:.1f} at the "
        f"end, on {os.cpu_count()} cores), hence the best-of-blocks timing. Their entropy "
        "estimator took "
        f"{tm['theirs_estimator_s']:.2f} s per estimate of 75 chains (sklearn, per chain), "
        f"thermosgd's chord estimator {tm['chord_estimator_s']:.2f} s on the same queues. "
        f"thermosgd's spacing runs ({REPLICAS} replicas x 75 chains, two spacings) took "
        f"{tm['spacing_runs_s']:.0f} s.",
        "",
        "## Per point",
        "",
        f"\"S_dir theirs (50)\": their estimator, mean of the last {LAST_ESTIMATES} estimates; "
        f"\"({m})\": their estimator on the mixed queue; \"chord on their queues\": thermosgd's "
        "estimator on their spacing-50 queues; \"S_dir reference\": exact von Mises-Fisher at "
        "kappa = 1/T (thermosgd's theory T) with the finite-step shift. S = S_dir + (d-1) log r "
        "with each code's radius.",
        "",
    ]
    for p in PROTOCOLS:
        lines += [f"### {p}", "", *point_table(res, p), ""]
    text = "\n".join(lines).rstrip() + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


# --------------------------------------------------------------------------------------------
# driver


def thermosgd_version() -> str:
    """The thermosgd source the run used: THERMOSGD_SOURCE_COMMIT if set (for a copy outside a
    checkout), else the git commit of the package's directory (noting uncommitted changes)."""
    import subprocess

    import thermosgd

    commit = os.environ.get("THERMOSGD_SOURCE_COMMIT")
    if commit:
        return f"thermosgd at commit {commit}"
    src = str(Path(thermosgd.__file__).resolve().parent)
    try:
        def git(*args):
            return subprocess.run(["git", "-C", src, *args], capture_output=True, text=True,
                                  check=True).stdout.strip()

        dirty = " plus uncommitted changes" if git("status", "--porcelain", ".") else ""
        return f"thermosgd at commit {git('rev-parse', '--short', 'HEAD')}{dirty}"
    except (OSError, subprocess.CalledProcessError):
        return "thermosgd (commit unknown)"


def run(steps: int, log=print) -> dict:
    t_all = time.perf_counter()
    load_start = os.getloadavg()[0]
    log(f"their loop: 75 chains x {steps:,} steps")
    raw = authors_loop(steps, log=log)
    log(f"  {raw['seconds']:.0f} s ({raw['seconds'] / steps * 1e6:.1f} us/step)")
    th = theirs_stats(raw, log=log)
    log("thermosgd runs")
    t0 = time.perf_counter()
    ours = thermo_runs(steps, log=log)
    spacing_s = time.perf_counter() - t0 - sum(ours[p]["seconds"] for p in PROTOCOLS)
    on_theirs = thermo_estimators_on_theirs(raw)
    log("timing blocks")
    best = timing_blocks(log=log)
    m = raw["mixed_spacing"]
    ar1 = ar1_table((LOG_FREQ, m), windows=500 if steps >= 1_000_000 else 50)
    log(f"AR(1) model: {ar1}")
    timing = {"theirs_us": raw["seconds"] / steps * 1e6, "best": best,
              "thermo_seconds": {p: ours[p]["seconds"] for p in PROTOCOLS},
              "theirs_estimator_s": th["estimator_seconds"],
              "chord_estimator_s": on_theirs["chord_seconds"], "spacing_runs_s": spacing_s}
    res = analyse(raw, th, ours, on_theirs, timing, ar1, time.perf_counter() - t_all)
    if "scale50" in on_theirs:
        mine = np.concatenate([th["entropy_dir_estimates"].ravel(), th["entropy_dir_mixed"]])
        theirs_tsgd = np.concatenate([on_theirs["scale50"].ravel(), on_theirs["scale_mixed"]])
        d = mine - theirs_tsgd
        res["scale_diff"] = {"mean": float(d.mean()), "std": float(d.std(ddof=1)),
                             "max": float(np.abs(d).max())}
    u = -raw["mu"] / np.linalg.norm(raw["mu"])
    res["mode_angles"] = to_spherical(torch.as_tensor(u[None], dtype=torch.float32))[0, 1:].tolist()
    res["load"] = (load_start, os.getloadavg()[0])
    res["date"] = datetime.date.today().isoformat()
    res["machine"] = (f"{os.cpu_count()} cores, {platform.machine()}, torch {torch.__version__}, "
                      f"numba {numba.__version__}, one thread, {thermosgd_version()}")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2_000_000,
                    help="iterations per chain (a multiple of 2500, >= 100000)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 100000 steps, doc to /tmp/external-check-quick.md")
    ap.add_argument("--doc", type=Path, default=None)
    ap.add_argument("--results", type=Path, default=None, help="where to pickle the results")
    ap.add_argument("--reuse", type=Path, default=None,
                    help="skip the run: write the doc from a pickled results file")
    a = ap.parse_args()
    steps = 100_000 if a.quick else a.steps
    doc = a.doc or (Path("/tmp/external-check-quick.md") if a.quick else DEFAULT_DOC)
    results = a.results or (Path("/tmp/external-check-quick.pkl") if a.quick else DEFAULT_RESULTS)
    command = "python benchmarks/external_check.py" + (
        " --quick" if a.quick else ("" if steps == 2_000_000 else f" --steps {steps}"))
    if a.reuse:
        res = pickle.loads(a.reuse.read_bytes())
    else:
        if steps % (LOG_FREQ * N_ESTIMATES) or steps < 100_000:
            ap.error("--steps must be a multiple of 2500 and >= 100000")
        torch.set_num_threads(1)
        numba.set_num_threads(1)
        res = run(steps, log=lambda s: print(s, flush=True))
        res["command"] = command
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_bytes(pickle.dumps(res))
    res.setdefault("command", command)
    write_doc(res, doc, res["command"])
    print(f"wrote {doc} ({res['total_seconds'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
