r"""MBG/CNBD-k and BG/CNBD-k (Reutterer, Platzer & Schroder 2020): formulas and estimators.

The BG/NBD and MBG/NBD with *regular* purchasing. While active, a customer's
inter-transaction times are Erlang-k with rate :math:`\lambda`: every k-th event of a
Poisson process of rate :math:`\lambda` is a purchase, so the purchase rate is
:math:`\lambda / k` and the timing is more regular the larger k. Across customers
:math:`\lambda \sim \mathrm{Gamma}(r, \alpha)` (shape, rate) and the drop-out probability
:math:`p \sim \mathrm{Beta}(a, b)`. After each repeat purchase the customer drops out with
probability p; in the MBG/CNBD-k also at time 0, right after the first purchase (so a
customer without repeat purchases is not surely alive), in the BG/CNBD-k not. k = 1 gives
the MBG/NBD and the BG/NBD exactly. k is a whole number, chosen by likelihood
(:class:`MBGCNBD`), and parameterises the formulas here as their first argument.

The likelihood ([1]_; written as BTYDplus' ``xbgcnbd.LL`` [2]_) needs one statistic beyond
(x, t_x, T): ``litt``, the sum of the logs of the customer's x inter-transaction times
(:func:`clvmodels.rfm_summary` with ``litt=True``). It enters as :math:`(k-1)\,\mathrm{litt}`,
a term free of (r, alpha, a, b) that makes likelihoods of different k comparable.

Given that a customer is alive at T, the number J of Poisson events since the last
purchase (0 <= J < k) is the phase of the Erlang clock; its posterior weights are the
terms of the sum :math:`S_2` of the likelihood, and given J = j the rate has the posterior
:math:`\mathrm{Gamma}(r + kx + j, \alpha + T)`. The conditional expectation
(:func:`expected_purchases`) is the exact sum over phases and over the future Poisson
events; BTYDplus instead approximates it by the BG/NBD formula at :math:`k\alpha` and rescales
the cohort total to the unconditional expectation (its ``ConditionalExpectedTransactions``
"bias correction"). Both give the same expectation over the model; ours is exact per
customer.

Equation numbers of [1]_ could not be checked here against the printed paper; the
expressions are those of BTYDplus' R source [2]_ (each function names its counterpart),
re-derived in the docstrings, and checked against BTYDplus' own reference values and,
at k = 1, against [3]_ and [4]_.

References
----------
.. [1] Reutterer, T., Platzer, M. and Schroder, N. (2021). Leveraging purchase
   regularity for predicting customer behavior the easy way. *International Journal of
   Research in Marketing* 38(1), 194-215 (online 2020), doi:10.1016/j.ijresmar.2020.09.002.
.. [2] Platzer, M. BTYDplus: Probabilistic Models for Assessing and Predicting your
   Customer Base. R package, https://github.com/mplatzer/BTYDplus (``R/mbg-cnbd-k.R``,
   ``src/slice-sampling.cpp``: ``xbgcnbd_pmf_cpp``).
.. [3] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "Counting Your Customers"
   the Easy Way: An Alternative to the Pareto/NBD Model. *Marketing Science* 24(2),
   275-284.
.. [4] Batislam, E. P., Denizel, M. and Filiztekin, A. (2007). Empirical validation and
   comparison of models for customer base analysis. *International Journal of Research
   in Marketing* 24(3), 201-209.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pandas as pd
from scipy import special

from .._math import NUMPY
from .._validate import _float_array, rfm_arrays
from ..errors import ConvergenceError, DataError
from ._btyd import Conditional, TransactionModel, _as_series

PARAM_NAMES = ("k", "r", "alpha", "a", "b")
_TINY = 1e-300
_CELLS = 2_000_000  # grid cells (rows x times x Poisson counts) evaluated at once


def _shift(dropout_at_zero: bool) -> float:
    """Drop-out opportunities before the first repeat purchase: 1 (MBG) or 0 (BG)."""
    return 1.0 if dropout_at_zero else 0.0


def _phase_terms(k, r, alpha, x, t_x, T, ops=NUMPY):
    r"""log of the k terms of :math:`S_2` of :func:`loglik`, j = 0..k-1:

    .. math:: \tau_j = \log\frac{\Gamma(r+kx+j)}{\Gamma(r+kx)\, j!}
              + j \log\frac{T - t_x}{\alpha + T},

    the probability that fewer than k Poisson events fell in (t_x, T], split by their
    number j, integrated over the posterior of the rate (up to a common factor). ``T - t_x = 0``
    gives the terms j > 0 a log of about -690 j (no log of zero).
    """
    rx = r + k * x
    log_gap = ops.log(ops.maximum(T - t_x, _TINY)) - ops.log(alpha + T)
    return [
        ops.gammaln(rx + j) - ops.gammaln(rx) - math.lgamma(j + 1.0) + j * log_gap
        for j in range(k)
    ]


def _logsumexp(terms, ops=NUMPY):
    out = terms[0]
    for term in terms[1:]:
        out = ops.logaddexp(out, term)
    return out


def _log_dead_term(k, r, alpha, a, b, x, t_x, T, s, ops=NUMPY):
    r"""log of :math:`S_1 = \frac{a}{b+x-1+s}(\frac{\alpha+T}{\alpha+t_x})^{r+kx}`
    (:func:`loglik`): having dropped out right after the last purchase. For the BG/CNBD-k
    (s = 0) and x = 0 the term is absent; it is computed 0-safe there and masked by the
    caller."""
    return (
        ops.log(a)
        - ops.log(b + ops.maximum(x + s, 1.0) - 1.0)
        + (r + k * x) * (ops.log(alpha + T) - ops.log(alpha + t_x))
    )


def loglik(k, r, alpha, a, b, x, t_x, T, litt, ops=NUMPY, *, dropout_at_zero=True):
    r"""Log-likelihood of each customer's (x, t_x, T, litt), [1]_ ([2]_ ``xbgcnbd.LL``).

    .. math::
        L = \frac{e^{(k-1)\,\mathrm{litt}}}{((k-1)!)^x}
            \frac{B(a, b+x+s)}{B(a, b)}
            \frac{\Gamma(r+kx)\,\alpha^r}{\Gamma(r)(\alpha+T)^{r+kx}}
            \Big[\delta\,\frac{a}{b+x-1+s}\Big(\frac{\alpha+T}{\alpha+t_x}\Big)^{r+kx}
            + \sum_{j=0}^{k-1}\frac{\Gamma(r+kx+j)}{\Gamma(r+kx)\,j!}
              \Big(\frac{T-t_x}{\alpha+T}\Big)^j\Big]

    with s = 1 and :math:`\delta = 1` for the MBG/CNBD-k (``dropout_at_zero``), s = 0 and
    :math:`\delta = [x > 0]` for the BG/CNBD-k. At k = 1 this is [4]_'s MBG/NBD and [3]_
    eq. (6). The bracket is computed as a log-sum-exp (no overflow). ``k`` is a whole
    number; ``ops`` is the array back-end (numpy, or pytensor for a Bayesian twin).
    """
    s = _shift(dropout_at_zero)
    rx = r + k * x
    const = (
        (k - 1) * litt
        - x * math.lgamma(k)
        + ops.betaln(a, b + x + s)
        - ops.betaln(a, b)
        + ops.gammaln(rx)
        - ops.gammaln(r)
        + r * ops.log(alpha)
        - rx * ops.log(alpha + T)
    )
    log_s2 = _logsumexp(_phase_terms(k, r, alpha, x, t_x, T, ops), ops)
    log_s1 = _log_dead_term(k, r, alpha, a, b, x, t_x, T, s, ops)
    if dropout_at_zero:
        return const + ops.logaddexp(log_s1, log_s2)
    return const + ops.where(x > 0, ops.logaddexp(log_s1, log_s2), log_s2)


def _weights(k, r, alpha, a, b, x, t_x, T, s):
    """Share w of S1 in S1 + S2, the phase weights pi_j within S2 (k arrays), log S1."""
    terms = _phase_terms(k, r, alpha, x, t_x, T)
    log_s2 = _logsumexp(terms)
    log_s1 = _log_dead_term(k, r, alpha, a, b, x, t_x, T, s)
    w = special.expit(log_s1 - log_s2)
    if s == 0:
        w = np.where(x > 0, w, 0.0)
    return w, [np.exp(t - log_s2) for t in terms]


def loglik_grad(k, r, alpha, a, b, x, t_x, T, litt, *, dropout_at_zero=True):
    r"""Gradient of :func:`loglik` with respect to (r, alpha, a, b), one row per customer.

    :math:`\ell = C + \log(S_1 + S_2)`, so :math:`\nabla\ell = \nabla C + w\nabla\log S_1
    + (1-w)\sum_j \pi_j \nabla\tau_j`, with w the share of :math:`S_1` and
    :math:`\pi_j` the phase weights (:func:`_phase_terms`); every piece is a digamma or
    a rational function. ``litt`` does not enter the gradient.
    """
    psi = special.digamma
    s = _shift(dropout_at_zero)
    rx = r + k * x
    w, pi = _weights(k, r, alpha, a, b, x, t_x, T, s)
    log_ratio = np.log(alpha + T) - np.log(alpha + t_x)
    # d log S2: only through tau_j = lgamma(rx + j) - lgamma(rx) - j log(alpha + T) + ...
    s2_r = sum(p * (psi(rx + j) - psi(rx)) for j, p in enumerate(pi))
    s2_alpha = -sum(j * p for j, p in enumerate(pi)) / (alpha + T)
    d_r = (psi(rx) - psi(r) + np.log(alpha) - np.log(alpha + T)
           + w * log_ratio + (1 - w) * s2_r)
    d_alpha = (r / alpha - rx / (alpha + T)
               + w * rx * (1.0 / (alpha + T) - 1.0 / (alpha + t_x)) + (1 - w) * s2_alpha)
    d_a = psi(a + b) - psi(a + b + x + s) + w / a
    d_b = (psi(b + x + s) - psi(b) + psi(a + b) - psi(a + b + x + s)
           - w / (b + np.maximum(x + s, 1.0) - 1.0))
    return d_r, d_alpha, d_a, d_b


def probability_alive(k, r, alpha, a, b, x, t_x, T, *, dropout_at_zero=True):
    r"""P(active at T | x, t_x, T) ([1]_; BTYDplus ``xbgcnbd.PAlive``):
    :math:`1 / (1 + S_1 / S_2)` with :math:`S_1, S_2` of :func:`loglik`; 1 for the
    BG/CNBD-k at x = 0 (no drop-out before the first repeat purchase)."""
    k = _whole(k)
    s = _shift(dropout_at_zero)
    log_s2 = _logsumexp(_phase_terms(k, r, alpha, x, t_x, T))
    alive = special.expit(log_s2 - _log_dead_term(k, r, alpha, a, b, x, t_x, T, s))
    return alive if dropout_at_zero else np.where(x > 0, alive, 1.0)


def _whole(k) -> int:
    """k as a whole number (parameter draws carry it as a float; all draws share it)."""
    return int(np.rint(np.max(k)))


def _survival_sums(a, b_post, n_max):
    r""":math:`G(M) = \sum_{n=1}^{M} B(a, b'+n-1)/B(a, b')` for M = 0..n_max: the expected
    number of the next M purchases that a customer alive now, with drop-out posterior
    :math:`\mathrm{Beta}(a, b')`, survives to make (one drop-out chance after each)."""
    n = np.arange(n_max, dtype=float)
    log_c = (special.gammaln(b_post + n) - special.gammaln(b_post)
             + special.gammaln(a + b_post) - special.gammaln(a + b_post + n))
    return np.concatenate(([0.0], np.cumsum(np.exp(log_c))))


def _survival_sums_at(a, b_post, M):
    r""":func:`_survival_sums` at any M >= 1 in closed form, by the telescoping sum
    :math:`\sum_{n=1}^{M-1}\frac{\Gamma(b'+n)}{\Gamma(a+b'+n)} = \frac{1}{a-1}
    \big[\frac{\Gamma(b'+1)}{\Gamma(a+b')} - \frac{\Gamma(b'+M)}{\Gamma(a+b'+M-1)}\big]`
    (all arguments of Gamma positive):

    .. math:: G(M) = 1 + \frac{b'}{a-1}\Big[1 - \frac{\Gamma(a+b')\,\Gamma(b'+M)}
              {\Gamma(b'+1)\,\Gamma(a+b'+M-1)}\Big]

    (a removable singularity at a = 1 is stepped over by 1e-7, as in
    :func:`clvmodels.models.bgnbd._a_minus_1`)."""
    a = 1.0 + 1e-7 if abs(a - 1.0) < 1e-7 else a
    log_ratio = (special.gammaln(a + b_post) - special.gammaln(b_post + 1)
                 + special.gammaln(b_post + M) - special.gammaln(a + b_post + M - 1))
    return 1.0 + b_post / (a - 1) * -np.expm1(log_ratio)


_GRID = 20_000  # Poisson counts summed term by term; beyond, in blocks of 0.1% width
_BLOCK = 1e-3


def _phase_sum(rp, k, j, a, b_post, z):
    r""":math:`h_j = \sum_{m\ge1} \mathrm{NB}(m; r', 1-z)\, G(\lfloor (m+j)/k \rfloor)` for
    an array of z (one r', one phase j): see :func:`_if_alive_by_phase`.

    Term by term up to the negative binomial's 1 - 1e-16 quantile at the largest z (the
    distribution grows with z), or to :data:`_GRID` terms; a longer tail (z near 1: a
    horizon far beyond alpha + T) is summed over blocks of 0.1% relative width, each
    block's probability an exact difference of incomplete beta functions and G at the
    block's mean purchase count (relative error below 1e-5).
    """
    out = np.zeros(z.shape)
    z_max = float(z.max()) if z.size else 0.0
    if z_max <= 0:
        return out
    from scipy import stats  # here, not at import: scipy.stats takes 0.6 s to import

    top = float(stats.nbinom.isf(1e-16, rp, 1.0 - z_max))
    top = min(top if np.isfinite(top) else 1e15, 1e15) + k + 1
    m_max = int(min(top, _GRID))
    log_z = np.log(np.maximum(z, _TINY))[..., None]
    log_1mz = np.log1p(-z)[..., None]
    m = np.arange(1, m_max + 1, dtype=float)
    weight = _survival_sums(a, b_post, (m_max + j) // k + 1)[(np.arange(1, m_max + 1) + j) // k]
    log_coef = special.gammaln(rp + m) - special.gammaln(rp) - special.gammaln(m + 1)
    flat_z, flat_out = log_z.reshape(-1, 1), out.reshape(-1)
    flat_1mz = log_1mz.reshape(-1, 1)
    step = max(1, _CELLS // m_max)
    for lo in range(0, flat_out.size, step):
        sl = slice(lo, lo + step)
        flat_out[sl] = np.exp(log_coef + rp * flat_1mz[sl] + m * flat_z[sl]) @ weight
    if top > m_max + 1:
        n_blocks = int(np.ceil(np.log(top / m_max) / _BLOCK)) + 1
        edges = np.unique(np.round(np.geomspace(m_max + 1, top, n_blocks)))
        lo_e, hi_e = edges[:-1], edges[1:]
        # G at the block's mean of (m + j - R) / k, R = (m + j) mod k uniform on 0..k-1
        g_mid = _survival_sums_at(a, b_post, ((lo_e + hi_e - 1) / 2 + j - (k - 1) / 2) / k)
        zz = z.reshape(-1, 1)
        step = max(1, _CELLS // lo_e.size)
        for lo in range(0, zz.shape[0], step):
            sl = slice(lo, lo + step)
            # P(lo <= N < hi) = P(N >= lo) - P(N >= hi), P(N >= m) = I_z(m, r')
            mass = special.betainc(lo_e, rp, zz[sl]) - special.betainc(hi_e, rp, zz[sl])
            flat_out[sl] += mass @ g_mid
    return out


def _if_alive_by_phase(k, r, alpha, a, b, s, times, x, T):
    r"""E[purchases in (T, T+t] | alive at T, phase J = j]: array (n, len(times), k).

    Given J = j the rate is :math:`\mathrm{Gamma}(r+kx+j, \alpha+T)`, so the number N of
    Poisson events in (T, T+t] is negative binomial with
    :math:`z = t/(\alpha+T+t)`; the customer reaches :math:`\lfloor (N+j)/k \rfloor`
    purchases and survives to make :math:`G(\cdot)` of them (:func:`_survival_sums`):

    .. math:: h_j = \sum_{m\ge 1} \mathrm{NB}(m; r+kx+j, 1-z)\,
              G\big(\lfloor (m+j)/k \rfloor\big)

    (:func:`_phase_sum`). At k = 1 this is the bracket of [3]_ eq. (10) (tested equal).
    """
    x = np.asarray(x, dtype=float)
    T = np.asarray(T, dtype=float)
    times = np.asarray(times, dtype=float)
    out = np.zeros((x.size, times.size, k))
    if times.size == 0 or x.size == 0:
        return out
    for xv in np.unique(x):
        rows = np.flatnonzero(x == xv)
        z = times[None, :] / (alpha + T[rows, None] + times[None, :])  # (rows, times)
        for j in range(k):
            out[rows, :, j] = _phase_sum(r + k * xv + j, k, j, a, b + xv + s, z)
    return out


def expected_purchases_path(k, r, alpha, a, b, times, x, t_x, T, *, dropout_at_zero=True):
    r"""E[Y(t) | x, t_x, T] for each of ``times`` (K,) and customers (n,): (n, K).

    .. math:: E[Y(t) \mid \cdot] = P(\text{alive})\sum_{j=0}^{k-1}\pi_j\,h_j(t)

    with :math:`\pi_j` the posterior phase weights (:func:`_phase_terms`, normalised) and
    :math:`h_j` of :func:`_if_alive_by_phase`, evaluated once per distinct (x, T).
    Exact (no approximation); at k = 1 it equals [3]_ eq. (10) (BG) or its MBG/NBD
    version ([4]_).
    """
    from ._base import unique_rows

    s = _shift(dropout_at_zero)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    (xu, Tu), inverse, _, _ = unique_rows([x, T])
    by_phase = _if_alive_by_phase(k, r, alpha, a, b, s, times, xu, Tu)[inverse]
    terms = _phase_terms(k, r, alpha, x, t_x, T)
    log_s2 = _logsumexp(terms)
    pi = np.stack([np.exp(t - log_s2) for t in terms], axis=-1)  # (n, k)
    alive = probability_alive(k, r, alpha, a, b, x, t_x, T, dropout_at_zero=dropout_at_zero)
    return alive[:, None] * np.einsum("nkj,nj->nk", by_phase, pi)


def expected_purchases(k, r, alpha, a, b, t, x, t_x, T, *, dropout_at_zero=True):
    """:func:`expected_purchases_path` at one horizon ``t``: one value per customer."""
    return expected_purchases_path(
        k, r, alpha, a, b, np.array([float(t)]), x, t_x, T, dropout_at_zero=dropout_at_zero
    )[:, 0]


def expected_purchases_new(k, r, alpha, a, b, t, *, dropout_at_zero=True):
    r"""E[X(t)] for a customer acquired at time 0 ([1]_; BTYDplus ``xbgcnbd.Expectation``):
    :func:`expected_purchases_path` at x = t_x = T = 0, i.e.
    :math:`\sum_{n\ge1} \frac{B(a, b+n-1+s)}{B(a, b)} P(N(t) \ge nk)` with N(t) the
    negative binomial count of Poisson events, :math:`\mathrm{NB}(r, \alpha/(\alpha+t))`."""
    t = np.asarray(t, dtype=float)
    times, inverse = np.unique(t, return_inverse=True)
    zero = np.zeros(1)
    out = expected_purchases_path(k, r, alpha, a, b, times, zero, zero, zero,
                                  dropout_at_zero=dropout_at_zero)[0]
    return out[inverse].reshape(t.shape)


def probability_of_purchases(k, r, alpha, a, b, n, t, *, dropout_at_zero=True):
    r"""P(X(t) = n) for a customer acquired at time 0 ([2]_ ``xbgcnbd_pmf_cpp``).

    With :math:`S(m) = P(N(t) \ge m) = I_{t/(\alpha+t)}(m, r)` (the negative binomial
    survival, a regularised incomplete beta function) and :math:`q = n - 1 + s` drop-out
    chances survived before the n-th repeat purchase:

    .. math::
        \frac{B(a, b+q+1)}{B(a, b)}\,[S(nk) - S(nk+k)]
        + \delta\,\frac{B(a+1, b+q)}{B(a, b)}\,S(nk)

    (the customer is active with n purchases so far, or dropped out right after the n-th;
    :math:`\delta = 0` for the BG/CNBD-k at n = 0).
    """
    s = _shift(dropout_at_zero)
    n, t = np.broadcast_arrays(np.asarray(n, dtype=float), np.asarray(t, dtype=float))
    z = t / (alpha + t)

    def survival(m):
        return np.where(m > 0, special.betainc(np.maximum(m, 1.0), r, z), 1.0)

    q = n - 1.0 + s
    log_b = special.betaln(a, b)
    active = np.exp(special.betaln(a, b + np.maximum(q + 1, 0.0)) - log_b)
    dead = np.exp(special.betaln(a + 1, b + np.maximum(q, 0.0)) - log_b)
    if not dropout_at_zero:
        dead = np.where(n > 0, dead, 0.0)
    return active * (survival(n * k) - survival(n * k + k)) + dead * survival(n * k)


# ---- the future of a customer alive at T (conditional distribution, intervals) ----------
def phase_weights(k, r, alpha, a, b, x, t_x, T):
    r"""Posterior weights :math:`\pi_j` of the phase J = j (Poisson events since the last
    purchase, 0 <= j < k) of a customer alive at T: the normalised terms of :math:`S_2`
    (:func:`_phase_terms`). Array (k, ...); they depend on the recency, through
    :math:`(T - t_x)^j`."""
    k = _whole(k)
    terms = np.broadcast_arrays(*_phase_terms(k, r, alpha, x, t_x, T))
    log_s2 = _logsumexp(terms)
    return np.stack([np.exp(t - log_s2) for t in terms])


def updated_if_alive(k, r, alpha, a, b, x, T, *, dropout_at_zero=True):
    r"""Parameters of the future of a customer alive at T, one set per phase j: array
    ``(k, r + kx + j, alpha + T, a, b + x + s, j)``, each with a leading axis j = 0..k-1.

    Given alive at T and J = j, the rate is :math:`\mathrm{Gamma}(r+kx+j, \alpha+T)`,
    the drop-out probability :math:`\mathrm{Beta}(a, b+x+s)` (x + s chances survived),
    independently, and the n-th future purchase comes at the :math:`(nk - j)`-th Poisson
    event after T (see :func:`_if_alive_by_phase`)."""
    kk = _whole(k)
    x, T = np.asarray(x, dtype=float), np.asarray(T, dtype=float)
    shape = np.broadcast_shapes(np.shape(r), np.shape(alpha), np.shape(a), np.shape(b),
                                x.shape, T.shape)
    j = np.arange(kk, dtype=float).reshape((kk,) + (1,) * len(shape))
    s = _shift(dropout_at_zero)
    return tuple(np.broadcast_arrays(np.float64(kk), r + kk * x + j, alpha + T, a,
                                     b + x + s, j))


def _log_reach(a, bp, n):
    r""":math:`\log c_n`, :math:`c_n = B(a, b'+n-1)/B(a, b')`: the probability that a
    customer alive now survives the n - 1 drop-out chances before a future n-th purchase
    (:math:`c_0 = c_1 = 1`)."""
    return special.betaln(a, bp + np.maximum(n - 1.0, 0.0)) - special.betaln(a, bp)


def _at_least(k, rp, ap, a, bp, j, n, t):
    r"""P(Y(t) >= n | alive, phase j) = :math:`c_n\, P(N \ge nk - j)` for n >= 1 (1 at
    n = 0), N ~ NB(r', 1 - z) the Poisson events in (T, T+t], :math:`z = t/(\alpha'+t)`,
    :math:`P(N \ge m) = I_z(m, r')`: the customer reaches the n-th purchase and has not
    dropped out before it (independent, given the phase)."""
    z = t / (ap + t)
    m = n * k - j
    reach = np.where(n > 0, special.betainc(np.maximum(m, 1.0), rp, z), 1.0)
    return np.exp(_log_reach(a, bp, n)) * reach


def pmf_given_alive(k, rp, ap, a, bp, j, n, t):
    """P(Y(t) = n | alive at T, phase j): :func:`_at_least` at n minus at n + 1 (the
    parameters of :func:`updated_if_alive`; the conditional pmf of the MBG/CNBD-k, of
    which the new-customer pmf of :func:`probability_of_purchases` is the case
    x = t_x = T = 0)."""
    n = np.asarray(n, dtype=float)
    return np.maximum(_at_least(k, rp, ap, a, bp, j, n, t)
                      - _at_least(k, rp, ap, a, bp, j, n + 1.0, t), 0.0)


def pmf_table_given_alive(k, rp, ap, a, bp, j, t, n_max):
    """:func:`pmf_given_alive` for n = 0..n_max: array (..., n_max + 1)."""
    n = np.arange(n_max + 2, dtype=float)
    q = [np.asarray(v, dtype=float)[..., None] for v in (k, rp, ap, a, bp, j)]
    tail = _at_least(*q, n, float(t))
    return np.maximum(tail[..., :-1] - tail[..., 1:], 0.0)


_SURVIVAL_BLOCK = 256


def survival_given_alive(k, rp, ap, a, bp, j, t):
    r"""P(still active at T + t | alive at T, phase j).

    Drop-out happens only right after a purchase, so the customer is lost by T + t when
    some n-th future purchase is made by then and followed by the drop-out:

    .. math:: 1 - \sum_{n \ge 1} P(N \ge nk - j)\, rac{B(a+1, b'+n-1)}{B(a, b')}

    (:math:`c_n - c_{n+1}` of :func:`_log_reach`), summed in blocks of n until
    :math:`P(N \ge nk - j)` falls below 1e-17 everywhere.
    """
    k, rp, ap, a, bp, j = np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                                for v in (k, rp, ap, a, bp, j)))
    shape = rp.shape
    k, rp, ap, a, bp, j = (v.reshape(-1, 1) for v in (k, rp, ap, a, bp, j))
    z = t / (ap + t)
    lost = np.zeros(rp.shape[0])
    start = 1.0
    while True:
        n = start + np.arange(_SURVIVAL_BLOCK, dtype=float)[None, :]
        reach = special.betainc(n * k - j, rp, z)
        drop = np.exp(special.betaln(a + 1.0, bp + n - 1.0) - special.betaln(a, bp))
        lost += (reach * drop).sum(axis=1)
        if not np.any(reach[:, -1] > 1e-17) or start > 1e9:
            break
        start += _SURVIVAL_BLOCK
    return np.clip(1.0 - lost, 0.0, 1.0).reshape(shape)


def simulate_future(k, r, alpha, a, b, t, x, t_x, T, rng, *, dropout_at_zero=True):
    """Draws of the purchases in (T, T + t] given each history: alive at T with
    :func:`probability_alive`, the phase from :func:`phase_weights`, then the rate and the
    drop-out probability from their posteriors (:func:`updated_if_alive`); N Poisson
    events in (T, T + t], floor((N + j) / k) purchases reached, and the customer drops
    out after each with probability p."""
    kk = _whole(k)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    alive = rng.random(x.shape) < probability_alive(kk, r, alpha, a, b, x, t_x, T,
                                                    dropout_at_zero=dropout_at_zero)
    w = np.cumsum(phase_weights(kk, r, alpha, a, b, x, t_x, T), axis=0)
    j = (rng.random(x.shape)[None] > w[:-1]).sum(axis=0)
    lam = rng.gamma(r + kk * x + j, 1.0 / (alpha + T))
    p = rng.beta(a, b + x + _shift(dropout_at_zero))
    reached = (rng.poisson(lam * t) + j) // kk
    made = rng.geometric(np.clip(p, _TINY, 1.0))  # purchases up to the fatal one
    return np.where(alive, np.minimum(reached, made), 0)


def conditional(dropout_at_zero: bool) -> Conditional:
    """The :class:`~clvmodels.models._btyd.Conditional` record of the MBG/CNBD-k
    (``dropout_at_zero``) or the BG/CNBD-k: a mixture over the Erlang phase."""
    bind = {"dropout_at_zero": dropout_at_zero}
    return Conditional(
        updated=functools.partial(updated_if_alive, **bind),
        survival=survival_given_alive,
        pmf=pmf_given_alive,
        pmf_table=pmf_table_given_alive,
        simulate_future=functools.partial(simulate_future, **bind),
        phase_weights=phase_weights,
    )


def simulate(k, r, alpha, a, b, T, rng, *, dropout_at_zero=True):
    """Exact draws of (x, t_x, litt) for customers of ages ``T`` (vectorised over customers).

    Each customer draws lambda ~ Gamma(r, alpha) and p ~ Beta(a, b); the number of repeat
    purchases made if observed forever is N ~ Geometric(p) on {1, 2, ...} (drop-out after
    each repeat purchase), and N = 0 with probability p for the MBG/CNBD-k (drop-out at
    time 0). Inter-transaction times are Erlang-k(lambda) draws, added one purchase at a
    time while the customer is within T and has purchases left.
    """
    size = T.shape
    lam = np.maximum(rng.gamma(r, 1.0 / alpha, size), _TINY)
    p = rng.beta(a, b, size)
    n_max = rng.geometric(np.clip(p, _TINY, 1.0))
    if dropout_at_zero:
        n_max = np.where(rng.random(size) < p, 0, n_max)
    x = np.zeros(size, dtype=np.int64)
    t_x = np.zeros(size)
    litt = np.zeros(size)
    active = np.flatnonzero(n_max > 0)
    while active.size:
        itt = rng.gamma(k, 1.0 / lam[active])
        ok = t_x[active] + itt <= T[active]
        buy = active[ok]
        x[buy] += 1
        t_x[buy] += itt[ok]
        litt[buy] += np.log(itt[ok])
        active = buy[x[buy] < n_max[buy]]
    return x, t_x, litt


# ---- estimators ---------------------------------------------------------------------------
def _litt_array(frame: pd.DataFrame, x: np.ndarray) -> np.ndarray:
    """The validated ``litt`` column: finite, 0 where frequency is 0."""
    if "litt" not in frame.columns:
        raise DataError(
            "litt",
            "needed to fit or choose k > 1 but not in the RFM frame",
            len(frame),
            hint="build the frame with rfm_summary(..., litt=True) or "
            "calibration_holdout(..., litt=True), or pass k=1",
        )
    litt = _float_array(frame["litt"], "litt")
    bad = int(((x == 0) & (litt != 0)).sum())
    if bad:
        raise DataError("litt", "must be 0 where frequency is 0", bad)
    return litt


class _FixedK(TransactionModel):
    r"""The maximum-likelihood fit of (r, alpha, a, b) at one k (used by :class:`MBGCNBD`).

    ``litt`` enters the likelihood only as the constant :math:`(k-1)\,\mathrm{litt}`, so the
    fit runs on (x, t_x, T) alone (identical rows compress, as for the other models) and
    :class:`MBGCNBD` adds the constant to ``loglik_``.
    """

    param_names = ("r", "alpha", "a", "b")
    _has_hessian = False  # no analytic Hessian: L-BFGS-B, numerical standard errors

    def __init__(self, *, k: int, dropout_at_zero: bool, penalizer: float = 0.0):
        super().__init__(penalizer=penalizer)
        self.k = k
        self.dropout_at_zero = dropout_at_zero

    def _loglik(self, params, *data):
        return loglik(self.k, *params, *data, 0.0, dropout_at_zero=self.dropout_at_zero)

    def _loglik_grad(self, params, *data):
        grad = loglik_grad(self.k, *params, *data, 0.0, dropout_at_zero=self.dropout_at_zero)
        return np.column_stack(np.broadcast_arrays(*grad))

    def _loglik_and_grad(self, params, *data):
        return self._loglik(params, *data), self._loglik_grad(params, *data)

    def _start(self, data, weights):
        start = super()._start(data, weights)
        start[1] /= self.k  # lambda is k times the purchase rate
        return start


class MBGCNBD(TransactionModel):
    """MBG/CNBD-k model of regular repeat purchasing (Reutterer, Platzer & Schroder 2020).

    Erlang-k inter-transaction times with rate ``lambda ~ Gamma(r, alpha)`` while active;
    drop-out probability ``p ~ Beta(a, b)`` at time 0 and after each repeat purchase.
    k = 1 is the MBG/NBD (:class:`~clvmodels.MBGNBD`). See :mod:`clvmodels.models.cnbd`.

    Parameters
    ----------
    k : int, optional
        Regularity (Erlang shape). Default: chosen by likelihood. Each k = 1, 2, ...,
        ``max_k`` is fitted by maximum likelihood (warm-started from the previous k) and
        the k with the largest log-likelihood wins; the search stops early once the
        log-likelihood has fallen twice in a row (as BTYDplus' grid search). The
        likelihoods of different k are comparable because they include the
        ``(k - 1) * litt`` term, so the RFM frame needs a ``litt`` column
        (:func:`clvmodels.rfm_summary` with ``litt=True``); a fixed k = 1 does not.
    max_k : int, default 12
        Largest k tried when ``k`` is None.
    penalizer : float, default 0
        L2 penalty on the log-parameters (as in the other models).

    Attributes
    ----------
    params_ : Series
        ``k, r, alpha, a, b``. ``se_`` and ``cov_`` are those of (r, alpha, a, b) at the
        chosen k, which is held fixed: its entries are 0.
    loglik_by_k_ : Series
        Maximised log-likelihood of each k tried (when k was chosen).

    Examples
    --------
    >>> import clvmodels as cm
    >>> m = cm.MBGCNBD.from_params(k=1, r=0.525, alpha=6.183, a=0.891, b=1.614)
    >>> round(float(m.expected_purchases_new(39.0)), 3)
    1.183
    """

    param_names = PARAM_NAMES
    dropout_at_zero = True
    _has_hessian = False  # the fit is _FixedK's

    def __init__(self, *, k: int | None = None, max_k: int = 12, penalizer: float = 0.0):
        super().__init__(penalizer=penalizer)
        self.k = k
        self.max_k = max_k

    # ---- fitting ----------------------------------------------------------------------
    def _check_k(self):
        for name, v in (("k", self.k), ("max_k", self.max_k)):
            if v is not None and (isinstance(v, bool) or not float(v).is_integer() or v < 1):
                raise ValueError(f"{type(self).__name__}: {name} must be a whole number >= 1; "
                                 f"got {v!r}")

    def _fit_one(self, data, k, weights, start, litt_total):
        model = _FixedK(k=k, dropout_at_zero=self.dropout_at_zero, penalizer=self.penalizer)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(data, weights=weights, initial_params=start)
        model.loglik_ += (k - 1) * litt_total
        return model, caught

    def _litt_total(self, data, weights) -> float:
        """The weighted sum of ``litt`` (0 when a fixed k = 1 needs none)."""
        if self.k is not None and int(self.k) == 1 and "litt" not in data.columns:
            return 0.0
        litt = _litt_array(data, rfm_arrays(data)["frequency"])
        w = self._weights(data, data, weights)
        return float(litt.sum() if w is None else w @ litt)

    def fit(self, data: pd.DataFrame, *, weights=None, initial_params=None):
        """Fit by maximum likelihood (choosing k unless it was given) and return ``self``.

        ``data`` is an RFM frame with ``frequency``, ``recency``, ``T`` and ``litt``;
        ``weights`` and ``initial_params`` (``r, alpha, a, b``) as in the other models.
        """
        self._check_k()
        start = None
        if initial_params is not None:
            start = {n: initial_params[n] for n in PARAM_NAMES[1:] if n in initial_params}
        ks = [int(self.k)] if self.k is not None else list(range(1, int(self.max_k) + 1))
        litt_total = self._litt_total(data, weights)
        fits, logliks, caught_by_k = {}, {}, {}
        for k in ks:
            try:
                model, caught = self._fit_one(data, k, weights, start, litt_total)
            except ConvergenceError:
                if not fits:
                    raise
                break  # as BTYDplus: stop at the first k that cannot be fitted
            fits[k], logliks[k], caught_by_k[k] = model, model.loglik_, caught
            done = list(logliks.values())
            if len(done) >= 3 and done[-1] < done[-2] < done[-3]:
                break
            # warm start for k + 1: lambda scales with k
            p = model.params_
            start = {"r": p["r"], "alpha": p["alpha"] * k / (k + 1), "a": p["a"], "b": p["b"]}
        best = max(logliks, key=logliks.get)
        for w in caught_by_k[best]:  # the chosen fit's warnings (e.g. extreme parameters)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        self._adopt(fits[best], best)
        if self.k is None:
            self.loglik_by_k_ = pd.Series(logliks, name="loglik").rename_axis("k")
        elif hasattr(self, "loglik_by_k_"):  # a refit discards the previous fit's search
            del self.loglik_by_k_
        return self

    def _adopt(self, model: _FixedK, k: int) -> None:
        names = list(PARAM_NAMES)
        self.params_ = pd.Series([float(k), *model.params_.to_numpy()], index=names,
                                 name="estimate")
        self.se_ = pd.Series([0.0, *model.se_.to_numpy()], index=names, name="se")
        cov = np.zeros((5, 5))
        cov[1:, 1:] = model.cov_.to_numpy()
        self.cov_ = pd.DataFrame(cov, index=names, columns=names)
        for name in ("loglik_", "n_obs_", "n_unique_", "converged_"):
            setattr(self, name, getattr(model, name))

    @classmethod
    def from_params(cls, **params: float):
        """A model with known parameters ``k, r, alpha, a, b`` (k a whole number >= 1)."""
        k = params.get("k")
        if k is None or abs(k - round(k)) > 1e-9 or k < 1:
            raise ValueError(f"{cls.__name__}.from_params: k must be a whole number >= 1; "
                             f"got {k!r}")
        return super().from_params(**{**params, "k": float(round(k))})

    def to_dict(self):
        out = super().to_dict()
        out["settings"] = {"penalizer": self.penalizer, "k": self.k, "max_k": self.max_k}
        if hasattr(self, "loglik_by_k_"):
            out["loglik_by_k"] = {str(k): float(v) for k, v in self.loglik_by_k_.items()}
        return out

    @classmethod
    def load(cls, path):
        import json
        from pathlib import Path

        model = super().load(path)
        spec = json.loads(Path(path).read_text())
        if "loglik_by_k" in spec:
            model.loglik_by_k_ = pd.Series(
                {int(k): v for k, v in spec["loglik_by_k"].items()}, name="loglik"
            ).rename_axis("k")
        return model

    # ---- predictions (explicit: the formulas of this module) --------------------------
    def _kp(self):
        p = self._check_fitted()
        return (int(round(p[0])), *p[1:])

    def _expected_path(self, p, times, x, t_x, T):
        return expected_purchases_path(*self._kp(), times, x, t_x, T,
                                       dropout_at_zero=self.dropout_at_zero)

    def expected_purchases(self, t: float, rfm: pd.DataFrame) -> pd.Series:
        """Expected number of purchases in (T, T + t] given each customer's history."""
        x, t_x, T = self._arrays(rfm)
        values = expected_purchases(*self._kp(), float(t), x, t_x, T,
                                    dropout_at_zero=self.dropout_at_zero)
        return _as_series(values, rfm.index, "expected_purchases")

    def expected_purchases_path(self, times, rfm: pd.DataFrame) -> np.ndarray:
        """Expected purchases in (T, T + t] for each of ``times``: array (customers, times)."""
        x, t_x, T = self._arrays(rfm)
        return self._expected_path(None, np.asarray(times, dtype=float), x, t_x, T)

    def _conditional(self) -> Conditional:
        return conditional(self.dropout_at_zero)

    def _alive_formula(self):
        return functools.partial(probability_alive, dropout_at_zero=self.dropout_at_zero)

    def expected_purchases_new(self, t):
        """E[X(t)]: expected repeat purchases in (0, t] of a customer acquired at 0."""
        out = expected_purchases_new(*self._kp(), t, dropout_at_zero=self.dropout_at_zero)
        return float(out) if np.ndim(out) == 0 else out

    def probability_of_purchases(self, n, t, rfm: pd.DataFrame | None = None):
        """P(n purchases in (T, T + t] | history) per customer (see
        :meth:`TransactionModel.probability_of_purchases`; the future given alive mixes
        over the Erlang phase, :func:`pmf_given_alive`), or P(X(t) = n) for a customer
        acquired at 0 when ``rfm`` is None."""
        if rfm is not None:
            return super().probability_of_purchases(n, t, rfm)
        out = probability_of_purchases(*self._kp(), n, t, dropout_at_zero=self.dropout_at_zero)
        return float(out) if np.ndim(out) == 0 else out

    def simulate(self, n_customers: int, T, random_state=None) -> pd.DataFrame:
        """An RFM frame drawn from the model, with ``litt`` (exact).

        ``T`` is one age for all customers or one per customer.
        """
        ages = np.broadcast_to(np.asarray(T, dtype=float), (n_customers,)).copy()
        draws = simulate(*self._kp(), ages, np.random.default_rng(random_state),
                         dropout_at_zero=self.dropout_at_zero)
        frame = pd.DataFrame(dict(zip(("frequency", "recency", "litt"), draws, strict=True)))
        frame.insert(2, "T", ages)
        return frame.rename_axis("customer_id")


class BGCNBD(MBGCNBD):
    """BG/CNBD-k model (Reutterer, Platzer & Schroder 2020): as :class:`MBGCNBD`, but the
    customer cannot drop out at time 0, only after repeat purchases. k = 1 is the BG/NBD
    (:class:`~clvmodels.BGNBD`).

    Examples
    --------
    >>> import clvmodels as cm
    >>> bg = cm.BGCNBD.from_params(k=1, r=0.243, alpha=4.414, a=0.793, b=2.426)
    >>> print(f"{bg.expected_purchases_new(39.0):.3f}")  # the BG/NBD's
    1.197
    """

    dropout_at_zero = False
