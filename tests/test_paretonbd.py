"""Pareto/NBD: published CDNOW fit, lifetimes' predictions, gradient, extremes, recovery."""

from __future__ import annotations

import dataclasses
import itertools
import warnings

import mpmath as mp
import numpy as np
import pytest

from clvmodels.models import paretonbd
from clvmodels.models.paretonbd import ParetoNBD

PUBLISHED = dict(r=0.553, alpha=10.578, s=0.606, beta=11.669)


@pytest.fixture(scope="module")
def fitted(cdnow_rfm):
    return ParetoNBD().fit(cdnow_rfm)


def _data(frame):
    return tuple(frame[c].to_numpy(float) for c in ("frequency", "recency", "T"))


def test_published_parameters_and_loglik(fitted):
    # Fader & Hardie (2005) note 009; R BTYD: -9594.976
    for name, value in PUBLISHED.items():
        assert round(fitted.params_[name], 3) == value
    assert fitted.loglik_ == pytest.approx(-9594.976, abs=0.01)
    assert fitted.n_unique_ < 1100  # identical customers are fitted once


def test_loglik_matches_lifetimes(cdnow_rfm, lifetimes):
    x, t_x, T = _data(cdnow_rfm)
    p = list(PUBLISHED.values())
    ref = lifetimes.ParetoNBDFitter._conditional_log_likelihood(p, x, t_x, T)
    np.testing.assert_allclose(paretonbd.loglik(*p, x, t_x, T), ref, rtol=1e-10)


@pytest.fixture(scope="module")
def both(lifetimes):
    ours = ParetoNBD.from_params(**PUBLISHED)
    ref = lifetimes.ParetoNBDFitter()
    ref.params_ = ours.params_.copy()
    return ours, ref


def test_predictions_match_lifetimes(both, cdnow_rfm):
    ours, ref = both
    f, rec, T = cdnow_rfm["frequency"], cdnow_rfm["recency"], cdnow_rfm["T"]
    for t in (1.0, 39.0, 78.0):
        np.testing.assert_allclose(
            ours.expected_purchases(t, cdnow_rfm),
            ref.conditional_expected_number_of_purchases_up_to_time(t, f, rec, T),
            rtol=1e-6,
        )
    np.testing.assert_allclose(
        ours.probability_alive(cdnow_rfm), ref.conditional_probability_alive(f, rec, T), rtol=1e-6
    )
    times = np.array([0.5, 1.0, 39.0, 78.0, 1000.0])
    np.testing.assert_allclose(
        ours.expected_purchases_new(times),
        ref.expected_number_of_purchases_up_to_time(times),
        rtol=1e-6,
    )


def test_probability_of_purchases_is_a_distribution_with_the_right_mean():
    # lifetimes has no unconditional P(X(t) = n) for this model: check it is a pmf whose
    # mean is E[X(t)] (eq. (27)), and check one value against mpmath
    pn = ParetoNBD.from_params(**PUBLISHED)
    n = np.arange(2000)
    for t in (1.0, 39.0, 200.0):
        pmf = pn.probability_of_purchases(n, t)
        assert pmf.sum() == pytest.approx(1.0, abs=1e-10)
        assert (n * pmf).sum() == pytest.approx(pn.expected_purchases_new(t), rel=1e-9)
    r, alpha, s, beta = PUBLISHED.values()
    with mp.workdps(40):
        k, t = 3, mp.mpf(39)
        nbd = (
            mp.gamma(r + k)
            / (mp.gamma(r) * mp.factorial(k))
            * (alpha / (alpha + t)) ** r
            * (t / (alpha + t)) ** k
        )
        dead = mp.quad(
            lambda u: (
                mp.gamma(r + k)
                / (mp.gamma(r) * mp.factorial(k))
                * (alpha / (alpha + u)) ** r
                * (u / (alpha + u)) ** k
                * s
                * beta**s
                / (beta + u) ** (s + 1)
            ),
            [0, 1, 10, 39],
        )
        ref = nbd * (beta / (beta + t)) ** s + dead
    assert pn.probability_of_purchases(3, 39.0) == pytest.approx(float(ref), rel=1e-12)


def _mp_log_integral(alpha, beta, p, q, lo, hi):
    """log int_lo^hi (alpha+y)^-p (beta+y)^-q dy through the 2F1 form of note 009."""
    with mp.workdps(60):
        a, b, p, q, lo, hi = (mp.mpf(float(v)) for v in (alpha, beta, p, q, lo, hi))
        n = p + q - 1
        big, e = (a, q) if a >= b else (b, p)

        def g(y):
            return mp.hyp2f1(n, e, n + 1, abs(a - b) / (big + y)) / (big + y) ** n

        return float(mp.log((g(lo) - g(hi)) / n))


def test_likelihood_integral_matches_mpmath_at_the_extremes():
    rng = np.random.default_rng(1)
    n = 150
    grid = np.array([1e-3, 1.0, 1e3])
    r, alpha, s, beta = (rng.choice(grid, n) * np.exp(rng.normal(0, 0.3, n)) for _ in range(4))
    x = rng.choice([0, 1, 5, 50, 500], n).astype(float)
    T = rng.choice([0.5, 39.0, 1e4], n)
    t_x = np.where(x == 0, 0, T * rng.random(n))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = paretonbd._log_pair_integral(alpha, beta, r + x, s + 1, t_x, T)
    ref = np.array(
        [_mp_log_integral(*v) for v in zip(alpha, beta, r + x, s + 1, t_x, T, strict=True)]
    )
    assert np.max(np.abs(ours - ref) / np.maximum(1, np.abs(ref))) < 1e-11


def test_alpha_equal_to_beta():
    x, t_x, T = np.array([0.0, 3.0]), np.array([0.0, 20.0]), np.array([39.0, 39.0])
    same = paretonbd.loglik(0.5, 10.0, 0.7, 10.0, x, t_x, T)
    near = paretonbd.loglik(0.5, 10.0, 0.7, 10.0 * (1 + 1e-12), x, t_x, T)
    np.testing.assert_allclose(same, near, rtol=1e-11)


def _finite_difference(p, x, t_x, T, h=1e-6):
    out = []
    for j in range(4):
        e = np.zeros(4)
        e[j] = h * p[j]
        up = paretonbd.loglik(*(p + e), x, t_x, T)
        down = paretonbd.loglik(*(p - e), x, t_x, T)
        out.append((up - down) / (2 * h * p[j]))
    return np.column_stack(out)


def test_gradient_matches_finite_differences(cdnow_rfm):
    x, t_x, T = _data(cdnow_rfm)
    p = np.array(list(PUBLISHED.values()))
    grad = np.column_stack(paretonbd.loglik_grad(*p, x, t_x, T))
    fd = _finite_difference(p, x, t_x, T)
    assert np.max(np.abs(grad - fd) / (1 + np.abs(grad))) < 1e-7
    ll, grad2 = paretonbd.loglik_and_grad(*p, x, t_x, T)
    np.testing.assert_array_equal(ll, paretonbd.loglik(*p, x, t_x, T))
    np.testing.assert_array_equal(np.column_stack(grad2), grad)


@pytest.mark.parametrize(
    "p",
    [
        (1e-3, 1e3, 1e3, 1e-3),
        (1e3, 1e-3, 1e-3, 1e3),
        (1.0, 1.0, 1.0, 1.0),
        (50.0, 0.01, 2.0, 300.0),
    ],
)
def test_gradient_matches_finite_differences_at_extremes(p):
    x = np.array([0, 1, 5, 50, 500, 500], dtype=float)
    T = np.array([0.5, 39.0, 39.0, 1e3, 1e4, 1e4])
    t_x = np.array([0.0, 1.0, 38.0, 10.0, 1e-3, 9e3])
    p = np.array(p)
    grad = np.column_stack(paretonbd.loglik_grad(*p, x, t_x, T))
    fd = _finite_difference(p, x, t_x, T, h=1e-5)
    # relative to the size of the terms of each derivative (p * grad is scale-free)
    scale = 1 + np.abs(grad * p)
    assert np.max(np.abs((grad - fd) * p) / scale) < 1e-5


@pytest.mark.parametrize(
    "p", [(0.553, 10.578, 0.606, 11.669), (1e-3, 1e3, 1e3, 1e-3), (50.0, 0.01, 2.0, 300.0)]
)
def test_hessian_matches_finite_differences_of_the_gradient(p):
    x = np.array([0, 1, 5, 50, 500, 500], dtype=float)
    T = np.array([0.5, 39.0, 39.0, 1e3, 1e4, 1e4])
    t_x = np.array([0.0, 1.0, 38.0, 10.0, 1e-3, 9e3])
    p = np.array(p)
    grad, hess = paretonbd.loglik_grad_and_hessian(*p, x, t_x, T)
    np.testing.assert_allclose(
        grad, np.column_stack(paretonbd.loglik_grad(*p, x, t_x, T)), rtol=1e-12, atol=1e-12
    )
    fd = np.empty_like(hess)
    for j in range(4):
        e = np.zeros(4)
        e[j] = 1e-5 * p[j]
        up = np.column_stack(paretonbd.loglik_grad(*(p + e), x, t_x, T))
        down = np.column_stack(paretonbd.loglik_grad(*(p - e), x, t_x, T))
        fd[:, :, j] = (up - down) / (2e-5 * p[j])
    scaled = np.outer(p, p)
    err = np.abs((hess - fd) * scaled) / (1 + np.abs(hess * scaled))
    assert err.max() < 1e-6
    np.testing.assert_allclose(hess, np.swapaxes(hess, 1, 2), rtol=1e-12, atol=0)


def test_standard_errors_from_the_analytic_hessian(cdnow_rfm, monkeypatch):
    analytic = ParetoNBD(penalizer=0.1).fit(cdnow_rfm)
    # the base class falls back to central differences of the gradient without the hook
    without = dataclasses.replace(ParetoNBD.formulas, loglik_value_grad_and_hessian=None)
    monkeypatch.setattr(ParetoNBD, "formulas", without)
    numeric = ParetoNBD(penalizer=0.1).fit(cdnow_rfm)
    np.testing.assert_allclose(analytic.cov_.to_numpy(), numeric.cov_.to_numpy(), rtol=1e-6)


EXTREME = [1e-3, 1.0, 1e3]


@pytest.mark.parametrize("r", EXTREME)
@pytest.mark.parametrize("alpha", EXTREME)
def test_extremes_are_finite_without_warnings(r, alpha):
    x = np.array([0, 1, 10, 500], dtype=float)
    T = np.array([1e-3, 1.0, 39.0, 1e4])
    xx, TT, ff = (v.ravel() for v in np.meshgrid(x, T, [0.0, 0.5, 1.0], indexing="ij"))
    t_x = np.where(xx > 0, ff * TT, 0.0)
    t = np.array([1e-3, 1.0, 39.0, 1e4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for s, beta in itertools.product(EXTREME, repeat=2):
            ll = paretonbd.loglik(r, alpha, s, beta, xx, t_x, TT)
            grad = np.column_stack(paretonbd.loglik_grad(r, alpha, s, beta, xx, t_x, TT))
            alive = paretonbd.probability_alive(r, alpha, s, beta, xx, t_x, TT)
            cond = paretonbd.expected_purchases(r, alpha, s, beta, t[:, None], xx, t_x, TT)
            new = paretonbd.expected_purchases_new(r, alpha, s, beta, t)
            pmf = paretonbd.probability_of_purchases(r, alpha, s, beta, x[:, None], t)
            for arr in (ll, grad, alive, cond, new, pmf):
                assert np.all(np.isfinite(arr))
            assert np.all((alive >= 0) & (alive <= 1))
            assert np.all((pmf >= 0) & (pmf <= 1 + 1e-12))
            assert np.all(cond >= 0) and np.all(new >= 0)


def _mp_loglik(r, alpha, s, beta, x, t_x, T):
    with mp.workdps(60):
        r, alpha, s, beta, x, t_x, T = (mp.mpf(float(v)) for v in (r, alpha, s, beta, x, t_x, T))
        alive = (alpha + T) ** (-(r + x)) * (beta + T) ** (-s)
        dead = s * mp.quad(
            lambda y: (alpha + y) ** (-(r + x)) * (beta + y) ** (-(s + 1)),
            [t_x, t_x + (T - t_x) / 100, T],
        )
        return float(
            mp.loggamma(r + x)
            - mp.loggamma(r)
            + r * mp.log(alpha)
            + s * mp.log(beta)
            + mp.log(alive + dead)
        )


@pytest.mark.parametrize(
    "case",
    [
        ((1e-3, 1e-3, 1e3, 1.0), 0.0, 0.0, 1.0),
        ((1e-3, 1e-3, 1.0, 1.0), 500.0, 39.0, 39.0),
        ((1e-3, 1e-3, 1e3, 1e-3), 1.0, 39.0, 39.0),
    ],
)
def test_lifetimes_fails_where_we_do_not(lifetimes, case):
    """Documentation: lifetimes' 2F1 form gives NaN at these points; ours is right."""
    p, x, t_x, T = case
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        ref = lifetimes.ParetoNBDFitter._conditional_log_likelihood(
            p, np.array([x]), np.array([t_x]), np.array([T])
        )
    assert np.isnan(ref).all()
    ours = paretonbd.loglik(*p, x, t_x, T)
    assert float(ours) == pytest.approx(_mp_loglik(*p, x, t_x, T), rel=1e-10)


def test_simulated_counts_match_model_expectation():
    pn = ParetoNBD.from_params(**PUBLISHED)
    sim = pn.simulate(400_000, 39.0, random_state=3)
    assert sim["frequency"].mean() == pytest.approx(pn.expected_purchases_new(39.0), rel=0.01)
    for k in (0, 1, 5):
        assert (sim["frequency"] == k).mean() == pytest.approx(
            pn.probability_of_purchases(k, 39.0), abs=3e-3
        )
    assert (sim["recency"] <= sim["T"]).all()
    assert (sim.loc[sim["frequency"] == 0, "recency"] == 0).all()


def test_parameter_recovery_from_simulation():
    truth = dict(r=0.8, alpha=8.0, s=1.2, beta=20.0)
    rng = np.random.default_rng(7)
    T = rng.choice(np.arange(20.0, 80.0), 50_000)  # whole weeks: many identical rows
    sim = ParetoNBD.from_params(**truth).simulate(50_000, T, random_state=11)
    sim["recency"] = np.floor(sim["recency"] * 7) / 7  # recorded in days
    fit = ParetoNBD().fit(sim)
    for name, value in truth.items():
        z = (fit.params_[name] - value) / fit.se_[name]
        assert abs(z) < 4, (name, fit.params_[name], fit.se_[name])
        assert fit.params_[name] == pytest.approx(value, rel=0.25)


def test_save_load_roundtrip(fitted, tmp_path):
    path = tmp_path / "pnbd.json"
    fitted.save(path)
    back = ParetoNBD.load(path)
    np.testing.assert_array_equal(back.params_, fitted.params_)
    assert back.loglik_ == fitted.loglik_


def _exponential_lifetime_alive(r, alpha, mu, x, t_x, T):
    """P(alive) when every lifetime is exponential of rate mu (s, beta -> inf, s/beta = mu)."""
    with mp.workdps(30):
        alive = mp.exp(-mu * T) * (alpha + T) ** (-(r + x))
        dead = mu * mp.quad(lambda y: mp.exp(-mu * y) * (alpha + y) ** (-(r + x)), [t_x, T])
        return float(alive / (alive + dead))


@pytest.mark.parametrize("mu", [0.05, 0.5])
def test_probability_alive_tends_to_the_exponential_lifetime_limit(mu):
    # s = 1e14 once gave 0.18 and s = 1e20 gave 0.5 (s log(beta) rounding); the gap to
    # the limit is O(1/s)
    limit = _exponential_lifetime_alive(4.0, 4.0, mu, 3.0, 20.0, 39.0)
    for s in (1e6, 1e10, 1e14, 1e20, 1e100):
        got = paretonbd.probability_alive(4.0, 4.0, s, s / mu, 3.0, 20.0, 39.0)
        assert got == pytest.approx(limit, rel=max(1e-12, 1e3 / s)), s
    # and at a moderate s against mpmath's own integral of the Pareto/NBD
    s, beta = mp.mpf(100), mp.mpf(100) / mu
    with mp.workdps(30):
        alive = mp.mpf(43) ** -7 * (1 + 39 / beta) ** -s
        dead = s / beta * mp.quad(lambda y: (4 + y) ** -7 * (1 + y / beta) ** (-s - 1), [20, 39])
        want = float(alive / (alive + dead))
    assert paretonbd.probability_alive(4.0, 4.0, 100.0, 100.0 / mu, 3.0, 20.0, 39.0) == (
        pytest.approx(want, rel=1e-12))


@pytest.mark.parametrize("name", ["r", "alpha", "s", "beta"])
@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_non_finite_parameters_are_named(name, value):
    params = {"r": 4.0, "alpha": 4.0, "s": 2.0, "beta": 40.0, name: value}
    with pytest.raises(ValueError, match=f"parameter {name} must be finite and positive"):
        paretonbd.probability_alive(**params, x=3.0, t_x=20.0, T=39.0)


def _exponential_lifetime_pmf(r, alpha, mu, n, t):
    """P(X(t) = n) when every lifetime is exponential of rate mu (s, beta -> inf)."""
    with mp.workdps(30):
        def nbd(tau):
            return (mp.gamma(r + n) / (mp.gamma(r) * mp.factorial(n))
                    * (alpha / (alpha + tau)) ** r * (tau / (alpha + tau)) ** n)
        dead = mu * mp.quad(lambda tau: mp.exp(-mu * tau) * nbd(tau), [0, t])
        return float(mp.exp(-mu * t) * nbd(t) + dead)


@pytest.mark.parametrize("mu", [0.05, 0.5])
def test_probability_of_purchases_tends_to_the_exponential_lifetime_limit(mu):
    # the "dead" term carried s log(beta) - (s+1) log(beta + tau): s = 1e14 gave
    # P(X=0) = 0.43 where the limit is 0.65, and s = 1e18 probabilities above 1
    r, alpha, t = 0.55, 10.6, 39.0
    n = np.arange(6)
    limit = np.array([_exponential_lifetime_pmf(r, alpha, mu, int(k), t) for k in n])
    for s in (1e6, 1e10, 1e14, 1e18, 1e100):
        got = paretonbd.probability_of_purchases(r, alpha, s, s / mu, n, t)
        np.testing.assert_allclose(got, limit, rtol=max(1e-10, 1e3 / s), err_msg=str(s))
    # at a moderate s against mpmath's own integral of the Pareto/NBD, eq. (3-4) of [3]
    s, beta = 100.0, 100.0 / mu
    with mp.workdps(30):
        want = []
        for k in n:
            k = int(k)
            coef = mp.gamma(r + k) / (mp.gamma(r) * mp.factorial(k))
            alive = coef * (alpha / (alpha + t)) ** r * (t / (alpha + t)) ** k * (
                1 + t / beta) ** -s
            dead = coef * alpha ** r * s / beta * mp.quad(
                lambda tau, k=k: tau**k * (alpha + tau) ** (-r - k) * (1 + tau / beta) ** (-s - 1),
                [0, t])
            want.append(float(alive + dead))
    np.testing.assert_allclose(paretonbd.probability_of_purchases(r, alpha, s, beta, n, t),
                               want, rtol=1e-10)


def _day_rows(n, seed, params=(0.553, 74.0, 0.606, 81.7)):
    """Distinct (x, t_x, T) rows of ``n`` simulated customers in whole days over two
    years (the Bayesian fast path's 1M benchmark data, smaller), with their counts."""
    rng = np.random.default_rng(seed)
    age = rng.integers(0, 731, n).astype(float)
    u = rng.random(n)  # time of day of the first purchase
    sim = ParetoNBD.from_params(**dict(zip(("r", "alpha", "s", "beta"), params, strict=True)))
    sim = sim.simulate(n, age + 1.0 - u, random_state=rng)
    x = sim["frequency"].to_numpy(float)
    t_x = np.where(x > 0, np.minimum(np.floor(u + sim["recency"].to_numpy(float)), age), 0.0)
    rows, w = np.unique(np.column_stack([x, t_x, age]), axis=0, return_counts=True)
    return (*rows.T, w.astype(float))


GRID_POINTS = [
    (0.553, 74.0, 0.606, 81.7),  # the simulation's parameters
    (0.3, 20.0, 2.0, 300.0),
    (2.0, 200.0, 0.2, 10.0),
    (0.55, 1.0, 0.6, 2.0),  # scales near the grid's reference (1/1000 of 730 days)
    (0.55, 5000.0, 30.0, 5000.0),
    (5.0, 74.0, 5.0, 74.0),  # alpha = beta, r + s above the accuracy bound's 2
]


@pytest.mark.parametrize("point", GRID_POINTS)
def test_grid_quadrature_equals_the_adaptive_one(point):
    """The fixed grid quadrature (quadrature_grid, the Bayesian fast path's) gives the
    log-likelihood of the adaptive quadrature per row to 1e-11, on day-level rows (t_x
    = T and T = 0 among them) and on CDNOW-like continuous times, without warnings."""
    x, t_x, T, w = _day_rows(20_000, 3)
    assert np.any((t_x == T) & (x > 0)) and np.any(T == 0)
    rng = np.random.default_rng(4)
    T2 = rng.uniform(0, 78, 500).round(3)
    x2 = rng.poisson(2, 500).astype(float)
    t2 = np.where(x2 > 0, T2 * rng.random(500), 0.0)
    for cols in ((x, t_x, T), (x2, t2, T2)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            grid = paretonbd.quadrature_grid(*cols)
            ours = paretonbd.loglik(*point, *cols, grid=grid)
        ref = paretonbd.loglik(*point, *cols)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-11)


def test_grid_quadrature_of_one_row_and_of_rows_without_a_dead_term():
    """Degenerate grids: one customer; only customers seen once at T = t_x (no panel,
    only the dummy one)."""
    p = GRID_POINTS[0]
    for cols in (([3.0], [20.0], [50.0]), ([0.0, 2.0], [0.0, 9.0], [0.0, 9.0])):
        cols = tuple(np.asarray(c) for c in cols)
        grid = paretonbd.quadrature_grid(*cols)
        np.testing.assert_allclose(paretonbd.loglik(*p, *cols, grid=grid),
                                   paretonbd.loglik(*p, *cols), rtol=0, atol=1e-12)


def test_grid_quadrature_in_jax_value_and_gradient():
    """With JAX ops the grid quadrature gives the numpy value, and JAX's gradient of the
    weighted total equals the module's exact gradient (loglik_grad) to 1e-8 relative."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from clvmodels._math import jax_ops

    x, t_x, T, w = _day_rows(20_000, 5)
    grid = paretonbd.quadrature_grid(x, t_x, T)
    ops = jax_ops()

    def total(theta):
        return (w * paretonbd.loglik(*theta, x, t_x, T, ops=ops, grid=grid)).sum()

    for point in GRID_POINTS[:3]:
        value, grad = jax.jit(jax.value_and_grad(total))(jnp.asarray(point))
        assert float(value) == pytest.approx(w @ paretonbd.loglik(*point, x, t_x, T),
                                             rel=1e-13)
        exact = [w @ g for g in paretonbd.loglik_grad(*point, x, t_x, T)]
        np.testing.assert_allclose(np.asarray(grad), exact, rtol=1e-8)


def test_segmented_reverse_cumulative_logsumexp_and_logaddexp_take():
    """The two ops the grid quadrature adds, numpy and JAX (values and gradients): a
    reverse log-sum-exp restarted at each segment's end, and logaddexp of two lookups,
    against direct sums."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from clvmodels._math import NUMPY, jax_ops

    rng = np.random.default_rng(6)
    values = rng.normal(0, 30, 200)
    ends = rng.random(200) < 0.1
    ends[-1] = True
    stops = np.flatnonzero(ends)
    want = np.array([np.logaddexp.reduce(values[i : stops[stops >= i][0] + 1])
                     for i in range(200)])
    np.testing.assert_allclose(NUMPY.reverse_cumlogsumexp(values, ends), want, rtol=1e-13)
    ops = jax_ops()
    got = jax.jit(ops.reverse_cumlogsumexp)(jnp.asarray(values), jnp.asarray(ends))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-13)
    a, b = rng.normal(0, 5, 30), rng.normal(0, 5, 40)
    ia, ib = rng.integers(0, 30, 500), rng.integers(0, 40, 500)
    g = rng.random(500)
    np.testing.assert_allclose(NUMPY.logaddexp_take(a, b, ia, ib),
                               np.logaddexp(a[ia], b[ib]), rtol=1e-15)

    def f(a, b, take):
        return (g * take(a, b)).sum()

    ours = jax.value_and_grad(lambda a, b: f(a, b, lambda a, b: ops.logaddexp_take(
        a, b, jnp.asarray(ia), jnp.asarray(ib))), argnums=(0, 1))(jnp.asarray(a), jnp.asarray(b))
    ref = jax.value_and_grad(lambda a, b: f(a, b, lambda a, b: jnp.logaddexp(a[ia], b[ib])),
                             argnums=(0, 1))(jnp.asarray(a), jnp.asarray(b))
    assert float(ours[0]) == pytest.approx(float(ref[0]), rel=1e-14)
    for mine, theirs in zip(ours[1], ref[1], strict=True):
        np.testing.assert_allclose(np.asarray(mine), np.asarray(theirs), rtol=1e-12, atol=1e-15)
