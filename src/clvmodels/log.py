"""The transaction log, read and checked once: :class:`TransactionLog`.

A :class:`TransactionLog` is a log of any engine (pandas, polars, DuckDB, Dask, pyarrow)
whose columns and rules were checked once, when it was made. It knows its customer,
date, amount (and segment) columns, the time zone its calendar days are taken in, its
duplicates and returns policy, and what it excluded (:attr:`TransactionLog.quality`).
Every function that takes a log (:func:`~clvmodels.rfm_summary`,
:func:`~clvmodels.calibration_holdout`, :func:`~clvmodels.formula_clv`, the plots, ...)
takes a ``TransactionLog``; given a raw frame and column names, they make one.

The log holds its rows in one of two forms, and nothing else in the package asks which:

* a pandas frame becomes integer arrays (customer codes into the sorted ids, calendar
  day numbers, float amounts): :class:`Daily`, the vectorised numpy path;
* any other frame stays in its engine as a narwhals lazy frame of three columns (the
  customer, :data:`DAY`, :data:`AMOUNT`): :class:`EngineWindow`; the engine counts, and
  only results of one row per customer reach pandas.

:meth:`TransactionLog.window` cuts either form at the end of observation. Both forms
have the same aggregate methods (``customer_stats``, ``first_days``, ``repeat_days``,
``activity``, ``days_of``, ``totals``), here side by side, so no other module forks on
the engine. The rules themselves (what a duplicate is, which dates are in the future,
...) are in :mod:`clvmodels.rules`.

Adding a per-customer statistic (such as a sum of log inter-purchase times for
``rfm_summary(..., litt=True)``) is one entry in each form's ``customer_stats`` in this
module: in :func:`per_customer` from the sorted customer-day keys (each customer's days
are one contiguous, sorted block), and in :meth:`EngineWindow.customer_stats` as one more
aggregation of the customer-day frame; :func:`clvmodels.rfm._rfm_frame` turns the
statistic into a column.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import narwhals as nw
import numpy as np
import pandas as pd

from . import rules
from ._validate import (
    AMOUNT,
    DAY,
    STAMP,
    EngineLog,
    _date_values,
    _float_array,
    check_columns,
    check_no_missing,
    engine_transactions,
    parse_cutoff,
)
from .errors import DataError
from .regularity import (
    engine_sum_log_intertransaction_times,
    sum_log_intertransaction_times,
)

__all__ = ["Daily", "EngineWindow", "Quality", "TransactionLog", "as_log"]


# --- day numbers --------------------------------------------------------------------------


def _iso(day: int) -> str:
    """Day number as an ISO date string, for messages."""
    return str(np.datetime64(int(day), "D"))


def _day_number(ts: pd.Timestamp | dt.date) -> int:
    return int(np.datetime64(pd.Timestamp(ts).date(), "D").astype(np.int64))


def _as_date(day: int) -> dt.datetime:
    """Day number as the midnight datetime the engines compare the day column with."""
    return dt.datetime(1970, 1, 1) + dt.timedelta(days=int(day))


def _day_numbers_of(values: nw.Series) -> np.ndarray:
    """A day column collected from any engine as int64 days since 1970-01-01."""
    return np.asarray(values.to_numpy()).astype("datetime64[D]").view(np.int64)


def _factorize(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..n-1 into the sorted unique ids (order of appearance if unorderable).

    Integer ids with a compact range take a counting path (no hashing, no sorting).
    """
    if ids.dtype.kind in "iu" and len(ids):
        lo, hi = int(ids.min()), int(ids.max())
        if hi - lo < 4 * len(ids) + 1_000_000:
            offset = (ids - lo).astype(np.intp, copy=False)
            present = np.bincount(offset, minlength=hi - lo + 1) > 0
            rank = np.cumsum(present) - 1
            return rank[offset], (np.flatnonzero(present) + lo).astype(ids.dtype)
    try:
        codes, uniques = pd.factorize(ids, sort=True)
    except TypeError:  # ids of mixed, unorderable types
        codes, uniques = pd.factorize(ids, sort=False)
    return codes.astype(np.int64, copy=False), uniques


# --- the two forms of a log inside its observation window ---------------------------------


_FIRST, _N = "__clvmodels_first", "__clvmodels_n"


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
class RepeatDays:
    """Repeat purchases of a calibration cohort, day by day (:meth:`Daily.repeat_days`).

    ``repeats[k]`` counts the cohort's repeat purchase days on day ``start + k`` (up to
    ``end_day``); ``firsts`` are the cohort's distinct first purchase days and ``counts``
    the customers acquired on each.
    """

    start: int
    end_day: int
    repeats: np.ndarray
    firsts: np.ndarray
    counts: np.ndarray


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


@dataclass(frozen=True)
class Daily:
    """A validated log inside the observation window, as integer arrays (pandas input).

    ``codes[i]`` indexes ``ids`` (sorted when the ids are sortable); ``day[i]`` is the
    calendar day of row i as days since 1970-01-01; ``tz`` the zone of those days.
    """

    codes: np.ndarray
    ids: pd.Index
    day: np.ndarray
    amount: np.ndarray | None
    end_day: int
    tz: object

    @property
    def first_day(self) -> int:
        """First transaction day inside the window."""
        return int(self.day.min())

    def n_rows(self) -> int:
        """Transactions inside the window."""
        return len(self.day)

    # -- aggregates (EngineWindow has the same methods, computed by the engine) ----------

    def customer_stats(self, cal_day: int | None = None) -> tuple[pd.Index, dict, dict]:
        """Per-customer purchase-day statistics (see :func:`per_customer`) of the period up
        to `cal_day` (the whole window if None) and, with `cal_day`, of the days after it
        (``n_days``, ``total``). Customers are ``ids``; the holdout dict is empty without
        `cal_day`."""
        n = len(self.ids)
        if cal_day is None:
            return self.ids, per_customer(self.codes, self.day, self.amount, n), {}
        periods = []
        in_cal = self.day <= cal_day
        for rows in (in_cal, ~in_cal):
            amounts = self.amount[rows] if self.amount is not None else None
            periods.append(per_customer(self.codes[rows], self.day[rows], amounts, n))
        return self.ids, periods[0], periods[1]

    def first_days(self) -> tuple[pd.Index, np.ndarray]:
        """Each customer's first purchase day."""
        return self.ids, per_customer(self.codes, self.day, None, len(self.ids))["first"]

    def repeat_days(self, cal_day: int) -> RepeatDays:
        """Daily repeat purchases of the customers first seen on or before `cal_day`."""
        start, n_days = self.first_day, self.end_day - self.first_day + 1
        first = self.first_days()[1]
        cohort = first <= cal_day
        key = np.unique(self.codes.astype(np.int64) * n_days + (self.day - start))
        code, offset = np.divmod(key, n_days)
        repeat = cohort[code] & (offset + start > first[code])
        repeats = np.bincount(offset[repeat], minlength=n_days)
        firsts, counts = np.unique(first[cohort], return_counts=True)
        return RepeatDays(start, self.end_day, repeats.astype(np.int64), firsts, counts)

    def activity(self, theta: float | None) -> Activity:
        """Purchase days, revenue and (with `theta`) activity flags per customer."""
        n = len(self.ids)
        stats = per_customer(self.codes, self.day, self.amount, n)
        flags = (None, None)
        if theta is not None:
            flags = activity_flags(self.codes, self.day, self.end_day, theta, n)
        return Activity(self.ids, stats["n_days"], stats["total"], *flags, self.first_day,
                        self.end_day)  # fmt: skip

    def days_of(self, customer_id: object) -> np.ndarray:
        """One customer's distinct purchase days (empty if unknown)."""
        code = self.ids.get_indexer([customer_id])[0]
        return np.unique(self.day[self.codes == code]) if code >= 0 else np.zeros(0, np.int64)

    def totals(self) -> tuple[int, float]:
        """Transactions (rows) and revenue inside the window."""
        return len(self.day), float(self.amount.sum())

    def litt(self, unit_days: float, cal_day: int | None = None) -> pd.Series:
        """Each customer's sum of log inter-transaction times, in days / `unit_days`, of
        the period up to `cal_day` (the whole window if None); by customer id."""
        rows = slice(None) if cal_day is None else self.day <= cal_day
        values = sum_log_intertransaction_times(self.codes[rows], self.day[rows],
                                                len(self.ids), unit_days)
        return pd.Series(values, index=self.ids, name="litt")


@dataclass(frozen=True)
class EngineWindow:
    """A validated log of another engine, cut at the end of observation, still in it.

    ``rows()`` is the lazy frame of the rows on or before ``end_day`` (columns: the
    customer, :data:`DAY` and, with an amount, :data:`AMOUNT`); nothing has been
    collected but the validation's counts.
    """

    log: EngineLog
    end_day: int
    customer: str

    @property
    def first_day(self) -> int:
        """First transaction day inside the window."""
        return self.log.first_day

    @property
    def tz(self) -> str | None:
        return self.log.tz

    def rows(self) -> nw.LazyFrame:
        if self.end_day < self.log.last_day:
            return self.log.frame.filter(nw.col(DAY) <= _as_date(self.end_day))
        return self.log.frame

    def n_rows(self) -> int:
        """Transactions inside the window (counted by the engine, for messages)."""
        if self.end_day >= self.log.last_day:
            return self.log.n_rows
        return int(self.rows().select(nw.len()).collect().item())

    # -- aggregates: those of Daily, each one query run by the engine --------------------

    def customer_stats(self, cal_day: int | None = None) -> tuple[pd.Index, dict, dict]:
        """:meth:`Daily.customer_stats`, by the engine: two aggregations (by customer and
        day, then by customer) and one join (the amount of each customer's first day);
        only the per-customer result is collected."""
        customer, with_amount = self.customer, self.log.has_amount
        day = nw.col(DAY)
        daily = (
            self.rows()
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

    def first_days(self) -> tuple[pd.Index, np.ndarray]:
        """Each customer's first purchase day, by the engine."""
        per = self.rows().group_by(self.customer).agg(nw.col(DAY).min().alias(_FIRST))
        ids, column = collect_by_customer(per, self.customer)
        return ids, column(_FIRST, "day")

    def repeat_days(self, cal_day: int) -> RepeatDays:
        """:meth:`Daily.repeat_days`, by the engine (one row per day is collected)."""
        customer, start = self.customer, self.first_day
        n_days = self.end_day - start + 1
        daily = self.rows().group_by(customer, DAY).agg(nw.len().alias(_N))
        first = (daily.group_by(customer).agg(nw.col(DAY).min().alias(_FIRST))
                 .filter(nw.col(_FIRST) <= _as_date(cal_day)))  # fmt: skip
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
        return RepeatDays(start, self.end_day, repeats, firsts, counts)

    def activity(self, theta: float | None) -> Activity:
        """:meth:`Daily.activity`, by the engine."""
        day = nw.col(DAY)
        daily = self.rows().group_by(self.customer, DAY).agg(nw.col(AMOUNT).sum())
        aggs = {"n_days": nw.len(), "total": nw.col(AMOUNT).sum()}
        if theta is not None:
            for name, t in (("before", self.end_day - 365), ("after", self.end_day)):
                lo = int(np.floor(t - theta)) + 1  # integer days: day > t - theta
                inside = (day >= _as_date(lo)) & (day <= _as_date(t))
                aggs[name] = inside.cast(nw.Int64).max()
        ids, column = collect_by_customer(daily.group_by(self.customer).agg(**aggs),
                                          self.customer)  # fmt: skip
        before = retained = None
        if theta is not None:
            before = column("before", np.int64) > 0
            retained = before & (column("after", np.int64) > 0)
        return Activity(ids, column("n_days", np.int64), column("total"), before, retained,
                        self.first_day, self.end_day)  # fmt: skip

    def days_of(self, customer_id: object) -> np.ndarray:
        """One customer's distinct purchase days, by the engine (empty if unknown)."""
        value = customer_id.item() if isinstance(customer_id, np.generic) else customer_id
        rows = self.rows().filter(nw.col(self.customer) == value)
        found = rows.group_by(DAY).agg(nw.len().alias(_N)).collect()
        return np.unique(_day_numbers_of(found.get_column(DAY)))

    def totals(self) -> tuple[int, float]:
        """Transactions (rows) and revenue inside the window, by the engine."""
        out = self.rows().select(n=nw.len(), revenue=nw.col(AMOUNT).sum()).collect()
        return int(out.get_column("n").to_list()[0]), float(out.get_column("revenue").to_list()[0])

    def litt(self, unit_days: float, cal_day: int | None = None) -> pd.Series:
        """:meth:`Daily.litt`, by the engine (one ordered window function)."""
        rows = self.rows()
        if cal_day is not None:
            rows = rows.filter(nw.col(DAY) <= _as_date(cal_day))
        return engine_sum_log_intertransaction_times(rows, self.customer, DAY, unit_days)


def collect_by_customer(
    per: nw.LazyFrame, customer: str
) -> tuple[pd.Index, Callable[..., np.ndarray]]:
    """Collect a per-customer lazy frame; return the sorted customer ids and a column getter.

    ``column(name, dtype=float64)`` gives a column as a numpy array in the order of the ids
    (sorted when sortable, as on the pandas path); ``column(name, "day")`` a day column as
    day numbers.
    """
    out = per.collect()
    ids = pd.Index(out.get_column(customer).to_numpy(), name=customer)
    try:
        ids, order = ids.sort_values(return_indexer=True)
    except TypeError:  # ids of mixed, unorderable types: order of the result
        order = np.arange(len(ids))

    def column(name: str, dtype: object = np.float64) -> np.ndarray:
        values = out.get_column(name)
        if dtype == "day":
            return _day_numbers_of(values)[order]
        return np.asarray(values.to_numpy(), dtype=dtype)[order]

    return ids, column


def _after_end(date: str, end_day: int, first_day: int, n_rows: int) -> DataError:
    return DataError(
        date,
        f"all transactions are after observation_end {_iso(end_day)} (first is {_iso(first_day)})",
        n_rows,
    )


def _surplus_copies(
    ids: np.ndarray, stamps: np.ndarray, amounts: np.ndarray | None, keep: np.ndarray
) -> np.ndarray:
    """Rows (among `keep`) that repeat an earlier row's customer, timestamp and amount.

    A 64-bit hash of the three values finds the candidate rows with one sort; only rows
    whose hash is shared are compared exactly (pandas ``duplicated``).
    """
    rows = np.flatnonzero(keep)
    if len(rows) < 2:
        return np.zeros(len(keep), dtype=bool)
    codes = pd.factorize(ids[rows])[0].astype(np.uint64)
    h = stamps[rows].astype("datetime64[ns]").view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    h ^= (codes + np.uint64(1)) * np.uint64(0xC2B2AE3D27D4EB4F)
    if amounts is not None:
        bits = (amounts[rows] + 0.0).view(np.uint64)  # + 0.0: -0.0 and 0.0 alike
        h ^= (bits ^ (bits >> np.uint64(29))) * np.uint64(0x165667B19E3779F9)
    sorted_h = np.sort(h)
    shared = sorted_h[1:][sorted_h[1:] == sorted_h[:-1]]
    out = np.zeros(len(keep), dtype=bool)
    if len(shared) == 0:
        return out
    cand = np.flatnonzero(np.isin(h, shared))
    key = {"c": codes[cand], "t": stamps[rows][cand]}
    if amounts is not None:
        key["a"] = amounts[rows][cand] + 0.0
    out[rows[cand[pd.DataFrame(key).duplicated().to_numpy()]]] = True
    return out


# --- data quality -------------------------------------------------------------------------


@dataclass
class Quality:
    """What was read, what the rules found and what was excluded (:attr:`TransactionLog.quality`).

    ``duplicates`` counts the surplus copies of exact duplicate rows (same customer,
    timestamp and amount; not searched, 0, when a function was given a raw frame rather
    than a TransactionLog); ``returns`` the rows with negative amounts (netted against
    the same customer's purchases of that day); ``zero_amounts`` the rows with amount 0
    (kept as purchases); ``offsets_converted`` the rows whose UTC offset was converted to
    ``timezone``; ``excluded`` maps a reason to a number of rows left out.
    """

    rows_read: int
    customers: int
    transactions: int
    first_date: str
    last_date: str
    timezone: str
    duplicates: int = 0
    duplicates_policy: str = "warn"
    returns: int = 0
    zero_amounts: int = 0
    revenue: float | None = None
    offsets_converted: int = 0
    excluded: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The quality summary as short sentences (what ``clvmodels summary`` prints)."""
        out = [
            f"{self.rows_read:,} rows read; {self.transactions:,} transactions of "
            f"{self.customers:,} customers from {self.first_date} to {self.last_date}"
            + (f", revenue {self.revenue:,.2f}" if self.revenue is not None else ""),
            f"calendar days in time zone {self.timezone}"
            + (f" ({self.offsets_converted:,} rows with a UTC offset converted)"
               if self.offsets_converted else ""),
        ]  # fmt: skip
        if self.duplicates:
            kept = "dropped" if self.duplicates_policy == "drop" else "kept"
            out.append(f"{self.duplicates:,} exact duplicate rows (same customer, timestamp "
                       f"and amount) {kept}")  # fmt: skip
        if self.returns:
            out.append(f"{self.returns:,} returns (negative amounts) netted against purchases")
        if self.zero_amounts:
            out.append(f"{self.zero_amounts:,} rows with amount 0 kept as purchases")
        for reason, n in self.excluded.items():
            out.append(f"{n:,} rows excluded: {reason}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def to_frame(self) -> pd.DataFrame:
        """One row per item: the table the report opens with."""
        items = {
            "rows read": f"{self.rows_read:,}",
            "transactions used": f"{self.transactions:,}",
            "customers": f"{self.customers:,}",
            "date range": f"{self.first_date} to {self.last_date}",
            "time zone of calendar days": self.timezone,
            "rows with a UTC offset converted": f"{self.offsets_converted:,}",
            f"exact duplicate rows ({self.duplicates_policy})": f"{self.duplicates:,}",
            "returns (negative amounts)": f"{self.returns:,}",
            "zero amounts (kept)": f"{self.zero_amounts:,}",
        }
        if self.revenue is not None:
            items["revenue"] = f"{self.revenue:,.2f}"
        for reason, n in self.excluded.items():
            items[f"excluded: {reason}"] = f"{n:,}"
        return pd.DataFrame({"value": items}).rename_axis("item")


# --- the log ------------------------------------------------------------------------------


class TransactionLog:
    """A transaction log validated once, over pandas, polars, DuckDB, Dask or pyarrow.

    Parameters
    ----------
    data : DataFrame of any engine narwhals supports, or a TransactionLog
        One row per transaction. Never modified. A pandas frame is turned into integer
        arrays once (the vectorised path); any other frame stays in its engine, which
        computes every count and aggregate (lazy frames stay lazy).
    customer, date : str
        Columns of the customer id and of the transaction timestamp (datetime64, naive
        or aware, or strings parsed strictly: see `date_format`).
    amount : str, optional
        Column of the transaction value (finite numbers).
    segment : str, optional
        Column of each customer's segment (one per customer).
    timezone : str, default "UTC"
        IANA zone in which calendar days are taken: timestamps with a UTC offset (or a
        time zone) are converted to it first; naive timestamps are read as wall-clock
        time in it. Nothing depends on the machine's time zone.
    duplicates : {"warn", "drop", "error"}, default "warn"
        Exact duplicate rows (same customer, timestamp and amount): kept, counted and
        named in a :class:`~clvmodels.errors.DataWarning` and in :attr:`quality`;
        dropped (counted as excluded); or an error.
    allow_returns : bool, default False
        Accept negative amounts; they are netted against the same customer's purchases
        of that day. Without it, a negative amount is an error.
    date_format : str, optional
        strftime format of string dates (default: inferred, see
        :func:`clvmodels._validate.parse_dates`).
    observation_end : date-like, optional
        Last day of observation. Rows after it are excluded and counted. Without it,
        dates after today (in `timezone`) are an error that names them.

    Attributes
    ----------
    quality : Quality
        Rows read, customers, date range, time zone, duplicates, returns, zero amounts,
        rows excluded and why.
    engine : str
        "pandas" for the numpy path, otherwise the engine's module name ("duckdb", ...).

    Examples
    --------
    >>> import clvmodels as cm
    >>> tx = pd.DataFrame({"id": ["007", "7", "007"], "day": ["2020-01-01", "2020-01-05",
    ...                    "2020-01-09"], "usd": [5.0, 7.0, 0.0]})
    >>> log = cm.TransactionLog(tx, customer="id", date="day", amount="usd")
    >>> log.quality.customers, log.quality.zero_amounts
    (2, 1)
    >>> cm.rfm_summary(log, unit="D")["frequency"].to_dict()
    {'007': 1, '7': 0}
    """

    def __init__(
        self,
        data: object,
        customer: str = "customer_id",
        date: str = "date",
        amount: str | None = None,
        segment: str | None = None,
        *,
        timezone: str = "UTC",
        duplicates: str = "warn",
        allow_returns: bool = False,
        date_format: str | None = None,
        observation_end: object = None,
    ):
        if isinstance(data, TransactionLog):
            data = data._data
        rules.check_distinct_columns(customer=customer, date=date, amount=amount,
                                     segment=segment)  # fmt: skip
        rules.check_timezone(timezone)
        rules.check_duplicates_policy(duplicates)
        self.customer, self.date, self.amount, self.segment = customer, date, amount, segment
        self.timezone, self.duplicates, self.allow_returns = timezone, duplicates, allow_returns
        self.date_format = date_format
        self.observation_end = observation_end
        self._data = data
        self._segments: pd.Series | None = None
        self._keep: np.ndarray | None = None  # pandas rows kept (None: all)
        # a raw frame passed to a function is not searched for duplicates (it keeps them,
        # as always; make a TransactionLog to have them counted, once)
        self._count_duplicates = not getattr(self, "_raw_call", False)
        if isinstance(data, pd.DataFrame):
            self.engine = "pandas"
            self._form = self._from_pandas(data)
        else:
            self._form = self._from_engine(data)
            self.engine = type(nw.to_native(self._form.frame)).__module__.split(".")[0]

    def __repr__(self) -> str:
        q = self.quality
        return (f"TransactionLog({q.transactions:,} transactions, {q.customers:,} customers, "
                f"{q.first_date} to {q.last_date}, engine={self.engine!r})")  # fmt: skip

    @property
    def columns(self) -> dict[str, str | None]:
        """The roles and their columns."""
        return {"customer": self.customer, "date": self.date, "amount": self.amount,
                "segment": self.segment}  # fmt: skip

    # -- the pandas path -----------------------------------------------------------------

    def _from_pandas(self, df: pd.DataFrame) -> Daily:
        customer, date, amount = self.customer, self.date, self.amount
        columns = [c for c in (customer, date, amount, self.segment) if c is not None]
        check_columns(df, columns, what="transaction log")
        if len(df) == 0:
            raise rules.empty_error("the transaction log")
        check_no_missing(df[customer], customer)
        stamps = _date_values(df[date], date, self.date_format)
        offsets = 0
        if isinstance(stamps.dtype, pd.DatetimeTZDtype):
            offsets = len(stamps)
            stamps = stamps.dt.tz_convert(self.timezone).dt.tz_localize(None)
        day = stamps.to_numpy().astype("datetime64[D]").view(np.int64)
        amounts = None
        if amount is not None:
            amounts = _float_array(df[amount], amount)
            n_neg = int((amounts < 0).sum())
            if n_neg and not self.allow_returns:
                raise rules.returns_error(amount, n_neg)
        ids = df[customer].to_numpy()
        keep = np.ones(len(df), dtype=bool)
        excluded: dict[str, int] = {}
        end_day = self._end_day(day, date)
        if end_day is not None:
            after = day > end_day
            if after.any():
                excluded[f"after observation_end {_iso(end_day)}"] = int(after.sum())
                keep &= ~after
        dup = np.zeros(len(keep), dtype=bool)
        if self._count_duplicates:
            dup = _surplus_copies(ids, stamps.to_numpy(), amounts, keep)
        n_dup = int(dup.sum())
        rules.check_duplicates(n_dup, self.duplicates, customer)
        if n_dup and self.duplicates == "drop":
            keep &= ~dup
            excluded["exact duplicates dropped"] = n_dup
        if not keep.all():
            if not keep.any():
                raise _after_end(date, end_day, int(day.min()), len(day))
            ids, day = ids[keep], day[keep]
            amounts = amounts[keep] if amounts is not None else None
        self._keep = None if keep.all() else keep
        codes, uniques = _factorize(ids)
        form = Daily(codes, pd.Index(uniques, name=customer), day, amounts,
                     int(day.max()), self.timezone)  # fmt: skip
        self.quality = Quality(
            rows_read=len(df),
            customers=len(uniques),
            transactions=len(day),
            first_date=_iso(day.min()),
            last_date=_iso(day.max()),
            timezone=self.timezone,
            duplicates=n_dup,
            duplicates_policy=self.duplicates,
            returns=int((amounts < 0).sum()) if amounts is not None else 0,
            zero_amounts=int((amounts == 0).sum()) if amounts is not None else 0,
            revenue=float(amounts.sum()) if amounts is not None else None,
            offsets_converted=offsets,
            excluded=excluded,
        )
        return form

    def _end_day(self, day_or_bounds, date: str) -> int | None:
        """The observation end as a day number (None: not given); checks the future rule."""
        if self.observation_end is not None:
            return _day_number(parse_cutoff(self.observation_end, "observation_end",
                                            self.timezone))  # fmt: skip
        limit = rules.today(self.timezone)
        if isinstance(day_or_bounds, np.ndarray):
            future = day_or_bounds[day_or_bounds > _day_number(limit)]
            n, first = len(future), [_iso(d) for d in np.unique(future)[:3]]
        else:
            n, first = day_or_bounds(_day_number(limit))
        rules.check_future(date, n, first, limit, given=False)
        return None

    # -- any other engine ----------------------------------------------------------------

    def _from_engine(self, data: object) -> EngineLog:
        customer, date, amount = self.customer, self.date, self.amount
        log = engine_transactions(
            data, customer, date, amount, allow_returns=self.allow_returns,
            date_format=self.date_format, timezone=self.timezone, segment=self.segment,
        )  # fmt: skip
        lf = log.frame
        excluded: dict[str, int] = {}

        def future(limit_day: int):
            rows = lf.filter(nw.col(DAY) > _as_date(limit_day))
            n = int(rows.select(nw.len()).collect().item())
            first = []
            if n:
                days = rows.select(nw.col(DAY)).unique().sort(DAY).head(3).collect()
                first = [_iso(d) for d in _day_numbers_of(days.get_column(DAY))]
            return n, first

        end_day = self._end_day(future, date)
        if end_day is not None and end_day < log.last_day:
            n_after = future(end_day)[0]
            if n_after == log.n_rows:
                raise _after_end(date, end_day, log.first_day, log.n_rows)
            excluded[f"after observation_end {_iso(end_day)}"] = n_after
            lf = lf.filter(nw.col(DAY) <= _as_date(end_day))
        subset = [customer, STAMP] + ([AMOUNT] if amount is not None else [])
        n_dup = 0 if not self._count_duplicates else int(
            lf.group_by(*subset).agg(nw.len().alias("__n")).filter(nw.col("__n") > 1)
            .select((nw.col("__n") - 1).sum()).collect().item() or 0
        )  # fmt: skip
        rules.check_duplicates(n_dup, self.duplicates, customer)
        if n_dup and self.duplicates == "drop":
            lf = lf.unique(subset=subset, keep="any")
            excluded["exact duplicates dropped"] = n_dup
        counts = {"n": nw.len(), "customers": nw.col(customer).n_unique(),
                  "first": nw.col(DAY).min(), "last": nw.col(DAY).max()}  # fmt: skip
        if amount is not None:
            value = nw.col(AMOUNT)
            counts |= {"returns": (value < 0).sum(), "zero": (value == 0).sum(),
                       "revenue": value.sum()}  # fmt: skip
        seen = lf.select(**counts).collect()

        def get(name, cast=int):
            value = seen.get_column(name).to_list()[0]
            return cast(0 if value is None else value)

        first_day = _day_numbers_of(seen.get_column("first"))[0]
        last_day = _day_numbers_of(seen.get_column("last"))[0]
        self.quality = Quality(
            rows_read=log.n_rows,
            customers=get("customers"),
            transactions=get("n"),
            first_date=_iso(first_day),
            last_date=_iso(last_day),
            timezone=self.timezone,
            duplicates=n_dup,
            duplicates_policy=self.duplicates,
            returns=get("returns") if amount is not None else 0,
            zero_amounts=get("zero") if amount is not None else 0,
            revenue=get("revenue", float) if amount is not None else None,
            offsets_converted=log.n_offsets,
            excluded=excluded,
        )
        return EngineLog(
            frame=lf, n_rows=get("n"), first_day=int(first_day), last_day=int(last_day),
            tz=self.timezone, n_offsets=log.n_offsets,
        )  # fmt: skip

    # -- what the package's functions use ------------------------------------------------

    def data_columns(self) -> list[str]:
        """The columns of the data the log was made from."""
        from ._validate import column_names

        return column_names(self._data)

    @property
    def n_rows(self) -> int:
        """Transactions kept (after exclusions)."""
        return self.quality.transactions

    def window(self, observation_end: object = None) -> Daily | EngineWindow:
        """The log cut at `observation_end` (inclusive; None: the log's own observation
        end if it was given one, else the last transaction day)."""
        form = self._form
        if observation_end is None:
            observation_end = self.observation_end
        if isinstance(form, Daily):
            if observation_end is None:
                return form
            end_day = _day_number(parse_cutoff(observation_end, "observation_end", form.tz))
            keep = form.day <= end_day
            if not keep.any():
                raise _after_end(self.date, end_day, form.first_day, len(form.day))
            if keep.all():
                return Daily(form.codes, form.ids, form.day, form.amount, end_day, form.tz)
            codes, uniques = _factorize(form.ids.to_numpy()[form.codes[keep]])
            amount = form.amount[keep] if form.amount is not None else None
            return Daily(codes, pd.Index(uniques, name=self.customer), form.day[keep], amount,
                         end_day, form.tz)  # fmt: skip
        if observation_end is None:
            return EngineWindow(form, form.last_day, self.customer)
        end_day = _day_number(parse_cutoff(observation_end, "observation_end", form.tz))
        if form.first_day > end_day:
            raise _after_end(self.date, end_day, form.first_day, form.n_rows)
        return EngineWindow(form, end_day, self.customer)

    def segments(self) -> pd.Series:
        """Each customer's segment (needs `segment`); see :func:`customer_segments`."""
        if self.segment is None:
            raise DataError(None, "the log has no segment column",
                            hint="Pass segment=... when making the TransactionLog")  # fmt: skip
        if self._segments is None:
            from ._aggregate import customer_segments

            data = self._data
            if isinstance(data, pd.DataFrame) and self._keep is not None:
                data = data[self._keep]
            self._segments = customer_segments(data, self.customer, self.segment)
        return self._segments


def as_log(
    tx: object,
    customer: str | None = None,
    date: str | None = None,
    amount: str | None = None,
    *,
    segment: str | None = None,
    **rules_kw,
) -> TransactionLog:
    """`tx` as a :class:`TransactionLog`: itself if it is one (its columns are used), else a
    new log of `tx` with these columns (the raw-frame signatures of the public functions).

    A TransactionLog passed with an `amount` it lacks gets that amount column: a new log of
    the same data and rules.
    """
    if isinstance(tx, TransactionLog):
        if amount is not None and amount != tx.amount:
            return TransactionLog(
                tx._data, tx.customer, tx.date, amount, tx.segment, timezone=tx.timezone,
                duplicates=tx.duplicates, allow_returns=tx.allow_returns,
                date_format=tx.date_format, observation_end=tx.observation_end,
            )  # fmt: skip
        return tx
    if customer is None or date is None:
        raise TypeError("pass a TransactionLog, or a frame with customer= and date= columns")
    log = TransactionLog.__new__(TransactionLog)
    log._raw_call = True  # duplicates kept without a search (see TransactionLog.quality)
    log.__init__(tx, customer, date, amount, segment, **rules_kw)
    return log
