"""Bayesian models' public draws, posterior predictive intervals and CLV intervals, on
fake posteriors (InferenceData built from numpy draws; no sampling)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

import clvmodels as cm
from clvmodels import bayes
from clvmodels.models import gammagamma
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


# ---- CLV of many customers: shared work and bounded memory ---------------------------------
BG_DAYS = {"r": 0.243, "alpha": 4.414 * 7, "a": 0.793, "b": 2.426}  # CDNOW's, alpha in days


def _days_rfm(n: int, seed: int):
    """BG/NBD customers with ages and recencies in whole days (many share (x, T), as in
    daily data), and Gamma-Gamma mean spend."""
    rng = np.random.default_rng(seed)
    T = rng.integers(0, 731, n).astype(float)
    rfm = cm.BGNBD.from_params(**BG_DAYS).simulate(n, T, random_state=seed)
    rfm["recency"] = np.floor(rfm["recency"])
    spend = cm.GammaGamma.from_params(**GG_MLE).simulate(rfm["frequency"], random_state=seed)
    return rfm.assign(monetary_value=spend.to_numpy())


def test_clv_in_chunks_equals_clv_in_one_chunk(monkeypatch):
    """2,000 customers: 40 rows per chunk (customers of one (x, T) split between
    chunks) and one chunk, in threads or not, give identical numbers, intervals
    included."""
    rfm = _days_rfm(2000, 5)
    m = fake(bayes.BGNBD, around(BG_DAYS, n_draws=50))
    gg = fake(bayes.GammaGamma, around(GG_MLE, n_draws=50, seed=2))
    kw = {"horizon": 364, "period": 28, "discount_rate": 0.01, "level": 0.9}
    one = bayes.customer_lifetime_value(m, gg, rfm, memory_limit=2**30, **kw)
    chunked = bayes.customer_lifetime_value(m, gg, rfm, memory_limit=8 * 100 * 40, **kw)
    pd.testing.assert_frame_equal(one, chunked, check_exact=True)
    assert one.notna().all().all() and len(one) == len(rfm)
    monkeypatch.setattr(bayes._predict, "THREADS", 1)  # chunks one after another
    alone = bayes.customer_lifetime_value(m, gg, rfm, memory_limit=8 * 100 * 40, **kw)
    pd.testing.assert_frame_equal(alone, chunked, check_exact=True)


PARETO_DAYS = {"r": 0.553, "alpha": 10.578 * 7, "s": 0.606, "beta": 11.669 * 7}


@pytest.mark.parametrize("cls, params", [(bayes.BGNBD, BG_DAYS), (bayes.MBGNBD, BG_DAYS),
                                         (bayes.ParetoNBD, PARETO_DAYS)])
def test_clv_per_draw_is_the_direct_formula(cls, params):
    """The CLV evaluates E[Y(t) | alive] once per (x, T) (``conditional.mean`` at the
    updated parameters: for the MBG/NBD a BG/NBD's) and P(alive) per customer; per draw
    it equals the model's E[Y(t) | history] per customer (BG/NBD: eq. (10) of Fader,
    Hardie & Lee 2005)."""
    rfm = _days_rfm(2000, 6)
    m = fake(cls, around(params, n_chains=1, n_draws=8))
    gg = fake(bayes.GammaGamma, around(GG_MLE, n_chains=1, n_draws=8, seed=2))
    got = bayes.customer_lifetime_value(m, gg, rfm, horizon=84, period=28, discount_rate=0.02)
    x, t_x, T, mv = (rfm[c].to_numpy(float) for c in ("frequency", "recency", "T",
                                                       "monetary_value"))  # fmt: skip
    per_draw = []
    for d in range(8):
        p = [float(m.idata_.posterior[k][0, d]) for k in params]
        s = [float(gg.idata_.posterior[k][0, d]) for k in GG_MLE]
        cum = [cls.formulas.expected_purchases(*p, t, x, t_x, T) for t in (28.0, 56.0, 84.0)]
        steps = np.diff(np.vstack([np.zeros_like(x), *cum]), axis=0)
        value = (steps / 1.02 ** np.arange(1, 4)[:, None]).sum(axis=0)
        per_draw.append(gammagamma.expected_spend(*s, x, mv) * value)
    np.testing.assert_allclose(got["mean"], np.mean(per_draw, axis=0), rtol=1e-10)
    np.testing.assert_allclose(got["sd"], np.std(per_draw, axis=0, ddof=1), rtol=1e-8)


def test_clv_memory_is_bounded():
    """20,000 customers x 400 draws (64 MB as one array) within a few times the limit."""
    rfm = _days_rfm(20_000, 7)
    m = fake(bayes.BGNBD, around(BG_DAYS, n_chains=1, n_draws=400))
    gg = fake(bayes.GammaGamma, around(GG_MLE, n_chains=1, n_draws=400, seed=2))
    limit = 2**20
    tracemalloc.start()
    out = bayes.customer_lifetime_value(m, gg, rfm, horizon=56, period=28, memory_limit=limit)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out["mean"].notna().all()
    assert peak < 12 * limit  # the frame copies and unique rows are ~5 MB
    assert peak < 20_000 * 400 * 8 / 4
