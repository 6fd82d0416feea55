"""The data rules of a transaction log, one function or constant per rule.

Every rule that decides what a log means lives here, worded once, whatever engine
counts the rows (numpy for pandas, DuckDB, polars, Dask: :mod:`clvmodels.log`) and
whatever reads the file (:mod:`clvmodels.reader`). The engines count; these functions
decide, word the message and say which keyword (Python) or flag (command line) lets the
user choose (:func:`clvmodels.errors.option`). The README's "Data rules" section lists
the same rules.

=====================  ==========================================================
rule                   where
=====================  ==========================================================
ids are text           :func:`check_distinct_columns`, the reader (never parsed)
one time zone          :func:`check_timezone`, :func:`zone_offsets`, :func:`today`
duplicates             :data:`DUPLICATES`, :func:`check_duplicates`
returns                :func:`returns_error`
dates in the future    :func:`check_future`
empty / header only    :func:`empty_error`
zero amounts           counted (:class:`clvmodels.log.Quality`), kept as purchases
date formats           :func:`detect_date_format`
decimal marks, text    :func:`detect_decimal`, :func:`non_numbers_error`
acquisition costs      :func:`check_acquisition_costs`, :func:`clv_to_cac`
=====================  ==========================================================
"""

from __future__ import annotations

import datetime as dt
import re
import warnings
from collections.abc import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from .errors import DataError, DataWarning, option

__all__ = [
    "DUPLICATES",
    "check_acquisition_costs",
    "check_distinct_columns",
    "check_duplicates",
    "check_future",
    "check_timezone",
    "clv_to_cac",
    "detect_date_format",
    "detect_decimal",
    "empty_error",
    "non_numbers_error",
    "returns_error",
    "today",
    "zone_offsets",
]

# --- columns ------------------------------------------------------------------------------


def check_distinct_columns(**columns: str | None) -> None:
    """One column may play one role: ``customer="id", date="id"`` is an error."""
    seen: dict[str, str] = {}
    for role, name in columns.items():
        if name is None:
            continue
        if name in seen:
            raise DataError(
                name,
                f"given for both {option(seen[name])} and {option(role)}; each role needs "
                "its own column",
            )
        seen[name] = role


def empty_error(what: str, header_only: bool = False) -> DataError:
    """The error for a file or frame without transactions."""
    if header_only:
        return DataError(None, f"{what} has a header but no rows: there are no transactions", 0)
    return DataError(None, f"{what} is empty: there are no transactions", 0)


# --- time zones ---------------------------------------------------------------------------


def check_timezone(timezone: str) -> ZoneInfo:
    """The named zone in which calendar days are taken (an IANA name such as "UTC")."""
    try:
        return ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        raise DataError(
            None,
            f"time zone {timezone!r} is not an IANA time zone name",
            hint=f"Pass e.g. {option('timezone', 'Europe/Berlin')}",
        ) from None


def today(timezone: str) -> dt.date:
    """Today's date in `timezone` (not in the machine's zone)."""
    return dt.datetime.now(ZoneInfo(timezone)).date()


def zone_offsets(timezone: str, first: dt.datetime, last: dt.datetime) -> list:
    """UTC offsets of `timezone` between two UTC instants, as ``[(since_utc, offset)]``.

    The first entry's ``since_utc`` is None (it holds from the start); each later entry
    starts at a transition (daylight saving time). Engines without a time-zone database
    (DuckDB without ICU) convert UTC to wall-clock time with these few offsets.
    """
    zone = ZoneInfo(timezone)
    utc = dt.UTC

    def offset(t: dt.datetime) -> dt.timedelta:
        return t.replace(tzinfo=utc).astimezone(zone).utcoffset()

    start = first.replace(tzinfo=None) - dt.timedelta(days=1)
    end = last.replace(tzinfo=None) + dt.timedelta(days=1)
    out = [(None, offset(start))]
    t = start
    while t < end:
        nxt = min(t + dt.timedelta(days=1), end)
        if offset(nxt) != out[-1][1]:
            lo, hi = t, nxt  # bisect to the minute of the transition
            while hi - lo > dt.timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                lo, hi = (mid, hi) if offset(mid) == out[-1][1] else (lo, mid)
            out.append((hi.replace(second=0, microsecond=0), offset(nxt)))
        t = nxt
    return out


# --- duplicates ---------------------------------------------------------------------------

DUPLICATES = ("warn", "drop", "error")
DUPLICATE_RULE = "exact duplicate rows (same customer, timestamp and amount)"


def check_duplicates_policy(duplicates: str) -> str:
    if duplicates not in DUPLICATES:
        raise DataError(
            None,
            f"duplicates must be one of {', '.join(DUPLICATES)}, got {duplicates!r}",
            hint=f"Pass {option('duplicates', 'drop')}",
        )
    return duplicates


def check_duplicates(n: int, policy: str, column: str) -> None:
    """Apply the duplicates policy to `n` surplus copies of rows (copies beyond the first).

    ``"warn"``: kept and counted, with a :class:`~clvmodels.errors.DataWarning`;
    ``"drop"``: the copies are removed by the caller (counted as excluded);
    ``"error"``: :class:`DataError`.
    """
    if not n:
        return
    if policy == "error":
        raise DataError(
            column,
            f"{n} {DUPLICATE_RULE}; they may be double-counted exports",
            n,
            hint=f"Pass {option('duplicates', 'drop')} to drop the copies or "
            f"{option('duplicates', 'warn')} to keep them",
        )
    if policy == "warn":
        warnings.warn(
            f"{n} {DUPLICATE_RULE} kept and counted as separate purchases; pass "
            f"{option('duplicates', 'drop')} to drop the copies or "
            f"{option('duplicates', 'error')} to refuse them",
            DataWarning,
            stacklevel=4,
        )


# --- amounts ------------------------------------------------------------------------------


def returns_error(column: str, n: int) -> DataError:
    """Negative amounts without ``allow_returns``."""
    return DataError(
        column,
        "must be non-negative",
        n,
        hint=f"Pass {option('allow_returns', True)} to net returns against the same "
        "customer's purchases of that day",
    )


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_COMMA_NUMBER = re.compile(r"^[+-]?\d+(,\d+)?$")
_SYMBOLS = re.compile(r"[$€£¥₹]|\b(USD|EUR|GBP|CHF|JPY)\b")


def detect_decimal(values: Sequence[str]) -> str:
    """The decimal mark of text amounts: "." unless every value reads as a decimal comma
    number (``12,50``) and some value has a comma."""
    values = [v.strip() for v in values if v is not None and v.strip()]
    if values and all(_COMMA_NUMBER.match(v) for v in values) and any("," in v for v in values):
        return ","
    return "."


def non_numbers_error(column: str, examples: Sequence[str], n: int, decimal: str) -> DataError:
    """Text amounts that are not numbers: says why (currency symbols, decimal marks)."""
    shown = ", ".join(repr(v) for v in list(examples)[:3])
    if any(_SYMBOLS.search(str(v)) for v in examples):
        return DataError(
            column,
            f"must be plain numbers, but holds currency symbols (e.g. {shown})",
            n,
            hint="Remove the symbols in the export (one currency per log)",
        )
    if any("," in str(v) for v in examples):
        other = "." if decimal == "," else ","
        return DataError(
            column,
            f"must be numbers with decimal mark {decimal!r} (e.g. {shown})",
            n,
            hint=f"Pass {option('decimal', other)} if {other!r} is the decimal mark; "
            "thousands separators are not read",
        )
    return DataError(column, f"must be numbers (e.g. {shown})", n)


# --- dates --------------------------------------------------------------------------------

OFFSET = r"(Z|[+-]\d{2}(:?\d{2})?)$"
_OFFSET = re.compile(r"(?<=\d)\s?" + OFFSET)
_DATES = ["%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y",
          "%m-%d-%Y", "%Y%m%d", "%d %b %Y", "%b %d %Y", "%d/%m/%y", "%m/%d/%y"]  # fmt: skip
_TIMES = ["", " %H:%M:%S", "T%H:%M:%S", " %H:%M", "T%H:%M", " %H:%M:%S.%f", "T%H:%M:%S.%f"]


def split_offset(value: str) -> tuple[str, str]:
    """A timestamp string as (local part, UTC offset text or "")."""
    m = _OFFSET.search(value)
    if m is None or ":" not in value[: m.start()] and "T" not in value:
        return value, ""
    return value[: m.start()], m.group(1)


def _parse_all(fmt: str, values: Sequence[str]) -> list:
    out = []
    for v in values:
        try:
            out.append(dt.datetime.strptime(v, fmt))
        except ValueError:
            out.append(None)
    return out


def detect_date_format(column: str, values: Sequence[str]) -> str:
    """The strftime format that reads most of the sampled date strings (offsets removed).

    Values it does not read are then counted by the caller (a typo far down the file is
    a row count, not a mystery). Formats that read as many values but give different
    dates (``01/02/2020``: day or month first) make the dates ambiguous: an error asking
    for ``date_format``.
    """
    values = [v.strip() for v in values if v is not None and v.strip()]
    head = values[:50]
    fits: dict[str, list] = {}
    for d in _DATES:
        for t in _TIMES:
            fmt = d + t
            if sum(p is not None for p in _parse_all(fmt, head)) * 2 < len(head):
                continue
            fits[fmt] = _parse_all(fmt, values)
    counts = {f: sum(p is not None for p in parsed) for f, parsed in fits.items()}
    best = max(counts.values(), default=0)
    if best * 2 < len(values) or best == 0:
        shown = ", ".join(repr(v) for v in values[:3])
        raise DataError(
            column,
            f"no known date format reads these dates (e.g. {shown})",
            hint=f"Pass {option('date_format', '%d/%m/%Y %H:%M')} (strftime codes)",
        )
    top = [f for f in fits if counts[f] == best]
    first = top[0]
    for other in top[1:]:
        if fits[other] != fits[first]:
            example = next(v for v, a, b in zip(values, fits[first], fits[other], strict=True)
                           if a != b)  # fmt: skip
            raise DataError(
                column,
                f"dates such as {example!r} can be read as {first!r} or {other!r} "
                "(day or month first)",
                hint=f"Pass {option('date_format', first)} or {option('date_format', other)}",
            )
    return first


def check_future(column: str, n: int, first: Sequence[object], limit: dt.date, given: bool):
    """Dates after today (no observation end given): an error naming them."""
    if n and not given:
        shown = ", ".join(str(d) for d in list(first)[:3])
        raise DataError(
            column,
            f"dates after today ({limit}) are not possible: first {shown}",
            n,
            hint=f"Fix the dates, or pass {option('observation_end', str(limit))} to "
            "exclude the rows after it",
        )


# --- acquisition costs --------------------------------------------------------------------


def check_acquisition_costs(costs, name: str = "acquisition_cost") -> None:
    """The one rule of an acquisition cost (CAC, the cost of acquiring one customer):
    a finite number >= 0, whatever takes it (:func:`clvmodels.formula_clv`,
    :func:`clvmodels.value_against_cost`, the report's ``acquisition_cost=`` /
    ``--acquisition-cost``).

    0 is allowed and means *no acquisition cost* (an organic channel, a referral): value
    minus cost is the value itself, and CLV:CAC is not defined (:func:`clv_to_cac` gives
    NaN, shown as "-"), never infinite. `costs` is a number or an array-like; a
    :class:`DataError` names `name` (:func:`option`: the keyword in Python, the flag on
    the command line) and the number of values that break the rule (missing values
    break it too).
    """
    try:
        values = np.atleast_1d(np.asarray(costs, dtype=float))
    except (TypeError, ValueError):
        raise DataError(None, f"{option(name)}: an acquisition cost must be a number, got "
                        f"{costs!r}") from None
    bad = int((~np.isfinite(values) | (values < 0)).sum())
    if bad:
        shown = (f"got {costs!r}" if np.ndim(costs) == 0
                 else f"{bad} of {values.size} values break the rule")
        raise DataError(None, f"{option(name)}: an acquisition cost must be a finite number "
                        f">= 0 (0: no acquisition cost); {shown}")


def clv_to_cac(value, cost):
    """CLV:CAC, `value` / `cost` where the cost is > 0 and NaN where it is 0 (no
    acquisition cost: the ratio is not defined; see :func:`check_acquisition_costs`).
    Numbers and arrays broadcast as in numpy; with a pandas Series among the inputs the
    result is a Series on its index."""
    value_arr, cost_arr = np.asarray(value, dtype=float), np.asarray(cost, dtype=float)
    shape = np.broadcast(value_arr, cost_arr).shape
    ratio = np.divide(value_arr, cost_arr, out=np.full(shape, np.nan),
                      where=np.broadcast_to(cost_arr > 0, shape))
    for x in (value, cost):
        if hasattr(x, "index") and hasattr(x, "to_numpy") and np.shape(x) == shape:
            return x.__class__(ratio, index=x.index)
    return ratio if shape else float(ratio)
