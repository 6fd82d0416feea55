"""Few segments, as users meet them (issue 18): do the hierarchical models converge, and
do they still help the small segment?

Every fit with the report's sampling settings (500 draws after 500 tuning steps in 2
chains), one fit at a time:

1. The CDNOW master's 3 acquisition-month cohorts (the report's default segments, the
   calibration period to 1997-09-30): ``bayes.SegmentBGNBD`` and ``bayes.SegmentGammaGamma``.
2. Simulated sets of 3 segments of 300, 1,500 and 8,000 customers whose BG/NBD parameters
   are drawn around the CDNOW MLE with a spread of 0.5 on the log scale (segments that
   differ) and of 0.1 (segments that hardly differ). Per set: ``SegmentBGNBD``, one
   pooled ``bayes.BGNBD`` on all customers and a separate ``bayes.BGNBD`` on the small
   segment; the error of each fit's posterior-mean E[Y(39) | history] against the value
   at the true parameters, over the small segment's customers (RMSE).
3. The same sets with spend: each segment's Gamma-Gamma (p, q, v) drawn around the CDNOW
   estimates (Fader, Hardie & Lee 2005: p = 6.25, q = 3.74, v = 15.44) with the same
   spread, each repeat buyer's mean spend drawn exactly from the model. Per set:
   ``SegmentGammaGamma``, one pooled and one separate ``bayes.GammaGamma``; the RMSE of
   E[mean spend | x, m] against its value at the true parameters, over the small
   segment's repeat buyers.

Each fit's convergence verdict (``convergence_``): R-hat <= 1.01, bulk and tail ESS >=
400, no divergences. Per spread the mean RMSE of each fit and the paired differences
(hierarchical minus pooled, hierarchical minus separate; the same data sets) with their
standard error over seeds. Run (about 2 minutes per seed and spread on 2 free cores):

    .venv/bin/python benchmarks/bayes_segments_few.py [--seeds 10] [--gg-seeds 5]
        [--parts cdnow,bgnbd,gg] [--spreads 0.5,0.1] [--out results.json]
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
from clvmodels.models import gammagamma as gg_formulas

SIZES = [300, 1500, 8000]
SPREADS = [0.5, 0.1]
POP = {"r": 0.2425945, "alpha": 4.4136019, "a": 0.7929199, "b": 2.4258881}
POP_GG = {"p": 6.25, "q": 3.74, "v": 15.44}
HORIZON = 39.0
REPORT = {"draws": 500, "tune": 500, "chains": 2, "cores": 2, "progressbar": False}
FITS = ("hierarchical", "pooled", "separate")


def _fit(model, data, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)  # the verdict is recorded
        t0 = time.perf_counter()
        model.fit(data, random_seed=seed, **REPORT)
    return model, time.perf_counter() - t0


def _verdict(model, seconds) -> dict:
    c = model.convergence_
    out = {
        "seconds": round(seconds, 1),
        "divergences": c.divergences,
        "rhat_max": round(c.rhat_max, 4),
        "ess_bulk_min": round(c.ess_bulk_min),
        "ess_tail_min": round(c.ess_tail_min),
        "passed": c.passed,
    }
    first = getattr(model, "first_convergence_", None)
    if first is not None:  # the report's settings failed: refitted with more draws
        out["first"] = (f"{first.divergences} div, R-hat {first.rhat_max:.4f}, "
                        f"ESS {first.ess_bulk_min:.0f}/{first.ess_tail_min:.0f}")
    return out


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


def with_spend(rfm: pd.DataFrame, spread: float, seed: int) -> pd.DataFrame:
    """``rfm`` with each repeat buyer's mean spend (``monetary_value``) drawn from the
    Gamma-Gamma of its segment and ``spend_truth``, E[mean spend | x, m] at the truth."""
    rng = np.random.default_rng([seed, 18])
    out = rfm.assign(monetary_value=0.0, spend_truth=np.nan)
    for _, rows in rfm.groupby("segment"):
        theta = {k: v * np.exp(spread * rng.standard_normal()) for k, v in POP_GG.items()}
        x = rows["frequency"].to_numpy(float)
        m = gg_formulas.simulate(*theta.values(), x, rng)
        out.loc[rows.index, "monetary_value"] = m
        out.loc[rows.index, "spend_truth"] = gg_formulas.expected_spend(*theta.values(), x, m)
    return out


def _rmse(pred, truth) -> float:
    return float(np.sqrt(np.mean((pred["mean"] - truth) ** 2)))


def simulated_set(spread: float, seed: int, spend: bool) -> dict:
    """One simulated set: the hierarchical model's verdict and the small segment's RMSE of
    the three fits (BG/NBD, or with ``spend`` the Gamma-Gamma twins)."""
    rfm, _ = bayes.simulate_segments(SIZES, POP, spread=spread, horizon=HORIZON,
                                     random_state=seed)
    if spend:
        rfm = with_spend(rfm, spread, seed)
        small = rfm[(rfm["segment"] == 0) & (rfm["frequency"] > 0)]
        classes = (bayes.SegmentGammaGamma, bayes.GammaGamma)

        def rmse(m):
            return _rmse(m.expected_spend(small), small["spend_truth"])
    else:
        small = rfm[rfm["segment"] == 0]
        classes = (bayes.SegmentBGNBD, bayes.BGNBD)

        def rmse(m):
            return _rmse(m.expected_purchases(HORIZON, small), small["truth"])
    h, seconds = _fit(classes[0](segment="segment"), rfm, seed)
    pooled, _ = _fit(classes[1](), rfm, seed)
    separate, _ = _fit(classes[1](), rfm[rfm["segment"] == 0], seed)
    row = {
        "data": f"simulated, spread {spread}",
        "seed": seed,
        "model": classes[0].__name__,
        **_verdict(h, seconds),
        "sigma_mean": round(float(h.idata_.posterior["segment_sigma"].mean()), 3),
        "pooled_passed": pooled.convergence_.passed,
        "separate_passed": separate.convergence_.passed,
    }
    for name, fit in zip(FITS, (h, pooled, separate), strict=True):
        row[f"rmse_{name}"] = round(rmse(fit), 4)
    print(row, flush=True)
    return row


def summary(part: pd.DataFrame) -> str:
    """Mean RMSE per fit and the paired differences with their standard error."""
    n = len(part)
    mean = {k: part[f"rmse_{k}"].mean() for k in FITS}
    out = "mean RMSE " + ", ".join(f"{k} {v:.4f}" for k, v in mean.items())
    for other in FITS[1:]:
        d = part["rmse_hierarchical"] - part[f"rmse_{other}"]
        se = d.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
        out += (f"; hierarchical - {other} {d.mean():+.4f} (se {se:.4f}, "
                f"lower in {(d < 0).sum()}/{n})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="BG/NBD sets per spread")
    parser.add_argument("--gg-seeds", type=int, default=5, help="Gamma-Gamma sets per spread")
    parser.add_argument("--parts", default="cdnow,bgnbd,gg")
    parser.add_argument("--seed-list", default=None,
                        help="these seeds (comma-separated) instead of 0 .. --seeds - 1")
    parser.add_argument("--spreads", default=",".join(map(str, SPREADS)),
                        help="spreads of the simulated sets, comma-separated")
    parser.add_argument("--out", default=None, help="write all rows as JSON here")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    spreads = [float(s) for s in args.spreads.split(",")]
    rows = cdnow_part() if "cdnow" in parts else []
    for spend, flag, seeds in ((False, "bgnbd", args.seeds), (True, "gg", args.gg_seeds)):
        if flag in parts:
            chosen = (range(seeds) if args.seed_list is None
                      else [int(k) for k in args.seed_list.split(",")])
            rows += [simulated_set(s, seed, spend) for s in spreads for seed in chosen]
    frame = pd.DataFrame(rows)
    cols = ["data", "model", "seconds", "divergences", "rhat_max", "ess_bulk_min",
            "ess_tail_min", "passed"]
    cdnow = frame[frame["data"] == "CDNOW cohorts"] if "data" in frame else frame.iloc[:0]
    if len(cdnow):
        print("\nCDNOW cohorts (report settings: 2 chains x 500 draws after 500 tuning steps)")
        extra = ["first"] if "first" in cdnow else []
        print(cdnow[cols + extra].fillna("").to_string(index=False))
    sim = frame.drop(cdnow.index)
    for (model, data), part in sim.groupby(["model", "data"], sort=False):
        what = ("E[Y(39)] of the small segment's customers" if model == "SegmentBGNBD"
                else "E[mean spend] of the small segment's repeat buyers")
        print(f"\n{model}, {data}: RMSE of {what} ({SIZES[0]} customers)")
        show = ["seed", "divergences", "rhat_max", "ess_bulk_min", "ess_tail_min", "passed",
                "sigma_mean", *(f"rmse_{k}" for k in FITS)]
        show += ["first"] if part.get("first", pd.Series()).notna().any() else []
        print(part[show].fillna("").to_string(index=False))
        print(summary(part))
    retried = int(frame["first"].notna().sum()) if "first" in frame else 0
    print(f"\nall hierarchical fits passed: {bool(frame['passed'].all())} "
          f"({int(frame['passed'].sum())} of {len(frame)}; {retried} after the automatic "
          "refit with 2x the draws and tuning in 4 chains)")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
