"""clvmodels.intervals: HDIs against ArviZ, the delta-method ratio interval against
draws from the normal approximation it stands for."""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pytest

import clvmodels as cm
from clvmodels import bayes
from clvmodels.intervals import hdi, log_scale_interval, param_ratio


@pytest.mark.parametrize("prob", [0.5, 0.94])
def test_hdi_matches_arviz(prob):
    rng = np.random.default_rng(0)
    draws = rng.gamma(2.0, 1.0, size=(3, 2000))  # skewed: HDI differs from quantiles
    low, high = hdi(draws, prob)
    for k in range(3):
        ref = az.hdi(draws[k], hdi_prob=prob)
        assert (low[k], high[k]) == pytest.approx(tuple(ref))
    assert hdi(draws[0], prob) == pytest.approx(tuple(az.hdi(draws[0], hdi_prob=prob)))
    assert hdi(np.array([3.0]), 0.94) == (3.0, 3.0)
    with pytest.raises(ValueError, match="prob"):
        hdi(draws, 0.0)


def test_log_scale_interval():
    low, high = log_scale_interval(2.0, 0.1, 0.95)
    assert low == pytest.approx(2.0 * np.exp(-1.959964 * 0.1))
    assert high == pytest.approx(2.0 * np.exp(1.959964 * 0.1))


def test_mle_ratio_is_the_normal_approximation_of_the_log_parameters(cdnow_rfm):
    """log(r/alpha) is linear in the log-parameters: the delta-method interval equals the
    quantiles of the ratio under draws of the log-parameters from N(log theta, cov_log)."""
    m = cm.BGNBD().fit(cdnow_rfm)
    got = param_ratio(m, "r", "alpha")
    theta = m.params_[["r", "alpha"]].to_numpy()
    cov_log = m.cov_.loc[["r", "alpha"], ["r", "alpha"]].to_numpy() / np.outer(theta, theta)
    rng = np.random.default_rng(1)
    logs = rng.multivariate_normal(np.log(theta), cov_log, size=400_000)
    ratio = np.exp(logs[:, 0] - logs[:, 1])
    assert list(got.index) == ["all"] and got.index.name == "segment"
    assert got.loc["all", "mean"] == pytest.approx(theta[0] / theta[1])
    assert got.loc["all", "low"] == pytest.approx(np.quantile(ratio, 0.03), rel=2e-3)
    assert got.loc["all", "high"] == pytest.approx(np.quantile(ratio, 0.97), rel=2e-3)


def test_bayesian_ratio_per_segment_is_the_hdi_of_the_draws():
    rng = np.random.default_rng(2)
    r = rng.gamma(20.0, 0.01, size=(2, 300, 3))
    alpha = rng.gamma(50.0, 0.1, size=(2, 300, 3))
    idata = az.from_dict(posterior={"r": r, "alpha": alpha}, coords={"segment": ["a", "b", "c"]},
                         dims={"r": ["segment"], "alpha": ["segment"]})
    idata.posterior.attrs["clvmodels"] = json.dumps({"model": "SegmentBGNBD"})
    h = bayes.SegmentBGNBD(segment="seg")
    h.idata_ = idata
    got = param_ratio(h, "r", "alpha", prob=0.9)
    assert list(got.index) == ["a", "b", "c"]
    for k, s in enumerate("abc"):
        ratio = (r[:, :, k] / alpha[:, :, k]).ravel()
        assert got.loc[s, "mean"] == pytest.approx(ratio.mean())
        assert (got.loc[s, "low"], got.loc[s, "high"]) == pytest.approx(
            tuple(az.hdi(ratio, hdi_prob=0.9)))
    with pytest.raises(ValueError, match="not fitted"):
        param_ratio(cm.BGNBD(), "r", "alpha")
