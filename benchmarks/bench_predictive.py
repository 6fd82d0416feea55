"""Prediction intervals and CLV intervals for a million customers: time and peak memory.

Run:  uv run python benchmarks/bench_predictive.py [--customers 1000000] [--draws 50]

The customers are the BG/NBD customers of ``bench_scale.simulate_days`` (acquired
uniformly over two years, ages and recencies in whole days), in weeks, with Gamma-Gamma
spend. The models are fitted first (not timed). Timed, in this process, with its peak
resident memory (VmHWM, whole process, data included):

1. ``BGNBD.prediction_interval(39, rfm, level=0.9)``: low, median, high purchases over
   the next 39 weeks, with process and parameter uncertainty (``--draws`` draws);
2. ``customer_lifetime_value(bg, gg, rfm, horizon=52, period=4, level=0.9)``: CLV with
   the interval of value;
3. the peer, side by side: lifetimes has no prediction intervals; its
   ``customer_lifetime_value`` (expected CLV only) on the same customers, for scale.

Targets (issue 13): intervals and CLV for 1,000,000 customers in < 30 s and < 2.5 GB on
the 2-core machine.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore", module="lifetimes")
warnings.filterwarnings("ignore", message="pkg_resources")

import lifetimes  # noqa: E402
from bench_scale import Measure, simulate_days  # noqa: E402

import clvmodels as cm  # noqa: E402


def data(n: int, seed: int):
    rfm = simulate_days(n, seed)
    rfm[["recency", "T"]] /= 7.0  # weeks
    gg_true = cm.GammaGamma.from_params(p=6.25, q=3.74, v=15.44)
    rfm["monetary_value"] = gg_true.simulate(rfm["frequency"], random_state=seed + 2).to_numpy()
    return rfm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--draws", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-peer", action="store_true", help="skip lifetimes")
    args = ap.parse_args()
    rfm = data(args.customers, args.seed)
    t0 = time.perf_counter()
    bg = cm.BGNBD().fit(rfm)
    gg = cm.GammaGamma().fit(rfm)
    print(f"{args.customers:,} customers; fitted BG/NBD and Gamma-Gamma in "
          f"{time.perf_counter() - t0:.1f} s (not part of the timings)")
    with Measure() as m1:
        iv = bg.prediction_interval(39.0, rfm, level=0.9, n_draws=args.draws)
    with Measure() as m2:
        clv = cm.customer_lifetime_value(bg, gg, rfm, horizon=52, period=4,
                                         discount_rate=0.01, level=0.9, n_draws=args.draws)
    total = m1.seconds + m2.seconds
    peak = max(m1.peak_mb, m2.peak_mb)
    print(f"prediction_interval(39 weeks, level=0.9): {m1.seconds:6.1f} s "
          f"(cpu {m1.cpu:.1f} s), process peak {m1.peak_mb:,.0f} MB")
    print(f"customer_lifetime_value(level=0.9):       {m2.seconds:6.1f} s "
          f"(cpu {m2.cpu:.1f} s), process peak {m2.peak_mb:,.0f} MB")
    print(f"intervals + CLV: {total:.1f} s, peak {peak:,.0f} MB "
          f"(targets: < 30 s, < 2,560 MB) -> {'OK' if total < 30 and peak < 2560 else 'MISSED'}")
    print(f"median interval width {np.median(iv['high'] - iv['low']):.0f} purchases; "
          f"share with high = 0: {np.mean(iv['high'] == 0):.1%}; "
          f"total CLV {clv['clv'].sum():,.0f} (interval sums {clv['low'].sum():,.0f}"
          f" .. {clv['high'].sum():,.0f})")
    if args.no_peer:
        return
    ref_bg = lifetimes.BetaGeoFitter()
    ref_bg.params_ = bg.params_.copy()
    ref_bg.predict = ref_bg.conditional_expected_number_of_purchases_up_to_time  # set by fit
    ref_gg = lifetimes.GammaGammaFitter()
    ref_gg.params_ = gg.params_.copy()
    with Measure() as m3:
        # lifetimes counts months of 30 days from a time unit in days: weeks * 7 = days,
        # freq="D", 12 months of 30 days ~ the 52-week horizon (expected value only)
        ref_gg.customer_lifetime_value(
            ref_bg, rfm["frequency"], rfm["recency"] * 7, rfm["T"] * 7, rfm["monetary_value"],
            time=12, discount_rate=0.01, freq="D",
        )
    print(f"peer: lifetimes customer_lifetime_value (expected value only, no interval): "
          f"{m3.seconds:.1f} s, process peak {m3.peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
