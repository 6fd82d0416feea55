r"""Beta-discrete-Weibull (BdW) model of contract renewals (Fader, Hardie, Liu, Davin &
Steenburgh 2018).

The sBG (:mod:`clvmodels.models.sbg`) keeps each customer's churn probability constant
over time. The BdW lets it change with tenure: a customer with parameter :math:`\theta`
survives t renewal opportunities with the discrete Weibull probability
:math:`P(T > t \mid \theta, c) = (1 - \theta)^{t^c}`, so the customer's own churn
probability falls with tenure when c < 1 (duration dependence: habits, switching costs)
and rises when c > 1; c = 1 is the geometric of the sBG. With
:math:`\theta \sim \mathrm{Beta}(\alpha, \beta)` ([1]_, the BdW survival function):

.. math::
    S(t) = \frac{B(\alpha, \beta + t^c)}{B(\alpha, \beta)}, \qquad
    P(T = t) = S(t - 1) - S(t).

A customer who cancelled after k renewals contributes
:math:`\log(S(k) - S(k + 1)) = \log S(k) + \log(1 - S(k+1)/S(k))` (evaluated with
``log1mexp``, accurate when the two are close), an active one :math:`\log S(k)`.
Aggregate retention then rises with tenure for two reasons, sorting across customers
(the heterogeneity of :math:`\theta`) and each customer's own duration dependence (c);
the likelihood-ratio test of c = 1 (:meth:`BDW.lr_test`) tells whether the second is
needed. There is no closed form of the value measures: DERL and DEL are summed directly
(:meth:`clvmodels.models._retention.RetentionModel.derl`).

References
----------
.. [1] Fader, P. S., Hardie, B. G. S., Liu, Y., Davin, J. and Steenburgh, T. (2018).
   "How to Project Customer Retention" Revisited: The Role of Duration Dependence.
   *Journal of Interactive Marketing* 43, 1-16.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from .._math import NUMPY
from ._retention import RetentionModel, likelihood_ratio_test
from .sbg import SBG, simulate

PARAM_NAMES = ("alpha", "beta", "c")


def _power(k, c, ops=NUMPY):
    """k**c for whole k >= 0, with 0**c = 0 and a finite derivative in c everywhere."""
    safe = ops.where(k > 0, k, 1.0)
    return ops.where(k > 0, safe**c, 0.0)


def log_survival(alpha, beta, c, t, ops=NUMPY):
    r""":math:`\log S(t) = \log B(\alpha, \beta + t^c) - \log B(\alpha, \beta)`, the BdW
    survival function of [1]_."""
    return ops.betaln(alpha, beta + _power(t, c, ops)) - ops.betaln(alpha, beta)


def loglik(alpha, beta, c, renewals, churned, ops=NUMPY):
    r"""Log-likelihood of each row: :math:`\log S(k)` for an active customer after k
    renewals, :math:`\log(S(k) - S(k+1))` for one who cancelled after k ([1]_)."""
    now = log_survival(alpha, beta, c, renewals, ops)
    drop = log_survival(alpha, beta, c, renewals + 1, ops) - now
    # the active rows' drop is finite and < 0 too: no inf or nan in either branch
    return now + ops.where(churned > 0, ops.log1mexp(ops.minimum(drop, -1e-300)), 0.0)


def _log_s_grad(alpha, beta, c, t):
    """Gradient of :func:`log_survival` with respect to (alpha, beta, c), shape (3, ...)."""
    psi = special.digamma
    x = _power(t, c)
    ab = psi(alpha + beta) - psi(alpha + beta + x)
    d_x = psi(beta + x) - psi(alpha + beta + x)
    dx_dc = np.where(t > 1, x * np.log(np.where(t > 1, t, 1.0)), 0.0)  # d t^c / dc
    return np.stack([ab, d_x - psi(beta) + psi(alpha + beta), d_x * dx_dc])


def loglik_grad(alpha, beta, c, renewals, churned):
    """Gradient of :func:`loglik` with respect to (alpha, beta, c)."""
    g_now = _log_s_grad(alpha, beta, c, renewals)
    g_next = _log_s_grad(alpha, beta, c, renewals + 1)
    drop = log_survival(alpha, beta, c, renewals + 1) - log_survival(alpha, beta, c, renewals)
    # d log(S(k) - S(k+1)) = (dlog S(k) - q dlog S(k+1)) / (1 - q), q = S(k+1)/S(k) < 1
    with np.errstate(divide="ignore", invalid="ignore"):
        lost = (g_now - np.exp(drop) * g_next) / -np.expm1(drop)
    return tuple(np.where(churned > 0, lost, g_now))


class BDW(RetentionModel):
    """Beta-discrete-Weibull model: ``alpha``, ``beta`` of the beta distribution of the
    churn probability and the shape ``c`` of its change with tenure (c = 1: the sBG).
    Same interface as :class:`~clvmodels.SBG` (see :mod:`clvmodels.models.bdw`).

    Parameters
    ----------
    penalizer : float, default 0
        L2 penalty on the log-parameters.
    """

    param_names = PARAM_NAMES
    log_survival = staticmethod(log_survival)
    loglik = staticmethod(loglik)
    loglik_grad = staticmethod(loglik_grad)

    def _start(self, data, weights):
        """The sBG fit (c = 1) of the same rows: the BdW's likelihood is at least as high."""
        k, c = data
        rows = pd.DataFrame({"renewals": k, "churned": c})
        sbg = SBG(penalizer=self.penalizer).fit(rows, weights=weights)
        return np.r_[sbg.params_.to_numpy(), 1.0]

    def lr_test(self, sbg: SBG | None = None, data=None) -> pd.Series:
        """Likelihood-ratio test of c = 1 (the sBG) against this fit.

        Give the sBG fitted on the same data, or the data (the sBG is fitted here).
        Returns a Series: statistic, df (1), p_value.
        """
        self._check_fitted()
        if sbg is None:
            if data is None:
                raise ValueError("lr_test needs the fitted SBG or the data (data=...)")
            sbg = SBG(penalizer=self.penalizer).fit(data)
        return likelihood_ratio_test(sbg, self, df=1)

    def simulate(self, size: int, periods: int, random_state=None) -> pd.DataFrame:
        """A simulated cohort: per-customer frame observed for ``periods`` renewals."""
        a, b, c = self._check_fitted()
        return simulate(a, b, size, int(periods), np.random.default_rng(random_state), c=c)


__all__ = ["BDW", "log_survival", "loglik", "loglik_grad"]
