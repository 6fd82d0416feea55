"""Contractual models: SBG and BDW against Fader & Hardie (2007), closed forms against direct
sums, recovery on simulated cohorts, extremes, data forms and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special

import clvmodels as cm
from clvmodels.errors import DataError, NotFittedError
from clvmodels.models import bdw as bdw_mod
from clvmodels.models import sbg as sbg_mod

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def retention():
    return pd.read_csv(SHARED / "sbg_retention.csv", index_col="year")


@pytest.fixture(scope="module")
def fits(retention):
    return {c: cm.SBG().fit(retention[c].loc[:7]) for c in retention.columns}


# ---- published values -------------------------------------------------------------------
@pytest.mark.parametrize("cohort, alpha, beta", [("regular", 0.704, 1.182),
                                                 ("highend", 0.668, 3.806)])
def test_published_estimates(fits, cohort, alpha, beta):
    """Fader & Hardie (2007): years 0-7 give these estimates, to the printed digits."""
    p = fits[cohort].params_
    assert round(p["alpha"], 3) == alpha
    assert round(p["beta"], 3) == beta
    assert fits[cohort].se_.gt(0).all()


def test_loglik_at_start_values(retention):
    """Fader & Hardie's spreadsheet: LL = -2115.5 at alpha = beta = 1 (high end, 0-7)."""
    m = cm.SBG.from_params(alpha=1.0, beta=1.0)
    rows = pd.DataFrame({"renewals": np.arange(8), "churned": [True] * 7 + [False]})
    alive = retention["highend"].loc[:7].to_numpy(float)
    w = np.r_[alive[:-1] - alive[1:], alive[-1]]
    ll = w @ m._loglik(np.array([1.0, 1.0]), *(rows[c].to_numpy(float) for c in rows))
    assert ll == pytest.approx(-2115.5455, abs=1e-3)


def test_holdout_projection(fits, retention):
    """The projections of years 8-12 are within 1% (regular) and 4.1% (high end) of the
    actual counts, as in Fader & Hardie (2007), Figure 3."""
    for cohort, tol in (("regular", 0.018), ("highend", 0.041)):
        proj = 1000 * fits[cohort].survival(np.arange(8, 13))
        actual = retention[cohort].loc[8:].to_numpy()
        assert np.all(np.abs(proj / actual - 1) < tol)
        assert np.all(proj < actual)  # the sBG under-projects both cohorts slightly


def test_typed_table_matches_shared_data(retention):
    assert cm.contractual.fader_hardie_2007().equals(retention.astype("int64"))


# ---- formulas ------------------------------------------------------------------------------
def test_survival_retention_churn_identities(fits):
    m = fits["regular"]
    t = np.arange(1, 30)
    s = m.survival(np.r_[0, t])
    assert s[0] == 1.0
    np.testing.assert_allclose(m.retention_rate(t), s[1:] / s[:-1], rtol=1e-12)
    np.testing.assert_allclose(m.churn_probability(t), s[:-1] - s[1:], rtol=1e-10)
    a, b = m.params_
    np.testing.assert_allclose(m.churn_probability(t),
                               np.exp(special.betaln(a + 1, b + t - 1) - special.betaln(a, b)),
                               rtol=1e-10)
    assert np.all(np.diff(m.retention_rate(t)) > 0)  # retention rises with tenure


def _direct_derl(model, d, k, terms=20_000):
    j = np.arange(terms)
    return float(np.sum(model.survival(k + 1 + j) / model.survival(k) * np.exp(-j * np.log1p(d))))


@pytest.mark.parametrize("d", [0.05, 0.1, 0.5])
@pytest.mark.parametrize("k", [0, 1, 4, 10])
def test_derl_closed_form_equals_direct_sum(fits, d, k):
    for m in fits.values():
        assert m.derl(d, renewals=k) == pytest.approx(_direct_derl(m, d, k), rel=1e-9)


def test_del_is_one_plus_discounted_derl(fits):
    for m in fits.values():
        j = np.arange(20_000)
        direct = float(np.sum(m.survival(j) * np.exp(-j * np.log(1.1))))
        assert m.del_(0.1) == pytest.approx(direct, rel=1e-9)
        assert m.del_(0.1) == pytest.approx(1 + m.derl(0.1, 0) / 1.1, rel=1e-12)


def test_generic_sum_equals_closed_form(fits):
    """The BdW's direct sum (RetentionModel.derl) at c = 1 is the sBG's closed form."""
    m = fits["highend"]
    b = cm.BDW.from_params(alpha=m.params_["alpha"], beta=m.params_["beta"], c=1.0)
    k = np.array([0, 3, 12])
    np.testing.assert_allclose(b.derl(0.1, k), m.derl(0.1, k), rtol=1e-12)
    np.testing.assert_allclose(b.survival(np.arange(50)), m.survival(np.arange(50)), rtol=1e-12)
    assert b.del_(0.1) == pytest.approx(m.del_(0.1), rel=1e-12)


def test_expected_renewals():
    m = cm.SBG.from_params(alpha=3.0, beta=5.0)
    # closed form (beta + k) / (alpha - 1), and the direct sum of survival ratios
    assert m.expected_renewals(2) == pytest.approx(3.5)
    j = np.arange(1, 200_001)
    assert float(np.sum(m.survival(2 + j) / m.survival(2))) == pytest.approx(3.5, rel=1e-4)
    assert m.expected_renewals(2, horizon=3) == pytest.approx(
        float(np.sum(m.survival([3, 4, 5]) / m.survival(2))), rel=1e-12)
    assert cm.SBG.from_params(alpha=0.7, beta=1.2).expected_renewals(0) == np.inf
    per = m.expected_renewals_per_customer(
        pd.DataFrame({"renewals": [0, 2, 5], "churned": [True, False, False]}), horizon=3)
    assert per.iloc[0] == 0 and per.iloc[1] == pytest.approx(m.expected_renewals(2, 3))


def test_bdw_loglik_reduces_to_sbg_and_gradient():
    k = np.array([0.0, 1, 2, 5, 0, 3, 40])
    c = np.array([1.0, 1, 0, 1, 0, 0, 1])
    np.testing.assert_allclose(bdw_mod.loglik(0.7, 1.3, 1.0, k, c), sbg_mod.loglik(0.7, 1.3, k, c),
                               rtol=1e-12)
    p = np.array([0.7, 1.3, 0.8])
    g = np.array(bdw_mod.loglik_grad(*p, k, c))
    h = 1e-6
    num = np.array([(bdw_mod.loglik(*(p + e), k, c) - bdw_mod.loglik(*(p - e), k, c)) / (2 * h)
                    for e in np.eye(3) * h])
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-7)
    gs = np.array(sbg_mod.loglik_grad(0.7, 1.3, k, c))
    nums = np.array([(sbg_mod.loglik(*(p[:2] + e), k, c) - sbg_mod.loglik(*(p[:2] - e), k, c))
                     / (2 * h) for e in np.eye(2) * h])
    np.testing.assert_allclose(gs, nums, rtol=1e-5, atol=1e-7)


# ---- BdW and the LR test -------------------------------------------------------------------------
def test_bdw_on_published_cohorts(retention, fits):
    for cohort in retention.columns:
        b = cm.BDW().fit(retention[cohort].loc[:7])
        assert b.loglik_ >= fits[cohort].loglik_ - 1e-8
        test = b.lr_test(fits[cohort])
        assert test["statistic"] == pytest.approx(2 * (b.loglik_ - fits[cohort].loglik_))
    # high end: duration dependence is significant (c > 1); regular: it is not
    high = cm.BDW().fit(retention["highend"].loc[:7])
    assert high.params_["c"] > 1 and high.lr_test(data=retention["highend"].loc[:7])[
        "p_value"] < 0.01
    reg = cm.BDW().fit(retention["regular"].loc[:7])
    assert reg.lr_test(fits["regular"])["p_value"] > 0.05


def test_lr_test_rejects_different_data(retention, fits):
    b = cm.BDW().fit(retention["regular"].loc[:5] / 2)
    with pytest.raises(ValueError, match="different data"):
        b.lr_test(fits["regular"])


# ---- recovery on simulated cohorts ---------------------------------------------------------------
@pytest.mark.parametrize("alpha, beta", [(0.7, 1.2), (3.0, 8.0)])
def test_sbg_recovery(alpha, beta):
    rng = np.random.default_rng(1)
    rows = sbg_mod.simulate(alpha, beta, 20_000, 12, rng)
    m = cm.SBG().fit(rows)
    for name, true in (("alpha", alpha), ("beta", beta)):
        assert abs(m.params_[name] - true) < 3 * m.se_[name]
        assert m.se_[name] < 0.2 * true


@pytest.mark.parametrize("truth", [{"alpha": 1.0, "beta": 2.0, "c": 0.6},
                                   {"alpha": 0.5, "beta": 1.5, "c": 1.6}])
def test_bdw_recovery(truth):
    rng = np.random.default_rng(2)
    rows = sbg_mod.simulate(truth["alpha"], truth["beta"], 30_000, 15, rng, c=truth["c"])
    m = cm.BDW().fit(rows)
    for name, true in truth.items():
        assert abs(m.params_[name] - true) < 3 * m.se_[name], (name, m.params_[name])


def test_pooled_cohorts_equal_sum_of_loglik():
    """A cohort table (NaN beyond each age) is one pooled fit: its log-likelihood is the
    sum of the cohorts' at the pooled estimates; shorter cohorts are right-censored."""
    sim = cm.SBG.from_params(alpha=1.0, beta=3.0)
    cohorts = {}
    for i, age in enumerate((10, 6, 3)):
        rows = sim.simulate(2_000, age, random_state=i)
        cohorts[f"c{i}"] = pd.Series([(rows["renewals"] >= t).sum() for t in range(age + 1)],
                                     dtype=float)
    table = pd.DataFrame(cohorts)
    assert table["c2"].isna().sum() == 7
    pooled = cm.SBG().fit(table)
    parts = [cm.SBG.from_params(**pooled.params_) for _ in cohorts]
    total = 0.0
    for m, col in zip(parts, table.columns, strict=True):
        m.fit(table[col], initial_params=dict(pooled.params_))
    for col in table.columns:
        s = table[col].dropna().to_numpy()
        k = np.arange(len(s))
        w = np.r_[s[:-1] - s[1:], s[-1]]
        ch = np.r_[np.ones(len(s) - 1), 0.0]
        total += w @ sbg_mod.loglik(*pooled.params_, k.astype(float), ch)
    assert pooled.loglik_ == pytest.approx(total, rel=1e-10)
    assert abs(pooled.params_["alpha"] - 1.0) < 3 * pooled.se_["alpha"]


# ---- extremes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha, beta", [(1e-3, 1e-3), (1e-3, 1e4), (1e4, 1e-3), (1e5, 1e5),
                                         (0.5, 1e6)])
def test_extreme_parameters_long_horizons(alpha, beta):
    m = cm.SBG.from_params(alpha=alpha, beta=beta)
    t = np.array([1, 10, 1_000, 1_000_000])
    for values in (m.survival(t), m.retention_rate(t), m.churn_probability(t),
                   m.derl(0.1, t), m.derl(0.001, t)):
        assert np.all(np.isfinite(values)) and np.all(values >= 0)
    assert np.all(m.survival(t) <= 1) and np.all(m.retention_rate(t) <= 1)
    assert np.all(m.derl(0.1, t) <= 11 + 1e-9)  # at most sum z^j = (1 + d) / d
    assert np.isfinite(m.del_(0.01))
    b = cm.BDW.from_params(alpha=alpha, beta=beta, c=0.3)
    for values in (b.survival(t), b.retention_rate(t), b.churn_probability(t),
                   b.derl(0.1, t[:3])):
        assert np.all(np.isfinite(values)) and np.all(values >= 0)
    rows = pd.DataFrame({"renewals": [0, 3, 100, 10_000], "churned": [True, True, True, False]})
    for model in (m, b):
        assert np.all(np.isfinite(model._loglik(model.params_.to_numpy(),
                                                *(rows[c].to_numpy(float) for c in rows))))


def test_fit_without_heterogeneity_is_stable():
    """All customers with the same churn probability: the beta distribution of theta
    degenerates (alpha, beta -> infinity along alpha / (alpha + beta) = 0.2, a flat
    likelihood); the fit still converges and predicts the geometric survival."""
    alive = 1000 * 0.8 ** np.arange(8)
    m = cm.SBG().fit(alive)
    assert m.params_["alpha"] > 100
    assert m.params_["alpha"] / m.params_.sum() == pytest.approx(0.2, rel=1e-4)
    np.testing.assert_allclose(m.survival(np.arange(30)), 0.8 ** np.arange(30), rtol=1e-2)


# ---- data forms and errors -------------------------------------------------------------------
def test_data_forms_agree(retention):
    alive = retention["regular"].loc[:7]
    per_customer = pd.DataFrame({
        "renewals": np.repeat(np.arange(8), np.r_[-np.diff(alive.to_numpy()), alive.iloc[-1]]),
    })
    per_customer["churned"] = per_customer["renewals"] < 7
    a = cm.SBG().fit(alive)
    b = cm.SBG().fit(per_customer)
    c = cm.SBG().fit(list(alive))
    np.testing.assert_allclose(a.params_, b.params_, rtol=1e-8)
    np.testing.assert_allclose(a.params_, c.params_, rtol=1e-8)
    assert len(per_customer) == 1000 and per_customer.columns.tolist() == ["renewals", "churned"]


@pytest.mark.parametrize("bad, match", [
    ([1000, 600, 700], "cannot increase"),
    ([0, 0, 0], "size"),
    ([1000, np.nan, 500], "missing"),
    ([1000, -5], "non-negative"),
])
def test_bad_alive_counts(bad, match):
    with pytest.raises(DataError, match=match):
        cm.SBG().fit(pd.Series(bad, dtype=float))


def test_bad_per_customer_frames():
    with pytest.raises(DataError, match="renewals.*whole numbers.*1 row"):
        cm.SBG().fit(pd.DataFrame({"renewals": [1.5, 2], "churned": [True, False]}))
    with pytest.raises(DataError, match="churned.*True/False"):
        cm.SBG().fit(pd.DataFrame({"renewals": [1, 2], "churned": ["yes", "no"]}))
    frame = cm.SBG.from_params(alpha=1.0, beta=2.0).simulate(500, 6, random_state=0)
    before = frame.copy()
    cm.BDW().fit(frame)
    pd.testing.assert_frame_equal(frame, before)  # the caller's data are not modified


def test_not_fitted_and_bad_arguments(fits):
    with pytest.raises(NotFittedError):
        cm.SBG().survival(3)
    with pytest.raises(ValueError, match="t must be whole numbers >= 1"):
        fits["regular"].retention_rate(0)
    with pytest.raises(ValueError, match="discount_rate"):
        fits["regular"].derl(-0.1)
    with pytest.raises(ValueError, match="horizon"):
        cm.BDW.from_params(alpha=1.0, beta=1.0, c=1.0).expected_renewals(0)


def test_save_load_round_trip(tmp_path, fits):
    for cls, m in ((cm.SBG, fits["regular"]), (cm.BDW, cm.BDW.from_params(alpha=1, beta=2, c=.5))):
        m.save(tmp_path / "m.json")
        back = cls.load(tmp_path / "m.json")
        np.testing.assert_allclose(back.derl(0.1, [0, 5]), m.derl(0.1, [0, 5]), rtol=1e-14)


def test_too_few_periods_to_identify_the_parameters():
    """One retention rate identifies only alpha / (alpha + beta): a clear error."""
    with pytest.raises(DataError, match="at least 2 renewal periods.*found 1"):
        cm.SBG().fit([1000, 500])
    with pytest.raises(DataError, match="BDW needs at least 3"):
        cm.BDW().fit([1000, 500, 400])
    assert cm.SBG().fit([1000, 500, 400]).params_.gt(0).all()
