"""Bayesian models' public draws, posterior predictive intervals and CLV intervals, on
fake posteriors (InferenceData built from numpy draws; no sampling)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import clvmodels as cm
from clvmodels import bayes
from test_bayes import BG_MLE, GG_MLE, around, fake, seg_fake


@pytest.fixture(scope="module")
def rfm(cdnow_rfm):
    return cdnow_rfm.iloc[::5]


def test_posterior_draws_are_a_dataset_of_samples():
    m = fake(bayes.BGNBD, around(BG_MLE, n_chains=2, n_draws=40))
    ds = m.posterior_draws()
    assert list(ds.data_vars) == list(BG_MLE) and ds.sizes["sample"] == 80
    # chain by chain: sample 40 is the first draw of the second chain
    assert float(ds["r"][40]) == float(m.idata_.posterior["r"][1, 0])
    assert m.posterior_draws(10).sizes["sample"] == 10
    h, _ = seg_fake(["a", "b"])
    assert h.posterior_draws()["alpha"].dims == ("sample", "segment")
    frame = cm.datasets.cdnow_transactions(sample=True).head(0)  # no rows
    assert h.segment_index(frame.assign(seg=[])).size == 0


def test_interval_of_a_point_posterior_is_the_mle_models(rfm):
    """A posterior of one draw is the MLE model with known parameters: same intervals."""
    m = fake(bayes.BGNBD, {k: [[v]] for k, v in BG_MLE.items()})
    want = cm.BGNBD.from_params(**BG_MLE).prediction_interval(26.0, rfm, level=0.8)
    got = m.prediction_interval(26.0, rfm, level=0.8)
    assert got.equals(want)
    y = np.minimum(rfm["frequency"].to_numpy(), 3)
    pit = m.randomized_pit(26.0, rfm, y, random_state=2)
    pd.testing.assert_series_equal(
        pit, cm.BGNBD.from_params(**BG_MLE).randomized_pit(26.0, rfm, y, random_state=2))


def test_interval_is_the_quantile_of_the_mixture_over_draws(rfm):
    m = fake(bayes.BGNBD, around(BG_MLE, n_chains=1, n_draws=7, spread=0.3))
    part = rfm.iloc[:40]
    got = m.prediction_interval(39.0, part, level=0.9, n_draws=7)
    ds = m.posterior_draws()
    n = np.arange(400)
    mix = np.zeros((len(part), n.size))
    for d in range(7):
        model = cm.BGNBD.from_params(**{k: float(ds[k][d]) for k in BG_MLE})
        mix += model.probability_of_purchases(n, 39.0, part).to_numpy() / 7
    cdf = np.cumsum(mix, axis=1)
    for col, p in (("low", 0.05), ("median", 0.5), ("high", 0.95)):
        np.testing.assert_array_equal(got[col], (cdf < p - 1e-12).sum(axis=1))


def test_segment_intervals_use_own_segment(rfm):
    h, draws = seg_fake(["a", "b"], n_seg_draws=5)
    frame = rfm.iloc[:60].assign(seg=np.repeat(["b", "a"], 30))
    got = h.prediction_interval(20.0, frame, level=0.9)
    for k, label in enumerate(["a", "b"]):
        own = fake(bayes.BGNBD, {n: draws[n][:, :, k] for n in BG_MLE})
        part = frame[frame["seg"] == label]
        assert got.loc[part.index].equals(own.prediction_interval(20.0, part, level=0.9))


def test_posterior_predictive_draws(rfm):
    m = fake(bayes.BGNBD, around(BG_MLE, n_chains=2, n_draws=100))
    part = rfm.iloc[:200]
    pp = m.posterior_predictive(39.0, part, n_draws=200, random_seed=3)
    assert pp.dims == ("sample", "customer") and pp.shape == (200, 200)
    assert (pp.coords["customer"].values == part.index.values).all()
    # the mean of the draws is the posterior mean of E[Y(39)] (within 4 standard errors)
    mean = m.expected_purchases(39.0, part)["mean"].sum()
    totals = pp.sum("customer").values
    assert abs(totals.mean() - mean) < 4 * totals.std() / np.sqrt(totals.size)


def test_clv_level_adds_the_value_interval(rfm):
    m = fake(bayes.BGNBD, around(BG_MLE, n_draws=20))
    gg = fake(bayes.GammaGamma, around(GG_MLE, n_draws=20, seed=2))
    plain = bayes.customer_lifetime_value(m, gg, rfm, horizon=52, period=4)
    with_level = bayes.customer_lifetime_value(m, gg, rfm, horizon=52, period=4, level=0.8)
    assert list(with_level.columns) == ["mean", "sd", "hdi_low", "hdi_high", "low", "high"]
    np.testing.assert_allclose(with_level["mean"], plain["mean"])
    interval = m.prediction_interval(52, rfm, level=0.8)
    per_purchase = plain["mean"] / m.expected_purchases(52, rfm)["mean"]
    np.testing.assert_allclose(with_level["high"], interval["high"] * per_purchase, rtol=1e-12)
    assert (with_level["low"] <= with_level["high"]).all()


def test_mle_clv_level(cdnow_rfm):
    bg = cm.BGNBD().fit(cdnow_rfm)
    gg = cm.GammaGamma().fit(cdnow_rfm)
    plain = cm.customer_lifetime_value(bg, gg, cdnow_rfm, horizon=52, period=4)
    out = cm.customer_lifetime_value(bg, gg, cdnow_rfm, horizon=52, period=4, level=0.9)
    assert list(out.columns) == ["clv", "low", "high"]
    np.testing.assert_allclose(out["clv"], plain)
    interval = bg.prediction_interval(52, cdnow_rfm, level=0.9)
    per_purchase = plain / bg.expected_purchases(52, cdnow_rfm)
    np.testing.assert_allclose(out["high"], interval["high"] * per_purchase, rtol=1e-12)
    # a customer expected to buy more has the wider interval of value
    assert out["high"].corr(plain) > 0.8
