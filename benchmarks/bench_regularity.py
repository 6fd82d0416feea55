"""Regular buyers on real data: MBG/CNBD-k and BG/CNBD-k against BTYDplus' published figures.

Run:  uv run python benchmarks/bench_regularity.py

Data (``../shared/data``, beside the repository; not copied into it):

1. BTYDplus' online grocery log (1,525 customers), calibration to 2006-12-31, holdout to
   2007-12-30 (52 weeks), weeks. BTYDplus' vignette publishes the holdout totals: actual
   3,389; MBG/CNBD-k 3,970 (k = 2); Pareto/NBD 4,018. BTYDplus' MBG/CNBD-k number is its
   bias-corrected approximation, whose total is by construction the sum over customers of
   E[X(T_i + 52)] - E[X(T_i)] at its estimates: printed here as "BTYDplus' total" beside
   the exact conditional expectation of clvmodels.
2. The CDNOW sample (2,357 customers, calibration to 1997-09-30): the selected k must be
   1 and the fit the MBG/NBD's (r 0.525, alpha 6.183, a 0.891, b 1.614, LL -9582.13).
3. CLVTools' apparel log (600 customers), 104 weeks of calibration from 2005-01-02.

For each: Wheat & Morrison's k, the k chosen by likelihood, the estimates, the holdout
totals and per-customer MAE, and the fitting time of k = 1..K next to the MBG/NBD's.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

import clvmodels as cm

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _fit(cls, cal):
    start = time.perf_counter()
    model = cls().fit(cal)
    return model, time.perf_counter() - start


def report(name, tx, customer, date, calibration_end, observation_end=None):
    cal = cm.calibration_holdout(tx, customer, date, calibration_end=calibration_end,
                                 observation_end=observation_end, litt=True)
    est = cm.estimate_regularity(tx, customer, date, observation_end=observation_end)
    h = float(cal["duration_holdout"].iloc[0])
    print(f"\n== {name}: {len(cal)} customers, holdout {h:.1f} weeks, "
          f"actual holdout purchases {int(cal['frequency_holdout'].sum())}")
    print(f"Wheat & Morrison k = {est.k:.3f} ({est.n_customers} customers)")
    rows = []
    for cls in (cm.MBGCNBD, cm.BGCNBD, cm.MBGNBD, cm.BGNBD, cm.ParetoNBD):
        model, seconds = _fit(cls, cal)
        exact = model.expected_purchases(h, cal)
        row = {"model": cls.__name__, "fit_s": seconds, "loglik": model.loglik_,
               **model.params_.round(4).to_dict(), "holdout_total": exact.sum(),
               "mae": float(np.mean(np.abs(exact - cal["frequency_holdout"])))}
        if hasattr(model, "loglik_by_k_"):
            T = cal["T"].to_numpy()
            inc = model.expected_purchases_new(T + h) - model.expected_purchases_new(T)
            row["btydplus_total"] = inc.sum()
            print(f"{cls.__name__} log-likelihood by k: "
                  + ", ".join(f"{k}: {v:.2f}" for k, v in model.loglik_by_k_.items()))
        rows.append(row)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(rows).set_index("model").round(3))


def main():
    grocery = pd.read_csv(SHARED / "grocery_elog.csv")
    report("grocery (BTYDplus: MBG/CNBD-k 3,970 with k = 2, Pareto/NBD 4,018, actual 3,389)",
           grocery, "cust", "date", "2006-12-31", "2007-12-30")
    cdnow = cm.datasets.cdnow_transactions(sample=True)
    report("CDNOW sample (MBG/NBD: r 0.525, alpha 6.183, a 0.891, b 1.614, LL -9582.13)",
           cdnow, "customer_id", "date", "1997-09-30")
    apparel = pd.read_csv(SHARED / "apparel_transactions.csv")
    report("CLVTools apparel", apparel, "Id", "Date", "2006-12-31")


if __name__ == "__main__":
    main()
