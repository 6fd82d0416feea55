"""Benchmark of the Bayesian models, side by side with pymc-marketing, in one run.

1. ``bayes.BGNBD`` on the CDNOW sample (weekly RFM through 1997-09-30), 4 chains x 1,000
   draws after 1,000 tuning steps, end to end (model building, compilation, sampling),
   against pymc-marketing's ``BetaGeoModel`` with the same draws. Each fit runs in a fresh
   Python process (no compiled model cached in memory; on-disk compiler caches of
   pytensor/numba may be warm after the first run on a machine). Outside the timing, the
   acceptance of the issue: the MLE inside each 94% HDI, posterior means against the MLE,
   R-hat, bulk ESS and divergences.
2. ``bayes.SegmentBGNBD`` on the full CDNOW master (23,570 customers), segments = month of
   first purchase x tertile of first-purchase spend (9 segments), same sampler settings:
   time to a converged posterior (R-hat <= 1.01, bulk ESS >= 400, no divergences).

Run: ``make bench-bayes``, or ``uv run --group bench python benchmarks/bench_bayes.py
[--skip-reference] [--repeat N]`` (pymc-marketing is in the ``bench`` dependency group
only). Chains run 2 at a time (``cores=2``) for both packages. The two BG/NBD cases run
alternately ``--repeat`` times (default 5), each in a fresh process, and the medians are
compared: the first process of a series pays for a cold page cache (imports of pymc,
pytensor and arviz read from disk), whichever package it is.
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
        "mle": {k: float(mle[k]) for k in ("r", "alpha", "a", "b")},
        "hdi_94": {k: [float(v) for v in hdi[k].values] for k in ("r", "alpha", "a", "b")},
        "max_rhat": float(m.diagnostics_["r_hat"].max()),
        "min_ess_bulk": float(m.diagnostics_["ess_bulk"].min()),
        "divergences": m.n_divergent_,
    }


def run_reference() -> dict:
    import warnings

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pymc_marketing.clv import BetaGeoModel

        _, rfm = _cdnow_rfm(sample=True)
        data = rfm.reset_index()[["customer_id", "frequency", "recency", "T"]]
        t1 = time.perf_counter()
        model = BetaGeoModel(data=data)
        idata = model.fit(
            method="mcmc",
            draws=DRAWS,
            tune=TUNE,
            chains=CHAINS,
            cores=CORES,
            random_seed=SEED,
            progressbar=False,
        )
    t2 = time.perf_counter()
    post = idata.posterior
    return {
        "seconds_total": t2 - t0,
        "seconds_fit": t2 - t1,
        "means": {k: float(post[k].mean()) for k in ("r", "alpha", "a", "b")},
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
        "segment_params_mean": {f"{s}/{p}": float(v) for (s, p), v in sp["mean"].items()},
    }


def _in_subprocess(name: str) -> dict:
    """Run one case in a fresh interpreter; add its CPU time (with its worker processes)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, __file__, "--only", name], check=True, capture_output=True, text=True
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(name, json.dumps(result), file=sys.stderr, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["ours", "reference", "hierarchical"])
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--skip-hierarchical", action="store_true")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each BG/NBD case")
    args = parser.parse_args()
    runs = {"ours": run_ours, "reference": run_reference, "hierarchical": run_hierarchical}
    if args.only:
        print(json.dumps(runs[args.only]()))
        return
    cases = ["ours"] + ([] if args.skip_reference else ["reference"])
    runs_of = {name: [] for name in cases}
    for _ in range(max(args.repeat, 1)):
        for name in cases:  # alternately, so that both see the same machine state
            runs_of[name].append(_in_subprocess(name))
    results = {}
    for name, runs in runs_of.items():
        order = np.argsort([r["seconds_total"] for r in runs])
        results[name] = {
            **runs[order[len(runs) // 2]],  # the median run (the upper one of an even count)
            "all_seconds_total": [round(r["seconds_total"], 2) for r in runs],
            "all_cpu_seconds": [round(r["cpu_seconds"], 2) for r in runs],
        }
    if not args.skip_hierarchical:
        results["hierarchical"] = _in_subprocess("hierarchical")
    print(json.dumps(results, indent=2))
    ours = results["ours"]
    print(
        f"\nBG/NBD on CDNOW sample, {CHAINS} chains x {DRAWS} draws after {TUNE} tune, "
        f"cores={CORES}, end to end (median of {len(ours['all_seconds_total'])} runs):"
    )
    label = {"ours": "clvmodels.bayes.BGNBD", "reference": "pymc-marketing BetaGeoModel"}
    for name in cases:
        r = results[name]
        print(f"  {label[name]:28s} {r['seconds_total']:8.1f} s   (runs: {r['all_seconds_total']})")
    for k, (lo, hi) in ours["hdi_94"].items():
        mle, mean = ours["mle"][k], ours["means"][k]
        print(
            f"  {k}: MLE {mle:.4f}, posterior mean {mean:.4f} ({mean / mle - 1:+.2%}), "
            f"94% HDI [{lo:.4f}, {hi:.4f}], MLE inside: {lo <= mle <= hi}"
        )
    print(
        f"  max R-hat {ours['max_rhat']:.3f}, min bulk ESS {ours['min_ess_bulk']:.0f}, "
        f"divergences {ours['divergences']}"
    )
    if "reference" in results:
        ref = results["reference"]
        cpu = {name: float(np.median(results[name]["all_cpu_seconds"])) for name in cases}
        print(
            f"  CPU seconds (load-independent, medians): ours {cpu['ours']:.1f}, "
            f"pymc-marketing {cpu['reference']:.1f}, ratio {cpu['reference'] / cpu['ours']:.2f}x"
        )
        print(
            f"  ratio (pymc-marketing / ours) {ref['seconds_total'] / ours['seconds_total']:.2f}x"
            "  (target >= 3x)"
        )
    if "hierarchical" in results:
        h = results["hierarchical"]
        print(
            f"SegmentBGNBD on the CDNOW master ({h['customers']} customers, "
            f"{h['segments']} segments): {h['seconds_total']:.1f} s end to end "
            f"(target < 120 s); max R-hat {h['max_rhat']:.3f}, min bulk ESS "
            f"{h['min_ess_bulk']:.0f}, divergences {h['divergences']}"
        )


if __name__ == "__main__":
    main()
