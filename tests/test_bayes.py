"""Bayesian models without sampling: the pytensor likelihood twins, the PyMC model they
build, and predictions, CLV and persistence on fake posteriors (InferenceData built from
numpy draws)."""

from __future__ import annotations

import json
import tracemalloc

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clvmodels import bayes
from clvmodels.bayes import _predict, _sampling
from clvmodels.clv import customer_lifetime_value as mle_clv
from clvmodels.errors import DataError, NotFittedError
from clvmodels.models import bgnbd, gammagamma
from clvmodels.models.bgnbd import BGNBD as MLEBGNBD
from clvmodels.models.gammagamma import GammaGamma as MLEGammaGamma

BG_MLE = {"r": 0.2425945, "alpha": 4.4136019, "a": 0.7929199, "b": 2.4258881}
GG_MLE = {"p": 6.25, "q": 3.74, "v": 15.44}


def fake(cls, draws: dict, model=None, **settings):
    """A model of class ``cls`` whose posterior holds the given draws (chain, draw[, seg])."""
    posterior = {k: np.asarray(v, dtype=float) for k, v in draws.items()}
    coords, dims = {}, {}
    if "segments" in settings:
        coords["segment"] = settings.pop("segments")
        dims = {k: ["segment"] for k, v in posterior.items() if v.ndim == 3}
    idata = az.from_dict(posterior=posterior, coords=coords, dims=dims)
    idata.posterior.attrs["clvmodels"] = json.dumps(
        {"format_version": 1, "model": cls.__name__, "settings": settings, "method": "fake"}
    )
    m = cls(**settings)
    m.idata_ = idata
    return m


def around(values: dict, n_chains=2, n_draws=50, spread=0.05, seed=0, n_seg=None):
    """Log-normal draws around the given values."""
    rng = np.random.default_rng(seed)
    shape = (n_chains, n_draws) + ((n_seg,) if n_seg else ())
    return {k: v * np.exp(spread * rng.standard_normal(shape)) for k, v in values.items()}


@pytest.fixture(scope="module")
def rfm(cdnow_rfm):
    return cdnow_rfm


# ---- the pytensor twins ----------------------------------------------------------------
_COMPILED = {}


def _pt_eval(f, params, data):
    """Evaluate f(*params, *data, ops=pytensor_ops()) with pytensor (compiled once per f)."""
    if f not in _COMPILED:
        import pytensor
        import pytensor.tensor as pt

        from clvmodels._math import pytensor_ops

        p = [pt.dscalar() for _ in params]
        d = [pt.dvector() for _ in data]
        _COMPILED[f] = pytensor.function(p + d, f(*p, *d, ops=pytensor_ops()))
    return _COMPILED[f](*params, *data)


def _extreme_rows():
    x = np.array([0, 1, 2, 10, 100, 500, 500, 0, 3], dtype=float)
    T = np.array([0.01, 1.0, 5.0, 100.0, 1000.0, 10000.0, 600.0, 10000.0, 10000.0])
    t_x = np.minimum(T, np.array([0, 0.5, 0.1, 99.99, 1.0, 9999.0, 600.0, 0, 1e-3]))
    return x, t_x, T


@pytest.mark.parametrize("scale", [1e-3, 1e-1, 1.0, 1e1, 1e3])
def test_bgnbd_twin_extremes(scale):
    x, t_x, T = _extreme_rows()
    grid = [
        (scale, scale, scale, scale),
        (scale, 1e3, 1e-3, scale),
        (1e-3, scale, 1e3, 1.0),
        (1e3, 1e-3, scale, 1e3),
    ]
    for params in grid:
        ref = bgnbd.loglik(*params, x, t_x, T)
        got = _pt_eval(bgnbd.loglik, params, (x, t_x, T))
        assert np.all(np.isfinite(ref)) and np.all(np.isfinite(got))
        np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-300)


def test_bgnbd_twin_cdnow(rfm):
    data = [rfm[c].to_numpy(float) for c in ("frequency", "recency", "T")]
    for params in (BG_MLE, {"r": 1.0, "alpha": 30.0, "a": 0.1, "b": 20.0}):
        p = list(params.values())
        np.testing.assert_allclose(
            _pt_eval(bgnbd.loglik, p, data), bgnbd.loglik(*p, *data), rtol=1e-8
        )


def test_gammagamma_twin(rfm):
    rep = rfm[rfm["frequency"] > 0]
    data = [rep["frequency"].to_numpy(float), rep["monetary_value"].to_numpy(float)]
    ext = [np.array([1.0, 2.0, 500.0, 1.0, 100.0]), np.array([1e-2, 1e4, 1.0, 1e3, 35.0])]
    for params in (GG_MLE, {"p": 1e-3, "q": 1e3, "v": 1e-3}, {"p": 1e3, "q": 1e-3, "v": 1e3}):
        p = list(params.values())
        for d in (data, ext):
            ref = gammagamma.loglik(*p, *d)
            assert np.all(np.isfinite(ref))
            np.testing.assert_allclose(_pt_eval(gammagamma.loglik, p, d), ref, rtol=1e-8)


def _model_logp(m, frame, point, return_model=False, **fit_kw):
    """log posterior density of the PyMC model m builds on ``frame`` at ``point`` (with
    ``return_model``: the compiled function of a point instead of its value, and the
    model)."""
    from clvmodels.models._base import compress_rows

    rows = m._fit_rows(frame)
    codes, labels = m._fit_codes(frame, rows)
    unique, w = compress_rows([codes, *m._data(rows)])
    n_groups = 1 if labels is None else len(labels)
    specs = m._prior_specs(unique[1:], w)
    model, key, shared = m._build(unique[1:], w, unique[0].astype(np.int64), n_groups, specs)
    ip = model.initial_point()
    f = model.compile_logp(jacobian=False)
    if return_model:
        return (lambda p: f({**ip, **{k: np.asarray(v, float) for k, v in p.items()}})), \
            specs, key, shared, model
    for name, value in point.items():
        ip[name] = np.asarray(value, dtype=float)
    return f(ip), specs, key, shared


def test_bgnbd_model_is_weighted_sum_of_numpy_loglik(rfm):
    """The PyMC model's log density = sum over ALL customers of the numpy loglik + priors:
    compression with weights loses nothing."""
    m = bayes.BGNBD()
    point = {f"{k}_log__": np.log(v) for k, v in BG_MLE.items()}
    logp, specs, key, _ = _model_logp(m, rfm, point)
    data = [rfm[c].to_numpy(float) for c in ("frequency", "recency", "T")]
    expected = bgnbd.loglik(*BG_MLE.values(), *data).sum()
    for k, v in BG_MLE.items():
        mu, sigma = specs[k][1]["mu"], specs[k][1]["sigma"]
        expected += stats.lognorm(s=sigma, scale=np.exp(mu)).logpdf(v)
    assert logp == pytest.approx(expected, rel=1e-10)
    assert key is not None


def test_gammagamma_model_uses_repeat_buyers(rfm):
    m = bayes.GammaGamma()
    point = {f"{k}_log__": np.log(v) for k, v in GG_MLE.items()}
    logp, specs, _, _ = _model_logp(m, rfm, point)
    rep = rfm[rfm["frequency"] > 0]
    expected = gammagamma.loglik(
        *GG_MLE.values(), rep["frequency"].to_numpy(float), rep["monetary_value"].to_numpy(float)
    ).sum()
    for k, v in GG_MLE.items():
        mu, sigma = specs[k][1]["mu"], specs[k][1]["sigma"]
        expected += stats.lognorm(s=sigma, scale=np.exp(mu)).logpdf(v)
    assert logp == pytest.approx(expected, rel=1e-10)
    # the published fit is -4055.92 with the MLE; the likelihood part must match
    loglik = gammagamma.loglik(
        *GG_MLE.values(), rep["frequency"].to_numpy(float), rep["monetary_value"].to_numpy(float)
    ).sum()
    assert loglik == pytest.approx(-4055.92, abs=0.5)


def _segment_logp_check(rfm, m, dev, logs_of):
    """The model's log density at a point against one computed here: each customer's
    loglik at its own segment's parameters, plus the (hyper)priors. ``dev`` gives each
    population coordinate's deviations of the two segments from their average (summing
    to zero), ``logs_of`` turns the coordinate values into the four logs. A coordinate
    sampled with weight ``lam`` of the centred form has ``t = dev / sigma^(1 - lam)``
    with density ZeroSumNormal(sigma^lam); dividing by the Jacobian ``sigma^(1 - lam)``
    per free dimension makes it a density of the deviations, the same for every ``lam``."""
    import pytensor.tensor as pt

    frame = rfm.assign(seg=np.where(rfm["T"] > 35, "early", "late"))
    codes = (frame["seg"] == "late").to_numpy().astype(int)
    sig = 0.2
    centre = {c: 0.1 * i - 0.3 for i, c in enumerate(dev)}
    stem = {c: f"{c}_log" if c in BG_MLE else c for c in dev}
    value, point, jacobian = {}, {}, 0.0
    model_logp, specs, key, shared, model = _model_logp(m, frame, {}, return_model=True)
    # "auto" with a shared spread samples along the rows of ``basis_`` (orthonormal)
    basis = getattr(m, "basis_", pd.DataFrame(np.eye(len(dev)), index=list(dev), columns=list(dev)))
    sampled = {k: sum(basis.loc[k, c] * np.array(dev[c]) for c in dev) for k in basis.index}
    for c in dev:
        point[f"{stem[c]}_mu"] = centre[c]
        value[c] = centre[c] + np.array(dev[c])
    for c in sampled:
        lam = float(m.centering_[c])
        t = sampled[c] / sig ** (1 - lam)
        rv = model[f"{c}_t"]
        point[f"{c}_t_zerosum__"] = model.rvs_to_transforms[rv].forward(pt.as_tensor(t)).eval()
        jacobian -= np.log(sig ** (1 - lam))  # one free dimension (two segments)
    point["segment_sigma_log__"] = np.log(sig)
    logp = model_logp(point) + jacobian
    theta = {k: np.exp(v)[codes] for k, v in logs_of(value).items()}
    data = [frame[c].to_numpy(float) for c in ("frequency", "recency", "T")]
    expected = bgnbd.loglik(*(theta[k] for k in BG_MLE), *data).sum()
    s = specs["segment_sigma"][1]
    expected += stats.lognorm(s=s["sigma"], scale=np.exp(s["mu"])).logpdf(sig)
    for c in dev:
        s = specs[f"{stem[c]}_mu"][1]
        expected += stats.norm(s["mu"], s["sigma"]).logpdf(centre[c])
        # ZeroSumNormal(sigma) of two values (d, -d): one free normal dimension
        expected += stats.norm(0, sig).logpdf(dev[c][0]) - 0.5 * dev[c][0] ** 2 / sig**2
    assert logp == pytest.approx(expected, rel=1e-10)
    assert shared["data_segment"].max() == 1
    return specs


@pytest.mark.parametrize(
    "parametrization", ["non_centered", {"a": 0.5, "b": "centered"}, "centered"]
)
def test_segment_model_log_density_independent_logs(rfm, parametrization):
    """Independent logs: the centred, partly and non-centred forms give the same model."""
    m = bayes.SegmentBGNBD(
        segment="seg", parametrization=parametrization, population="independent"
    )
    dev = {"r": [0.3, -0.3], "alpha": [0.1, -0.1], "a": [-0.5, 0.5], "b": [0.0, 0.0]}
    _segment_logp_check(rfm, m, dev, lambda v: v)


@pytest.mark.parametrize(
    "parametrization",
    ["auto", "rotated", "non_centered", "centered", {"a_b_u": "centered", "r_alpha_v": 0.3}],
)
def test_segment_model_log_density_pairs(rfm, parametrization):
    """Pairs population: log r = (v + u)/sqrt 2, log alpha = (v - u)/sqrt 2 (and a, b);
    the centre's prior is the rotated prior of the two logs. "rotated": "auto" along the
    pilot's directions (the Gamma-Gamma twin's default), the same density."""
    rotated = parametrization == "rotated"
    m = bayes.SegmentBGNBD(segment="seg", parametrization="auto" if rotated else parametrization)
    m._rotate = rotated or m._rotate
    dev = {"r_alpha_u": [0.3, -0.3], "r_alpha_v": [0.2, -0.2], "a_b_u": [-0.5, 0.5],
           "a_b_v": [0.05, -0.05]}

    def logs_of(v):
        h = np.sqrt(0.5)
        return {"r": h * (v["r_alpha_v"] + v["r_alpha_u"]),
                "alpha": h * (v["r_alpha_v"] - v["r_alpha_u"]),
                "a": h * (v["a_b_v"] + v["a_b_u"]), "b": h * (v["a_b_v"] - v["a_b_u"])}

    specs = _segment_logp_check(rfm, m, dev, logs_of)
    if rotated:  # the pilot's directions: orthonormal, coordinates'
        assert list(m.basis_.columns) == list(dev) and list(m.centering_.index) == list(
            m.basis_.index)
        np.testing.assert_allclose(m.basis_ @ m.basis_.T, np.eye(4), atol=1e-5)
    else:
        assert not hasattr(m, "basis_") and list(m.centering_.index) == list(dev)
    base = bayes.BGNBD()._prior_specs(list(m._data(rfm)), np.ones(len(rfm)))
    m_r, m_alpha = base["r"][1]["mu"], base["alpha"][1]["mu"]
    assert specs["r_alpha_u_mu"][1]["mu"] == pytest.approx((m_r - m_alpha) * np.sqrt(0.5))
    assert specs["r_alpha_v_mu"][1]["mu"] == pytest.approx((m_r + m_alpha) * np.sqrt(0.5))
    assert specs["r_alpha_v_mu"][1]["sigma"] == pytest.approx(2.0)
    assert specs["segment_sigma"] == ("LogNormal", {"mu": pytest.approx(np.log(0.2)),
                                                    "sigma": 0.8})


def test_auto_centering_from_pilot_fits():
    """"auto": each coordinate's weight of the centred form is s^2 / (s^2 + se^2) at half
    the pilot spread s (at least the spread prior's 5% quantile) and the median standard
    error se of the segments' maximum-likelihood fits: near 1 for coordinates the segments'
    data pin down (large segments that differ), smaller where the segments do not differ."""
    from clvmodels.bayes import segments

    pop = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
    differ, _ = bayes.simulate_segments([3000, 3000, 3000], pop, spread=0.7, random_state=1)
    alike, _ = bayes.simulate_segments([3000, 3000, 3000], pop, spread=0.0, random_state=1)
    coords = ["r_alpha_u", "r_alpha_v", "a_b_u", "a_b_v"]
    m = bayes.SegmentBGNBD(segment="segment", parametrization=dict.fromkeys(coords, "auto"))
    rotated = bayes.SegmentBGNBD(segment="segment")  # along the pilot's directions
    rotated._rotate = True  # (the Gamma-Gamma twin's default; the mechanism is the same)
    assert bayes.SegmentGammaGamma._rotate and not bayes.SegmentBGNBD._rotate
    lam = {}
    for name, rfm in (("differ", differ), ("alike", alike)):
        cols = m._data(rfm)
        codes = rfm["segment"].to_numpy()
        m._set_groups(codes, np.ones(len(codes)), 3, cols)
        lam[name] = m.centering_.copy()
        assert not hasattr(m, "basis_")
        rotated._set_groups(codes, np.ones(len(codes)), 3, cols)
        basis = rotated.basis_.to_numpy()
        np.testing.assert_allclose(basis @ basis.T, np.eye(4), atol=1e-5)
        _, _, cov = m._pilot(codes, np.ones(len(codes)), 3, cols)
        shape = sum(c / np.trace(c) for c in cov)
        inner = basis @ shape @ basis.T  # diagonal: uncorrelated directions
        assert np.abs(inner - np.diag(np.diag(inner))).max() < 1e-5
        se_dir = np.sqrt(np.einsum("kc,scd,kd->sk", basis, cov, basis))
        target = max(rotated.pilot_spread_.iloc[0] / 2, segments.AUTO_SPREAD_FLOOR) ** 2
        np.testing.assert_allclose(
            rotated.centering_, np.round(target / (target + np.median(se_dir, axis=0) ** 2), 2)
        )
        spread = m.pilot_spread_.iloc[0]
        est, se, _ = m._pilot(codes, np.ones(len(codes)), 3, cols)
        excess = np.clip(est.var(axis=0, ddof=1) - (se**2).mean(axis=0), 0, None)
        assert spread == pytest.approx(np.sqrt(excess.mean()))
        target = max(spread / 2, segments.AUTO_SPREAD_FLOOR) ** 2  # the prior's 5% quantile
        np.testing.assert_allclose(
            lam[name], np.round(target / (target + np.median(se, axis=0) ** 2), 2)
        )
    assert lam["differ"]["r_alpha_u"] > 0.9 and lam["differ"]["a_b_u"] > 0.9
    assert (lam["alike"] <= lam["differ"]).all() and lam["alike"]["a_b_v"] < 0.1
    assert segments.AUTO_SPREAD_FLOOR == pytest.approx(0.2 * np.exp(-1.645 * 0.8))
    one = bayes.SegmentBGNBD(segment="segment", spread="per_coordinate")
    one._set_groups(codes, np.ones(len(codes)), 3, cols)
    assert one.pilot_spread_.nunique() > 1  # a spread per coordinate


def test_parametrization_errors():
    with pytest.raises(ValueError, match="parametrization must be"):
        bayes.SegmentBGNBD(parametrization="funnel")._set_groups(np.zeros(3, int), None, 2)
    with pytest.raises(ValueError, match=r"weight of the centred form in \[0, 1\]"):
        bayes.SegmentBGNBD(parametrization=[True])._set_groups(np.zeros(3, int), None, 2)
    with pytest.raises(ValueError, match="parametrization must be"):
        bayes.SegmentBGNBD(parametrization=1.5)._set_groups(np.zeros(3, int), None, 2)
    with pytest.raises(ValueError, match="spread must be"):
        bayes.SegmentBGNBD(spread="pooled")
    with pytest.raises(ValueError, match="unknown parameter"):
        bayes.SegmentBGNBD(parametrization={"p": "centered"})._set_groups(None, None, 2)
    with pytest.raises(ValueError, match="unknown parameter.*r_alpha_u"):
        bayes.SegmentBGNBD(parametrization={"r": "centered"})._set_groups(None, None, 2)
    with pytest.raises(ValueError, match="population must be"):
        bayes.SegmentBGNBD(population="joint")


# ---- priors ----------------------------------------------------------------------------
def test_default_priors_documented_values(rfm):
    m = bayes.BGNBD()
    x, t_x, T = m._data(rfm)
    specs = m._prior_specs([x, t_x, T], np.ones(len(x)))
    assert specs["r"] == ("LogNormal", {"mu": 0.0, "sigma": 2.0})
    assert specs["alpha"][1]["mu"] == pytest.approx(np.log(T.sum() / x.sum()))


def test_priors_override_and_errors(rfm):
    m = bayes.BGNBD(priors={"r": ("Gamma", {"alpha": 2, "beta": 4})})
    x, t_x, T = m._data(rfm)
    specs = m._prior_specs([x, t_x, T], np.ones(len(x)))
    assert specs["r"] == ("Gamma", {"alpha": 2.0, "beta": 4.0})
    with pytest.raises(ValueError, match="no parameter 'rr'"):
        bayes.BGNBD(priors={"rr": ("Gamma", {"alpha": 2, "beta": 4})})._prior_specs(
            [x, t_x, T], np.ones(len(x))
        )
    with pytest.raises(ValueError, match="PyMC distribution name"):
        bayes.BGNBD(priors={"r": ("NotADist", {})})._prior_specs([x, t_x, T], np.ones(len(x)))
    with pytest.raises(ValueError, match="must be a finite number"):
        bayes.BGNBD(priors={"r": ("Gamma", {"alpha": np.nan, "beta": 1})})._prior_specs(
            [x, t_x, T], np.ones(len(x))
        )
    seg = bayes.SegmentBGNBD(
        priors={"b_log_sigma": ("HalfNormal", {"sigma": 0.1})},
        population="independent",
        spread="per_coordinate",
    )
    specs = seg._prior_specs([x, t_x, T], np.ones(len(x)))
    assert specs["b_log_sigma"] == ("HalfNormal", {"sigma": 0.1})
    assert specs["r_log_sigma"][0] == "LogNormal"
    seg = bayes.SegmentBGNBD(priors={"segment_sigma": ("HalfNormal", {"sigma": 0.1})})
    specs = seg._prior_specs([x, t_x, T], np.ones(len(x)))
    assert specs["segment_sigma"] == ("HalfNormal", {"sigma": 0.1})
    assert "a_b_u_sigma" not in specs  # one shared spread by default
    with pytest.raises(ValueError, match="no hyperparameter 'b_log_sigma'"):
        bayes.SegmentBGNBD(priors={"b_log_sigma": ("HalfNormal", {"sigma": 0.1})})._prior_specs(
            [x, t_x, T], np.ones(len(x))
        )
    with pytest.raises(ValueError, match="no hyperparameter 'r'"):
        bayes.SegmentBGNBD(priors={"r": ("Gamma", {"alpha": 1, "beta": 1})})._prior_specs(
            [x, t_x, T], np.ones(len(x))
        )


def test_fit_argument_errors(rfm):
    with pytest.raises(ValueError, match="method"):
        bayes.BGNBD().fit(rfm, method="hmc")
    with pytest.raises(ValueError, match="sampler"):
        bayes.BGNBD().fit(rfm, sampler="stan")
    with pytest.raises(DataError, match="frequency"):
        bayes.BGNBD().fit(rfm.drop(columns="frequency"))
    with pytest.raises(DataError, match="segment column not found"):
        bayes.SegmentBGNBD(segment="nope").fit(rfm)


# ---- predictions on fake posteriors -------------------------------------------------------
def test_not_fitted(rfm):
    with pytest.raises(NotFittedError):
        bayes.BGNBD().probability_alive(rfm)


def test_predictions_match_draw_by_draw(rfm):
    draws = around(BG_MLE)
    m = fake(bayes.BGNBD, draws)
    part = rfm.iloc[:300]
    data = [part[c].to_numpy(float) for c in ("frequency", "recency", "T")]
    flat = {k: v.reshape(-1, 1) for k, v in draws.items()}
    for got, values in (
        (m.expected_purchases(39, part), bgnbd.expected_purchases(*flat.values(), 39.0, *data)),
        (m.probability_alive(part), bgnbd.probability_alive(*flat.values(), *data)),
    ):
        assert list(got.columns) == ["mean", "sd", "hdi_low", "hdi_high"]
        assert got.index.equals(part.index)
        np.testing.assert_allclose(got["mean"], values.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(got["sd"], values.std(axis=0, ddof=1), rtol=1e-10, atol=1e-15)
        hdi = np.array([az.hdi(values[:, i], hdi_prob=0.94) for i in range(values.shape[1])])
        np.testing.assert_allclose(got[["hdi_low", "hdi_high"]].to_numpy(), hdi, rtol=1e-12)


def test_single_draw_equals_mle_predictions(rfm):
    m = fake(bayes.BGNBD, {k: [[v]] for k, v in BG_MLE.items()})
    mle = MLEBGNBD.from_params(**BG_MLE)
    ep = m.expected_purchases(39, rfm)
    np.testing.assert_allclose(ep["mean"], mle.expected_purchases(39, rfm), rtol=1e-12)
    assert (ep["sd"] == 0).all() and (ep["hdi_low"] == ep["mean"]).all()
    # Hardie's spot value
    one = pd.DataFrame({"frequency": [2], "recency": [30.43], "T": [38.86]})
    assert m.expected_purchases(39, one)["mean"].iloc[0] == pytest.approx(1.226, abs=5e-4)


def test_chunking_does_not_change_results(rfm):
    m = fake(bayes.BGNBD, around(BG_MLE, n_draws=200))
    big = m.expected_purchases(10, rfm)
    small = m.expected_purchases(10, rfm, memory_limit=8 * 200 * 7)  # 7 rows per chunk
    pd.testing.assert_frame_equal(big, small)


def test_bounded_memory():
    """20,000 distinct customers x 2,000 draws (320 MB as one array) in a few MB."""
    n, draws = 20_000, 2_000
    rng = np.random.default_rng(1)
    T = rng.uniform(1, 50, n)
    x = rng.integers(0, 20, n)
    rfm = pd.DataFrame(
        {"frequency": x, "recency": np.where(x > 0, T * rng.uniform(size=n), 0), "T": T}
    )
    m = fake(bayes.BGNBD, around(BG_MLE, n_chains=1, n_draws=draws))
    limit = 4 * 2**20
    tracemalloc.start()
    out = m.probability_alive(rfm, memory_limit=limit)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.shape == (n, 4) and out["mean"].between(0, 1).all()
    assert peak < 12 * limit  # the data frame copies are ~2 MB; a full array is 320 MB
    assert peak < n * draws * 8 / 10


def test_hdi_of_sorted_matches_arviz():
    rng = np.random.default_rng(3)
    values = rng.gamma(0.5, size=(5, 401))
    low, high = _predict.hdi_of_sorted(np.sort(values, axis=1), 0.9)
    for i in range(5):
        np.testing.assert_allclose([low[i], high[i]], az.hdi(values[i], hdi_prob=0.9))


def test_gammagamma_expected_spend(rfm):
    m = fake(bayes.GammaGamma, {k: [[v]] for k, v in GG_MLE.items()})
    mle = MLEGammaGamma.from_params(**GG_MLE)
    got = m.expected_spend(rfm)
    np.testing.assert_allclose(got["mean"], mle.expected_spend(rfm), rtol=1e-12)


def test_clv_single_draw_equals_mle_clv(rfm):
    m = fake(bayes.BGNBD, {k: [[v]] for k, v in BG_MLE.items()})
    gg = fake(bayes.GammaGamma, {k: [[v]] for k, v in GG_MLE.items()})
    got = bayes.customer_lifetime_value(m, gg, rfm, horizon=52, period=4, discount_rate=0.01)
    ref = mle_clv(
        MLEBGNBD.from_params(**BG_MLE),
        MLEGammaGamma.from_params(**GG_MLE),
        rfm,
        horizon=52,
        period=4,
        discount_rate=0.01,
    )
    np.testing.assert_allclose(got["mean"], ref, rtol=1e-10)
    assert (got["sd"] == 0).all()


def test_clv_pairs_draws_and_is_consistent(rfm):
    """CLV per draw = spend * discounted purchases: check one customer by hand."""
    m = fake(bayes.BGNBD, around(BG_MLE, n_draws=40))
    gg = fake(bayes.GammaGamma, around(GG_MLE, n_draws=25, seed=2))  # fewer draws
    part = rfm.iloc[:5]
    got = bayes.customer_lifetime_value(
        m, gg, part, horizon=12, period=4, discount_rate=0.1, margin=0.5
    )
    tdraws = [d.reshape(-1) for d in (m.idata_.posterior[k].values for k in BG_MLE)]
    sdraws = [d.reshape(-1) for d in (gg.idata_.posterior[k].values for k in GG_MLE)]
    i_t = np.linspace(0, 79, 50).round().astype(int)
    row = part.iloc[0]
    vals = []
    for i, j in zip(i_t, range(50), strict=True):
        p = [d[i] for d in tdraws]
        ends = [4.0, 8.0, 12.0]
        cum = [
            bgnbd.expected_purchases(*p, t, row["frequency"], row["recency"], row["T"])
            for t in ends
        ]
        per = np.diff(np.r_[0.0, np.ravel(cum)])
        spend = gammagamma.expected_spend(
            *[d[j] for d in sdraws], row["frequency"], row["monetary_value"]
        )
        vals.append(0.5 * spend * np.sum(per / 1.1 ** np.arange(1, 4)))
    assert got["mean"].iloc[0] == pytest.approx(np.mean(vals), rel=1e-10)


# ---- segments ------------------------------------------------------------------------------
def seg_fake(labels, n_seg_draws=30, population="pairs", spread="per_coordinate"):
    draws = around(BG_MLE, n_draws=n_seg_draws, n_seg=len(labels), spread=0.3)
    const = np.zeros((2, n_seg_draws))
    log = {k: np.log(v) for k, v in BG_MLE.items()}
    if population == "independent":
        for k in BG_MLE:
            draws[f"{k}_log_mu"] = log[k] + const
            draws[f"{k}_log_sigma"] = 0.3 + const
    else:
        for j, k in (("r", "alpha"), ("a", "b")):
            draws[f"{j}_{k}_u_mu"] = np.sqrt(0.5) * (log[j] - log[k]) + const
            draws[f"{j}_{k}_v_mu"] = np.sqrt(0.5) * (log[j] + log[k]) + const
            draws[f"{j}_{k}_u_sigma"] = draws[f"{j}_{k}_v_sigma"] = 0.3 + const
    if spread == "shared":
        draws = {k: v for k, v in draws.items() if not k.endswith("_sigma")}
        draws["segment_sigma"] = 0.25 + const
    h = fake(
        bayes.SegmentBGNBD, draws, segments=list(labels), segment="seg", population=population,
        spread=spread,
    )
    return h, draws


def test_segment_predictions_use_own_segment(rfm):
    h, draws = seg_fake(["a", "b", "c"])
    frame = rfm.iloc[:90].assign(seg=np.repeat(["c", "a", "b"], 30))
    got = h.expected_purchases(20, frame)
    for k, label in enumerate(["a", "b", "c"]):
        own = fake(bayes.BGNBD, {n: draws[n][:, :, k] for n in BG_MLE})
        part = frame[frame["seg"] == label]
        pd.testing.assert_frame_equal(got.loc[part.index], own.expected_purchases(20, part))
    with pytest.raises(DataError, match="not fitted on"):
        h.probability_alive(frame.assign(seg="zzz"))


def test_segment_params_table():
    h, draws = seg_fake([10, 20])
    table = h.segment_params()
    assert table.index.names == ["segment", "parameter"]
    assert list(table.index) == [(s, p) for s in (10, 20) for p in BG_MLE]
    assert list(table.columns) == ["mean", "sd", "hdi_low", "hdi_high"]
    assert table.loc[(20, "b"), "mean"] == pytest.approx(draws["b"][:, :, 1].mean())
    low, high = az.hdi(draws["b"][:, :, 1].ravel(), hdi_prob=0.94)
    assert table.loc[(20, "b"), "hdi_low"] == pytest.approx(low)
    assert table.loc[(20, "b"), "hdi_high"] == pytest.approx(high)
    pop = h.population_params()
    for k in BG_MLE:  # the population centre of the pairs, rotated back
        assert pop.loc[f"{k}_median", "mean"] == pytest.approx(BG_MLE[k])
    assert list(pop.index[4:]) == [f"{c}_sigma" for c in ("r_alpha_u", "r_alpha_v", "a_b_u",
                                                          "a_b_v")]
    pop = seg_fake([10, 20], population="independent")[0].population_params()
    assert pop.loc["b_median", "mean"] == pytest.approx(BG_MLE["b"])
    assert pop.loc["b_log_sigma", "mean"] == pytest.approx(0.3)
    pop = seg_fake([10, 20], spread="shared")[0].population_params()  # the default
    assert list(pop.index[4:]) == ["segment_sigma"]
    assert pop.loc["segment_sigma", "mean"] == pytest.approx(0.25)


# ---- persistence ---------------------------------------------------------------------------
@pytest.mark.parametrize("labels", [["low", "mid", "high"], [3, 1, 2]])
def test_save_load_segment_posterior(tmp_path, rfm, labels):
    h, _ = seg_fake(labels)
    path = tmp_path / "h.nc"
    h.save(path)
    assert path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"  # netCDF4/HDF5, not a pickle
    back = bayes.SegmentBGNBD.load(path)
    assert back.segment == "seg"
    pd.testing.assert_frame_equal(back.segment_params(), h.segment_params())
    frame = rfm.iloc[:30].assign(seg=labels[0])
    pd.testing.assert_frame_equal(back.probability_alive(frame), h.probability_alive(frame))
    with pytest.raises(ValueError, match="not a BGNBD"):
        bayes.BGNBD.load(path)


def test_save_load_keeps_priors(tmp_path):
    m = fake(bayes.GammaGamma, around(GG_MLE), priors={"p": ["Gamma", {"alpha": 1.0, "beta": 1.0}]})
    m.save(tmp_path / "g.nc")
    back = bayes.GammaGamma.load(tmp_path / "g.nc")
    assert back.priors == {"p": ("Gamma", {"alpha": 1.0, "beta": 1.0})}
    np.testing.assert_array_equal(back.idata_.posterior["p"].values, m.idata_.posterior["p"].values)


# ---- diagnostics and progress ------------------------------------------------------------
def test_unconverged_chains_fail_the_verdict_naming_the_parameter():
    from clvmodels.bayes.convergence import verdict

    rng = np.random.default_rng(0)
    good = rng.normal(size=(4, 500))
    bad = rng.normal(size=(4, 500)) + np.array([0, 0, 0, 3])[:, None]
    idata = az.from_dict(
        posterior={"r": good, "b": bad}, sample_stats={"diverging": np.zeros((4, 500), dtype=bool)}
    )
    table, n_div = _sampling.diagnostics(idata, ["r", "b"])
    assert n_div == 0 and table.loc["r", "r_hat"] < 1.01
    c = verdict("BGNBD", "nuts", table, 3, 4, 500)
    assert not c.passed and c.divergences == 3
    assert c.rhat_max == pytest.approx(table.loc["b", "r_hat"]) and c.rhat_max > 1.1
    assert "R-hat > 1.01 for b (" in c.message() and "for r (" not in c.message()
    assert "3 divergent" in c.message()
    ok = verdict("BGNBD", "nuts", table.loc[["r"]], 0, 4, 500)
    assert ok.passed and ok.problems == () and ok.advice() == ""
    assert not verdict("BGNBD", "nuts", table.loc[["r"]], 1, 4, 500).passed  # one divergence
    one_chain = verdict("BGNBD", "nuts", table.loc[["r"]], 0, 1, 500)
    assert not one_chain.passed and "--chains 4" in one_chain.advice("cli")
    with pytest.raises(ValueError, match="caller must be"):
        c.advice("R")


def test_map_fit_has_a_failing_verdict():
    from clvmodels.bayes.convergence import verdict

    c = verdict("BGNBD", "map", None, 0, 1, 1)
    assert not c.passed and "method='map'" in c.message() and "NUTS" in c.advice("cli")


def test_progress_bar_policy(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert _sampling.show_progress(True) is False
    assert _sampling.show_progress(None) is False
    monkeypatch.delenv("CI")
    assert _sampling.show_progress(True) is True
    assert _sampling.show_progress(False) is False


def test_simulate_segments():
    """Segment parameters drawn around the population with the given spread; customers
    in whole-week ages and whole-day recencies; truth = eq. (10) at the true values."""
    from clvmodels.models import bgnbd

    pop = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
    rfm, truth = bayes.simulate_segments([3] * 400, pop, spread=0.5, horizon=39, random_state=3)
    again, _ = bayes.simulate_segments([3] * 400, pop, spread=0.5, horizon=39, random_state=3)
    pd.testing.assert_frame_equal(rfm, again)
    assert len(rfm) == 1200 and rfm.index.name == "customer_id"
    assert rfm["segment"].value_counts().eq(3).all() and rfm["segment"].nunique() == 400
    assert rfm["T"].between(26, 52).all() and (rfm["T"] % 1 == 0).all()
    days = rfm["recency"] * 7
    assert np.allclose(days, np.round(days)) and (rfm["recency"] <= rfm["T"]).all()
    assert (rfm.loc[rfm["frequency"] == 0, "recency"] == 0).all()
    logs = pd.DataFrame(truth).T.apply(np.log) - pd.Series(pop).apply(np.log)
    assert logs.std().between(0.45, 0.55).all() and logs.mean().abs().lt(0.08).all()
    seg = rfm[rfm["segment"] == 7]
    expected = bgnbd.expected_purchases(
        *truth[7].values(), 39.0, *(seg[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    )
    np.testing.assert_allclose(seg["truth"], expected)
    no_truth, _ = bayes.simulate_segments([5], pop, random_state=0)
    assert "truth" not in no_truth
    with pytest.raises(ValueError, match="missing"):
        bayes.simulate_segments([5], {"r": 1.0})


def test_gc_paused_restores_the_collector():
    import gc

    from clvmodels.bayes._sampling import gc_paused

    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with gc_paused():
            assert not gc.isenabled()
            raise RuntimeError("compile failed")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()


def test_compiler_probe_thread_imports_nothing():
    """The probe thread runs while the main thread imports (nutpie, arviz, ...); an import
    in the thread raced with them (setuptools' distutils shim edits sys.meta_path). Run in
    a fresh interpreter, where pytensor has not probed yet, with a meta-path finder that
    records which thread looks a module up."""
    import subprocess
    import sys

    code = (
        "import sys, threading, pymc\n"
        "from clvmodels.bayes import _sampling\n"
        "from pytensor.link.c.cmodule import GCC_compiler\n"
        "assert GCC_compiler.march_flags is None\n"
        "seen = []\n"
        "class Spy:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        seen.append((threading.current_thread().name, name))\n"
        "sys.meta_path.insert(0, Spy())\n"
        "_sampling.probe_compiler()\n"
        "_sampling.join_probe()\n"
        "assert GCC_compiler.march_flags is not None\n"
        "print(sorted({n for t, n in seen if t == 'clvmodels-compiler-probe'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("second_passes", [True, False])
def test_failing_segment_fit_is_refitted_once(monkeypatch, second_passes):
    """A segment model whose fit fails its verdict is refitted once with 2x the draws and
    tuning steps in 4 chains at target_accept 0.95; the first verdict is kept, its warning
    only when it stands."""
    import warnings

    from clvmodels.bayes._base import BayesModel
    from clvmodels.bayes.convergence import Convergence
    from clvmodels.errors import StatisticalWarning

    calls = []

    def fake_fit(self, data, draws, tune, chains, random_seed, **kwargs):
        calls.append((draws, tune, chains, kwargs.get("target_accept")))
        ok = len(calls) > 1 and second_passes
        self.convergence_ = Convergence(type(self).__name__, "nuts", chains, draws, 1.02,
                                        900.0, 900.0, 0, ok, () if ok else ("R-hat",))
        if not ok:
            warnings.warn(self.convergence_.message(), StatisticalWarning, stacklevel=2)
        return self

    monkeypatch.setattr(BayesModel, "fit", fake_fit)
    m = bayes.SegmentGammaGamma()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.fit(None, draws=500, tune=300, chains=2, random_seed=1)
    assert calls == [(500, 300, 2, None), (1000, 600, 4, 0.95)]  # and smaller steps
    assert m.first_convergence_.chains == 2 and not m.first_convergence_.passed
    assert m.convergence_.passed == second_passes
    assert len(caught) == (0 if second_passes else 1)
    calls.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.fit(None, draws=500, tune=300, chains=2, random_seed=1, retry=False)
    assert calls == [(500, 300, 2, None)] and m.first_convergence_ is None and len(caught) == 1
