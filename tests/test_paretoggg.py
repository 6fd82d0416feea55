"""Pareto/GGG: its pieces against closed forms and mpmath, the sampler against known
distributions, recovery on simulated data, and BTYDplus' grocery holdout."""

from __future__ import annotations

from pathlib import Path

import mpmath as mp
import numpy as np
import pandas as pd
import pytest

import clvmodels as cm
from clvmodels.bayes import paretoggg as pg
from clvmodels.bayes.paretoggg import ParetoGGG
from clvmodels.errors import DataError, NotFittedError

GROCERY = Path(__file__).resolve().parents[2] / "shared" / "data" / "grocery_elog.csv"
# BTYDplus (Platzer & Reutterer 2016; BTYDplus demo 'pareto-ggg'): grocery holdout
PUBLISHED_HOLDOUT = 3815
ACTUAL_HOLDOUT = 3389
TOLERANCE = 0.04  # 4 seeds of 800 sweeps: 3771-3893 (mean 3838)


def test_log_gamma_sf_matches_mpmath_including_far_tails():
    mp.mp.dps = 30
    for k, rate, d in [(0.5, 1.0, 0.3), (3.0, 3.0, 2.0), (50.0, 50.0, 3.0), (2.0, 4.0, 300.0),
                       (0.2, 1.0, 900.0)]:
        ref = float(mp.log(mp.gammainc(k, rate * d, mp.inf, regularized=True)))
        assert pg.log_gamma_sf(k, rate, d) == pytest.approx(ref, rel=1e-3 if d > 100 else 1e-12)


def test_probability_alive_is_the_exponential_closed_form_at_k_1():
    lam, mu = np.array([0.3, 2.0, 0.05]), np.array([0.02, 0.5, 1.0])
    t_x, T = np.array([5.0, 1.0, 0.0]), np.array([30.0, 10.0, 40.0])
    alive = np.exp(-lam * (T - t_x) - mu * T)
    dead = mu * np.exp(lam * t_x) * (np.exp(-(lam + mu) * t_x) - np.exp(-(lam + mu) * T)) / (
        lam + mu)
    np.testing.assert_allclose(pg.probability_alive(1.0, lam, mu, t_x, T), alive / (alive + dead),
                               rtol=1e-10)


def test_slice_sampler_draws_the_target_distribution():
    # 4000 independent chains of a Gamma(2, 5) truncated to (0.1, 0.8), 30 steps each
    rng = np.random.default_rng(0)
    n = 4000

    def logf(v, rows):
        return np.log(v) - 5.0 * v

    draws = pg._slice(logf, np.full(n, 0.5), np.full(n, 0.3), 0.1, 0.8, rng, 30)
    ref = np.random.default_rng(1).gamma(2.0, 0.2, 200_000)
    ref = ref[(ref > 0.1) & (ref < 0.8)]
    assert draws.mean() == pytest.approx(ref.mean(), abs=4 * ref.std() / n**0.5)
    assert draws.std() == pytest.approx(ref.std(), rel=0.05)


def test_simulate_at_k_1_is_the_pareto_nbd():
    # k ~ Gamma(1e6, 1e6) is 1: Poisson purchasing, so the counts follow the Pareto/NBD
    rng = np.random.default_rng(2)
    n, T = 100_000, 39.0
    x, t_x, litt = pg.simulate(1e6, 1e6, 0.55, 10.5, 0.6, 11.7, np.full(n, T), rng)
    expected = cm.ParetoNBD.from_params(r=0.55, alpha=10.5, s=0.6,
                                        beta=11.7).expected_purchases_new(T)
    assert x.mean() == pytest.approx(expected, abs=4 * x.std() / n**0.5)
    assert ((t_x <= T) & ((x > 0) | (t_x == 0))).all() and np.isfinite(litt).all()


def test_future_purchases_memoryless_and_regular():
    rng = np.random.default_rng(3)
    n = 50_000
    # k = 1 and immortal: Poisson(lambda h) whatever the history
    c = pg.future_purchases(1.0, 0.7, np.inf, np.full(n, 2.0), 10.0, 20.0, rng)
    assert c.mean() == pytest.approx(14.0, abs=4 * np.sqrt(14.0 / n))
    # very regular (k = 400) weekly buyer, last purchase 0.5 weeks ago: ~20 in 20 weeks
    c = pg.future_purchases(400.0, 1.0, np.inf, np.full(n, 9.5), 10.0, 20.0, rng)
    assert abs(c.mean() - 20.0) < 0.6
    # dead before T: nothing
    assert pg.future_purchases(2.0, 1.0, 9.0, 5.0, 10.0, 20.0, rng).sum() == 0


def test_contract_errors_and_save_load(tmp_path):
    rfm = pd.DataFrame({"frequency": [0, 3], "recency": [0.0, 5.0], "T": [10.0, 10.0]})
    with pytest.raises(DataError, match="litt"):
        ParetoGGG().fit(rfm)
    with pytest.raises(NotFittedError):
        ParetoGGG().probability_alive(rfm)
    rng = np.random.default_rng(4)
    x, t_x, litt = pg.simulate(4.5, 1.5, 5.0, 10.0, 0.8, 12.0, np.full(60, 20.0), rng)
    sim = pd.DataFrame({"frequency": x, "recency": t_x, "T": 20.0, "litt": litt})
    model = ParetoGGG(draws=5, tune=5, thin=1, chains=1, random_state=0).fit(sim)
    again = ParetoGGG(draws=5, tune=5, thin=1, chains=1, random_state=0).fit(sim)
    np.testing.assert_array_equal(model.idata_.posterior["k"], again.idata_.posterior["k"])
    path = tmp_path / "pggg.nc"
    model.save(path)
    back = ParetoGGG.load(path)
    pd.testing.assert_series_equal(back.probability_alive(sim), model.probability_alive(sim))
    # any subset of the fitted customers, in any order, by the index
    part = sim.iloc[[5, 0, 3]]
    pd.testing.assert_series_equal(model.probability_alive(part),
                                   model.probability_alive(sim).iloc[[5, 0, 3]])
    with pytest.raises(DataError, match="customers the model was fitted on"):
        model.probability_alive(sim.rename(index=lambda i: i + 1000))
    # the holdout harness predicts each holdout length's customers apart (seeded)
    cal = sim.assign(frequency_holdout=0, duration_holdout=np.where(sim.index % 2, 10.0, 20.0))
    pred = cm.holdout_predictions(cal, {"Pareto/GGG": model})[("Pareto/GGG", "purchases")]
    for h, part in cal.groupby("duration_holdout"):
        np.testing.assert_array_equal(pred[part.index], model.expected_purchases(h, part))


@pytest.mark.slow
def test_recovery_from_simulated_data():
    # BTYDplus' pggg.GenerateData example: mean regularity t / gamma = 3, mean rate 0.5
    true = dict(t=4.5, gamma=1.5, r=5.0, alpha=10.0, s=0.8, beta=12.0)
    rng = np.random.default_rng(5)
    n = 800
    x, t_x, litt = pg.simulate(*true.values(), np.full(n, 52.0), rng)
    sim = pd.DataFrame({"frequency": x, "recency": t_x, "T": 52.0, "litt": litt})
    model = ParetoGGG(draws=40, tune=120, thin=2, chains=1, random_state=6).fit(sim)
    post = model.idata_.posterior
    mean_k = float((post["t"] / post["gamma"]).mean())
    mean_rate = float((post["r"] / post["alpha"]).mean())
    assert mean_k == pytest.approx(3.0, rel=0.2)
    assert mean_rate == pytest.approx(0.5, rel=0.1)
    # customer-level regularity tracks the truth: the sample's mean k is recovered too
    assert float(post["k"].mean()) == pytest.approx(3.0, rel=0.2)


@pytest.fixture(scope="module")
def grocery():
    tx = pd.read_csv(GROCERY)
    return cm.calibration_holdout(tx, customer="cust", date="date", calibration_end="2006-12-31",
                                  observation_end="2007-12-30", unit="W", litt=True)


@pytest.mark.slow
def test_grocery_holdout_close_to_btydplus(grocery):
    assert grocery["frequency_holdout"].sum() == ACTUAL_HOLDOUT
    model = ParetoGGG(draws=20, tune=100, thin=5, chains=1, random_state=1).fit(grocery)
    total = model.expected_purchases(52.0, grocery, random_state=1).sum()
    assert total == pytest.approx(PUBLISHED_HOLDOUT, rel=TOLERANCE)
    # regular buyers: the posterior puts the mean regularity well above Poisson (k = 1)
    post = model.idata_.posterior
    assert float((post["t"] / post["gamma"]).mean()) > 2.0


def test_dropout_pair_is_the_gamma_mixture_of_the_lifetimes():
    # (s, beta) with every mu integrated out: an active customer's P(tau > T) and a dead
    # one's density of tau, each a Gamma(s, beta) mixture over mu (quadrature)
    from scipy import integrate, stats

    T = np.array([30.0, 52.0, 10.0, 40.0])
    tau = np.array([45.0, 20.0, 3.0, 80.0])  # customers 1 and 2 dead
    s, beta = 0.7, 6.0
    ref = 0.0
    for Ti, ti in zip(T, tau, strict=True):
        def f(m, Ti=Ti, ti=ti):
            lik = np.exp(-m * Ti) if ti > Ti else m * np.exp(-m * ti)
            return stats.gamma.pdf(m, s, scale=1.0 / beta) * lik
        ref += np.log(integrate.quad(f, 0.0, np.inf, limit=200)[0])
    for jacobian in (False, True):
        h, b = pg._hyper_prior_exponent(jacobian)
        got = pg.log_dropout_pair(np.log([s]), np.log([beta]), T, tau, jacobian)[0]
        assert got - h * np.log(s * beta) + b * (s + beta) == pytest.approx(ref, rel=1e-8)


def _joint_draws(rng, n_rep, n):
    # replicates of (shape, rate) ~ Gamma(2, 2) each, values ~ Gamma(shape, rate),
    # Poisson counts of rate 3 v: a joint whose marginals of (shape, rate) are known
    shape, rate = rng.gamma(2.0, 0.5, n_rep), rng.gamma(2.0, 0.5, n_rep)
    v = np.maximum(rng.gamma(shape[:, None], 1.0 / rate[:, None], (n_rep, n)), 1e-12)
    return shape, rate, v, rng.poisson(3.0 * v)


def test_scale_and_spread_moves_keep_a_known_target(monkeypatch):
    # The moves alone, applied to exact draws of the joint, must leave the known Gamma(2, 2)
    # marginals of shape and rate unchanged (Liu & Sabatti's invariance; a wrong Jacobian
    # or Haar measure shifts them by several standard errors)
    from scipy import special as sp

    monkeypatch.setattr(pg, "_HYPER_PRIOR", 2.0)  # log-space target of Gamma(2, 2)
    h, b = pg._hyper_prior_exponent(True)
    rng = np.random.default_rng(7)
    n_rep, n = 4000, 4
    shape, rate, v, x = _joint_draws(rng, n_rep, n)
    moved = np.empty((n_rep, 2))
    for i in range(n_rep):
        def lik(w, i=i):
            return x[i] * np.log(w) - 3.0 * w

        vi, ri = pg.scale_move(v[i], rate[i], lik, h, b, rng, steps=4)
        vi, si, ri = pg.spread_move(vi, shape[i], ri, lik, True, rng, steps=4)
        moved[i] = si, ri
    mean, sd = sp.digamma(2.0) - np.log(2.0), np.sqrt(sp.polygamma(1, 2.0))
    logs = np.log(moved)
    assert np.abs(logs.mean(axis=0) - mean).max() < 4 * sd / n_rep**0.5
    np.testing.assert_allclose(logs.std(axis=0), sd, rtol=0.05)
    # and they do move: most replicates changed
    assert (np.abs(logs - np.log(np.c_[shape, rate])) > 1e-12).mean() > 0.5


def test_tau_with_mu_integrated_out_draws_its_conditional():
    # one customer copied 5,000 times: the share alive and the mean lifetime of the dead
    # against quadrature of S(y - t_x) times the Pareto (Lomax) lifetime density
    from scipy import integrate

    n, k, lam, s, beta, t_x, T = 5_000, 2.5, 0.4, 0.6, 8.0, 10.0, 30.0
    rng = np.random.default_rng(8)
    tau = pg._draw_tau_pareto(np.full(n, k), np.full(n, lam), s, beta, np.full(n, 40.0),
                              np.full(n, t_x), np.full(n, T), rng)

    def dead(y, power=0):
        sf = np.exp(pg.log_gamma_sf(k, k * lam, y - t_x))
        return y**power * sf * s * beta**s / (beta + y) ** (s + 1)

    alive = np.exp(pg.log_gamma_sf(k, k * lam, T - t_x)) * (beta / (beta + T)) ** s
    d0 = integrate.quad(dead, t_x, T)[0]
    p = alive / (alive + d0)
    assert (tau > T).mean() == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / n))
    died = tau[tau <= T]
    assert died.mean() == pytest.approx(integrate.quad(dead, t_x, T, args=(1,))[0] / d0,
                                        abs=4 * died.std() / died.size**0.5)
    assert (died > t_x).all()
