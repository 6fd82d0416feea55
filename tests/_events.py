"""Event-level simulation of customers over a calibration period and a holdout.

Written from the models' stories (individual purchase times, drop-out events), not from
any formula of the package, so that intervals and conditional distributions can be
checked against it. Used by tests/test_predictive.py and benchmarks/coverage_study.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _split(times: np.ndarray, owner: np.ndarray, n: int, T: np.ndarray):
    """Calibration (x, t_x) and holdout counts from purchase times (first purchase at 0)."""
    cal = times <= T[owner]
    x = np.bincount(owner[cal], minlength=n)
    t_x = np.zeros(n)
    np.maximum.at(t_x, owner[cal], times[cal])
    holdout = np.bincount(owner[~cal], minlength=n)
    return x, t_x, holdout


def _arrivals(rate: np.ndarray, until: np.ndarray, rng):
    """Poisson arrival times on (0, until] per customer: (times, owner), sorted per owner."""
    m = rng.poisson(rate * until)
    owner = np.repeat(np.arange(rate.size), m)
    times = rng.random(owner.size) * until[owner]
    order = np.lexsort((times, owner))
    return times[order], owner[order]


def _rank_within(owner: np.ndarray) -> np.ndarray:
    """1-based rank of each arrival among its owner's (arrivals sorted per owner)."""
    start = np.r_[0, np.flatnonzero(np.diff(owner)) + 1]
    counts = np.diff(np.r_[start, owner.size])
    return np.arange(owner.size) - np.repeat(start, counts) + 1


def simulate(model: str, params: dict, n: int, T, t: float, seed: int) -> pd.DataFrame:
    """Customers (frequency, recency, T) and ``holdout`` purchases in (T, T + t].

    model: "BGNBD" (drop-out after each repeat purchase with probability p), "MBGNBD"
    (also at time 0), "ParetoNBD" (exponential lifetime), "BGBB" (discrete opportunities),
    "MBGCNBD" / "BGCNBD" (Erlang-k inter-purchase times, drop-out as the MBG/BG),
    "GGomNBD" (Gompertz lifetime).
    """
    rng = np.random.default_rng(seed)
    T = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()
    if model == "BGBB":
        return _simulate_bgbb(params, n, T.astype(int), int(t), rng)
    if model in ("MBGCNBD", "BGCNBD"):
        return _simulate_cnbd(params, n, T, t, rng, model == "MBGCNBD")
    if model == "GGomNBD":
        return _simulate_ggomnbd(params, n, T, t, rng)
    lam = rng.gamma(params["r"], 1.0 / params["alpha"], n)
    times, owner = _arrivals(lam, T + t, rng)
    if model in ("BGNBD", "MBGNBD"):
        p = rng.beta(params["a"], params["b"], n)
        # index of the fatal drop-out chance among chances 1, 2, ...: the BG/NBD's chance
        # k follows repeat purchase k; the MBG/NBD's first chance is at time 0
        fatal = rng.geometric(np.clip(p, 1e-300, 1.0))
        last = fatal if model == "BGNBD" else fatal - 1  # last repeat purchase made
        keep = _rank_within(owner) <= last[owner]
    else:  # Pareto/NBD
        mu = rng.gamma(params["s"], 1.0 / params["beta"], n)
        tau = rng.exponential(1.0, n) / mu
        keep = times < tau[owner]
    x, t_x, holdout = _split(times[keep], owner[keep], n, T)
    return pd.DataFrame({"frequency": x, "recency": t_x, "T": T, "holdout": holdout})


def _simulate_bgbb(params, n, T, t, rng):
    p = rng.beta(params["alpha"], params["beta"], n)
    theta = rng.beta(params["gamma"], params["delta"], n)
    horizon = T + t
    width = int(horizon.max())
    alive = np.cumprod(rng.random((n, width)) >= theta[:, None], axis=1).astype(bool)
    buys = alive & (rng.random((n, width)) < p[:, None])
    opp = np.arange(1, width + 1)[None, :]
    cal = buys & (opp <= T[:, None])
    x = cal.sum(axis=1)
    t_x = np.where(x > 0, (cal * opp).max(axis=1), 0)
    holdout = (buys & (opp > T[:, None]) & (opp <= horizon[:, None])).sum(axis=1)
    return pd.DataFrame({"frequency": x, "recency": t_x, "T": T, "holdout": holdout})


def _simulate_cnbd(params, n, T, t, rng, dropout_at_zero):
    """Erlang-k gaps (k Poisson events of rate lambda each) between purchases; after each
    repeat purchase (and, for the MBG, at time 0) the customer leaves with probability p."""
    k = int(params["k"])
    lam = rng.gamma(params["r"], 1.0 / params["alpha"], n)
    p = rng.beta(params["a"], params["b"], n)
    fatal = rng.geometric(np.clip(p, 1e-300, 1.0))  # the fatal chance among 1, 2, ...
    last = fatal - 1 if dropout_at_zero else fatal  # repeat purchases made
    clock, made = np.zeros(n), np.zeros(n, dtype=np.int64)
    x, t_x, holdout = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n, dtype=np.int64)
    active = np.flatnonzero(last > 0)
    while active.size:
        clock[active] += rng.gamma(k, 1.0 / lam[active])
        inside = clock[active] <= T[active] + t
        buy = active[inside]
        cal = clock[buy] <= T[buy]
        x[buy[cal]] += 1
        t_x[buy[cal]] = clock[buy[cal]]
        holdout[buy[~cal]] += 1
        made[buy] += 1
        active = buy[made[buy] < last[buy]]
    return pd.DataFrame({"frequency": x, "recency": t_x, "T": T, "holdout": holdout})


def _simulate_ggomnbd(params, n, T, t, rng):
    """Poisson purchases while alive; lifetime Gompertz with eta ~ Gamma(s, beta):
    P(tau > y) = exp(-eta (e^{by} - 1)), drawn by inversion."""
    lam = rng.gamma(params["r"], 1.0 / params["alpha"], n)
    eta = rng.gamma(params["s"], 1.0 / params["beta"], n)
    tau = np.log1p(rng.exponential(1.0, n) / eta) / params["b"]
    times, owner = _arrivals(lam, T + t, rng)
    keep = times < tau[owner]
    x, t_x, holdout = _split(times[keep], owner[keep], n, T)
    return pd.DataFrame({"frequency": x, "recency": t_x, "T": T, "holdout": holdout})
