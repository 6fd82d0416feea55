"""Long sampling runs (``-m slow``): the CDNOW acceptance run, hierarchical segments on
simulated data with known parameters (coverage, shrinkage, 2 and 50 segments).

The full coverage study over many seeds is ``benchmarks/bayes_segments_study.py``."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from clvmodels import bayes
from clvmodels.errors import StatisticalWarning
from clvmodels.models.bgnbd import BGNBD as MLEBGNBD
from clvmodels.models.gammagamma import GammaGamma as MLEGammaGamma

pytestmark = pytest.mark.slow

BG_MLE = {"r": 0.2425945, "alpha": 4.4136019, "a": 0.7929199, "b": 2.4258881}
FULL = {"draws": 1000, "tune": 1000, "chains": 4, "cores": 2, "progressbar": False}


def test_cdnow_acceptance(cdnow_rfm):
    """Issue 4: MLE inside every 94% HDI, means of r and alpha within 5% of the MLE,
    R-hat <= 1.01, bulk ESS >= 400, no divergences."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", StatisticalWarning)  # no convergence warning
        m = bayes.BGNBD().fit(cdnow_rfm, random_seed=0, **FULL)
    s = m.summary()
    mle = MLEBGNBD().fit(cdnow_rfm).params_
    for k in BG_MLE:
        assert s.loc[k, "hdi_3%"] <= mle[k] <= s.loc[k, "hdi_97%"], k
    for k in ("r", "alpha"):
        assert s.loc[k, "mean"] == pytest.approx(mle[k], rel=0.05)
    assert (m.diagnostics_["r_hat"] <= 1.01).all()
    assert (m.diagnostics_["ess_bulk"] >= 400).all()
    assert m.n_divergent_ == 0


def test_cdnow_gammagamma_acceptance(cdnow_rfm):
    with warnings.catch_warnings():
        warnings.simplefilter("error", StatisticalWarning)
        m = bayes.GammaGamma().fit(cdnow_rfm, random_seed=0, **FULL)
    s = m.summary()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)  # the correlation warning
        mle = MLEGammaGamma().fit(cdnow_rfm).params_
    for k in ("p", "q", "v"):
        assert s.loc[k, "hdi_3%"] <= mle[k] <= s.loc[k, "hdi_97%"], k
    assert m.n_divergent_ == 0


def test_cdnow_master_cohorts_converge_with_the_report_settings():
    """Issue 18: the report's default segments (the CDNOW master's 3 acquisition-month
    cohorts, calibration to 1997-09-30) and its sampling settings (2 x 500 draws after 500
    tuning steps): both segment models pass the convergence verdict (R-hat <= 1.01, bulk
    and tail ESS >= 400, no divergences)."""
    import clvmodels as cm

    tx = cm.datasets.cdnow_transactions()
    kw = {"customer": "customer_id", "date": "date"}
    cal = cm.calibration_holdout(tx, **kw, amount="amount", calibration_end="1997-09-30",
                                 unit="W")
    cohort = cm.acquisition_cohorts(tx, **kw, before=pd.Timestamp("1997-09-30"))
    cal["segment"] = cohort.reindex(cal.index)
    assert cal["segment"].nunique() == 3
    spend = cal[(cal["frequency"] == 0) | (cal["monetary_value"] > 0)]
    report = {"draws": 500, "tune": 500, "chains": 2, "cores": 2, "progressbar": False}
    for cls, data in ((bayes.SegmentBGNBD, cal), (bayes.SegmentGammaGamma, spend)):
        with warnings.catch_warnings():
            warnings.simplefilter("error", StatisticalWarning)  # no convergence warning
            m = cls(segment="segment").fit(data, random_seed=0, **report)
        assert m.convergence_.passed, m.convergence_.message()


# ---- simulated segments -----------------------------------------------------------------
POP_SIGMA = 0.5


def simulate_segments(sizes, seed, horizon=39.0):
    """Segments with parameters drawn from the population around the CDNOW MLE."""
    return bayes.simulate_segments(
        sizes, BG_MLE, spread=POP_SIGMA, horizon=horizon, random_state=seed
    )


def _fit(cls, data, seed, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        return cls(**kw).fit(
            data, draws=500, tune=500, chains=2, cores=2, random_seed=seed, progressbar=False
        )


def test_segments_coverage_and_small_segment_predictions():
    """Across seeds: 94% intervals cover the true segment parameters and the true
    per-customer E[Y(39)] at about the nominal rate; on small segments (<= 100 customers)
    the hierarchical model's predictions beat one pooled fit and a fit per segment."""
    sizes = [50, 50, 100, 100, 500, 2000, 5000]
    covered, checks = 0, 0
    cust_cover = []
    err = {"hierarchical": [], "pooled": [], "separate": []}
    for seed in range(3):
        rfm, truth = simulate_segments(sizes, seed)
        h = _fit(bayes.SegmentBGNBD, rfm, seed, segment="segment")
        table = h.segment_params()
        for s, theta in truth.items():
            for k, v in theta.items():
                row = table.loc[(s, k)]
                covered += row["hdi_low"] <= v <= row["hdi_high"]
                checks += 1
        small = rfm[rfm["segment"].isin([s for s, n in enumerate(sizes) if n <= 100])]
        pred = h.expected_purchases(39, small)
        cust_cover.append(
            ((pred["hdi_low"] <= small["truth"]) & (small["truth"] <= pred["hdi_high"])).mean()
        )
        err["hierarchical"].append(pred["mean"] - small["truth"])
        pooled = _fit(bayes.BGNBD, rfm, seed)
        err["pooled"].append(pooled.expected_purchases(39, small)["mean"] - small["truth"])
        for s in small["segment"].unique():
            part = small[small["segment"] == s]
            own = _fit(bayes.BGNBD, part, seed)
            err["separate"].append(own.expected_purchases(39, part)["mean"] - part["truth"])
    rmse = {k: float(np.sqrt(np.mean(np.concatenate(v) ** 2))) for k, v in err.items()}
    print(
        f"segment-parameter coverage {covered}/{checks}; per-customer coverage "
        f"{np.round(cust_cover, 3)}; RMSE on small segments {rmse}"
    )
    assert covered / checks >= 0.8
    assert np.mean(cust_cover) >= 0.7
    assert rmse["hierarchical"] < rmse["pooled"]
    assert rmse["hierarchical"] < rmse["separate"]


@pytest.mark.parametrize("n_segments", [2, 50])
def test_many_and_few_small_segments(n_segments):
    """2 to 50 segments of 20 customers: the sampler copes (no divergences, R-hat ok)."""
    rfm, truth = simulate_segments([20] * n_segments, seed=n_segments)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        h = bayes.SegmentBGNBD(segment="segment").fit(
            rfm, draws=500, tune=1000, chains=2, cores=2, random_seed=0, progressbar=False
        )
    assert h.segment_params().shape == (4 * n_segments, 4)
    assert h.n_divergent_ <= 5
    assert h.diagnostics_["r_hat"].max() < 1.05
