r"""Shared machinery of the contractual (subscription) models: data, predictions, value.

A customer of a contractual business pays for one period at a time and, at the end of
each, renews or cancels; cancellation is observed. The models here (:class:`~clvmodels.SBG`,
:class:`~clvmodels.BDW`) describe the number of periods :math:`T \ge 1` a customer stays.
Their data, per customer, are the number of renewals made so far (``renewals``, k) and
whether the customer has cancelled (``churned``): a customer who cancelled after k
renewals has :math:`T = k + 1`; one still active after k renewals has :math:`T > k`.

Three forms of data are accepted by ``fit`` and turned into such rows with counts
(:func:`retention_rows`):

* a Series ``alive`` of the customers still active at the start of periods 0, 1, ..., n
  (``alive[0]`` is the cohort's size; ``alive[t]`` those who made at least t renewals):
  ``alive[k] - alive[k + 1]`` customers cancelled after k renewals and ``alive[n]`` are
  still active after n;
* a DataFrame with one such column per cohort, NaN beyond each cohort's age (the pooled
  fit of several cohorts: every cohort contributes its own censored likelihood);
* a per-customer frame with the columns ``renewals`` and ``churned`` (e.g. built from a
  subscription log by :func:`clvmodels.contractual.subscription_summary`).

A model module provides two pure functions, its log-survival function
:math:`\log S(t) = \log P(T > t)` and the log-likelihood of the rows, both written once
for numpy and pytensor (``ops=``); everything else (survival, retention and churn curves,
discounted expected (residual) lifetimes, expected renewals) follows from the survival
function here, with closed forms where a model has them.

References
----------
.. [1] Fader, P. S. and Hardie, B. G. S. (2007). How to Project Customer Retention.
   *Journal of Interactive Marketing* 21(1), 76-90.
.. [2] Fader, P. S. and Hardie, B. G. S. (2010). Customer-Base Valuation in a Contractual
   Setting: The Perils of Ignoring Heterogeneity. *Marketing Science* 29(1), 85-93.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import special

from ..errors import DataError
from ._base import MLEModel

RENEWALS, CHURNED, COUNT, COHORT = "renewals", "churned", "count", "cohort"
_TAIL = 1e-16  # relative size of the tail left out of a discounted sum
_MAX_TERMS = 2_000_000  # terms of a discounted sum: discount rates down to about 2e-5


def _alive_rows(alive: pd.Series, name) -> pd.DataFrame:
    """Rows (renewals, churned, count) of one cohort's counts of active customers."""
    values = pd.to_numeric(alive, errors="coerce").to_numpy(dtype=float)
    label = f"cohort {name!r}" if name is not None else "alive"
    observed = ~np.isnan(values)
    n = int(observed.sum())
    if n == 0 or not observed[:n].all():
        raise DataError(
            label, "must be numbers from period 0 on, missing (NaN) only after the last "
            "observed period", int((~observed[:n]).sum()) if n else len(values),
        )
    values = values[:n]
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        raise DataError(label, "customers alive must be finite and non-negative", int(bad.sum()))
    if values[0] <= 0:
        raise DataError(label, "the cohort's size (period 0) must be positive", 1)
    rising = np.flatnonzero(np.diff(values) > 0)
    if rising.size:
        raise DataError(
            label, "customers alive cannot increase from one period to the next "
            f"(first at period {int(rising[0]) + 1})", int(rising.size),
        )
    k = np.arange(n, dtype=float)
    lost = values[:-1] - values[1:]
    return pd.DataFrame({
        RENEWALS: np.r_[k[:-1], k[-1]],
        CHURNED: np.r_[np.ones(n - 1, dtype=bool), False],
        COUNT: np.r_[lost, values[-1]],
    })


def retention_rows(data) -> tuple[pd.DataFrame, bool]:
    """The per-customer rows of any accepted form of data (see the module docstring).

    Returns ``(frame, aggregated)``: ``frame`` has the columns ``renewals``, ``churned``
    and, for aggregated input (a Series or a cohort table), ``count`` (customers per row)
    and ``cohort`` (the column name of a cohort table, 0 for a Series). A per-customer
    frame is returned as given (``aggregated`` False; it is validated when fitted).
    """
    if isinstance(data, pd.DataFrame) and {RENEWALS, CHURNED} <= set(data.columns):
        return data, False
    if isinstance(data, pd.DataFrame):
        if data.shape[1] == 0:
            raise DataError(None, "the cohort table has no columns", 0)
        parts = [_alive_rows(data[c], c).assign(**{COHORT: c}) for c in data.columns]
        return pd.concat(parts, ignore_index=True), True
    if isinstance(data, pd.Series | np.ndarray | list | tuple):
        series = data if isinstance(data, pd.Series) else pd.Series(np.asarray(data, float))
        return _alive_rows(series, None).assign(**{COHORT: 0}), True
    raise DataError(
        None, "expected a Series of customers alive per period, a DataFrame with one such "
        f"column per cohort, or a frame with columns {RENEWALS!r} and {CHURNED!r}; got "
        f"{type(data).__name__}",
    )


def validated_columns(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``renewals`` (whole numbers >= 0) and ``churned`` (booleans or 0/1) as floats."""
    for col in (RENEWALS, CHURNED):
        if col not in frame.columns:
            raise DataError(col, "column not found in the data", len(frame))
        missing = int(frame[col].isna().sum())
        if missing:
            raise DataError(col, "must not be missing", missing)
    k = pd.to_numeric(frame[RENEWALS], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(k) | (k < 0) | (k != np.floor(k))
    if bad.any():
        raise DataError(RENEWALS, "must be whole numbers >= 0 (renewals made)", int(bad.sum()))
    c = pd.to_numeric(frame[CHURNED], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isin(c, (0.0, 1.0))
    if bad.any():
        raise DataError(CHURNED, "must be True/False (or 1/0)", int(bad.sum()))
    return k, c


def _whole(values, name: str, low: int = 0) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if not (np.all(np.isfinite(v)) and np.all(v >= low) and np.all(v == np.floor(v))):
        raise ValueError(f"{name} must be whole numbers >= {low}, got {values!r}")
    return v


def _discount(discount_rate) -> float:
    d = float(discount_rate)
    if not (np.isfinite(d) and d >= 0):
        raise ValueError(f"discount_rate must be a finite number >= 0, got {discount_rate!r}")
    return d


def _shape(out: np.ndarray, like) -> np.ndarray | float:
    return float(out) if np.ndim(like) == 0 else out


def discounted_sum(log_s: Callable, d: float, k: np.ndarray, horizon: int | None,
                   name: str = "the model") -> np.ndarray:
    r""":math:`\sum_{j=0}^{J-1} S(k + 1 + j) / S(k) / (1 + d)^j` for each k.

    ``log_s(t)`` is the log-survival function (it may return leading dimensions, e.g. one
    per posterior draw, before those of ``t``). J is ``horizon``, or the number of terms
    after which the tail is below 1e-16 of the first term (:math:`z^J/(1 - z) < 10^{-16}`,
    :math:`z = 1/(1+d)`, as every ratio S(k+1+j)/S(k) is at most 1). The terms are summed
    in blocks of bounded size, in log space (no overflow of :math:`(1+d)^j`).
    """
    z = 1.0 / (1.0 + d)
    if horizon is None:
        if d == 0:
            raise ValueError(f"{name}: the undiscounted infinite sum has no closed form here; "
                             "give a horizon or a discount_rate > 0")
        terms = int(np.ceil((np.log(_TAIL) + np.log1p(-z)) / np.log(z)))
        if terms > _MAX_TERMS:
            raise ValueError(f"discount_rate {d} is too small for the direct sum; give a horizon")
    else:
        terms = int(horizon)
    uniq, inverse = np.unique(np.asarray(k, dtype=float), return_inverse=True)
    base = log_s(uniq)
    lead = base.shape[:-1]
    out = np.zeros(base.shape)
    step = max(1, 1_000_000 // max(base.size, 1))
    log_z = np.log(z)
    for start in range(0, terms, step):
        j = np.arange(start, min(start + step, terms), dtype=float)
        log_terms = log_s(uniq[:, None] + 1 + j) - base[..., None] + j * log_z
        out += np.exp(log_terms).sum(axis=-1)
    return out[..., inverse].reshape(lead + np.shape(k))


class RetentionModel(MLEModel):
    """Base class of the contractual models (see the module docstring).

    Subclasses set ``param_names`` and point ``log_survival``, ``loglik`` and
    ``loglik_grad`` at their module's pure functions (class attributes, no lookups).
    """

    log_survival: ClassVar[Callable]
    loglik: ClassVar[Callable]
    loglik_grad: ClassVar[Callable]

    # ---- data ---------------------------------------------------------------------
    def fit(self, data, *, weights=None, initial_params=None):
        """Fit by maximum likelihood and return ``self``.

        Parameters
        ----------
        data : Series, DataFrame or per-customer frame
            Customers active at the start of periods 0..n (Series), one such column per
            cohort (DataFrame, NaN beyond each cohort's age: one pooled fit), or a frame
            with columns ``renewals`` and ``churned`` (one row per customer).
        weights : str, array or Series, optional
            Per-customer frames only: each row counts that many times.
        initial_params : dict, optional
            Starting values by parameter name.
        """
        rows, aggregated = retention_rows(data)
        if aggregated:
            if weights is not None:
                raise ValueError("weights= applies to per-customer frames only; counts of "
                                 "customers alive are their own weights")
            weights = COUNT
        return super().fit(rows, weights=weights, initial_params=initial_params)

    def _fit_rows(self, frame):
        k, c = validated_columns(frame)
        periods = int(np.max(k + c, initial=0))  # renewal opportunities seen in the data
        need = len(self.param_names)
        if periods < need:
            raise DataError(
                RENEWALS, f"{type(self).__name__} needs at least {need} renewal periods in the "
                f"data to identify {', '.join(self.param_names)}; found {periods}", len(frame),
            )
        return frame

    def _data(self, frame):
        return validated_columns(frame)

    def _loglik(self, params, k, c):
        return type(self).loglik(*params, k, c)

    def _loglik_grad(self, params, k, c):
        return np.column_stack(type(self).loglik_grad(*params, k, c))

    # ---- the survival curve ------------------------------------------------------------
    def _log_s(self, t) -> np.ndarray:
        return type(self).log_survival(*self._check_fitted(), np.asarray(t, dtype=float))

    def survival(self, t):
        r"""P(T > t): the share of a cohort still active after t renewal opportunities
        (``survival(0) == 1``); survivors of a cohort of N are ``N * survival(t)``."""
        t = _whole(t, "t")
        return _shape(np.exp(self._log_s(t)), t)

    def retention_rate(self, t):
        r"""P(T > t | T > t - 1), t >= 1: the share of the customers active in period t - 1
        who renew at the t-th opportunity ([1]_ eq. (8) for the sBG)."""
        t = _whole(t, "t", low=1)
        return _shape(np.exp(self._log_s(t) - self._log_s(t - 1)), t)

    def churn_probability(self, t):
        r"""P(T = t), t >= 1: the share of the cohort that cancels at the t-th opportunity
        (unconditional; the conditional churn rate is ``1 - retention_rate(t)``)."""
        t = _whole(t, "t", low=1)
        before, now = self._log_s(t - 1), self._log_s(t)
        with np.errstate(divide="ignore"):
            out = np.exp(before) * -np.expm1(now - before)
        return _shape(out, t)

    # ---- value -------------------------------------------------------------------------
    def _discounted_sum(self, d: float, k: np.ndarray, horizon: int | None) -> np.ndarray:
        return discounted_sum(self._log_s, d, k, horizon, type(self).__name__)

    def derl(self, discount_rate: float = 0.1, renewals=0):
        r"""Discounted expected residual lifetime of a customer who has made ``renewals``
        renewals, just before the next renewal decision ([2]_ eq. (6) for the sBG):

        .. math:: \mathrm{DERL}(d \mid k) = \sum_{j=0}^{\infty}
            \frac{S(k + 1 + j)}{S(k)} \frac{1}{(1 + d)^j}

        the discounted number of payments still to come (the first one, if the customer
        renews now, is not discounted). The residual value of such a customer is
        ``margin * derl(d, k)``. Here by direct summation to 1e-16 relative accuracy; the
        sBG has a closed form.
        """
        k = _whole(renewals, "renewals")
        return _shape(self._discounted_sum(_discount(discount_rate), k, None), k)

    def del_(self, discount_rate: float = 0.1):
        r"""Discounted expected lifetime of a customer at acquisition (payments at the start
        of each period, the first one included):

        .. math:: \mathrm{DEL}(d) = \sum_{t=0}^{\infty} \frac{S(t)}{(1+d)^t}
            = 1 + \frac{\mathrm{DERL}(d \mid 0)}{1 + d}

        ([2]_, the DEL expression; the value of a new customer is ``margin * del_(d)``).
        """
        d = _discount(discount_rate)
        return 1.0 + self.derl(d, 0) / (1.0 + d)

    def expected_renewals(self, renewals=0, horizon: int | None = None):
        r"""Expected number of future renewals of a customer who has made ``renewals``:
        :math:`\sum_{j=1}^{h} S(k + j) / S(k)` over the next ``horizon`` renewal
        opportunities (``None``: all of them; the sBG's closed form, infinite when
        :math:`\alpha \le 1`)."""
        k = _whole(renewals, "renewals")
        if horizon is not None:
            horizon = int(_whole(horizon, "horizon"))
        return _shape(self._discounted_sum(0.0, k, horizon), k)

    def expected_renewals_per_customer(self, customers: pd.DataFrame,
                                       horizon: int | None = None) -> pd.Series:
        """Expected future renewals of each customer of a per-customer frame (columns
        ``renewals``, ``churned``): 0 for those who cancelled, :meth:`expected_renewals`
        at their renewals for the others."""
        k, c = validated_columns(customers)
        out = np.zeros(k.size)
        active = c == 0
        if active.any():
            out[active] = self.expected_renewals(k[active], horizon=horizon)
        return pd.Series(out, index=customers.index, name="expected_renewals")

    def projected_alive(self, size: float, periods) -> np.ndarray:
        """Expected customers still active at the start of each of ``periods`` out of a
        cohort of ``size`` (``size * survival(periods)``)."""
        return float(size) * np.atleast_1d(self.survival(periods))


def likelihood_ratio_test(restricted: MLEModel, general: MLEModel, df: int = 1) -> pd.Series:
    r"""Likelihood-ratio test of a nested model (e.g. the sBG inside the BdW, c = 1).

    Both models must be fitted on the same data. The statistic
    :math:`2(\ell_{general} - \ell_{restricted})` is :math:`\chi^2_{df}` under the
    restricted model (the restriction is interior: c = 1 of c > 0).
    Returns a Series: statistic, df, p_value.
    """
    for m in (restricted, general):
        if not hasattr(m, "loglik_"):
            raise ValueError(f"{type(m).__name__} has no fitted log-likelihood: fit it first")
    if not np.isclose(restricted.n_obs_, general.n_obs_, rtol=1e-12):
        raise ValueError(
            f"the models were fitted on different data ({restricted.n_obs_:g} vs "
            f"{general.n_obs_:g} customers)"
        )
    stat = max(2.0 * (general.loglik_ - restricted.loglik_), 0.0)
    return pd.Series({"statistic": stat, "df": float(df),
                      # chi-square survival function (scipy.stats.chi2.sf) without importing
                      # scipy.stats (0.6 s at ``import clvmodels``)
                      "p_value": float(special.chdtrc(df, stat))}, name="lr_test")


__all__ = ["RetentionModel", "discounted_sum", "likelihood_ratio_test", "retention_rows"]
