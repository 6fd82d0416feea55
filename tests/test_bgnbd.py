"""BG/NBD: published values, agreement with lifetimes, recovery, extremes, gradients."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from clvmodels.models import bgnbd
from clvmodels.models.bgnbd import BGNBD

PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
FULL = {"r": 0.2425945, "alpha": 4.4136019, "a": 0.7929199, "b": 2.4258881}


@pytest.fixture(scope="module")
def fitted(cdnow_rfm):
    return BGNBD().fit(cdnow_rfm)


def test_published_parameters_and_loglik(fitted):
    for name, value in PUBLISHED.items():
        assert round(fitted.params_[name], 3) == pytest.approx(value, abs=1e-12)
    for name, value in FULL.items():
        assert fitted.params_[name] == pytest.approx(value, rel=1e-3)
    assert fitted.loglik_ == pytest.approx(-9582.429, abs=0.01)


def test_standard_errors_match_reference(fitted, cdnow_rfm, lifetimes):
    # lifetimes reports standard errors from the Hessian too
    ref = lifetimes.BetaGeoFitter().fit(
        cdnow_rfm["frequency"], cdnow_rfm["recency"], cdnow_rfm["T"]
    )
    se_ref = ref.standard_errors_
    for name in PUBLISHED:
        assert fitted.se_[name] == pytest.approx(se_ref[name], rel=2e-2)


def test_hardie_spot_value():
    bg = BGNBD.from_params(**PUBLISHED)
    one = pd.DataFrame({"frequency": [2], "recency": [30.43], "T": [38.86]})
    assert bg.expected_purchases(39, one).iloc[0] == pytest.approx(1.226, abs=5e-4)


@pytest.fixture(scope="module")
def both(fitted, lifetimes):
    ref = lifetimes.BetaGeoFitter()
    ref.params_ = pd.Series(fitted.params_.to_dict())
    return fitted, ref


def test_predictions_match_lifetimes(both, cdnow_rfm):
    ours, ref = both
    f, r, T = cdnow_rfm["frequency"], cdnow_rfm["recency"], cdnow_rfm["T"]
    for t in (1.0, 39.0, 78.0):
        np.testing.assert_allclose(
            ours.expected_purchases(t, cdnow_rfm),
            ref.conditional_expected_number_of_purchases_up_to_time(t, f, r, T), rtol=1e-6)
    np.testing.assert_allclose(ours.probability_alive(cdnow_rfm),
                               ref.conditional_probability_alive(f, r, T), rtol=1e-6)
    ts = np.array([0.5, 5.0, 39.0, 78.0, 520.0])
    np.testing.assert_allclose(ours.expected_purchases_new(ts),
                               ref.expected_number_of_purchases_up_to_time(ts), rtol=1e-6)
    for n in range(0, 8):
        assert ours.probability_of_purchases(n, 39.0) == pytest.approx(
            ref.probability_of_n_purchases_up_to_time(39.0, n), rel=1e-6)


def test_probability_of_purchases_sums_to_one(fitted):
    n = np.arange(0, 2000)
    assert fitted.probability_of_purchases(n, 52.0).sum() == pytest.approx(1.0, abs=1e-9)


def test_gradient_matches_finite_differences(cdnow_rfm):
    x, t_x, T = (cdnow_rfm[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    theta = np.array(list(FULL.values()))
    grad = np.column_stack(bgnbd.loglik_grad(*theta, x, t_x, T)).sum(axis=0)
    for j in range(4):
        h = 1e-6 * theta[j]
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        fd = (bgnbd.loglik(*up, x, t_x, T).sum() - bgnbd.loglik(*down, x, t_x, T).sum()) / (2 * h)
        assert grad[j] == pytest.approx(fd, rel=1e-5, abs=1e-4)


def test_parameter_recovery_from_simulation():
    truth = {"r": 0.5, "alpha": 6.0, "a": 0.8, "b": 2.5}
    sim = BGNBD.from_params(**truth).simulate(
        100_000, np.random.default_rng(7).uniform(20, 80, 100_000), random_state=11)
    fit = BGNBD().fit(sim)
    for name, value in truth.items():
        # within three standard errors and 10%
        assert abs(fit.params_[name] - value) < 3 * fit.se_[name]
        assert fit.params_[name] == pytest.approx(value, rel=0.1)


def test_simulated_counts_match_model_expectation():
    bg = BGNBD.from_params(**FULL)
    sim = bg.simulate(400_000, 39.0, random_state=3)
    assert sim["frequency"].mean() == pytest.approx(bg.expected_purchases_new(39.0), rel=0.01)
    assert (sim["recency"] <= sim["T"]).all()
    assert (sim.loc[sim["frequency"] == 0, "recency"] == 0).all()


EXTREME = [1e-3, 1.0, 1e3]


@pytest.mark.parametrize("r", EXTREME)
@pytest.mark.parametrize("alpha", EXTREME)
@pytest.mark.parametrize("a", [1e-3, 0.5, 2.0, 1e3])
@pytest.mark.parametrize("b", EXTREME)
def test_extremes_are_finite_without_warnings(r, alpha, a, b):
    x = np.array([0, 1, 5, 50, 500, 500, 500], dtype=float)
    T = np.array([1e-2, 1.0, 100.0, 1e3, 1e4, 1e4, 600.0])
    t_x = np.array([0.0, 0.5, 1.0, 999.0, 1e-3, 1e4, 600.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ll = bgnbd.loglik(r, alpha, a, b, x, t_x, T)
        grad = np.column_stack(bgnbd.loglik_grad(r, alpha, a, b, x, t_x, T))
        alive = bgnbd.probability_alive(r, alpha, a, b, x, t_x, T)
        out = [ll, grad, alive]
        for t in (1e-3, 39.0, 1e4):
            out.append(bgnbd.expected_purchases(r, alpha, a, b, t, x, t_x, T))
        out.append(bgnbd.expected_purchases_new(r, alpha, a, b, np.array([1e-3, 1.0, 1e4])))
        out.append(bgnbd.probability_of_purchases(r, alpha, a, b, np.array([0, 1, 500]), 1e4))
    for arr in out:
        assert np.all(np.isfinite(arr))
    assert np.all((alive >= 0) & (alive <= 1))
    assert np.all(out[3] >= 0)


def test_hessian_matches_finite_differences_of_gradient(cdnow_rfm):
    x, t_x, T = (cdnow_rfm[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    theta = np.array(list(FULL.values()))
    grad, hess = bgnbd.loglik_grad_and_hessian(*theta, x, t_x, T)
    np.testing.assert_allclose(grad, np.column_stack(bgnbd.loglik_grad(*theta, x, t_x, T)),
                               rtol=1e-12, atol=1e-12)
    total = hess.sum(axis=0)
    for j in range(4):
        h = 1e-6 * theta[j]
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        fd = (np.column_stack(bgnbd.loglik_grad(*up, x, t_x, T)).sum(axis=0)
              - np.column_stack(bgnbd.loglik_grad(*down, x, t_x, T)).sum(axis=0)) / (2 * h)
        np.testing.assert_allclose(total[:, j], fd, rtol=1e-5, atol=1e-3)


def test_trigamma_shift_matches_polygamma():
    from scipy import special

    from clvmodels._math import trigamma_shift

    x = np.array([0.0, 1, 2, 7, 150, 3000])
    for base in (1e-3, 0.24, 3.2, 1e3):
        expected = special.polygamma(1, base) - special.polygamma(1, base + x)
        np.testing.assert_allclose(trigamma_shift(base, x), expected, rtol=1e-11, atol=1e-300)
    np.testing.assert_allclose(trigamma_shift(0.5, np.array([0.5, 2.5])),
                               special.polygamma(1, 0.5) - special.polygamma(1, [1.0, 3.0]))
