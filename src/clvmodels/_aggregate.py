"""The small aggregates of a transaction log that the formula, the tracking plots and the
report need, from a pandas frame or from a frame of another engine, never more than one
row per customer.

Each function has two paths that return the same numbers, as :func:`clvmodels.rfm_summary`
does: a pandas frame goes through the vectorised numpy path (:func:`clvmodels.rfm.prepare`),
any other frame narwhals supports (a DuckDB relation over a Parquet or CSV file, polars,
Dask, ...) is validated and aggregated by its own engine
(:func:`clvmodels.rfm.log_window`), and only the result is collected: one row per customer
(first purchase day, purchase days, revenue, activity, segment), per day (repeat purchases)
or a single row (totals). The formulas built on these aggregates live with their public
functions (:mod:`clvmodels.formula`, :mod:`clvmodels.compare`, :mod:`clvmodels.plotting`).
"""

from __future__ import annotations

from dataclasses import dataclass

import narwhals as nw
import numpy as np
import pandas as pd

from ._validate import (
    AMOUNT,
    DAY,
    MISSING,
    check_columns,
    check_no_missing,
    column_names,
    to_narwhals,
)
from .errors import DataError
from .log import (
    Daily,
    TransactionLog,
    _as_date,
    _day_numbers_of,
    _factorize,
    as_log,
    collect_by_customer,
)
from .rfm import per_customer

_FIRST, _N = "__clvmodels_first", "__clvmodels_n"


def _window(tx, customer, date, amount, observation_end, **rules_kw):
    """The log (made from `tx` unless it is one) cut at `observation_end`, and the name of
    its customer column."""
    log = as_log(tx, customer, date, amount, observation_end=observation_end, **rules_kw)
    return log.window(observation_end), log.customer


def _scalar_id(value: object) -> object:
    """A numpy scalar as the Python value an engine's literal accepts."""
    return value.item() if isinstance(value, np.generic) else value


def first_purchase_days(
    tx: object, customer: str, date: str, observation_end: object = None
) -> tuple[pd.Index, np.ndarray]:
    """Each customer's first purchase day (day number), customers sorted as by rfm_summary."""
    w, customer = _window(tx, customer, date, None, observation_end)
    if isinstance(w, Daily):
        return w.ids, per_customer(w.codes, w.day, None, len(w.ids))["first"]
    per = w.rows().group_by(customer).agg(nw.col(DAY).min().alias(_FIRST))
    ids, column = collect_by_customer(per, customer)
    return ids, column(_FIRST, "day")


@dataclass(frozen=True)
class RepeatDays:
    """Repeat purchases of a calibration cohort, day by day (see :func:`repeat_purchase_days`).

    ``repeats[k]`` counts the cohort's repeat purchase days on day ``start + k`` (up to
    ``end_day``); ``firsts`` are the cohort's distinct first purchase days and ``counts``
    the customers acquired on each.
    """

    start: int
    end_day: int
    repeats: np.ndarray
    firsts: np.ndarray
    counts: np.ndarray


def repeat_purchase_days(
    tx: object, customer: str, date: str, cal_day: int, observation_end: object = None
) -> RepeatDays:
    """Daily repeat purchases of the customers first seen on or before `cal_day`.

    A repeat purchase is a purchase day after the customer's first one (same-day
    transactions merged), inside the observation window.
    """
    w, customer = _window(tx, customer, date, None, observation_end)
    start, n_days = w.first_day, w.end_day - w.first_day + 1
    if isinstance(w, Daily):
        first = per_customer(w.codes, w.day, None, len(w.ids))["first"]
        cohort = first <= cal_day
        key = np.unique(w.codes.astype(np.int64) * n_days + (w.day - start))
        code, offset = np.divmod(key, n_days)
        repeat = cohort[code] & (offset + start > first[code])
        repeats = np.bincount(offset[repeat], minlength=n_days)
        firsts, counts = np.unique(first[cohort], return_counts=True)
        return RepeatDays(start, w.end_day, repeats.astype(np.int64), firsts, counts)
    daily = w.rows().group_by(customer, DAY).agg(nw.len().alias(_N))
    first = (
        daily.group_by(customer)
        .agg(nw.col(DAY).min().alias(_FIRST))
        .filter(nw.col(_FIRST) <= _as_date(cal_day))
    )
    repeat = (
        daily.join(first, on=customer, how="inner")
        .filter(nw.col(DAY) > nw.col(_FIRST))
        .group_by(DAY)
        .agg(nw.len().alias(_N))
        .collect()
    )
    by_first = first.group_by(_FIRST).agg(nw.len().alias(_N)).collect().sort(_FIRST)
    day = _day_numbers_of(repeat.get_column(DAY))
    repeats = np.bincount(
        day - start, weights=repeat.get_column(_N).to_numpy(), minlength=n_days
    ).astype(np.int64)
    firsts = _day_numbers_of(by_first.get_column(_FIRST))
    counts = np.asarray(by_first.get_column(_N).to_numpy(), dtype=np.int64)
    return RepeatDays(start, w.end_day, repeats, firsts, counts)


def activity_flags(
    codes: np.ndarray, day: np.ndarray, end_day: int, theta: float, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per customer: active a year before `end_day`, and active then and at `end_day`.

    Active at day t: a purchase on a day in (t - theta, t]. See
    :func:`clvmodels.formula.estimate_lifespan`.
    """

    def active(t: int) -> np.ndarray:
        rows = (day > t - theta) & (day <= t)
        return np.bincount(codes[rows], minlength=n) > 0

    before = active(end_day - 365)
    return before, before & active(end_day)


@dataclass(frozen=True)
class Activity:
    """Per-customer purchase days, revenue and activity in the observation window.

    ``ids`` sorted as by rfm_summary; ``n_days`` distinct purchase days, ``total`` revenue;
    ``before``/``retained`` the flags of :func:`activity_flags` (None when not asked for);
    ``first_day``/``end_day`` the window (day numbers).
    """

    ids: pd.Index
    n_days: np.ndarray
    total: np.ndarray
    before: np.ndarray | None
    retained: np.ndarray | None
    first_day: int
    end_day: int


def customer_activity(
    tx: object,
    customer: str,
    date: str,
    amount: str,
    observation_end: object = None,
    theta: float | None = None,
    *,
    allow_returns: bool = False,
    date_format: str | None = None,
) -> Activity:
    """What the formula needs of each customer (with activity flags when `theta` is given)."""
    w, customer = _window(
        tx, customer, date, amount, observation_end,
        allow_returns=allow_returns, date_format=date_format,
    )  # fmt: skip
    if isinstance(w, Daily):
        n = len(w.ids)
        stats = per_customer(w.codes, w.day, w.amount, n)
        flags = (None, None)
        if theta is not None:
            flags = activity_flags(w.codes, w.day, w.end_day, theta, n)
        return Activity(w.ids, stats["n_days"], stats["total"], *flags, w.first_day, w.end_day)
    day = nw.col(DAY)
    daily = w.rows().group_by(customer, DAY).agg(nw.col(AMOUNT).sum())
    aggs = {"n_days": nw.len(), "total": nw.col(AMOUNT).sum()}
    if theta is not None:
        for name, t in (("before", w.end_day - 365), ("after", w.end_day)):
            lo = int(np.floor(t - theta)) + 1  # integer days: day > t - theta
            inside = (day >= _as_date(lo)) & (day <= _as_date(t))
            aggs[name] = inside.cast(nw.Int64).max()
    ids, column = collect_by_customer(daily.group_by(customer).agg(**aggs), customer)
    before = retained = None
    if theta is not None:
        before = column("before", np.int64) > 0
        retained = before & (column("after", np.int64) > 0)
    return Activity(
        ids, column("n_days", np.int64), column("total"), before, retained,
        w.first_day, w.end_day,
    )  # fmt: skip


def purchase_days_of(
    tx: object, customer: str, date: str, customer_id: object, observation_end: object = None
) -> tuple[np.ndarray, int]:
    """One customer's distinct purchase days (sorted day numbers) and the window's end day."""
    w, customer = _window(tx, customer, date, None, observation_end)
    if isinstance(w, Daily):
        code = w.ids.get_indexer([customer_id])[0]
        days = np.unique(w.day[w.codes == code]) if code >= 0 else np.zeros(0, np.int64)
    else:
        rows = w.rows().filter(nw.col(customer) == _scalar_id(customer_id))
        found = rows.group_by(DAY).agg(nw.len().alias(_N)).collect()
        days = np.unique(_day_numbers_of(found.get_column(DAY)))
    if len(days) == 0:
        raise ValueError(f"customer {customer_id!r} not found in column {customer!r}")
    return days, w.end_day


def customer_segments(tx: object, customer: str, segment: str) -> pd.Series:
    """Each customer's segment, checked to be one per customer and never missing.

    Returns a Series indexed by customer id (sorted when sortable; name: `segment`).
    Raises DataError for missing columns, missing customer ids or segments, and customers
    in more than one segment (counting their rows).
    """
    if isinstance(tx, TransactionLog):
        tx, customer = tx._data, tx.customer
    if isinstance(tx, pd.DataFrame):
        check_columns(tx, [customer, segment], what="transaction log")
        check_no_missing(tx[customer], customer)
        check_no_missing(tx[segment], segment)
        cust_codes, ids = _factorize(tx[customer].to_numpy())  # sorted, as the engine's
        seg_codes, labels = pd.factorize(tx[segment])
        n_seg = max(len(labels), 1)
        pairs = np.unique(cust_codes.astype(np.int64) * n_seg + seg_codes)
        n_of = np.bincount(pairs // n_seg, minlength=len(ids))
        multi_customers, multi_rows = int((n_of > 1).sum()), int((n_of > 1)[cust_codes].sum())
        seg_of = np.empty(len(ids), dtype=np.int64)
        seg_of[pairs // n_seg] = pairs % n_seg
        out = pd.Series(np.asarray(labels)[seg_of], index=pd.Index(ids, name=customer))
    else:
        lf = to_narwhals(tx)
        check_columns(column_names(lf), [customer, segment], what="transaction log")
        missing = lf.select(
            c=nw.col(customer).is_null().sum(), s=nw.col(segment).is_null().sum()
        ).collect()
        for column, key in ((customer, "c"), (segment, "s")):
            n = int(missing.get_column(key).to_list()[0] or 0)
            if n:
                raise DataError(column, MISSING, n)
        per = lf.group_by(customer).agg(
            nw.col(segment).n_unique().alias(_N),
            nw.len().alias("__clvmodels_rows"),
            nw.col(segment).min().alias(_FIRST),
        )
        multi = (
            per.filter(nw.col(_N) > 1)
            .select(c=nw.len(), r=nw.col("__clvmodels_rows").sum())
            .collect()
        )
        multi_customers = int(multi.get_column("c").to_list()[0] or 0)
        multi_rows = int(multi.get_column("r").to_list()[0] or 0)
        if not multi_customers:
            ids, column = collect_by_customer(per.select(customer, _FIRST), customer)
            out = pd.Series(column(_FIRST, object), index=ids)
    if multi_customers:
        raise DataError(
            segment,
            f"{multi_customers} customer(s) in more than one segment; each customer must "
            "belong to exactly one",
            multi_rows,
        )
    return out.rename(segment)


def log_totals(
    tx: object, customer: str, date: str, amount: str, observation_end: object = None
) -> tuple[int, float]:
    """Transactions (rows) and revenue inside the observation window."""
    w, customer = _window(tx, customer, date, amount, observation_end)
    if isinstance(w, Daily):
        return len(w.day), float(w.amount.sum())
    out = w.rows().select(n=nw.len(), revenue=nw.col(AMOUNT).sum()).collect()
    return int(out.get_column("n").to_list()[0]), float(out.get_column("revenue").to_list()[0])
