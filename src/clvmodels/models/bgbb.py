r"""BG/BB model (Fader, Hardie & Shang 2010): pure functions and the estimator.

Discrete time: after the first transaction a customer has ``n`` transaction opportunities
(e.g. yearly donation appeals). While active, the customer transacts at each opportunity
with probability :math:`p`; at the start of each opportunity an active customer becomes
inactive for good with probability :math:`\theta`. Across customers
:math:`p \sim \mathrm{Beta}(\alpha, \beta)` and :math:`\theta \sim \mathrm{Beta}(\gamma, \delta)`.

Data per customer: ``frequency`` x (transactions in the n opportunities), ``recency`` t_x
(the opportunity of the last transaction, 0 if none) and ``T`` = n, all whole numbers
with ``x <= t_x <= n``.

The likelihood, eq. (5) of [1]_, has a finite sum over the opportunities
:math:`t_x, \dots, n-1` at which the customer may have dropped out. It is summed in
column blocks of bounded size (:func:`_blocks`), so memory stays bounded for any n, and
identical customers are summed once (the base class fits unique rows with counts).

Equation numbers are those of the published article [1]_.

References
----------
.. [1] Fader, P. S., Hardie, B. G. S. and Shang, J. (2010). Customer-Base Analysis in a
   Discrete-Time Noncontractual Setting. *Marketing Science* 29(6), 1086-1108.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from .._math import NUMPY
from .._validate import validate_rfm
from ..errors import DataError
from ._btyd import Conditional, Formulas, TransactionModel

PARAM_NAMES = ("alpha", "beta", "gamma", "delta")

_BLOCK_CELLS = 1 << 18  # cells (rows x opportunities) evaluated at once in the finite sums


def _blocks(first, count):
    """Column blocks ``(m, mask)`` covering the opportunities ``m = first + j, j < count``.

    ``first`` and ``count`` are 1-d numpy arrays (one value per row); each block is a
    (rows, width) array of opportunities with a boolean mask of the cells in range, and
    holds at most ``_BLOCK_CELLS`` cells.
    """
    width = int(np.max(count, initial=0))
    step = max(1, _BLOCK_CELLS // max(first.size, 1))
    for start in range(0, width, step):
        j = np.arange(start, min(start + step, width), dtype=float)
        yield first[:, None] + j, j < count[:, None]


def _log_alive_term(alpha, beta, gamma, delta, x, n, ops=NUMPY):
    """log B(alpha+x, beta+n-x) B(gamma, delta+n): alive through opportunity n, [1]_ eq. (5)."""
    return ops.betaln(alpha + x, beta + n - x) + ops.betaln(gamma, delta + n)


def _log_dropout_term(alpha, beta, gamma, delta, x, m, ops=NUMPY):
    """log B(alpha+x, beta+m-x) B(gamma+1, delta+m): last alive at opportunity m, then dropped
    out at m + 1 (the i-th term of the sum in [1]_ eq. (5), with m = t_x + i)."""
    return ops.betaln(alpha + x, beta + m - x) + ops.betaln(gamma + 1.0, delta + m)


def loglik(alpha, beta, gamma, delta, x, t_x, n, ops=NUMPY):
    r"""Log-likelihood of each customer's (x, t_x, n), [1]_ eq. (5).

    .. math::
        L = \frac{B(\alpha+x, \beta+n-x)}{B(\alpha, \beta)}
            \frac{B(\gamma, \delta+n)}{B(\gamma, \delta)}
          + \sum_{i=0}^{n-t_x-1} \frac{B(\alpha+x, \beta+t_x-x+i)}{B(\alpha, \beta)}
            \frac{B(\gamma+1, \delta+t_x+i)}{B(\gamma, \delta)}

    The terms of the sum decrease with i, so every term is scaled by the larger of the
    first one and the "alive" term before exponentiating: nothing overflows or underflows
    to a zero total. The data ``x, t_x, n`` must be 1-d numpy arrays (they set the block
    shapes); ``ops`` is the array back-end for the parameters.
    """
    log_alive = _log_alive_term(alpha, beta, gamma, delta, x, n, ops)
    shift = ops.maximum(log_alive, _log_dropout_term(alpha, beta, gamma, delta, x, t_x, ops))
    total = ops.exp(log_alive - shift)
    for m, mask in _blocks(t_x, n - t_x):
        log_terms = _log_dropout_term(alpha, beta, gamma, delta, x[:, None], m, ops)
        # row sums written as a product with ones: the same code runs on pytensor
        total = total + (ops.exp(log_terms - shift[:, None]) * mask) @ np.ones(m.shape[1])
    return shift + ops.log(total) - ops.betaln(alpha, beta) - ops.betaln(gamma, delta)


def loglik_grad(alpha, beta, gamma, delta, x, t_x, n):
    r"""Gradient of :func:`loglik` w.r.t. (alpha, beta, gamma, delta), one row per customer.

    Each term of eq. (5) is a product of beta functions, whose log-derivatives are digamma
    differences; the gradient of log L is their average weighted by each term's share of
    L: :math:`s` for the alive term, :math:`w_m` for drop-out after opportunity m
    (:math:`s + \sum_m w_m = 1`).
    """
    psi = special.digamma
    ll = loglik(alpha, beta, gamma, delta, x, t_x, n)
    log_norm = special.betaln(alpha, beta) + special.betaln(gamma, delta) + ll
    s = np.exp(_log_alive_term(alpha, beta, gamma, delta, x, n) - log_norm)
    w = np.zeros_like(ll)  # sum of w_m
    w_ab = np.zeros_like(ll)  # sum of w_m psi(alpha+beta+m), and so on
    w_b = np.zeros_like(ll)
    w_gd = np.zeros_like(ll)
    w_d = np.zeros_like(ll)
    for m, mask in _blocks(t_x, n - t_x):
        wm = (
            np.exp(_log_dropout_term(alpha, beta, gamma, delta, x[:, None], m) - log_norm[:, None])
            * mask
        )
        w += wm.sum(axis=1)
        w_ab += (wm * psi(alpha + beta + m)).sum(axis=1)
        w_b += (wm * psi(beta + m - x[:, None])).sum(axis=1)
        w_gd += (wm * psi(gamma + delta + m + 1.0)).sum(axis=1)
        w_d += (wm * psi(delta + m)).sum(axis=1)
    psi_abn = psi(alpha + beta + n)
    psi_gdn = psi(gamma + delta + n)
    d_alpha = psi(alpha + beta) - psi(alpha) + psi(alpha + x) - s * psi_abn - w_ab
    d_beta = psi(alpha + beta) - psi(beta) + s * (psi(beta + n - x) - psi_abn) + w_b - w_ab
    # psi(gamma+1) - psi(gamma) = 1/gamma, written so to avoid cancelling -1/gamma terms
    d_gamma = psi(gamma + delta) + w / gamma - s * psi_gdn - w_gd
    d_delta = psi(gamma + delta) - psi(delta) + s * (psi(delta + n) - psi_gdn) + w_d - w_gd
    return d_alpha, d_beta, d_gamma, d_delta


def _as_rows(*arrays):
    """Broadcast to a common shape; return the shape and the flattened float arrays."""
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in arrays))
    return arrays[0].shape, [np.ravel(a) for a in arrays]


def probability_alive(alpha, beta, gamma, delta, x, t_x, n, ahead=0):
    r"""P(active at opportunity n + ``ahead`` | x, t_x, n), [1]_ eq. (11) (there with
    ahead = 1; ahead = 0 is the probability of being active at n):

    .. math::
        \frac{B(\alpha+x, \beta+n-x)}{B(\alpha, \beta)}
        \frac{B(\gamma, \delta+n+\mathit{ahead})}{B(\gamma, \delta)} \Big/ L(x, t_x, n)
    """
    shape, (x, t_x, n, ahead) = _as_rows(x, t_x, n, ahead)
    log_p = (
        special.betaln(alpha + x, beta + n - x)
        + special.betaln(gamma, delta + n + ahead)
        - special.betaln(alpha, beta)
        - special.betaln(gamma, delta)
        - loglik(alpha, beta, gamma, delta, x, t_x, n)
    )
    return np.exp(np.minimum(log_p, 0.0)).reshape(shape)


_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(12)


def _expected_alive_opportunities(gamma, delta, t):
    r"""Expected number of the next t opportunities at which a customer active now is
    still active, for :math:`\theta \sim \mathrm{Beta}(\gamma, \delta)`:

    .. math::
        \sum_{k=1}^{t} \frac{B(\gamma, \delta+k)}{B(\gamma, \delta)}
        = \frac{\delta}{\gamma-1}\Big[1 - e^{u}\Big], \quad
        u = \log\frac{\Gamma(\gamma+\delta)\Gamma(1+\delta+t)}
          {\Gamma(1+\delta)\Gamma(\gamma+\delta+t)}

    (the factor common to [1]_ eqs. (8) and (13)). The closed form cancels badly near
    gamma = 1 (a removable singularity). There :math:`u = -(\gamma-1) h` with :math:`h`
    the mean of :math:`\psi(s+\delta+t) - \psi(s+\delta)` over s between 1 and gamma,
    taken by 12-point Gauss-Legendre quadrature (the integrand is analytic on a wide
    neighbourhood of the interval, so the rule is exact to rounding), and the result is
    :math:`\delta\, h\, \mathrm{exprel}(u)` with no division by gamma - 1. Away from 1,
    u comes from beta functions, ``betaln(g, d+t+1) - betaln(g, d+1) + log((g+d+t)/(g+d))``.
    """
    gamma, delta, t = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (gamma, delta, t)))
    near = np.abs(gamma - 1.0) <= 0.5
    # near 1: quadrature in s over [1, gamma]
    s = 1.0 + (gamma[..., None] - 1.0) * (1.0 + _GL_NODES) / 2.0
    d, tt = delta[..., None], t[..., None]
    h = (special.digamma(s + d + tt) - special.digamma(s + d)) @ (_GL_WEIGHTS / 2.0)
    close = delta * h * special.exprel(-(gamma - 1.0) * h)
    # away from 1: closed form (gamma moved off the near branch's values to avoid 0/0)
    g = np.where(near, 2.0, gamma)
    log_ratio = (
        special.betaln(g, delta + t + 1.0)
        - special.betaln(g, delta + 1.0)
        + np.log(g + delta + t)
        - np.log(g + delta)
    )
    far = delta * -np.expm1(log_ratio) / (g - 1.0)
    return np.where(near, close, far)


def expected_purchases(alpha, beta, gamma, delta, t, x, t_x, n):
    r"""E[X(n, n+t) | x, t_x, n]: expected transactions in the next t opportunities,
    [1]_ eq. (13):

    .. math::
        \frac{1}{L}\frac{B(\alpha+x+1, \beta+n-x)}{B(\alpha, \beta)}
        \frac{\delta}{\gamma-1}\frac{\Gamma(\gamma+\delta)}{\Gamma(1+\delta)}
        \Big[\frac{\Gamma(1+\delta+n)}{\Gamma(\gamma+\delta+n)}
        - \frac{\Gamma(1+\delta+n+t)}{\Gamma(\gamma+\delta+n+t)}\Big]

    computed as P(active at n) (:func:`probability_alive`) times the posterior mean of p
    given activity, :math:`(\alpha+x)/(\alpha+\beta+n)`, times the expected number of
    active opportunities ahead under the posterior :math:`\theta \sim
    \mathrm{Beta}(\gamma, \delta+n)` (:func:`_expected_alive_opportunities`).

    All arguments broadcast against each other; P(alive) is evaluated once per customer
    (e.g. ``t`` of shape (1, K) against customers of shape (n, 1)).
    """
    x, t_x, n = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, t_x, n)))
    alive = probability_alive(alpha, beta, gamma, delta, x, t_x, n)
    return (
        alive
        * (alpha + x)
        / (alpha + beta + n)
        * _expected_alive_opportunities(gamma, delta + n, t)
    )


def expected_purchases_new(alpha, beta, gamma, delta, t):
    r"""E[X(t)]: expected transactions in the first t opportunities, [1]_ eq. (8):
    :math:`\frac{\alpha}{\alpha+\beta}\frac{\delta}{\gamma-1}\big[1 -
    \frac{\Gamma(\gamma+\delta)\Gamma(1+\delta+t)}{\Gamma(1+\delta)\Gamma(\gamma+\delta+t)}\big]`."""
    t = np.asarray(t, dtype=float)
    return alpha / (alpha + beta) * _expected_alive_opportunities(gamma, delta, t)


def _check_counts(what, values):
    bad = ~np.isfinite(values) | (values < 0) | (values != np.floor(values))
    if bad.any():
        raise DataError(None, f"{what} must be non-negative whole numbers", int(bad.sum()))


def probability_of_purchases(alpha, beta, gamma, delta, x, n):
    r"""P(X(n) = x): probability of x transactions in the first n opportunities,
    [1]_ eq. (7):

    .. math::
        \binom{n}{x}\frac{B(\alpha+x, \beta+n-x)}{B(\alpha, \beta)}
        \frac{B(\gamma, \delta+n)}{B(\gamma, \delta)}
        + \sum_{i=x}^{n-1}\binom{i}{x}\frac{B(\alpha+x, \beta+i-x)}{B(\alpha, \beta)}
        \frac{B(\gamma+1, \delta+i)}{B(\gamma, \delta)}

    The sum is accumulated in log space over blocks of i (a streaming log-sum-exp). All
    arguments broadcast (parameters too: the conditional distribution passes one set
    per customer).
    """
    shape, (alpha, beta, gamma, delta, x, n) = _as_rows(alpha, beta, gamma, delta, x, n)
    _check_counts("the number of transactions", x)
    _check_counts("the number of opportunities", n)
    valid = x <= n
    xs = np.minimum(x, n)  # keeps every beta function's arguments positive

    def log_choose(m, k):
        return special.gammaln(m + 1) - special.gammaln(k + 1) - special.gammaln(m - k + 1)

    log_total = np.where(
        valid, log_choose(n, xs) + _log_alive_term(alpha, beta, gamma, delta, xs, n), -np.inf
    )
    col = [v[:, None] for v in (alpha, beta, gamma, delta, xs)]
    for m, mask in _blocks(xs, np.where(valid, n - xs, 0.0)):
        log_terms = log_choose(m, col[4]) + _log_dropout_term(*col, m)
        log_sum = special.logsumexp(np.where(mask, log_terms, -np.inf), axis=1)
        log_total = np.logaddexp(log_total, log_sum)
    log_norm = special.betaln(alpha, beta) + special.betaln(gamma, delta)
    return np.exp(log_total - log_norm).reshape(shape)


def updated_if_alive(alpha, beta, gamma, delta, x, n):
    r"""Parameters of a customer active at opportunity n with x transactions, as a new
    customer: :math:`(\alpha+x, \beta+n-x, \gamma, \delta+n)`.

    Given activity through n the posterior of p is :math:`\mathrm{Beta}(\alpha+x,
    \beta+n-x)` and that of :math:`\theta` is :math:`\mathrm{Beta}(\gamma, \delta+n)`
    (n drop-out chances survived); the opportunities ahead are those of a customer just
    acquired with these parameters (the posteriors behind [1]_ eqs. (11) and (13)).
    """
    x, n = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    return alpha + x, beta + n - x, gamma + 0.0 * x, delta + n


def survival(alpha, beta, gamma, delta, t):
    r"""P(still active at opportunity t) of a customer acquired at 0:
    :math:`B(\gamma, \delta+t)/B(\gamma, \delta)` ([1]_ eq. (11) at x = n = 0)."""
    return np.exp(special.betaln(gamma, delta + t) - special.betaln(gamma, delta))


def pmf_table(alpha, beta, gamma, delta, t, n_max):
    """P(X(t) = k), k = 0..n_max (last axis), by :func:`probability_of_purchases`;
    0 for k > t."""
    k = np.arange(n_max + 1, dtype=float)
    args = [np.asarray(v, dtype=float)[..., None] for v in (alpha, beta, gamma, delta, t)]
    return probability_of_purchases(*args[:4], k, args[4])


def simulate_future(alpha, beta, gamma, delta, t, x, t_x, n, rng):
    """Draws of the transactions in the next t opportunities given each customer's
    history: active at n with :func:`probability_alive`, then p and theta from the
    posteriors of :func:`updated_if_alive`; the customer stays active for
    min(G, t) opportunities (G geometric on {0, 1, ...}) and transacts at each with
    probability p."""
    size = np.shape(x)
    alive = rng.random(size) < probability_alive(alpha, beta, gamma, delta, x, t_x, n)
    q = updated_if_alive(alpha, beta, gamma, delta, x, n)
    tiny, below_one = 1e-300, np.nextafter(1.0, 0.0)
    p = np.clip(rng.beta(q[0], q[1]), tiny, below_one)
    theta = np.clip(rng.beta(q[2], q[3]), tiny, below_one)
    active = np.minimum(np.floor(rng.standard_exponential(size) / -np.log1p(-theta)), t)
    return np.where(alive, rng.binomial(active.astype(np.int64), p), 0)


def simulate(alpha, beta, gamma, delta, n, rng):
    """Exact draws of (x, t_x) for customers with ``n`` opportunities (vectorised).

    Each customer draws p ~ Beta(alpha, beta) and theta ~ Beta(gamma, delta). The number of
    opportunities at which the customer is active is L = min(G, n), G geometric on
    {0, 1, ...} with P(G >= k) = (1 - theta)^k. Reading the L Bernoulli(p) trials backwards,
    the failures after the last transaction are F, geometric on {0, 1, ...} with success
    probability p: if F >= L there is no transaction (x = t_x = 0); otherwise t_x = L - F
    and x = 1 + Binomial(L - F - 1, p). Geometric draws are floor(E / -log(1 - q)), E
    exponential, in floating point (no integer overflow for tiny q).
    """
    size = n.shape
    tiny, below_one = 1e-300, np.nextafter(1.0, 0.0)
    p = np.clip(rng.beta(alpha, beta, size), tiny, below_one)
    theta = np.clip(rng.beta(gamma, delta, size), tiny, below_one)
    active = np.minimum(np.floor(rng.standard_exponential(size) / -np.log1p(-theta)), n)
    failures = np.floor(rng.standard_exponential(size) / -np.log1p(-p))
    buys = failures < active
    t_x = np.where(buys, active - failures, 0.0)
    x = np.where(buys, 1 + rng.binomial(np.maximum(t_x - 1, 0).astype(np.int64), p), 0)
    return x, t_x


class BGBB(TransactionModel):
    """BG/BB model of discrete-time repeat transactions (Fader, Hardie & Shang 2010).

    Parameters ``alpha, beta`` (beta heterogeneity in the transaction probability p) and
    ``gamma, delta`` (beta heterogeneity in the drop-out probability theta). Fit on a frame
    with whole-number columns ``frequency`` (x), ``recency`` (t_x, the opportunity of the
    last transaction, 0 if none) and ``T`` (n, the number of opportunities), typically with
    a ``weights`` column counting the customers of each pattern. In the prediction methods
    of :class:`~clvmodels.models._btyd.TransactionModel`, times are numbers of
    opportunities.

    Examples
    --------
    >>> import clvmodels as cm
    >>> bb = cm.BGBB.from_params(alpha=1.204, beta=0.750, gamma=0.657, delta=2.783)
    >>> round(bb.expected_purchases_new(6), 3)
    2.22
    """

    param_names = PARAM_NAMES
    formulas = Formulas(
        loglik=loglik,
        loglik_grad=loglik_grad,
        expected_purchases=expected_purchases,
        probability_alive=probability_alive,
        expected_purchases_new=expected_purchases_new,
        probability_of_purchases=probability_of_purchases,
        simulate=simulate,
        conditional=Conditional(
            updated=updated_if_alive,
            survival=survival,
            pmf=probability_of_purchases,
            pmf_table=pmf_table,
            simulate_future=simulate_future,
        ),
    )

    def _data(self, frame):
        frame = validate_rfm(frame, discrete=True)
        return tuple(frame[c].to_numpy(dtype=float) for c in self.columns)

    _arrays = _data

    def _start(self, data, weights):
        x, _, n = data
        # alpha = 1, beta = (1 - rho) / rho put the mean transaction probability at the
        # observed share rho of opportunities with a transaction; gamma = delta = 1.
        rho = np.clip(np.average(x, weights=weights) / np.average(n, weights=weights), 0.01, 0.99)
        return np.array([1.0, (1 - rho) / rho, 1.0, 1.0])

    def _horizon(self, t) -> float:
        """Horizons are numbers of opportunities: whole numbers."""
        _check_counts("the number of opportunities ahead", np.atleast_1d(float(t)))
        return float(t)

    def simulate(self, n_customers: int, T, random_state=None) -> pd.DataFrame:
        """A frame (frequency, recency, T) drawn from the model; ``T`` is the number of
        opportunities (a whole number, or one per customer)."""
        T_arr = np.asarray(T, dtype=float)
        _check_counts("T (the number of opportunities)", np.atleast_1d(T_arr))
        out = super().simulate(n_customers, T_arr, random_state)
        return out.astype({"recency": np.int64, "T": np.int64})
