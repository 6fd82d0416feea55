"""Static covariates on the BTYD and spend models (issue 17).

Published values: CLVTools' Pareto/NBD with static covariates on its apparel data
(600 customers, weekly, estimation period 2005-01-02 to 2006-12-31, Gender and Channel
on both processes), as printed by the CLVTools walkthrough vignette
(https://www.clvtools.com/articles/CLVTools.html, ``summary(est.pnbd.static)``; the
same page's model without covariates as a check of the data preparation).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import clvmodels as cm
from clvmodels.errors import DataError, StatisticalWarning
from clvmodels.models import _covariates as cov
from clvmodels.models import ggomnbd, paretonbd
from clvmodels.rfm import rfm_summary

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

# CLVTools walkthrough, summary(est.pnbd) and summary(est.pnbd.static): estimate, SE
CLVTOOLS_NOCOV = {"r": (1.4490, 0.2434), "alpha": (48.6361, 7.4892), "s": (0.5613, 0.2710),
                  "beta": (46.8844, 35.6114)}
CLVTOOLS_NOCOV_LL = -5848.0978
CLVTOOLS_STATIC = {
    "r": (1.8387, 0.3457), "alpha": (92.9435, 16.9749), "s": (0.5913, 0.2603),
    "beta": (49.5048, 36.1444),
    "dropout:Gender": (-0.6428, 0.2956), "dropout:Channel": (0.7902, 0.3058),
    "purchase:Gender": (0.2860, 0.1041), "purchase:Channel": (0.6239, 0.1049),
}
CLVTOOLS_STATIC_LL = -5821.0627
CLVTOOLS_P_VALUES = {"dropout:Gender": 0.02965, "dropout:Channel": 0.00978,
                     "purchase:Gender": 0.00603, "purchase:Channel": 2.76e-09}


@pytest.fixture(scope="module")
def apparel():
    tx = pd.read_csv(SHARED / "apparel_transactions.csv", parse_dates=["Date"])
    static = pd.read_csv(SHARED / "apparel_static_cov.csv").set_index("Id")
    rfm = rfm_summary(tx, customer="Id", date="Date", amount="Price",
                      observation_end="2006-12-31", unit="W")
    return rfm.join(static)


BOTH = {"purchase_covariates": ["Gender", "Channel"], "dropout_covariates": ["Gender", "Channel"]}


def test_clvtools_apparel_without_covariates(apparel):
    m = cm.ParetoNBD().fit(apparel)
    assert m.loglik_ == pytest.approx(CLVTOOLS_NOCOV_LL, abs=2e-3)
    for name, (est, se) in CLVTOOLS_NOCOV.items():
        assert m.params_[name] == pytest.approx(est, rel=2e-4), name
        assert m.se_[name] == pytest.approx(se, rel=2e-3), name


def test_clvtools_apparel_static_covariates(apparel):
    m = cm.ParetoNBD(**BOTH).fit(apparel)
    assert m.loglik_ == pytest.approx(CLVTOOLS_STATIC_LL, abs=2e-3)
    assert m.loglik_ >= CLVTOOLS_STATIC_LL - 5e-5  # at least as high as CLVTools' optimum
    for name, (est, se) in CLVTOOLS_STATIC.items():
        assert m.params_[name] == pytest.approx(est, rel=2e-3, abs=2e-4), name
        assert m.se_[name] == pytest.approx(se, rel=3e-3), name
    summary = m.summary()
    for name, p in CLVTOOLS_P_VALUES.items():
        assert summary.loc[name, "p_value"] == pytest.approx(p, rel=2e-2), name
    # the covariates improve the fit: LR test of the nested model, CLVTools' two LLs
    test = cm.likelihood_ratio_test(cm.ParetoNBD().fit(apparel), m)
    assert test["df"] == 4
    assert test["statistic"] == pytest.approx(2 * (CLVTOOLS_STATIC_LL - CLVTOOLS_NOCOV_LL),
                                              abs=5e-3)
    assert test["p_value"] < 1e-8


def _simulated_frame(n, seed):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.normal(40.0, 12.0, n),
        "channel": rng.choice(["email", "search", "shop"], n, p=[0.3, 0.3, 0.4]),
        "loyal": rng.integers(0, 2, n),
    })


def _dummies(frame):
    out = frame[["age", "loyal"]].copy()
    out["search"] = (frame["channel"] == "search").astype(float)
    out["shop"] = (frame["channel"] == "shop").astype(float)
    return out


TRUE_PNBD = {"r": 0.9, "alpha": 6.0, "s": 0.7, "beta": 9.0,
             "purchase:age": 0.02, "purchase:search": 0.3, "purchase:shop": -0.4,
             "dropout:loyal": -0.6}
TRUE_BG = {"r": 0.8, "alpha": 5.0, "a": 0.9, "b": 3.0,
           "purchase:age": -0.015, "purchase:loyal": 0.35, "dropout:search": 0.5}


def _recovery(model_cls, truth, fit_kwargs, n=20_000, seed=7):
    """Simulate n customers with known coefficients, refit with the user's columns
    (categorical channel expanded by the model), every estimate within 3 SE."""
    frame = _simulated_frame(n, seed)
    known = model_cls.from_params(**truth)
    T = np.random.default_rng(seed + 1).uniform(20.0, 60.0, n)
    rfm = known.simulate(n, T, random_state=seed + 2, covariates=_dummies(frame))
    for column in frame:
        rfm[column] = frame[column].to_numpy()
    fitted = model_cls(**fit_kwargs).fit(rfm)
    names = {"purchase:search": "purchase:channel[search]",
             "purchase:shop": "purchase:channel[shop]",
             "dropout:search": "dropout:channel[search]"}
    for name, value in truth.items():
        got = names.get(name, name)
        z = (fitted.params_[got] - value) / fitted.se_[got]
        assert abs(z) < 3, (name, fitted.params_[got], value, fitted.se_[got])
    return fitted


def test_recovery_pareto_nbd():
    m = _recovery(cm.ParetoNBD, TRUE_PNBD,
                  {"purchase_covariates": ["age", "channel"], "dropout_covariates": ["loyal"]})
    assert m.summary().loc["purchase:channel[shop]", "reference"] == "channel=email"


def test_recovery_bg_nbd():
    _recovery(cm.BGNBD, TRUE_BG,
              {"purchase_covariates": ["age", "loyal"], "dropout_covariates": ["channel"]})


def test_recovery_mbg_nbd():
    _recovery(cm.MBGNBD, TRUE_BG,
              {"purchase_covariates": ["age", "loyal"], "dropout_covariates": ["channel"]},
              seed=17)


TRUE_GG = {"p": 6.0, "q": 4.0, "v": 15.0, "spend:age": 0.01, "spend:loyal": 0.3}


def _spend_frame(n=20_000, round_age=False):
    """Repeat buyers with an age and a 0/1 loyal flag whose mean spend is drawn from the
    Gamma-Gamma with known coefficients (``TRUE_GG``)."""
    rng = np.random.default_rng(11)
    frame = pd.DataFrame({"frequency": rng.integers(1, 12, n), "age": rng.normal(40, 10, n),
                          "loyal": rng.integers(0, 2, n)})
    if round_age:  # whole years: identical rows, which the Bayesian fit compresses
        frame["age"] = frame["age"].round()
    frame["monetary_value"] = cm.GammaGamma.from_params(**TRUE_GG).simulate(
        frame, random_state=12).to_numpy()
    frame["recency"], frame["T"] = 1.0, 2.0
    return frame


def test_recovery_gamma_gamma():
    frame, truth = _spend_frame(), TRUE_GG
    m = cm.GammaGamma(covariates=["age", "loyal"]).fit(frame)
    for name, value in truth.items():
        assert abs(m.params_[name] - value) < 3 * m.se_[name], name
    # mean spend scales by exp(c'z): the model's population means per characteristic
    base = m.population_mean_spend({"age": 0.0, "loyal": 0})
    assert m.population_mean_spend({"age": 0.0, "loyal": 1}) == pytest.approx(
        base * np.exp(m.params_["spend:loyal"]), rel=1e-12)


TRUE_GGOM = {"r": 0.8, "alpha": 5.0, "b": 0.05, "s": 1.2, "beta": 3.0,
           "purchase:age": 0.02, "purchase:search": 0.3, "purchase:shop": -0.4,
           "dropout:loyal": -0.6}


@pytest.mark.slow
def test_recovery_ggompertz_nbd():
    """GGompertz/NBD with CLVTools' convention (alpha and beta scaled), ageing b > 0:
    20,000 simulated customers, every parameter within 3 SE (L-BFGS-B on the chain-rule
    gradient, SEs from differences of that gradient)."""
    m = _recovery(cm.GGomNBD, TRUE_GGOM, {"purchase_covariates": ["age", "channel"],
                                         "dropout_covariates": ["loyal"], "lr_tests": False})
    assert m.summary().loc["dropout:loyal", "p_value"] < 1e-6


def _random_histories(seed, n):
    """Two covariates, histories (x, t_x, T) and weights of n random customers."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    x = rng.integers(0, 6, n).astype(float)
    T = rng.uniform(10, 40, n)
    t_x = np.where(x > 0, T * rng.uniform(0.1, 1.0, n), 0.0)
    return z, x, t_x, T, rng.integers(1, 4, n).astype(float)


def test_ggompertz_nbd_chain_rule_matches_finite_differences():
    """The fit's gradient in (log-parameters, coefficients) against central differences
    of the total of the pure per-customer likelihood at alpha_i, beta_i."""
    z, x, t_x, T, _ = _random_histories(8, 300)
    model = cm.GGomNBD()
    model.design_ = cov.Design({"purchase": (cov.Term("z1"),), "dropout": (cov.Term("z2"),)},
                               cm.GGomNBD.covariate_links)
    point = np.r_[np.log([0.8, 6.0, 0.04, 1.1, 2.5]), 0.3, -0.5]

    def total(lt):
        a_i = np.exp(lt[1] - lt[5] * z[:, 0])
        b_i = np.exp(lt[4] - lt[6] * z[:, 1])
        return ggomnbd.loglik(*np.exp(lt[[0]]), a_i, *np.exp(lt[[2, 3]]), b_i, x, t_x, T).sum()

    ll, g = model._covariate_rows_log(point, (x, t_x, T, z[:, 0], z[:, 1]))
    assert ll.sum() == pytest.approx(total(point), rel=1e-12)
    h = 1e-5
    fd = [(total(point + e) - total(point - e)) / (2 * h) for e in np.eye(point.size) * h]
    np.testing.assert_allclose(g.sum(axis=0), fd, rtol=1e-6, atol=1e-6)


def test_ggompertz_nbd_on_apparel_is_the_pareto_nbd_fit(apparel):
    """On CLVTools' apparel data the GGompertz/NBD with Gender and Channel on both
    processes goes to its Pareto/NBD limit (b -> 0, no ageing; fit says so), so it must
    reproduce CLVTools' published Pareto/NBD fit with the same covariates: the
    log-likelihood, the coefficients and beta / b = the Pareto/NBD's beta (CLVTools
    publishes no GGompertz/NBD covariate fit on these data)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StatisticalWarning)
        m = cm.GGomNBD(**BOTH).fit(apparel)
    assert any("Pareto/NBD limit" in str(w.message) for w in caught)
    assert m.loglik_ == pytest.approx(CLVTOOLS_STATIC_LL, abs=2e-3)
    for name in ("r", "alpha", "s", "purchase:Gender", "purchase:Channel",
                 "dropout:Gender", "dropout:Channel"):
        est, se = CLVTOOLS_STATIC[name]
        assert m.params_[name] == pytest.approx(est, rel=3e-3, abs=3e-4), name
        if ":" in name:
            assert m.se_[name] == pytest.approx(se, rel=1e-2), name
    assert m.params_["beta"] / m.params_["b"] == pytest.approx(
        CLVTOOLS_STATIC["beta"][0], rel=3e-3)
    assert m.lr_tests_.loc["all covariates", "statistic"] == pytest.approx(
        2 * (CLVTOOLS_STATIC_LL - CLVTOOLS_NOCOV_LL), abs=1e-2)


def test_ggompertz_nbd_predictions_use_each_customers_covariates(cdnow_rfm):
    """Customers with z = 1 are predicted by the model at alpha e^-g, beta e^-d; a
    covariate that is 0 everywhere gives the model without it, exactly."""
    base = {"r": 0.55, "alpha": 10.6, "b": 0.05, "s": 0.6, "beta": 2.0}
    coefs = {"purchase:z": 0.8, "dropout:z": -0.5}
    m = cm.GGomNBD.from_params(**base, **coefs)
    plain = cm.GGomNBD.from_params(**base)
    zero = cdnow_rfm.assign(z=0.0)
    np.testing.assert_array_equal(m.expected_purchases(13, zero),
                                  plain.expected_purchases(13, cdnow_rfm))
    pd.testing.assert_series_equal(m.probability_alive(zero),
                                   plain.probability_alive(cdnow_rfm))
    assert m.expected_purchases_new(39.0, covariates={"z": 0.0}) == (
        plain.expected_purchases_new(39.0))
    rfm = cdnow_rfm.assign(z=(np.arange(len(cdnow_rfm)) % 2).astype(float))
    one = rfm["z"] == 1
    scaled = cm.GGomNBD.from_params(**{**base, "alpha": base["alpha"] * np.exp(-0.8),
                                       "beta": base["beta"] * np.exp(0.5)})
    np.testing.assert_allclose(m.expected_purchases(39.0, rfm)[one],
                               scaled.expected_purchases(39.0, rfm[one]), rtol=1e-12)
    np.testing.assert_allclose(m.probability_alive(rfm)[~one],
                               plain.probability_alive(rfm[~one]), rtol=1e-12)
    assert m.expected_purchases_new(39.0, covariates={"z": 1.0}) == pytest.approx(
        scaled.expected_purchases_new(39.0), rel=1e-12)


def test_user_scale_does_not_depend_on_units():
    """Standardisation is internal: age in years or in months (x 12, + 5) gives the same
    fit, coefficients divided by 12 and the baseline moved by the offset."""
    frame = _simulated_frame(3_000, 3)
    rfm = cm.ParetoNBD.from_params(**{k: v for k, v in TRUE_PNBD.items()
                                      if k in ("r", "alpha", "s", "beta", "purchase:age")}
                                   ).simulate(3_000, 40.0, random_state=4, covariates=frame)
    rfm["months"] = rfm["age"] * 12 + 5
    a = cm.ParetoNBD(purchase_covariates=["age"]).fit(rfm)
    b = cm.ParetoNBD(purchase_covariates=["months"]).fit(rfm)
    assert b.loglik_ == pytest.approx(a.loglik_, abs=1e-7)
    assert b.params_["purchase:months"] * 12 == pytest.approx(a.params_["purchase:age"],
                                                              rel=1e-6)
    assert b.se_["purchase:months"] * 12 == pytest.approx(a.se_["purchase:age"], rel=1e-5)
    shift = np.exp(b.params_["purchase:months"] * 5)  # alpha_i = alpha exp(-g z)
    assert b.params_["alpha"] == pytest.approx(a.params_["alpha"] * shift, rel=1e-6)
    np.testing.assert_allclose(b.expected_purchases(10, rfm), a.expected_purchases(10, rfm),
                               rtol=1e-6)


@pytest.mark.parametrize("model_cls, base, coefs", [
    (cm.ParetoNBD, {"r": 0.55, "alpha": 10.6, "s": 0.61, "beta": 11.7},
     {"purchase:z": 0.7, "dropout:z": -0.4}),
    (cm.BGNBD, {"r": 0.24, "alpha": 4.41, "a": 0.79, "b": 2.43},
     {"purchase:z": 0.7, "dropout:z": -0.4}),
    (cm.MBGNBD, {"r": 0.52, "alpha": 6.18, "a": 0.89, "b": 1.61},
     {"purchase:z": 0.7, "dropout:z": -0.4}),
])
def test_all_zero_covariate_gives_the_model_without(model_cls, base, coefs, cdnow_rfm):
    """A covariate that is 0 for every customer changes nothing, exactly."""
    plain = model_cls.from_params(**base)
    with_z = model_cls.from_params(**base, **coefs)
    rfm = cdnow_rfm.assign(z=0.0)
    for method in ("probability_alive",):
        pd.testing.assert_series_equal(getattr(with_z, method)(rfm),
                                       getattr(plain, method)(cdnow_rfm))
    np.testing.assert_array_equal(with_z.expected_purchases(13, rfm),
                                  plain.expected_purchases(13, cdnow_rfm))
    np.testing.assert_array_equal(with_z.probability_of_purchases(2, 13, rfm),
                                  plain.probability_of_purchases(2, 13, cdnow_rfm))
    assert with_z.expected_purchases_new(39.0, covariates={"z": 0.0}) == (
        plain.expected_purchases_new(39.0))


def test_pareto_nbd_chain_rule_matches_finite_differences():
    """Gradient and Hessian in (log-parameters, coefficients) against central differences
    of the total log-likelihood built from the pure per-customer function."""
    z, x, t_x, T, w = _random_histories(5, 400)
    design = cov.Design({"purchase": (cov.Term("z1"),), "dropout": (cov.Term("z2"),)},
                        cm.ParetoNBD.covariate_links)
    model = cm.ParetoNBD()
    model.design_ = design
    cols = (x, t_x, T, z[:, 0], z[:, 1])
    point = np.log([0.8, 6.0, 0.7, 9.0]).tolist() + [0.3, -0.5]
    point = np.array(point)

    def total(lt):
        a_i = np.exp(lt[1] - lt[4] * z[:, 0])
        b_i = np.exp(lt[3] - lt[5] * z[:, 1])
        return w @ paretonbd.loglik(np.exp(lt[0]), a_i, np.exp(lt[2]), b_i, x, t_x, T)

    ll, grad, hess = model._log_value_grad_and_hessian(point, cols, w)
    assert ll == pytest.approx(total(point), rel=1e-12)
    h = 1e-5
    eye = np.eye(point.size) * h
    fd_grad = np.array([(total(point + e) - total(point - e)) / (2 * h) for e in eye])
    np.testing.assert_allclose(grad, fd_grad, rtol=1e-6, atol=1e-6)
    fd_hess = np.array([
        (model._log_value_grad_and_hessian(point + e, cols, w)[1]
         - model._log_value_grad_and_hessian(point - e, cols, w)[1]) / (2 * h) for e in eye])
    np.testing.assert_allclose(hess, fd_hess, rtol=1e-5, atol=1e-5)


def test_bad_covariates_are_named(apparel):
    bad = apparel.copy()
    bad.loc[bad.index[:3], "Gender"] = np.nan
    with pytest.raises(DataError, match=r"'Gender'.*missing.*\(3 rows\)"):
        cm.ParetoNBD(purchase_covariates=["Gender"]).fit(bad)
    with pytest.raises(DataError, match=r"'nope'.*not found.*\(600 rows\)"):
        cm.ParetoNBD(dropout_covariates=["nope"]).fit(apparel)
    with pytest.raises(DataError, match=r"'one'.*constant.*\(600 rows\)"):
        cm.BGNBD(purchase_covariates=["one"]).fit(apparel.assign(one=1.0))
    with pytest.raises(DataError, match=r"'zero'.*constant"):
        cm.ParetoNBD(purchase_covariates=["zero"]).fit(apparel.assign(zero=0.0))
    with pytest.raises(DataError, match=r"'level'.*constant.*one level"):
        cm.ParetoNBD(purchase_covariates=["level"]).fit(apparel.assign(level="a"))
    with pytest.raises(TypeError, match="list of column names"):
        cm.ParetoNBD(purchase_covariates="Gender").fit(apparel)
    with pytest.raises(ValueError, match="no \\['purchase'\\] covariates"):
        cm.GammaGamma.from_params(p=1, q=2, v=3, **{"purchase:x": 1.0})
    # predictions need the columns, and levels seen in the fit
    m = cm.ParetoNBD(purchase_covariates=["Channel"], dropout_covariates=["tier"]).fit(
        apparel.assign(tier=np.where(apparel["Gender"] == 1, "gold", "basic")))
    with pytest.raises(DataError, match="'tier'.*not found"):
        m.probability_alive(apparel)
    with pytest.raises(DataError, match="'tier'.*levels not seen.*\\(600 rows\\)"):
        m.probability_alive(apparel.assign(tier="silver"))
    assert apparel["Gender"].notna().all()  # the caller's frame is untouched


def test_save_load_and_new_customers(apparel, tmp_path):
    frame = apparel.assign(tier=np.where(apparel["Gender"] == 1, "gold", "basic"))
    m = cm.ParetoNBD(purchase_covariates=["Channel", "tier"], dropout_covariates=["Channel"]
                     ).fit(frame)
    m.save(tmp_path / "m.json")
    back = cm.ParetoNBD.load(tmp_path / "m.json")
    pd.testing.assert_series_equal(back.params_, m.params_)
    pd.testing.assert_frame_equal(back.summary(), m.summary())
    pd.testing.assert_series_equal(back.expected_purchases(20, frame),
                                   m.expected_purchases(20, frame))
    new = pd.DataFrame({"Channel": [0, 1], "tier": ["basic", "gold"]}, index=["a", "b"])
    values = m.expected_purchases_new(52.0, covariates=new)
    assert list(values.index) == ["a", "b"]
    # the reference customer is the baseline model
    base = cm.ParetoNBD.from_params(**m.params_[["r", "alpha", "s", "beta"]])
    assert values["a"] == pytest.approx(base.expected_purchases_new(52.0), rel=1e-12)
    assert m.expected_purchases_new(52.0, covariates={"Channel": 1, "tier": "gold"}) == (
        pytest.approx(values["b"], rel=1e-12))
    with pytest.raises(ValueError, match="covariates"):
        m.expected_purchases_new(52.0)


def test_likelihood_ratio_test_rules(apparel):
    small = cm.ParetoNBD(purchase_covariates=["Gender"]).fit(apparel)
    big = cm.ParetoNBD(purchase_covariates=["Gender", "Channel"]).fit(apparel)
    out = cm.likelihood_ratio_test(small, big)
    assert out["df"] == 1
    assert out["statistic"] == pytest.approx(2 * (big.loglik_ - small.loglik_))
    with pytest.raises(ValueError, match="not nested"):
        cm.likelihood_ratio_test(big, small)
    with pytest.raises(ValueError, match="same class"):
        cm.likelihood_ratio_test(cm.BGNBD().fit(apparel), big)


def test_likelihood_ratio_tests_in_summary(apparel, tmp_path):
    """summary() carries, per covariate column and process, the LR test against the model
    without that column, fitted at fit time: equal to likelihood_ratio_test of the two
    models fitted separately; the test of all covariates together reproduces CLVTools'
    two published log-likelihoods; the tests survive save/load."""
    m = cm.ParetoNBD(**BOTH).fit(apparel)
    table = m.summary()
    for role in ("purchase", "dropout"):
        for column in ("Gender", "Channel"):
            spec = {k: [c for c in v if not (k.startswith(role) and c == column)]
                    for k, v in BOTH.items()}
            nested = cm.ParetoNBD(**spec).fit(apparel)
            expected = cm.likelihood_ratio_test(nested, m)
            row = table.loc[f"{role}:{column}"]
            assert row["lr_statistic"] == pytest.approx(expected["statistic"], rel=1e-6)
            assert row["lr_df"] == 1
            assert row["lr_p_value"] == pytest.approx(expected["p_value"], rel=1e-5)
    assert table.loc[["r", "alpha", "s", "beta"], "lr_statistic"].isna().all()
    every = m.lr_tests_.loc["all covariates"]
    assert every["df"] == 4
    assert every["loglik_nested"] == pytest.approx(CLVTOOLS_NOCOV_LL, abs=2e-3)
    assert every["statistic"] == pytest.approx(
        2 * (CLVTOOLS_STATIC_LL - CLVTOOLS_NOCOV_LL), abs=5e-3)
    m.save(tmp_path / "m.json")
    back = cm.ParetoNBD.load(tmp_path / "m.json")
    pd.testing.assert_frame_equal(back.lr_tests_, m.lr_tests_)
    pd.testing.assert_frame_equal(back.summary(), table)


def test_likelihood_ratio_tests_categorical_and_switched_off(apparel):
    """A categorical column is tested as a whole (df = levels - 1, the same test on each
    level's row); lr_tests=False and penalised fits skip the refits."""
    frame = apparel.assign(tier=np.select([apparel["Gender"] == 1, apparel["Channel"] == 1],
                                          ["gold", "silver"], "basic"))
    m = cm.ParetoNBD(purchase_covariates=["tier"], dropout_covariates=["Channel"]).fit(frame)
    table = m.summary()
    rows = table.loc[["purchase:tier[gold]", "purchase:tier[silver]"]]
    assert (rows["lr_df"] == 2).all() and rows["lr_statistic"].nunique() == 1
    nested = cm.ParetoNBD(dropout_covariates=["Channel"]).fit(frame)
    assert rows["lr_statistic"].iloc[0] == pytest.approx(
        cm.likelihood_ratio_test(nested, m)["statistic"], rel=1e-6)
    assert m.lr_tests_.loc["all covariates", "df"] == 3
    off = cm.ParetoNBD(purchase_covariates=["tier"], lr_tests=False).fit(frame)
    assert off.lr_tests_ is None and "lr_statistic" not in off.summary()
    assert cm.ParetoNBD(purchase_covariates=["Gender"], penalizer=0.01).fit(
        apparel).lr_tests_ is None
    gg = cm.GammaGamma(covariates=["Gender", "Channel"]).fit(apparel)
    plain = cm.GammaGamma().fit(apparel)
    assert gg.lr_tests_.loc["all covariates", "statistic"] == pytest.approx(
        2 * (gg.loglik_ - plain.loglik_), rel=1e-6)


@pytest.mark.slow
def test_standard_errors_match_the_spread_over_simulations():
    """The reported SEs (observed information) against the standard deviation of the
    estimates over 40 simulated data sets of 5,000 customers (Pareto/NBD, two
    covariates): within the Monte-Carlo error of a standard deviation from 40 draws
    (about 11%, so a 30% band)."""
    truth = {"r": 0.9, "alpha": 6.0, "s": 0.7, "beta": 9.0, "purchase:u": 0.4,
             "dropout:v": -0.5}
    known = cm.ParetoNBD.from_params(**truth)
    estimates, ses = [], []
    for rep in range(40):
        rng = np.random.default_rng(100 + rep)
        frame = pd.DataFrame({"u": rng.normal(size=5_000), "v": rng.integers(0, 2, 5_000)})
        rfm = known.simulate(5_000, 40.0, random_state=rep, covariates=frame)
        m = cm.ParetoNBD(purchase_covariates=["u"], dropout_covariates=["v"],
                         lr_tests=False).fit(rfm)
        estimates.append(m.params_[["purchase:u", "dropout:v"]].to_numpy())
        ses.append(m.se_[["purchase:u", "dropout:v"]].to_numpy())
    spread = np.std(estimates, axis=0, ddof=1)
    np.testing.assert_allclose(np.mean(ses, axis=0), spread, rtol=0.3)
    np.testing.assert_allclose(np.mean(estimates, axis=0), [0.4, -0.5],
                               atol=3 * float(spread.max()) / np.sqrt(40) * 2)


def test_intervals_and_clv_use_each_customers_covariates(cdnow_rfm):
    """Customers with z = 1 get the intervals of the model at their parameters (alpha
    and beta scaled), those with z = 0 the baseline's; CLV follows the expected values."""
    base = {"r": 0.55, "alpha": 10.6, "s": 0.61, "beta": 11.7}
    coefs = {"purchase:z": 0.8, "dropout:z": -0.5}
    rfm = cdnow_rfm.assign(z=(np.arange(len(cdnow_rfm)) % 2).astype(float))
    m = cm.ParetoNBD.from_params(**base, **coefs)
    scaled = cm.ParetoNBD.from_params(r=base["r"], alpha=base["alpha"] * np.exp(-0.8),
                                      s=base["s"], beta=base["beta"] * np.exp(0.5))
    plain = cm.ParetoNBD.from_params(**base)
    got = m.prediction_interval(39.0, rfm, level=0.8)
    one = rfm["z"] == 1
    pd.testing.assert_frame_equal(got[one], scaled.prediction_interval(39.0, rfm[one], 0.8))
    pd.testing.assert_frame_equal(got[~one], plain.prediction_interval(39.0, rfm[~one], 0.8))
    np.testing.assert_allclose(m.expected_purchases(39.0, rfm)[one],
                               scaled.expected_purchases(39.0, rfm[one]), rtol=1e-12)
    spend = cm.GammaGamma.from_params(p=6.25, q=3.74, v=15.44)
    with_m = rfm.assign(monetary_value=rfm["monetary_value"].clip(lower=1.0))
    clv = cm.customer_lifetime_value(m, spend, with_m, horizon=52)
    clv_scaled = cm.customer_lifetime_value(scaled, spend, with_m[one], horizon=52)
    np.testing.assert_allclose(np.asarray(clv)[one.to_numpy()], np.asarray(clv_scaled),
                               rtol=1e-10)


def test_compare_scores_covariate_models():
    """compare on CLVTools' apparel holdout (2007-2010): the covariate model's predicted
    total is the sum of its per-customer expectations, and it ranks customers better."""
    tx = pd.read_csv(SHARED / "apparel_transactions.csv", parse_dates=["Date"])
    static = pd.read_csv(SHARED / "apparel_static_cov.csv").set_index("Id")
    cal = cm.calibration_holdout(tx, customer="Id", date="Date", amount="Price",
                                 calibration_end="2006-12-31", unit="W").join(static)
    plain = cm.ParetoNBD().fit(cal)
    full = cm.ParetoNBD(**BOTH).fit(cal)
    table = cm.compare(cal, {"plain": plain, "covariates": full})
    horizon = float(cal["duration_holdout"].iloc[0])
    assert table.loc["covariates", "purchases_predicted"] == pytest.approx(
        full.expected_purchases(horizon, cal).sum(), rel=1e-9)
    assert (table.loc["covariates", "purchases_spearman"]
            > table.loc["plain", "purchases_spearman"])
    # with a covariate spend model, and per segment: revenue is purchases x each
    # customer's expected spend at its covariates
    gg = cm.GammaGamma(covariates=["Channel"]).fit(cal)
    cal["segment"] = np.where(cal["Gender"] == 1, "f", "m")
    table = cm.compare(cal, {"pair": (full, gg)}, segment="segment")
    revenue = full.expected_purchases(horizon, cal) * gg.expected_spend(cal)
    assert table.loc[("all", "pair"), "revenue_predicted"] == pytest.approx(
        revenue.sum(), rel=1e-9)
    assert table.loc[("f", "pair"), "revenue_predicted"] == pytest.approx(
        revenue[cal["segment"] == "f"].sum(), rel=1e-9)


def test_value_of_a_new_customer_against_its_cost(apparel):
    """Per channel: discounted repeat-purchase value of a new customer from the
    new-customer expectation and the channel's mean spend, divided by the channel's CAC."""
    pn = cm.ParetoNBD(purchase_covariates=["Channel"], dropout_covariates=["Channel"]).fit(
        apparel)
    gg = cm.GammaGamma(covariates=["Channel"]).fit(apparel)
    channels = pd.DataFrame({"Channel": [0, 1]}, index=["online", "offline"])
    cac = cm.acquisition_cost(np.array([6_000.0, 9_000.0]), 0.0, np.array([200, 150]))
    table = cm.value_against_cost(pn, gg, channels, pd.Series(cac, index=channels.index),
                                  horizon=52, period=4, discount_rate=0.01)
    # by hand for the offline channel: the model at that channel's parameters
    k = np.arange(1, 14)
    base = pn.params_
    at = cm.ParetoNBD.from_params(
        r=base["r"], alpha=base["alpha"] * np.exp(-base["purchase:Channel"]), s=base["s"],
        beta=base["beta"] * np.exp(-base["dropout:Channel"]))
    spend = gg.population_mean_spend({"Channel": 1})
    cumulative = at.expected_purchases_new(4.0 * k)
    by_hand = spend * np.diff(cumulative, prepend=0.0) @ (1.01 ** -k)
    assert table.loc["offline", "clv"] == pytest.approx(by_hand, rel=1e-12)
    assert table.loc["offline", "cac"] == 60.0
    assert table.loc["offline", "clv_cac"] == pytest.approx(by_hand / 60.0, rel=1e-12)
    # without covariates every channel is worth the same
    plain = cm.value_against_cost(cm.ParetoNBD().fit(apparel), cm.GammaGamma().fit(apparel),
                                  channels, 30.0)
    assert plain["clv"].nunique() == 1
    with pytest.raises(DataError, match="acquisition_cost.*offline"):
        cm.value_against_cost(pn, gg, channels, pd.Series({"online": 30.0}))


def test_segment_estimates_with_a_covariate_model(apparel):
    """Per-segment covariate models get intervals in the forest-plot table: draws of
    their own parameters (log-parameters and coefficients), around the segment's mean."""
    tx = pd.read_csv(SHARED / "apparel_transactions.csv", parse_dates=["Date"])
    static = pd.read_csv(SHARED / "apparel_static_cov.csv").set_index("Id")
    cal = cm.calibration_holdout(tx, customer="Id", date="Date", amount="Price",
                                 calibration_end="2006-12-31", unit="W").join(static)
    cal["segment"] = np.where(cal["Channel"] == 1, "offline", "online")
    per_segment = {s: cm.ParetoNBD(purchase_covariates=["Gender"]).fit(part)
                   for s, part in cal.groupby("segment")}
    table = cm.segment_estimates(cal, {"covariates": per_segment}, "segment", n_draws=200)
    rows = table.xs("covariates", level="method")
    assert len(rows) == 2
    assert np.isfinite(rows[["mean", "low", "high"]].to_numpy()).all()
    assert ((rows["low"] < rows["mean"]) & (rows["mean"] < rows["high"])).all()


def test_ggompertz_nbd_dropout_covariate_fit_survives_extreme_trial_points():
    """1,500 customers with a null drop-out covariate: the optimiser visits b = 2.7e6,
    s = 1e-11, where the quadrature once tried to allocate 146 GiB; every parameter
    within 3 SE of the truth."""
    true = {"r": 0.55, "alpha": 10.0, "b": 0.05, "s": 0.6, "beta": 2.0}
    rfm = cm.GGomNBD.from_params(**true).simulate(
        1500, np.resize(np.arange(10.0, 60.0), 1500), random_state=1)
    rfm["z"] = np.random.default_rng(0).integers(0, 2, len(rfm))
    m = cm.GGomNBD(dropout_covariates=["z"]).fit(rfm)
    for name, value in {**true, "dropout:z": 0.0}.items():
        assert abs(m.params_[name] - value) < 3 * m.se_[name], name
