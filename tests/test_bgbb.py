"""BG/BB: published donations fit, lifetimes' predictions, gradient, simulator, extremes."""

from __future__ import annotations

import itertools
import warnings

import mpmath as mp
import numpy as np
import pandas as pd
import pytest

from clvmodels.datasets import donations
from clvmodels.errors import DataError
from clvmodels.models import bgbb
from clvmodels.models.bgbb import BGBB

PUBLISHED = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783}  # REFERENCE.md
PUBLISHED_LOGLIK = -33225.6
FULL_PRECISION_LOGLIK = -33225.5813  # this implementation and lifetimes, at the optimum
P = tuple(PUBLISHED.values())


@pytest.fixture(scope="module")
def don():
    return donations()


@pytest.fixture(scope="module")
def arrays(don):
    return tuple(don[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))


@pytest.fixture(scope="module")
def reference(don):
    from lifetimes import BetaGeoBetaBinomFitter

    ref = BetaGeoBetaBinomFitter()
    ref.params_ = pd.Series(PUBLISHED)
    ref.data = don.rename(columns={"T": "n_periods"})
    return ref


def assert_rel(actual, expected, rtol=1e-6):
    np.testing.assert_allclose(
        np.asarray(actual, float), np.asarray(expected, float), rtol=rtol, atol=0
    )


def test_fit_reproduces_published_donations_estimates(don):
    model = BGBB().fit(don, weights="weights")
    for name, value in PUBLISHED.items():
        assert round(model.params_[name], 3) == value, name
    assert round(model.loglik_, 1) == PUBLISHED_LOGLIK
    assert abs(model.loglik_ - FULL_PRECISION_LOGLIK) < 0.01
    assert model.n_obs_ == 11_104
    assert np.all(np.isfinite(model.se_)) and np.all(model.se_ > 0)


def test_weights_equal_repeated_rows(don):
    expanded = don.loc[don.index.repeat(don["weights"])].drop(columns="weights")
    a = BGBB().fit(don, weights="weights")
    b = BGBB().fit(expanded.reset_index(drop=True))
    assert_rel(b.params_, a.params_, 1e-6)


def test_loglik_matches_lifetimes_and_mpmath(arrays, reference):
    x, t_x, n = arrays
    ll = bgbb.loglik(*P, x, t_x, n)
    assert_rel(ll, reference._loglikelihood(P, x, t_x, n), 1e-10)

    mp.mp.dps = 30

    def exact(al, be, ga, de, x, t_x, n):  # eq. (5), term by term
        al, be, ga, de = map(mp.mpf, (al, be, ga, de))
        total = mp.beta(al + x, be + n - x) * mp.beta(ga, de + n) + mp.fsum(
            mp.beta(al + x, be + t_x - x + i) * mp.beta(ga + 1, de + t_x + i)
            for i in range(n - t_x)
        )
        return float(mp.log(total / mp.beta(al, be) / mp.beta(ga, de)))

    rows = [(0, 0, 1), (0, 0, 400), (1, 1, 400), (200, 399, 400), (400, 400, 400)]
    for p in [(1e-3, 1e-3, 1e-3, 1e-3), (1e3, 1e-3, 1e3, 1e-3), (1e-3, 1e3, 1e-3, 1e3), P]:
        ours = bgbb.loglik(*p, *(np.array([float(r[k]) for r in rows]) for k in range(3)))
        want = np.array([exact(*p, *r) for r in rows])
        # an absolute error in log L is a relative error in L
        assert np.all(np.abs(ours - want) <= 1e-9 * np.maximum(1.0, np.abs(want))), p


def test_predictions_match_lifetimes(arrays, reference):
    x, t_x, n = arrays
    model = BGBB.from_params(**PUBLISHED)
    rfm = pd.DataFrame({"frequency": x, "recency": t_x, "T": n})
    for ahead in (0, 1, 5):
        assert_rel(
            model.probability_alive(rfm, ahead=ahead),
            reference.conditional_probability_alive(ahead, x, t_x, n),
        )
    for t in (1, 5, 10, 50):
        assert_rel(
            model.expected_purchases(t, rfm),
            reference.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, n),
        )
    times = np.array([1, 5, 10, 50])
    path = model.expected_purchases_path(times, rfm)
    for k, t in enumerate(times):
        assert_rel(
            path[:, k], reference.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, n)
        )
    for periods in (6, 11):
        table = reference.expected_number_of_transactions_in_first_n_periods(periods)
        ours = model.probability_of_purchases(table.index.to_numpy(), periods) * 11_104
        assert_rel(ours, table["model"])


def test_pmf_sums_to_one_and_has_the_right_mean():
    for n in (1, 6, 50, 500):
        k = np.arange(n + 1)
        pmf = bgbb.probability_of_purchases(*P, k, n)
        assert pmf.sum() == pytest.approx(1.0, abs=1e-10)
        assert (k * pmf).sum() == pytest.approx(bgbb.expected_purchases_new(*P, n), rel=1e-9)
    assert bgbb.probability_of_purchases(*P, 7, 6) == 0.0


def test_expected_alive_opportunities_against_mpmath():
    mp.mp.dps = 40

    def exact(ga, de, t):  # sum_{k=1}^t B(ga, de+k) / B(ga, de), closed form at 40 digits
        ga, de = mp.mpf(ga), mp.mpf(de)
        if ga == 1:
            return float(de * (mp.digamma(de + t + 1) - mp.digamma(de + 1)))
        log_ratio = (
            mp.loggamma(ga + de)
            + mp.loggamma(1 + de + t)
            - mp.loggamma(1 + de)
            - mp.loggamma(ga + de + t)
        )
        return float(de / (ga - 1) * (1 - mp.exp(log_ratio)))

    for ga, de, t in itertools.product(
        (1e-3, 0.3, 0.5, 1 - 1e-9, 1.0, 1 + 1e-7, 1.5, 3.0, 1e3),
        (1e-3, 1.0, 1e3, 1e4),
        (1, 7, 10_000),
    ):
        assert bgbb._expected_alive_opportunities(ga, de, t) == pytest.approx(
            exact(ga, de, t), rel=1e-6
        ), (ga, de, t)


def test_gradient_matches_central_differences(arrays):
    extremes = (
        np.array([0.0, 0, 1, 1, 500, 1000]),
        np.array([0.0, 0, 1, 1000, 999, 1000]),
        np.array([1.0, 1000, 1000, 1000, 1000, 1000]),
    )
    # (parameters, data, relative tolerance): at the extremes scipy's betaln is accurate to
    # ~1e-10 absolute, which the difference quotient amplifies by 1 / step
    cases = [(np.array(P), arrays, 1e-7)] + [
        (np.array(p), extremes, 1e-5) for p in itertools.product((1e-3, 1.0, 1e3), repeat=4)
    ]
    for p, data, rtol in cases:
        # derivatives with respect to log-parameters
        grad = np.column_stack(bgbb.loglik_grad(*p, *data)) * p
        ll = bgbb.loglik(*p, *data)
        for j in range(4):
            step = np.zeros(4)
            step[j] = 1e-4
            fd = (
                bgbb.loglik(*(p * np.exp(step)), *data) - bgbb.loglik(*(p * np.exp(-step)), *data)
            ) / 2e-4
            tol = rtol * (1 + np.abs(grad[:, j]) + np.abs(ll))
            assert np.all(np.abs(fd - grad[:, j]) <= tol), (p, j)


def test_simulator_matches_the_exact_joint_distribution():
    model = BGBB.from_params(**PUBLISHED)
    n, n_customers = 5, 200_000
    sim = model.simulate(n_customers, n, random_state=3)
    assert sim["T"].eq(n).all() and sim["recency"].dtype == np.int64
    counts = sim.value_counts(["frequency", "recency"])
    cells = [(0, 0)] + [(x, t) for t in range(1, n + 1) for x in range(1, t + 1)]
    x = np.array([c[0] for c in cells], dtype=float)
    t_x = np.array([c[1] for c in cells], dtype=float)
    # P(x, t_x) = (number of purchase sequences with that x and t_x) * L(x, t_x, n)
    ways = np.where(x > 0, [float(mp.binomial(t - 1, k - 1)) for k, t in cells], 1.0)
    prob = ways * np.exp(bgbb.loglik(*P, x, t_x, np.full(x.size, float(n))))
    assert prob.sum() == pytest.approx(1.0, abs=1e-12)
    expected = n_customers * prob
    observed = np.array([counts.get(c, 0) for c in cells])
    assert observed.sum() == n_customers
    sd = np.sqrt(expected * (1 - prob))
    assert np.all(np.abs(observed - expected) < 4.5 * sd)


def test_parameter_recovery_from_simulated_data():
    truth = {"alpha": 0.9, "beta": 1.6, "gamma": 0.5, "delta": 3.0}
    n = np.random.default_rng(0).integers(4, 15, 20_000)
    data = BGBB.from_params(**truth).simulate(n.size, n, random_state=5)
    fit = BGBB().fit(data)
    z = (fit.params_ - pd.Series(truth)) / fit.se_
    assert np.all(np.abs(z) < 4), z


def test_discrete_data_are_validated(don):
    bad = don.astype({"recency": float})
    bad.loc[3, "recency"] = 2.5
    with pytest.raises(DataError, match="recency"):
        BGBB().fit(bad, weights="weights")
    bad = don.copy()
    bad.loc[7, "frequency"] = 3  # x = 3 > t_x = 2
    with pytest.raises(DataError, match="frequency"):
        BGBB().fit(bad, weights="weights")
    with pytest.raises(DataError, match="T"):
        BGBB.from_params(**PUBLISHED).simulate(10, 2.5)


def test_extremes_are_finite_without_warnings():
    x = np.array([0.0, 0, 1, 1, 5000, 10_000, 3])
    t_x = np.array([0.0, 0, 1, 10_000, 9999, 10_000, 5])
    n = np.array([1.0, 10_000, 10_000, 10_000, 10_000, 10_000, 10])
    t = np.array([0.0, 1, 10_000, 0, 1, 10_000, 1])  # one horizon per row
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for p in itertools.product((1e-3, 1.0, 1e3), repeat=4):
            values = [
                bgbb.loglik(*p, x, t_x, n),
                *bgbb.loglik_grad(*p, x, t_x, n),
                bgbb.probability_alive(*p, x, t_x, n, t),
                bgbb.expected_purchases(*p, t, x, t_x, n),
                bgbb.expected_purchases_new(*p, t),
            ]
            assert all(np.all(np.isfinite(v)) for v in values), p
            assert np.all(values[5] <= 1.0)
        for p in itertools.product((1e-3, 1e3), repeat=4):
            pmf = bgbb.probability_of_purchases(
                *p, np.array([0.0, 1, 10, 10_000]), np.array([[1.0], [10.0], [10_000.0]])
            )
            assert np.all(np.isfinite(pmf)) and np.all(pmf <= 1 + 1e-12), p


def test_save_load_round_trip(tmp_path, don):
    model = BGBB().fit(don, weights="weights")
    model.save(tmp_path / "bgbb.json")
    again = BGBB.load(tmp_path / "bgbb.json")
    pd.testing.assert_series_equal(again.params_, model.params_)


@pytest.mark.slow
def test_pytensor_loglik_equals_numpy(arrays):
    import pytensor
    import pytensor.tensor as pt

    from clvmodels._math import pytensor_ops

    theta = pt.dvector("theta")
    f = pytensor.function(
        [theta], bgbb.loglik(*(theta[i] for i in range(4)), *arrays, ops=pytensor_ops())
    )
    assert_rel(f(np.array(P)), bgbb.loglik(*P, *arrays), 1e-12)
