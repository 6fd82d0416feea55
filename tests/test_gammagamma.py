"""Gamma-Gamma: published values, agreement with lifetimes, recovery, diagnostics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clvmodels.errors import DataError, StatisticalWarning
from clvmodels.models import gammagamma
from clvmodels.models.gammagamma import GammaGamma


@pytest.fixture(scope="module")
def fitted(cdnow_rfm):
    return GammaGamma().fit(cdnow_rfm)


def test_published_parameters_and_loglik(fitted):
    # Fader, Hardie & Lee (2005b): p = 6.25, q = 3.74, v = 15.44 on the 946 repeat buyers
    assert fitted.n_obs_ == 946
    assert round(fitted.params_["p"], 2) == 6.25
    assert round(fitted.params_["q"], 2) == 3.74
    assert round(fitted.params_["v"], 2) == 15.44
    assert fitted.loglik_ == pytest.approx(-4055.92, abs=0.01)


def test_frequency_monetary_correlation_reported(fitted):
    # FHL (2005b) report a correlation of 0.11 between frequency and average spend
    assert fitted.frequency_monetary_corr_ == pytest.approx(0.11, abs=0.01)


def test_strong_correlation_warns():
    rng = np.random.default_rng(0)
    x = pd.Series(rng.integers(1, 20, 2000))
    spend = GammaGamma.from_params(p=4.0, q=5.0, v=20.0).simulate(x, random_state=1)
    rfm = pd.DataFrame({"frequency": x, "recency": x * 1.0, "T": 30.0,
                        "monetary_value": spend * x})  # big spenders buy more often
    with pytest.warns(StatisticalWarning, match="correlated"):
        fit = GammaGamma().fit(rfm)
    assert fit.frequency_monetary_corr_ > 0.3


@pytest.mark.filterwarnings("ignore:GammaGamma. frequency and monetary_value are correlated")
def test_degenerate_data_warn_instead_of_failing():
    # spend proportional to frequency with no heterogeneity in the rate: q, v -> infinity
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, 500)
    rfm = pd.DataFrame({"frequency": x, "recency": x * 1.0, "T": 30.0,
                        "monetary_value": 5.0 * x + rng.gamma(2, 1, 500)})
    with pytest.warns(StatisticalWarning, match="drifted to extreme values"):
        fit = GammaGamma().fit(rfm)
    assert np.all(np.isfinite(fit.expected_spend(rfm)))


def test_expected_spend_matches_lifetimes(fitted, cdnow_rfm, lifetimes):
    ref = lifetimes.GammaGammaFitter()
    ref.params_ = pd.Series(fitted.params_.to_dict())
    ours = fitted.expected_spend(cdnow_rfm)
    theirs = ref.conditional_expected_average_profit(cdnow_rfm["frequency"],
                                                     cdnow_rfm["monetary_value"])
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    # a customer without repeat purchases gets the population mean p v / (q - 1)
    p, q, v = fitted.params_
    zero = cdnow_rfm.index[cdnow_rfm["frequency"] == 0][0]
    assert ours[zero] == pytest.approx(p * v / (q - 1), rel=1e-12)


def test_gradient_matches_finite_differences(cdnow_rfm):
    rows = cdnow_rfm[cdnow_rfm["frequency"] > 0]
    x, m = rows["frequency"].to_numpy(float), rows["monetary_value"].to_numpy(float)
    theta = np.array([6.25, 3.74, 15.44])
    grad = np.column_stack(gammagamma.loglik_grad(*theta, x, m)).sum(axis=0)
    for j in range(3):
        h = 1e-6 * theta[j]
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        fd = (gammagamma.loglik(*up, x, m).sum() - gammagamma.loglik(*down, x, m).sum()) / (2 * h)
        assert grad[j] == pytest.approx(fd, rel=1e-5)


def test_parameter_recovery_from_simulation():
    truth = {"p": 4.0, "q": 5.0, "v": 20.0}
    rng = np.random.default_rng(5)
    freq = pd.Series(rng.integers(1, 15, 50_000))
    m = GammaGamma.from_params(**truth).simulate(freq, random_state=9)
    rfm = pd.DataFrame({"frequency": freq, "recency": freq * 1.0, "T": 20.0,
                        "monetary_value": m})
    fit = GammaGamma().fit(rfm)
    for name, value in truth.items():
        assert abs(fit.params_[name] - value) < 3 * fit.se_[name]
        assert fit.params_[name] == pytest.approx(value, rel=0.1)


def test_negative_monetary_value_rejected():
    rfm = pd.DataFrame({"frequency": [1, 2], "recency": [1.0, 2.0], "T": [3.0, 3.0],
                        "monetary_value": [-1.0, 5.0]})
    with pytest.raises(DataError, match="monetary_value.*1 row"):
        GammaGamma().fit(rfm)


def test_extremes_finite():
    x = np.array([1.0, 10, 500])
    m = np.array([1e-3, 10.0, 1e4])
    for p in (1e-3, 1.0, 1e3):
        for q in (1e-3, 1.0, 1e3):
            for v in (1e-3, 1.0, 1e3):
                with np.errstate(all="raise"):
                    assert np.all(np.isfinite(gammagamma.loglik(p, q, v, x, m)))
                    grads = gammagamma.loglik_grad(p, q, v, x, m)
                assert all(np.all(np.isfinite(g)) for g in grads)


def test_zero_spend_of_repeat_buyers_rejected():
    rfm = pd.DataFrame({"frequency": [1, 2, 0, 3], "recency": [1.0, 2.0, 0.0, 3.0],
                        "T": 4.0, "monetary_value": [0.0, 5.0, 0.0, 0.0]})
    before = rfm.copy()
    with pytest.raises(DataError, match=r"monetary_value.*must be positive.*\(2 rows\)"):
        GammaGamma().fit(rfm)
    pd.testing.assert_frame_equal(rfm, before)
