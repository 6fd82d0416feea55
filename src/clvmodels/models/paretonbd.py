r"""Pareto/NBD model (Schmittlein, Morrison & Colombo 1987): pure functions and the estimator.

While active, a customer buys at Poisson rate :math:`\lambda`; the customer's lifetime is
exponential with rate :math:`\mu`. Across customers :math:`\lambda \sim
\mathrm{Gamma}(r, \alpha)` and :math:`\mu \sim \mathrm{Gamma}(s, \beta)` (shape, rate),
independently.

The likelihood ([2]_ eqs. (18)-(20)) is usually written with two Gauss hypergeometric
functions whose difference cancels when ``t_x`` is close to ``T``, that overflow for
large ``x``, and whose derivatives with respect to ``r`` and ``s`` have no closed form.
This module uses the integral that those functions come from (the individual-level
likelihood of [2]_ §3 integrated over :math:`\lambda` and :math:`\mu`, before the
integration over the time of death):

.. math::
    L = \frac{\Gamma(r+x)\,\alpha^r \beta^s}{\Gamma(r)}
        \Big[\frac{1}{(\alpha+T)^{r+x}(\beta+T)^s}
        + s \int_{t_x}^{T} \frac{dy}{(\alpha+y)^{r+x}(\beta+y)^{s+1}}\Big],

the second term being the probability of dying at some :math:`y \in (t_x, T]`. The
integral is evaluated in the variable :math:`\log(\min(\alpha, \beta) + y)`, where its
log-integrand is concave, by the composite Gauss-Legendre rule of
:func:`clvmodels.models._hyp2f1.log_integral` (relative error ~1e-13 against mpmath from
the textbook regime to parameters 1e-3..1e3, x up to 500, T up to 1e4). The gradient
is exact up to the same quadrature error: the derivatives are integrals of the same
integrand times :math:`-\log(\alpha+y)`, :math:`-(r+x)/(\alpha+y)`, ... and use the same
nodes (differentiation under the integral sign), so value and gradient are consistent,
which the optimiser needs.

The quadrature needs data-dependent panels, which a pytensor graph cannot express, so
the log-likelihood is computed in numpy for every back-end: with ``ops=pytensor_ops()``
:func:`loglik` returns a pytensor Op that calls :func:`loglik_and_grad` (value and exact
gradient from one quadrature; :mod:`clvmodels._numpy_op`), which is how the Bayesian
Pareto/NBD (:class:`clvmodels.bayes.ParetoNBD`) samples the same likelihood.

Equation numbers of [2]_ are those that lifetimes' ``ParetoNBDFitter`` cites.

References
----------
.. [1] Schmittlein, D. C., Morrison, D. G. and Colombo, R. (1987). Counting Your
   Customers: Who Are They and What Will They Do Next? *Management Science* 33(1), 1-24.
.. [2] Fader, P. S. and Hardie, B. G. S. (2005). A Note on Deriving the Pareto/NBD Model
   and Related Expressions. http://brucehardie.com/notes/009/
.. [3] Fader, P. S. and Hardie, B. G. S. (2006, rev. 2020). Deriving an Expression for
   P(X(t) = x) Under the Pareto/NBD Model. http://brucehardie.com/notes/012/
.. [4] Fader, P. S., Hardie, B. G. S. (2006). Deriving the Conditional PMF of the
   Pareto/NBD Model. http://brucehardie.com/notes/028/
"""

from __future__ import annotations

import numpy as np
from scipy import special

from .._math import NUMPY, nbd_table, trigamma_shift, unique_inverse
from ._btyd import Conditional, CovariateTransactionModel, Formulas
from ._hyp2f1 import log_integral

PARAM_NAMES = ("r", "alpha", "s", "beta")


def _flat(*values):
    """Broadcast to one shape and flatten; returns (shape, flat arrays)."""
    arrays = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in values))
    return arrays[0].shape, [a.ravel() for a in arrays]


def _log_pair_integral(alpha, beta, e_a, e_b, lo, hi, *, weights=False, scaled=False):
    r"""log of :math:`\int_{lo}^{hi} (\alpha+y)^{-e_a} (\beta+y)^{-e_b}\,dy`, per row (1-d).

    With ``scaled=True`` the integrand is :math:`(1+y/\alpha)^{-e_a}(1+y/\beta)^{-e_b}`
    instead (the same integral times :math:`\alpha^{e_a}\beta^{e_b}`): for huge exponents
    and scales (:math:`s, \beta \to \infty` at fixed :math:`s/\beta`, the exponential
    lifetime limit) the unscaled log is a huge number whose rounding (about
    :math:`10^{-16} e_b \log\beta`) swamps the O(1) differences the model needs.

    Substituting :math:`\ell = \log(\mu + y)` with :math:`\mu = \min(\alpha, \beta)` and
    :math:`\Delta = |\alpha - \beta|` gives the log-integrand
    :math:`(1 - e_\mu)\ell - e_M \log(e^\ell + \Delta)`, concave in :math:`\ell`, with
    :math:`e_\mu` the exponent of the factor with the smaller scale. The variable is
    shifted to start at 0 so that a short range keeps its relative precision. With
    ``weights=True`` also returns a function giving, per row, the averages of
    ``log(alpha+y)``, ``1/(alpha+y)``, ``log(beta+y)``, ``1/(beta+y)`` under the normalised
    integrand.
    """
    a_small = alpha <= beta
    mu = np.where(a_small, alpha, beta)
    e_mu = np.where(a_small, e_a, e_b)
    e_big = np.where(a_small, e_b, e_a)
    with np.errstate(divide="ignore"):
        log_d = np.log(np.abs(alpha - beta))
    l0 = np.log(mu + lo)
    lm0 = np.logaddexp(l0, log_d)
    c0 = 1.0 - e_mu
    width = np.log1p((hi - lo) / (mu + lo))

    g = l0 - log_d  # log((mu+t_x) / Delta)
    h = np.logaddexp(0.0, g)  # log((M+t_x) / Delta) = log(1 + (mu+t_x)/Delta), not lm0 - log_d
    same = np.isneginf(log_d)  # alpha == beta: log(M+y) = log(mu+y)
    if same.any():
        g, h = np.where(same, 0.0, g), np.where(same, 0.0, h)

    def fun(u, rows, order=2):
        c, e = c0[rows][:, None], e_big[rows][:, None]
        z = u + g[rows][:, None]
        sp = np.logaddexp(0.0, z)  # log((M+y) / Delta)
        if same.any():
            sp = np.where(same[rows][:, None], u + h[rows][:, None], sp)
        f = c * u - e * (sp - h[rows][:, None])
        if order == 0:
            return f
        sg = np.exp(z - sp)  # (mu+y) / (M+y)
        if same.any():
            sg = np.where(same[rows][:, None], 1.0, sg)
        return f, c - e * sg, -e * sg * (1 - sg)

    if scaled:  # + e_mu log(mu) + e_big log(M), folded in without forming them
        big = np.where(a_small, beta, alpha)
        shift = l0 - e_mu * np.log1p(lo / mu) - e_big * np.log1p(lo / big)
    else:
        shift = c0 * l0 - e_big * lm0
    zeros = np.zeros_like(width)
    if not weights:
        return shift + log_integral(fun, zeros, width)
    out, blocks = log_integral(fun, zeros, width, weights=True)

    def moments(second=False):
        """Per row: E[log(alpha+y)], E[1/(alpha+y)], E[log(beta+y)], E[1/(beta+y)].

        With ``second=True`` also their (n, 4, 4) covariance matrix. The node variables
        are centred at y = t_x (u = log((mu+y)/(mu+t_x)), sp = log((M+y)/(M+t_x)) and
        expm1 of minus those), so that narrow integrands keep their digits.
        """
        n = width.size
        first = np.zeros((4, n))
        sq = np.zeros((4, 4, n)) if second else None
        for rows, u, w, f in blocks:
            c, e = c0[rows][:, None], e_big[rows][:, None]
            if np.all(e >= 0.1):  # sp recovered from phi = c u - e sp
                sp = (c * u - f) / e
            else:  # dividing by a small exponent would amplify rounding: recompute
                sp = np.where(
                    same[rows][:, None],
                    u,
                    np.logaddexp(0.0, u + g[rows][:, None]) - h[rows][:, None],
                )
            v = (u, np.expm1(-u), sp, np.expm1(-sp))
            lo_r, hi_r = rows.min(), rows.max() + 1  # blocks cover a range of rows
            unique = rows.size == 1 or bool(np.all(rows[1:] > rows[:-1]))

            def add(target, values, rows=rows, lo_r=lo_r, hi_r=hi_r, unique=unique):
                if unique:
                    target[rows] += values
                else:
                    target[lo_r:hi_r] += np.bincount(
                        rows - lo_r, weights=values, minlength=hi_r - lo_r
                    )

            for k in range(4):
                add(first[k], np.einsum("ij,ij->i", w, v[k]))
                if second:
                    for m in range(k, 4):
                        add(sq[k, m], np.einsum("ij,ij,ij->i", w, v[k], v[m]))
        # back to log(mu+y) = l0 + u, 1/(mu+y) = e^-l0 (1 + expm1(-u)), and likewise M
        scale = np.stack([np.ones(n), np.exp(-l0), np.ones(n), np.exp(-lm0)])
        means = first * scale + np.stack([l0, scale[1], lm0, scale[3]])
        # reorder from (mu-side, M-side) to (alpha, beta)
        order = np.where(a_small[None, :], np.arange(4)[:, None], ((np.arange(4) + 2) % 4)[:, None])
        idx = np.arange(n)
        means = means[order, idx]
        if not second:
            return tuple(means)
        cov = np.empty((n, 4, 4))
        for k in range(4):
            for m in range(4):
                kk, mm = min(k, m), max(k, m)
                cov[:, k, m] = (sq[kk, mm] - first[k] * first[m]) * scale[k] * scale[m]
        cov = cov[idx[:, None, None], order.T[:, :, None], order.T[:, None, :]]
        return tuple(means), cov

    return shift + out, moments


def _check_params(**params):
    """ValueError naming the first parameter that is not finite and positive.

    (inf in both ``s`` and ``beta`` has a limit, the exponential lifetime of rate
    ``s / beta``, only when their ratio is given: pass large finite values instead.)
    """
    for name, value in params.items():
        bad = ~(np.isfinite(value) & (value > 0))
        if np.any(bad):
            raise ValueError(
                f"Pareto/NBD parameter {name} must be finite and positive; got "
                f"{float(np.asarray(value)[bad].ravel()[0])} in {int(np.sum(bad))} row(s)"
            )


def _log_alive(r, alpha, s, beta, x, T, ops=NUMPY):
    r"""log of "alive at T" times :math:`\alpha^{r+x}\beta^s` (see :func:`_log_terms`):
    :math:`-(r+x)\log(1+T/\alpha) - s\log(1+T/\beta)`."""
    return -(r + x) * ops.log1p(T / alpha) - s * ops.log1p(T / beta)


def _log_terms(r, alpha, s, beta, x, t_x, T, *, weights=False):
    r"""log of the two terms of the likelihood bracket, alive at T and died in (t_x, T],
    each times :math:`\alpha^{r+x}\beta^s` (the factor is in :func:`count_terms`).

    Scaled so that no term is a huge number: :math:`-s\log(\beta+T)` and
    :math:`s\log\beta` would cancel to :math:`-s\log(1+T/\beta)` with an absolute error
    of :math:`10^{-16} s\log\beta` (0.5 at :math:`s = 10^{14}`), which drove P(alive)
    to nonsense as :math:`s, \beta \to \infty` at fixed :math:`s/\beta`.
    """
    _check_params(r=r, alpha=alpha, s=s, beta=beta)
    log_alive = _log_alive(r, alpha, s, beta, x, T)
    res = _log_pair_integral(alpha, beta, r + x, s + 1.0, t_x, T, weights=weights, scaled=True)
    log_s = np.log(s) - np.log(beta)
    if not weights:
        return log_alive, log_s + res
    return log_alive, log_s + res[0], res[1]


def count_terms(r, alpha, s, beta, x, ops=NUMPY):
    r"""The part of the log-likelihood that depends on the parameters and the count x
    alone: the log of the constant :math:`\Gamma(r+x)\alpha^r\beta^s/\Gamma(r)` divided
    by the scale :math:`\alpha^{r+x}\beta^s` of :func:`_log_terms`, that is
    :math:`\log\Gamma(r+x) - \log\Gamma(r) - x\log\alpha`, and None (the BG/NBD's
    :func:`clvmodels.models.bgnbd.count_terms` has a second term). The Bayesian fast
    path evaluates it once per distinct x."""
    return ops.log_pochhammer(r, x) - x * ops.log(alpha), None


#: the grid quadrature of :func:`quadrature_grid`: Gauss-Legendre nodes per panel, the
#: largest variation bound of the log-integrand and the largest width in
#: log(mu_0 + y) of a panel, and the reference scale mu_0 as a share of the longest
#: observation (see there)
GRID_NODES, GRID_VARIATION, GRID_WIDTH, GRID_SCALE_SHARE = 8, 4.0, 0.25, 1e-3
#: the panels with fewer nodes: their count, largest variation bound and width
GRID_FEW_NODES, GRID_FEW_VARIATION, GRID_FEW_WIDTH = 4, 0.25, 1.0 / 16.0
#: log of the "died in (t_x, T]" term at a block's last point, where it is 0 (finite, so
#: that no gradient meets an infinity; exp of it is 0)
_LOG_ZERO = -1e30


def quadrature_grid(x, t_x, T) -> tuple[dict, dict]:
    r"""The fixed quadrature of :func:`loglik` with ``grid=``: panels, points, rows.

    For a count x let :math:`G_x(u) = \int_u^{U_x} f_x(y)\,dy`, with :math:`f_x(y) =
    (1+y/\alpha)^{-(r+x)}(1+y/\beta)^{-(s+1)}` (the scaled integrand of
    :func:`_log_terms`) and :math:`U_x` the largest T of the rows with that x. Then
    :math:`\int_{t_x}^T f_x = G_x(t_x) - G_x(T)`, and the likelihood bracket, "alive at
    T" (:math:`A_x(T)`) plus :math:`s/\beta` times that integral, is

    .. math::
        A_x(T) + \tfrac{s}{\beta}\big(G_x(t_x) - G_x(T)\big) = D_x(t_x) + H_x(T),
        \qquad D_x = \tfrac{s}{\beta} G_x,\quad H_x = A_x - D_x \ge 0,

    two functions of (x, one time) each: they are computed once per distinct (x, t_x)
    and (x, T) point, and a row adds two looked-up numbers. :math:`G_x` at the points is
    one cumulative sum, from the end, of integrals over the panels between consecutive
    points (a segmented scan, one segment per x). The panels are cut into sub-panels
    [a, b] equal in :math:`\log(\mu_0 + y)`, :math:`\mu_0` being 1/1000 of the longest
    T, such that :math:`w = \log\frac{\mu_0 + b}{\mu_0 + a} \le 1/4` and
    :math:`(x+3)\,w \le 4`; each is integrated by Gauss-Legendre in y (Davis &
    Rabinowitz 1984, *Methods of Numerical Integration*, §2.7): 8 nodes, or 4 where
    :math:`(x+3)\,w \le 1/4` and :math:`w \le 1/16` (93% of the sub-panels of the
    1M-customer benchmark's data, 90% of the tests', whose days make most panels one
    day wide).

    Accuracy, for :math:`\mu = \min(\alpha, \beta) \ge \mu_0` (the width in
    :math:`\log(\mu + y)` is then at most w). :math:`\log f_x` has slope at most
    :math:`(r+x+s+1)/(\mu + y)` in y, so for :math:`r + s \le 2` it varies by at most
    :math:`(x+3)\,w` over a sub-panel (for larger r + s the bound grows in proportion);
    its singularities, at :math:`y = -\alpha, -\beta`, are at least :math:`2/(e^w - 1)`
    half-widths beyond the sub-panel, 7 (31 for the 4-node ones), so the integrand is
    analytic in a wide Bernstein ellipse around it, where Gauss rules converge
    geometrically (Trefethen 2008, "Is Gauss quadrature better than Clenshaw-Curtis?",
    *SIAM Review* 50(1), 67-87). The limits were set by measurement: with a width limit
    of 1/2 a row of ``tests/test_paretonbd.py``'s data was off by 1e-11 relative at
    :math:`\alpha = 1.4 \mu_0`. Both :math:`D_x` and :math:`H_x` are sums of positive
    terms up to one subtraction: :math:`H_x(T) = A_x(T) - D_x(T)` with :math:`D_x(T) \le
    A_x(T)(1 - (\frac{\beta+T}{\beta+U_x})^s)` (as :math:`f_x` is decreasing), whose
    rounding is at most a few ulps of :math:`A_x(T)`, never more than the row's bracket,
    which exceeds :math:`A_x(T)`. The log-likelihood agrees with :func:`loglik`'s
    adaptive quadrature to 3e-12 per row at the parameters of ``tests/test_paretonbd.py``
    (which asserts 1e-11), down to :math:`\alpha = 1.4\mu_0`; below :math:`\mu_0` the
    error grows, and nothing breaks (positive weights and terms: no NaN).

    Returns ``(grid, rows)``: ``grid`` holds the panels' counts, which panels end a
    segment, which set each panel is in and its place there (``panel_*``; one dummy
    panel last, so that there is one), the nodes, log weights and counts of the 4-node
    and 8-node sets (``few_*``, ``many_*``, each with one unused panel last, so that
    neither is empty), and per point its x, its time, its first panel and whether it is
    the last point of its x (``point_*``); ``rows`` holds each row's point of (x, t_x)
    and of (x, T).
    """
    x, t_x, T = (np.asarray(v, dtype=float).ravel() for v in (x, t_x, T))
    xs, inv = unique_inverse(x)
    # the points: distinct (x, time) pairs of the rows' t_x and T, sorted by x then time
    code = np.concatenate([inv, inv]).astype(np.int64)
    time = np.concatenate([t_x, T])
    order = np.lexsort((time, code))
    code, time = code[order], time[order]
    new = np.ones(code.size, dtype=bool)
    new[1:] = (code[1:] != code[:-1]) | (time[1:] != time[:-1])
    point_of = np.cumsum(new) - 1
    row_point = np.empty(code.size, dtype=np.int64)
    row_point[order] = point_of
    p_code, p_time = code[new], time[new]
    n_pt = p_code.size
    last = np.ones(n_pt, dtype=bool)
    last[:-1] = p_code[1:] != p_code[:-1]
    # panels between consecutive points of one x, cut into sub-panels
    starts = np.flatnonzero(~last)
    a, b, px = p_time[starts], p_time[starts + 1], xs[p_code[starts]]
    mu0 = GRID_SCALE_SHARE * max(float(T.max()), 1e-300)
    ratio = (mu0 + b) / (mu0 + a)
    width = np.log(ratio)
    k = np.ceil(np.maximum(width * (px + 3.0) / GRID_VARIATION, width / GRID_WIDTH))
    k = np.maximum(k, 1).astype(np.int64)
    panel = np.repeat(np.arange(starts.size), k)
    j = np.arange(panel.size) - np.repeat(np.cumsum(k) - k, k)
    kk = k[panel]
    lo = np.where(j == 0, a[panel], (mu0 + a[panel]) * ratio[panel] ** (j / kk) - mu0)
    hi = np.where(j == kk - 1, b[panel], (mu0 + a[panel]) * ratio[panel] ** ((j + 1) / kk) - mu0)
    end = np.zeros(panel.size, dtype=bool)
    end[np.cumsum(k)[last[starts + 1]] - 1] = True  # the sub-panel ending at a last point
    point_panel = np.zeros(n_pt, dtype=np.int64)
    point_panel[starts] = np.cumsum(k) - k
    # one dummy panel (x = 0 on [0, 1]), its own segment: the arrays are never empty
    lo, hi = np.append(lo, 0.0), np.append(hi, 1.0)
    px, end = np.append(px[panel], 0.0), np.append(end, True)
    # the rule per panel: 4 nodes where the variation bound is at most 1/4 and the
    # width at most 1/16 (the singularities >= 31 half-widths away), else 8
    width = np.log((mu0 + hi) / (mu0 + lo))
    many = ((px + 3.0) * width > GRID_FEW_VARIATION) | (width > GRID_FEW_WIDTH)
    grid = {"panel_x": px, "panel_end": end, "panel_many": many}
    for name, sel, n_nodes in (("few", ~many, GRID_FEW_NODES), ("many", many, GRID_NODES)):
        k = np.flatnonzero(sel)
        slot = np.zeros(px.size, dtype=np.int64)  # the panel's place in its set, else 0
        slot[k] = np.arange(k.size)
        grid[f"panel_{name}_slot"] = slot
        # and one unused panel last, so that neither set is empty
        a_, b_, x_ = np.append(lo[k], 0.0), np.append(hi[k], 1.0), np.append(px[k], 0.0)
        nodes, node_weights = np.polynomial.legendre.leggauss(n_nodes)
        half = 0.5 * (b_ - a_)
        grid[f"{name}_nodes"] = a_ + half * (nodes[:, None] + 1.0)  # (nodes, panels)
        grid[f"{name}_log_weights"] = np.log(half * node_weights[:, None])
        grid[f"{name}_x"] = x_
    grid.update({
        "point_x": xs[p_code],
        "point_time": p_time,
        "point_panel": point_panel,
        "point_last": last,
    })
    return grid, {"row_tx": row_point[: x.size], "row_T": row_point[x.size :]}


def _loglik_grid(r, alpha, s, beta, x, grid, rows, ops, counts):
    """:func:`loglik` by the grid quadrature of :func:`quadrature_grid` (r, alpha, s,
    beta are numbers here)."""
    log_panels = []
    for name in ("few", "many"):
        y = grid[f"{name}_nodes"]
        lf = (grid[f"{name}_log_weights"] - (r + grid[f"{name}_x"]) * ops.log1p(y / alpha)
              - (s + 1.0) * ops.log1p(y / beta))
        # the integrand decreases in y: the first node's term is within a factor 4 of
        # the largest (the weights' ratio), so no overflow and no max is needed
        log_panels.append(lf[0] + ops.log(ops.exp(lf - lf[0]).sum(axis=0)))
    log_panel = ops.where(grid["panel_many"], log_panels[1][grid["panel_many_slot"]],
                          log_panels[0][grid["panel_few_slot"]])
    log_g = ops.reverse_cumlogsumexp(log_panel, grid["panel_end"])
    last = grid["point_last"]
    log_d = ops.where(last, _LOG_ZERO,
                      ops.log(s) - ops.log(beta) + log_g[grid["point_panel"]])
    log_a = _log_alive(r, alpha, s, beta, grid["point_x"], grid["point_time"], ops)
    # H = A - D >= 0; the clamp only guards against rounding (log(-expm1) of a tiny
    # argument stays finite, its gradient too)
    log_h = log_a + ops.log(-ops.expm1(ops.minimum(log_d - log_a, -1e-100)))
    bracket = ops.logaddexp_take(log_d, log_h, rows["row_tx"], rows["row_T"])
    log_c1 = count_terms(r, alpha, s, beta, x, ops)[0] if counts is None else counts[0]
    return log_c1 + bracket


def loglik(r, alpha, s, beta, x, t_x, T, ops=NUMPY, counts=None, grid=None):
    r"""Log-likelihood of each customer's (x, t_x, T), [2]_ eqs. (18)-(20).

    .. math::
        \log L = \log\frac{\Gamma(r+x)\alpha^r\beta^s}{\Gamma(r)}
        + \mathrm{logaddexp}\Big(-(r+x)\log(\alpha+T) - s\log(\beta+T),\
          \log s + \log \int_{t_x}^T (\alpha+y)^{-(r+x)}(\beta+y)^{-(s+1)}\,dy\Big)

    (the integral equals :math:`A_0/(r+s+x)` of [2]_). Computed in numpy; with a
    pytensor ``ops`` the result is the output of an Op calling :func:`loglik_and_grad`
    (see the module docstring).

    With ``grid=quadrature_grid(x, t_x, T)`` (the pair it returns) the integral is
    computed by that fixed quadrature instead, in ``ops`` code (numpy or JAX: this is
    how the Bayesian fast path samples the likelihood, :mod:`clvmodels.bayes._fast`),
    for one set of parameters; ``counts`` is then :func:`count_terms` per row when the
    caller computed it (0 when it sums them itself).
    """
    if grid is not None:
        return _loglik_grid(r, alpha, s, beta, x, *grid, ops, counts)
    if ops is not NUMPY:
        return ops.from_numpy(loglik_and_grad, 4, r, alpha, s, beta, x, t_x, T)
    shape, (r, alpha, s, beta, x, t_x, T) = _flat(r, alpha, s, beta, x, t_x, T)
    log_alive, log_dead = _log_terms(r, alpha, s, beta, x, t_x, T)
    ll = count_terms(r, alpha, s, beta, x)[0] + np.logaddexp(log_alive, log_dead)
    return ll.reshape(shape)


def loglik_and_grad(r, alpha, s, beta, x, t_x, T):
    """:func:`loglik` and :func:`loglik_grad` from one quadrature (what the fit calls)."""
    shape, (r, alpha, s, beta, x, t_x, T) = _flat(r, alpha, s, beta, x, t_x, T)
    log_alive, log_dead, moments = _log_terms(r, alpha, s, beta, x, t_x, T, weights=True)
    ll = count_terms(r, alpha, s, beta, x)[0] + np.logaddexp(log_alive, log_dead)
    w = special.expit(log_dead - log_alive)  # share of "died in (t_x, T]"; 0 if t_x = T
    e_la, e_inv_a, e_lb, e_inv_b = moments()
    psi = special.digamma
    d_r = psi(r + x) - psi(r) + np.log(alpha) - (1 - w) * np.log(alpha + T) - w * e_la
    d_alpha = r / alpha - (r + x) * ((1 - w) / (alpha + T) + w * e_inv_a)
    d_s = np.log(beta) - (1 - w) * np.log(beta + T) + w * (1.0 / s - e_lb)
    d_beta = s / beta - (1 - w) * s / (beta + T) - w * (s + 1) * e_inv_b
    return ll.reshape(shape), tuple(v.reshape(shape) for v in (d_r, d_alpha, d_s, d_beta))


def loglik_grad(r, alpha, s, beta, x, t_x, T):
    r"""Gradient of :func:`loglik` with respect to (r, alpha, s, beta), one row per customer.

    With :math:`w` the share of the "died in (t_x, T]" term of the bracket and
    :math:`\mathrm{E}_y` the average over the normalised integrand (same quadrature nodes):

    .. math::
        \partial_r &= \psi(r+x) - \psi(r) + \log\alpha
                      - (1-w)\log(\alpha+T) - w\,\mathrm{E}_y[\log(\alpha+y)] \\
        \partial_\alpha &= r/\alpha - (r+x)\big[(1-w)/(\alpha+T)
                           + w\,\mathrm{E}_y[1/(\alpha+y)]\big] \\
        \partial_s &= \log\beta - (1-w)\log(\beta+T) + w\,(1/s - \mathrm{E}_y[\log(\beta+y)]) \\
        \partial_\beta &= s/\beta - (1-w)\,s/(\beta+T) - w\,(s+1)\,\mathrm{E}_y[1/(\beta+y)]
    """
    return loglik_and_grad(r, alpha, s, beta, x, t_x, T)[1]


def loglik_grad_and_hessian(r, alpha, s, beta, x, t_x, T):
    r"""Gradient (..., 4) and Hessian (..., 4, 4) of :func:`loglik` w.r.t. (r, alpha, s, beta).

    See :func:`loglik_value_grad_and_hessian` (this is its gradient and Hessian).
    """
    return loglik_value_grad_and_hessian(r, alpha, s, beta, x, t_x, T)[1:]


def loglik_value_grad_and_hessian(r, alpha, s, beta, x, t_x, T, weights=None):
    r""":func:`loglik` (...), its gradient (..., 4) and Hessian (..., 4, 4) w.r.t.
    (r, alpha, s, beta), from one quadrature (what a Newton step of the fit needs); with
    ``weights`` (one per row), their weighted totals (a number, (4,), (4, 4)).

    With :math:`e_1` the log of "alive at T", :math:`e_2` that of "died in (t_x, T]" and
    :math:`w` the share of the latter,

    .. math::
        \nabla^2 \log L = \nabla^2 K + (1-w)\nabla^2 e_1 + w\nabla^2 e_2
            + w(1-w)(\nabla e_2 - \nabla e_1)(\nabla e_2 - \nabla e_1)^\top,

    where :math:`K` is the log of the constant, and the Hessian of the log of the
    integral is :math:`\mathrm{E}_y[\nabla^2 \log f] + \mathrm{Cov}_y[\nabla \log f]`
    (same quadrature nodes as the value). Used for the standard errors.
    """
    shape, (r, alpha, s, beta, x, t_x, T) = _flat(r, alpha, s, beta, x, t_x, T)
    n = r.size
    p = r + x
    log_alive, log_dead, moments = _log_terms(r, alpha, s, beta, x, t_x, T, weights=True)
    w = special.expit(log_dead - log_alive)
    (e_la, e_ia, e_lb, e_ib), cov = moments(second=True)
    # gradients of the two log-terms
    ia_t, ib_t = 1.0 / (alpha + T), 1.0 / (beta + T)
    g1 = np.stack([-np.log(alpha + T), -p * ia_t, -np.log(beta + T), -s * ib_t], axis=1)
    g2 = np.stack([-e_la, -p * e_ia, 1.0 / s - e_lb, -(s + 1) * e_ib], axis=1)
    h = np.zeros((n, 4, 4))
    # constant: lgamma(r+x) - lgamma(r) + r log(alpha) + s log(beta)
    xu, inv = unique_inverse(x)
    h[:, 0, 0] = -trigamma_shift(r[0], xu)[inv] if np.all(r == r[0]) else (
        special.polygamma(1, p) - special.polygamma(1, r))
    h[:, 0, 1] = 1.0 / alpha
    h[:, 1, 1] = -r / alpha**2
    h[:, 2, 3] = 1.0 / beta
    h[:, 3, 3] = -s / beta**2
    # alive at T
    h1 = np.zeros((n, 4, 4))
    h1[:, 0, 1] = -ia_t
    h1[:, 1, 1] = p * ia_t**2
    h1[:, 2, 3] = -ib_t
    h1[:, 3, 3] = s * ib_t**2
    # died in (t_x, T]: E[Hessian of log f] + Cov[gradient of log f] - 1/s^2
    e_ia2 = cov[:, 1, 1] + e_ia**2
    e_ib2 = cov[:, 3, 3] + e_ib**2
    h2 = np.zeros((n, 4, 4))
    h2[:, 0, 1] = -e_ia
    h2[:, 1, 1] = p * e_ia2
    h2[:, 2, 3] = -e_ib
    h2[:, 3, 3] = (s + 1) * e_ib2
    sign_scale = np.stack([-np.ones(n), -p, -np.ones(n), -(s + 1)], axis=1)
    h2 += cov * sign_scale[:, :, None] * sign_scale[:, None, :]
    h2[:, 2, 2] -= 1.0 / s**2
    for m in (h, h1, h2):  # the upper triangles above, symmetrised
        low = np.tril_indices(4, -1)
        m[:, low[0], low[1]] = m[:, low[1], low[0]]
    diff = g2 - g1
    out = (
        h
        + (1 - w)[:, None, None] * h1
        + w[:, None, None] * h2
        + (w * (1 - w))[:, None, None] * diff[:, :, None] * diff[:, None, :]
    )
    g0 = np.stack(
        [
            special.digamma(p) - special.digamma(r) + np.log(alpha),
            r / alpha,
            np.log(beta),
            s / beta,
        ],
        axis=1,
    )
    grad = g0 + (1 - w)[:, None] * g1 + w[:, None] * g2
    ll = count_terms(r, alpha, s, beta, x)[0] + np.logaddexp(log_alive, log_dead)
    if weights is not None:
        weights = np.asarray(weights, dtype=float).ravel()
        return float(weights @ ll), weights @ grad, np.einsum("i,ijk->jk", weights, out)
    return ll.reshape(shape), grad.reshape(*shape, 4), out.reshape(*shape, 4, 4)


def loglik_hessian(r, alpha, s, beta, x, t_x, T):
    """Hessian of :func:`loglik` w.r.t. (r, alpha, s, beta): shape (..., 4, 4)."""
    return loglik_grad_and_hessian(r, alpha, s, beta, x, t_x, T)[1]


def probability_alive(r, alpha, s, beta, x, t_x, T):
    r"""P(alive at T | x, t_x, T), [2]_ §5 (eqs. (36)-(37) as cited by lifetimes):

    .. math::
        P = \Big[1 + s\,(\alpha+T)^{r+x}(\beta+T)^s
            \int_{t_x}^T (\alpha+y)^{-(r+x)}(\beta+y)^{-(s+1)}\,dy\Big]^{-1}

    i.e. the share of "alive at T" in the likelihood bracket.
    """
    shape, (r, alpha, s, beta, x, t_x, T) = _flat(r, alpha, s, beta, x, t_x, T)
    log_alive, log_dead = _log_terms(r, alpha, s, beta, x, t_x, T)
    return special.expit(log_alive - log_dead).reshape(shape)


def _one_minus_ratio_power(eps, log_ratio):
    r""":math:`(1 - e^{-\epsilon L}) / \epsilon`, with its limit :math:`L` at :math:`\epsilon=0`."""
    eps, log_ratio = np.broadcast_arrays(eps, log_ratio)
    small = np.abs(eps * log_ratio) < 1e-8
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = -np.expm1(-eps * log_ratio) / eps
    return np.where(small, log_ratio * (1.0 - 0.5 * eps * log_ratio), exact)


def expected_purchases(r, alpha, s, beta, t, x, t_x, T):
    r"""E[Y(t) | x, t_x, T]: expected purchases in (T, T+t], [2]_ eq. (41):

    .. math::
        \frac{(r+x)(\beta+T)}{(\alpha+T)(s-1)}
        \Big[1 - \Big(\frac{\beta+T}{\beta+T+t}\Big)^{s-1}\Big] P(\text{alive})

    with the limit :math:`\frac{(r+x)(\beta+T)}{\alpha+T}\log\frac{\beta+T+t}{\beta+T}` at
    :math:`s = 1`.
    """
    alive = probability_alive(r, alpha, s, beta, x, t_x, T)
    return _expected_given_alive(r, alpha, s, beta, t, x, T) * alive


def _expected_given_alive(r, alpha, s, beta, t, x, T):
    t, x, T = (np.asarray(v, dtype=float) for v in (t, x, T))
    bracket = _one_minus_ratio_power(s - 1.0, np.log1p(t / (beta + T)))
    return (r + x) * (beta + T) / (alpha + T) * bracket


def expected_purchases_path(r, alpha, s, beta, times, x, t_x, T):
    """:func:`expected_purchases` at each of ``times`` (K,) for customers (n,): (n, K).

    P(alive) does not depend on the horizon and is computed once per customer; the rest
    of eq. (41) is closed-form. (Rows are not compressed to unique ones: sorting 1M
    continuous rows costs about as much as their quadrature.)
    """
    alive = probability_alive(r, alpha, s, beta, x, t_x, T)
    times = np.asarray(times, dtype=float)
    x, T = np.asarray(x, dtype=float), np.asarray(T, dtype=float)
    given_alive = _expected_given_alive(r, alpha, s, beta, times[None, :], x[:, None], T[:, None])
    return given_alive * alive[:, None]


def expected_purchases_new(r, alpha, s, beta, t):
    r"""E[X(t)] for a customer acquired at time 0, [2]_ eq. (27):

    .. math::
        \frac{r\beta}{\alpha(s-1)}\Big[1 - \Big(\frac{\beta}{\beta+t}\Big)^{s-1}\Big],
        \quad \frac{r\beta}{\alpha}\log\Big(1 + \frac{t}{\beta}\Big) \text{ at } s = 1.
    """
    t = np.asarray(t, dtype=float)
    return r * beta / alpha * _one_minus_ratio_power(s - 1.0, np.log1p(t / beta))


def _log_pmf_integral(r, alpha, s, beta, n, t):
    r"""log of :math:`\int_0^t \tau^n (1+\tau/\alpha)^{-(r+n)}(1+\tau/\beta)^{-(s+1)}
    d\tau`, n >= 1.

    That is the integral of :func:`probability_of_purchases` times
    :math:`\alpha^{r+n}\beta^{s+1}`: scaled, as :func:`_log_pair_integral` with
    ``scaled=True``, because at huge s and beta (the exponential-lifetime limit) the
    unscaled log is a huge number whose rounding swamps the probability.

    In :math:`u = \log\tau` the log-integrand :math:`(n+1)u - (r+n)\log(\alpha+e^u)
    - (s+1)\log(\beta+e^u)` is concave and grows like :math:`e^{(n+1)u}` to the left, so
    the range starts 60/(n+1) below the smaller of the scales (relative loss < 1e-26), and
    below the mode by 12 of its widths where the mode lies further left (large r).
    """
    la, lb = np.log(alpha), np.log(beta)
    lt = np.log(t)
    # the mode: where (alpha+tau)/tau ~ (r+n+s+1)/(n+1), left of the smaller scale when
    # r is large (a customer conditioned on many past purchases); the range starts well
    # below both the scales and the mode (width ~ 1/sqrt(n+1) there)
    c = (n + 1.0) / (r + n + s + 2.0)
    mode = np.minimum(la, lb) + np.log(c) - np.log1p(-c)
    lo = np.minimum(np.minimum(la, lb), np.minimum(lt, mode)) - 60.0 / (n + 1.0)
    lo = np.minimum(lo, mode - 12.0 / np.sqrt(n + 1.0))

    def fun(u, rows, order=2):
        c, ea, eb, l_a, l_b = (
            (n + 1.0)[rows][:, None],
            (r + n)[rows][:, None],
            (s + 1.0)[rows][:, None],
            la[rows][:, None],
            lb[rows][:, None],
        )
        # log(1 + tau/alpha), log(1 + tau/beta): exact for tau far below the scales
        sa, sb = np.logaddexp(u - l_a, 0.0), np.logaddexp(u - l_b, 0.0)
        f = c * u - ea * sa - eb * sb
        if order == 0:
            return f
        ga, gb = np.exp(u - l_a - sa), np.exp(u - l_b - sb)
        return f, c - ea * ga - eb * gb, -ea * ga * (1 - ga) - eb * gb * (1 - gb)

    return log_integral(fun, lo, lt)


def probability_of_purchases(r, alpha, s, beta, n, t):
    r"""P(X(t) = n) for a customer acquired at time 0 ([3]_ §3-4: the conditional
    probability given lambda and mu, integrated over both; [3]_ then integrates over the
    time of death in closed form, here that last integral is done numerically):

    .. math::
        P(X(t)=n) = \mathrm{NBD}(n; r, \tfrac{\alpha}{\alpha+t})
                    \Big(\frac{\beta}{\beta+t}\Big)^s
        + \frac{\Gamma(r+n)\,\alpha^r s\beta^s}{\Gamma(r)\,n!}
          \int_0^t \frac{\tau^n\,d\tau}{(\alpha+\tau)^{r+n}(\beta+\tau)^{s+1}},

    alive through t with n purchases, or dead at some :math:`\tau \le t` after n
    purchases. The integral is evaluated by the same quadrature as the likelihood. All
    arguments broadcast (parameters too: :func:`conditional_pmf` passes one set per
    customer).
    """
    shape, (r, alpha, s, beta, n, t) = _flat(r, alpha, s, beta, n, t)
    log_coef = special.gammaln(r + n) - special.gammaln(r) - special.gammaln(n + 1)
    log_nbd = (
        log_coef
        + r * (np.log(alpha) - np.log(alpha + t))
        + special.xlogy(n, t)
        - n * np.log(alpha + t)
    )
    alive = log_nbd - s * np.log1p(t / beta)
    log_int = np.full(n.shape, -np.inf)
    pos = (t > 0) & (n > 0)
    zero = (t > 0) & (n == 0)
    if zero.any():
        k = np.flatnonzero(zero)
        log_int[k] = _log_pair_integral(
            alpha[k], beta[k], r[k], s[k] + 1.0, np.zeros(k.size), t[k], scaled=True
        )
    if pos.any():
        k = np.flatnonzero(pos)
        log_int[k] = _log_pmf_integral(r[k], alpha[k], s[k], beta[k], n[k], t[k])
    # both integrals are scaled by alpha^(r+n) beta^(s+1): the prefactor alpha^r s beta^s
    # of the formula becomes s alpha^-n / beta, with no s log(beta) to cancel
    dead = log_coef - n * np.log(alpha) + np.log(s) - np.log(beta) + log_int
    return np.exp(np.logaddexp(alive, dead)).reshape(shape)


def updated_if_alive(r, alpha, s, beta, x, T):
    r"""Parameters of a customer alive at T with x repeat purchases, as a new customer.

    Given activity at T the posterior of the purchase rate is
    :math:`\mathrm{Gamma}(r+x, \alpha+T)` and that of the drop-out rate
    :math:`\mathrm{Gamma}(s, \beta+T)` (survival :math:`e^{-\mu T}`); purchases and
    lifetime have no memory, so the future is that of a new customer with
    :math:`(r+x, \alpha+T, s, \beta+T)`: the route of [4]_ to its eq. (16).
    """
    x, T = np.asarray(x, dtype=float), np.asarray(T, dtype=float)
    return r + x, alpha + T, s + 0.0 * x, beta + T


def survival(r, alpha, s, beta, t):
    r"""P(still active at t) of a customer acquired at 0: :math:`(\beta/(\beta+t))^s`,
    the exponential lifetime integrated over the gamma drop-out rate (the Pareto
    lifetime of [1]_ §2)."""
    return np.exp(s * (np.log(beta) - np.log(np.asarray(beta) + t)))


_PMF_NODES, _PMF_WEIGHTS = np.polynomial.legendre.leggauss(48)


def pmf_table(r, alpha, s, beta, t, n_max):
    r"""P(X(t) = n), n = 0..n_max (last axis), of customers acquired at 0, for tables.

    Given the lifetime :math:`\tau`, the count is NBD over :math:`\min(\tau, t)`
    ([1]_ §2), and :math:`P(\tau > y) = (\beta/(\beta+y))^s`; so
    :math:`P(X(t)=n) = (\frac{\beta}{\beta+t})^s \mathrm{NB}_n(t)
    + \int_0^U s e^{-su}\,\mathrm{NB}_n(\beta(e^u-1))\,du` with
    :math:`u = \log(1 + y/\beta)`, :math:`U = \log(1 + t/\beta)`: the same quantity as
    :func:`probability_of_purchases` ([3]_), here by 48-point Gauss-Legendre in u over
    NBD tables (:func:`clvmodels._math.nbd_table`). Absolute accuracy ~1e-10 (what the
    prediction intervals need; ``tests/test_predictive.py`` checks it).
    """
    r, alpha, s, beta, t = (np.asarray(v, dtype=float) for v in (r, alpha, s, beta, t))
    upper = np.log1p(t / beta)
    out = np.exp(s * -upper)[..., None] * nbd_table(r, alpha, t, n_max)
    for node, weight in zip(_PMF_NODES, _PMF_WEIGHTS, strict=True):
        u = upper * (1.0 + node) / 2.0
        density = (upper / 2.0 * weight) * s * np.exp(-s * u)
        out += density[..., None] * nbd_table(r, alpha, beta * np.expm1(u), n_max)
    return out


def simulate_future(r, alpha, s, beta, t, x, t_x, T, rng):
    """Draws of the purchases in (T, T+t] given each customer's history (vectorised):
    alive at T with :func:`probability_alive`, then a new customer with the parameters of
    :func:`updated_if_alive` (rate, exponential remaining lifetime, Poisson count)."""
    alive = rng.random(np.shape(x)) < probability_alive(r, alpha, s, beta, x, t_x, T)
    q = updated_if_alive(r, alpha, s, beta, x, T)
    lam = rng.gamma(q[0], 1.0 / q[1])
    mu = rng.gamma(q[2], 1.0 / q[3])
    with np.errstate(divide="ignore", over="ignore"):
        tau = rng.exponential(1.0, np.shape(x)) / mu
    return np.where(alive, rng.poisson(lam * np.minimum(tau, t)), 0)


def simulate(r, alpha, s, beta, T, rng):
    """Exact draws of (x, t_x) for customers of ages ``T`` (vectorised), [1]_ §2.

    Each customer draws lambda ~ Gamma(r, alpha) and mu ~ Gamma(s, beta) (rates) and a
    lifetime tau ~ Exponential(mu). Over the observed active time m = min(tau, T) the
    customer makes x ~ Poisson(lambda m) purchases at uniform times, so the last one is
    t_x = m U^(1/x) (the maximum of x uniforms), U ~ Uniform(0, 1).
    """
    size = T.shape
    lam = rng.gamma(r, 1.0 / alpha, size)
    mu = rng.gamma(s, 1.0 / beta, size)
    with np.errstate(divide="ignore", over="ignore"):
        tau = rng.exponential(1.0, size) / mu
    active = np.minimum(tau, T)
    x = rng.poisson(lam * active)
    t_x = np.zeros(size)
    pos = x > 0
    t_x[pos] = active[pos] * rng.random(int(pos.sum())) ** (1.0 / x[pos])
    return x, t_x


class ParetoNBD(CovariateTransactionModel):
    """Pareto/NBD model of repeat purchasing (Schmittlein, Morrison & Colombo 1987).

    Parameters ``r, alpha`` (gamma heterogeneity in purchase rate) and ``s, beta``
    (gamma heterogeneity in drop-out rate). Fit on an RFM frame with ``frequency``,
    ``recency`` and ``T``.

    Examples
    --------
    >>> import clvmodels as cm
    >>> pn = cm.ParetoNBD.from_params(r=0.553, alpha=10.578, s=0.606, beta=11.669)
    >>> round(pn.expected_purchases_new(39.0), 3)
    1.213
    """

    param_names = PARAM_NAMES
    covariate_links = ((1, "purchase", -1), (3, "dropout", -1))
    _row_hessians = True
    formulas = Formulas(
        loglik=loglik,
        loglik_grad=loglik_grad,
        expected_purchases=expected_purchases,
        probability_alive=probability_alive,
        expected_purchases_new=expected_purchases_new,
        probability_of_purchases=probability_of_purchases,
        simulate=simulate,
        expected_purchases_path=expected_purchases_path,
        loglik_and_grad=loglik_and_grad,
        loglik_value_grad_and_hessian=loglik_value_grad_and_hessian,
        conditional=Conditional(
            updated=updated_if_alive,
            survival=survival,
            pmf=probability_of_purchases,
            pmf_table=pmf_table,
            simulate_future=simulate_future,
            mean=expected_purchases_new,
        ),
    )

    def _start(self, data, weights):
        start = super()._start(data, weights)
        start[3] = start[1]  # beta on the scale of alpha (time unit of the data)
        return start
