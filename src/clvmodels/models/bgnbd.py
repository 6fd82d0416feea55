r"""BG/NBD model (Fader, Hardie & Lee 2005): formulas as pure functions, and the estimator.

While active, a customer buys at Poisson rate :math:`\lambda`; after each repeat purchase
the customer drops out with probability :math:`p`. Across customers
:math:`\lambda \sim \mathrm{Gamma}(r, \alpha)` (shape, rate) and
:math:`p \sim \mathrm{Beta}(a, b)`.

References
----------
.. [1] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "Counting Your Customers"
   the Easy Way: An Alternative to the Pareto/NBD Model. *Marketing Science* 24(2),
   275-284.
.. [2] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2008). Computing P(alive) using
   the BG/NBD model. http://brucehardie.com/notes/021/
"""

from __future__ import annotations

import numpy as np
from scipy import special

from .._math import NUMPY, nbd_table, trigamma_shift, unique_inverse
from ._base import unique_rows
from ._btyd import Conditional, CovariateTransactionModel, Formulas
from ._hyp2f1 import log_hyp2f1

PARAM_NAMES = ("r", "alpha", "a", "b")


def _log_odds_dead(r, alpha, a, b, x, t_x, T, ops=NUMPY, log_c2=None, logs=None):
    """log of  a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x)  for x > 0 (0-safe for x = 0);
    ``log_c2`` is log(a) - log(b + max(x, 1) - 1) and ``logs`` (log(alpha + T),
    log(alpha + t_x)) when the caller has them (:func:`count_terms`,
    :func:`loglik_total_and_grad`)."""
    if log_c2 is None:
        log_c2 = ops.log(a) - ops.log(b + ops.maximum(x, 1.0) - 1.0)
    log_T, log_t = (ops.log(alpha + T), ops.log(alpha + t_x)) if logs is None else logs
    return log_c2 + (r + x) * (log_T - log_t)


def count_terms(r, alpha, a, b, x, ops=NUMPY):
    r"""The parts of [1]_ eq. (6) that depend on the parameters and the count x alone.

    Returns :math:`\log c_1 = \log \frac{B(a, b+x)}{B(a, b)} \frac{\Gamma(r+x)\alpha^r}{\Gamma(r)}`
    and :math:`\log c_2 = \log a - \log(b + \max(x, 1) - 1)`, so that eq. (6) reads
    :math:`L = c_1 (\alpha+T)^{-(r+x)} + \delta_{x>0}\, c_1 c_2 (\alpha+t_x)^{-(r+x)}`.
    :func:`loglik` computes them per row unless given; the Bayesian models evaluate them
    once per distinct (segment, x) and index, which takes the gamma functions (and their
    derivatives) and the logs of per-segment parameters off the per-customer work.
    """
    log_c1 = (  # log Gamma(z + x) - log Gamma(z) is ops.log_pochhammer(z, x)
        ops.log_pochhammer(r, x) + r * ops.log(alpha)
        + ops.log_pochhammer(b, x) - ops.log_pochhammer(a + b, x)
    )
    return log_c1, ops.log(a) - ops.log(b + ops.maximum(x, 1.0) - 1.0)


def loglik(r, alpha, a, b, x, t_x, T, ops=NUMPY, counts=None):
    r"""Log-likelihood of each customer's (x, t_x, T), [1]_ eq. (6).

    .. math::
        L = \frac{B(a, b+x)}{B(a, b)} \frac{\Gamma(r+x)\alpha^r}{\Gamma(r)(\alpha+T)^{r+x}}
          + \delta_{x>0} \frac{B(a+1, b+x-1)}{B(a, b)}
            \frac{\Gamma(r+x)\alpha^r}{\Gamma(r)(\alpha+t_x)^{r+x}}

    computed as :math:`\log L_1 + \mathrm{softplus}(\log L_2 - \log L_1)`, which never
    overflows. ``ops`` is the array back-end (numpy here, pytensor in :mod:`clvmodels.bayes`);
    ``counts`` is :func:`count_terms` per row when the caller computed it.
    """
    log_c1, log_c2 = count_terms(r, alpha, a, b, x, ops) if counts is None else counts
    log_l1 = log_c1 - (r + x) * ops.log(alpha + T)
    d = _log_odds_dead(r, alpha, a, b, x, t_x, T, ops, log_c2=log_c2)
    return log_l1 + ops.where(x > 0, ops.softplus(d), 0.0)


class GroupedRows:
    """Distinct rows of a BG/NBD data set, arranged for :func:`loglik_total_and_grad`.

    Built once from the fitted rows (group codes, x, t_x, T, weights): the distinct
    (group, x) pairs, (group, T) and (group, t_x) values and, for each row with x > 0
    (sorted by (group, T)), where its terms are. :meth:`arrays` gives them in
    ``FIELDS`` order: the data inputs of :func:`loglik_total_and_grad` (and of the
    pytensor Op of :mod:`clvmodels.bayes`).
    """

    FIELDS = ("pair_group", "pair_x", "pair_weight", "age_group", "age", "age_weight",
              "age_weight_x", "last_group", "last", "row_pair", "row_last", "row_x",
              "row_group", "row_weight", "run_age", "run_start")

    def __init__(self, codes, x, t_x, T, w):
        codes, x, t_x, T, w = (np.asarray(v, dtype=float).ravel()
                               for v in np.broadcast_arrays(codes, x, t_x, T, w))
        (self.pair_group, self.pair_x), pair, _, _ = unique_rows([codes, x])
        (self.age_group, self.age), age, _, _ = unique_rows([codes, T])
        self.pair_weight = np.bincount(pair, w, self.pair_x.size)
        self.age_weight = np.bincount(age, w, self.age.size)
        self.age_weight_x = np.bincount(age, w * x, self.age.size)
        pos = np.flatnonzero(x > 0)
        pos = pos[np.argsort(age[pos], kind="stable")]  # runs of one (group, T)
        (self.last_group, self.last), last, _, _ = unique_rows([codes[pos], t_x[pos]])
        self.row_pair, self.row_last = pair[pos], last
        self.row_x, self.row_group, self.row_weight = x[pos], codes[pos], w[pos]
        self.run_age, self.run_start = np.unique(age[pos], return_index=True)
        for name in ("pair_group", "age_group", "last_group", "row_group"):
            setattr(self, name, getattr(self, name).astype(np.int64))

    def arrays(self) -> list[np.ndarray]:
        return [getattr(self, f) for f in self.FIELDS]


def loglik_total_and_grad(r, alpha, a, b, *arrays):
    r"""``sum_i w_i`` :func:`loglik` and its gradient, over the rows of :class:`GroupedRows`.

    The same [1]_ eq. (6), arranged by what each part depends on: with parameters per
    group g (vectors, one entry per group code),

    .. math::
        \sum_i w_i \ell_i = \sum_{(g,x)} W_{gx} \log c_1 - \sum_{(g,T)} (r_g W_{gT} +
        (Wx)_{gT}) \log(\alpha_g + T) + \sum_{i: x_i > 0} w_i\, \mathrm{softplus}(d_i),

    :math:`\log c_1` from :func:`count_terms` per distinct (g, x), the logarithms per
    distinct (g, T) and (g, t_x), and only the softplus of the log odds
    :math:`d_i` (:func:`_log_odds_dead`) per row. The gradient is :func:`loglik_grad`
    summed the same way (:math:`w_i \sigma(d_i)` per row, summed per (g, T), (g, t_x)
    and (g, x)). Returns (total, (d_r, d_alpha, d_a, d_b)), each derivative a vector
    over the groups. Exact: the same sum as ``weights @ loglik(...)``, ordered
    differently (a million customers: about 10 ms a call instead of 30).
    """
    v = dict(zip(GroupedRows.FIELDS, arrays, strict=True))
    r, alpha, a, b = (np.asarray(p, dtype=float).reshape(-1) for p in (r, alpha, a, b))
    n = r.size
    psi = special.digamma
    pg, px, ag, lg = v["pair_group"], v["pair_x"], v["age_group"], v["last_group"]
    rp, alp, ap, bp = r[pg], alpha[pg], a[pg], b[pg]
    log_c1, log_c2 = count_terms(rp, alp, ap, bp, px)
    inv_T, inv_t = 1.0 / (alpha[ag] + v["age"]), 1.0 / (alpha[lg] + v["last"])
    log_T, log_t = -np.log(inv_T), -np.log(inv_t)
    rows_T = np.repeat(log_T[v["run_age"]], np.diff(np.r_[v["run_start"], v["row_x"].size]))
    rx = (r[0] if n == 1 else np.take(r, v["row_group"])) + v["row_x"]
    d = _log_odds_dead(rx - v["row_x"], None, None, None, v["row_x"], None, None,
                       log_c2=np.take(log_c2, v["row_pair"]),
                       logs=(rows_T, np.take(log_t, v["row_last"])))
    e = np.exp(-np.abs(d))
    inv = 1.0 / (1.0 + e)
    softplus = np.maximum(d, 0.0) - np.log(inv)
    w_pair, w_age, wx_age = v["pair_weight"], v["age_weight"], v["age_weight_x"]
    w_row = v["row_weight"]
    l1_age = r[ag] * w_age + wx_age  # sum of w (r + x) per (g, T)
    total = (w_pair * log_c1).sum() - (l1_age * log_T).sum() + (w_row * softplus).sum()
    s = w_row * inv * np.exp(np.minimum(d, 0.0))  # w sigma(d): the second term's share
    s_age, sx_age = np.zeros((2, log_T.size))
    s_age[v["run_age"]], sx_age[v["run_age"]] = np.add.reduceat(
        np.stack([s, s * rx]), v["run_start"], axis=1)
    s_last = np.bincount(v["row_last"], s, log_t.size)
    sx_last = np.bincount(v["row_last"], s * rx, log_t.size)
    s_pair = np.bincount(v["row_pair"], s, px.size)
    inv_b1 = 1.0 / (bp + np.maximum(px, 1.0) - 1.0)

    def per_group(codes, values):
        return np.bincount(codes, values, n)

    psi_ab = psi(ap + bp) - psi(ap + bp + px)
    d_r = (per_group(pg, w_pair * (psi(rp + px) - psi(rp) + np.log(alp)))
           + per_group(ag, (s_age - w_age) * log_T) - per_group(lg, s_last * log_t))
    d_alpha = (per_group(pg, w_pair * rp / alp) + per_group(ag, (sx_age - l1_age) * inv_T)
               - per_group(lg, sx_last * inv_t))
    d_a = per_group(pg, w_pair * psi_ab + s_pair / ap)
    d_b = per_group(pg, w_pair * (psi_ab + psi(bp + px) - psi(bp)) - s_pair * inv_b1)
    return total, (d_r, d_alpha, d_a, d_b)


def loglik_grad(r, alpha, a, b, x, t_x, T):
    """Gradient of :func:`loglik` with respect to (r, alpha, a, b), one row per customer.

    With :math:`w = \\delta_{x>0}\\,\\sigma(d)` the share of the second term of eq. (6):
    d/dr = psi(r+x) - psi(r) + log(alpha) - (1-w) log(alpha+T) - w log(alpha+t_x), and so on.
    """
    psi = special.digamma
    d = _log_odds_dead(r, alpha, a, b, x, t_x, T)
    w = np.where(x > 0, special.expit(d), 0.0)
    xs = np.maximum(x, 1.0)
    d_r = (psi(r + x) - psi(r) + np.log(alpha)
           - (1 - w) * np.log(alpha + T) - w * np.log(alpha + t_x))
    d_alpha = r / alpha - (r + x) * ((1 - w) / (alpha + T) + w / (alpha + t_x))
    d_a = psi(a + b) - psi(a + b + x) + w / a
    d_b = psi(a + b) - psi(b) - psi(a + b + x) + psi(b + x) - w / (b + xs - 1.0)
    return d_r, d_alpha, d_a, d_b


def loglik_grad_and_hessian(r, alpha, a, b, x, t_x, T):
    r"""Gradient (n, 4) and Hessian (n, 4, 4) of :func:`loglik` w.r.t. (r, alpha, a, b).

    See :func:`loglik_value_grad_and_hessian` (this is its gradient and Hessian).
    """
    return loglik_value_grad_and_hessian(r, alpha, a, b, x, t_x, T)[1:]


def loglik_value_grad_and_hessian(r, alpha, a, b, x, t_x, T, weights=None):
    r""":func:`loglik`, its gradient and Hessian w.r.t. (r, alpha, a, b), sharing the work.

    :func:`loglik` is :math:`\ell = \log L_1 + \delta_{x>0}\,\mathrm{softplus}(d)`
    ([1]_ eq. (6)), so with :math:`w = \delta_{x>0}\sigma(d)`:
    :math:`\nabla\ell = \nabla\log L_1 + w\nabla d` and
    :math:`\nabla^2\ell = \nabla^2\log L_1 + w\nabla^2 d + w(1-w)\nabla d\,\nabla d^T`.
    Both pieces are sums of log-gamma and log terms with closed-form derivatives
    (trigamma :math:`\psi_1` for the second ones); (r, alpha) and (a, b) only meet in d.

    Returns per row (shapes (n,), (n, 4), (n, 4, 4) for n broadcast rows), or, with
    ``weights`` (n,), the weighted totals (a number, (4,), (4, 4)): what a Newton step of
    the fit needs, without the per-row Hessians. Functions of the frequency alone are
    evaluated once per distinct frequency.
    """
    psi = special.digamma
    x, t_x, T = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, t_x, T)))
    shape = x.shape
    x, t_x, T = x.ravel(), t_x.ravel(), T.ravel()
    # functions of x alone, evaluated once per distinct x (xs = max(x, 1))
    xu, inv = unique_inverse(x)
    xsu = np.maximum(xu, 1.0)
    inv_b1 = 1.0 / (b + xsu - 1.0)
    tri_ab = trigamma_shift(a + b, xu)  # psi1(a+b) - psi1(a+b+x)
    log_c1, log_c2 = count_terms(r, alpha, a, b, xu)
    of_x = np.stack([
        log_c1,
        log_c2,
        psi(r + xu),
        psi(a + b) - psi(a + b + xu),
        psi(b + xu) - psi(b),
        -inv_b1,  # d d / d b
        -trigamma_shift(r, xu),
        tri_ab,
        tri_ab - trigamma_shift(b, xu),
        inv_b1**2,
        (xu > 0).astype(float),
    ])[:, inv]
    log_c1, log_c2, psi_rx, psi_ab, psi_b, dd_b, h00, h23, h33, inv_b1_sq, pos = of_x
    rx = r + x
    log_aT, log_at = np.log(alpha + T), np.log(alpha + t_x)
    inv_T, inv_t = 1.0 / (alpha + T), 1.0 / (alpha + t_x)
    ll = loglik(r, alpha, a, b, x, t_x, T, counts=(log_c1, log_c2))
    d = _log_odds_dead(r, alpha, a, b, x, t_x, T, log_c2=log_c2)
    w = pos * special.expit(d)
    # gradient of d, and of log L1
    dd = np.stack([log_aT - log_at, rx * (inv_T - inv_t), np.full_like(x, 1.0 / a), dd_b],
                  axis=-1)
    g1 = np.stack([psi_rx - psi(r) + np.log(alpha) - log_aT, r / alpha - rx * inv_T,
                   psi_ab, psi_ab + psi_b], axis=-1)
    grad = g1 + w[:, None] * dd
    # upper triangle of the Hessian of log L1 + w d; then the rank-one term w(1-w) dd dd'
    inv_T2, inv_t2 = inv_T**2, inv_t**2
    upper = {
        (0, 0): h00,
        (0, 1): 1.0 / alpha - inv_T + w * (inv_T - inv_t),
        (1, 1): -r / alpha**2 + rx * (inv_T2 - w * (inv_T2 - inv_t2)),
        (2, 2): h23 - w / a**2,
        (2, 3): h23,
        (3, 3): h33 + w * inv_b1_sq,
    }
    curv = w * (1.0 - w)
    if weights is not None:
        weights = np.asarray(weights, dtype=float).ravel()
        hess = dd.T @ ((weights * curv)[:, None] * dd)
        for (i, j), v in upper.items():
            hess[i, j] += weights @ v
            if i != j:
                hess[j, i] += weights @ v
        return float(weights @ ll), weights @ grad, hess
    hess = curv[:, None, None] * dd[:, :, None] * dd[:, None, :]
    for (i, j), v in upper.items():
        hess[:, i, j] += v
        if i != j:
            hess[:, j, i] += v
    return ll.reshape(shape), grad.reshape(*shape, 4), hess.reshape(*shape, 4, 4)


def probability_alive(r, alpha, a, b, x, t_x, T):
    r"""P(active at T | x, t_x, T), [2]_ eq. (5) / [1]_ eq. (11):
    :math:`1 / (1 + \delta_{x>0} \frac{a}{b+x-1} (\frac{\alpha+T}{\alpha+t_x})^{r+x})`."""
    d = _log_odds_dead(r, alpha, a, b, x, t_x, T)
    return np.where(x > 0, special.expit(-d), 1.0)


def _log_bracket_ratio(r, alpha, a, b, t, x, T):
    """log|G| and sign of G = (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), z = t/(alpha+T+t).

    This is  ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)  of [1]_ eq. (10)
    after Euler's transformation 2F1(A,B;C;z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z)
    (Abramowitz & Stegun 15.3.3), whose parameters do not grow with x.
    """
    log1mz = np.log(alpha + T) - np.log(alpha + T + t)
    z = t / (alpha + T + t)
    log_f, sign = log_hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
    return (a - 1) * log1mz + log_f, sign


def _a_minus_1(a):
    # eq. (10) has a removable singularity at a = 1; step off it by 1e-7 (relative
    # effect on predictions below 1e-6).
    a = np.asarray(a, dtype=float)
    return np.where(np.abs(a - 1) < 1e-7, 1 + 1e-7, a)


def _expected_if_alive(r, alpha, a, b, t, x, T):
    """The bracket of [1]_ eq. (10) times (a+b+x-1)/(a-1): E[Y(t)] given alive at T."""
    a = _a_minus_1(a)
    log_g, sign = _log_bracket_ratio(r, alpha, a, b, t, x, T)
    # 1 - sign exp(log_g); its sign and that of a - 1 change together at a = 1 (the
    # 2F1 is negative only when a + b + x - 1 < 0, i.e. x = 0 and a + b < 1)
    one_minus = np.where(sign > 0, -np.expm1(log_g), 1.0 + np.exp(np.minimum(log_g, 700.0)))
    return (a + b + x - 1) / (a - 1) * one_minus


def expected_purchases(r, alpha, a, b, t, x, t_x, T):
    r"""E[Y(t) | x, t_x, T]: expected purchases in (T, T+t], [1]_ eq. (10).

    .. math::
        \frac{a+b+x-1}{a-1}\Big[1 - \big(\tfrac{\alpha+T}{\alpha+T+t}\big)^{r+x}
        {}_2F_1(r+x, b+x; a+b+x-1; \tfrac{t}{\alpha+T+t})\Big] \, P(\text{alive})

    All arguments broadcast against each other.
    """
    return (_expected_if_alive(r, alpha, a, b, t, x, T)
            * probability_alive(r, alpha, a, b, x, t_x, T))


def expected_purchases_path(r, alpha, a, b, times, x, t_x, T):
    """:func:`expected_purchases` at each of ``times`` (K,) for customers (n,): (n, K).

    The hypergeometric part depends on (x, T) only, so it is evaluated once per unique
    (x, T) pair (few when ages are whole days) and P(alive) once per customer.
    """
    (xu, Tu), inverse, _, _ = unique_rows([x, T])
    if_alive = _expected_if_alive(r, alpha, a, b, np.asarray(times)[None, :],
                                  xu[:, None], Tu[:, None])
    return if_alive[inverse] * probability_alive(r, alpha, a, b, x, t_x, T)[:, None]


def expected_purchases_new(r, alpha, a, b, t):
    r"""E[X(t)] for a customer acquired at time 0, [1]_ eq. (9) (eq. (10) at x = t_x = T = 0).

    .. math:: \frac{a+b-1}{a-1}\Big[1 - \big(\tfrac{\alpha}{\alpha+t}\big)^r
       {}_2F_1(r, b; a+b-1; \tfrac{t}{\alpha+t})\Big]
    """
    t = np.asarray(t, dtype=float)
    zero = np.zeros_like(t)
    # P(alive) = 1 at x = 0 (eq. (11)): not evaluated (the Bayesian CLV calls this for
    # every draw, distinct customer and period)
    return _expected_if_alive(r, alpha, a, b, t, zero, zero)


def probability_of_purchases(r, alpha, a, b, n, t):
    r"""P(X(t) = n) for a customer acquired at time 0, [1]_ eq. (8).

    The finite sum of NBD probabilities in eq. (8) is the NBD survival function, computed
    as the regularised incomplete beta function :math:`I_{t/(\alpha+t)}(n, r)`.
    """
    n, t = np.broadcast_arrays(np.asarray(n, dtype=float), np.asarray(t, dtype=float))
    log_nbd = (special.gammaln(r + n) - special.gammaln(r) - special.gammaln(n + 1)
               + r * (np.log(alpha) - np.log(alpha + t)) + special.xlogy(n, t)
               - n * np.log(alpha + t))
    log_beta1 = special.betaln(a, b + n) - special.betaln(a, b)
    ns = np.maximum(n, 1.0)
    log_beta2 = special.betaln(a + 1, b + ns - 1) - special.betaln(a, b)
    survival = special.betainc(ns, r, t / (alpha + t))
    return np.exp(log_beta1 + log_nbd) + np.where(n > 0, np.exp(log_beta2) * survival, 0.0)


def updated_if_alive(r, alpha, a, b, x, T):
    r"""Parameters of a customer alive at T with x repeat purchases, as a new customer.

    Given activity at T, the posterior of the purchase rate is
    :math:`\mathrm{Gamma}(r+x, \alpha+T)` (Poisson counts over T) and that of the drop-out
    probability :math:`\mathrm{Beta}(a, b+x)` (x purchases survived); the Poisson
    process has no memory, so the future in (T, T+t] is that of a customer just acquired
    with parameters :math:`(r+x, \alpha+T, a, b+x)` ([1]_ §3, the derivation of eq. (10)).
    """
    x, T = np.asarray(x, dtype=float), np.asarray(T, dtype=float)
    return r + x, alpha + T, a + 0.0 * x, b + x


def survival(r, alpha, a, b, t):
    r"""P(still active at t) of a customer acquired at 0.

    Active at t means none of the purchases in (0, t] was followed by the drop-out:
    :math:`E[e^{-\lambda p t}] = E_p[(1 + p t/\alpha)^{-r}]
    = {}_2F_1(r, a; a+b; -t/\alpha)`, written with Pfaff's transformation (A&S 15.3.4)
    as :math:`(\frac{\alpha}{\alpha+t})^a\, {}_2F_1(a+b-r, a; a+b; \frac{t}{\alpha+t})`,
    whose argument lies in [0, 1). Same derivation as [1]_ eq. (8) (the case n = 0
    without the drop-out term).
    """
    r, alpha, a, b, t = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (r, alpha, a, b, t))
    )
    log_f, _ = log_hyp2f1(a + b - r, a, a + b, t / (alpha + t))
    return np.exp(a * (np.log(alpha) - np.log(alpha + t)) + log_f)


def pmf_table(r, alpha, a, b, t, n_max):
    r"""P(X(t) = n), n = 0..n_max, of customers acquired at 0: array (..., n_max + 1).

    [1]_ eq. (8), :math:`E[(1-p)^n]\,\mathrm{NB}(n) + \delta_{n>0}E[p(1-p)^{n-1}]\,
    P(\mathrm{NB} \ge n)`, by recurrences in n (log-space NBD terms, beta-function ratios
    :math:`B(a, b+n+1)/B(a, b+n) = (b+n)/(a+b+n)`), for whole tables at once; the
    parameters broadcast. Absolute accuracy ~1e-15 (what the prediction intervals
    need); :func:`probability_of_purchases` keeps full relative accuracy in the tails.
    """
    nbd = nbd_table(r, alpha, t, n_max)
    a, b = (np.asarray(v, dtype=float)[..., None] for v in (a, b))
    n = np.arange(n_max + 1, dtype=float)
    # E[(1-p)^n] = B(a, b+n)/B(a, b), by the ratios of consecutive terms
    log_surv_p = np.empty(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]) + n.shape)
    log_surv_p[..., 0] = 0.0
    log_surv_p[..., 1:] = np.log((b + n[:-1]) / (a + b + n[:-1]))
    np.cumsum(log_surv_p, axis=-1, out=log_surv_p)
    surv_p = np.exp(log_surv_p)
    at_least = 1.0 - np.cumsum(nbd, axis=-1) + nbd  # P(NB >= n)
    out = surv_p * nbd
    # E[p (1-p)^(n-1)] = a / (a+b+n-1) * E[(1-p)^(n-1)]
    out[..., 1:] += a / (a + b + n[:-1]) * surv_p[..., :-1] * np.clip(at_least[..., 1:], 0, 1)
    return out


def simulate_future(r, alpha, a, b, t, x, t_x, T, rng):
    """Draws of the purchases in (T, T+t] given each customer's history (vectorised).

    Alive at T with probability :func:`probability_alive`; then the customer is a new
    customer with the parameters of :func:`updated_if_alive`, drawn as in
    :func:`simulate` (x = min(geometric, Poisson)).
    """
    alive = rng.random(np.shape(x)) < probability_alive(r, alpha, a, b, x, t_x, T)
    q = updated_if_alive(r, alpha, a, b, x, T)
    lam = rng.gamma(q[0], 1.0 / q[1])
    p = rng.beta(q[2], q[3])
    n_max = rng.geometric(np.clip(p, 1e-300, 1.0))
    m = rng.poisson(lam * t)
    return np.where(alive, np.minimum(n_max, m), 0)


def simulate(r, alpha, a, b, T, rng):
    """Exact draws of (x, t_x) for customers of ages ``T`` (vectorised).

    Each customer draws lambda ~ Gamma(r, alpha) and p ~ Beta(a, b). The number of repeat
    purchases the customer would make if observed forever is N ~ Geometric(p) on
    {1, 2, ...} (drop-out after each repeat purchase); the Poisson process gives
    M ~ Poisson(lambda T) purchases in (0, T]; x = min(N, M), and the x-th of M uniform
    arrival times is t_x = T * Beta(x, M - x + 1).
    """
    size = T.shape
    lam = rng.gamma(r, 1.0 / alpha, size)
    p = rng.beta(a, b, size)
    n_max = rng.geometric(np.clip(p, 1e-300, 1.0))
    m = rng.poisson(lam * T)
    x = np.minimum(n_max, m)
    t_x = np.zeros(size)
    pos = x > 0
    t_x[pos] = T[pos] * rng.beta(x[pos], m[pos] - x[pos] + 1)
    return x, t_x


class BGNBD(CovariateTransactionModel):
    """BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005).

    Parameters ``r, alpha`` (gamma heterogeneity in purchase rate) and ``a, b`` (beta
    heterogeneity in drop-out probability). Fit on an RFM frame with ``frequency``,
    ``recency`` and ``T``.

    Examples
    --------
    >>> import clvmodels as cm
    >>> bg = cm.BGNBD.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426)
    >>> round(bg.expected_purchases_new(39.0), 3)
    1.471
    """

    param_names = PARAM_NAMES
    covariate_links = ((1, "purchase", -1), (2, "dropout", 1), (3, "dropout", 1))
    formulas = Formulas(
        loglik=loglik,
        loglik_grad=loglik_grad,
        expected_purchases=expected_purchases,
        probability_alive=probability_alive,
        expected_purchases_new=expected_purchases_new,
        probability_of_purchases=probability_of_purchases,
        simulate=simulate,
        expected_purchases_path=expected_purchases_path,
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
