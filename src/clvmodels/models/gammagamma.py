r"""Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005; Fader & Hardie 2013).

A customer's transaction values are i.i.d. :math:`\mathrm{Gamma}(p, \nu)` (shape, rate),
so the mean :math:`\bar z` of x transactions is :math:`\mathrm{Gamma}(px, \nu x)`;
across customers :math:`\nu \sim \mathrm{Gamma}(q, v)`. The model assumes spend per
transaction is independent of the purchase process: :class:`GammaGamma` reports the
correlation between frequency and mean spend and warns when it is strong.

References
----------
.. [1] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). RFM and CLV: Using Iso-Value
   Curves for Customer Base Analysis. *Journal of Marketing Research* 42(4), 415-430.
.. [2] Fader, P. S. and Hardie, B. G. S. (2013). The Gamma-Gamma Model of Monetary Value.
   http://brucehardie.com/notes/025/
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import special

from .._math import NUMPY
from .._validate import validate_rfm
from ..errors import DataError, StatisticalWarning
from ._base import MLEModel

PARAM_NAMES = ("p", "q", "v")


def loglik(p, q, v, x, m, ops=NUMPY):
    r"""Log-density of a customer's mean spend ``m`` over ``x`` transactions, [2]_ eq. (3).

    .. math::
        f(\bar z \mid x) = \frac{\Gamma(px+q)}{\Gamma(px)\Gamma(q)}
        \frac{v^q \, \bar z^{px-1} x^{px}}{(v + x\bar z)^{px+q}}
    """
    px = p * x
    return (
        ops.gammaln(px + q) - ops.gammaln(px) - ops.gammaln(q) + q * ops.log(v)
        + (px - 1) * ops.log(m) + px * ops.log(x) - (px + q) * ops.log(v + x * m)
    )


class GroupedSpend:
    """Rows of a Gamma-Gamma data set (x > 0), arranged for :func:`loglik_total_and_grad`:
    the distinct (group, x) pairs with their weights and sums of w log x, the data-only
    sums of w log m and w x log m per group, and the rows sorted by group. :meth:`arrays`
    gives them in ``FIELDS`` order."""

    FIELDS = ("pair_group", "pair_x", "pair_weight", "group_log_m", "group_x_log_m",
              "row_x", "row_m", "row_weight", "row_group", "run_group", "run_start")

    def __init__(self, codes, x, m, w):
        codes, x, m, w = (np.asarray(c, dtype=float).ravel()
                          for c in np.broadcast_arrays(codes, x, m, w))
        from ._base import unique_rows

        (self.pair_group, self.pair_x), pair, _, _ = unique_rows([codes, x])
        self.pair_weight = np.bincount(pair, w, self.pair_x.size)
        order = np.argsort(codes, kind="stable")
        codes, x, m, w = codes[order], x[order], m[order], w[order]
        self.run_group, self.run_start = np.unique(codes, return_index=True)
        n = int(codes.max()) + 1 if codes.size else 1
        group = codes.astype(np.int64)
        self.group_log_m = np.bincount(group, w * np.log(m), n)
        self.group_x_log_m = np.bincount(group, w * x * np.log(m), n)
        self.row_x, self.row_m, self.row_weight, self.row_group = x, m, w, group
        self.pair_group = self.pair_group.astype(np.int64)
        self.run_group = self.run_group.astype(np.int64)

    def arrays(self) -> list[np.ndarray]:
        return [getattr(self, f) for f in self.FIELDS]


def loglik_total_and_grad(p, q, v, *arrays):
    r"""``sum_i w_i`` :func:`loglik` and its gradient over the rows of :class:`GroupedSpend`.

    [2]_ eq. (3) arranged by what each part depends on: per group g (parameters are
    vectors, one entry per group code),

    .. math::
        \sum_i w_i \ell_i = \sum_{(g,x)} W_{gx}\Big[\log\frac{\Gamma(px+q)}{\Gamma(px)
        \Gamma(q)} + q\log v + px\log x\Big] + p\sum_i w_i x_i \log\bar z_i
        - \sum_i w_i \log\bar z_i - \sum_i w_i (px_i+q)\log(v + x_i\bar z_i),

    the gamma functions once per distinct (g, x), the data-only sums once, and only
    :math:`\log(v + x\bar z)` per row. The gradient is :func:`loglik_grad` summed the same
    way. Returns (total, (d_p, d_q, d_v)), vectors over the groups. Exact: the same sum
    as ``weights @ loglik(...)``, ordered differently.
    """
    a = dict(zip(GroupedSpend.FIELDS, arrays, strict=True))
    p, q, v = (np.asarray(t, dtype=float).reshape(-1) for t in (p, q, v))
    n = p.size
    psi = special.digamma
    pg, px_ = a["pair_group"], a["pair_x"]
    pp, qp, vp, w_pair = p[pg], q[pg], v[pg], a["pair_weight"]
    pxp = pp * px_
    of_pair = (special.gammaln(pxp + qp) - special.gammaln(pxp) - special.gammaln(qp)
               + qp * np.log(vp) + pxp * np.log(px_))
    x, m, w = a["row_x"], a["row_m"], a["row_weight"]
    if n == 1:
        p_r, q_r, v_r = p[0], q[0], v[0]
    else:
        p_r, q_r, v_r = (np.take(t, a["row_group"]) for t in (p, q, v))
    u = v_r + x * m
    log_u = np.log(u)
    px = p_r * x
    starts, groups = a["run_start"], a["run_group"]

    def per_group_rows(*values):  # sums over each group's rows (rows sorted by group)
        out = np.zeros((len(values), n))
        out[:, groups] = np.add.reduceat(np.stack(values), starts, axis=1)
        return out

    wl, wxl, wq = per_group_rows(w * log_u, w * x * log_u, w * (px + q_r) / u)
    total = ((w_pair * of_pair).sum() + p @ a["group_x_log_m"] - a["group_log_m"].sum()
             - (p * wxl + q * wl).sum())

    def per_group(values):
        return np.bincount(pg, values, n)

    d_p = per_group(w_pair * px_ * (psi(pxp + qp) - psi(pxp) + np.log(px_))) \
        + a["group_x_log_m"] - wxl
    d_q = per_group(w_pair * (psi(pxp + qp) - psi(qp) + np.log(vp))) - wl
    d_v = per_group(w_pair * qp / vp) - wq
    return total, (d_p, d_q, d_v)


def loglik_grad(p, q, v, x, m):
    """Gradient of :func:`loglik` with respect to (p, q, v)."""
    psi = special.digamma
    px = p * x
    log_vxm = np.log(v + x * m)
    d_p = x * (psi(px + q) - psi(px) + np.log(m) + np.log(x) - log_vxm)
    d_q = psi(px + q) - psi(q) + np.log(v) - log_vxm
    d_v = q / v - (px + q) / (v + x * m)
    return d_p, d_q, d_v


def expected_spend(p, q, v, x, m):
    r"""E[mean transaction value | x, m], [2]_ eq. (5) / [1]_ eq. (5).

    .. math:: \frac{p(v + x\bar z)}{px + q - 1}
       = \frac{q-1}{px+q-1}\,\frac{pv}{q-1} + \frac{px}{px+q-1}\,\bar z

    a weighted mean of the population mean :math:`pv/(q-1)` and the customer's own mean.
    For x = 0 it is the population mean (infinite when q <= 1).
    """
    x = np.asarray(x, dtype=float)
    m = np.where(x > 0, np.asarray(m, dtype=float), 0.0)
    with np.errstate(divide="ignore"):
        return np.where(p * x + q - 1 > 0, p * (v + x * m) / (p * x + q - 1), np.inf)


def simulate(p, q, v, x, rng):
    """Exact draws of the mean spend of ``x`` transactions per customer (0 where x = 0)."""
    x = np.asarray(x, dtype=float)
    nu = rng.gamma(q, 1.0 / v, x.shape)
    pos = x > 0
    m = np.zeros(x.shape)
    m[pos] = rng.gamma(p * x[pos], 1.0 / (nu[pos] * x[pos]))
    return m


class GammaGamma(MLEModel):
    """Gamma-Gamma spend model, fitted on the repeat buyers (``frequency > 0``).

    Parameters
    ----------
    penalizer : float, default 0
        L2 penalty on the log-parameters.
    covariates : list of str, optional
        Columns of the RFM frame that scale each customer's mean spend:
        ``v_i = v exp(c'z_i)``, so the expected mean transaction value
        ``p v_i / (q - 1)`` is multiplied by ``exp(c'z_i)``
        (coefficients ``spend:<column>``; see :mod:`clvmodels.models._covariates`).
        The likelihood is that of [2]_ eq. (3) at :math:`v_i`.
    lr_tests : bool, default True
        With covariates, the likelihood-ratio test of each covariate column (and of all
        together) from refits of the nested models, in ``lr_tests_`` and
        :meth:`summary`; False skips the refits.
    corr_warning : float, default 0.3
        Warn (:class:`~clvmodels.errors.StatisticalWarning`) when the absolute Pearson
        correlation between frequency and monetary value among repeat buyers exceeds this:
        the model assumes they are independent. The value is kept as
        ``frequency_monetary_corr_``.

    Examples
    --------
    >>> import clvmodels as cm
    >>> gg = cm.GammaGamma.from_params(p=6.25, q=3.74, v=15.44)
    >>> round(float(gg.population_mean_spend()), 2)
    35.22
    """

    param_names = PARAM_NAMES
    covariate_links = ((2, "spend", 1),)

    _covariate_arguments = {"spend": "covariates"}

    def __init__(self, *, penalizer: float = 0.0, covariates=None, corr_warning: float = 0.3,
                 lr_tests: bool = True):
        super().__init__(penalizer=penalizer)
        self.covariates = covariates
        self.corr_warning = corr_warning
        self.lr_tests = lr_tests

    def _settings(self):
        return {**super()._settings(), "covariates": self.covariates,
                "corr_warning": self.corr_warning, "lr_tests": self.lr_tests}

    def _covariate_spec(self):
        return {"spend": self.covariates}

    def _fit_rows(self, frame):
        frame = validate_rfm(frame, require_monetary=True)
        repeat = frame[frame["frequency"] > 0]
        n_zero = int((repeat["monetary_value"] <= 0).sum())
        if n_zero:
            raise DataError(
                "monetary_value", "must be positive where frequency > 0 (the Gamma-Gamma "
                "model has no zero spend)", n_zero,
                hint="Exclude them from the spend model, e.g. "
                'rfm[(rfm["frequency"] == 0) | (rfm["monetary_value"] > 0)]',
            )
        return repeat

    def _data(self, frame):
        return (frame["frequency"].to_numpy(dtype=float),
                frame["monetary_value"].to_numpy(dtype=float))

    def _loglik(self, params, x, m):
        return loglik(*params, x, m)

    def _loglik_grad(self, params, x, m):
        return np.column_stack(loglik_grad(*params, x, m))

    def _start(self, data, weights):
        x, m = data
        # method of moments on the customers' means: E[m] = pv/(q-1); start q = 2
        mean = np.average(m, weights=weights)
        return np.array([1.0, 2.0, mean])

    def _after_fit(self, rows, weights):
        if len(rows) > 2:
            from scipy import stats  # here, not at import (0.6 s)

            corr = float(stats.pearsonr(rows["frequency"], rows["monetary_value"])[0])
        else:
            corr = float("nan")
        self.frequency_monetary_corr_ = corr
        if abs(corr) > self.corr_warning:
            warnings.warn(
                f"GammaGamma: frequency and monetary_value are correlated (Pearson "
                f"{corr:.2f} among {len(rows)} repeat buyers); the model assumes they are "
                "independent, so expected spend and CLV may be biased.",
                StatisticalWarning,
                stacklevel=3,
            )

    def expected_spend(self, rfm: pd.DataFrame) -> pd.Series:
        """Expected mean transaction value of each customer given the history.

        Customers with ``frequency == 0`` get the population mean ``p v / (q - 1)``.
        """
        par = self._params_for(rfm)
        validate_rfm(rfm, require_monetary=True)
        out = expected_spend(*par, rfm["frequency"].to_numpy(float),
                             rfm["monetary_value"].to_numpy(float))
        return pd.Series(out, index=rfm.index, name="expected_spend")

    def population_mean_spend(self, covariates: pd.DataFrame | dict | None = None):
        """Mean transaction value across customers, ``p v / (q - 1)`` (inf for q <= 1);
        with covariates, that of customers with the given characteristics (a frame: a
        Series, one per row; a dict: a number)."""
        one = isinstance(covariates, dict)
        frame = pd.DataFrame([covariates]) if one else covariates
        p, q, v = self._params_for(frame)
        n = 1 if frame is None else len(frame)
        out = np.broadcast_to(expected_spend(p, q, v, 0.0, 0.0), (n,))
        if frame is None or one:
            return float(out[0])
        return pd.Series(out, index=frame.index, name="population_mean_spend")

    def simulate(self, frequency, random_state=None) -> pd.Series:
        """Mean spend drawn from the model for customers with the given frequencies (with
        covariates: a frame with ``frequency`` and the covariate columns)."""
        par = self._params_for(frequency if isinstance(frequency, pd.DataFrame) else None)
        rng = np.random.default_rng(random_state)
        if isinstance(frequency, pd.DataFrame):  # with covariates: the frame's columns
            frequency = frequency["frequency"]
        index = frequency.index if isinstance(frequency, pd.Series) else None
        values = simulate(*par, np.asarray(frequency, dtype=float), rng)
        return pd.Series(values, index=index, name="monetary_value")
