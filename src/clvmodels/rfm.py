"""Transaction logs to RFM frames: :func:`rfm_summary` and :func:`calibration_holdout`.

Conventions (those of Fader, Hardie & Lee 2005 [1]_ and of the CDNOW reference data):

* Purchases are bucketed by **calendar day**; all transactions of one customer on one day
  are one purchase (amounts summed). Times of day are ignored. Time-zone-aware dates are
  bucketed by their calendar day in their own time zone (their wall-clock date).
* A customer's first purchase day is time 0 and is not counted: ``frequency`` is the
  number of *later* distinct purchase days, ``recency`` the time from the first to the
  last purchase day, ``T`` the time from the first purchase day to ``observation_end``,
  ``monetary_value`` the mean amount of the repeat purchase days (0 if there are none).
* ``observation_end`` is a calendar day and is **inclusive**: transactions on that day
  count, transactions after it are outside the observation window and are left out by
  definition (customers whose first purchase is after it are not in the output). A time
  of day on ``observation_end`` is ignored. With these rules the CDNOW customer 1 (first
  purchase 1997-01-01) has ``T = 272 / 7 = 38.857`` weeks at end 1997-09-30, as in [1]_.
* Times are ``days / unit``: ``"D"`` 1, ``"W"`` 7, ``"M"`` 30.4375, ``"Y"`` 365.25 days,
  or any positive number of days.

Relation to ``lifetimes`` 0.11.3: ``summary_data_from_transaction_data(...,
freq="D", freq_multiplier=k)`` gives the same frame as ``unit=k`` (to rounding; the test
suite checks 1e-9 on CDNOW), and it too counts ``observation_period_end`` inclusively and
measures ``T`` to the start of that day. Its ``freq="W"`` is different: it buckets dates
into calendar weeks (Monday to Sunday) and counts whole weeks, so one purchase per week
at most and integer ``recency``/``T``; ``unit="W"`` here is days / 7 as in the papers.
Its ``calibration_and_holdout_data`` differs in two ways: ``monetary_value_holdout`` is
the mean of the raw holdout transactions, not of the merged days (here: merged days, as
for calibration), and it compares raw timestamps with midnight of
``calibration_period_end`` and ``observation_period_end``, so a purchase at 10:00 on the
calibration end day falls into the holdout and one at 10:00 on the last day is dropped
(here: whole calendar days, the calibration end day is calibration and the last day is
holdout). On date-only data such as CDNOW only the first difference matters.

Engines. A pandas frame takes a vectorised numpy path (one sort of an int64
customer-day key; 17x faster than lifetimes on 5M rows). Any other frame narwhals
supports (polars ``DataFrame``/``LazyFrame``, DuckDB relation, Dask ``DataFrame``,
pyarrow ``Table``, ...) is summarised by its own engine with one narwhals query (group by
customer and day, group by customer, one join for the first day's amount), validated by
counts the engine computes (:func:`clvmodels._validate.engine_transactions`); only the
per-customer result is collected. Both paths produce the same per-customer purchase-day
statistics, from which one set of formulas (:func:`_rfm_frame`, :func:`_holdout_frame`)
builds the output, and the test suite holds them equal to 1e-12. (narwhals on pandas was
measured 7x slower than the numpy path on 5M rows, hence the two paths.)

References
----------
.. [1] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting your customers" the
   easy way: An alternative to the Pareto/NBD model. *Marketing Science* 24(2), 275-284.
"""

from __future__ import annotations

import narwhals as nw
import numpy as np
import pandas as pd

from clvmodels._validate import AMOUNT, DAY, parse_cutoff
from clvmodels.errors import DataError
from clvmodels.log import (
    Daily,
    EngineWindow,
    _as_date,
    _day_number,
    _iso,
    as_log,
    collect_by_customer,
)

__all__ = ["rfm_summary", "calibration_holdout", "frame_unit", "unit_days", "UNIT_NAMES"]

# the one table of time units: code -> (days, name)
_UNITS = {"D": (1.0, "days"), "W": (7.0, "weeks"), "M": (30.4375, "months"),
          "Y": (365.25, "years")}  # fmt: skip
_UNIT_DAYS = {code: days for code, (days, _) in _UNITS.items()}
UNIT_NAMES = {code: name for code, (_, name) in _UNITS.items()}


def unit_days(unit: str | float) -> float:
    """Length of a time unit in days: "D" 1, "W" 7, "M" 30.4375, "Y" 365.25, or a number."""
    if isinstance(unit, str):
        if unit not in _UNIT_DAYS:
            raise ValueError(f"unit must be one of {sorted(_UNIT_DAYS)} or days; got {unit!r}")
        return _UNIT_DAYS[unit]
    if isinstance(unit, bool) or not isinstance(unit, int | float | np.number):
        raise ValueError(f"unit must be a string or a positive number of days; got {unit!r}")
    if not np.isfinite(unit) or unit <= 0:
        raise ValueError(f"unit must be a positive number of days; got {unit!r}")
    return float(unit)


def _with_unit(frame: pd.DataFrame, unit: str | float) -> pd.DataFrame:
    """Record the frame's time unit in ``frame.attrs`` (see :func:`frame_unit`)."""
    frame.attrs["unit"] = unit
    return frame


def frame_unit(frame: pd.DataFrame, unit: str | float | None = None) -> str | float:
    """The time unit of an RFM or holdout frame: `unit` if given, else the one the frame
    records (``frame.attrs["unit"]``, set by :func:`rfm_summary` and
    :func:`calibration_holdout`), else "W" (their default) for frames built by hand."""
    if unit is None:
        unit = getattr(frame, "attrs", {}).get("unit", "W")
    unit_days(unit)
    return unit


def log_window(
    tx: object,
    customer: str | None,
    date: str | None,
    amount: str | None,
    observation_end: object,
    **rules_kw,
) -> Daily | EngineWindow:
    """`tx` as a :class:`~clvmodels.TransactionLog` (made from a raw frame and these
    columns unless it is one), cut at `observation_end` (None: the last day)."""
    log = as_log(tx, customer, date, amount, observation_end=observation_end, **rules_kw)
    return log.window(observation_end)


def per_customer(
    codes: np.ndarray, day: np.ndarray, amount: np.ndarray | None, n: int
) -> dict[str, np.ndarray]:
    """Per-customer purchase-day statistics, fully vectorised.

    Returns arrays of length `n`: ``n_days`` (distinct purchase days, 0 if no rows),
    ``first`` and ``last`` day (0 where ``n_days == 0``), and if `amount` is given
    ``total`` (sum of all amounts) and ``repeat`` (sum of the amounts after the first
    day). Same-day rows are found by sorting one int64 key ``code * span + day``; each
    customer's block of sorted keys is located with ``searchsorted``.
    """
    out: dict[str, np.ndarray] = {"first": np.zeros(n, np.int64), "last": np.zeros(n, np.int64)}
    if amount is not None:
        out["total"] = np.bincount(codes, weights=amount, minlength=n).astype(float)
    if len(day) == 0:
        out["n_days"] = np.zeros(n, np.int64)
        if amount is not None:
            out["repeat"] = np.zeros(n)
        return out
    lo = int(day.min())
    span = int(day.max()) - lo + 1
    if n * span >= 2**62:  # 1e12 customers over 10,000 years would still fit
        raise ValueError("too many customers x days for an int64 key")
    key = codes * span
    key += day
    key -= lo
    key.sort()
    key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    base = np.arange(n + 1, dtype=np.int64) * span
    bounds = np.searchsorted(key, base)
    n_days = np.diff(bounds)
    has = np.flatnonzero(n_days)
    out["first"][has] = key[bounds[has]] - base[has] + lo
    out["last"][has] = key[bounds[has + 1] - 1] - base[has] + lo
    out["n_days"] = n_days
    if amount is not None:
        on_first = day == out["first"][codes]
        first_day = np.bincount(codes[on_first], weights=amount[on_first], minlength=n)
        out["repeat"] = out["total"] - first_day
    return out


def _mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """total / count, 0 where count is 0."""
    return np.divide(total, count, out=np.zeros(len(total)), where=count > 0)


def _rfm_frame(stats: dict[str, np.ndarray], end_day: int, days: float) -> dict[str, np.ndarray]:
    """The RFM columns from per-customer purchase-day statistics (every engine's path)."""
    frequency = stats["n_days"] - 1
    cols = {
        "frequency": frequency.astype(np.int64),
        "recency": (stats["last"] - stats["first"]) / days,
        "T": (end_day - stats["first"]) / days,
    }
    if "repeat" in stats:
        cols["monetary_value"] = _mean(stats["repeat"], frequency)
    return cols


def _holdout_frame(
    ids: pd.Index,
    cal: dict[str, np.ndarray],
    hold: dict[str, np.ndarray],
    cal_day: int,
    end_day: int,
    days: float,
) -> pd.DataFrame:
    """The calibration/holdout frame from both periods' statistics (every engine's path)."""
    cols = _rfm_frame(cal, cal_day, days)
    cols["frequency_holdout"] = hold["n_days"].astype(np.int64)
    if "total" in hold:
        cols["monetary_value_holdout"] = _mean(hold["total"], hold["n_days"])
    cols["duration_holdout"] = np.full(len(ids), (end_day - cal_day) / days)
    keep = cal["n_days"] > 0
    return pd.DataFrame({k: v[keep] for k, v in cols.items()}, index=ids[keep])


def _calibration_errors(date: str, cal_day: int, end_day: int, first_day: int, n_rows):
    """The DataError for a calibration_end that leaves no calibration period, or None.

    ``n_rows`` (rows in the observation window) is a callable: only counted on error."""
    if cal_day >= end_day:
        return DataError(
            None,
            f"calibration_end {_iso(cal_day)} must be before observation_end {_iso(end_day)}",
        )
    if first_day > cal_day:
        return DataError(
            date,
            f"all transactions in the observation window are after calibration_end "
            f"{_iso(cal_day)} (first is {_iso(first_day)})",
            n_rows(),
        )
    return None


# --- other engines (polars, DuckDB, Dask, pyarrow...): one narwhals query --------------


def _engine_stats(
    w: EngineWindow, customer: str, cal_day: int | None, with_amount: bool
) -> tuple[pd.Index, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-customer purchase-day statistics computed by the frame's own engine.

    The same statistics as :func:`per_customer` (``n_days``, ``first``, ``last``,
    ``total``, ``repeat``) for the period up to `cal_day` (the whole window if None), and
    ``n_days``/``total`` of the days after it. Two aggregations (by customer and day, then
    by customer) and one join (the amount of each customer's first day); only the
    per-customer result is collected.
    """
    day = nw.col(DAY)
    daily = (
        w.rows()
        .group_by(customer, DAY)
        .agg(nw.col(AMOUNT).sum() if with_amount else nw.len().alias("__n"))
    )
    if cal_day is None:
        aggs = {"n_days": nw.len(), "first": day.min(), "last": day.max()}
        if with_amount:
            aggs["total"] = nw.col(AMOUNT).sum()
    else:
        in_cal = day <= _as_date(cal_day)
        extra = {"__in": in_cal.cast(nw.Int64), "__cal_day": nw.when(in_cal).then(day)}
        if with_amount:
            amt = nw.col(AMOUNT)
            extra["__cal_amt"] = nw.when(in_cal).then(amt).otherwise(nw.lit(0.0))
            extra["__hold_amt"] = nw.when(in_cal).then(nw.lit(0.0)).otherwise(amt)
        daily = daily.with_columns(**extra)
        aggs = {
            "n_days": nw.col("__in").sum(),
            "n_all": nw.len(),
            "first": day.min(),
            "last": nw.col("__cal_day").max(),
        }
        if with_amount:
            aggs |= {"total": nw.col("__cal_amt").sum(), "hold": nw.col("__hold_amt").sum()}
    per = daily.group_by(customer).agg(**aggs)
    if cal_day is not None:  # customers first seen in the holdout are not in the cohort
        per = per.filter(nw.col("first") <= _as_date(cal_day))
    if with_amount:
        first_day = daily.select(
            nw.col(customer), day.alias("first"), nw.col(AMOUNT).alias("__first_amt")
        )
        per = per.join(first_day, on=[customer, "first"], how="inner")
    ids, col = collect_by_customer(per, customer)
    n_days = col("n_days", np.int64)
    cal = {"n_days": n_days, "first": col("first", "day"), "last": col("last", "day")}
    hold = {}
    if cal_day is not None:
        hold["n_days"] = col("n_all", np.int64) - n_days
    if with_amount:
        cal["total"] = col("total")
        cal["repeat"] = cal["total"] - col("__first_amt")
        if cal_day is not None:
            hold["total"] = col("hold")
    return ids, cal, hold


def rfm_summary(
    tx: object,
    customer: str | None = None,
    date: str | None = None,
    amount: str | None = None,
    observation_end: object = None,
    unit: str | float = "W",
    *,
    allow_returns: bool = False,
    date_format: str | None = None,
    timezone: str = "UTC",
) -> pd.DataFrame:
    """Summarise a transaction log into an RFM frame (frequency, recency, T, monetary value).

    The conventions (calendar-day buckets, first purchase at time 0, inclusive
    `observation_end`) are those of Fader, Hardie & Lee (2005); see the module docstring.

    Parameters
    ----------
    tx : TransactionLog, pandas.DataFrame, or a polars, DuckDB, Dask, pyarrow frame
        One row per transaction. Never modified. Frames of other engines, lazy ones
        included, are summarised by their own engine; only the per-customer result is
        collected (see the module docstring). There, string dates are parsed by the
        engine, which stops at the first bad value (the error then has no row count).
    customer : str
        Column with the customer id (any hashable values, none missing).
    date : str
        Column with the transaction date: datetime64 (naive or time-zone aware), or
        strings / date objects, which are parsed strictly (see `date_format`).
    amount : str, optional
        Column with the transaction value (finite numbers). Adds ``monetary_value``.
    observation_end : date-like, optional
        Last day of the observation window, inclusive. Default: the last transaction day.
        Transactions after it are outside the window and are not used.
    unit : {"D", "W", "M", "Y"} or float, default "W"
        Time unit of ``recency`` and ``T``: days, weeks (7 days), months (30.4375 days),
        years (365.25 days), or a positive number of days.
    allow_returns : bool, default False
        Accept negative amounts; they are netted with the customer's other transactions
        of the same day. A day with a transaction row is a purchase day even if its net
        amount is <= 0, so ``monetary_value`` may be negative; remove return-only rows
        first if they should not count as purchases.
    date_format : str, optional
        strftime format for string dates (default: the format inferred from most of the
        first 1,000 values; ``"ISO8601"`` for ISO strings of varying precision).
    timezone : str, default "UTC"
        Zone of the calendar days: timestamps with a UTC offset or time zone are
        converted to it first (see :class:`~clvmodels.TransactionLog`).

    With a :class:`~clvmodels.TransactionLog` as `tx`, the columns and the rules
    (`allow_returns`, `date_format`, `timezone`) are the log's; `amount` defaults to it.

    Returns
    -------
    pandas.DataFrame
        Indexed by customer id (sorted when the ids are sortable), one row per customer
        with a purchase on or before `observation_end`; columns ``frequency`` (int64),
        ``recency``, ``T`` and, if `amount` is given, ``monetary_value`` (float64).
        Customers first seen on `observation_end` itself have ``T = 0``: they are kept
        (no customer disappears without notice); they add nothing to a model's
        likelihood and get the new-customer predictions.

    Raises
    ------
    DataError
        Missing column, empty log, missing customer ids or dates, unparseable dates,
        non-numeric / missing / infinite / negative amounts, `observation_end` before
        the first transaction, or an aware `observation_end` with naive dates.

    Examples
    --------
    >>> tx = pd.DataFrame({
    ...     "id": [1, 1, 1, 2],
    ...     "day": pd.to_datetime(["2020-01-01", "2020-01-08", "2020-01-08", "2020-01-15"]),
    ...     "usd": [10.0, 5.0, 7.0, 3.0]})
    >>> rfm_summary(tx, "id", "day", "usd", observation_end="2020-01-29")
    ... # doctest: +NORMALIZE_WHITESPACE
        frequency  recency    T  monetary_value
    id
    1           1      1.0  4.0            12.0
    2           0      0.0  2.0             0.0
    """
    days = unit_days(unit)
    log = as_log(tx, customer, date, amount, observation_end=observation_end,
                 allow_returns=allow_returns, date_format=date_format,
                 timezone=timezone)  # fmt: skip
    w = log.window(observation_end)
    with_amount = log.amount is not None
    if isinstance(w, Daily):  # the vectorised numpy path (see module docstring)
        stats = per_customer(w.codes, w.day, w.amount, len(w.ids))
        ids = w.ids
    else:  # any other engine, in that engine
        ids, stats, _ = _engine_stats(w, log.customer, None, with_amount)
    return _with_unit(pd.DataFrame(_rfm_frame(stats, w.end_day, days), index=ids), unit)


def calibration_holdout(
    tx: object,
    customer: str | None = None,
    date: str | None = None,
    amount: str | None = None,
    calibration_end: object = None,
    observation_end: object = None,
    unit: str | float = "W",
    *,
    allow_returns: bool = False,
    date_format: str | None = None,
    timezone: str = "UTC",
) -> pd.DataFrame:
    """RFM frame for a calibration period plus what each customer did in the holdout.

    The calibration period runs to `calibration_end` (inclusive), the holdout from the
    next day to `observation_end` (inclusive). Only customers whose first purchase falls
    in the calibration period are included; customers first seen in the holdout are not
    (by definition they are not in the calibration cohort). Same-day purchases are merged
    in both periods, as in :func:`rfm_summary`.

    Parameters
    ----------
    tx, customer, date, amount, unit, allow_returns, date_format, timezone
        As in :func:`rfm_summary` (a :class:`~clvmodels.TransactionLog` too).
    calibration_end : date-like
        Last day of the calibration period (required).
    observation_end : date-like, optional
        Last day of the holdout period. Default: the last transaction day.

    Returns
    -------
    pandas.DataFrame
        Indexed by customer id: ``frequency``, ``recency``, ``T`` (and
        ``monetary_value``) of the calibration period, ``frequency_holdout`` (number of
        distinct purchase days in the holdout, int64), ``monetary_value_holdout`` (mean
        amount of those days, 0 if none; only with `amount`) and ``duration_holdout``
        (length of the holdout, ``(observation_end - calibration_end) / unit``).

    Raises
    ------
    DataError
        As :func:`rfm_summary`, and when `calibration_end` is not before
        `observation_end` or before the first transaction.

    Examples
    --------
    >>> tx = pd.DataFrame({
    ...     "id": [1, 1, 1, 2],
    ...     "day": pd.to_datetime(["2020-01-01", "2020-01-08", "2020-01-20", "2020-01-15"]),
    ...     "usd": [10.0, 5.0, 7.0, 3.0]})
    >>> cal = calibration_holdout(tx, "id", "day", "usd", calibration_end="2020-01-15",
    ...                           observation_end="2020-01-29", unit="D")
    >>> cal.iloc[:, :4]  # doctest: +NORMALIZE_WHITESPACE
        frequency  recency     T  monetary_value
    id
    1           1      7.0  14.0             5.0
    2           0      0.0   0.0             0.0
    >>> cal.iloc[:, 4:]  # doctest: +NORMALIZE_WHITESPACE
        frequency_holdout  monetary_value_holdout  duration_holdout
    id
    1                   1                     7.0              14.0
    2                   0                     0.0              14.0

    Customer 2 was first seen on `calibration_end`, so T = 0 (see :func:`rfm_summary`).
    """
    if calibration_end is None:
        raise TypeError("calibration_holdout() missing required argument 'calibration_end'")
    days = unit_days(unit)
    log = as_log(tx, customer, date, amount, observation_end=observation_end,
                 allow_returns=allow_returns, date_format=date_format,
                 timezone=timezone)  # fmt: skip
    w = log.window(observation_end)
    cal_day = _day_number(parse_cutoff(calibration_end, "calibration_end", w.tz))
    error = _calibration_errors(log.date, cal_day, w.end_day, w.first_day, w.n_rows)
    if error is not None:
        raise error
    if isinstance(w, EngineWindow):  # any other engine, in that engine
        ids, cal, hold = _engine_stats(w, log.customer, cal_day, log.amount is not None)
        return _with_unit(_holdout_frame(ids, cal, hold, cal_day, w.end_day, days), unit)
    in_cal = w.day <= cal_day
    n = len(w.ids)
    periods = []
    for rows in (in_cal, ~in_cal):
        amounts = w.amount[rows] if w.amount is not None else None
        periods.append(per_customer(w.codes[rows], w.day[rows], amounts, n))
    return _with_unit(_holdout_frame(w.ids, *periods, cal_day, w.end_day, days), unit)
