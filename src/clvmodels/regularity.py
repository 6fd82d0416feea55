r"""Regularity of purchase timing: the ``litt`` statistic and the Wheat & Morrison estimate.

The Poisson purchasing of the BG/NBD, MBG/NBD and Pareto/NBD makes inter-transaction
times exponential; the MBG/CNBD-k and BG/CNBD-k (:mod:`clvmodels.models.cnbd`) make them
Erlang-k, more regular the larger k. Two pieces of the transaction log serve them:

* :func:`sum_log_intertransaction_times` -- each customer's ``litt``, the sum of the logs
  of the times between consecutive purchase days, which the CNBD-k likelihoods need
  (:func:`clvmodels.rfm_summary` and :func:`clvmodels.calibration_holdout` add it with
  ``litt=True``);
* :func:`estimate_regularity` -- Wheat & Morrison's [1]_ estimate of a common k from two
  inter-transaction times per customer, a check of whether regularity matters before a
  model is chosen (:func:`clvmodels.plotting.plot_regularity` draws it).

Both use the conventions of :mod:`clvmodels.rfm`: calendar days, same-day purchases merged.

References
----------
.. [1] Wheat, R. D. and Morrison, D. G. (1990). Estimating purchase regularity with two
   interpurchase times. *Journal of Marketing Research* 27(1), 87-93.
.. [2] Platzer, M. BTYDplus (R package), ``estimateRegularity`` and ``elog2cbs``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import DataError

__all__ = [
    "RegularityEstimate",
    "engine_sum_log_intertransaction_times",
    "estimate_regularity",
    "ratio_density",
    "sum_log_intertransaction_times",
]


def _purchase_days(codes: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (customer code, day) pairs sorted by customer then day."""
    codes = np.asarray(codes, dtype=np.int64)
    day = np.asarray(day, dtype=np.int64)
    if day.size == 0:
        return codes, day
    lo = int(day.min())
    span = int(day.max()) - lo + 1
    key = np.unique(codes * span + (day - lo))
    return key // span, key % span + lo


def _gaps(codes: np.ndarray, day: np.ndarray):
    """Customer code and length in days of each inter-transaction time, in order."""
    c, d = _purchase_days(codes, day)
    same = c[1:] == c[:-1]
    return c[1:][same], (d[1:] - d[:-1])[same]


def sum_log_intertransaction_times(
    codes: np.ndarray, day: np.ndarray, n_customers: int, unit_days: float
) -> np.ndarray:
    r"""Each customer's ``litt``: :math:`\sum_{i=1}^{x} \log(t_i - t_{i-1})`.

    ``codes`` (0..n_customers-1) and ``day`` (integer day numbers) give one row per
    transaction; same-day rows are one purchase; times are in days / ``unit_days``
    (the RFM frame's unit). 0 for a customer with fewer than two purchase days. This
    is BTYDplus' ``litt`` ([2]_), the statistic of the CNBD-k likelihoods.
    """
    c, gap = _gaps(codes, day)
    return np.bincount(c, weights=np.log(gap / float(unit_days)), minlength=n_customers)


def engine_sum_log_intertransaction_times(
    rows: object, customer: str, day: str, unit_days: float
) -> pd.Series:
    """:func:`sum_log_intertransaction_times` computed by another engine (polars, DuckDB...).

    ``rows`` is a narwhals lazy frame of transactions whose ``day`` column holds the
    calendar day (midnight datetimes); the gaps come from one window function (the
    previous purchase day of the same customer), summed per customer by the engine, and
    only the per-customer result is collected: a Series of ``litt`` by customer id
    (0 for customers with one purchase day). Engines whose narwhals backend has no ordered
    window function raise NotImplementedError naming the engine.
    """
    import narwhals as nw

    days = rows.select(nw.col(customer), nw.col(day)).unique()
    gap = (nw.col(day) - nw.col(day).shift(1)).over(customer, order_by=day)
    try:
        per = (
            days.with_columns(__gap=gap.dt.total_seconds() / (86_400.0 * float(unit_days)))
            .group_by(customer)
            .agg(litt=nw.col("__gap").log().sum())
            .collect()
        )
    except NotImplementedError as err:
        engine = nw.get_native_namespace(rows).__name__.split(".")[0]
        raise NotImplementedError(
            f"litt=True is not available for {engine} frames (their narwhals backend has no "
            "ordered window function): convert the log to pandas or polars first"
        ) from err
    values = np.nan_to_num(np.asarray(per.get_column("litt").to_numpy(), dtype=float))
    return pd.Series(values, index=per.get_column(customer).to_numpy(), name="litt")


@dataclass(frozen=True, repr=False)
class RegularityEstimate:
    """Wheat & Morrison's estimate of k and the data of its diagnostic plots.

    ``k``: the estimate; ``n_customers``: customers with two or more inter-transaction
    times (the ones used); ``m``: their ratios ITT_1 / (ITT_1 + ITT_2) of the last two;
    ``ratios``: every inter-transaction time of those customers divided by the customer's
    mean one, with ``gaps`` the customer's number of them (see :func:`ratio_density`).
    """

    k: float
    n_customers: int
    m: np.ndarray
    ratios: np.ndarray
    gaps: np.ndarray

    def __repr__(self) -> str:
        return f"RegularityEstimate(k={self.k:.3f}, n_customers={self.n_customers})"


def _wheat_morrison(m: np.ndarray) -> float:
    r"""k from ratios :math:`M = \mathrm{ITT}_1/(\mathrm{ITT}_1+\mathrm{ITT}_2)`, [1]_.

    For Gamma(k, lambda) inter-transaction times (any lambda per customer) M is
    Beta(k, k): mean 1/2, variance :math:`V = 1/(4(2k+1))`, so
    :math:`k = (1 - 4V) / (8V)`. V is estimated by :math:`\overline{(M - 1/2)^2}`, the
    variance about the known mean, which treats ITT_1/(ITT_1+ITT_2) and its mirror alike
    (BTYDplus draws one of the two at random instead: the same in expectation).
    """
    v = float(np.mean((m - 0.5) ** 2))
    if v <= 0:
        return np.inf
    return (1.0 - 4.0 * v) / (8.0 * v)


def estimate_regularity(
    tx: object, customer: str | None = None, date: str | None = None, *,
    observation_end: object = None,
) -> RegularityEstimate:
    """Wheat & Morrison's (1990) estimate of the regularity k of inter-transaction times.

    Each customer with at least three purchase days (same-day purchases merged) gives
    one ratio of their last two inter-transaction times, M = ITT_1 / (ITT_1 + ITT_2),
    which is Beta(k, k) when inter-transaction times are Gamma(k) with a common k
    (:func:`_wheat_morrison`). k close to 1 supports the Poisson models; k clearly
    above 1 (2 for BTYDplus' grocery data) says regularity matters: try
    :class:`clvmodels.MBGCNBD`.

    Parameters
    ----------
    tx : pandas.DataFrame or TransactionLog
        Transaction log, one row per transaction (checked as by :func:`clvmodels.rfm_summary`).
    customer, date : str, optional
        Columns of the customer id and the transaction date (from the log if it is a
        :class:`~clvmodels.TransactionLog`).
    observation_end : date-like, optional
        Last day used (inclusive); default the last transaction day.

    Returns
    -------
    RegularityEstimate
        ``k``, ``n_customers`` (customers with two inter-transaction times) and ``m``
        (their ratios, for :func:`clvmodels.plotting.plot_regularity`). For a log kept
        in another engine (DuckDB, polars) the engine computes the last two
        inter-transaction times per customer and ``ratios``/``gaps`` are empty (they
        have one row per purchase).
    """
    from .log import Daily, as_log  # log.py computes litt with this module

    log = as_log(tx, customer, date, observation_end=observation_end)
    w = log.window(observation_end)
    if not isinstance(w, Daily):
        return _engine_estimate(w, customer)
    c, gap = _gaps(w.codes, w.day)
    last = np.flatnonzero(np.r_[c[1:] != c[:-1], True])  # each customer's last gap
    second = last[(last > 0) & (c[np.maximum(last - 1, 0)] == c[last])]
    if second.size == 0:
        raise DataError(
            customer, "no customer has three or more purchase days (two inter-transaction "
            "times), which the estimate needs", len(w.ids),
        )
    g1, g2 = gap[second - 1].astype(float), gap[second].astype(float)
    m = g1 / (g1 + g2)
    n_gaps = np.bincount(c, minlength=len(w.ids))[c]
    used = n_gaps >= 2
    total = np.bincount(c, weights=gap.astype(float), minlength=len(w.ids))[c]
    ratios = (gap * n_gaps / total)[used]
    return RegularityEstimate(
        k=_wheat_morrison(m), n_customers=int(m.size), m=m, ratios=ratios, gaps=n_gaps[used]
    )


def _engine_estimate(w, customer: str | None) -> RegularityEstimate:
    """:func:`estimate_regularity` of a log in another engine (DuckDB, polars): each
    customer's last two inter-transaction times by ordered window functions, one row per
    customer collected. ``ratios`` and ``gaps`` (every inter-transaction time, for
    :func:`clvmodels.plotting.plot_intertransaction_times`) are left empty: they have one
    row per transaction, which such a log never loads."""
    import narwhals as nw

    from .log import DAY

    who, order = w.customer, dict(order_by=DAY)
    days = w.rows().select(nw.col(who), nw.col(DAY)).unique()
    try:
        per = (
            days.with_columns(
                __gap=(nw.col(DAY) - nw.col(DAY).shift(1)).over(who, **order).dt.total_seconds(),
                __last=nw.col(DAY) == nw.col(DAY).max().over(who))
            .with_columns(__prev=nw.col("__gap").shift(1).over(who, **order))
            .filter(nw.col("__last") & ~nw.col("__prev").is_null())
            .select(nw.col("__prev"), nw.col("__gap"))
            .collect()
        )
    except NotImplementedError as err:
        engine = nw.get_native_namespace(w.rows()).__name__.split(".")[0]
        raise NotImplementedError(
            f"estimate_regularity is not available for {engine} frames (their narwhals "
            "backend has no ordered window function): convert the log to pandas first"
        ) from err
    g1 = np.asarray(per.get_column("__prev").to_numpy(), dtype=float)
    g2 = np.asarray(per.get_column("__gap").to_numpy(), dtype=float)
    if g1.size == 0:
        raise DataError(customer, "no customer has three or more purchase days (two "
                        "inter-transaction times), which the estimate needs", None)
    m = g1 / (g1 + g2)
    empty = np.zeros(0)
    return RegularityEstimate(k=_wheat_morrison(m), n_customers=int(m.size), m=m,
                              ratios=empty, gaps=empty.astype(np.int64))


def ratio_density(y, gaps, k: float) -> np.ndarray:
    r"""Density of the pooled ratios ``ratios`` of :class:`RegularityEstimate` under Gamma(k).

    A customer's n inter-transaction times divided by their mean are n times a
    Dirichlet(k, ..., k) vector, whatever the customer's rate, so each ratio is
    :math:`n\,\mathrm{Beta}(k, (n-1)k)` with density
    :math:`f_n(y) = 	frac{1}{n}\,\mathrm{beta}(y/n; k, (n-1)k)` on (0, n). The pooled
    density is the mixture :math:`\sum_c n_c f_{n_c}(y) / \sum_c n_c` over the customers
    c; ``gaps`` holds one n per ratio (so the weights are already n_c). The reference
    curve of the inter-transaction time plot, exact for any rate heterogeneity.
    """
    from scipy import stats

    y = np.asarray(y, dtype=float)
    n_values, count = np.unique(np.asarray(gaps, dtype=float), return_counts=True)
    dens = stats.beta.pdf(y[:, None] / n_values, k, (n_values - 1) * k) / n_values
    return dens @ (count / count.sum())
