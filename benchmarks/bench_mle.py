"""Maximum-likelihood fitting and scoring: clvmodels vs lifetimes, side by side in one run.

Run:  uv run python benchmarks/bench_mle.py [--customers 1000000] [--quick]

Cases
-----
1. BG/NBD fit on the CDNOW sample (2,357 customers): BGNBD vs lifetimes' BetaGeoFitter.
2. BG/NBD fit on N simulated customers acquired uniformly over two years, times in whole
   days (so identical rows exist, as in real data), fitted in weeks: time and the largest
   relative error against the true parameters, for both packages.
3. Pareto/NBD fit on the CDNOW sample: ParetoNBD vs lifetimes' ParetoNBDFitter.
4. Scoring N customers: expected purchases in the next 52 weeks, P(alive) and 52-week CLV
   (13 periods of 4 weeks, with Gamma-Gamma spend), both packages at the same parameters.

Times are wall-clock medians over repeats (one repeat for the slow lifetimes cases);
ratios are lifetimes time / clvmodels time.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore", module="lifetimes")
warnings.filterwarnings("ignore", message="pkg_resources")

import lifetimes  # noqa: E402
from bench_scale import TRUE_BG, simulate_days  # noqa: E402

import clvmodels as cm  # noqa: E402

TRUTH = dict(TRUE_BG, alpha=TRUE_BG["alpha"] / 7)  # per week


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def cdnow():
    tx = cm.datasets.cdnow_transactions(sample=True)
    return cm.rfm_summary(tx, customer="customer_id", date="date", amount="amount",
                          observation_end="1997-09-30", unit="W")


def simulated(n: int, seed: int = 2024) -> pd.DataFrame:
    """n customers acquired over two years, in whole days as real logs are (first purchase
    at a uniform time of its day: see bench_scale.simulate_days), converted to weeks."""
    days = simulate_days(n, seed)
    return days.assign(recency=days["recency"] / 7, T=days["T"] / 7)


def max_rel_error(params: pd.Series) -> float:
    return max(abs(params[k] / v - 1) for k, v in TRUTH.items())


def row(case, ours, theirs, note=""):
    return f"| {case} | {ours:.4f} | {theirs:.4f} | {theirs / ours:.1f}x | {note} |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, 100k customers")
    args = ap.parse_args()
    n = 100_000 if args.quick else args.customers
    reps = 3 if args.quick else 15
    rows = ["| case | clvmodels (s) | lifetimes (s) | speed-up | note |", "|---|---|---|---|---|"]

    rfm = cdnow()
    f, r, T = rfm["frequency"], rfm["recency"], rfm["T"]
    ours_t, bg = timed(lambda: cm.BGNBD().fit(rfm), reps)
    theirs_t, lbg = timed(lambda: lifetimes.BetaGeoFitter().fit(f, r, T), max(3, reps // 3))
    rows.append(row("BG/NBD fit, CDNOW sample", ours_t, theirs_t,
                    f"loglik {bg.loglik_:.3f}; r={bg.params_['r']:.4f} vs "
                    f"{lbg.params_['r']:.4f}"))

    sim = simulated(n)
    ours_t, fit = timed(lambda: cm.BGNBD().fit(sim), 3)
    theirs_t, lfit = timed(
        lambda: lifetimes.BetaGeoFitter().fit(sim["frequency"], sim["recency"], sim["T"]), 1)
    rows.append(row(f"BG/NBD fit, {n:,} simulated", ours_t, theirs_t,
                    f"max rel. error vs truth: ours {max_rel_error(fit.params_):.2%}, "
                    f"lifetimes {max_rel_error(lfit.params_):.2%}; "
                    f"{fit.n_unique_:,} unique rows"))

    ours_t, pnbd = timed(lambda: cm.ParetoNBD().fit(rfm), reps)
    theirs_t, lp = timed(lambda: lifetimes.ParetoNBDFitter().fit(f, r, T), 3)
    rows.append(row("Pareto/NBD fit, CDNOW sample", ours_t, theirs_t,
                    f"loglik {pnbd.loglik_:.3f}; r={pnbd.params_['r']:.4f} vs "
                    f"{lp.params_['r']:.4f}"))

    gg = cm.GammaGamma().fit(rfm)
    scored = sim.assign(monetary_value=np.where(
        sim["frequency"] > 0, gg.simulate(sim["frequency"], random_state=1), 0.0))

    def ours_score():
        e = fit.expected_purchases(52, scored)
        p = fit.probability_alive(scored)
        c = cm.customer_lifetime_value(fit, gg, scored, horizon=52, period=4,
                                       discount_rate=0.01)
        return e, p, c

    lbg_same = lifetimes.BetaGeoFitter()
    lbg_same.params_ = pd.Series(fit.params_.to_dict())
    lbg_same.predict = lbg_same.conditional_expected_number_of_purchases_up_to_time
    lgg = lifetimes.GammaGammaFitter()
    lgg.params_ = pd.Series(gg.params_.to_dict())

    def theirs_score():
        fr, re, TT, m = (scored[c] for c in ("frequency", "recency", "T", "monetary_value"))
        e = lbg_same.conditional_expected_number_of_purchases_up_to_time(52, fr, re, TT)
        p = lbg_same.conditional_probability_alive(fr, re, TT)
        # lifetimes' CLV counts months of 4.345 weeks: 12 of them = 52.14 weeks
        c = lgg.customer_lifetime_value(lbg_same, fr, re, TT, m, time=12, freq="W")
        return e, p, c

    ours_t, (e, p, c) = timed(ours_score, 3)
    theirs_t, (le, lpa, lc) = timed(theirs_score, 1)
    agree = max(np.max(np.abs(e.to_numpy() / le.to_numpy() - 1)),
                np.max(np.abs(p.to_numpy() / np.asarray(lpa) - 1)))
    rows.append(row(f"score {n:,}: E[purchases], P(alive), CLV", ours_t, theirs_t,
                    f"target < 2 s; max rel. diff of E and P(alive) vs lifetimes {agree:.1e}"))

    print("\n".join(rows))


if __name__ == "__main__":
    main()
