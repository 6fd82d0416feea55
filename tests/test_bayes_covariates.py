"""Bayesian models with static covariates (issue 17): the PyMC model they build, the
user's scale, predictions per customer's covariates on fake posteriors, errors; and
(``-m slow``) recovery of known coefficients and segment effects by NUTS."""

from __future__ import annotations

import copy
import json
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import clvmodels as cm
from clvmodels import bayes
from clvmodels.bayes._base import COEFFICIENT_PRIOR_SD
from clvmodels.errors import DataError
from clvmodels.models import _covariates as cov
from clvmodels.models import bgnbd, gammagamma
from test_covariates import TRUE_BG, _dummies, _simulated_frame, _spend_frame

BG_KW = {"purchase_covariates": ["age", "loyal"], "dropout_covariates": ["channel"]}
CHANNEL_NAMES = {"purchase:search": "purchase:channel[search]",
                 "purchase:shop": "purchase:channel[shop]",
                 "dropout:search": "dropout:channel[search]"}


def simulate_bg(n, seed, truth=TRUE_BG):
    """Customers with age (whole years), loyal (0/1) and channel (3 levels) drawn from the
    BG/NBD with known coefficients, at whole-week ages and whole-day recencies (as weekly
    RFM from daily logs: identical rows compress)."""
    frame = _simulated_frame(n, seed)
    frame["age"] = frame["age"].round()
    rng = np.random.default_rng(seed + 1)
    T = rng.integers(20, 61, n).astype(float)
    rfm = cm.BGNBD.from_params(**truth).simulate(n, T, random_state=seed + 2,
                                                 covariates=_dummies(frame))
    rfm["recency"] = np.minimum(np.round(rfm["recency"] * 7) / 7, rfm["T"])
    for column in frame:
        rfm[column] = frame[column].to_numpy()
    return rfm


@pytest.fixture(scope="module")
def small():
    rfm = simulate_bg(3_000, 5)
    rfm["monetary_value"] = np.where(rfm["frequency"] > 0,
                                     20.0 * np.exp(0.3 * rfm["loyal"]) *
                                     np.random.default_rng(1).gamma(5.0, 0.2, len(rfm)), 0.0)
    return rfm


def fake_like(cls, mle, n_draws=1, spread=0.0, seed=0, **settings):
    """A Bayesian model with the design of the fitted maximum-likelihood ``mle`` whose
    posterior holds draws around its estimates (user's scale), as fit() stores them."""
    rng = np.random.default_rng(seed)
    k = len(cls.param_names)
    est = mle.params_.to_numpy()
    noise = spread * rng.standard_normal((1, n_draws, est.size))
    post = {n: est[j] * np.exp(noise[..., j]) for j, n in enumerate(cls.param_names)}
    post["coefficients"] = est[k:] + noise[..., k:]
    idata = az.from_dict(posterior=post, coords={"covariate": mle.design_.names},
                         dims={"coefficients": ["covariate"]})
    idata.posterior.attrs["clvmodels"] = json.dumps(
        {"format_version": 1, "model": cls.__name__, "settings": settings, "method": "fake",
         "design": mle.design_.to_dict()})
    m = cls(**settings)
    m.idata_ = idata
    m.design_ = mle.design_
    return m


# ---- the PyMC model ---------------------------------------------------------------------
def test_log_density_is_the_mle_likelihood_at_each_customers_parameters(small):
    """The model's log density at a point (baseline at the covariates' means, coefficients
    on the internal scale) = the numpy BG/NBD log-likelihood of every customer at the
    parameters the maximum-likelihood model with the same point on the user's scale
    gives them (from_params: the raw columns), plus the priors."""
    m = bayes.BGNBD(**BG_KW)
    codes, _, cols, z, w = m._fit_data(small)
    specs = m._prior_specs(cols, w)
    model, key, _ = m._build(cols, w, codes, 1, specs, z)
    assert key is not None and ("covariates", tuple(m.design_.names), m.design_.links) in key
    design, k = m.design_, 4
    x_std = np.r_[np.log([0.7, 5.5, 1.1, 3.5]), [0.3, 0.4, 0.5, -0.2]]
    point = model.initial_point()
    for j, n in enumerate(m.param_names):
        point[f"{n}_log__"] = x_std[j]
    point["coefficients"] = x_std[k:]
    logp = model.compile_logp(jacobian=False)(point)
    x_user = design.to_user_scale(k) @ x_std
    known = cm.BGNBD.from_params(**dict(zip(m.param_names, np.exp(x_user[:k]), strict=True)),
                                 **{n.replace("channel[", "").rstrip("]"): v for n, v in
                                    zip(design.names, x_user[k:], strict=True)})
    params = known._params_for(small.assign(
        search=(small["channel"] == "search").astype(float),
        shop=(small["channel"] == "shop").astype(float)))
    data = [small[c].to_numpy(float) for c in ("frequency", "recency", "T")]
    expected = bgnbd.loglik(*params, *data).sum()
    for j, n in enumerate(m.param_names):
        mu, sigma = specs[n][1]["mu"], specs[n][1]["sigma"]
        expected += stats.lognorm(s=sigma, scale=np.exp(mu)).logpdf(np.exp(x_std[j]))
    expected += stats.norm(0, COEFFICIENT_PRIOR_SD).logpdf(x_std[k:]).sum()
    assert logp == pytest.approx(expected, rel=1e-10)


def test_without_covariates_the_model_is_unchanged(small):
    """No covariates (None or empty lists): no design, the same graph, cache key and
    free variables as the plain model."""
    plain = bayes.BGNBD()
    empty = bayes.BGNBD(purchase_covariates=[], dropout_covariates=None)
    built = []
    for m in (plain, empty):
        codes, _, cols, z, w = m._fit_data(small)
        assert m.design_ is None and z is None
        model, key, shared = m._build(cols, w, codes, 1, m._prior_specs(cols, w), z)
        built.append((key, sorted(shared), [v.name for v in model.free_RVs]))
    assert built[0] == built[1]
    assert sorted(built[0][2]) == ["a", "alpha", "b", "r"]
    assert not any("covariates" in str(part) for part in built[0][0])


def test_user_scale_inverts_the_internal_scale(small):
    """Draws in the sampler's coordinates map to the maximum-likelihood parametrisation:
    at the MLE's internal-scale optimum the stored posterior is its params_."""
    mle = cm.BGNBD(**BG_KW).fit(small)
    m = bayes.BGNBD(**BG_KW)
    m.design_ = mle.design_
    k = 4
    x_user = np.r_[np.log(mle.params_.to_numpy()[:k]), mle.params_.to_numpy()[k:]]
    x_std = np.linalg.solve(mle.design_.to_user_scale(k), x_user)
    post = az.from_dict(
        posterior={**{n: np.exp(x_std[j])[None, None] for j, n in enumerate(m.param_names)},
                   "coefficients": x_std[k:][None, None]},
        coords={"covariate": mle.design_.names}, dims={"coefficients": ["covariate"]},
    ).posterior
    out = m._to_user_scale(post)
    for n in m.param_names:
        assert float(out[n].values.ravel()[0]) == pytest.approx(mle.params_[n], rel=1e-12)
    np.testing.assert_allclose(out["coefficients"].values[0, 0], mle.params_.iloc[k:],
                               rtol=1e-12)


# ---- predictions on fake posteriors -----------------------------------------------------
def test_one_draw_predicts_as_the_mle_model_with_covariates(small):
    """A posterior of one draw at the MLE's estimates predicts exactly what the
    maximum-likelihood covariate model predicts, customer by customer."""
    mle = cm.BGNBD(**BG_KW).fit(small)
    m = fake_like(bayes.BGNBD, mle, **BG_KW)
    np.testing.assert_allclose(m.expected_purchases(13, small)["mean"],
                               mle.expected_purchases(13, small), rtol=1e-12)
    np.testing.assert_allclose(m.probability_alive(small)["mean"],
                               mle.probability_alive(small), rtol=1e-12)
    point = copy.deepcopy(mle)
    del point.cov_  # no covariance: the intervals at the estimates, as the one draw
    pd.testing.assert_frame_equal(m.prediction_interval(13, small, 0.8),
                                  point.prediction_interval(13, small, 0.8))
    new = pd.DataFrame({"age": [30.0, 50.0], "loyal": [0, 1], "channel": ["shop", "email"]})
    np.testing.assert_allclose(m.expected_purchases_new(26, new)["mean"],
                               mle.expected_purchases_new(26, new), rtol=1e-12)
    one = m.expected_purchases_new(26, {"age": 30.0, "loyal": 0, "channel": "shop"})
    assert one["mean"].iloc[0] == pytest.approx(
        mle.expected_purchases_new(26, {"age": 30.0, "loyal": 0, "channel": "shop"}),
        rel=1e-12)
    # each customer's simulated futures come from their own parameters: customers who
    # differ only in their covariates get different predictive distributions
    draws, codes = m.customer_draws(small, 1)
    assert len(np.unique(codes)) == len(small[["age", "loyal", "channel"]].drop_duplicates())
    sims = m.posterior_predictive(13, small, n_draws=1, random_seed=0)
    assert sims.shape == (1, len(small))


# the data are BG/NBD customers: the Pareto/NBD's (s, beta) drift along a flat ridge, and
# its fit says so (a StatisticalWarning); the predictions do not move along that ridge
@pytest.mark.filterwarnings("ignore::clvmodels.errors.StatisticalWarning")
@pytest.mark.parametrize("bayes_cls, mle_cls", [(bayes.ParetoNBD, cm.ParetoNBD),
                                                 (bayes.MBGNBD, cm.MBGNBD)])
def test_pareto_nbd_and_mbg_nbd_take_covariates_as_their_mle_twins(small, bayes_cls, mle_cls):
    """The generic hook applies to the Bayesian Pareto/NBD and MBG/NBD by inheritance:
    their own covariate links (the Pareto/NBD scales beta, not a and b), and a one-draw
    posterior at the MLE predicts what the maximum-likelihood covariate model predicts."""
    assert bayes_cls.covariate_links == mle_cls.covariate_links
    mle = mle_cls(**BG_KW, lr_tests=False).fit(small)
    m = fake_like(bayes_cls, mle, **BG_KW)
    head = small.head(400)
    np.testing.assert_allclose(m.expected_purchases(13, head)["mean"],
                               mle.expected_purchases(13, head), rtol=1e-10)
    np.testing.assert_allclose(m.probability_alive(head)["mean"],
                               mle.probability_alive(head), rtol=1e-10)
    point = copy.deepcopy(mle)
    del point.cov_
    pd.testing.assert_frame_equal(m.prediction_interval(13, head, 0.8),
                                  point.prediction_interval(13, head, 0.8))
    # and the model's own fit (its mode) lands on the maximum-likelihood coefficients
    fitted = bayes_cls(**BG_KW).fit(small, method="map", random_seed=0)
    got = fitted.covariate_summary()["mean"]
    se = mle.se_[got.index]
    # (half a standard error: the N(0, 1) prior pulls the weakly identified drop-out
    # coefficients, se ~0.5 here, a little towards 0)
    assert np.all(np.abs(got - mle.params_[got.index]) < 0.5 * se)


def test_clv_and_spend_use_each_customers_covariates(small):
    """CLV at one draw of covariate models = the maximum-likelihood CLV formula with
    each customer's parameters; the spend model's coefficient scales the mean spend."""
    mle_bg = cm.BGNBD(**BG_KW).fit(small)
    mle_gg = cm.GammaGamma(covariates=["loyal"]).fit(small)
    assert mle_gg.params_["spend:loyal"] == pytest.approx(0.3, abs=0.1)
    bg = fake_like(bayes.BGNBD, mle_bg, **BG_KW)
    gg = fake_like(bayes.GammaGamma, mle_gg, covariates=["loyal"])
    np.testing.assert_allclose(gg.expected_spend(small)["mean"],
                               mle_gg.expected_spend(small), rtol=1e-12)
    got = bayes.customer_lifetime_value(bg, gg, small, horizon=52, period=4)
    want = cm.customer_lifetime_value(mle_bg, mle_gg, small, horizon=52, period=4)
    np.testing.assert_allclose(got["mean"], np.asarray(want), rtol=1e-10)


def test_many_draws_summaries_are_per_draw_means(small):
    """With several draws each customer's mean is the mean over draws of the formula
    at that draw's per-customer parameters (the chunked evaluation loses nothing)."""
    mle = cm.BGNBD(**BG_KW).fit(small)
    m = fake_like(bayes.BGNBD, mle, n_draws=30, spread=0.05, **BG_KW)
    post = m.idata_.posterior
    rows = small.iloc[:200]
    z = mle.design_.raw_matrix(rows)
    data = [rows[c].to_numpy(float) for c in ("frequency", "recency", "T")]
    by_draw = []
    for d in range(30):
        theta = np.array([float(post[n].values[0, d]) for n in m.param_names])
        factors = np.exp(cov.row_log_params(np.zeros(4), post["coefficients"].values[0, d],
                                            z, mle.design_))
        by_draw.append(bgnbd.expected_purchases(*(theta * factors).T, 13.0, *data))
    got = m.expected_purchases(13, rows, memory_limit=4096)
    np.testing.assert_allclose(got["mean"], np.mean(by_draw, axis=0), rtol=1e-10)
    table = m.covariate_summary()
    assert list(table.index) == mle.design_.names
    assert table.loc["dropout:channel[shop]", "reference"] == "channel=email"


# ---- errors -------------------------------------------------------------------------------
def test_bad_covariates_raise_the_mle_errors(small):
    """Missing, constant or incomplete columns: the maximum-likelihood models' DataError,
    raised before anything is compiled; predictions need the covariate columns."""
    with pytest.raises(DataError, match="region.*not found"):
        bayes.BGNBD(purchase_covariates=["region"]).fit(small)
    with pytest.raises(DataError, match="constant"):
        bayes.BGNBD(dropout_covariates=["one"]).fit(small.assign(one=1.0))
    holes = small.assign(age=small["age"].where(np.arange(len(small)) % 10 != 0))
    with pytest.raises(DataError, match=r"'age'.*missing values \(300 rows\)"):
        bayes.BGNBD(purchase_covariates=["age"]).fit(holes)
    with pytest.raises(TypeError, match="list of column names"):
        bayes.BGNBD(purchase_covariates="age").fit(small)
    mle = cm.BGNBD(**BG_KW).fit(small)
    m = fake_like(bayes.BGNBD, mle, **BG_KW)
    with pytest.raises(DataError, match="age"):
        m.expected_purchases(13, small.drop(columns="age"))
    with pytest.raises(DataError, match="channel.*not seen"):
        m.expected_purchases_new(13, {"age": 30.0, "loyal": 0, "channel": "radio"})


def test_save_and_load_keep_the_design(small, tmp_path):
    mle = cm.BGNBD(**BG_KW).fit(small)
    m = fake_like(bayes.BGNBD, mle, n_draws=5, spread=0.05, **BG_KW)
    m.method_ = "fake"
    m.save(tmp_path / "m.nc")
    back = bayes.BGNBD.load(tmp_path / "m.nc")
    assert back.design_ == m.design_
    assert back.purchase_covariates == ["age", "loyal"]
    pd.testing.assert_frame_equal(back.expected_purchases(13, small),
                                  m.expected_purchases(13, small))


def test_log_offsets_work_for_draws():
    """The one per-customer mapping with coefficient draws: each draw's row equals the
    single-vector result."""
    design = cov.Design({"purchase": (cov.Term("u"),), "dropout": (cov.Term("v"),)},
                        ((1, "purchase", -1), (2, "dropout", 1), (3, "dropout", 1)))
    z = np.random.default_rng(0).normal(size=(7, 2))
    coef = np.random.default_rng(1).normal(size=(5, 2))
    batch = cov.row_log_params(np.zeros(4), coef, z, design)
    for d in range(5):
        np.testing.assert_array_equal(batch[d], cov.row_log_params(np.zeros(4), coef[d], z,
                                                                   design))


# ---- sampling (slow) ----------------------------------------------------------------------
def _within(fitted_summary, truth, names, n_sd=3.0):
    for name, value in truth.items():
        got = names.get(name, name)
        row = fitted_summary.loc[got]
        assert abs(row["mean"] - value) < n_sd * row["sd"], (name, row.to_dict(), value)


@pytest.mark.slow
def test_bgnbd_recovers_known_coefficients_and_agrees_with_mle():
    """20,000 simulated customers: every coefficient within 3 posterior sd of the truth,
    posterior means within 0.3 posterior sd of the maximum-likelihood estimates, and the
    fit converges (2 chains x 500 draws)."""
    rfm = simulate_bg(20_000, 7)
    mle = cm.BGNBD(**BG_KW).fit(rfm)
    m = bayes.BGNBD(**BG_KW).fit(rfm, draws=500, tune=500, chains=2, random_seed=1)
    assert m.convergence_.passed, m.convergence_.message()
    table = m.covariate_summary()
    coefs = {k: v for k, v in TRUE_BG.items() if ":" in k}
    _within(table, coefs, CHANNEL_NAMES)
    for name in table.index:
        assert abs(table.loc[name, "mean"] - mle.params_[name]) < 0.3 * table.loc[name, "sd"]
    post = m.idata_.posterior
    for n in m.param_names:
        draws = post[n].values.ravel()
        assert abs(np.log(draws).mean() - np.log(TRUE_BG[n])) < 3 * np.log(draws).std()


@pytest.mark.slow
def test_gammagamma_recovers_spend_coefficients():
    """20,000 simulated repeat buyers: both spend coefficients within 3 posterior sd of
    the truth and within 0.3 sd of the maximum-likelihood estimates; converged."""
    frame = _spend_frame(round_age=True)
    mle = cm.GammaGamma(covariates=["age", "loyal"]).fit(frame)
    m = bayes.GammaGamma(covariates=["age", "loyal"]).fit(frame, draws=600, tune=600,
                                                          chains=2, random_seed=2)
    assert m.convergence_.passed, m.convergence_.message()
    table = m.covariate_summary()
    _within(table, {"spend:age": 0.01, "spend:loyal": 0.3}, {})
    for name in table.index:
        assert abs(table.loc[name, "mean"] - mle.params_[name]) < 0.3 * table.loc[name, "sd"]


def simulate_segments_with_covariates(sizes, seed=3):
    """Segments with known BG/NBD parameters (log-normal around a population, spread
    0.4) whose customers also carry covariates with known coefficients (age on the
    purchase rate, loyal on the drop-out): ``(rfm, segment truth, coefficients)``."""
    rng = np.random.default_rng(seed)
    centre = {"r": 0.8, "alpha": 5.0, "a": 0.9, "b": 3.0}
    coefs = {"purchase:age": 0.02, "dropout:loyal": -0.6}
    truth, frames = {}, []
    for s, n in enumerate(sizes):
        theta = {k: v * float(np.exp(0.4 * rng.standard_normal())) for k, v in centre.items()}
        truth[s] = theta
        z = pd.DataFrame({"age": rng.normal(40, 12, n).round(),
                          "loyal": rng.integers(0, 2, n).astype(float)})
        T = rng.integers(26, 53, n).astype(float)
        sim = cm.BGNBD.from_params(**theta, **coefs).simulate(n, T, random_state=rng,
                                                              covariates=z)
        sim["recency"] = np.minimum(np.round(sim["recency"] * 7) / 7, sim["T"])
        sim["segment"] = f"s{s}"
        frames.append(sim)
    rfm = pd.concat(frames, ignore_index=True)
    return rfm, truth, coefs


@pytest.mark.slow
def test_segments_with_covariates_recover_both():
    """Hierarchical BG/NBD with customer-level covariates on 3 segments: the segments'
    own parameters (log scale) and the coefficients within 3 posterior sd of the truth,
    and the convergence verdict passes."""
    rfm, truth, coefs = simulate_segments_with_covariates([3_000, 2_000, 1_500])
    m = bayes.SegmentBGNBD(purchase_covariates=["age"], dropout_covariates=["loyal"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a non-converged fit would warn
        # pytensor's notice on its first compilation in the process, not the fit's
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
        m.fit(rfm, draws=1000, tune=1000, chains=2, random_seed=4)
    assert m.convergence_.passed, m.convergence_.message()
    _within(m.covariate_summary(), coefs, {})
    post = m.idata_.posterior
    for s, theta in truth.items():
        for n, value in theta.items():
            logs = np.log(post[n].sel(segment=f"s{s}").values.ravel())
            assert abs(logs.mean() - np.log(value)) < 3 * logs.std(), (s, n)
    # predictions: each customer at their segment's parameters and own covariates
    one = rfm.groupby("segment").head(3)
    mean = m.expected_purchases(13, one)["mean"]
    assert np.isfinite(mean).all() and (mean > 0).all()


def test_segment_model_takes_covariates_in_its_settings():
    m = bayes.SegmentGammaGamma(segment="cohort", covariates=["loyal"])
    assert m._covariate_spec() == {"spend": ["loyal"]}
    assert m._settings()["covariates"] == ["loyal"]
    h = bayes.SegmentBGNBD(purchase_covariates=["age"])
    assert h._covariate_spec() == {"purchase": ["age"], "dropout": None}
    assert gammagamma.PARAM_NAMES == bayes.GammaGamma.param_names
