r"""Pareto/NBD with time-varying covariates (Bachmann, Meierer & Naef 2021).

Calendar time is cut into periods (e.g. weeks) that start at the dates of a covariate
table; within a period every customer's covariates are constant. While active, customer
i buys at rate :math:`\lambda_i A_i(t)` and drops out at rate :math:`\mu_i C_i(t)`, with
:math:`A_i(t) = e^{\gamma_P^\top z_i(t)}` and :math:`C_i(t) = e^{\gamma_D^\top w_i(t)}`
piecewise constant; :math:`\lambda_i \sim \mathrm{Gamma}(r, \alpha)` and
:math:`\mu_i \sim \mathrm{Gamma}(s, \beta)` as in the Pareto/NBD ([1]_, whose
convention CLVTools' ``pnbd`` with dynamic covariates implements [2]_). With
:math:`B_i(t) = \int_0^t A_i` and :math:`D_i(t) = \int_0^t C_i` (piecewise linear),
integrating the individual likelihood over :math:`\lambda` and :math:`\mu` gives ([1]_
Appendix A.1; the equation is written here in this module's notation)

.. math::
    L_i = \frac{\Gamma(r+x)\,\alpha^r\beta^s}{\Gamma(r)} \prod_{j=1}^{x} A_i(t_j)
          \Big[\frac{1}{(\alpha+B_i(T))^{r+x}(\beta+D_i(T))^s}
          + s\int_{t_x}^T \frac{C_i(\omega)\,d\omega}
            {(\alpha+B_i(\omega))^{r+x}(\beta+D_i(\omega))^{s+1}}\Big],

where :math:`t_1 < \dots < t_x` are the repeat purchases (time 0: the first purchase).
With constant covariates this is the static-covariate Pareto/NBD
(:mod:`clvmodels.models.paretonbd` at :math:`\alpha_i = \alpha/A_i`,
:math:`\beta_i = \beta/C_i`); with all coefficients 0, the Pareto/NBD.

On a period :math:`[a, b]` inside :math:`[t_x, T]`, :math:`B = B(a) + A(\omega-a)` and
:math:`D = D(a) + C(\omega - a)`, so the piece of the integral is
:math:`A^{-(r+x)}C^{-s}\int_0^{b-a}(p+u)^{-(r+x)}(q+u)^{-(s+1)}du` with
:math:`p = (\alpha + B(a))/A`, :math:`q = (\beta + D(a))/C`: the Pareto/NBD's own
integral (CLVTools writes it with Gauss hypergeometric functions, [2]_), which
is evaluated by the same quadrature as the Pareto/NBD likelihood
(:func:`clvmodels.models.paretonbd._log_pair_integral`), so no formula is written twice.

numpy only (no ``ops`` back-end), for the Pareto/NBD's reason: data-dependent panels.

References
----------
.. [1] Bachmann, P., Meierer, M. and Naef, J. (2021). The Role of Time-Varying
   Contextual Factors in Latent Attrition Models for Customer Base Analysis.
   *Marketing Science* (the likelihood: its Appendix A.1).
.. [2] CLVTools (R package), https://github.com/bachmannpatrick/CLVTools,
   ``R/f_interface_pnbd.R`` and ``src/pnbd_dyncov_LL.cpp``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special

from ..errors import ConvergenceError, DataError, NotFittedError, StatisticalWarning
from . import _covariates as cov
from ._base import MLEModel
from .paretonbd import _log_pair_integral, _one_minus_ratio_power

PARAM_NAMES = ("r", "alpha", "s", "beta")


@dataclass(frozen=True)
class Walks:
    """A customer base cut into covariate periods (arrays; one row per customer).

    ``lo``, ``hi`` (n, K): where period k overlaps the customer's observation window
    [0, T], in the model's time unit (``lo == hi``: no overlap); ``z_purchase``
    (n, K, m_P) and ``z_dropout`` (n, K, m_D): covariates per period; ``z_at_purchases``
    (n, m_P): the purchase covariates summed over the customer's repeat purchases (the
    log of :math:`\\prod_j A_i(t_j)` is its product with :math:`\\gamma_P`); ``x``,
    ``t_x``, ``T`` (n,): the customer's RFM summary; ``ahead_lo``, ``ahead_hi``
    (n, K), optional: the periods' overlaps with a forecast window (T, T + t].
    """

    lo: np.ndarray
    hi: np.ndarray
    z_purchase: np.ndarray
    z_dropout: np.ndarray
    z_at_purchases: np.ndarray
    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    ahead_lo: np.ndarray | None = None  # the same for the forecast window (T, T + t]
    ahead_hi: np.ndarray | None = None


def loglik(r, alpha, s, beta, gamma_purchase, gamma_dropout, walks: Walks) -> np.ndarray:
    r"""Log-likelihood of each customer, [1]_ Appendix A.1 (the equation of the module
    docstring), numpy only."""
    return _loglik(r, alpha, s, beta, gamma_purchase, gamma_dropout, walks, grad=False)


def loglik_and_grad(r, alpha, s, beta, gamma_purchase, gamma_dropout, walks: Walks):
    r""":func:`loglik` and its gradient, (n,) and (n, 4 + m_P + m_D) w.r.t. (r, alpha,
    s, beta, gamma_P, gamma_D), by differentiation under the integral sign on the
    quadrature's nodes (as :func:`clvmodels.models.paretonbd.loglik_and_grad`).

    On a piece, with :math:`E` the average over its normalised integrand:
    :math:`\partial_\alpha = -(r+x)E[1/(\alpha+B)]`, :math:`\partial_r = -E[\log(\alpha+B)]`
    (likewise :math:`\beta, s` with :math:`D` and exponent s + 1), and
    :math:`\partial_{\gamma_P} = -(r+x)E[\partial_{\gamma_P}B/(\alpha+B)]` with
    :math:`\partial_{\gamma_P}B(\omega) = \sum_{j<k} A_j z_j \ell_j + A_k z_k(\omega - a_k)`
    (:math:`\gamma_D`: the same with C, w and s + 1, plus :math:`w_k` from the factor
    :math:`C_k`); the pieces are combined with their shares of the integral, the two
    terms of the bracket with theirs.
    """
    return _loglik(r, alpha, s, beta, gamma_purchase, gamma_dropout, walks, grad=True)


def _integrated(rate, length):
    """B (or D) at the start of each period's part of the window, (n, K), and at its
    end, (n,): the integral of a piecewise-constant rate (exclusive cumulative sums)."""
    through = np.cumsum(rate * length, axis=1)
    return through - rate * length, through[:, -1]


def expected_purchases(r, alpha, s, beta, gamma_purchase, gamma_dropout, walks: Walks):
    r"""Expected purchases in the forecast window (T, T + t] of ``walks`` (its ``ahead_``
    periods, with their covariates), per customer.

    Given alive at T, :math:`\lambda \sim \mathrm{Gamma}(r + x, lpha + B(T))` and
    :math:`\mu \sim \mathrm{Gamma}(s, eta + D(T))` (the likelihood's "alive" term is
    their kernel), so

    .. math::
        E = P(	ext{alive}) rac{r+x}{lpha + B(T)} \int_T^{T+t} A(u)
            \Big(rac{eta + D(T)}{eta + D(u)}\Big)^s du,

    and on a period with constant A, C, starting where :math:`G = eta + D` is
    :math:`G_a`, the integral is
    :math:`rac{A}{C} G_a ig(rac{G_T}{G_a}ig)^s rac{1 - e^{-(s-1)L}}{s-1}`,
    :math:`L = \log(1 + C\ell/G_a)` (:math:`L` at s = 1): the Pareto/NBD's conditional
    expectation ([3]_ eq. (41)) period by period, to which it reduces with constant
    covariates.

    References
    ----------
    .. [3] Fader, P. S. and Hardie, B. G. S. (2005). A Note on Deriving the Pareto/NBD
       Model and Related Expressions. http://brucehardie.com/notes/009/
    """
    w = walks
    if w.ahead_lo is None:
        raise ValueError("these walks have no forecast window (build them with horizon=)")
    gp = np.asarray(gamma_purchase, dtype=float)
    gd = np.asarray(gamma_dropout, dtype=float)
    ll, alive = _loglik(r, alpha, s, beta, gp, gd, w, grad=False, alive=True)
    with np.errstate(over="ignore"):
        a, c = np.exp(w.z_purchase @ gp), np.exp(w.z_dropout @ gd)
    _, b_T = _integrated(a, w.hi - w.lo)
    _, d_T = _integrated(c, w.hi - w.lo)
    ahead = w.ahead_hi - w.ahead_lo
    g_a = beta + d_T[:, None] + _integrated(c, ahead)[0]
    g_T = (beta + d_T)[:, None]
    pieces = (a / c * g_a * (g_T / g_a) ** s
              * _one_minus_ratio_power(s - 1.0, np.log1p(c * ahead / g_a)))
    return np.exp(alive - ll) * (r + w.x) / (alpha + b_T) * pieces.sum(axis=1)


def _loglik(r, alpha, s, beta, gamma_purchase, gamma_dropout, walks, *, grad,
            alive=False):
    """The log-likelihood (with ``grad``: and its gradient; with ``alive``: and the log
    of its "alive at T" term)."""
    w = walks
    gp = np.asarray(gamma_purchase, dtype=float)
    gd = np.asarray(gamma_dropout, dtype=float)
    e = r + w.x
    log_a = w.z_purchase @ gp  # (n, K)
    log_c = w.z_dropout @ gd
    length = w.hi - w.lo
    with np.errstate(over="ignore"):
        a, c = np.exp(log_a), np.exp(log_c)
    b_lo, b_T = _integrated(a, length)
    d_lo, d_T = _integrated(c, length)
    log_alive = -e * np.log(alpha + b_T) - s * np.log(beta + d_T)
    # died in (t_x, T]: one piece per period overlapping [t_x, T]
    start = np.maximum(w.lo, w.t_x[:, None])
    rows, cols = np.nonzero(w.hi > start)
    log_dead = np.full(w.x.shape, -np.inf)
    const = (special.gammaln(e) - special.gammaln(r) + r * np.log(alpha) + s * np.log(beta)
             + w.z_at_purchases @ gp)
    if rows.size:
        at = start[rows, cols]
        ak, ck = a[rows, cols], c[rows, cols]
        offset = at - w.lo[rows, cols]  # from the period's start (in the window) to a
        p = (alpha + b_lo[rows, cols] + ak * offset) / ak
        q = (beta + d_lo[rows, cols] + ck * offset) / ck
        er = e[rows]
        zero = np.zeros(rows.size)
        res = _log_pair_integral(p, q, er, np.full(rows.size, s + 1.0), zero,
                                 w.hi[rows, cols] - at, weights=grad)
        integral, moments = res if grad else (res, None)
        pieces = -er * log_a[rows, cols] - s * log_c[rows, cols] + integral
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        log_dead[rows[starts]] = np.log(s) + np.logaddexp.reduceat(pieces, starts)
    ll = const + np.logaddexp(log_alive, log_dead)
    if alive:
        return ll, const + log_alive
    if not grad:
        return ll
    n, mp, md = w.x.size, gp.size, gd.size
    g_lo = np.cumsum((a * length)[..., None] * w.z_purchase, axis=1)  # through period k
    h_lo = np.cumsum((c * length)[..., None] * w.z_dropout, axis=1)
    g_T, h_T = g_lo[:, -1], h_lo[:, -1]
    g_lo = g_lo - (a * length)[..., None] * w.z_purchase  # before period k
    h_lo = h_lo - (c * length)[..., None] * w.z_dropout
    alive = np.column_stack([
        -np.log(alpha + b_T), -e / (alpha + b_T), -np.log(beta + d_T), -s / (beta + d_T),
        -(e / (alpha + b_T))[:, None] * g_T, -(s / (beta + d_T))[:, None] * h_T])
    dead = np.zeros((n, 4 + mp + md))
    dead[:, 2] = 1.0 / s
    if rows.size:
        log_p, inv_p, log_q, inv_q = moments()
        share = np.exp(pieces - (log_dead - np.log(s))[rows])
        zk, wk = w.z_purchase[rows, cols], w.z_dropout[rows, cols]
        part = np.column_stack([
            -(log_a[rows, cols] + log_p), -er * inv_p / ak,
            -(log_c[rows, cols] + log_q), -(s + 1.0) * inv_q / ck,
            -er[:, None] * (g_lo[rows, cols] * (inv_p / ak)[:, None]
                            + zk * ((offset - p) * inv_p + 1.0)[:, None]),
            wk - (s + 1.0) * (h_lo[rows, cols] * (inv_q / ck)[:, None]
                              + wk * ((offset - q) * inv_q + 1.0)[:, None])])
        for j in range(part.shape[1]):
            dead[:, j] += np.bincount(rows, weights=share * part[:, j], minlength=n)
    share_dead = special.expit(log_dead - log_alive)
    out = (1.0 - share_dead)[:, None] * alive + share_dead[:, None] * dead
    out[:, 0] += special.digamma(e) - special.digamma(r) + np.log(alpha)
    out[:, 1] += r / alpha
    out[:, 2] += np.log(beta)
    out[:, 3] += s / beta
    out[:, 4:4 + mp] += w.z_at_purchases
    return ll, out


def _columns(frame: pd.DataFrame, names: Sequence[str], what: str) -> None:
    for name in names:
        if name not in frame.columns:
            raise DataError(name, f"{what} column not found", len(frame))
        n_missing = int(frame[name].isna().sum())
        if n_missing:
            raise DataError(name, f"{what} has missing values", n_missing)


def build_walks(
    transactions: pd.DataFrame,
    covariates: pd.DataFrame,
    *,
    customer: str,
    date: str,
    covariate_date: str,
    purchase: Sequence[str],
    dropout: Sequence[str],
    observation_end,
    unit_days: float = 7.0,
    horizon: float | None = None,
) -> tuple[Walks, pd.Index]:
    """:class:`Walks` from a transaction log and a table of (customer, period start,
    covariates), and the customers' index (sorted).

    Time 0 of a customer is the day of the first purchase; purchases on the same day
    count once (CLVTools' and :func:`clvmodels.rfm_summary`'s convention); a purchase
    on day d falls in the period that starts on the last covariate date <= d. The
    covariate table must give every customer a row for every period start (the same
    dates for all), from on or before the first purchase to the observation end. With
    ``horizon`` (in the model's unit), also the periods of the forecast window
    (T, T + horizon], which the table must cover (its last period is taken to last
    as long as the one before it).
    """
    _columns(transactions, [customer, date], "transactions")
    _columns(covariates, [customer, covariate_date, *purchase, *dropout], "covariates")
    for name in {*purchase, *dropout}:
        values = covariates[name]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise DataError(name, "time-varying covariates must be numeric (code "
                            "categories as 0/1 columns)", len(covariates))
        bad = int((~np.isfinite(values.to_numpy(dtype=float))).sum())
        if bad:
            raise DataError(name, "covariate must be finite", bad)
    end = pd.Timestamp(observation_end).normalize()
    days = pd.to_datetime(transactions[date]).dt.normalize()
    keep = days <= end
    tx = pd.DataFrame({"c": transactions[customer].to_numpy()[keep],
                       "d": days[keep].to_numpy()}).drop_duplicates()
    first = tx.groupby("c")["d"].min()
    ids = first.index.rename(customer)
    cov_days = pd.to_datetime(covariates[covariate_date]).dt.normalize()
    grid = np.sort(cov_days.unique())
    per = covariates.assign(_d=cov_days.to_numpy()).set_index([customer, "_d"])
    if per.index.duplicated().any():
        raise DataError(covariate_date, "has more than one row per customer and date",
                        int(per.index.duplicated().sum()))
    full = pd.MultiIndex.from_product([ids, grid])
    missing = ~full.isin(per.index)
    if missing.any():
        raise DataError(covariate_date, "covariate rows missing for some customer and "
                        "period (every customer needs every period start)",
                        int(missing.sum()))
    per = per.loc[full]
    late = first.to_numpy() < grid[0]
    if late.any():
        raise DataError(covariate_date, "covariates start after some customers' first "
                        "purchase", int(late.sum()))
    n, K = len(ids), len(grid)
    to_units = np.timedelta64(1, "D") * unit_days
    f = first.to_numpy()
    T = (np.datetime64(end) - f) / to_units
    tau = (grid[None, :] - f[:, None]) / to_units  # period starts, customer time
    upper = np.c_[tau[:, 1:], np.full(n, np.inf)]
    lo = np.clip(tau, 0.0, T[:, None])
    hi = np.clip(upper, 0.0, T[:, None])
    ahead_lo = ahead_hi = None
    if horizon is not None:
        horizon = float(horizon)
        if not (np.isfinite(horizon) and horizon >= 0):
            raise ValueError(f"horizon must be a finite number >= 0, got {horizon}")
        last = grid[-1] + ((grid[-1] - grid[-2]) if K > 1 else np.timedelta64(0, "D"))
        short = (np.datetime64(end) - f) / to_units + horizon > (last - f) / to_units
        if short.any():
            raise DataError(covariate_date, f"covariates end before the forecast window "
                            f"(observation end + {horizon:g} units)", int(short.sum()))
        ahead_lo = np.clip(tau, T[:, None], (T + horizon)[:, None])
        ahead_hi = np.clip(upper, T[:, None], (T + horizon)[:, None])
    zp = per[list(purchase)].to_numpy(dtype=float).reshape(n, K, len(purchase))
    zd = per[list(dropout)].to_numpy(dtype=float).reshape(n, K, len(dropout))
    # repeat purchases: their periods and times
    tx = tx.merge(first.rename("f"), left_on="c", right_index=True)
    repeat = tx[tx["d"] > tx["f"]]
    row = ids.get_indexer(repeat["c"])
    period = np.searchsorted(grid, repeat["d"].to_numpy(), side="right") - 1
    at_purchases = np.zeros((n, len(purchase)))
    np.add.at(at_purchases, row, zp[row, period])
    x = np.bincount(row, minlength=n).astype(float)
    t_last = repeat.groupby("c")["d"].max()
    t_x = np.zeros(n)
    t_x[ids.get_indexer(t_last.index)] = (t_last.to_numpy() - f[ids.get_indexer(
        t_last.index)]) / to_units
    # periods outside every customer's window add nothing: drop them (after the
    # purchases' periods were read)
    used = (hi > lo).any(axis=0)
    if ahead_lo is not None:
        used |= (ahead_hi > ahead_lo).any(axis=0)
    used[-1] |= not used.any()
    if ahead_lo is not None:
        ahead_lo, ahead_hi = ahead_lo[:, used], ahead_hi[:, used]
    return Walks(lo[:, used], hi[:, used], zp[:, used], zd[:, used], at_purchases, x, t_x,
                 T, ahead_lo, ahead_hi), ids


class ParetoNBDDynCov(MLEModel):
    """Pareto/NBD with time-varying covariates (Bachmann, Meierer & Naef 2021).

    ``purchase_covariates`` scale the purchase rate by ``exp(gamma_P' z(t))`` and
    ``dropout_covariates`` the drop-out rate by ``exp(gamma_D' w(t))``, period by period
    (coefficients ``purchase:<column>`` and ``dropout:<column>``, with the signs of
    the static-covariate :class:`~clvmodels.ParetoNBD`: positive raises the rate). Fit
    on the transaction log (the purchase times matter, not only the RFM summary) and a
    table with one row per customer and period start (see :meth:`fit`).

    Parameters
    ----------
    purchase_covariates, dropout_covariates : list of str
        Numeric columns of the covariate table (at least one in all).
    unit : {"D", "W"} or float, default "W"
        Time unit of the model (days, weeks, or a number of days): that of the
        parameters alpha and beta.
    penalizer : float, default 0
        L2 penalty on the log-parameters and the coefficients.
    """

    param_names = PARAM_NAMES
    covariate_links = ((1, "purchase", -1), (3, "dropout", -1))  # names and signs only

    def __init__(self, *, purchase_covariates=None, dropout_covariates=None, unit="W",
                 penalizer: float = 0.0):
        super().__init__(penalizer=penalizer)
        self.purchase_covariates = purchase_covariates
        self.dropout_covariates = dropout_covariates
        self.unit = unit

    def _settings(self):
        return {**super()._settings(), "purchase_covariates": self.purchase_covariates,
                "dropout_covariates": self.dropout_covariates, "unit": self.unit}

    def _unit_days(self) -> float:
        units = {"D": 1.0, "W": 7.0}
        if isinstance(self.unit, str):
            if self.unit not in units:
                raise ValueError(f"unit must be 'D', 'W' or a number of days, got {self.unit!r}")
            return units[self.unit]
        value = float(self.unit)
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"unit must be a positive number of days, got {self.unit!r}")
        return value

    def walks(self, transactions, covariates, *, customer="customer_id", date="date",
              covariate_date="date", observation_end=None,
              horizon: float | None = None) -> tuple[Walks, pd.Index]:
        """The :class:`Walks` of these data for this model's covariates (what :meth:`fit`
        and :meth:`probability_alive` evaluate the likelihood on)."""
        purchase = list(self.purchase_covariates or [])
        dropout = list(self.dropout_covariates or [])
        for name, cols in (("purchase_covariates", self.purchase_covariates),
                           ("dropout_covariates", self.dropout_covariates)):
            if isinstance(cols, str):
                raise TypeError(f"{name} must be a list of column names, got {cols!r}")
        if not purchase and not dropout:
            raise ValueError("ParetoNBDDynCov needs purchase_covariates or "
                             "dropout_covariates (without any, use ParetoNBD)")
        if observation_end is None:
            observation_end = pd.to_datetime(transactions[date]).max()
        return build_walks(transactions, covariates, customer=customer, date=date,
                           covariate_date=covariate_date, purchase=purchase,
                           dropout=dropout, observation_end=observation_end,
                           unit_days=self._unit_days(), horizon=horizon)

    def fit(self, transactions, covariates, *, customer="customer_id", date="date",
            covariate_date="date", observation_end=None, initial_params=None):
        """Fit by maximum likelihood and return ``self``.

        Parameters
        ----------
        transactions : DataFrame
            The transaction log: ``customer`` and ``date`` columns (same-day purchases
            count once). Every customer with a purchase up to ``observation_end`` is
            fitted.
        covariates : DataFrame
            One row per customer and period: ``customer``, ``covariate_date`` (the
            period's first day; the periods are the intervals between consecutive
            dates, the same dates for every customer, from on or before each first
            purchase up to ``observation_end``) and the covariate columns.
        observation_end : date-like, optional
            Last day of the estimation window (default: the last transaction).
        initial_params : dict, optional
            Starting values by name (r, alpha, s, beta and coefficients); by default
            the Pareto/NBD fit without covariates and coefficients 0.
        """
        w, _ = self.walks(transactions, covariates, customer=customer, date=date,
                          covariate_date=covariate_date, observation_end=observation_end)
        return self.fit_walks(w, initial_params=initial_params)

    def fit_walks(self, w: Walks, *, initial_params=None):
        """:meth:`fit` on prepared :class:`Walks` (from :meth:`walks` or :func:`simulate`),
        whose covariates are this model's, in order."""
        purchase = list(self.purchase_covariates or [])
        dropout = list(self.dropout_covariates or [])
        if (w.z_purchase.shape[2], w.z_dropout.shape[2]) != (len(purchase), len(dropout)):
            raise ValueError(f"the walks have {w.z_purchase.shape[2]} purchase and "
                             f"{w.z_dropout.shape[2]} drop-out covariates; the model "
                             f"{len(purchase)} and {len(dropout)}")
        design = cov.Design(
            {role: tuple(cov.Term(c) for c in cols) for role, cols in
             (("purchase", purchase), ("dropout", dropout)) if cols}, self.covariate_links)
        names = list(PARAM_NAMES) + design.names
        mp = len(purchase)
        if initial_params is None:
            from .paretonbd import ParetoNBD

            rfm = pd.DataFrame({"frequency": w.x, "recency": w.t_x, "T": w.T})
            base = ParetoNBD().fit(rfm).params_.to_numpy()
            x0 = np.r_[np.log(base), np.zeros(len(names) - 4)]
        else:
            missing = set(names) - set(initial_params)
            if missing:
                raise ValueError(f"initial_params lacks {sorted(missing)}")
            x0 = np.array([initial_params[n] for n in names], dtype=float)
            x0[:4] = np.log(x0[:4])
        n, pen = w.x.size, self.penalizer

        def split(x):
            th = np.exp(x[:4])
            return (*th, x[4:4 + mp], x[4 + mp:])

        def objective(x):
            with np.errstate(all="ignore"):
                ll, g = loglik_and_grad(*split(x), w)
                total, grad = ll.sum(), g.sum(axis=0)
            grad[:4] *= np.exp(x[:4])
            value = -total / n + pen * (x @ x)
            gradient = -grad / n + 2 * pen * x
            if not (np.isfinite(value) and np.all(np.isfinite(gradient))):
                return np.inf, np.zeros_like(x)
            return float(value), gradient

        bounds = [(-25.0, 25.0)] * 4 + [(-50.0, 50.0)] * (len(names) - 4)
        options = {"maxiter": 5000, "ftol": 1e-14, "gtol": 1e-7}
        res = optimize.minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                                options=options)
        for _ in range(3):  # warm restarts: the curvature memory is rebuilt
            if res.success and np.max(np.abs(res.jac)) < 1e-5:
                break
            again = optimize.minimize(objective, res.x, jac=True, method="L-BFGS-B",
                                      bounds=bounds, options=options)
            stalled = res.fun - again.fun < 1e-12 * max(1.0, abs(res.fun))
            res = again if again.fun <= res.fun else res
            if stalled and np.max(np.abs(res.jac)) < 1e-4:
                res.success = True
                break
        if not (res.success and np.isfinite(res.fun)):
            self.converged_ = False
            raise ConvergenceError(
                f"ParetoNBDDynCov: the optimiser did not converge ({res.message}, max "
                f"|gradient| {np.max(np.abs(res.jac)):.2e}); pass initial_params or set "
                "a small penalizer.")
        # observed information: central differences of the analytic gradient
        K = res.x.size
        hess = np.empty((K, K))
        for j in range(K):
            h = 1e-5 * max(1.0, abs(res.x[j]))
            e = np.zeros(K)
            e[j] = h
            hess[:, j] = -(objective(res.x + e)[1] - objective(res.x - e)[1]) * n / (2 * h)
        hess = (hess + hess.T) / 2
        try:
            cov_x = np.linalg.inv(-hess)
        except np.linalg.LinAlgError:
            cov_x = np.full((K, K), np.nan)
        d = np.r_[np.exp(res.x[:4]), np.ones(K - 4)]
        cov_nat = cov_x * np.outer(d, d)
        self.design_ = design
        self.params_ = pd.Series(np.r_[np.exp(res.x[:4]), res.x[4:]], index=names,
                                 name="estimate")
        self.cov_ = pd.DataFrame(cov_nat, index=names, columns=names)
        self.se_ = pd.Series(np.sqrt(np.clip(np.diag(cov_nat), 0, None)), index=names,
                             name="se")
        with np.errstate(all="ignore"):
            self.loglik_ = float(loglik(*split(res.x), w).sum())
        self.n_obs_ = float(n)
        self.n_unique_ = int(n)
        self.converged_ = True
        self.lr_tests_ = None
        drift = [n for n, v in zip(names[4:], res.x[4:], strict=True) if abs(v) > 10]
        if drift:
            warnings.warn(
                f"ParetoNBDDynCov: coefficient(s) {drift} "
                "drifted to extreme values: the likelihood is flat in that direction.",
                StatisticalWarning, stacklevel=2)
        return self

    @classmethod
    def from_params(cls, **params):
        """A model with known parameters (e.g. published ones): r, alpha, s, beta and the
        coefficients ``purchase:<column>``, ``dropout:<column>``, whose order sets the
        covariates' order."""
        model = super().from_params(**params)
        terms = {} if model.design_ is None else model.design_.terms
        model.purchase_covariates = [t.column for t in terms.get("purchase", ())] or None
        model.dropout_covariates = [t.column for t in terms.get("dropout", ())] or None
        return model

    def _split(self):
        if not hasattr(self, "params_"):
            raise NotFittedError("This ParetoNBDDynCov has no parameters yet: call fit(...) "
                                 "first.")
        p = self.params_.to_numpy()
        mp = len(self.purchase_covariates or [])
        return (*p[:4], p[4:4 + mp], p[4 + mp:])

    def expected_purchases(self, t: float, transactions, covariates, **columns):
        """Expected purchases of each customer in (T, T + t] (t in the model's unit),
        with the covariates of the forecast window from ``covariates`` (which must
        cover it); ``columns`` as for :meth:`fit`. See the module's
        :func:`expected_purchases`."""
        params = self._split()
        w, ids = self.walks(transactions, covariates, horizon=t, **columns)
        with np.errstate(all="ignore"):
            values = expected_purchases(*params, w)
        return pd.Series(values, index=ids, name="expected_purchases")

    def probability_alive(self, transactions, covariates, **columns) -> pd.Series:
        r"""P(active at T | history, covariates) per customer: the share of the "alive
        at T" term in the likelihood ([1]_ Appendix A.1; module docstring); ``columns`` as
        for :meth:`fit`."""
        params = self._split()
        w, ids = self.walks(transactions, covariates, **columns)
        with np.errstate(all="ignore"):
            ll, alive = _loglik(*params, w, grad=False, alive=True)
        return pd.Series(np.exp(alive - ll), index=ids, name="probability_alive")


def simulate(r, alpha, s, beta, gamma_purchase, gamma_dropout, lo, hi, z_purchase,
             z_dropout, rng) -> Walks:
    r"""Customers drawn from the model on given covariate periods (exact, vectorised):
    :class:`Walks` with the simulated x, t_x and covariates at the purchases.

    ``lo``, ``hi`` (n, K) and the covariates are as in :class:`Walks` (T = ``hi[:, -1]``).
    Each customer draws :math:`\lambda \sim \mathrm{Gamma}(r, \alpha)`,
    :math:`\mu \sim \mathrm{Gamma}(s, \beta)` and a lifetime :math:`\omega` with
    :math:`\mu D(\omega) = E`, :math:`E \sim \mathrm{Exp}(1)` (inversion of the
    piecewise-linear cumulative hazard); in each period's part of :math:`(0,
    \min(\omega, T)]` the purchases are Poisson with mean :math:`\lambda A_k` times its
    length (the model of [1]_), the last one the largest of that many uniform times.
    """
    n, K = lo.shape
    a = np.exp(z_purchase @ np.asarray(gamma_purchase, dtype=float))
    c = np.exp(z_dropout @ np.asarray(gamma_dropout, dtype=float))
    lam = rng.gamma(r, 1.0 / alpha, n)
    mu = rng.gamma(s, 1.0 / beta, n)
    length = hi - lo
    d_hi = np.cumsum(c * length, axis=1)
    need = rng.exponential(1.0, n) / mu  # D(omega) at death
    k = np.minimum((d_hi < need[:, None]).sum(axis=1), K - 1)
    rows = np.arange(n)
    d_lo = d_hi[rows, k] - (c * length)[rows, k]
    with np.errstate(divide="ignore", invalid="ignore"):
        omega = np.where(d_hi[:, -1] >= need, lo[rows, k] + (need - d_lo) / c[rows, k],
                         np.inf)
    active = np.clip(np.minimum(hi, omega[:, None]) - lo, 0.0, None)
    counts = rng.poisson(lam[:, None] * a * active)
    x = counts.sum(axis=1).astype(float)
    last = K - 1 - np.argmax(counts[:, ::-1] > 0, axis=1)
    top = counts[rows, last]
    frac = np.where(top > 0, rng.random(n) ** (1.0 / np.maximum(top, 1)), 0.0)
    t_x = np.where(x > 0, lo[rows, last] + active[rows, last] * frac, 0.0)
    at_purchases = np.einsum("nk,nkm->nm", counts.astype(float), z_purchase)
    return Walks(lo, hi, z_purchase, z_dropout, at_purchases, x, t_x, hi[:, -1].copy())

