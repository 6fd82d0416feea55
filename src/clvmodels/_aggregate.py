"""The small aggregates of a transaction log that the formula, the tracking plots and the
report need, never more than one row per customer (or per day).

Each function makes the :class:`~clvmodels.TransactionLog` (unless it is given one), cuts it
at the observation end and asks the window for one aggregate; the window computes it with
numpy (pandas input, :class:`clvmodels.log.Daily`) or in its engine
(:class:`clvmodels.log.EngineWindow`), both in :mod:`clvmodels.log`. The formulas built
on these aggregates live with their public functions (:mod:`clvmodels.formula`,
:mod:`clvmodels.compare`, :mod:`clvmodels.plotting`).
"""

from __future__ import annotations

import narwhals as nw
import numpy as np
import pandas as pd

from ._validate import MISSING, check_columns, check_no_missing, column_names, to_narwhals
from .errors import DataError
from .log import (
    _FIRST,
    _N,
    Activity,
    RepeatDays,
    TransactionLog,
    _factorize,
    activity_flags,
    as_log,
    collect_by_customer,
)

__all__ = [
    "Activity", "RepeatDays", "activity_flags", "customer_activity", "customer_segments",
    "first_purchase_days", "log_totals", "purchase_days_of", "repeat_purchase_days",
]  # fmt: skip


def _window(tx, customer, date, amount, observation_end, **rules_kw):
    """The log (made from `tx` unless it is one) cut at `observation_end`."""
    log = as_log(tx, customer, date, amount, observation_end=observation_end, **rules_kw)
    return log.window(observation_end)


def first_purchase_days(
    tx: object, customer: str | None, date: str | None, observation_end: object = None
) -> tuple[pd.Index, np.ndarray]:
    """Each customer's first purchase day (day number), customers sorted as by rfm_summary."""
    return _window(tx, customer, date, None, observation_end).first_days()


def repeat_purchase_days(
    tx: object, customer: str | None, date: str | None, cal_day: int, observation_end=None
) -> RepeatDays:
    """Daily repeat purchases of the customers first seen on or before `cal_day`.

    A repeat purchase is a purchase day after the customer's first one (same-day
    transactions merged), inside the observation window.
    """
    return _window(tx, customer, date, None, observation_end).repeat_days(cal_day)


def customer_activity(
    tx: object,
    customer: str | None,
    date: str | None,
    amount: str | None,
    observation_end: object = None,
    theta: float | None = None,
    *,
    allow_returns: bool = False,
    date_format: str | None = None,
) -> Activity:
    """What the formula needs of each customer (with activity flags when `theta` is given)."""
    w = _window(tx, customer, date, amount, observation_end, allow_returns=allow_returns,
                date_format=date_format)  # fmt: skip
    return w.activity(theta)


def purchase_days_of(
    tx: object, customer: str | None, date: str | None, customer_id: object,
    observation_end: object = None,
) -> tuple[np.ndarray, int]:  # fmt: skip
    """One customer's distinct purchase days (sorted day numbers) and the window's end day."""
    log = as_log(tx, customer, date, observation_end=observation_end)
    w = log.window(observation_end)
    days = w.days_of(customer_id)
    if len(days) == 0:
        raise ValueError(f"customer {customer_id!r} not found in column {log.customer!r}")
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
    tx: object, customer: str | None, date: str | None, amount: str | None,
    observation_end: object = None,
) -> tuple[int, float]:  # fmt: skip
    """Transactions (rows) and revenue inside the observation window."""
    return _window(tx, customer, date, amount, observation_end).totals()
