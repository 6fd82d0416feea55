"""Bayesian MBG/NBD and Pareto/NBD without sampling: the Pareto/NBD's numpy likelihood
as a pytensor Op (value and gradient equal the module's), the PyMC models they build,
and predictions, CLV, comparison and persistence on fake posteriors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import clvmodels as cm
from clvmodels import bayes
from clvmodels.models import mbgnbd, paretonbd
from clvmodels.models._base import compress_rows
from test_bayes import GG_MLE, around, fake

PN_MLE = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}  # Fader & Hardie (2005)
MBG_MLE = {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}
CASES = [(bayes.ParetoNBD, cm.ParetoNBD, paretonbd, PN_MLE),
         (bayes.MBGNBD, cm.MBGNBD, mbgnbd, MBG_MLE)]
IDS = ["ParetoNBD", "MBGNBD"]
FAST = "FAST_COMPILE"  # pytensor without C compilation: these graphs are evaluated once


@pytest.fixture(scope="module")
def rfm(cdnow_rfm):
    return cdnow_rfm


def _rows(rng, n=300):
    T = rng.uniform(0.5, 80.0, n)
    x = rng.poisson(3.0, n).astype(float)
    x[:5] = [0, 1, 200, 0, 50]
    t_x = np.where(x > 0, T * rng.uniform(0, 1, n), 0.0)
    t_x[5] = T[5]  # last purchase at T: nothing to integrate
    return x, t_x, T


# ---- the Op ---------------------------------------------------------------------------
def test_op_value_and_gradient_equal_the_module():
    """In the graph: value = paretonbd.loglik, gradient = its exact gradient (scalar
    parameters summed over rows, per-row parameters as in segment models)."""
    import pytensor
    import pytensor.tensor as pt

    from clvmodels._math import pytensor_ops

    x, t_x, T = _rows(np.random.default_rng(0))
    w = np.random.default_rng(1).integers(1, 5, x.size).astype(float)
    params = list(PN_MLE.values())
    data = [pt.dvector() for _ in range(3)]
    weight = pt.dvector()
    for make in (pt.dscalar, pt.dvector):
        p = [make() for _ in params]
        total = pt.sum(weight * paretonbd.loglik(*p, *data, ops=pytensor_ops()))
        f = pytensor.function([*p, *data, weight], [total, *pytensor.grad(total, p)],
                              mode=FAST)
        values = params if make is pt.dscalar else [np.full(x.size, v) for v in params]
        got = f(*values, x, t_x, T, w)
        ll, grads = paretonbd.loglik_and_grad(*params, x, t_x, T)
        np.testing.assert_allclose(ll, paretonbd.loglik(*params, x, t_x, T), rtol=1e-13)
        assert got[0] == pytest.approx(float(w @ ll), rel=1e-13)
        for g, want in zip(got[1:], grads, strict=True):
            np.testing.assert_allclose(g, w @ want if make is pt.dscalar else w * want,
                                       rtol=1e-12)
        # and the module's gradient is the derivative of its value (central differences)
        for k, g in enumerate(grads):
            h = 1e-6 * params[k]
            up, down = list(params), list(params)
            up[k] += h
            down[k] -= h
            fd = (w @ paretonbd.loglik(*up, x, t_x, T) - w @ paretonbd.loglik(*down, x, t_x, T))
            assert float(w @ g) == pytest.approx(fd / (2 * h), rel=1e-6)


def test_op_is_called_once_per_density_and_gradient():
    """The gradient reuses the value's node (merged): one quadrature per evaluation."""
    import pytensor
    import pytensor.tensor as pt

    from clvmodels._numpy_op import NumpyLoglik

    calls = []

    def counted(*args):
        calls.append(1)
        return paretonbd.loglik_and_grad(*args)

    p = [pt.dscalar() for _ in PN_MLE]
    data = [pt.dvector() for _ in range(3)]
    total = pt.sum(NumpyLoglik(counted, 4)(*p, *data)[0])
    f = pytensor.function([*p, *data], [total, *pytensor.grad(total, p)], mode=FAST)
    x, t_x, T = _rows(np.random.default_rng(2), 20)
    f(*PN_MLE.values(), x, t_x, T)
    assert len(calls) == 1
    with pytest.raises(pytensor.gradient.DisconnectedInputError):
        pytensor.grad(total, data[0])  # the data are not differentiable


@pytest.mark.parametrize(("cls", "mle_cls", "module", "point"), CASES, ids=IDS)
def test_model_log_density_is_weighted_sum_of_numpy_loglik(cls, mle_cls, module, point, rfm):
    """The PyMC model's log density = sum over ALL customers of the numpy loglik + the
    log-normal priors; its gradient (log scale) matches central differences."""
    m = cls()
    unique, w = compress_rows(m._data(rfm))
    specs = m._prior_specs(unique, w)
    model, key, _ = m._build(unique, w, np.zeros(w.size, dtype=np.int64), 1, specs)
    names = [v.name for v in model.value_vars]
    logp = model.compile_fn(model.logp(jacobian=False), mode=FAST)
    dlogp = model.compile_fn(model.dlogp(jacobian=False), mode=FAST)
    at = {f"{k}_log__": np.log(v) for k, v in point.items()}
    data = [rfm[c].to_numpy(float) for c in ("frequency", "recency", "T")]
    expected = module.loglik(*point.values(), *data).sum()
    for k, v in point.items():
        mu, sigma = specs[k][1]["mu"], specs[k][1]["sigma"]
        expected += stats.lognorm(s=sigma, scale=np.exp(mu)).logpdf(v)
    assert logp(at) == pytest.approx(expected, rel=1e-10)
    assert key is not None
    grad = dlogp(at)
    for i, name in enumerate(names):
        up, down = dict(at), dict(at)
        up[name] = at[name] + 1e-5
        down[name] = at[name] - 1e-5
        fd = (logp(up) - logp(down)) / 2e-5
        assert grad[i] == pytest.approx(fd, rel=1e-5, abs=1e-6), name


def test_default_priors_documented_values(rfm):
    m = bayes.ParetoNBD()
    x, t_x, T = m._data(rfm)
    specs = m._prior_specs([x, t_x, T], np.ones(len(x)))
    assert specs["r"] == specs["s"] == ("LogNormal", {"mu": 0.0, "sigma": 2.0})
    assert specs["alpha"][1]["mu"] == pytest.approx(np.log(T.sum() / x.sum()))
    assert specs["beta"][1]["mu"] == pytest.approx(np.log(T.mean()))
    # MBG/NBD: the BG/NBD's
    assert bayes.MBGNBD()._prior_specs([x, t_x, T], np.ones(len(x))) == bayes.BGNBD(
    )._prior_specs([x, t_x, T], np.ones(len(x)))


def test_pareto_nbd_refuses_numba(rfm):
    with pytest.raises(ValueError, match="backend='numba' cannot compile"):
        bayes.ParetoNBD().fit(rfm, backend="numba")


# ---- predictions on fake posteriors ------------------------------------------------------
@pytest.mark.parametrize(("cls", "mle_cls", "module", "point"), CASES, ids=IDS)
def test_single_draw_equals_mle_predictions(cls, mle_cls, module, point, rfm):
    """A posterior of one draw is the MLE model with those parameters: same expected
    purchases, P(alive) (also ahead), intervals, CLV and holdout comparison."""
    m = fake(cls, {k: [[v]] for k, v in point.items()})
    mle = mle_cls.from_params(**point)
    part = rfm.iloc[::3]
    ep = m.expected_purchases(39, part)
    np.testing.assert_allclose(ep["mean"], mle.expected_purchases(39, part), rtol=1e-12)
    assert (ep["sd"] == 0).all()
    for ahead in (0.0, 13.0):
        np.testing.assert_allclose(m.probability_alive(part, ahead=ahead)["mean"],
                                   mle.probability_alive(part, ahead=ahead), rtol=1e-12)
    assert m.prediction_interval(26.0, part, level=0.8).equals(
        mle.prediction_interval(26.0, part, level=0.8))
    gg = fake(bayes.GammaGamma, {k: [[v]] for k, v in GG_MLE.items()})
    got = bayes.customer_lifetime_value(m, gg, part, horizon=52, period=4, discount_rate=0.01)
    want = cm.customer_lifetime_value(mle, cm.GammaGamma.from_params(**GG_MLE), part,
                                      horizon=52, period=4, discount_rate=0.01)
    np.testing.assert_allclose(got["mean"], want, rtol=1e-10)


@pytest.mark.parametrize(("cls", "mle_cls", "module", "point"), CASES, ids=IDS)
def test_predictions_match_draw_by_draw(cls, mle_cls, module, point, rfm):
    draws = around(point, n_draws=30)
    m = fake(cls, draws)
    part = rfm.iloc[:200]
    data = [part[c].to_numpy(float) for c in ("frequency", "recency", "T")]
    flat = [v.reshape(-1, 1) for v in draws.values()]
    want = module.expected_purchases(*flat, 39.0, *data)
    got = m.expected_purchases(39, part)
    np.testing.assert_allclose(got["mean"], want.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(got["sd"], want.std(axis=0, ddof=1), rtol=1e-9, atol=1e-15)
    cond = mle_cls.formulas.conditional
    alive = module.probability_alive(*flat, *data) * cond.survival(
        *cond.updated(*flat, data[0], data[2]), 10.0)
    np.testing.assert_allclose(m.probability_alive(part, ahead=10)["mean"], alive.mean(axis=0),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="ahead must be"):
        m.probability_alive(part, ahead=-1)


@pytest.mark.parametrize(("cls", "mle_cls", "module", "point"), CASES, ids=IDS)
def test_posterior_predictive_mean_is_expected_purchases(cls, mle_cls, module, point, rfm):
    m = fake(cls, around(point, n_chains=2, n_draws=100))
    part = rfm.iloc[:300]
    pp = m.posterior_predictive(39.0, part, n_draws=200, random_seed=3)
    assert pp.dims == ("sample", "customer") and pp.shape == (200, 300)
    mean = m.expected_purchases(39.0, part)["mean"].sum()
    totals = pp.sum("customer").values
    assert abs(totals.mean() - mean) < 4 * totals.std() / np.sqrt(totals.size)


@pytest.mark.parametrize(("cls", "mle_cls", "module", "point"), CASES, ids=IDS)
def test_compare_reduces_to_the_mle_model(cls, mle_cls, module, point):
    tx = cm.datasets.cdnow_transactions(sample=True)
    cal = cm.calibration_holdout(tx, "customer_id", "date", "amount",
                                 calibration_end="1997-09-30")
    m = fake(cls, {k: [[v]] for k, v in point.items()})
    gg = fake(bayes.GammaGamma, {k: [[v]] for k, v in GG_MLE.items()})
    mle = (mle_cls.from_params(**point), cm.GammaGamma.from_params(**GG_MLE))
    table = cm.compare(cal, {"mle": mle, "bayes": (m, gg)}, reference=False)
    np.testing.assert_allclose(table.loc["bayes"].to_numpy(float),
                               table.loc["mle"].to_numpy(float), rtol=1e-9)


@pytest.mark.parametrize(("cls", "mle_cls", "module", "point"), CASES, ids=IDS)
def test_save_load_round_trip(cls, mle_cls, module, point, rfm, tmp_path):
    m = fake(cls, around(point, n_draws=20), priors={"r": ["Gamma", {"alpha": 1.0, "beta": 1.0}]})
    path = tmp_path / "posterior.nc"
    m.save(path)
    back = cls.load(path)
    assert back.priors == {"r": ("Gamma", {"alpha": 1.0, "beta": 1.0})}
    pd.testing.assert_frame_equal(back.expected_purchases(10, rfm.iloc[:50]),
                                  m.expected_purchases(10, rfm.iloc[:50]))
    other = bayes.BGNBD if cls is bayes.ParetoNBD else bayes.ParetoNBD
    with pytest.raises(ValueError, match=f"holds a '{cls.__name__}' model"):
        other.load(path)
