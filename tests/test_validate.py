"""The named validators: each rule fires, names column and count, and copies."""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pandas as pd
import pytest

from clvmodels._validate import (
    check_columns,
    check_not_empty,
    check_numeric,
    parse_cutoff,
    parse_dates,
    validate_rfm,
    validate_transactions,
    validate_weights,
)
from clvmodels.errors import DataError


def raises(func, *args, column, rule, n_rows, **kwargs):
    with pytest.raises(DataError, match=rule) as info:
        func(*args, **kwargs)
    assert (info.value.column, info.value.n_rows) == (column, n_rows)
    assert isinstance(info.value, ValueError)
    return info.value


@pytest.fixture()
def rfm():
    return pd.DataFrame(
        {
            "frequency": [0, 2, 5],
            "recency": [0.0, 3.5, 10.0],
            "T": [4.0, 6.0, 10.0],
            "monetary_value": [0.0, 12.5, 30.0],
            "segment": ["a", "b", "a"],
        },
        index=pd.Index([7, 8, 9], name="customer_id"),
    )


# --- columns, emptiness, numbers --------------------------------------------------------


def test_check_columns():
    df = pd.DataFrame({"a": [1], "b": [2]})
    check_columns(df, ["a", "b"])
    err = raises(check_columns, df, ["a", "c"], column="c", rule="missing", n_rows=None)
    assert "'a', 'b'" in str(err)
    dup = pd.DataFrame([[1, 2]], columns=["a", "a"])
    raises(check_columns, dup, ["a"], column="a", rule="appears 2 times", n_rows=None)


def test_check_not_empty():
    err = raises(check_not_empty, pd.DataFrame({"a": []}), column=None, rule="empty", n_rows=0)
    assert str(err) == "the transaction log is empty (0 rows)"


@pytest.mark.parametrize(
    ("values", "rule", "n", "kwargs"),
    [
        (pd.Series(["1", "x", 3.0], dtype=object), "must be numeric", 2, {}),
        (pd.Series(["1.5", "2"]), "must be numeric", 2, {}),
        (pd.Series([True, False]), "must be numeric", 2, {}),
        (pd.Series([1.0, np.nan, None]), "must not be missing", 2, {}),
        (pd.Series([1, None], dtype="Int64"), "must not be missing", 1, {}),
        (pd.Series([1.0, np.inf, -np.inf]), "must be finite", 2, {}),
        (pd.Series([1.0, 1.5, 2.25]), "whole numbers", 2, {"integer": True}),
        (pd.Series([-1, 0, 1]), "non-negative", 1, {"nonnegative": True}),
        (pd.Series([-1, 0, 1]), "must be positive", 2, {"positive": True}),
    ],
)
def test_check_numeric_rules(values, rule, n, kwargs):
    raises(check_numeric, values, "x", column="x", rule=rule, n_rows=n, **kwargs)


def test_check_numeric_accepts_numbers_and_returns_new_float_series():
    values = pd.Series([1, decimal.Decimal("2.5"), np.float32(3.0)], dtype=object)
    out = check_numeric(values, "x", nonnegative=True)
    assert out.dtype == np.float64
    assert out.tolist() == [1.0, 2.5, 3.0]
    ints = pd.Series([1, 2, 3])
    out = check_numeric(ints, "x")
    out.iloc[0] = 99.0
    assert ints.tolist() == [1, 2, 3]


# --- dates ------------------------------------------------------------------------------


def test_parse_dates_keeps_datetimes_and_copies():
    s = pd.Series(pd.to_datetime(["2020-01-01", "2020-02-01"]))
    out = parse_dates(s, "d")
    pd.testing.assert_series_equal(out, s)
    out.iloc[0] = pd.Timestamp("1999-01-01")
    assert s.iloc[0] == pd.Timestamp("2020-01-01")
    aware = s.dt.tz_localize("Europe/Berlin")
    assert str(parse_dates(aware, "d").dt.tz) == "Europe/Berlin"


def test_parse_dates_strings_strictly():
    out = parse_dates(pd.Series(["19970101", "19970218"]), "d")
    assert out.tolist() == [pd.Timestamp("1997-01-01"), pd.Timestamp("1997-02-18")]
    # the inferred format is the most common one, and each deviating value counts
    s = pd.Series(["2020-13-01", "2020-01-02", "2020-01-03", "02/01/2020", "soon"])
    raises(parse_dates, s, "d", column="d", rule="could not be parsed.*%Y-%m-%d", n_rows=3)
    raises(parse_dates, pd.Series(["soon", "later"]), "d", column="d", rule="no date format",
           n_rows=2)  # fmt: skip
    eu = parse_dates(pd.Series(["02.01.2020"]), "d", date_format="%d.%m.%Y")
    assert eu.iloc[0] == pd.Timestamp("2020-01-02")
    objs = pd.Series([dt.date(2020, 1, 2), dt.datetime(2020, 1, 3, 12)], dtype=object)
    assert parse_dates(objs, "d").dt.day.tolist() == [2, 3]


def test_parse_dates_rejects_numbers_and_missing():
    raises(parse_dates, pd.Series([19970101, 19970102]), "d", column="d",
           rule="datetime64 or date strings", n_rows=2)  # fmt: skip
    raises(parse_dates, pd.Series(["2020-01-01", None, np.nan]), "d", column="d",
           rule="must not be missing", n_rows=2)  # fmt: skip


def test_parse_cutoff():
    assert parse_cutoff("1997-09-30 17:45", "end") == pd.Timestamp("1997-09-30")
    assert parse_cutoff(dt.date(1997, 9, 30), "end") == pd.Timestamp("1997-09-30")
    aware = pd.Timestamp("2020-01-10 03:00", tz="UTC")
    assert parse_cutoff(aware, "end", "America/New_York") == pd.Timestamp("2020-01-09")
    assert parse_cutoff("2020-01-10", "end", "Asia/Tokyo") == pd.Timestamp("2020-01-10")
    raises(parse_cutoff, aware, "end", column=None, rule="time-zone aware", n_rows=None)
    raises(parse_cutoff, "someday", "end", column=None, rule="not a date", n_rows=None)
    raises(parse_cutoff, pd.NaT, "end", column=None, rule="must be a date", n_rows=None)


# --- transaction logs -------------------------------------------------------------------


def test_validate_transactions_returns_new_normalised_frame():
    tx = pd.DataFrame(
        {"id": ["a", "b"], "day": ["2020-01-01", "2020-01-02"], "usd": [1, 2], "x": [0, 0]},
        index=[10, 20],
    )
    before = tx.copy(deep=True)
    out = validate_transactions(tx, "id", "day", "usd")
    assert list(out.columns) == ["id", "day", "usd"]
    assert out.index.tolist() == [10, 20]
    assert pd.api.types.is_datetime64_dtype(out["day"].dtype)
    assert out["usd"].dtype == np.float64
    out.loc[10, "id"] = "zzz"
    pd.testing.assert_frame_equal(tx, before)


def test_validate_transactions_order_of_checks():
    tx = pd.DataFrame({"id": [None, "b"], "day": ["bad", "2020-01-01"], "usd": [-1.0, 2.0]})
    raises(validate_transactions, tx, "id", "day", "cost", column="cost", rule="missing",
           n_rows=None)  # fmt: skip
    raises(validate_transactions, tx, "id", "day", "usd", column="id",
           rule="must not be missing", n_rows=1)  # fmt: skip
    tx.loc[0, "id"] = "a"
    raises(validate_transactions, tx, "id", "day", "usd", column="day",
           rule="could not be parsed", n_rows=1)  # fmt: skip
    tx.loc[0, "day"] = "2020-01-05"
    err = raises(validate_transactions, tx, "id", "day", "usd", column="usd",
                 rule="non-negative", n_rows=1)  # fmt: skip
    assert "allow_returns=True" in str(err)
    out = validate_transactions(tx, "id", "day", "usd", allow_returns=True)
    assert out["usd"].tolist() == [-1.0, 2.0]


# --- RFM frames -------------------------------------------------------------------------


def test_validate_rfm_accepts_and_copies(rfm):
    before = rfm.copy(deep=True)
    out = validate_rfm(rfm, require_monetary=True)
    assert out is not rfm
    assert out["frequency"].dtype == np.int64
    assert (out[["recency", "T", "monetary_value"]].dtypes == np.float64).all()
    assert out["segment"].tolist() == ["a", "b", "a"]
    out.loc[7, "T"] = 100.0
    pd.testing.assert_frame_equal(rfm, before)
    # float-typed whole frequencies are fine
    assert validate_rfm(rfm.astype({"frequency": float}))["frequency"].tolist() == [0, 2, 5]


@pytest.mark.parametrize(
    ("column", "values", "rule", "n"),
    [
        ("frequency", [0, -1, 5], "non-negative", 1),
        ("frequency", [0, 2.5, 5], "whole numbers", 1),
        ("frequency", [0, np.nan, 5], "must not be missing", 1),
        ("recency", [0.0, -3.5, 10.0], "non-negative", 1),
        ("recency", [0.0, 7.0, 11.0], "must not exceed T", 2),
        ("recency", [1.0, 3.5, 10.0], "must be 0 where frequency is 0", 1),
        ("T", [-1.0, 6.0, 10.0], "non-negative", 1),
        ("T", [4.0, np.inf, 10.0], "must be finite", 1),
        ("T", ["4", "6", "10"], "must be numeric", 3),
        ("monetary_value", [0.0, -12.5, 30.0], "non-negative", 1),
        ("monetary_value", [0.0, np.nan, 30.0], "must not be missing", 1),
    ],
)
def test_validate_rfm_rules(rfm, column, values, rule, n):
    bad = rfm.assign(**{column: values})
    before = bad.copy(deep=True)
    raises(validate_rfm, bad, column=column, rule=rule, n_rows=n, require_monetary=True)
    pd.testing.assert_frame_equal(bad, before)


def test_validate_rfm_zero_T_allowed_and_monetary_optional(rfm):
    # a customer first seen on the last day (T = 0) is valid: no information, no error
    out = validate_rfm(rfm.assign(T=[0.0, 6.0, 10.0], recency=[0.0, 3.5, 10.0]))
    assert out["T"].iloc[0] == 0.0
    # monetary_value is only checked when required
    validate_rfm(rfm.assign(monetary_value=[0.0, -1.0, 1.0]))
    raises(validate_rfm, rfm.drop(columns="monetary_value"), require_monetary=True,
           column="monetary_value", rule="missing", n_rows=None)  # fmt: skip
    raises(validate_rfm, rfm.iloc[:0], column=None, rule="RFM frame is empty", n_rows=0)


def test_validate_rfm_discrete():
    don = pd.DataFrame({"frequency": [0, 2, 3], "recency": [0, 4, 2], "T": [6, 6, 6]})
    raises(validate_rfm, don, discrete=True, column="frequency", rule="must not exceed recency",
           n_rows=1)  # fmt: skip
    raises(validate_rfm, don.assign(recency=[0, 4.5, 3]), discrete=True, column="recency",
           rule="whole numbers", n_rows=1)  # fmt: skip
    assert validate_rfm(don.assign(recency=[0, 4, 3]), discrete=True)["T"].tolist() == [6.0] * 3


def test_validate_weights():
    df = pd.DataFrame({"w": [3, 0, 1]})
    assert validate_weights(df, "w").tolist() == [3.0, 0.0, 1.0]
    raises(validate_weights, df.assign(w=[1, -1, 1]), "w", column="w", rule="non-negative",
           n_rows=1)  # fmt: skip
    raises(validate_weights, df.assign(w=[0, 0, 0]), "w", column="w",
           rule="at least one positive", n_rows=3)  # fmt: skip
    raises(validate_weights, df, "weights", column="weights", rule="missing", n_rows=None)


# --- other engines: the same rules, counted by the engine ---------------------------------

ENGINE_KEYS = dict(customer="id", date="day", amount="usd")


def _engine(df, engine):
    import warnings

    import duckdb
    import polars as pl
    import pyarrow as pa

    if engine == "polars-lazy":
        return pl.from_pandas(df).lazy()
    if engine == "duckdb":
        return duckdb.connect().from_arrow(pa.Table.from_pandas(df, preserve_index=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import dask.dataframe as dd
    return dd.from_pandas(df, npartitions=2)


@pytest.fixture()
def log():
    return pd.DataFrame(
        {
            "id": pd.array([1, 1, 2, 3, 3], dtype="Int64"),
            "day": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-02", "2020-01-05",
                                   "2020-01-09"]),
            "usd": [5.0, 2.0, 3.0, 1.0, 4.0],
        }
    )  # fmt: skip


@pytest.mark.filterwarnings("ignore:Dask support is moving:FutureWarning")
@pytest.mark.parametrize("engine", ["polars-lazy", "duckdb", "dask"])
@pytest.mark.parametrize(
    ("change", "column", "rule", "n"),
    [
        (lambda d: d.drop(columns="usd"), "usd", "missing from the transaction log", None),
        (lambda d: d.iloc[:0], None, "the transaction log is empty", 0),
        (lambda d: d.assign(id=pd.array([1, None, None, 3, 3], dtype="Int64")), "id",
         "must not be missing", 2),
        (lambda d: d.assign(day=d["day"].where(d.index != 3)), "day", "must not be missing", 1),
        (lambda d: d.assign(day=[20200101] * 5), "day", "datetime64 or date strings", 5),
        (lambda d: d.assign(usd=[1.0, np.nan, np.nan, np.nan, 2.0]), "usd",
         "must not be missing", 3),
        (lambda d: d.assign(usd=[1.0, np.inf, -np.inf, 2.0, 2.0]), "usd", "must be finite", 2),
        (lambda d: d.assign(usd=[1.0, -1.0, 2.0, -3.0, 2.0]), "usd", "must be non-negative", 2),
        (lambda d: d.assign(usd=["1", "2", "3", "4", None]), "usd", "must be numeric", 4),
    ],
)  # fmt: skip
def test_engine_transactions_counts_bad_rows_in_the_engine(log, engine, change, column, rule, n):
    from clvmodels._validate import engine_transactions

    bad = change(log)
    keys = dict(ENGINE_KEYS)
    raises(engine_transactions, _engine(bad, engine), **keys, column=column, rule=rule, n_rows=n)
    if column is not None and rule in {"missing from the transaction log", "must be non-negative",
                                       "must be finite", "must be numeric"}:  # fmt: skip
        # pandas raises the same rule for the same rows
        raises(validate_transactions, bad, **keys, column=column, rule=rule, n_rows=n)


@pytest.mark.filterwarnings("ignore:Dask support is moving:FutureWarning")
@pytest.mark.parametrize("engine", ["polars-lazy", "duckdb", "dask"])
def test_engine_transactions_returns_and_dates(log, engine):
    from clvmodels._validate import engine_transactions

    returns = log.assign(usd=[1.0, -1.0, 2.0, -3.0, 2.0])
    err = raises(engine_transactions, _engine(returns, engine), **ENGINE_KEYS, column="usd",
                 rule="non-negative", n_rows=2)  # fmt: skip
    assert "allow_returns=True" in str(err)
    out = engine_transactions(_engine(returns, engine), **ENGINE_KEYS, allow_returns=True)
    assert (out.n_rows, out.first_day, out.last_day, out.tz) == (5, 18262, 18270, "UTC")
    text = log.assign(day=["2020-01-01", "2020-01-02", "2020-01-02", "2020-01-05", "soon"])
    rule = "could not be parsed as dates with format '%Y-%m-%d'"
    # engines stop at the first bad value; DuckDB and polars then count the bad rows
    counted = engine in {"polars-lazy", "duckdb"}
    err = raises(engine_transactions, _engine(text, engine), **ENGINE_KEYS, column="day",
                 rule=rule, n_rows=1 if counted else None)  # fmt: skip
    assert "convert the column to a date type" in str(err)
    assert ("The engine stopped at the first bad value" in str(err)) is not counted


def test_check_columns_takes_frames_and_name_lists():
    check_columns(["a", "b"], ["a"])
    raises(check_columns, ["a", "a"], ["a"], column="a", rule="appears 2 times", n_rows=None)
    raises(check_columns, pd.DataFrame({"a": [1]}), ["b"], column="b", rule="missing",
           n_rows=None)  # fmt: skip


def test_validate_rfm_does_not_share_memory_with_the_caller(rfm):
    out = validate_rfm(rfm, require_monetary=True)
    for column in ["frequency", "recency", "T", "monetary_value"]:
        assert not np.shares_memory(out[column].to_numpy(), rfm[column].to_numpy())
    out.iloc[1, out.columns.get_loc("segment")] = "z"
    assert rfm["segment"].tolist() == ["a", "b", "a"]


def test_engine_transactions_nan_and_null_are_both_missing():
    """polars keeps NaN apart from null; both are missing values, as in pandas."""
    import polars as pl

    from clvmodels._validate import engine_transactions

    tx = pl.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "day": pl.Series(["2020-01-01"] * 4).str.to_date(),
            "usd": [1.0, float("nan"), None, float("inf")],
        }
    )
    raises(engine_transactions, tx, **ENGINE_KEYS, column="usd", rule="must not be missing",
           n_rows=2)  # fmt: skip
    raises(engine_transactions, tx.slice(3), **ENGINE_KEYS, column="usd", rule="must be finite",
           n_rows=1)  # fmt: skip
