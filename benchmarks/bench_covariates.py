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

``--bayes`` (needs the ``bench`` group): the Bayesian side, on ``--bayes-customers``
(default 5,000) customers simulated from a BG/NBD with known coefficients (age and
loyal on the purchase rate, channel on the drop-out): our maximum-likelihood BGNBD, our
``bayes.BGNBD`` and pymc-marketing's ``BetaGeoModel`` with the same covariates, both by
NUTS with nutpie (2 chains x 500 draws after 500 tuning steps), side by side: wall-clock
time of the fit (compilation included) and each coefficient's estimate. pymc-marketing
gives a and b separate drop-out coefficients (ours share one, as CLVTools), so its two
are both shown against our one; it takes the columns as given (0/1 dummies for the
channel) with N(0, 1) priors on the user's scale, ours standardises internally.

``--apparel``: CLVTools' apparel data (600 customers, Gender and Channel on both
processes) with our Bayesian model against CLVTools' published Pareto/NBD fit
(``bayes.ParetoNBD`` when this build has it) and our maximum-likelihood fit of the same
model; without a Bayesian Pareto/NBD, the Bayesian BG/NBD against our maximum-likelihood
BG/NBD (CLVTools' convention; CLVTools publishes no BG/NBD covariate fit on these data).
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


# ---- the Bayesian side ------------------------------------------------------------------
TRUTH_BG = {"r": 0.8, "alpha": 5.0, "a": 0.9, "b": 3.0, "purchase:age": -0.015,
            "purchase:loyal": 0.35, "dropout:search": 0.5, "dropout:shop": 0.0}
NAMES_BG = {"dropout:search": "dropout:channel[search]", "dropout:shop": "dropout:channel[shop]"}
SAMPLING = {"chains": 2, "draws": 500, "tune": 500}


def simulate_bg(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.normal(40.0, 12.0, n).round(),
        "channel": rng.choice(["email", "search", "shop"], n, p=[0.3, 0.3, 0.4]),
        "loyal": rng.integers(0, 2, n),
    })
    dummies = frame[["age", "loyal"]].assign(
        search=(frame["channel"] == "search").astype(float),
        shop=(frame["channel"] == "shop").astype(float))
    T = rng.integers(20, 61, n).astype(float)  # whole weeks, recency in whole days
    rfm = cm.BGNBD.from_params(**TRUTH_BG).simulate(n, T, random_state=seed + 1,
                                                    covariates=dummies)
    rfm["recency"] = np.minimum(np.round(rfm["recency"] * 7) / 7, rfm["T"])
    for column in frame:
        rfm[column] = frame[column].to_numpy()
    return rfm


def peer_bg(rfm: pd.DataFrame):
    """pymc-marketing's BetaGeoModel with the same covariates (dummies for channel)."""
    from pymc_marketing.clv import BetaGeoModel

    data = rfm.reset_index(names="customer_id")[["customer_id", "frequency", "recency", "T",
                                                 "age", "loyal", "search", "shop"]]
    model = BetaGeoModel(data=data, model_config={
        "purchase_covariate_cols": ["age", "loyal"],
        "dropout_covariate_cols": ["search", "shop"]})
    t0 = time.perf_counter()
    model.fit(method="mcmc", nuts_sampler="nutpie", random_seed=0, progressbar=False,
              **SAMPLING)
    seconds = time.perf_counter() - t0
    post = model.idata.posterior
    out = {}
    for name, var, dim in (("purchase:age", "purchase_coefficient_alpha", "age"),
                           ("purchase:loyal", "purchase_coefficient_alpha", "loyal")):
        out[name] = float(post[var].sel(purchase_covariate=dim).mean())
    for level in ("search", "shop"):
        for ab in ("a", "b"):
            values = post[f"dropout_coefficient_{ab}"].sel(dropout_covariate=level)
            out[f"dropout:{level} ({ab})"] = float(values.mean())
    ess = float(__import__("arviz").ess(model.idata).to_array().min())
    return seconds, out, ess


def bayes_side(n: int) -> None:
    from clvmodels import bayes

    rfm = simulate_bg(n, seed=3)
    kw = {"purchase_covariates": ["age", "loyal"], "dropout_covariates": ["channel"]}
    t0 = time.perf_counter()
    mle = cm.BGNBD(**kw).fit(rfm)
    t_mle = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = bayes.BGNBD(**kw).fit(rfm, random_seed=0, progressbar=False, **SAMPLING)
    t_ours = time.perf_counter() - t0
    table = ours.covariate_summary()
    t_peer, peer_means, peer_ess = peer_bg(rfm)
    print(f"\nBG/NBD with 3 covariates (4 coefficients), {n:,} simulated customers; NUTS "
          f"{SAMPLING['chains']} chains x {SAMPLING['draws']} draws (+{SAMPLING['tune']} tune)")
    print(f"  clvmodels BGNBD (maximum likelihood) : {t_mle:7.2f} s")
    print(f"  clvmodels bayes.BGNBD (nutpie)       : {t_ours:7.2f} s   "
          f"converged: {ours.convergence_.passed} (min bulk ESS "
          f"{ours.convergence_.ess_bulk_min:.0f})")
    print(f"  pymc-marketing BetaGeoModel (nutpie) : {t_peer:7.2f} s   (min ESS {peer_ess:.0f})")
    print(f"  {'coefficient':28s} {'truth':>7s} {'MLE (se)':>17s} {'ours: mean (sd)':>17s} "
          f"{'pymc-marketing':>15s}")
    for name, value in TRUTH_BG.items():
        if ":" not in name:
            continue
        got = NAMES_BG.get(name, name)
        row = table.loc[got]
        level = name.split(":")[1]
        theirs = (f"{peer_means[name]:15.4f}" if name in peer_means else
                  " / ".join(f"{peer_means[f'dropout:{level} ({ab})']:.3f}" for ab in "ab"))
        print(f"  {got:28s} {value:7.3f} {mle.params_[got]:8.4f} ({mle.se_[got]:.4f}) "
              f"{row['mean']:8.4f} ({row['sd']:.4f}) {theirs:>15s}")


# CLVTools walkthrough, summary(est.pnbd.static) (as in tests/test_covariates.py)
CLVTOOLS_APPAREL = {"r": 1.8387, "alpha": 92.9435, "s": 0.5913, "beta": 49.5048,
                    "dropout:Gender": -0.6428, "dropout:Channel": 0.7902,
                    "purchase:Gender": 0.2860, "purchase:Channel": 0.6239}


def apparel_side() -> None:
    from pathlib import Path

    from clvmodels import bayes
    from clvmodels.rfm import rfm_summary

    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    tx = pd.read_csv(shared / "apparel_transactions.csv", parse_dates=["Date"])
    static = pd.read_csv(shared / "apparel_static_cov.csv").set_index("Id")
    rfm = rfm_summary(tx, customer="Id", date="Date", amount="Price",
                      observation_end="2006-12-31", unit="W").join(static)
    kw = {"purchase_covariates": ["Gender", "Channel"],
          "dropout_covariates": ["Gender", "Channel"]}
    model_cls, mle_cls, published = getattr(bayes, "ParetoNBD", None), cm.ParetoNBD, True
    try:
        model = model_cls(**kw)
    except TypeError:  # no Bayesian Pareto/NBD (with covariates) in this build
        model, mle_cls, published = bayes.BGNBD(**kw), cm.BGNBD, False
    mle = mle_cls(**kw).fit(rfm)
    t0 = time.perf_counter()
    model.fit(rfm, random_seed=0, progressbar=False, chains=4, draws=1000, tune=1000)
    seconds = time.perf_counter() - t0
    post = model.idata_.posterior
    print(f"\nCLVTools apparel (600 customers), {type(model).__name__} with Gender and "
          f"Channel on both processes: {seconds:.1f} s, converged: "
          f"{model.convergence_.passed}")
    table = model.covariate_summary()
    head = "CLVTools" if published else ""
    print(f"  {'parameter':18s} {head:>10s} {'our MLE (se)':>20s} {'posterior mean (sd)':>22s}")
    for name in mle.params_.index:
        if ":" in name:
            mean, sd = table.loc[name, "mean"], table.loc[name, "sd"]
        else:
            mean, sd = float(post[name].mean()), float(post[name].std())
        ref = f"{CLVTOOLS_APPAREL[name]:10.4f}" if published else " " * 10
        print(f"  {name:18s} {ref} {mle.params_[name]:10.4f} ({mle.se_[name]:.4f}) "
              f"{mean:12.4f} ({sd:.4f})")
    if not published:
        print("  (no Bayesian Pareto/NBD in this build, so no comparison with CLVTools' "
              "published fit; CLVTools publishes no BG/NBD covariate fit on these data)")
        if mle.params_[["a", "b"]].max() > 1e4:
            print("  the maximum-likelihood a, b run off to the boundary (no heterogeneity "
                  "in the drop-out, its coefficients unidentified); the posterior stays "
                  "where its priors keep it: the two fits differ there, not on the "
                  "purchase process")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=30_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer", action="store_true", help="also time pymc-marketing (MAP)")
    ap.add_argument("--bayes", action="store_true",
                    help="only the Bayesian side: ours and pymc-marketing's BG/NBD by NUTS")
    ap.add_argument("--bayes-customers", type=int, default=5_000)
    ap.add_argument("--apparel", action="store_true",
                    help="only the Bayesian fit of CLVTools' apparel data")
    args = ap.parse_args()
    if args.bayes or args.apparel:
        if args.bayes:
            bayes_side(args.bayes_customers)
        if args.apparel:
            apparel_side()
        return
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
