"""The summed likelihoods that the Bayesian BG/NBD and Gamma-Gamma sample at scale
(``loglik_total_and_grad``: terms evaluated once per distinct value they depend on) equal
the weighted sums of the per-row ``loglik`` and ``loglik_grad`` the maximum-likelihood
fits use, and the PyMC model built on them has the graph model's log density."""

from __future__ import annotations

import numpy as np
import pytest

from clvmodels import bayes
from clvmodels.models import bgnbd, gammagamma

GROUPS = {  # one parameter vector per group, far apart
    "bgnbd": [np.array([0.24, 0.9, 3.0]), np.array([30.9, 4.0, 200.0]),
              np.array([0.79, 0.05, 6.0]), np.array([2.4, 0.6, 40.0])],
    "gammagamma": [np.array([6.25, 1.5, 20.0]), np.array([3.74, 1.2, 9.0]),
                   np.array([15.4, 0.5, 300.0])],
}  # fmt: skip


def _days(n, seed):
    """Customers in days over two years from the BG/NBD (many share x, T or t_x; about a
    third with x = 0), three groups, integer weights, Gamma-Gamma mean spend."""
    rng = np.random.default_rng(seed)
    T = rng.integers(0, 731, n).astype(float)
    rfm = bgnbd.BGNBD.from_params(r=0.243, alpha=30.9, a=0.793, b=2.426).simulate(
        n, T, random_state=seed)
    x, t_x = rfm["frequency"].to_numpy(float), np.floor(rfm["recency"].to_numpy(float))
    m = gammagamma.simulate(6.25, 3.74, 15.44, x, rng)
    return rng.integers(0, 3, n), x, t_x, T, m, rng.integers(1, 5, n).astype(float)


@pytest.mark.parametrize("groups", [1, 3])
def test_bgnbd_total_is_the_weighted_sum_of_loglik(groups):
    codes, x, t_x, T, _, w = _days(3000, 1)
    codes = codes % groups
    params = [p[:groups] for p in GROUPS["bgnbd"]]
    total, grad = bgnbd.loglik_total_and_grad(
        *params, *bgnbd.GroupedRows(codes, x, t_x, T, w).arrays())
    rows = [p[codes] for p in params]
    ll = bgnbd.loglik(*rows, x, t_x, T)
    assert np.isclose(total, w @ ll, rtol=1e-12, atol=0)
    for got, d in zip(grad, bgnbd.loglik_grad(*rows, x, t_x, T), strict=True):
        np.testing.assert_allclose(got, np.bincount(codes, w * d, groups), rtol=1e-10)


@pytest.mark.parametrize("groups", [1, 3])
def test_gammagamma_total_is_the_weighted_sum_of_loglik(groups):
    codes, x, _, _, m, w = _days(3000, 2)
    pos = x > 0
    codes, x, m, w = codes[pos] % groups, x[pos], m[pos], w[pos]
    params = [p[:groups] for p in GROUPS["gammagamma"]]
    total, grad = gammagamma.loglik_total_and_grad(
        *params, *gammagamma.GroupedSpend(codes, x, m, w).arrays())
    rows = [p[codes] for p in params]
    assert np.isclose(total, w @ gammagamma.loglik(*rows, x, m), rtol=1e-12, atol=0)
    for got, d in zip(grad, gammagamma.loglik_grad(*rows, x, m), strict=True):
        np.testing.assert_allclose(got, np.bincount(codes, w * d, groups), rtol=1e-10)


@pytest.mark.parametrize("cls", [bayes.GammaGamma,
                                 pytest.param(bayes.BGNBD, marks=pytest.mark.slow),
                                 pytest.param(bayes.SegmentBGNBD, marks=pytest.mark.slow)])
def test_model_on_the_total_has_the_graph_models_density(cls):
    """The PyMC model with the summed-likelihood Op (what nutpie's C back-end samples)
    and the one with the ``loglik`` graph (what numba samples): equal log density and
    gradient at points away from the start (pytensor's Python mode: no C compilation)."""
    import pandas as pd

    codes, x, t_x, T, m, _ = _days(2000, 3)
    rfm = pd.DataFrame({"frequency": x, "recency": t_x, "T": T, "monetary_value": m,
                        "segment": np.array(["a", "b", "c"])[codes]})  # fmt: skip
    model = cls(segment="segment") if cls is bayes.SegmentBGNBD else cls()
    if cls is bayes.SegmentBGNBD:
        model.centering_ = {n: 0.5 for n, _, _ in model._coordinates()}
    c, labels, cols, z, w = model._fit_data(rfm)
    specs = model._prior_specs(cols, w)
    n_groups = 1 if labels is None else len(labels)
    values = []
    for total in (True, False):
        pm_model, _, _ = model._build(cols, w, c, n_groups, specs, z, total=total)
        f = pm_model.logp_dlogp_function(ravel_inputs=True, mode="FAST_COMPILE")
        f.set_extra_values({})
        x0 = np.concatenate([np.atleast_1d(v) for v in pm_model.initial_point().values()])
        points = x0 + 0.3 * np.random.default_rng(0).standard_normal((3, x0.size))
        values.append([f(p) for p in points])
    for (v1, g1), (v2, g2) in zip(*values, strict=True):
        assert np.isclose(v1, v2, rtol=1e-10)
        np.testing.assert_allclose(g1, g2, rtol=1e-8, atol=1e-8)
