"""Pareto/NBD with static covariates: fit time on 30,000 customers (target <= 20 s).

Run:  uv run python benchmarks/bench_covariates.py [--customers 30000] [--repeats 3]

Three covariates (issue 17): ``age`` (numeric) and ``channel`` (categorical, 3 levels:
two coefficients) on the purchase process, ``loyal`` (0/1) on the drop-out process;
customers acquired over a year and observed for 40-60 weeks, simulated from known
coefficients. Prints the wall-clock median over repeats for the fit with covariates and,
side by side, the same data fitted without covariates, the fit with the likelihood-ratio
tests of ``summary()`` (the default: three nested refits more), and each estimate
against the truth in standard errors. With ``--peer`` (needs the ``bench`` group), pymc-marketing's
ParetoNBDModel with the same covariates fitted by MAP, once.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

import clvmodels as cm

TRUTH = {"r": 0.9, "alpha": 6.0, "s": 0.7, "beta": 9.0, "purchase:age": 0.02,
         "purchase:search": 0.3, "purchase:shop": -0.4, "dropout:loyal": -0.6}
NAMES = {"purchase:search": "purchase:channel[search]",
         "purchase:shop": "purchase:channel[shop]"}


def simulate(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.normal(40.0, 12.0, n),
        "channel": rng.choice(["email", "search", "shop"], n, p=[0.3, 0.3, 0.4]),
        "loyal": rng.integers(0, 2, n),
    })
    dummies = frame[["age", "loyal"]].assign(
        search=(frame["channel"] == "search").astype(float),
        shop=(frame["channel"] == "shop").astype(float))
    T = np.round(rng.uniform(40.0, 60.0, n) * 7) / 7  # whole days, in weeks
    rfm = cm.ParetoNBD.from_params(**TRUTH).simulate(n, T, random_state=seed + 1,
                                                     covariates=dummies)
    for column in frame:
        rfm[column] = frame[column].to_numpy()
    return rfm


def timed(fn, repeats):
    """Median wall-clock seconds of ``repeats`` calls, and the last call's result."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        runs.append((fn(), time.perf_counter() - start))
    return statistics.median(seconds for _, seconds in runs), runs[-1][0]


def peer(rfm: pd.DataFrame) -> float:
    from pymc_marketing.clv import ParetoNBDModel

    data = rfm.reset_index().rename(columns={"index": "customer_id"})
    data = data.assign(search=(data["channel"] == "search").astype(float),
                       shop=(data["channel"] == "shop").astype(float))
    model = ParetoNBDModel(data=data, model_config={
        "purchase_covariate_cols": ["age", "search", "shop"],
        "dropout_covariate_cols": ["loyal"]})
    t0 = time.perf_counter()
    model.fit(method="map", progressbar=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=30_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer", action="store_true", help="also time pymc-marketing (MAP)")
    args = ap.parse_args()
    rfm = simulate(args.customers)
    spec = {"purchase_covariates": ["age", "channel"], "dropout_covariates": ["loyal"]}
    model = cm.ParetoNBD(**spec, lr_tests=False)
    t_cov, fitted = timed(lambda: model.fit(rfm), args.repeats)
    t_lr, with_tests = timed(lambda: cm.ParetoNBD(**spec).fit(rfm), args.repeats)
    t_plain, plain = timed(lambda: cm.ParetoNBD().fit(rfm), args.repeats)
    print(f"Pareto/NBD, {args.customers:,} customers, 3 covariates (4 coefficients)")
    print(f"  fit with covariates    : {t_cov:7.2f} s   (target <= 20 s)   "
          f"log-lik {fitted.loglik_:.2f}")
    print(f"  ... and the LR tests   : {t_lr:7.2f} s   (lr_tests=True, the default: "
          "the fit and 4 nested fits)")
    print(f"  fit without covariates : {t_plain:7.2f} s                      "
          f"log-lik {plain.loglik_:.2f}")
    print("  estimate vs truth (z = (estimate - truth) / se):")
    for name, value in TRUTH.items():
        got = NAMES.get(name, name)
        est, se = fitted.params_[got], fitted.se_[got]
        print(f"    {got:26s} {est:9.4f}  truth {value:8.4f}  se {se:.4f}  "
              f"z {(est - value) / se:+.2f}")
    test = cm.likelihood_ratio_test(plain, fitted)
    print(f"  LR test against no covariates: statistic {test['statistic']:.1f} on "
          f"{test['df']:.0f} df, p = {test['p_value']:.2g}")
    print("  LR tests of summary(), per column (lr_tests_):")
    print(with_tests.lr_tests_.to_string(float_format=lambda v: f"{v:.4g}"))
    if args.peer:
        print(f"  pymc-marketing ParetoNBDModel MAP, same covariates: {peer(rfm):.2f} s")


if __name__ == "__main__":
    main()
