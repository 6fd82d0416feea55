"""Benchmark of the Bayesian models, side by side with pymc-marketing, in one run.

1. ``bayes.BGNBD`` on the CDNOW sample (weekly RFM through 1997-09-30), 4 chains x 1,000
   draws after 1,000 tuning steps, end to end (model building, compilation, sampling),
   against pymc-marketing's ``BetaGeoModel`` with the same draws, sampled with nutpie
   (``nuts_sampler="nutpie"``: its fastest sampler; until s3 this benchmark ran PyMC's
   default NUTS for it). Each fit runs in a fresh
   Python process (no compiled model cached in memory; on-disk compiler caches of
   pytensor/numba may be warm after the first run on a machine). Outside the timing, the
   acceptance of the issue: the MLE inside each 94% HDI, posterior means and medians
   against the MLE (a and b have right-skewed posteriors on CDNOW: their means sit 5-8%
   above the MLE under any weak prior, their medians about 1%), R-hat, bulk ESS and
   divergences.
2. ``bayes.SegmentBGNBD`` on the full CDNOW master (23,570 customers), segments = month of
   first purchase x tertile of first-purchase spend (9 segments), same sampler settings:
   time to a converged posterior (R-hat <= 1.01, bulk ESS >= 400, no divergences).

Run: ``make bench-bayes``, or ``uv run --group bench python benchmarks/bench_bayes.py
[--skip-reference] [--repeat N] [--cold-repeat N]`` (``--only reference-same-priors``: one
pymc-marketing fit with clvmodels' default priors, whose posterior means should equal
ours within Monte Carlo error) (pymc-marketing is in the ``bench``
dependency group only). Chains run 2 at a time (``cores=2``) for both packages. The two
BG/NBD cases run alternately ``--repeat`` times (default 5), each in a fresh process, and
the medians are compared: the first process of a series pays for a cold page cache
(imports of pymc, pytensor and arviz read from disk), whichever package it is.

Warm and cold. "Warm" runs use the machine's compile caches as they are (after one
untimed run of each package that fills them). "Cold" runs (``--cold-repeat`` each,
default 3) give every process empty caches of its own, as a new user's first fit after
installing: a new temporary directory for pytensor's compiled modules
(``PYTENSOR_FLAGS=compiledir=...``), numba's (``NUMBA_CACHE_DIR``) and clvmodels' traced
programs and XLA code (``CLVMODELS_CACHE_DIR``; ``JAX_COMPILATION_CACHE_DIR`` unset).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

DRAWS, TUNE, CHAINS, CORES, SEED = 1000, 1000, 4, 2, 0


def _cdnow_rfm(sample: bool):
    from clvmodels import datasets
    from clvmodels.rfm import rfm_summary

    tx = datasets.cdnow_transactions(sample=sample)
    rfm = rfm_summary(
        tx,
        customer="customer_id",
        date="date",
        amount="amount",
        observation_end="1997-09-30",
        unit="W",
    )
    return tx, rfm


def master_segments():
    """Full CDNOW master RFM with segment = first-purchase month x spend tertile."""
    import pandas as pd

    tx, rfm = _cdnow_rfm(sample=False)
    day = tx.assign(day=tx["date"].dt.normalize())
    first_day = day.groupby("customer_id")["day"].transform("min")
    first = (
        day[day["day"] == first_day]
        .groupby("customer_id")
        .agg(day=("day", "first"), amount=("amount", "sum"))
    )
    tier = pd.qcut(first["amount"].rank(method="first"), 3, labels=["low", "mid", "high"])
    segment = first["day"].dt.strftime("%Y-%m") + "/" + tier.astype(str)
    return rfm.assign(segment=segment.reindex(rfm.index).to_numpy())


def run_ours() -> dict:
    t0 = time.perf_counter()
    from clvmodels import bayes

    _, rfm = _cdnow_rfm(sample=True)
    t1 = time.perf_counter()
    m = bayes.BGNBD().fit(
        rfm, draws=DRAWS, tune=TUNE, chains=CHAINS, cores=CORES, random_seed=SEED, progressbar=False
    )
    t2 = time.perf_counter()
    # acceptance (outside the timing): the MLE inside each 94% HDI, means near the MLE
    import arviz as az

    from clvmodels import BGNBD

    mle = BGNBD().fit(rfm).params_
    post = m.idata_.posterior
    hdi = az.hdi(post, hdi_prob=0.94)
    return {
        "seconds_total": t2 - t0,
        "seconds_fit": t2 - t1,
        "means": {k: float(post[k].mean()) for k in ("r", "alpha", "a", "b")},
        "medians": {k: float(post[k].median()) for k in ("r", "alpha", "a", "b")},
        "mle": {k: float(mle[k]) for k in ("r", "alpha", "a", "b")},
        "hdi_94": {k: [float(v) for v in hdi[k].values] for k in ("r", "alpha", "a", "b")},
        "max_rhat": float(m.diagnostics_["r_hat"].max()),
        "min_ess_bulk": float(m.diagnostics_["ess_bulk"].min()),
        "divergences": m.n_divergent_,
        "sampler": json.loads(post.attrs["clvmodels"])["sampler"],
    }


def _our_priors_for_pymc_marketing(rfm) -> dict:
    """clvmodels' default BG/NBD priors as a pymc-marketing ``model_config`` (r, alpha, a,
    b: the same LogNormal distributions), to compare the two samplers on one posterior."""
    from pymc_extras.prior import Prior

    from clvmodels.bayes.bgnbd import default_priors

    cols = [rfm[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T")]
    specs = default_priors(*cols, np.ones(len(rfm)))
    return {k: Prior(dist, **args) for k, (dist, args) in specs.items()}


def run_reference(same_priors: bool = False) -> dict:
    import warnings

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pymc_marketing.clv import BetaGeoModel

        _, rfm = _cdnow_rfm(sample=True)
        data = rfm.reset_index()[["customer_id", "frequency", "recency", "T"]]
        t1 = time.perf_counter()
        config = _our_priors_for_pymc_marketing(rfm) if same_priors else None
        model = BetaGeoModel(data=data, model_config=config)
        idata = model.fit(
            method="mcmc",
            nuts_sampler="nutpie",  # its fastest sampler (pm.sample's default is PyMC's)
            draws=DRAWS,
            tune=TUNE,
            chains=CHAINS,
            cores=CORES,
            random_seed=SEED,
            progressbar=False,
        )
    t2 = time.perf_counter()
    import arviz as az

    post = idata.posterior
    return {
        "seconds_total": t2 - t0,
        "seconds_fit": t2 - t1,
        "means": {k: float(post[k].mean()) for k in ("r", "alpha", "a", "b")},
        "medians": {k: float(post[k].median()) for k in ("r", "alpha", "a", "b")},
        "max_rhat": float(az.rhat(idata, var_names=["r", "alpha", "a", "b"]).to_array().max()),
        "divergences": int(idata.sample_stats["diverging"].sum()),
    }


def run_hierarchical() -> dict:
    t0 = time.perf_counter()
    from clvmodels import bayes

    rfm = master_segments()
    t1 = time.perf_counter()
    h = bayes.SegmentBGNBD(segment="segment").fit(
        rfm, draws=DRAWS, tune=TUNE, chains=CHAINS, cores=CORES, random_seed=SEED, progressbar=False
    )
    t2 = time.perf_counter()
    sp = h.segment_params()
    return {
        "seconds_total": t2 - t0,
        "seconds_fit": t2 - t1,
        "customers": len(rfm),
        "segments": int(rfm["segment"].nunique()),
        "segment_sizes": rfm["segment"].value_counts().sort_index().to_dict(),
        "max_rhat": float(h.diagnostics_["r_hat"].max()),
        "min_ess_bulk": float(h.diagnostics_["ess_bulk"].min()),
        "divergences": h.n_divergent_,
        "converged": bool(h.convergence_.passed),
        "segment_params_mean": {f"{s}/{p}": float(v) for (s, p), v in sp["mean"].items()},
    }


def _in_subprocess(name: str, cold: bool = False) -> dict:
    """Run one case in a fresh interpreter; add its CPU time (with its worker processes).
    ``cold``: with empty compile caches of its own (module docstring)."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="bench-bayes-cold-") as tmp:
        if cold:
            env["PYTENSOR_FLAGS"] = ",".join(
                f for f in [env.get("PYTENSOR_FLAGS", ""), f"compiledir={tmp}/pytensor"] if f
            )
            env["NUMBA_CACHE_DIR"] = f"{tmp}/numba"
            env["CLVMODELS_CACHE_DIR"] = f"{tmp}/clvmodels"
            env.pop("JAX_COMPILATION_CACHE_DIR", None)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(
            [sys.executable, __file__, "--only", name],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(name, "cold" if cold else "warm", json.dumps(result), file=sys.stderr, flush=True)
    return result


def _median_run(runs: list[dict]) -> dict:
    order = np.argsort([r["seconds_total"] for r in runs])
    return {
        **runs[order[len(runs) // 2]],  # the median run (the upper one of an even count)
        "all_seconds_total": [round(r["seconds_total"], 2) for r in runs],
        "all_cpu_seconds": [round(r["cpu_seconds"], 2) for r in runs],
    }


def _load() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", choices=["ours", "reference", "reference-same-priors", "hierarchical"]
    )
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--skip-hierarchical", action="store_true")
    parser.add_argument("--repeat", type=int, default=5, help="warm runs of each BG/NBD case")
    parser.add_argument(
        "--cold-repeat", type=int, default=3, help="runs with empty compile caches (0: none)"
    )
    args = parser.parse_args()
    runs = {
        "ours": run_ours,
        "reference": run_reference,
        # pymc-marketing with clvmodels' priors: the same posterior, so the same means
        "reference-same-priors": lambda: run_reference(same_priors=True),
        "hierarchical": run_hierarchical,
    }
    if args.only:
        print(json.dumps(runs[args.only]()))
        return
    cases = ["ours"] + ([] if args.skip_reference else ["reference"])
    load_before = _load()
    for name in cases:  # fill the machine's caches (untimed), so that "warm" is warm
        _in_subprocess(name)
    modes = [("warm", max(args.repeat, 1))]
    if args.cold_repeat > 0:
        modes.append(("cold", args.cold_repeat))
    results: dict = {}
    for mode, repeat in modes:
        runs_of = {name: [] for name in cases}
        for _ in range(repeat):
            for name in cases:  # alternately, so that both see the same machine state
                runs_of[name].append(_in_subprocess(name, cold=mode == "cold"))
        results[mode] = {name: _median_run(r) for name, r in runs_of.items()}
    if not args.skip_hierarchical:
        _in_subprocess("hierarchical")  # fills the caches for this model
        results["hierarchical"] = _in_subprocess("hierarchical")
    results["machine"] = {
        "python": platform.python_version(),
        "load_before": load_before,
        "load_after": _load(),
    }
    print(json.dumps(results, indent=2))
    _print_table(results, cases)


def _print_table(results: dict, cases: list[str]) -> None:
    label = {"ours": "clvmodels.bayes.BGNBD", "reference": "pymc-marketing BetaGeoModel"}
    print(
        f"\nBG/NBD on CDNOW sample, {CHAINS} chains x {DRAWS} draws after {TUNE} tune, "
        f"cores={CORES}, end to end in fresh processes (medians); machine load "
        f"{results['machine']['load_before']} before, {results['machine']['load_after']} after"
    )
    print(f"  {'':28s} {'warm s':>8s} {'cold s':>8s} {'warm CPU s':>11s} {'cold CPU s':>11s}")
    for name in cases:
        row = [results[m][name] for m in ("warm", "cold") if m in results]
        wall = [f"{r['seconds_total']:8.1f}" for r in row] + ["       -"] * (2 - len(row))
        cpu = [f"{np.median(r['all_cpu_seconds']):11.1f}" for r in row]
        cpu += ["          -"] * (2 - len(row))
        print(f"  {label[name]:28s} {wall[0]} {wall[1]} {cpu[0]} {cpu[1]}")
    for m in ("warm", "cold"):
        if m in results:
            runs = {n: results[m][n]["all_seconds_total"] for n in cases}
            print(f"  {m} runs: {runs}")
    ours = results["warm"]["ours"]
    if "reference" in cases:
        for m, target in (("warm", 5), ("cold", 3)):
            if m in results:
                r, o = results[m]["reference"], results[m]["ours"]
                wall = r["seconds_total"] / o["seconds_total"]
                cpu = np.median(r["all_cpu_seconds"]) / np.median(o["all_cpu_seconds"])
                print(
                    f"  {m}: pymc-marketing / ours = {wall:.2f}x wall, {cpu:.2f}x CPU "
                    f"(target >= {target}x)"
                )
    if "cold" in results:
        ratio = results["cold"]["ours"]["seconds_total"] / ours["seconds_total"]
        print(f"  ours cold / warm = {ratio:.2f} (target <= 2)")
    ref = results["warm"].get("reference")
    print("  posterior means (warm median run):")
    for k, (lo, hi) in ours["hdi_94"].items():
        mle, mean = ours["mle"][k], ours["means"][k]
        vs_ref = f", vs pymc-marketing {mean / ref['means'][k] - 1:+.2%}" if ref else ""
        print(
            f"    {k}: MLE {mle:.4f}, ours {mean:.4f} ({mean / mle - 1:+.2%} vs MLE{vs_ref}), "
            f"94% HDI [{lo:.4f}, {hi:.4f}], MLE inside: {lo <= mle <= hi}"
        )
        median = ours["medians"][k]
        ref_median = (
            f", pymc-marketing's median {ref['medians'][k] / mle - 1:+.2%} vs MLE" if ref else ""
        )
        print(f"       median {median:.4f} ({median / mle - 1:+.2%} vs MLE{ref_median})")
    print(
        f"  ours: max R-hat {ours['max_rhat']:.3f}, min bulk ESS {ours['min_ess_bulk']:.0f}, "
        f"divergences {ours['divergences']}, sampler {ours.get('sampler')}"
    )
    if ref:
        print(
            f"  pymc-marketing: max R-hat {ref['max_rhat']:.3f}, divergences "
            f"{ref['divergences']}"
        )
    if "hierarchical" in results:
        h = results["hierarchical"]
        print(
            f"SegmentBGNBD on the CDNOW master ({h['customers']} customers, "
            f"{h['segments']} segments): {h['seconds_total']:.1f} s end to end, warm "
            f"(target <= 30 s); max R-hat {h['max_rhat']:.3f}, min bulk ESS "
            f"{h['min_ess_bulk']:.0f}, divergences {h['divergences']}, converged "
            f"{h['converged']}"
        )


if __name__ == "__main__":
    main()
