"""Simulation study of the hierarchical BG/NBD (issue 4 acceptance, the long version).

Segments of 50 to 20,000 customers get BG/NBD parameters drawn from a population
(log-parameters ~ N(log CDNOW MLE, 0.5^2)); customers are simulated exactly with
ages T of 26 to 52 whole weeks and recency rounded to whole days. For each seed we fit

* ``bayes.SegmentBGNBD`` (hierarchical, partial pooling),
* one pooled ``bayes.BGNBD`` on all customers,
* a separate ``bayes.BGNBD`` per small segment (<= 200 customers),

and report (i) how often the 94% HDIs of the segment parameters cover the true values,
(ii) how often the per-customer 94% HDIs of E[Y(39) | history] cover the value computed
from the true parameters, and (iii) the error of the posterior-mean predictions on the
small segments for the three fits.

Run: ``uv run python benchmarks/bayes_segments_study.py --seeds 5`` (about 2-3 minutes per
seed on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd

from clvmodels import bayes
from clvmodels.errors import StatisticalWarning

SIZES = [50, 50, 100, 200, 500, 1000, 5000, 20000]
SMALL = 200
POP = {"r": 0.2425945, "alpha": 4.4136019, "a": 0.7929199, "b": 2.4258881}
POP_SIGMA = 0.5
HORIZON = 39.0


def simulate_segments(sizes, seed, pop_sigma=POP_SIGMA):
    """RFM frame with columns segment and truth (E[Y(39) | history] at the true values)."""
    return bayes.simulate_segments(
        sizes, POP, spread=pop_sigma, horizon=HORIZON, random_state=seed
    )


def _fit(cls, data, seed, draws, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        return cls(**kw).fit(
            data, draws=draws, tune=draws, chains=2, cores=2, random_seed=seed, progressbar=False
        )


def _covers(pred, truth):
    return (pred["hdi_low"] <= truth) & (truth <= pred["hdi_high"])


def one_seed(seed: int, sizes, draws: int, **model) -> dict:
    """One simulated data set; ``model``: settings of ``SegmentBGNBD`` (population,
    parametrization)."""
    rfm, truth = simulate_segments(sizes, seed)
    t0 = time.perf_counter()
    h = _fit(bayes.SegmentBGNBD, rfm, seed, draws, segment="segment", **model)
    t_h = time.perf_counter() - t0
    table = h.segment_params()
    param_rows = []
    for s, theta in truth.items():
        for k, v in theta.items():
            row = table.loc[(s, k)]
            param_rows.append(
                {
                    "size": sizes[s],
                    "parameter": k,
                    "covered": row["hdi_low"] <= v <= row["hdi_high"],
                }
            )
    pred = h.expected_purchases(HORIZON, rfm)
    cover = _covers(pred, rfm["truth"])
    small = rfm[rfm["segment"].map(lambda s: sizes[s] <= SMALL)]
    pooled = _fit(bayes.BGNBD, rfm, seed, draws).expected_purchases(HORIZON, small)
    separate = pd.concat(
        _fit(bayes.BGNBD, part, seed, draws).expected_purchases(HORIZON, part)
        for _, part in small.groupby("segment")
    ).loc[small.index]
    errors = {
        "hierarchical": pred.loc[small.index, "mean"] - small["truth"],
        "pooled": pooled["mean"] - small["truth"],
        "separate": separate["mean"] - small["truth"],
    }
    return {
        "seed": seed,
        "seconds_hierarchical": t_h,
        "divergences": h.n_divergent_,
        "max_rhat": float(h.diagnostics_["r_hat"].max()),
        "params": param_rows,
        "customer_coverage_all": float(cover.mean()),
        "customer_coverage_small": float(cover.loc[small.index].mean()),
        "customer_coverage_small_pooled": float(_covers(pooled, small["truth"]).mean()),
        "customer_coverage_small_separate": float(_covers(separate, small["truth"]).mean()),
        "rmse_small": {k: float(np.sqrt(np.mean(v**2))) for k, v in errors.items()},
        "mae_small": {k: float(np.mean(np.abs(v))) for k, v in errors.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--out", default=None, help="write all results as JSON here")
    parser.add_argument("--population", default="pairs", choices=["pairs", "independent"])
    parser.add_argument("--parametrization", default="auto")
    args = parser.parse_args()
    results = []
    for seed in range(args.seeds):
        res = one_seed(
            seed,
            SIZES,
            args.draws,
            population=args.population,
            parametrization=args.parametrization,
        )
        results.append(res)
        print(
            f"seed {seed}: {res['seconds_hierarchical']:.0f} s, divergences "
            f"{res['divergences']}, max R-hat {res['max_rhat']:.3f}, customer coverage "
            f"{res['customer_coverage_all']:.3f}, RMSE small {res['rmse_small']}",
            flush=True,
        )
    params = pd.DataFrame([p for r in results for p in r["params"]])
    print("\nCoverage of the true segment parameters by the 94% HDIs")
    print(params.groupby("size")["covered"].agg(["mean", "count"]).to_string())
    print(params.groupby("parameter")["covered"].agg(["mean", "count"]).to_string())
    print(f"overall {params['covered'].mean():.3f} over {len(params)} intervals")
    frame = pd.DataFrame(results)
    for col in (
        "customer_coverage_all",
        "customer_coverage_small",
        "customer_coverage_small_pooled",
        "customer_coverage_small_separate",
    ):
        print(f"{col}: mean {frame[col].mean():.3f} (per seed {frame[col].round(3).tolist()})")
    for metric in ("rmse_small", "mae_small"):
        table = pd.DataFrame(frame[metric].tolist())
        print(f"{metric} (small segments, <= {SMALL} customers): mean over seeds")
        print(table.mean().to_string())
        wins = (table["hierarchical"] < table[["pooled", "separate"]].min(axis=1)).sum()
        print(f"  hierarchical best in {wins} of {len(table)} seeds")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=2, default=float)


if __name__ == "__main__":
    main()
