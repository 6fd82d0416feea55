"""The analysts' CLV formula: average purchase value x frequency x lifespan.

This is the back-of-the-envelope customer lifetime value used in practice and in
marketing texts (e.g. Kumar & Reinartz 2016 [1]_, ch. 6; Farris et al. 2010 [2]_, ch. 5):
historic averages, no discounting and no per-customer prediction. It is the baseline that
the probabilistic models in this package are compared against. For subscriptions, where
churn is observed, see :func:`clvmodels.contractual.formula_contractual` (lifespan = 1 / churn
of the last observed period).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from clvmodels._aggregate import activity_flags, customer_activity, customer_segments
from clvmodels._validate import check_columns, check_no_missing, column_names
from clvmodels.errors import DataError, option
from clvmodels.log import as_log
from clvmodels.rules import check_acquisition_costs, clv_to_cac

__all__ = ["formula_clv", "acquisition_cost", "estimate_lifespan"]

_YEAR = 365.25


def acquisition_cost(
    marketing_spend: float, sales_spend: float, new_customers: float
) -> float | np.ndarray:
    """Customer acquisition cost: (marketing + sales spend) / new customers.

    Parameters
    ----------
    marketing_spend, sales_spend : float or array-like
        Money spent on acquisition over a period (non-negative, finite).
    new_customers : float or array-like
        Customers acquired in the same period (positive).

    Returns
    -------
    float or numpy.ndarray
        Cost per acquired customer, in the currency of the spends.

    Examples
    --------
    >>> acquisition_cost(30_000, 20_000, 1_000)
    50.0
    """
    spends = {"marketing_spend": marketing_spend, "sales_spend": sales_spend}
    for name, value in spends.items():
        arr = np.asarray(value, dtype=float)
        if not np.isfinite(arr).all() or (arr < 0).any():
            raise DataError(None, f"{name} must be finite and non-negative, got {value!r}")
    n = np.asarray(new_customers, dtype=float)
    if not np.isfinite(n).all() or (n <= 0).any():
        raise DataError(None, f"new_customers must be positive, got {new_customers!r}")
    cac = (np.asarray(marketing_spend, float) + np.asarray(sales_spend, float)) / n
    return float(cac) if cac.ndim == 0 else cac


def estimate_lifespan(
    codes: np.ndarray,
    day: np.ndarray,
    end_day: int,
    churn_threshold_days: float = 365.0,
    group: np.ndarray | None = None,
    n_groups: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Expected customer lifespan in years from the observed annual retention rate.

    A customer is *active* at day :math:`t` if they bought in the `churn_threshold_days`
    :math:`\theta` up to and including :math:`t`, i.e. on a day in
    :math:`(t - \theta, t]`. With :math:`\tau` the end of observation, the customers
    active a year earlier, at :math:`\tau - 365`, are at risk; those of them active again
    at :math:`\tau` are retained. Then

    .. math:: r = \frac{\#\{\text{retained}\}}{\#\{\text{at risk}\}}, \quad
        \text{churn} = 1 - r, \quad \text{lifespan} = \frac{1}{1 - r} \text{ years},

    the expected lifetime under a constant annual retention rate :math:`r` (Farris et al.
    2010, section 5.3; Gupta & Lehmann 2003, eq. 2). :math:`\theta` must not exceed 365
    days, or the two activity windows would overlap and one purchase would count as both
    "active before" and "retained".

    Parameters
    ----------
    codes, day : numpy.ndarray
        Customer code (0..n-1) and purchase day number of each transaction.
    end_day : int
        Last day of observation (same day numbering).
    churn_threshold_days : float, default 365
        Inactivity, in days, after which a customer counts as churned (0 < days <= 365).
    group, n_groups : numpy.ndarray of int, int
        Optional group (segment) code per *customer* and the number of groups.

    Returns
    -------
    lifespan, at_risk, retained : numpy.ndarray
        Per group: lifespan in years (NaN where nobody was at risk, ``inf`` where
        everybody was retained) and the two counts.

    Examples
    --------
    Four customers active in the year to day 400, one of them active in the year to 765:
    retention 1/4, churn 3/4, lifespan 4/3 years.

    >>> codes, day = np.array([0, 1, 2, 3, 3]), np.array([100, 200, 300, 400, 700])
    >>> life, at_risk, kept = estimate_lifespan(codes, day, end_day=765)
    >>> round(float(life[0]), 4), at_risk.tolist(), kept.tolist()
    (1.3333, [4], [1])
    """
    theta = _check_threshold(churn_threshold_days)
    n = int(codes.max()) + 1 if group is None else len(group)
    if group is None:
        group = np.zeros(n, dtype=np.int64)
    before, retained = activity_flags(codes, day, end_day, theta, n)
    return _lifespan(before, retained, group, n_groups)


def _check_threshold(churn_threshold_days: float) -> float:
    theta = float(churn_threshold_days)
    if not np.isfinite(theta) or not 0 < theta <= 365:
        raise DataError(None, f"churn_threshold_days must be in (0, 365], got {theta!r}")
    return theta


def _lifespan(
    before: np.ndarray, retained: np.ndarray, group: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`estimate_lifespan` from each customer's activity flags."""
    at_risk = np.bincount(group, weights=before, minlength=n_groups).astype(np.int64)
    kept = np.bincount(group, weights=retained, minlength=n_groups).astype(np.int64)
    lost = at_risk - kept
    life = np.full(n_groups, np.nan)
    np.divide(at_risk, lost, out=life, where=lost > 0)
    life[(lost == 0) & (at_risk > 0)] = np.inf
    return life, at_risk, kept


def _check_fraction(value: float, name: str, upper: float | None) -> float:
    v = float(value)
    if not np.isfinite(v) or v < 0 or (upper is not None and v > upper):
        bounds = f"in [0, {upper:g}]" if upper is not None else "finite and >= 0"
        raise DataError(None, f"{name} must be {bounds}, got {value!r}")
    return v


def _per_segment_cost(cost: float | Mapping, labels: pd.Index, segment: str | None) -> np.ndarray:
    if not isinstance(cost, Mapping | pd.Series):
        check_acquisition_costs(cost)
        return np.full(len(labels), float(cost))
    missing = [s for s in labels if s not in cost]
    if missing:
        raise DataError(segment, f"acquisition_cost has no value for segments {missing}")
    values = np.array([cost[s] for s in labels], dtype=float)
    check_acquisition_costs(values)
    return values


def _segment_codes(
    tx: object, customer: str, segment: str | pd.Series, ids: pd.Index
) -> tuple[np.ndarray, pd.Index]:
    """Segment code of each customer in `ids` and the segment labels (sorted if sortable).

    `segment` is a column of `tx` (one segment per customer, checked) or a Series that maps
    customer ids to segments (every customer of `ids` needs one).
    """
    if isinstance(segment, pd.Series):
        name = segment.name if segment.name is not None else "segment"
        if not segment.index.is_unique:
            raise DataError(
                name, "the segment mapping lists customers more than once",
                int(segment.index.duplicated().sum()),
            )  # fmt: skip
        check_no_missing(segment, name)
        by_customer = segment
    else:
        name, by_customer = segment, customer_segments(tx, customer, segment)
    values = by_customer.reindex(ids)
    n_missing = int(values.isna().sum())
    if n_missing:
        raise DataError(name, f"has no segment for {n_missing} customer(s) of the transaction log")
    try:
        codes, labels = pd.factorize(values.to_numpy(), sort=True)
    except TypeError:
        codes, labels = pd.factorize(values.to_numpy(), sort=False)
    return codes.astype(np.int64, copy=False), pd.Index(labels, name=name)


def formula_clv(
    tx: object,
    customer: str | None = None,
    date: str | None = None,
    amount: str | None = None,
    segment: str | None = None,
    lifespan: float | None = None,
    margin: float = 1.0,
    acquisition_cost: float | Mapping = 0.0,
    *,
    observation_end: object = None,
    churn_threshold_days: float = 365.0,
    allow_returns: bool = False,
    date_format: str | None = None,
) -> pd.DataFrame:
    r"""Customer lifetime value by the analysts' formula, overall or per segment.

    .. math::
        \text{avg\_purchase\_value} = \frac{\text{revenue}}{\text{purchases}},\quad
        \text{purchase\_frequency} =
            \frac{\text{purchases}}{\text{customers} \times \text{years observed}}

        \text{customer\_value} = \text{avg\_purchase\_value} \times
            \text{purchase\_frequency},\quad
        \text{clv} = \text{customer\_value} \times \text{lifespan}

        \text{net\_clv} = \text{clv} \times \text{margin} - \text{acquisition\_cost},
        \quad \text{clv\_to\_cac} = \frac{\text{clv} \times \text{margin}}
            {\text{acquisition\_cost}}

    This is the undiscounted "average value x frequency x lifespan" formula (Kumar &
    Reinartz 2016 [1]_, ch. 6; Farris et al. 2010 [2]_, ch. 5). With ``lifespan = 1 /
    churn`` it is the retention form ``CLV = m / (1 - r)`` of Gupta & Lehmann (2003)
    [3]_, eq. 2, at a zero discount rate.

    **What is a purchase.** As in :func:`clvmodels.rfm_summary`: all transactions of a
    customer on one calendar day are one purchase (amounts summed), and the first
    purchase counts too (here nothing is "repeat"). Transactions after
    `observation_end` are outside the window and not used.

    **Years observed** is the whole window, from the first transaction day in `tx` to
    `observation_end`, both inclusive, in years of 365.25 days, the same for every
    segment. Customers acquired late in the window lower the frequency; that is a
    known bias of the formula.

    **Lifespan** (when `lifespan` is None) is estimated per segment by
    :func:`estimate_lifespan` as ``1 / annual churn rate``: the customers *active* one
    year before `observation_end` (a purchase in the `churn_threshold_days` up to that
    day) are at risk, those of them active again at `observation_end` are retained, the
    retention rate is r = retained / at risk and the lifespan 1 / (1 - r) years (Farris et
    al. 2010 [2]_, section 5.3). The default threshold of 365 days, the "12-month active
    buyer" of direct marketing (Blattberg, Kim & Neslin 2008 [4]_, ch. 2), makes the two
    activity windows the two halves of the last two years; it cannot exceed 365 days.
    The estimate depends on the threshold, because any inactivity rule mistakes slow
    buyers for churners (the reason the BTYD models exist, Schmittlein, Morrison &
    Colombo 1987 [5]_). On the full CDNOW log (window 1997-01-01 to 1998-06-30) the
    lifespan is 1.2616, 1.4043, 1.4837, 1.2949, 1.4238 and 1.5468 years for thresholds
    of 30, 60, 90, 180, 270 and 365 days (tested): within a factor 1.23, and not
    monotone, because the threshold changes both who is at risk and who is retained
    (CDNOW's January 1 buyers drop out of the at-risk set at 180 days). Pass `lifespan`
    explicitly when you know it. The history must reach back more than a year before
    `observation_end` (otherwise nobody is at risk and a DataError is raised); customers
    acquired within the last year are not at risk and do not affect the lifespan.

    Parameters
    ----------
    tx : pandas.DataFrame, or a polars, DuckDB, Dask, pyarrow (any narwhals) frame
        Transaction log, one row per transaction; never modified. Frames of other engines,
        lazy ones included, are validated and aggregated by their own engine, as in
        :func:`clvmodels.rfm_summary`; only per-customer sums reach pandas.
    customer, date, amount : str
        Columns with customer id, transaction date and transaction value. Validated as
        in :func:`clvmodels.rfm_summary`.
    segment : str or pandas.Series, optional
        Column of `tx` with the customer's segment (each customer must be in exactly
        one), or a Series mapping customer ids to segments (its name names the segments),
        e.g. :func:`clvmodels.acquisition_cohorts`; it must cover every customer of the
        window.
    lifespan : float, optional
        Expected customer lifespan in years (>= 0). Default: estimated, see above.
    margin : float, default 1.0
        Profit margin as a fraction in [0, 1] (0.3 for 30%).
    acquisition_cost : float or mapping, default 0.0
        Acquisition cost per customer (>= 0; 0: no acquisition cost), or a mapping from
        segment to cost (the rule: :func:`clvmodels.rules.check_acquisition_costs`).
    observation_end : date-like, optional
        Last day of the window, inclusive. Default: the last transaction day.
    churn_threshold_days : float, default 365
        Inactivity, in days (0 < days <= 365), after which a customer counts as churned;
        used only to estimate the lifespan.
    allow_returns : bool, default False
        Accept negative amounts (returns), netted into revenue.
    date_format : str, optional
        strftime format for string dates.

    Returns
    -------
    pandas.DataFrame
        One row per segment (sorted) or one row ``"all"``; columns ``customers``,
        ``purchases``, ``revenue``, ``avg_purchase_value``, ``purchase_frequency`` (per
        customer per year), ``customer_value`` (per year), ``lifespan`` (years), ``clv``,
        ``net_clv`` (may be negative) and ``clv_to_cac`` (NaN when the acquisition cost
        is 0: no cost, no ratio; :func:`clvmodels.rules.clv_to_cac`).

    Raises
    ------
    DataError
        Invalid transactions (see :func:`clvmodels.rfm_summary`), missing segments, a
        customer in more than one segment, an invalid `margin`, `lifespan` or
        `acquisition_cost`, or no churned customer in a segment when the lifespan has to
        be estimated.

    References
    ----------
    .. [1] Kumar, V. & Reinartz, W. (2016). *Customer Relationship Management: Concept,
       Strategy, and Tools*, 3rd ed. Springer.
    .. [2] Farris, P. W., Bendle, N. T., Pfeifer, P. E. & Reibstein, D. J. (2010).
       *Marketing Metrics*, 2nd ed. Wharton School Publishing.
    .. [3] Gupta, S. & Lehmann, D. R. (2003). Customers as assets. *Journal of Interactive
       Marketing* 17(1), 9-24.
    .. [4] Blattberg, R. C., Kim, B.-D. & Neslin, S. A. (2008). *Database Marketing:
       Analyzing and Managing Customers*. Springer.
    .. [5] Schmittlein, D. C., Morrison, D. G. & Colombo, R. (1987). Counting your
       customers: Who are they and what will they do next? *Management Science* 33(1),
       1-24.

    Examples
    --------
    >>> tx = pd.DataFrame({"id": [1, 1, 2],
    ...                    "day": pd.to_datetime(["2020-01-01", "2020-06-01", "2020-12-30"]),
    ...                    "usd": [10.0, 30.0, 20.0]})
    >>> out = formula_clv(tx, "id", "day", "usd", lifespan=2.0, margin=0.5,
    ...                   acquisition_cost=10.0)
    >>> out[["customers", "purchases", "revenue", "clv", "net_clv", "clv_to_cac"]].round(4)
         customers  purchases  revenue      clv  net_clv  clv_to_cac
    all          2          3     60.0  60.0411  20.0205      3.0021
    """
    margin = _check_fraction(margin, "margin", 1.0)
    if lifespan is not None:
        lifespan = _check_fraction(lifespan, "lifespan", None)
    threshold = _check_threshold(churn_threshold_days) if lifespan is None else None
    log = as_log(tx, customer, date, amount, observation_end=observation_end,
                 allow_returns=allow_returns, date_format=date_format)  # fmt: skip
    if log.amount is None:
        raise TypeError("formula_clv() needs amount= (or a TransactionLog with an amount)")
    customer, date, amount = log.customer, log.date, log.amount
    if segment is None and log.segment is not None and log is tx:
        segment = log.segment
    if isinstance(segment, str):
        check_columns(column_names(log), [segment], what="transaction log")
    tx = log
    act = customer_activity(
        tx, customer, date, amount, observation_end, threshold,
        allow_returns=allow_returns, date_format=date_format,
    )  # fmt: skip
    if segment is None:
        seg_of, labels = np.zeros(len(act.ids), dtype=np.int64), pd.Index(["all"])
    else:
        seg_of, labels = _segment_codes(tx, customer, segment, act.ids)
    k = len(labels)
    customers = np.bincount(seg_of, minlength=k)
    purchases = np.bincount(seg_of, weights=act.n_days, minlength=k)
    revenue = np.bincount(seg_of, weights=act.total, minlength=k)
    years = (act.end_day - act.first_day + 1) / _YEAR
    if lifespan is None:
        life, at_risk, kept = _lifespan(act.before, act.retained, seg_of, k)
        for bad, why in [
            (at_risk == 0, f"nobody was active in the {threshold:g} days up to one year "
             "before observation_end"),
            ((at_risk > 0) & (at_risk == kept), "nobody churned (all active customers were "
             "active again in the last year)"),
        ]:  # fmt: skip
            if bad.any():
                names = [labels[i] for i in np.flatnonzero(bad)]
                raise DataError(
                    labels.name if segment is not None else None,
                    f"cannot estimate the lifespan of segments {names}: {why}",
                    int(customers[bad].sum()),
                    hint=f"Pass the lifespan in years explicitly, e.g. {option('lifespan', 3.0)}",
                )
    else:
        life = np.full(k, lifespan)
    cac = _per_segment_cost(acquisition_cost, labels, labels.name)
    avg_value = revenue / purchases
    frequency = purchases / customers / years
    value = avg_value * frequency
    clv = value * life
    gross = clv * margin
    ratio = clv_to_cac(gross, cac)  # NaN where there is no acquisition cost
    return pd.DataFrame(
        {
            "customers": customers.astype(np.int64),
            "purchases": purchases.astype(np.int64),
            "revenue": revenue,
            "avg_purchase_value": avg_value,
            "purchase_frequency": frequency,
            "customer_value": value,
            "lifespan": life,
            "clv": clv,
            "net_clv": gross - cac,
            "clv_to_cac": ratio,
        },
        index=labels,
    )
