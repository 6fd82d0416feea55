"""Named validators for transaction logs and RFM frames, shared by every module.

Every check runs on the caller's values *before* anything is cast, and every failure
raises :class:`clvmodels.errors.DataError` naming the column, the rule and the number of
rows that break it. Nothing is dropped or coerced silently, and the caller's frame is
never modified: functions that normalise return new objects.

Examples
--------
>>> import pandas as pd
>>> from clvmodels._validate import validate_transactions
>>> tx = pd.DataFrame({"id": [1, 1], "day": ["2020-01-01", "2020-01-05"], "usd": [5.0, -1.0]})
>>> validate_transactions(tx, "id", "day", "usd")
Traceback (most recent call last):
...
clvmodels.errors.DataError: column 'usd': must be non-negative (1 row). Pass \
allow_returns=True to net returns against purchases of the same day
"""

from __future__ import annotations

import datetime as dt
import decimal
import numbers
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import narwhals as nw
import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from clvmodels.errors import DataError, option
from clvmodels.rules import returns_error

__all__ = [
    "as_pandas",
    "check_columns",
    "check_not_empty",
    "column_names",
    "check_no_missing",
    "check_numeric",
    "engine_transactions",
    "parse_dates",
    "parse_cutoff",
    "validate_transactions",
    "validate_rfm",
    "validate_weights",
]


def as_pandas(df: object) -> pd.DataFrame:
    """`df` itself if it is a pandas DataFrame, else ``df.to_pandas()`` (polars, pyarrow...).

    Other engines are converted, which copies the data; pass pandas for the fastest path.
    """
    if isinstance(df, pd.DataFrame):
        return df
    to_pandas = getattr(df, "to_pandas", None)
    if callable(to_pandas):
        out = to_pandas()
        if isinstance(out, pd.DataFrame):
            return out
    raise TypeError(
        f"expected a pandas DataFrame or an object with .to_pandas(), got {type(df).__name__}"
    )


def check_columns(df: object, columns: Iterable[str], *, what: str = "data") -> None:
    """Raise :class:`DataError` unless every name in `columns` is exactly one column of `df`.

    `df` is a pandas frame, any frame with a ``columns`` attribute, or a list of names.
    """
    names = list(df) if isinstance(df, list | tuple) else list(df.columns)
    for column in columns:
        n = sum(1 for name in names if name == column)
        if n == 0:
            available = ", ".join(repr(c) for c in names[:20])
            raise DataError(column, f"missing from the {what}", hint=f"Columns: {available}")
        if n > 1:
            raise DataError(column, f"appears {n} times in the {what}; column names must be unique")


def column_names(df: object) -> list[str]:
    """The column names of a pandas frame or of any frame narwhals supports (lazy ones
    included: only the schema is read)."""
    if isinstance(df, pd.DataFrame):
        return list(df.columns)
    data = getattr(df, "data_columns", None)  # a TransactionLog
    if callable(data):
        return data()
    frame = df if isinstance(df, nw.LazyFrame) else to_narwhals(df)
    return list(frame.collect_schema().names())


def check_not_empty(df: pd.DataFrame, *, what: str = "transaction log") -> None:
    """Raise :class:`DataError` if `df` has no rows."""
    if len(df) == 0:
        raise DataError(None, f"the {what} is empty", 0)


# The rules, worded once: the pandas checks below and the engine checks at the end of
# this module raise the same messages.
MISSING = "must not be missing (null, NaN or NaT)"
FINITE = "must be finite"
NONNEGATIVE = "must be non-negative"


def _not_a_date_type(dtype: object) -> str:
    return f"must be datetime64 or date strings, not {dtype}"


def _unparsed(fmt: str | None) -> str:
    return f"could not be parsed as dates with format {fmt!r}"


def check_no_missing(values: pd.Series, column: str) -> None:
    """Raise :class:`DataError` if `values` holds null values (None, NaN, NaT, pd.NA)."""
    n = int(values.isna().sum())
    if n:
        raise DataError(column, MISSING, n)


def _numeric_mask(values: pd.Series) -> np.ndarray | None:
    """Per-row 'is a real number' for object columns; None when the dtype decides."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return np.zeros(len(values), dtype=bool)
    if pd.api.types.is_numeric_dtype(values.dtype):
        return None
    if pd.api.types.is_object_dtype(values.dtype):
        return np.fromiter(
            (
                isinstance(v, numbers.Real | decimal.Decimal) and not isinstance(v, bool | np.bool_)
                for v in values
            ),
            dtype=bool,
            count=len(values),
        )
    return np.zeros(len(values), dtype=bool)


def _float_array(
    values: pd.Series,
    column: str,
    *,
    nonnegative: bool = False,
    positive: bool = False,
    integer: bool = False,
) -> np.ndarray:
    """The checks of :func:`check_numeric`; returns a float64 array that may be a view of
    `values` (read it, never write to it)."""
    if not (isinstance(values.dtype, np.dtype) and values.dtype.kind in "fiu"):
        # objects, strings, nullable types: count non-numbers and missing values first
        # (for plain numpy numbers, NaN is the only missing value: counted below)
        is_num = _numeric_mask(values)
        if is_num is not None:
            n_bad = int((~is_num & ~values.isna().to_numpy(dtype=bool)).sum())
            if n_bad:
                raise DataError(column, f"must be numeric (dtype {values.dtype})", n_bad)
        check_no_missing(values, column)
    arr = values.to_numpy(dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        n_missing = int(np.isnan(arr).sum())
        if n_missing:
            raise DataError(column, MISSING, n_missing)
        raise DataError(column, FINITE, int((~finite).sum()))
    for flag, bad, rule in [
        (integer, lambda: arr != np.floor(arr), "must be whole numbers"),
        (nonnegative, lambda: arr < 0, NONNEGATIVE),
        (positive, lambda: arr <= 0, "must be positive"),
    ]:
        if flag:
            n = int(bad().sum())
            if n:
                raise DataError(column, rule, n)
    return arr


def check_numeric(
    values: pd.Series,
    column: str,
    *,
    nonnegative: bool = False,
    positive: bool = False,
    integer: bool = False,
) -> pd.Series:
    """Check that `values` are finite real numbers and return them as a new float64 Series.

    Strings, booleans and other objects are not numbers (they are never parsed). Checks, in
    order: numeric, not missing, finite, then the optional ``integer`` (whole numbers),
    ``nonnegative`` (>= 0) and ``positive`` (> 0).
    """
    arr = _float_array(values, column, nonnegative=nonnegative, positive=positive, integer=integer)
    return pd.Series(arr, index=values.index, name=values.name, copy=True)


def _infer_format(values: pd.Series, column: str) -> str | None:
    """The most common strftime format among the first 1,000 string values.

    None when the values are date/datetime objects, not strings (they need no format).
    """
    head = values.iloc[:1000]
    is_str = head.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    if not is_str.any():
        return None
    guesses = pd.Series([guess_datetime_format(v) for v in pd.unique(head[is_str])]).dropna()
    if guesses.empty:
        raise DataError(
            column,
            "no date format could be inferred from the first 1,000 values",
            len(values),
            hint=f"Pass {option('date_format', '%d/%m/%Y')} with the format of the dates",
        )
    return str(guesses.mode().iloc[0])


def _date_values(values: pd.Series, column: str, date_format: str | None) -> pd.Series:
    """The checks of :func:`parse_dates`; may return `values` itself (never write to it)."""
    check_no_missing(values, column)
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        return values
    if not (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)):
        raise DataError(
            column,
            _not_a_date_type(dtype),
            len(values),
            hint="For YYYYMMDD numbers use pd.to_datetime(s.astype(str), format='%Y%m%d')",
        )
    fmt = date_format if date_format is not None else _infer_format(values, column)
    try:
        parsed = pd.to_datetime(values, errors="coerce", format=fmt)
    except ValueError as exc:  # mixed UTC offsets: instants, converted to a zone later
        if "timezone" not in str(exc).lower() and "offset" not in str(exc).lower():
            raise
        parsed = pd.to_datetime(values, errors="coerce", format=fmt, utc=True)
    n_bad = int(parsed.isna().sum())
    if n_bad:
        raise DataError(
            column,
            _unparsed(fmt),
            n_bad,
            hint=f"Pass {option('date_format', fmt or '%Y-%m-%d')} with the format of the dates",
        )
    return parsed


def parse_dates(values: pd.Series, column: str, *, date_format: str | None = None) -> pd.Series:
    """Check and parse a date column; return a new datetime64 Series (time zone kept).

    ``datetime64`` columns (naive or time-zone aware) are accepted as they are. Strings and
    date/datetime objects are parsed strictly: with `date_format` when given, otherwise
    with the format most commonly inferred (``pandas.tseries.api.guess_datetime_format``)
    among the first 1,000 strings, which every value must follow; each value that does
    not parse is counted. ``date_format="ISO8601"`` accepts ISO 8601 strings of varying
    precision; pass an explicit format for day-first dates such as ``"%d.%m.%Y"``
    (inference assumes month first). Numbers are rejected (an integer
    such as 19970101 would otherwise be read as nanoseconds since 1970).
    """
    out = _date_values(values, column, date_format)
    return out.copy() if out is values else out


def parse_cutoff(value: object, name: str, tz: object = None) -> pd.Timestamp:
    """Parse a cut-off date (e.g. ``observation_end``) into a naive, day-floored Timestamp.

    Dates are compared as calendar days in the data's own time zone `tz`: an aware cut-off
    is converted to `tz`; a naive cut-off is read as a wall-clock date in `tz`. An aware
    cut-off with naive data is ambiguous and raises :class:`DataError`.
    """
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise DataError(None, f"{name}={value!r} is not a date") from None
    if ts is pd.NaT:
        raise DataError(None, f"{name} must be a date, not {value!r}")
    if ts.tz is not None:
        if tz is None:
            raise DataError(
                None,
                f"{name}={value!r} is time-zone aware but the dates are naive",
                hint="Pass a naive date, or localise the date column first",
            )
        ts = ts.tz_convert(tz).tz_localize(None)
    return ts.normalize()


def validate_transactions(
    df: pd.DataFrame,
    customer: str,
    date: str,
    amount: str | None = None,
    *,
    allow_returns: bool = False,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Validate a transaction log and return a new, normalised frame.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per transaction. Not modified.
    customer, date : str
        Columns holding the customer id and the transaction date. Customer ids may be
        of any hashable type but not missing. Dates: see :func:`parse_dates`.
    amount : str, optional
        Column holding the transaction value: finite real numbers, non-negative unless
        `allow_returns` is true.
    allow_returns : bool, default False
        Accept negative amounts (returns and refunds).
    date_format : str, optional
        strftime format used to parse string dates.

    Returns
    -------
    pandas.DataFrame
        Columns `customer` (unchanged), `date` (datetime64, time zone kept) and, if given,
        `amount` (float64), on the original index.

    Raises
    ------
    DataError
        Missing column, empty log, missing customer ids or dates, unparseable dates,
        non-numeric, missing, infinite or (unless `allow_returns`) negative amounts.

    Examples
    --------
    >>> tx = pd.DataFrame({"id": ["a", "a"], "day": ["2020-01-01", "2020-01-05"], "usd": [5, 7]})
    >>> validate_transactions(tx, "id", "day", "usd").dtypes.astype(str).tolist()
    ['str', 'datetime64[us]', 'float64']
    """
    df = as_pandas(df)
    _, dates, amounts = transaction_arrays(
        df, customer, date, amount, allow_returns=allow_returns, date_format=date_format
    )
    out = {customer: df[customer].copy()}
    out[date] = dates.copy() if dates is df[date] else dates
    if amounts is not None:
        out[amount] = pd.Series(amounts, index=df.index, copy=True)
    return pd.DataFrame(out, index=df.index)


def transaction_arrays(
    df: pd.DataFrame,
    customer: str,
    date: str,
    amount: str | None = None,
    *,
    allow_returns: bool = False,
    date_format: str | None = None,
) -> tuple[np.ndarray, pd.Series, np.ndarray | None]:
    """The checks of :func:`validate_transactions`, without copies, for internal use.

    Returns customer ids (array), dates (Series, possibly the caller's own) and amounts
    (float64 array or None); arrays may be views of the caller's data: never write to them.
    """
    df = as_pandas(df)
    columns = [customer, date] + ([amount] if amount is not None else [])
    check_columns(df, columns, what="transaction log")
    check_not_empty(df)
    check_no_missing(df[customer], customer)
    dates = _date_values(df[date], date, date_format)
    amounts = None
    if amount is not None:
        try:
            amounts = _float_array(df[amount], amount, nonnegative=not allow_returns)
        except DataError as exc:
            if exc.rule != NONNEGATIVE:
                raise
            raise returns_error(amount, exc.n_rows) from None
    return df[customer].to_numpy(), dates, amounts


def validate_rfm(
    df: pd.DataFrame, require_monetary: bool = False, *, discrete: bool = False
) -> pd.DataFrame:
    """Validate an RFM frame and return a new frame with normalised dtypes.

    Rules: columns ``frequency``, ``recency`` and ``T`` are present, numeric, finite and
    not missing; ``frequency`` is a non-negative whole number; ``T >= 0``;
    ``0 <= recency <= T``; ``recency == 0`` where ``frequency == 0``. With
    `require_monetary`, ``monetary_value`` must also be present, finite and ``>= 0``
    (otherwise it is passed through unchecked). With `discrete` (BG/BB-style data counted
    in transaction opportunities) ``recency`` and ``T`` must be whole numbers and
    ``frequency <= recency``.

    Returns
    -------
    pandas.DataFrame
        A copy with ``frequency`` as int64 and ``recency``, ``T`` (and checked
        ``monetary_value``) as float64; other columns are unchanged.

    Examples
    --------
    >>> rfm = pd.DataFrame({"frequency": [0, 2], "recency": [1.0, 3.0], "T": [5.0, 4.0]})
    >>> validate_rfm(rfm)
    Traceback (most recent call last):
    ...
    clvmodels.errors.DataError: column 'recency': must be 0 where frequency is 0 (1 row)
    """
    arrays = rfm_arrays(df, require_monetary, discrete=discrete)
    out = df.copy(deep=False)  # other columns: copy-on-write, the caller's stay untouched
    out["frequency"] = arrays["frequency"].astype(np.int64)
    for column in ("recency", "T", "monetary_value"):
        if column in arrays:
            out[column] = np.array(arrays[column], dtype=np.float64)
    return out


def rfm_arrays(
    df: pd.DataFrame, require_monetary: bool = False, *, discrete: bool = False
) -> dict[str, np.ndarray]:
    """The checks of :func:`validate_rfm`, returning the checked columns as float64 arrays
    (``frequency``, ``recency``, ``T`` and, with `require_monetary`, ``monetary_value``)
    without building a frame. The arrays may be views of the caller's data: read them,
    never write to them.
    """
    required = ["frequency", "recency", "T"] + (["monetary_value"] if require_monetary else [])
    check_columns(df, required, what="RFM frame")
    check_not_empty(df, what="RFM frame")
    # the checks read the caller's values without copying them (views, never written)
    f = _float_array(df["frequency"], "frequency", nonnegative=True, integer=True)
    r = _float_array(df["recency"], "recency", nonnegative=True, integer=discrete)
    # T = 0 (first seen on the last day) is allowed: such a customer's likelihood is 1,
    # so it adds nothing to a fit, and predictions for it are the new-customer ones.
    t = _float_array(df["T"], "T", nonnegative=True, integer=discrete)
    for n, rule, column in [
        (lambda: (r > t).sum(), "must not exceed T", "recency"),
        (lambda: ((f == 0) & (r != 0)).sum(), "must be 0 where frequency is 0", "recency"),
        (lambda: discrete and (f > r).sum(), "must not exceed recency (discrete time)",
         "frequency"),
    ]:  # fmt: skip
        count = int(n())
        if count:
            raise DataError(column, rule, count)
    arrays = {"frequency": f, "recency": r, "T": t}
    if require_monetary:
        arrays["monetary_value"] = _float_array(
            df["monetary_value"], "monetary_value", nonnegative=True
        )
    return arrays


def validate_weights(df: pd.DataFrame, column: str) -> pd.Series:
    """Check a column of case weights (finite, >= 0, not all 0); return it as float64.

    Examples
    --------
    >>> validate_weights(pd.DataFrame({"w": [3, 0, 1]}), "w").tolist()
    [3.0, 0.0, 1.0]
    """
    check_columns(df, [column])
    weights = check_numeric(df[column], column, nonnegative=True)
    if len(weights) and not (weights > 0).any():
        raise DataError(column, "must have at least one positive weight", len(weights))
    return weights


# --- other engines: polars, DuckDB, Dask, pyarrow... through narwhals -------------------
#
# The same rules as above, counted by the engine itself: one pass over the data returns
# every count (and the first and last day), and only those few numbers reach Python.
# Nothing of a lazy or remote frame is pulled into pandas.

DAY = "__clvmodels_day"
AMOUNT = "__clvmodels_amount"
STAMP = "__clvmodels_stamp"
_UTC = ("UTC", "Etc/UTC", "utc")


@dataclass(frozen=True)
class EngineLog:
    """A validated transaction log of another engine, still in that engine.

    ``frame`` is a narwhals LazyFrame with the customer column, :data:`STAMP` (the
    timestamp as naive wall-clock time in ``tz``), :data:`DAY` (its calendar day: a naive
    Datetime at midnight, which every engine can aggregate) and, with an amount,
    :data:`AMOUNT` (Float64). ``first_day`` and ``last_day`` are days since 1970-01-01;
    ``n_offsets`` counts the rows whose time zone or UTC offset was converted to ``tz``.
    """

    frame: nw.LazyFrame
    n_rows: int
    first_day: int
    last_day: int
    tz: str | None
    n_offsets: int = 0

    @property
    def has_amount(self) -> bool:
        return AMOUNT in self.frame.collect_schema().names()


def to_narwhals(df: object) -> nw.LazyFrame:
    """Wrap a frame of any engine narwhals supports as a narwhals LazyFrame.

    Eager frames (polars, pyarrow, ...) become lazy views without a copy; lazy frames
    (polars LazyFrame, DuckDB relation, Dask DataFrame) stay lazy.
    """
    with warnings.catch_warnings():
        # narwhals announces that Dask support moves to a plugin package; not actionable
        # for our users, and the data are not affected
        warnings.filterwarnings("ignore", "Dask support is moving", FutureWarning)
        try:
            frame = nw.from_native(df)
        except TypeError:
            raise TypeError(
                "expected a pandas DataFrame or a polars, DuckDB, Dask, pyarrow (or other "
                f"narwhals-supported) data frame, got {type(df).__name__}"
            ) from None
    if isinstance(frame, nw.Series):
        raise TypeError(f"expected a data frame, got a series ({type(df).__name__})")
    return frame.lazy()


def _native_time_zone(frame: nw.LazyFrame, column: str) -> str | None:
    """Time zone of a pandas-like (pandas, Dask) datetime column whose dtype narwhals
    reports as Unknown (narwhals 2.29 does not parse zone names with an underscore,
    such as ``datetime64[us, America/New_York]``); None if it is not one."""
    try:
        tz = getattr(nw.to_native(frame)[column].dtype, "tz", None)
    except Exception:  # not a pandas-like frame
        return None
    return None if tz is None else str(tz)


def _day_number(value: object) -> int:
    """A date, datetime or numpy datetime64 as days since 1970-01-01."""
    if isinstance(value, dt.datetime):
        value = value.replace(tzinfo=None)
    return int(np.datetime64(value, "D").astype(np.int64))


def _scalar(frame: nw.DataFrame, name: str):
    value = frame.get_column(name).to_list()[0]
    return value


def _count(frame: nw.DataFrame, name: str) -> int:
    value = _scalar(frame, name)
    return 0 if value is None else int(value)


def _sql_quote(text: str, mark: str) -> str:
    return mark + text.replace(mark, mark + mark) + mark


def _count_unparsed(lf: nw.LazyFrame, column: str, fmt: str) -> int | None:
    """Rows of a string date column that `fmt` does not parse, counted by the engines that
    can parse leniently (DuckDB ``try_strptime``, polars ``strict=False``); None for the
    others or if counting fails."""
    native = nw.to_native(lf)
    try:
        duckdb = sys.modules.get("duckdb")
        if duckdb is not None and isinstance(native, duckdb.DuckDBPyRelation):
            parsed = f"try_strptime({_sql_quote(column, chr(34))}, {_sql_quote(fmt, chr(39))})"
            rows = native.aggregate(f"count(*) FILTER (WHERE {parsed} IS NULL)").fetchall()
            return int(rows[0][0])
        polars = sys.modules.get("polars")
        if polars is not None and isinstance(native, polars.LazyFrame | polars.DataFrame):
            parsed = polars.col(column).str.to_datetime(fmt, strict=False)
            return int(native.lazy().select(parsed.is_null().sum()).collect().item())
    except Exception:  # noqa: BLE001 - the count is a courtesy; the error is raised anyway
        return None
    return None


def engine_transactions(
    df: object,
    customer: str,
    date: str,
    amount: str | None = None,
    *,
    allow_returns: bool = False,
    date_format: str | None = None,
    timezone: str = "UTC",
    segment: str | None = None,
) -> EngineLog:
    """The checks of :func:`transaction_arrays` for frames of other engines, run by them.

    Same rules, same order, same messages: columns present, log not empty, customer ids
    and dates not missing, dates of a date/datetime type (or strings, parsed by the engine
    with `date_format` or the format inferred from the first 1,000 values), amounts
    numeric, not missing, finite and (unless `allow_returns`) non-negative. Time-zone-aware
    dates are instants, converted to `timezone` before the calendar day is taken (a
    DuckDB ``TIMESTAMPTZ`` from its epoch value, whatever the session's zone;
    :func:`local_time` adds the zone's offsets, so no engine needs a zone database).

    A string date the engine cannot parse raises :class:`DataError`; engines parse strictly
    and stop at the first bad value, so the bad rows are then counted separately where
    the engine can parse leniently (DuckDB ``try_strptime``, polars ``strict=False``) and
    the error has no row count elsewhere. Convert such columns in the engine first to
    find them.
    """
    lf = to_narwhals(df)
    schema = lf.collect_schema()
    columns = [customer, date] + ([amount] if amount is not None else [])
    check_columns(list(schema.names()), columns, what="transaction log")
    date_type = schema[date]
    is_string = isinstance(date_type, nw.String | nw.Object)
    tz = date_type.time_zone if isinstance(date_type, nw.Datetime) else None
    utc_naive = False
    if isinstance(date_type, nw.Unknown):
        tz = _native_time_zone(lf, date)
        if tz is not None:  # narwhals cannot convert it: the frame's own library does
            native = nw.to_native(lf)
            column = native[date].dt.tz_convert("UTC").dt.tz_localize(None)
            lf, utc_naive = to_narwhals(native.assign(**{date: column})), True
    duckdb = sys.modules.get("duckdb")
    native = nw.to_native(lf)
    if tz and duckdb is not None and isinstance(native, duckdb.DuckDBPyRelation):
        # a TIMESTAMPTZ is an instant; DuckDB reports it in the connection's zone (the
        # machine's, by default), so its UTC value is taken from the epoch, which is not
        q = '"' + date.replace('"', '""') + '"'
        sql = f"SELECT * REPLACE (make_timestamp(epoch_us({q})) AS {q}) FROM t"
        lf, utc_naive = to_narwhals(native.query("t", sql)), True
    if isinstance(date_type, nw.Datetime) or tz is not None:
        stamp = nw.col(date)
    elif isinstance(date_type, nw.Date):
        stamp = nw.col(date).cast(nw.Datetime("us"))
    else:
        stamp = None
    counts = {
        "n": nw.len(),
        "customer_missing": nw.col(customer).is_null().sum(),
        "date_missing": nw.col(date).is_null().sum(),
    }
    amount_type = schema[amount] if amount is not None else None
    if amount is not None:
        value = nw.col(amount)
        counts["amount_missing"] = value.is_null().sum()
        if amount_type.is_numeric() and amount_type.is_float():
            counts["amount_missing"] = (value.is_null() | value.is_nan()).sum()
            counts["amount_infinite"] = (~value.is_finite() & ~value.is_nan()).sum()
        if amount_type.is_numeric():
            counts["amount_negative"] = (value < 0).sum()
    seen = lf.select(**counts).collect()
    n = _count(seen, "n")
    if n == 0:
        raise DataError(None, "the transaction log is empty: there are no transactions", 0)
    for column, key in [(customer, "customer_missing"), (date, "date_missing")]:
        if _count(seen, key):
            raise DataError(column, MISSING, _count(seen, key))
    if stamp is None and not is_string:
        raise DataError(date, _not_a_date_type(date_type), n)
    if is_string:
        fmt = date_format
        if fmt is None:
            head = lf.select(date).head(1000).collect().get_column(date).to_list()
            try:
                fmt = _infer_format(pd.Series(head, dtype=object), date)
            except DataError as exc:  # counted on the first 1,000 values: every row fails
                raise DataError(date, exc.rule, n, hint=exc.hint) from None
        stamp = nw.col(date).str.to_datetime(format=fmt)
        try:
            parsed_type = lf.select(stamp).collect_schema()[date]
            if isinstance(parsed_type, nw.Datetime) and parsed_type.time_zone:
                tz = parsed_type.time_zone
            lf.select(first=stamp.min()).collect()
        except Exception as exc:  # the engine's own parse error, whatever its type
            n_bad = _count_unparsed(lf, date, fmt)
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            hint = (
                f"The engine stopped at the first bad value ({reason}); convert the column "
                "to a date type first"
                if n_bad is None
                else f"Pass {option('date_format', fmt)} with the format of the dates, or convert "
                "the column to a date type first"
            )
            raise DataError(date, _unparsed(fmt), n_bad, hint=hint) from None
    n_offsets = 0
    if tz:  # instants: converted to the named zone before the calendar day is taken
        if not utc_naive:
            utc = stamp if tz in _UTC else stamp.dt.convert_time_zone("UTC")
            stamp = utc.dt.replace_time_zone(None)
        stamp = local_time(lf, stamp, timezone)
        n_offsets = n
    day = stamp.dt.truncate("1d")
    bounds = lf.select(first=day.min(), last=day.max()).collect()
    first, last = _scalar(bounds, "first"), _scalar(bounds, "last")
    out = {customer: nw.col(customer), STAMP: stamp, DAY: day}
    if amount is not None:
        if not amount_type.is_numeric() or isinstance(amount_type, nw.Boolean):
            raise DataError(
                amount, f"must be numeric (dtype {amount_type})", n - _count(seen, "amount_missing")
            )
        for key, rule in [
            ("amount_missing", MISSING),
            ("amount_infinite", FINITE),
            ("amount_negative", NONNEGATIVE),
        ]:
            bad = _count(seen, key) if key in counts else 0
            if bad and not (key == "amount_negative" and allow_returns):
                if key == "amount_negative":
                    raise returns_error(amount, bad)
                raise DataError(amount, rule, bad)
        out[AMOUNT] = nw.col(amount).cast(nw.Float64)
    return EngineLog(
        frame=lf.select(**out),
        n_rows=n,
        first_day=_day_number(first),
        last_day=_day_number(last),
        tz=timezone,
        n_offsets=n_offsets,
    )


def local_time(lf: nw.LazyFrame, utc: nw.Expr, timezone: str) -> nw.Expr:
    """Naive UTC timestamps as naive wall-clock time in `timezone`, by any engine.

    The zone's UTC offsets over the data's range come from Python's time-zone database
    (:func:`clvmodels.rules.zone_offsets`); the engine only adds them, so engines without
    one (DuckDB without its ICU extension) convert as the others do.
    """
    if timezone in _UTC:
        return utc
    from .rules import zone_offsets  # noqa: I001 - beside its one use

    bounds = lf.select(lo=utc.min(), hi=utc.max()).collect()
    lo, hi = _scalar(bounds, "lo"), _scalar(bounds, "hi")
    offsets = zone_offsets(timezone, pd.Timestamp(lo).to_pydatetime(),
                           pd.Timestamp(hi).to_pydatetime())  # fmt: skip
    expr = utc + offsets[-1][1]
    # a chain from the last transition back: before each transition, the earlier offset
    for k in range(len(offsets) - 1, 0, -1):
        since = offsets[k][0]
        expr = nw.when(utc < since).then(utc + offsets[k - 1][1]).otherwise(expr)
    return expr
