"""MBG/CNBD-k and BG/CNBD-k: BTYDplus' values, k = 1 = (M)BG/NBD, grocery, CDNOW, recovery."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import clvmodels as cm
from clvmodels.errors import DataError, NotFittedError
from clvmodels.models import bgnbd, cnbd, mbgnbd

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# BTYDplus' own checks of its C++ code (src/slice-sampling.cpp): k, r, alpha, a, b
BTYDPLUS = (3, 0.5, 2.0, 0.3, 0.6)
MBG_CDNOW = {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}  # REFERENCE.md
BG_CDNOW = {"r": 0.2425945, "alpha": 4.4136019, "a": 0.7929199, "b": 2.4258881}
VARIANTS = [(cm.MBGCNBD, True, mbgnbd), (cm.BGCNBD, False, bgnbd)]


def test_loglik_and_pmf_match_btydplus_reference_values():
    x, t_x, T, litt = (np.array(v, float) for v in ([3, 4], [12, 12], [14, 14], [3, 3]))
    ll = cnbd.loglik(*BTYDPLUS, x, t_x, T, litt, dropout_at_zero=False)
    np.testing.assert_allclose(ll, [-10.42500, -12.22396], atol=5e-6)
    assert round(cnbd.probability_of_purchases(*BTYDPLUS, 2, 10.0, dropout_at_zero=False), 5) \
        == 0.05669
    assert round(cnbd.probability_of_purchases(*BTYDPLUS, 2, 10.0), 5) == 0.04548


@pytest.mark.parametrize("dropout_at_zero", [True, False])
def test_pmf_sums_to_one_and_its_mean_is_the_expectation(dropout_at_zero):
    n = np.arange(3000.0)
    for t in (0.5, 10.0, 200.0):
        pmf = cnbd.probability_of_purchases(*BTYDPLUS, n, t, dropout_at_zero=dropout_at_zero)
        assert pmf.sum() == pytest.approx(1.0, abs=1e-10)
        mean = cnbd.expected_purchases_new(*BTYDPLUS, t, dropout_at_zero=dropout_at_zero)
        assert (n * pmf).sum() == pytest.approx(float(mean), rel=1e-9)


@pytest.mark.parametrize(("cls", "daz", "closed"), VARIANTS)
def test_k1_is_the_mbgnbd_and_the_bgnbd(cls, daz, closed):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 30, 200).astype(float)
    T = rng.uniform(0.1, 60, 200)
    t_x = np.where(x > 0, T * rng.uniform(0, 1, 200), 0.0)
    p = tuple(MBG_CDNOW.values())
    np.testing.assert_allclose(cnbd.loglik(1, *p, x, t_x, T, 0 * x, dropout_at_zero=daz),
                               closed.loglik(*p, x, t_x, T), rtol=1e-12)
    np.testing.assert_allclose(
        np.column_stack(cnbd.loglik_grad(1, *p, x, t_x, T, 0 * x, dropout_at_zero=daz)),
        np.column_stack(closed.loglik_grad(*p, x, t_x, T)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cnbd.probability_alive(1, *p, x, t_x, T, dropout_at_zero=daz),
                               closed.probability_alive(*p, x, t_x, T), rtol=1e-12)
    times = np.array([0.5, 10.0, 52.0, 500.0])
    np.testing.assert_allclose(
        cnbd.expected_purchases_path(1, *p, times, x, t_x, T, dropout_at_zero=daz),
        closed.expected_purchases_path(*p, times, x, t_x, T), rtol=1e-10)
    n = np.arange(10.0)[:, None]
    np.testing.assert_allclose(
        cnbd.probability_of_purchases(1, *p, n, times, dropout_at_zero=daz),
        closed.probability_of_purchases(*p, n, times), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("dropout_at_zero", [True, False])
@pytest.mark.parametrize("k", [2, 5])
def test_gradient_matches_central_differences(k, dropout_at_zero):
    rng = np.random.default_rng(k)
    x = np.r_[0.0, 0, rng.integers(1, 40, 60)]
    T = np.r_[0.0, 20, rng.uniform(1, 80, 60)]
    t_x = np.where(x > 0, T * rng.uniform(0, 1, x.size), 0.0)
    t_x[-1] = T[-1]
    litt = np.where(x > 0, rng.normal(0, 2, x.size), 0.0)
    for p in itertools.product((0.05, 1.0, 20.0), (0.1, 5.0), (0.3, 3.0), (0.5, 8.0)):
        p = np.array(p)
        grad = np.column_stack(
            cnbd.loglik_grad(k, *p, x, t_x, T, litt, dropout_at_zero=dropout_at_zero)) * p
        for j in range(4):
            h = np.zeros(4)
            h[j] = 1e-6
            up, down = (cnbd.loglik(k, *(p * np.exp(s * h)), x, t_x, T, litt,
                                    dropout_at_zero=dropout_at_zero) for s in (1, -1))
            np.testing.assert_allclose((up - down) / 2e-6, grad[:, j], rtol=1e-5, atol=1e-6)


def _simulate_with_holdout(k, r, alpha, a, b, T, t, rng, dropout_at_zero):
    """An independent simulator: purchase times one by one up to T + t; returns the RFM
    frame at T, the purchases in (T, T + t] and whether each customer was active at T."""
    n = T.size
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    alive = ~(rng.random(n) < p) if dropout_at_zero else np.ones(n, bool)
    alive_at_T = alive.copy()
    now = np.zeros(n)
    x, t_x, litt, future = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    while alive.any():
        gap = rng.gamma(k, 1.0 / lam)
        now = np.where(alive, now + gap, now)
        buy = alive & (now <= T + t)
        cal = buy & (now <= T)
        x += cal
        litt += np.where(cal, np.log(gap), 0.0)
        t_x = np.where(cal, now, t_x)
        future += buy & ~cal
        drop = rng.random(n) < p
        alive_at_T &= ~(cal & drop)
        alive = buy & ~drop
    rfm = pd.DataFrame({"frequency": x, "recency": t_x, "T": T, "litt": litt})
    return rfm, future, alive_at_T


@pytest.mark.parametrize(("cls", "daz", "closed"), VARIANTS)
def test_conditional_expectation_and_alive_match_simulation(cls, daz, closed):
    params = {"k": 3, "r": 0.85, "alpha": 1.45, "a": 0.79, "b": 2.42}
    rng = np.random.default_rng(5)
    T = np.round(rng.uniform(12, 60, 40_000) / 12) * 12
    rfm, future, alive = _simulate_with_holdout(*params.values(), T, 32.0, rng, daz)
    model = cls.from_params(**params)
    expected = model.expected_purchases(32.0, rfm).to_numpy()
    p_alive = model.probability_alive(rfm).to_numpy()
    # by frequency bucket: the exact conditional expectation and P(alive) are unbiased
    bucket = np.minimum(rfm["frequency"].to_numpy(), 6)
    for b in range(7):
        rows = bucket == b
        se = future[rows].std() / np.sqrt(rows.sum())
        assert abs(expected[rows].mean() - future[rows].mean()) < 4 * se + 1e-3, b
        se = alive[rows].std() / np.sqrt(rows.sum())
        assert abs(p_alive[rows].mean() - alive[rows].mean()) < 4 * se + 1e-3, b
    # and the cohort total is the unconditional expectation (law of total expectation)
    unconditional = model.expected_purchases_new(T + 32.0) - model.expected_purchases_new(T)
    assert expected.mean() == pytest.approx(unconditional.mean(), rel=0.02)
    # the simulator in the package draws the same calibration data
    sim = model.simulate(40_000, T, random_state=6)
    for col in ("frequency", "recency", "litt"):
        assert sim[col].mean() == pytest.approx(rfm[col].mean(), rel=0.04), col


@pytest.mark.parametrize(("cls", "daz", "closed"), VARIANTS)
def test_recovers_k_and_parameters_from_simulated_data(cls, daz, closed):
    truth = {"k": 3, "r": 0.85, "alpha": 1.45, "a": 0.79, "b": 2.42}  # BTYDplus' test
    T = np.round(np.random.default_rng(1).uniform(36, 96, 8000) / 12) * 12
    data = cls.from_params(**truth).simulate(8000, T, random_state=2)
    fit = cls().fit(data)
    assert fit.params_["k"] == 3
    z = (fit.params_ - pd.Series(truth)).drop("k") / fit.se_.drop("k")
    assert np.all(np.abs(z) < 4), z
    assert fit.loglik_by_k_.idxmax() == 3 and fit.loglik_ == fit.loglik_by_k_.max()
    fixed = cls(k=3).fit(data)
    pd.testing.assert_series_equal(fixed.params_, fit.params_, rtol=1e-6)


@pytest.fixture(scope="module")
def cdnow_litt():
    tx = cm.datasets.cdnow_transactions(sample=True)
    return cm.rfm_summary(tx, "customer_id", "date", "amount", observation_end="1997-09-30",
                          litt=True)


def test_cdnow_selects_k1_and_reproduces_the_mbgnbd_and_bgnbd(cdnow_litt):
    mbg = cm.MBGCNBD().fit(cdnow_litt)
    assert mbg.params_["k"] == 1 and mbg.loglik_by_k_.idxmax() == 1
    for name, value in MBG_CDNOW.items():
        assert round(mbg.params_[name], 3) == value, name
    assert mbg.loglik_ == pytest.approx(-9582.13, abs=0.01)
    ref = cm.MBGNBD().fit(cdnow_litt)
    np.testing.assert_allclose(mbg.se_.drop("k"), ref.se_, rtol=1e-4)
    bg = cm.BGCNBD().fit(cdnow_litt)
    assert bg.params_["k"] == 1
    np.testing.assert_allclose(bg.params_.drop("k"), list(BG_CDNOW.values()), rtol=1e-5)
    assert bg.loglik_ == pytest.approx(-9582.429, abs=1e-3)


@pytest.fixture(scope="module")
def grocery():
    tx = pd.read_csv(SHARED / "grocery_elog.csv")
    return cm.calibration_holdout(tx, "cust", "date", calibration_end="2006-12-31",
                                  observation_end="2007-12-30", litt=True)


def test_grocery_selects_k2_and_reproduces_btydplus_holdout_total(grocery):
    assert len(grocery) == 1525 and grocery["frequency_holdout"].sum() == 3389  # BTYDplus
    model = cm.MBGCNBD().fit(grocery)
    assert model.params_["k"] == 2
    assert model.loglik_by_k_.idxmax() == 2 and len(model.loglik_by_k_) >= 4
    # BTYDplus' published 3,970 is its bias-corrected approximation, whose total is by
    # construction sum_i E[X(T_i + 52)] - E[X(T_i)] at its estimates: the same here
    T = grocery["T"].to_numpy()
    increments = model.expected_purchases_new(T + 52.0) - model.expected_purchases_new(T)
    assert increments.sum() == pytest.approx(3970, rel=0.01)
    # the exact conditional expectation uses each customer's history: nearer the actual
    exact = model.expected_purchases(52.0, grocery).sum()
    assert abs(exact - 3389) < abs(3970 - 3389)
    # Pareto/NBD on the same data: BTYDplus (via BTYD) published 4,018
    pnbd = cm.ParetoNBD().fit(grocery)
    assert pnbd.expected_purchases(52.0, grocery).sum() == pytest.approx(4018, rel=0.01)
    # the comparison harness takes the new models like any other
    table = cm.compare(grocery, {"MBG/CNBD-k": model, "Pareto/NBD": pnbd})
    assert table.loc["MBG/CNBD-k", "purchases_predicted"] == pytest.approx(exact)
    assert table.loc["MBG/CNBD-k", "purchases_mae"] < table.loc["Pareto/NBD", "purchases_mae"]


def test_apparel_shows_no_regularity_and_k1_wins():
    tx = pd.read_csv(SHARED / "apparel_transactions.csv")
    cal = cm.calibration_holdout(tx, "Id", "Date", "Price", calibration_end="2006-12-31",
                                 litt=True)
    assert cm.estimate_regularity(tx, "Id", "Date").k < 1.2
    model = cm.MBGCNBD().fit(cal)
    assert model.params_["k"] == 1
    ref = cm.MBGNBD().fit(cal)
    np.testing.assert_allclose(model.params_.drop("k"), ref.params_, rtol=1e-5)


def test_clv_with_gamma_gamma_and_save_load(tmp_path, grocery, cdnow_litt):
    model = cm.MBGCNBD().fit(cdnow_litt)
    gg = cm.GammaGamma().fit(cdnow_litt[cdnow_litt["frequency"] > 0])
    clv = cm.customer_lifetime_value(model, gg, cdnow_litt, horizon=52, period=4)
    ref = cm.customer_lifetime_value(cm.MBGNBD().fit(cdnow_litt), gg, cdnow_litt,
                                     horizon=52, period=4)
    np.testing.assert_allclose(clv, ref, rtol=1e-5)
    model.save(tmp_path / "m.json")
    again = cm.MBGCNBD.load(tmp_path / "m.json")
    pd.testing.assert_series_equal(again.params_, model.params_)
    pd.testing.assert_series_equal(again.loglik_by_k_, model.loglik_by_k_)
    fit2 = cm.BGCNBD(k=2).fit(grocery)
    fit2.save(tmp_path / "b.json")
    back = cm.BGCNBD.load(tmp_path / "b.json")
    assert back.k == 2 and back.params_["k"] == 2
    np.testing.assert_allclose(back.probability_alive(grocery), fit2.probability_alive(grocery))


def test_errors_name_the_problem(cdnow_litt):
    plain = cdnow_litt.drop(columns="litt")
    with pytest.raises(DataError, match="litt.*litt=True"):
        cm.MBGCNBD().fit(plain)
    with pytest.raises(DataError, match="litt"):
        cm.MBGCNBD(k=2).fit(plain)
    assert cm.MBGCNBD(k=1).fit(plain).params_["k"] == 1  # k = 1 needs no litt
    bad = cdnow_litt.assign(litt=np.where(cdnow_litt["frequency"] == 0, 1.0, cdnow_litt["litt"]))
    with pytest.raises(DataError, match="0 where frequency is 0"):
        cm.MBGCNBD().fit(bad)
    with pytest.raises(ValueError, match="whole number"):
        cm.MBGCNBD(k=1.5).fit(cdnow_litt)
    with pytest.raises(ValueError, match="whole number"):
        cm.MBGCNBD.from_params(k=0, r=1, alpha=1, a=1, b=1)
    with pytest.raises(NotFittedError):
        cm.BGCNBD().probability_alive(cdnow_litt)


def test_extremes_are_finite_without_warnings():
    x = np.array([0.0, 0, 1, 1, 10, 300])
    t_x = np.array([0.0, 0, 0.5, 1e3, 5, 999])
    T = np.array([0.0, 1e3, 1, 1e3, 10, 1e3])
    litt = np.where(x > 0, 1.0, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k, daz in ((2, True), (4, False)):
            for p in itertools.product((1e-3, 1e3), (1e-3, 1e3), (1e-3, 1e3), (1e-3, 1e3)):
                values = [
                    cnbd.loglik(k, *p, x, t_x, T, litt, dropout_at_zero=daz),
                    *cnbd.loglik_grad(k, *p, x, t_x, T, litt, dropout_at_zero=daz),
                    cnbd.probability_alive(k, *p, x, t_x, T, dropout_at_zero=daz),
                    cnbd.probability_of_purchases(k, *p, np.array([0.0, 1, 300]), 1e3,
                                                  dropout_at_zero=daz),
                ]
                assert all(np.all(np.isfinite(v)) for v in values), (k, p)
            for p in itertools.product((1e-3, 1.0), (1e-3, 10.0), (0.5, 1e3), (0.5, 1e3)):
                e = cnbd.expected_purchases_path(k, *p, np.array([1.0, 1e3]), x, t_x, T,
                                                 dropout_at_zero=daz)
                assert np.all(np.isfinite(e) & (e >= 0)), (k, p)


@pytest.mark.slow
@pytest.mark.parametrize("dropout_at_zero", [True, False])
def test_pytensor_loglik_equals_numpy(cdnow_litt, dropout_at_zero):
    import pytensor
    import pytensor.tensor as pt

    from clvmodels._math import pytensor_ops

    data = tuple(cdnow_litt[c].to_numpy(float) for c in ("frequency", "recency", "T", "litt"))
    theta = pt.dvector("theta")
    f = pytensor.function([theta], cnbd.loglik(
        3, *(theta[i] for i in range(4)), *data, ops=pytensor_ops(),
        dropout_at_zero=dropout_at_zero))
    p = np.array(BTYDPLUS[1:])
    np.testing.assert_allclose(
        f(p), cnbd.loglik(3, *p, *data, dropout_at_zero=dropout_at_zero), rtol=1e-12)


def test_weights_equal_repeated_rows_and_segment_intervals(grocery):
    rows = grocery.iloc[:400]
    twice = pd.concat([rows, rows.iloc[:100]])
    weighted = rows.assign(w=np.r_[np.full(100, 2.0), np.ones(300)])
    a = cm.MBGCNBD().fit(twice)
    b = cm.MBGCNBD().fit(weighted, weights="w")
    pd.testing.assert_series_equal(a.params_, b.params_, rtol=1e-5)
    assert a.loglik_ == pytest.approx(b.loglik_, rel=1e-9)
    seg = grocery.assign(segment=np.where(grocery.index % 2 == 0, "even", "odd"))
    fits = {s: cm.MBGCNBD(k=2).fit(seg[seg["segment"] == s]) for s in ("even", "odd")}
    table = cm.segment_estimates(seg, {"MBG/CNBD-2": fits}, "segment", t=52.0, n_draws=50)
    assert len(table) == 2 and np.isfinite(table.to_numpy(dtype=float)).all()
    assert (table["low"] < table["mean"]).all() and (table["mean"] < table["high"]).all()
