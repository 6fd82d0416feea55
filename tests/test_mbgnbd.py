"""MBG/NBD: published CDNOW fit, lifetimes' predictions, gradient, simulator, extremes."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special

from clvmodels.models import mbgnbd
from clvmodels.models.mbgnbd import MBGNBD

PUBLISHED = {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}  # REFERENCE.md
PUBLISHED_LOGLIK = -9582.13
P = tuple(PUBLISHED.values())


@pytest.fixture(scope="module")
def cdnow():
    from lifetimes.datasets import load_cdnow_summary

    return load_cdnow_summary(index_col=[0])


@pytest.fixture(scope="module")
def arrays(cdnow):
    return tuple(cdnow[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))


@pytest.fixture(scope="module")
def reference():
    from lifetimes import ModifiedBetaGeoFitter

    ref = ModifiedBetaGeoFitter()
    ref.params_ = pd.Series(PUBLISHED)
    return ref


def assert_rel(actual, expected, rtol=1e-6):
    np.testing.assert_allclose(
        np.asarray(actual, float), np.asarray(expected, float), rtol=rtol, atol=0
    )


def test_fit_reproduces_published_cdnow_estimates(cdnow):
    model = MBGNBD().fit(cdnow)
    for name, value in PUBLISHED.items():
        assert round(model.params_[name], 3) == value, name
    assert abs(model.loglik_ - PUBLISHED_LOGLIK) < 0.01
    assert np.all(np.isfinite(model.se_)) and np.all(model.se_ > 0)


def test_loglik_equals_the_papers_formula_and_lifetimes(arrays, reference):
    x, t_x, T = arrays
    ll = mbgnbd.loglik(*P, x, t_x, T)
    # Batislam et al. (2007) / Wagner & Hoppe (2008), written out independently
    r, alpha, a, b = P
    nbd = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    l1 = special.betaln(a, b + x + 1) - special.betaln(a, b) - (r + x) * np.log(alpha + T)
    l2 = special.betaln(a + 1, b + x) - special.betaln(a, b) - (r + x) * np.log(alpha + t_x)
    assert_rel(ll, nbd + np.logaddexp(l1, l2), 1e-12)
    total = -reference._negative_log_likelihood(np.log(P), x, t_x, T, np.ones_like(x), 0.0)
    assert_rel(ll.sum(), total * x.size, 1e-12)


def test_predictions_match_lifetimes(arrays, reference):
    x, t_x, T = arrays
    model = MBGNBD.from_params(**PUBLISHED)
    rfm = pd.DataFrame({"frequency": x, "recency": t_x, "T": T})
    assert_rel(model.probability_alive(rfm), reference.conditional_probability_alive(x, t_x, T))
    for t in (0.5, 10.0, 39.0, 104.0):
        assert_rel(
            model.expected_purchases(t, rfm),
            reference.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, T),
        )
    times = np.array([0.5, 10.0, 39.0, 104.0])
    path = model.expected_purchases_path(times, rfm)
    for k, t in enumerate(times):
        assert_rel(
            path[:, k], reference.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, T)
        )
    assert_rel(
        model.expected_purchases_new(times),
        reference.expected_number_of_purchases_up_to_time(times),
    )
    for n, t in itertools.product(range(8), (1.0, 39.0, 78.0)):
        assert_rel(
            model.probability_of_purchases(n, t),
            reference.probability_of_n_purchases_up_to_time(t, n),
        )


def test_customers_without_repeat_purchases_may_be_dead():
    model = MBGNBD.from_params(**PUBLISHED)
    rfm = pd.DataFrame({"frequency": [0, 0], "recency": [0.0, 0.0], "T": [1e-6, 39.0]})
    alive = model.probability_alive(rfm).to_numpy()
    # at T -> 0 only the drop-out at time 0 remains: P(alive) -> b / (a + b)
    r, alpha, a, b = P
    assert alive[0] == pytest.approx(b / (a + b), rel=1e-6)
    assert alive[1] < alive[0] < 1


def test_gradient_matches_central_differences(arrays):
    x, t_x, T = arrays
    extremes = (
        np.array([0.0, 0, 1, 500, 500]),
        np.array([0.0, 0, 1e4, 1, 1e4]),
        np.array([1e-3, 1e4, 1e4, 1e4, 1e4]),
    )
    cases = [(np.array(P), arrays)] + [
        (np.array(p), extremes) for p in itertools.product((1e-3, 1.0, 1e3), repeat=4)
    ]
    for p, data in cases:
        # derivatives in log-parameters: rounding noise ~ eps * |loglik| / step
        grad = np.column_stack(mbgnbd.loglik_grad(*p, *data)) * p
        ll = mbgnbd.loglik(*p, *data)
        for j in range(4):
            step = np.zeros(4)
            step[j] = 1e-5
            fd = (
                mbgnbd.loglik(*(p * np.exp(step)), *data)
                - mbgnbd.loglik(*(p * np.exp(-step)), *data)
            ) / 2e-5
            tol = 1e-6 * (1 + np.abs(grad[:, j]) + np.abs(ll))
            assert np.all(np.abs(fd - grad[:, j]) <= tol), (p, j)


def test_pmf_sums_to_one_and_has_the_right_mean():
    n = np.arange(3000)
    for t in (1.0, 39.0, 500.0):
        pmf = mbgnbd.probability_of_purchases(*P, n, t)
        assert pmf.sum() == pytest.approx(1.0, abs=1e-10)
        assert (n * pmf).sum() == pytest.approx(mbgnbd.expected_purchases_new(*P, t), rel=1e-8)


def test_simulator_matches_the_exact_distribution():
    model = MBGNBD.from_params(**PUBLISHED)
    n_customers = 200_000
    sim = model.simulate(n_customers, 39.0, random_state=7)
    counts = np.bincount(sim["frequency"], minlength=6)[:6]
    expected = n_customers * model.probability_of_purchases(np.arange(6), 39.0)
    sd = np.sqrt(expected * (1 - expected / n_customers))
    assert np.all(np.abs(counts - expected) < 4.5 * sd)
    assert np.all(sim["recency"] <= sim["T"])
    assert np.all(sim.loc[sim["frequency"] == 0, "recency"] == 0)


def test_parameter_recovery_from_simulated_data():
    truth = {"r": 0.8, "alpha": 5.0, "a": 0.7, "b": 2.5}
    T = np.random.default_rng(0).uniform(20, 60, 10_000)
    data = MBGNBD.from_params(**truth).simulate(T.size, T, random_state=11)
    fit = MBGNBD().fit(data)
    z = (fit.params_ - pd.Series(truth)) / fit.se_
    assert np.all(np.abs(z) < 4), z


def _extreme_grid():
    x = np.array([0.0, 0, 1, 1, 10, 500, 500, 500])
    t_x = np.array([0.0, 0, 0.5, 1e4, 5, 1, 9999, 1e4])
    T = np.array([1e-3, 1e4, 1, 1e4, 10, 1e4, 1e4, 1e4])
    return itertools.product((1e-3, 1.0, 1e3), repeat=4), (x, t_x, T)


def test_extremes_likelihood_alive_pmf_are_finite_without_warnings():
    grid, (x, t_x, T) = _extreme_grid()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for p in grid:
            values = [
                mbgnbd.loglik(*p, x, t_x, T),
                *mbgnbd.loglik_grad(*p, x, t_x, T),
                mbgnbd.probability_alive(*p, x, t_x, T),
                mbgnbd.probability_of_purchases(
                    *p, np.array([0.0, 1, 10, 500]), np.array([[1e-3], [1.0], [1e4]])
                ),
            ]
            assert all(np.all(np.isfinite(v)) for v in values), p


def test_extremes_expectations_are_finite_without_warnings():
    grid, (x, t_x, T) = _extreme_grid()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for p in grid:
            for t in (1e-3, 1.0, 1e4):
                assert np.all(np.isfinite(mbgnbd.expected_purchases(*p, t, x, t_x, T))), p
            assert np.all(np.isfinite(mbgnbd.expected_purchases_new(*p, np.array([1e-3, 1, 1e4]))))


def test_save_load_round_trip(tmp_path, cdnow):
    model = MBGNBD().fit(cdnow)
    model.save(tmp_path / "mbg.json")
    again = MBGNBD.load(tmp_path / "mbg.json")
    pd.testing.assert_series_equal(again.params_, model.params_)
    assert_rel(again.expected_purchases(10, cdnow), model.expected_purchases(10, cdnow), 1e-15)


@pytest.mark.slow
def test_pytensor_loglik_equals_numpy(arrays):
    import pytensor
    import pytensor.tensor as pt

    from clvmodels._math import pytensor_ops

    theta = pt.dvector("theta")
    f = pytensor.function(
        [theta], mbgnbd.loglik(*(theta[i] for i in range(4)), *arrays, ops=pytensor_ops())
    )
    assert_rel(f(np.array(P)), mbgnbd.loglik(*P, *arrays), 1e-12)
