"""Benchmark of the Bayesian Pareto/NBD (and MBG/NBD), side by side with pymc-marketing.

1. ``bayes.ParetoNBD`` on the CDNOW sample (weekly RFM through 1997-09-30), 4 chains x
   1,000 draws after 1,000 tuning steps, cores=2, end to end in a fresh process (imports,
   model building, compilation, sampling); outside the timing, the posterior against the
   maximum-likelihood fit (Fader & Hardie's published r 0.553, alpha 10.578, s 0.606,
   beta 11.669), R-hat, ESS, divergences and the number of log-density evaluations.
   ``--reference`` runs pymc-marketing's ``ParetoNBDModel`` with the same draws in a
   fresh process too (it is in the ``bench`` dependency group only).
2. ``bayes.MBGNBD`` the same way (``--mbgnbd``).
3. Scale: 100,000 simulated customers (seeded; ages uniform over two years, recencies
   and ages in whole days, parameters of the CDNOW fit with alpha and beta in days):
   how many distinct rows the fit sees (``compress_rows``), the time of one log density
   and gradient on them (the numpy quadrature the sampler calls), and a short NUTS run
   (2 chains x 100 draws after 100 tuning steps), from which the time of 4 x 1,000 after
   1,000 is extrapolated by the number of evaluations per draw.

Run: ``uv run python benchmarks/bench_bayes_paretonbd.py [--reference] [--mbgnbd]
[--skip-scale]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

DRAWS, TUNE, CHAINS, CORES, SEED = 1000, 1000, 4, 2, 0
PUBLISHED = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
SCALE_N = 100_000


def _cdnow_rfm():
    from clvmodels import datasets
    from clvmodels.rfm import rfm_summary

    tx = datasets.cdnow_transactions(sample=True)
    return rfm_summary(
        tx, customer="customer_id", date="date", amount="amount",
        observation_end="1997-09-30", unit="W",
    )


def _evaluations(idata) -> int:
    """Log-density-and-gradient evaluations of the kept draws (leapfrog steps)."""
    stats = idata.sample_stats
    name = "n_steps" if "n_steps" in stats else "tree_size"
    return int(stats[name].sum()) if name in stats else -1


def _posterior_report(m, mle) -> dict:
    import arviz as az

    post = m.idata_.posterior
    names = list(m.param_names)
    hdi = az.hdi(post, hdi_prob=0.94)
    return {
        "means": {k: float(post[k].mean()) for k in names},
        "medians": {k: float(post[k].median()) for k in names},
        "mle": {k: float(mle[k]) for k in names},
        "hdi_94": {k: [float(v) for v in hdi[k].values] for k in names},
        "max_rhat": float(m.diagnostics_["r_hat"].max()),
        "min_ess_bulk": float(m.diagnostics_["ess_bulk"].min()),
        "divergences": m.n_divergent_,
        "evaluations_kept_draws": _evaluations(m.idata_),
        "converged": bool(m.convergence_.passed),
    }


def run_ours(name: str) -> dict:
    t0 = time.perf_counter()
    import clvmodels as cm
    from clvmodels import bayes

    rfm = _cdnow_rfm()
    t1 = time.perf_counter()
    m = getattr(bayes, name)().fit(
        rfm, draws=DRAWS, tune=TUNE, chains=CHAINS, cores=CORES, random_seed=SEED,
        progressbar=False,
    )
    t2 = time.perf_counter()
    mle = getattr(cm, name)().fit(rfm).params_
    return {"seconds_total": t2 - t0, "seconds_fit": t2 - t1, **_posterior_report(m, mle)}


def run_reference() -> dict:
    import warnings

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pymc_marketing.clv import ParetoNBDModel

        rfm = _cdnow_rfm()
        data = rfm.reset_index()[["customer_id", "frequency", "recency", "T"]]
        t1 = time.perf_counter()
        idata = ParetoNBDModel(data=data).fit(
            method="mcmc", draws=DRAWS, tune=TUNE, chains=CHAINS, cores=CORES,
            random_seed=SEED, progressbar=False,
        )
    t2 = time.perf_counter()
    post = idata.posterior
    return {
        "seconds_total": t2 - t0,
        "seconds_fit": t2 - t1,
        "means": {k: float(post[k].mean()) for k in PUBLISHED},
        "divergences": int(idata.sample_stats["diverging"].sum()),
    }


def simulated(n: int = SCALE_N, seed: int = 1):
    """n customers, ages uniform in 1..730 days, Pareto/NBD with the CDNOW fit in days."""
    import pandas as pd

    from clvmodels.models import paretonbd

    rng = np.random.default_rng(seed)
    T = rng.integers(1, 731, n).astype(float)
    p = (PUBLISHED["r"], PUBLISHED["alpha"] * 7, PUBLISHED["s"], PUBLISHED["beta"] * 7)
    x, t_x = paretonbd.simulate(*p, T, rng)
    return pd.DataFrame({"frequency": x, "recency": np.floor(t_x), "T": T}), p


def run_scale() -> dict:
    from clvmodels import bayes
    from clvmodels.models import paretonbd
    from clvmodels.models._base import compress_rows

    rfm, truth = simulated()
    cols = [rfm[c].to_numpy(float) for c in ("frequency", "recency", "T")]
    rows, _ = compress_rows(cols, np.ones(len(rfm)))
    paretonbd.loglik_and_grad(*truth, *rows)
    t0 = time.perf_counter()
    for _ in range(5):
        paretonbd.loglik_and_grad(*truth, *rows)
    per_eval = (time.perf_counter() - t0) / 5
    draws = tune = 100
    t1 = time.perf_counter()
    m = bayes.ParetoNBD().fit(
        rfm, draws=draws, tune=tune, chains=2, cores=2, random_seed=SEED, progressbar=False
    )
    seconds = time.perf_counter() - t1
    evals = _evaluations(m.idata_)
    per_draw = evals / (2 * draws)
    full = per_draw * (DRAWS + TUNE) * CHAINS / CORES * per_eval
    post = m.idata_.posterior
    return {
        "customers": len(rfm),
        "distinct_rows": int(rows[0].size),
        "ms_per_logp_and_grad": per_eval * 1e3,
        "short_fit_seconds": seconds,
        "evaluations_per_draw": per_draw,
        "extrapolated_4x1000_seconds": full,
        "truth": dict(zip(PUBLISHED, truth, strict=True)),
        "means": {k: float(post[k].mean()) for k in PUBLISHED},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _in_subprocess(*args: str) -> dict:
    """Run one case in a fresh interpreter; add its CPU time (with its worker processes)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, __file__, "--only", *args], check=True, capture_output=True, text=True
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(args, json.dumps(result), file=sys.stderr, flush=True)
    return result


def _print_fit(label: str, r: dict) -> None:
    print(f"{label}: {r['seconds_total']:.1f} s end to end ({r['seconds_fit']:.1f} s fit), "
          f"CPU {r['cpu_seconds']:.1f} s")
    for k, (lo, hi) in r.get("hdi_94", {}).items():
        mle, mean = r["mle"][k], r["means"][k]
        print(f"  {k}: MLE {mle:.4f}, posterior mean {mean:.4f} ({mean / mle - 1:+.1%}), "
              f"median {r['medians'][k]:.4f}, 94% HDI [{lo:.4f}, {hi:.4f}], "
              f"MLE inside: {lo <= mle <= hi}")
    if "max_rhat" in r:
        print(f"  max R-hat {r['max_rhat']:.3f}, min bulk ESS {r['min_ess_bulk']:.0f}, "
              f"divergences {r['divergences']}, converged {r['converged']}, "
              f"{r['evaluations_kept_draws'] / (CHAINS * DRAWS):.1f} evaluations per draw")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+")
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--mbgnbd", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    if args.only:
        case, *rest = args.only
        runs = {"ours": lambda: run_ours(*rest), "reference": run_reference, "scale": run_scale}
        print(json.dumps(runs[case]()))
        return
    ours = _in_subprocess("ours", "ParetoNBD")
    print(f"CDNOW sample, {CHAINS} chains x {DRAWS} draws after {TUNE} tuning, cores={CORES}:")
    _print_fit("bayes.ParetoNBD", ours)
    if args.reference:
        ref = _in_subprocess("reference")
        _print_fit("pymc-marketing ParetoNBDModel", ref)
        ratio = ref["seconds_total"] / ours["seconds_total"]
        print(f"  ratio (pymc-marketing / ours) {ratio:.2f}x")
    if args.mbgnbd:
        _print_fit("bayes.MBGNBD", _in_subprocess("ours", "MBGNBD"))
    if not args.skip_scale:
        s = _in_subprocess("scale")
        print(
            f"Scale: {s['customers']:,} simulated customers -> {s['distinct_rows']:,} distinct "
            f"rows; {s['ms_per_logp_and_grad']:.0f} ms per log density + gradient; 2 x 100 "
            f"after 100: {s['short_fit_seconds']:.0f} s ({s['evaluations_per_draw']:.1f} "
            f"evaluations per draw); 4 x 1,000 after 1,000 extrapolated: "
            f"{s['extrapolated_4x1000_seconds'] / 60:.0f} min; peak RSS "
            f"{s['peak_rss_mb']:.0f} MB; truth {s['truth']}, means {s['means']}"
        )


if __name__ == "__main__":
    main()
