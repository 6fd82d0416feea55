r"""MBG/NBD model (Batislam, Denizel & Filiztekin 2007): pure functions and the estimator.

As in the BG/NBD, a customer buys at Poisson rate :math:`\lambda` while active, with
:math:`\lambda \sim \mathrm{Gamma}(r, \alpha)` and a drop-out probability
:math:`p \sim \mathrm{Beta}(a, b)`; but the customer may also drop out at time 0, right
after the first purchase, so a customer with no repeat purchase is not surely alive.
The same model is the CBG/NBD of Hoppe & Wagner [2]_; BTYDplus calls it ``mbgnbd``.

Every formula here follows from one identity. A customer drops out at time 0 with
probability :math:`E[p] = a/(a+b)`; given that the customer did not, the posterior of
:math:`p` is :math:`\mathrm{Beta}(a, b+1)` and from then on the customer is a BG/NBD
customer (drop-out after each repeat purchase). Hence, for a customer just acquired,

.. math::
    \mathrm{MBG/NBD}(r, \alpha, a, b) = \tfrac{a}{a+b}\,\delta_{\text{dead at } 0}
    + \tfrac{b}{a+b}\,\mathrm{BG/NBD}(r, \alpha, a, b+1),

a mixture in which the first component never purchases. The likelihood, :math:`E[X(t)]`
and :math:`P(X(t)=n)` are therefore the BG/NBD formulas of [3]_ at ``b + 1`` (reused from
:mod:`clvmodels.models.bgnbd`, not rewritten) plus the zero-inflation term, and they agree
with the expressions of [1]_ and [2]_ term by term. P(alive) and the conditional
expectation are those of the BG/NBD at ``b + 1`` for ``x > 0``; for ``x = 0`` the
posterior probability of being active is below 1 (formula in :func:`probability_alive`).

References
----------
.. [1] Batislam, E. P., Denizel, M. and Filiztekin, A. (2007). Empirical validation and
   comparison of models for customer base analysis. *International Journal of Research
   in Marketing* 24(3), 201-209; with Wagner, U. and Hoppe, D. (2008), Erratum on the
   MBG/NBD model, *IJRM* 25(3), 225-226.
.. [2] Hoppe, D. and Wagner, U. (2007). Customer base analysis: the case for a central
   variant of the Betageometric/NBD model. *Marketing - Journal of Research and
   Management* 3(2), 75-90.
.. [3] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "Counting Your Customers"
   the Easy Way: An Alternative to the Pareto/NBD Model. *Marketing Science* 24(2),
   275-284.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from .._math import NUMPY
from . import bgnbd
from ._btyd import Conditional, CovariateTransactionModel, Formulas

PARAM_NAMES = ("r", "alpha", "a", "b")


def _log_odds_dead(r, alpha, a, b, x, t_x, T, ops=NUMPY):
    r"""log of  :math:`\frac{a}{b+x} (\frac{\alpha+T}{\alpha+t_x})^{r+x}`, for every x >= 0.

    The posterior odds of "dropped out at t_x" against "active at T" ([1]_; for x > 0
    the BG/NBD odds of [3]_ eq. (11) at b + 1).
    """
    return ops.log(a) - ops.log(b + x) + (r + x) * (ops.log(alpha + T) - ops.log(alpha + t_x))


def loglik(r, alpha, a, b, x, t_x, T, ops=NUMPY):
    r"""Log-likelihood of each customer's (x, t_x, T) ([1]_, [2]_).

    .. math::
        L = \frac{B(a, b+x+1)}{B(a, b)} \frac{\Gamma(r+x)\alpha^r}{\Gamma(r)(\alpha+T)^{r+x}}
          + \frac{B(a+1, b+x)}{B(a, b)} \frac{\Gamma(r+x)\alpha^r}{\Gamma(r)(\alpha+t_x)^{r+x}}

    computed through the mixture identity of the module docstring as
    :math:`\log\frac{b}{a+b} + \ell_{BG}(r, \alpha, a, b+1) + \delta_{x=0}\,
    \mathrm{softplus}(d)`, with :math:`\ell_{BG}` the BG/NBD log-likelihood ([3]_ eq. (6))
    and :math:`d` the log-odds of :func:`_log_odds_dead`: for x = 0 the extra term adds the
    customers who dropped out at time 0. ``ops`` is the array back-end.
    """
    d = _log_odds_dead(r, alpha, a, b, x, t_x, T, ops)
    return (
        ops.log(b)
        - ops.log(a + b)
        + bgnbd.loglik(r, alpha, a, b + 1.0, x, t_x, T, ops)
        + ops.where(x > 0, 0.0, ops.softplus(d))
    )


def loglik_grad(r, alpha, a, b, x, t_x, T):
    """Gradient of :func:`loglik` with respect to (r, alpha, a, b), one row per customer.

    The chain rule through the identity: the BG/NBD gradient at b + 1 (d/db of b + 1 is 1),
    plus d log(b/(a+b)), plus, for x = 0, w0 * grad(d) with w0 = sigmoid(d) the posterior
    probability of having dropped out at time 0.
    """
    g_r, g_alpha, g_a, g_b = bgnbd.loglik_grad(r, alpha, a, b + 1.0, x, t_x, T)
    d = _log_odds_dead(r, alpha, a, b, x, t_x, T)
    w0 = np.where(x > 0, 0.0, special.expit(d))
    d_r = g_r + w0 * (np.log(alpha + T) - np.log(alpha + t_x))
    d_alpha = g_alpha + w0 * (r + x) * (1.0 / (alpha + T) - 1.0 / (alpha + t_x))
    d_a = g_a - 1.0 / (a + b) + w0 / a
    d_b = g_b + 1.0 / b - 1.0 / (a + b) - w0 / (b + x)
    return d_r, d_alpha, d_a, d_b


def probability_alive(r, alpha, a, b, x, t_x, T):
    r"""P(active at T | x, t_x, T) ([1]_ with its erratum, [2]_):

    .. math:: 1 \Big/ \Big(1 + \frac{a}{b+x}\big(\tfrac{\alpha+T}{\alpha+t_x}\big)^{r+x}\Big)

    for every x, including x = 0 (for x > 0, [3]_ eq. (11) at b + 1).
    """
    return special.expit(-_log_odds_dead(r, alpha, a, b, x, t_x, T))


def _alive_if_no_repeat(r, alpha, a, b, x, t_x, T):
    """P(alive) where x = 0 and 1 elsewhere: the MBG/NBD's P(alive) over the BG/NBD's at b+1."""
    x = np.asarray(x, dtype=float)
    return np.where(x > 0, 1.0, probability_alive(r, alpha, a, b, x, t_x, T))


def expected_purchases(r, alpha, a, b, t, x, t_x, T):
    r"""E[Y(t) | x, t_x, T]: expected purchases in (T, T+t] ([1]_, [2]_).

    .. math::
        \frac{a+b+x}{a-1}\Big[1 - \big(\tfrac{\alpha+T}{\alpha+T+t}\big)^{r+x}
        {}_2F_1(r+x, b+x+1; a+b+x; \tfrac{t}{\alpha+T+t})\Big] \, P(\text{alive})

    The bracket is the BG/NBD one ([3]_ eq. (10)) at b + 1, the expectation given that
    the customer is active; only P(alive) differs, and only for x = 0, where the BG/NBD's
    is 1. So this is the BG/NBD expectation at b + 1 times :func:`probability_alive` for
    x = 0. All arguments broadcast against each other.
    """
    return bgnbd.expected_purchases(r, alpha, a, b + 1.0, t, x, t_x, T) * _alive_if_no_repeat(
        r, alpha, a, b, x, t_x, T
    )


def expected_purchases_path(r, alpha, a, b, times, x, t_x, T):
    """:func:`expected_purchases` at each of ``times`` (K,) for customers (n,): (n, K),
    through :func:`clvmodels.models.bgnbd.expected_purchases_path` at b + 1."""
    return (
        bgnbd.expected_purchases_path(r, alpha, a, b + 1.0, times, x, t_x, T)
        * _alive_if_no_repeat(r, alpha, a, b, x, t_x, T)[:, None]
    )


def expected_purchases_new(r, alpha, a, b, t):
    r"""E[X(t)] for a customer acquired at time 0 ([1]_):
    :math:`\frac{b}{a-1}[1 - (\frac{\alpha}{\alpha+t})^r {}_2F_1(r, b+1; a+b; \frac{t}{\alpha+t})]`,
    which is :math:`\frac{b}{a+b}` times the BG/NBD's E[X(t)] ([3]_ eq. (9)) at b + 1."""
    return b / (a + b) * bgnbd.expected_purchases_new(r, alpha, a, b + 1.0, t)


def probability_of_purchases(r, alpha, a, b, n, t):
    r"""P(X(t) = n) for a customer acquired at time 0.

    .. math::
        \frac{B(a, b+n+1)}{B(a, b)} \mathrm{NB}(n; r, \tfrac{\alpha}{\alpha+t})
        + \frac{B(a+1, b+n)}{B(a, b)} P(\mathrm{NB}(r, \tfrac{\alpha}{\alpha+t}) \ge n)

    by the mixture identity: :math:`\frac{b}{a+b}` times the BG/NBD's P(X(t) = n)
    ([3]_ eq. (8)) at b + 1, plus :math:`\frac{a}{a+b}` for n = 0.
    """
    n = np.asarray(n, dtype=float)
    return b / (a + b) * bgnbd.probability_of_purchases(r, alpha, a, b + 1.0, n, t) + np.where(
        n == 0, a / (a + b), 0.0
    )


def updated_if_alive(r, alpha, a, b, x, T):
    r"""Parameters of a customer alive at T, as a new *BG/NBD* customer.

    An active MBG/NBD customer has survived x + 1 drop-out chances (at time 0 and after
    each repeat purchase): the drop-out probability's posterior is
    :math:`\mathrm{Beta}(a, b+x+1)`, the rate's :math:`\mathrm{Gamma}(r+x, \alpha+T)`, and
    from then on drop-out follows purchases as in the BG/NBD. So the future is a new
    BG/NBD customer with :math:`(r+x, \alpha+T, a, b+1+x)`: the BG/NBD's update
    (:func:`clvmodels.models.bgnbd.updated_if_alive`) at b + 1, as the mixture identity
    of the module docstring says.
    """
    return bgnbd.updated_if_alive(r, alpha, a, b + 1.0, x, T)


def simulate_future(r, alpha, a, b, t, x, t_x, T, rng):
    """Draws of the purchases in (T, T+t] given each customer's history: alive with
    :func:`probability_alive`, then the BG/NBD's future draws at b + 1."""
    alive = rng.random(np.shape(x)) < _alive_if_no_repeat(r, alpha, a, b, x, t_x, T)
    return np.where(alive, bgnbd.simulate_future(r, alpha, a, b + 1.0, t, x, t_x, T, rng), 0)


def simulate(r, alpha, a, b, T, rng):
    """Exact draws of (x, t_x) for customers of ages ``T`` (vectorised).

    By the mixture identity: each customer drops out at time 0 with probability
    a / (a + b) (x = t_x = 0); the others are BG/NBD customers with parameters
    (r, alpha, a, b + 1), drawn by :func:`clvmodels.models.bgnbd.simulate`.
    """
    x, t_x = bgnbd.simulate(r, alpha, a, b + 1.0, T, rng)
    dead_at_0 = rng.random(T.shape) < a / (a + b)
    return np.where(dead_at_0, 0, x), np.where(dead_at_0, 0.0, t_x)


class MBGNBD(CovariateTransactionModel):
    """MBG/NBD model of repeat purchasing (Batislam, Denizel & Filiztekin 2007).

    Parameters ``r, alpha`` (gamma heterogeneity in purchase rate) and ``a, b`` (beta
    heterogeneity in the drop-out probability, applied at time 0 and after each repeat
    purchase). Fit on an RFM frame with ``frequency``, ``recency`` and ``T``.

    Examples
    --------
    >>> import clvmodels as cm
    >>> mbg = cm.MBGNBD.from_params(r=0.525, alpha=6.183, a=0.891, b=1.614)
    >>> round(mbg.expected_purchases_new(39.0), 3)
    1.183
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
        conditional=Conditional(
            updated=updated_if_alive,
            survival=bgnbd.survival,
            pmf=bgnbd.probability_of_purchases,
            pmf_table=bgnbd.pmf_table,
            simulate_future=simulate_future,
            mean=bgnbd.expected_purchases_new,
        ),
    )
