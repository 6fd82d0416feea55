"""Few segments, as users meet them (issue 18): does the hierarchical model converge, and
does it still help the small segment?

Two parts, every fit with the report's sampling settings (500 draws after 500 tuning
steps in 2 chains) and one fit at a time:

1. The CDNOW master's 3 acquisition-month cohorts (the report's default segments, the
   calibration period to 1997-09-30): ``bayes.SegmentBGNBD`` and ``bayes.SegmentGammaGamma``.
2. Simulated sets of 3 segments of 300, 1,500 and 8,000 customers whose BG/NBD parameters
   are drawn around the CDNOW MLE with a spread of 0.5 on the log scale (segments that
   differ) and of 0.1 (segments that hardly differ), 5 seeds each. Per set:
   ``SegmentBGNBD``, one pooled ``bayes.BGNBD`` on all customers, and a separate
   ``bayes.BGNBD`` on the small segment; the error of each fit's posterior-mean
   E[Y(39) | history] against the value at the true parameters, on the small segment.

Each fit's convergence verdict (``convergence_``): R-hat <= 1.01, bulk and tail ESS >=
400, no divergences. Run (about 15 minutes on 2 shared cores):

    .venv/bin/python benchmarks/bayes_segments_few.py [--seeds 5] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd

import clvmodels as cm
from clvmodels import bayes
from clvmodels.errors import StatisticalWarning

SIZES = [300, 1500, 8000]
SPREADS = [0.5, 0.1]
POP = {"r": 0.2425945, "alpha": 4.4136019, "a": 0.7929199, "b": 2.4258881}
HORIZON = 39.0
REPORT = {"draws": 500, "tune": 500, "chains": 2, "cores": 2, "progressbar": False}


def _fit(model, data, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)  # the verdict is recorded
        t0 = time.perf_counter()
        model.fit(data, random_seed=seed, **REPORT)
    return model, time.perf_counter() - t0


def _verdict(model, seconds) -> dict:
    c = model.convergence_
    return {
        "seconds": round(seconds, 1),
        "divergences": c.divergences,
        "rhat_max": round(c.rhat_max, 4),
        "ess_bulk_min": round(c.ess_bulk_min),
        "ess_tail_min": round(c.ess_tail_min),
        "passed": c.passed,
    }


def cdnow_cohorts() -> pd.DataFrame:
    """The report's default data: CDNOW master, calibration to 1997-09-30, segments the
    acquisition month."""
    tx = cm.datasets.cdnow_transactions()
    kw = {"customer": "customer_id", "date": "date"}
    cal = cm.calibration_holdout(tx, **kw, amount="amount", calibration_end="1997-09-30", unit="W")
    cohort = cm.acquisition_cohorts(tx, **kw, before=pd.Timestamp("1997-09-30"))
    return cal.assign(segment=cohort.reindex(cal.index))


def cdnow_part() -> list[dict]:
    cal = cdnow_cohorts()
    spend = cal[(cal["frequency"] == 0) | (cal["monetary_value"] > 0)]
    rows = []
    for cls, data in ((bayes.SegmentBGNBD, cal), (bayes.SegmentGammaGamma, spend)):
        model, seconds = _fit(cls(segment="segment"), data, 0)
        row = {"data": "CDNOW cohorts", "model": cls.__name__, **_verdict(model, seconds)}
        row["centering"] = model.centering_.to_dict()
        rows.append(row)
        print(row, flush=True)
    return rows


def simulated_part(seeds: int) -> list[dict]:
    rows = []
    for spread in SPREADS:
        for seed in range(seeds):
            rfm, _ = bayes.simulate_segments(
                SIZES, POP, spread=spread, horizon=HORIZON, random_state=seed
            )
            small = rfm[rfm["segment"] == 0]
            h, seconds = _fit(bayes.SegmentBGNBD(segment="segment"), rfm, seed)
            pooled, _ = _fit(bayes.BGNBD(), rfm, seed)
            separate, _ = _fit(bayes.BGNBD(), small, seed)
            errors = {
                "hierarchical": h.expected_purchases(HORIZON, small)["mean"],
                "pooled": pooled.expected_purchases(HORIZON, small)["mean"],
                "separate": separate.expected_purchases(HORIZON, small)["mean"],
            }
            rmse = {
                k: float(np.sqrt(np.mean((v - small["truth"]) ** 2))) for k, v in errors.items()
            }
            row = {
                "data": f"simulated, spread {spread}",
                "seed": seed,
                "model": "SegmentBGNBD",
                **_verdict(h, seconds),
                "pooled_passed": pooled.convergence_.passed,
                "separate_passed": separate.convergence_.passed,
                **{f"rmse_small_{k}": round(v, 4) for k, v in rmse.items()},
            }
            rows.append(row)
            print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default=None, help="write all rows as JSON here")
    args = parser.parse_args()
    rows = cdnow_part() + simulated_part(args.seeds)
    frame = pd.DataFrame(rows)
    cols = ["data", "seed", "model", "seconds", "divergences", "rhat_max", "ess_bulk_min",
            "ess_tail_min", "passed"]
    print("\nConvergence (report settings: 2 chains x 500 draws after 500 tuning steps)")
    print(frame[[c for c in cols if c in frame]].to_string(index=False))
    sim = frame[frame["data"].str.startswith("simulated")]
    rmse = [c for c in sim.columns if c.startswith("rmse_small_")]
    print(f"\nRMSE of E[Y({HORIZON:.0f})] on the small segment ({SIZES[0]} customers)")
    print(sim[["data", "seed", *rmse]].to_string(index=False))
    for data, part in sim.groupby("data"):
        mean = part[rmse].mean()
        wins = int((part[rmse[0]] < part[rmse[1:]].min(axis=1)).sum())
        print(f"{data}: mean RMSE " + ", ".join(f"{k[11:]} {v:.4f}" for k, v in mean.items())
              + f"; hierarchical best in {wins} of {len(part)} seeds")
    print(f"\nall fits passed: {bool(frame['passed'].all())} ({int(frame['passed'].sum())} "
          f"of {len(frame)})")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
