"""rfm_summary and calibration_holdout on polars, DuckDB, Dask and pyarrow: pandas' numbers.

The pandas path (vectorised numpy) and the engine path (one narwhals query run by the
engine) are two implementations of the same statistics; these tests hold them equal to
1e-12 on CDNOW, on random logs and on the edge cases of the conventions.
"""

from __future__ import annotations

import warnings

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from clvmodels import datasets
from clvmodels.rfm import calibration_holdout, rfm_summary

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import dask.dataframe as dd

pytestmark = pytest.mark.filterwarnings("ignore:Dask support is moving:FutureWarning")

KEYS = dict(customer="customer_id", date="date", amount="amount")
ENGINES = ["polars", "polars-lazy", "duckdb", "dask", "pyarrow"]


def to_engine(df: pd.DataFrame, engine: str):
    """The same log in another engine (columns and values unchanged)."""
    if engine == "polars":
        return pl.from_pandas(df)
    if engine == "polars-lazy":
        return pl.from_pandas(df).lazy()
    if engine == "duckdb":
        return duckdb.connect().from_arrow(pa.Table.from_pandas(df, preserve_index=False))
    if engine == "dask":
        return dd.from_pandas(df, npartitions=3)
    if engine == "pyarrow":
        return pa.Table.from_pandas(df, preserve_index=False)
    raise ValueError(engine)


def assert_same(ours: pd.DataFrame, ref: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(ours, ref, check_exact=False, rtol=1e-12, atol=0)
    assert ours.index.tolist() == ref.index.tolist()


@pytest.fixture(scope="module")
def master():
    return datasets.cdnow_transactions()[["customer_id", "date", "amount"]]


@pytest.fixture(scope="module")
def random_log():
    """Times of day, same-day repeats, string ids, purchases after the end."""
    rng = np.random.default_rng(7)
    n = 4000
    return pd.DataFrame(
        {
            "customer_id": np.char.add("c", rng.integers(0, 400, n).astype(str)),
            "date": pd.Timestamp("2019-01-01")
            + pd.to_timedelta(rng.integers(0, 500 * 24 * 60, n), unit="min"),
            "amount": rng.gamma(2.0, 10.0, n).round(2),
        }
    )


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("end", [None, "1997-09-30"])
def test_rfm_summary_equals_pandas_on_cdnow(master, engine, end):
    ref = rfm_summary(master, **KEYS, observation_end=end, unit="W")
    assert_same(rfm_summary(to_engine(master, engine), **KEYS, observation_end=end), ref)


@pytest.mark.parametrize("engine", ENGINES)
def test_calibration_holdout_equals_pandas_on_cdnow(master, engine):
    kw = dict(calibration_end="1997-09-30", observation_end="1998-06-30")
    ref = calibration_holdout(master, **KEYS, **kw)
    out = calibration_holdout(to_engine(master, engine), **KEYS, **kw)
    assert_same(out, ref)
    assert out["frequency_holdout"].dtype == np.int64
    assert int(out["frequency_holdout"].sum()) == int(ref["frequency_holdout"].sum())


@pytest.mark.parametrize("engine", ENGINES)
def test_random_log_with_times_of_day_and_string_ids(random_log, engine):
    tx = to_engine(random_log, engine)
    for kw in [
        dict(observation_end="2020-01-15", unit=3.5),
        dict(unit="D"),
        dict(observation_end="2019-12-31", unit="M", amount=None),
    ]:
        keys = {**KEYS, "amount": kw.pop("amount", "amount")}
        assert_same(rfm_summary(tx, **keys, **kw), rfm_summary(random_log, **keys, **kw))
    kw = dict(calibration_end="2019-09-30", observation_end="2020-03-01", unit="W")
    assert_same(
        calibration_holdout(tx, **KEYS, **kw), calibration_holdout(random_log, **KEYS, **kw)
    )
    no_amount = dict(KEYS, amount=None)
    assert_same(
        calibration_holdout(tx, **no_amount, **kw),
        calibration_holdout(random_log, **no_amount, **kw),
    )


@pytest.mark.parametrize("engine", ["polars", "dask", "pyarrow"])
def test_time_zone_aware_dates_use_their_local_day(engine):
    local = pd.to_datetime(["2020-01-01 23:30", "2020-01-05 00:30", "2020-01-09 22:00"])
    tx = pd.DataFrame({"customer_id": [1, 1, 1], "date": local.tz_localize("America/New_York")})
    ny = dict(observation_end="2020-01-09", unit="D", timezone="America/New_York")
    ref = rfm_summary(tx, "customer_id", "date", **ny)
    assert ref.loc[1].tolist() == [2, 8.0, 8.0]  # in UTC the days would be 01-02 .. 01-10
    assert_same(rfm_summary(to_engine(tx, engine), "customer_id", "date", **ny), ref)
    utc = rfm_summary(tx, "customer_id", "date", observation_end="2020-01-09", unit="D")
    assert_same(rfm_summary(to_engine(tx, engine), "customer_id", "date", unit="D",
                            observation_end="2020-01-09"), utc)  # fmt: skip


def test_duckdb_timestamptz_takes_the_day_of_the_named_zone():
    """DuckDB stores instants; their calendar day is the one in `timezone`, converted
    with Python's zone database (no ICU extension needed, no session setting read)."""
    con = duckdb.connect()
    rel = con.sql(
        "SELECT 1 AS customer_id, strptime(d, '%Y-%m-%d %H:%M:%S%z') AS date FROM (VALUES "
        "('2020-01-02 04:30:00+00'), ('2020-01-05 05:30:00+00'), ('2020-01-10 03:00:00+00'),"
        "('2020-07-10 03:30:00+00')) t(d)"
    )
    out = rfm_summary(rel, "customer_id", "date", unit="D", timezone="America/New_York")
    # 01-01, 01-05, 01-09 (EST, UTC-5) and 07-09 (EDT, UTC-4) in New York
    assert out.loc[1].tolist() == [3, 190.0, 190.0]


@pytest.mark.parametrize("engine", ["polars", "duckdb", "dask"])
def test_string_and_date_typed_columns(random_log, engine):
    ref = rfm_summary(random_log, **KEYS, unit="D")
    as_text = random_log.assign(date=random_log["date"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    assert_same(rfm_summary(to_engine(as_text, engine), **KEYS, unit="D"), ref)
    fmt = random_log.assign(date=random_log["date"].dt.strftime("%d.%m.%Y"))
    out = rfm_summary(to_engine(fmt, engine), **KEYS, unit="D", date_format="%d.%m.%Y")
    assert_same(out, ref)
    dates = pl.from_pandas(random_log).with_columns(pl.col("date").dt.date())
    assert_same(rfm_summary(dates, **KEYS, unit="D"), ref)


def test_only_per_customer_results_are_collected(random_log, monkeypatch):
    """A lazy frame is aggregated by its engine: nothing larger than one row per customer
    (and the validation's single row of counts) is ever materialised."""
    heights = []
    collect = pl.LazyFrame.collect

    def spy(self, *args, **kwargs):
        out = collect(self, *args, **kwargs)
        heights.append(out.height)
        return out

    monkeypatch.setattr(pl.LazyFrame, "collect", spy)
    lazy = pl.from_pandas(random_log).lazy()
    rfm = rfm_summary(lazy, **KEYS, observation_end="2020-01-15")
    calibration_holdout(lazy, **KEYS, calibration_end="2019-09-30")
    assert heights and max(heights) <= len(rfm) < len(random_log)


def test_unsupported_input_is_a_type_error():
    with pytest.raises(TypeError, match="pandas DataFrame or a polars, DuckDB, Dask"):
        rfm_summary({"customer_id": [1]}, **KEYS)
    with pytest.raises(TypeError, match="got Series"):
        rfm_summary(pl.Series([1, 2]), **KEYS)
