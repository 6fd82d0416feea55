r"""Shifted-beta-geometric (sBG) model of contract renewals (Fader & Hardie 2007, 2010).

At the end of each period an active customer cancels with probability :math:`\theta`
(the same every period for that customer), so the customer's lifetime T is shifted
geometric, :math:`P(T = t \mid \theta) = \theta (1-\theta)^{t-1}`, t = 1, 2, ...
Across customers :math:`\theta \sim \mathrm{Beta}(\alpha, \beta)`. Mixing gives the sBG's
probability mass and survival functions ([1]_):

.. math::
    P(T = t) = \frac{B(\alpha + 1, \beta + t - 1)}{B(\alpha, \beta)}, \qquad
    S(t) = P(T > t) = \frac{B(\alpha, \beta + t)}{B(\alpha, \beta)},

and the retention rate :math:`r_t = S(t)/S(t-1) = (\beta + t - 1)/(\alpha + \beta + t - 1)`
([1]_ eq. (8)) rises with tenure: the customers with a high :math:`\theta` leave first, so
the survivors are ever more loyal (a sorting effect, not a change in anyone's behaviour).

Data per customer (see :mod:`clvmodels.models._retention`): k renewals made and whether
the customer has cancelled. A customer who cancelled after k renewals contributes
:math:`\log P(T = k + 1)`, an active one :math:`\log S(k)`; both are
:math:`\log B(\alpha + c, \beta + k) - \log B(\alpha, \beta)` with c = 1 for cancelled
and c = 0 for active customers, the log-likelihood of [1]_ (Appendix: the sum over the
periods of the customers lost times :math:`\log P(T = t)` plus the survivors times
:math:`\log S(n)`), here per row.

Value ([2]_): with a discount rate d and :math:`z = 1/(1+d)`,

.. math::
    \mathrm{DEL}(d) = \sum_{t=0}^\infty S(t) z^t = {}_2F_1(1, \beta; \alpha + \beta; z),

    \mathrm{DERL}(d \mid k) = \frac{\beta + k}{\alpha + \beta + k}\,
    {}_2F_1(1, \beta + k + 1; \alpha + \beta + k + 1; z)

([2]_ eq. (6), written with k = n - 1 renewals made). At d = 0 these are the expected
lifetime :math:`(\alpha + \beta - 1)/(\alpha - 1)` and the expected number of future
renewals :math:`(\beta + k)/(\alpha - 1)` (Gauss's sum, DLMF 15.4.20), infinite when
:math:`\alpha \le 1`: the beta distribution then has so much mass near :math:`\theta = 0`
that the mean lifetime diverges.

Equation numbers are cited where they were checked against a second source (eq. (8) of
[1]_, eq. (6) of [2]_); the other formulas are cited by name.

References
----------
.. [1] Fader, P. S. and Hardie, B. G. S. (2007). How to Project Customer Retention.
   *Journal of Interactive Marketing* 21(1), 76-90.
.. [2] Fader, P. S. and Hardie, B. G. S. (2010). Customer-Base Valuation in a Contractual
   Setting: The Perils of Ignoring Heterogeneity. *Marketing Science* 29(1), 85-93.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from .._math import NUMPY
from ._hyp2f1 import log_hyp2f1
from ._retention import RetentionModel, _discount, _shape, _whole

PARAM_NAMES = ("alpha", "beta")


def log_survival(alpha, beta, t, ops=NUMPY):
    r""":math:`\log S(t) = \log B(\alpha, \beta + t) - \log B(\alpha, \beta)` ([1]_, the
    sBG survival function)."""
    return ops.betaln(alpha, beta + t) - ops.betaln(alpha, beta)


def loglik(alpha, beta, renewals, churned, ops=NUMPY):
    r"""Log-likelihood of each row: :math:`\log B(\alpha + c, \beta + k) - \log B(\alpha,
    \beta)`, i.e. :math:`\log P(T = k + 1)` (the sBG mass function of [1]_) for a customer
    who cancelled after k renewals (c = 1) and :math:`\log S(k)` for an active one (c = 0)."""
    return ops.betaln(alpha + churned, beta + renewals) - ops.betaln(alpha, beta)


def loglik_grad(alpha, beta, renewals, churned):
    """Gradient of :func:`loglik` with respect to (alpha, beta)."""
    psi = special.digamma
    common = psi(alpha + beta) - psi(alpha + beta + churned + renewals)
    return (psi(alpha + churned) - psi(alpha) + common,
            psi(beta + renewals) - psi(beta) + common)


def loglik_hessian(alpha, beta, renewals, churned):
    """Second derivatives of :func:`loglik`: (d2/da2, d2/dadb, d2/db2)."""
    tri = special.polygamma
    common = tri(1, alpha + beta) - tri(1, alpha + beta + churned + renewals)
    return (tri(1, alpha + churned) - tri(1, alpha) + common, common,
            tri(1, beta + renewals) - tri(1, beta) + common)


def retention_rate(alpha, beta, t):
    r""":math:`r_t = (\beta + t - 1)/(\alpha + \beta + t - 1)`, t >= 1 ([1]_ eq. (8))."""
    return (beta + t - 1) / (alpha + beta + t - 1)


def derl(alpha, beta, discount_rate, renewals):
    r"""Discounted expected residual lifetime after k = ``renewals`` renewals ([2]_ eq. (6)):
    :math:`\frac{\beta + k}{\alpha + \beta + k}\,{}_2F_1(1, \beta + k + 1; \alpha + \beta +
    k + 1; 1/(1+d))`; at d = 0 the expected future renewals :math:`(\beta + k)/(\alpha - 1)`
    (infinite for :math:`\alpha \le 1`). The hypergeometric function is evaluated in log
    space (:func:`clvmodels.models._hyp2f1.log_hyp2f1`), stable for large parameters."""
    k = np.asarray(renewals, dtype=float)
    d = float(discount_rate)
    if d == 0:
        shape = np.broadcast(alpha, beta, k).shape
        with np.errstate(divide="ignore"):
            out = np.where(alpha > 1, (beta + k) / np.maximum(alpha - 1, 1e-300), np.inf)
        return np.broadcast_to(out, shape).astype(float)
    log_f, _ = log_hyp2f1(1.0, beta + k + 1, alpha + beta + k + 1, 1.0 / (1.0 + d))
    return retention_rate(alpha, beta, k + 1) * np.exp(log_f)


def del_(alpha, beta, discount_rate):
    r"""Discounted expected lifetime at acquisition: :math:`{}_2F_1(1, \beta; \alpha + \beta;
    1/(1+d))` ([2]_, the sBG DEL; the first payment, at t = 0, included); at d = 0 the
    expected lifetime :math:`(\alpha + \beta - 1)/(\alpha - 1)`, infinite for
    :math:`\alpha \le 1`."""
    d = float(discount_rate)
    if d == 0:
        with np.errstate(divide="ignore"):
            return np.where(alpha > 1, (alpha + beta - 1) / np.maximum(alpha - 1, 1e-300),
                            np.inf)
    log_f, _ = log_hyp2f1(1.0, beta, alpha + beta, 1.0 / (1.0 + d))
    return np.exp(log_f)


def simulate_lifetimes(theta, c, size, rng) -> np.ndarray:
    r"""Lifetimes T >= 1 (periods paid) of customers with churn probabilities ``theta``
    under the discrete Weibull :math:`P(T > t \mid \theta) = (1 - \theta)^{t^c}` (c = 1:
    the geometric of the sBG), by inversion: :math:`T = \lceil (\log U / \log(1 -
    \theta))^{1/c} \rceil`, as floats (no integer overflow for tiny :math:`\theta`)."""
    u = rng.random(size)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        x = (np.log(u) / np.log1p(-np.asarray(theta, dtype=float))) ** (1.0 / c)
    return np.maximum(np.ceil(np.nan_to_num(x, nan=1.0, posinf=np.inf)), 1.0)


def simulate(alpha, beta, size, periods, rng, c=1.0) -> pd.DataFrame:
    r"""A cohort of ``size`` customers observed for ``periods`` renewal opportunities:
    :math:`\theta \sim \mathrm{Beta}(\alpha, \beta)`, lifetimes from
    :func:`simulate_lifetimes`. Returns the per-customer frame (``renewals``,
    ``churned``)."""
    theta = rng.beta(alpha, beta, int(size))
    t = simulate_lifetimes(theta, c, int(size), rng)
    churned = t <= periods
    renewals = np.where(churned, t - 1, periods)
    return pd.DataFrame({"renewals": renewals.astype(np.int64), "churned": churned})


class SBG(RetentionModel):
    """Shifted-beta-geometric model: ``alpha``, ``beta`` of the beta distribution of the
    per-period churn probability (see :mod:`clvmodels.models.sbg`).

    Parameters
    ----------
    penalizer : float, default 0
        L2 penalty on the log-parameters.

    Examples
    --------
    >>> import clvmodels as cm
    >>> sbg = cm.SBG().fit([1000, 631, 468, 382, 326, 289, 262, 241])
    >>> sbg.params_.round(3).tolist()
    [0.704, 1.182]
    >>> round(float(sbg.derl(0.1, renewals=4)), 2)
    5.89
    """

    param_names = PARAM_NAMES
    log_survival = staticmethod(log_survival)
    loglik = staticmethod(loglik)
    loglik_grad = staticmethod(loglik_grad)

    def _loglik_value_grad_and_hessian(self, params, k, c, weights):
        a, b = params
        ll = float(weights @ loglik(a, b, k, c))
        g = np.array([weights @ v for v in loglik_grad(a, b, k, c)])
        haa, hab, hbb = (weights @ v for v in loglik_hessian(a, b, k, c))
        return ll, g, np.array([[haa, hab], [hab, hbb]])

    def retention_rate(self, t):
        """Retention rate at the t-th renewal opportunity, t >= 1 ([1]_ eq. (8))."""
        t = _whole(t, "t", low=1)
        return _shape(retention_rate(*self._check_fitted(), t), t)

    def derl(self, discount_rate: float = 0.1, renewals=0):
        """Discounted expected residual lifetime after ``renewals`` renewals, closed form
        ([2]_ eq. (6)); see :meth:`RetentionModel.derl` for the definition."""
        k = _whole(renewals, "renewals")
        return _shape(derl(*self._check_fitted(), _discount(discount_rate), k), k)

    def del_(self, discount_rate: float = 0.1):
        """Discounted expected lifetime of a new customer, closed form ([2]_)."""
        return float(del_(*self._check_fitted(), _discount(discount_rate)))

    def expected_renewals(self, renewals=0, horizon: int | None = None):
        """Expected future renewals after ``renewals``; with ``horizon=None`` the closed
        form :math:`(\\beta + k)/(\\alpha - 1)` (infinite for alpha <= 1)."""
        if horizon is not None:
            return super().expected_renewals(renewals, horizon)
        k = _whole(renewals, "renewals")
        return _shape(derl(*self._check_fitted(), 0.0, k), k)

    def simulate(self, size: int, periods: int, random_state=None) -> pd.DataFrame:
        """A simulated cohort: per-customer frame observed for ``periods`` renewals."""
        a, b = self._check_fitted()
        return simulate(a, b, size, int(periods), np.random.default_rng(random_state))
