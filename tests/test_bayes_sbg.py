"""Bayesian contractual models: the pytensor twins of the likelihoods, the posterior mode
against the maximum-likelihood fit, predictions on fake posteriors; sampling runs are slow."""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pandas as pd
import pytest

import clvmodels as cm
from clvmodels import bayes
from clvmodels._math import pytensor_ops
from clvmodels.models import bdw, sbg

ROWS = (np.array([0.0, 1, 2, 5, 0, 3, 40]), np.array([1.0, 1, 0, 1, 0, 0, 1]))


def _pytensor(f, params, data):
    import pytensor
    import pytensor.tensor as pt

    p = [pt.dscalar() for _ in params]
    d = [pt.dvector() for _ in data]
    return pytensor.function(p + d, f(*p, *d, ops=pytensor_ops()))(*params, *data)


@pytest.mark.parametrize("f, params", [(sbg.loglik, (0.7, 1.3)), (bdw.loglik, (0.7, 1.3, 0.6)),
                                       (bdw.loglik, (2.0, 0.5, 1.7))])
def test_pytensor_twin_equals_numpy(f, params):
    np.testing.assert_allclose(_pytensor(f, params, ROWS), f(*params, *ROWS), rtol=1e-12)


@pytest.fixture(scope="module")
def published():
    return cm.contractual.fader_hardie_2007().loc[:7]


def test_map_close_to_mle(published):
    """With weakly informative priors, the posterior mode is near the MLE (1,000 customers)."""
    mle = cm.SBG().fit(published["regular"])
    m = bayes.SBG().fit(published["regular"], method="map", progressbar=False)
    for name in ("alpha", "beta"):
        assert float(m.idata_.posterior[name].values.ravel()[0]) == pytest.approx(
            mle.params_[name], rel=0.05)


def _fake(cls, draws: dict, segments=None, **settings):
    posterior = {k: np.asarray(v, dtype=float) for k, v in draws.items()}
    coords = {"segment": segments} if segments is not None else {}
    dims = {k: ["segment"] for k in posterior} if segments is not None else {}
    idata = az.from_dict(posterior=posterior, coords=coords, dims=dims)
    idata.posterior.attrs["clvmodels"] = json.dumps(
        {"format_version": 1, "model": cls.__name__, "settings": settings, "method": "fake"})
    m = cls(**settings)
    m.idata_ = idata
    return m


def test_predictions_on_fake_posterior():
    rng = np.random.default_rng(0)
    a = 0.7 * np.exp(0.1 * rng.standard_normal((2, 50)))
    b = 1.2 * np.exp(0.1 * rng.standard_normal((2, 50)))
    m = _fake(bayes.SBG, {"alpha": a, "beta": b})
    t = np.array([1, 5, 12])
    surv = m.survival(t)
    expected = np.exp(sbg.log_survival(a.ravel()[:, None], b.ravel()[:, None], t)).mean(0)
    np.testing.assert_allclose(surv["mean"], expected, rtol=1e-12)
    assert (surv["hdi_low"] <= surv["mean"]).all() and (surv["mean"] <= surv["hdi_high"]).all()
    derl = m.derl(0.1, [0, 4])
    np.testing.assert_allclose(
        derl["mean"], [np.mean(sbg.derl(a.ravel(), b.ravel(), 0.1, k)) for k in (0, 4)],
        rtol=1e-12)
    # the BdW at c = 1 is the sBG: its direct sums equal the closed forms draw by draw
    w = _fake(bayes.BDW, {"alpha": a, "beta": b, "c": np.ones_like(a)})
    np.testing.assert_allclose(w.derl(0.1, [0, 4])["mean"], derl["mean"], rtol=1e-10)
    np.testing.assert_allclose(w.retention_rate(t)["mean"], m.retention_rate(t)["mean"],
                               rtol=1e-12)
    np.testing.assert_allclose(m.del_(0.1)["mean"].iloc[0],
                               np.mean(sbg.del_(a.ravel(), b.ravel(), 0.1)), rtol=1e-12)


def test_segment_predictions_per_segment():
    rng = np.random.default_rng(1)
    draws = {"alpha": np.exp(0.1 * rng.standard_normal((2, 30, 2))) * [0.7, 0.67],
             "beta": np.exp(0.1 * rng.standard_normal((2, 30, 2))) * [1.2, 3.8]}
    m = _fake(bayes.SegmentSBG, draws, segments=["highend", "regular"])
    s = m.survival([8, 12])
    assert s.index.names == ["segment", "t"]
    assert s.loc[("highend", 8), "mean"] > s.loc[("highend", 12), "mean"]
    single = _fake(bayes.SBG, {k: v[:, :, 1] for k, v in draws.items()})
    np.testing.assert_allclose(s.loc["regular", "mean"].to_numpy(),
                               single.survival([8, 12])["mean"].to_numpy(), rtol=1e-12)


def test_bad_arguments(published):
    m = _fake(bayes.SBG, {"alpha": np.ones((1, 4)), "beta": np.ones((1, 4))})
    with pytest.raises(ValueError, match="discount_rate"):
        m.derl(0.0)
    with pytest.raises(ValueError, match="weights"):
        bayes.SBG().fit(published["regular"], weights=np.ones(8), method="map")


@pytest.mark.slow
def test_sampling_sbg_bdw_and_cohorts(published):
    """NUTS (seeded): each fit passes its convergence verdict; the MLE inside the 94% HDI of
    each model; the cohort model's per-cohort posterior means within 10% of the separate
    MLE fits (1,000 customers each)."""
    for cohort in published.columns:
        mle = cm.SBG().fit(published[cohort])
        fit = bayes.SBG().fit(published[cohort], draws=1000, tune=500, chains=2,
                              random_seed=0, progressbar=False)
        assert fit.convergence_.passed, fit.convergence_.message()
        post = fit.summary()
        for name in ("alpha", "beta"):
            assert post.loc[name, "hdi_3%"] <= mle.params_[name] <= post.loc[name, "hdi_97%"]
    mle = cm.BDW().fit(published["highend"])
    fit = bayes.BDW().fit(published["highend"], draws=1000, tune=500, chains=2, random_seed=0,
                          progressbar=False)
    assert fit.convergence_.passed, fit.convergence_.message()
    post = fit.summary()
    for name in ("alpha", "beta", "c"):
        assert post.loc[name, "hdi_3%"] <= mle.params_[name] <= post.loc[name, "hdi_97%"]
    h = bayes.SegmentSBG().fit(published, draws=1000, tune=1000, chains=2, random_seed=0,
                               progressbar=False)
    assert h.convergence_.passed, h.convergence_.message()
    seg = h.segment_params()
    for cohort in published.columns:
        mle = cm.SBG().fit(published[cohort])
        for name in ("alpha", "beta"):
            assert seg.loc[(cohort, name), "mean"] == pytest.approx(mle.params_[name], rel=0.1)


def test_per_customer_frame_with_cohorts():
    """A per-customer frame with a cohort column gives SegmentSBG its groups (MAP)."""
    frames = [cm.SBG.from_params(alpha=a, beta=b).simulate(400, 6, random_state=i)
              .assign(cohort=name) for i, (name, a, b) in
              enumerate((("A", 1.0, 2.0), ("B", 1.0, 6.0)))]
    data = pd.concat(frames, ignore_index=True)
    h = bayes.SegmentSBG().fit(data, method="map", progressbar=False)
    beta = h.idata_.posterior["beta"].values.reshape(-1, 2)[0]
    assert beta[1] > beta[0]  # cohort B churns less


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    draws = {"alpha": np.exp(0.1 * rng.standard_normal((2, 20, 2))),
             "beta": 2 * np.exp(0.1 * rng.standard_normal((2, 20, 2)))}
    m = _fake(bayes.SegmentSBG, draws, segments=["a", "b"], segment="cohort")
    m.save(tmp_path / "m.nc")
    back = bayes.SegmentSBG.load(tmp_path / "m.nc")
    pd.testing.assert_frame_equal(back.derl(0.1, [0, 3]), m.derl(0.1, [0, 3]))
    assert back.segment == "cohort"
