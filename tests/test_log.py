"""TransactionLog: the rules on frames of every engine, and every function taking a log.

The rules are held equal on pandas (the numpy path) and on polars, DuckDB and Dask (the
engine path): duplicates, future dates, returns, zero amounts, time zones; every public
function that takes a log gives, on a TransactionLog, what it gives on the raw frame.
"""

from __future__ import annotations

import warnings

import duckdb
import matplotlib
import numpy as np
import pandas as pd
import polars as pl
import pytest

import clvmodels as cm
from clvmodels import plotting

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import dask.dataframe as dd

matplotlib.use("Agg")
pytestmark = pytest.mark.filterwarnings("ignore:Dask support is moving:FutureWarning")
KW = dict(customer="customer_id", date="date", amount="amount")


def engine(df: pd.DataFrame, name: str):
    if name == "pandas":
        return df
    if name == "polars":
        return pl.from_pandas(df).lazy()
    if name == "duckdb":
        return duckdb.connect().from_df(df)
    return dd.from_pandas(df, npartitions=2)


ENGINES = ["pandas", "polars", "duckdb", "dask"]


@pytest.fixture(scope="module")
def tx():
    return cm.datasets.cdnow_transactions(sample=True)[["customer_id", "date", "amount"]]


def small() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["a", "a", "a", "b", "b", "c"],
        "date": pd.to_datetime(["2021-01-01 10:00", "2021-01-01 10:00", "2021-02-01", "2021-01-05",
                                "2021-01-05", "2021-03-01"], format="ISO8601"),
        "amount": [5.0, 5.0, 0.0, 3.0, -1.0, 2.0],
    })  # fmt: skip


@pytest.mark.parametrize("name", ENGINES)
def test_rules_count_the_same_on_every_engine(name):
    df = small()
    before = df.copy()
    with pytest.raises(cm.DataError, match=r"column 'amount': must be non-negative \(1 row\)"):
        cm.TransactionLog(engine(df, name), **KW)
    with pytest.warns(cm.DataWarning, match="1 exact duplicate rows"):
        log = cm.TransactionLog(engine(df, name), **KW, allow_returns=True)
    q = log.quality
    assert (q.rows_read, q.transactions, q.customers) == (6, 6, 3)
    assert (q.duplicates, q.returns, q.zero_amounts, q.revenue) == (1, 1, 1, 14.0)
    dropped = cm.TransactionLog(engine(df, name), **KW, allow_returns=True, duplicates="drop")
    assert dropped.quality.transactions == 5
    assert dropped.quality.excluded == {"exact duplicates dropped": 1}
    assert cm.rfm_summary(dropped, unit="D").loc["a", "monetary_value"] == 0.0
    with pytest.raises(cm.DataError, match="duplicates='drop'"):
        cm.TransactionLog(engine(df, name), **KW, allow_returns=True, duplicates="error")
    pd.testing.assert_frame_equal(df, before)


@pytest.mark.parametrize("name", ENGINES)
def test_future_dates_are_an_error_unless_an_end_is_given(name):
    df = pd.concat([small().iloc[[0, 2, 3, 5]], pd.DataFrame({
        "customer_id": ["c", "d"], "date": pd.to_datetime(["2204-01-01", "2204-05-02"]),
        "amount": [1.0, 1.0]})], ignore_index=True)  # fmt: skip
    with pytest.raises(cm.DataError, match=r"after today .*2204-01-01, 2204-05-02 \(2 rows\)"):
        cm.TransactionLog(engine(df, name), **KW)
    log = cm.TransactionLog(engine(df, name), **KW, observation_end="2021-12-31")
    assert log.quality.excluded == {"after observation_end 2021-12-31": 2}
    assert log.quality.customers == 3 and log.quality.last_date == "2021-03-01"
    rfm = cm.rfm_summary(log, unit="D")
    assert rfm["T"].max() == 364.0  # to the given end, not to 2204


@pytest.mark.parametrize("name", ENGINES[1:])
def test_offsets_in_a_named_zone_on_every_engine(name):
    stamps = pd.to_datetime(["2021-03-01 23:30", "2021-03-02 04:30", "2021-07-01 03:00"])
    df = pd.DataFrame({"customer_id": ["a"] * 3, "date": stamps.tz_localize("UTC")})
    kw = dict(customer="customer_id", date="date", timezone="America/New_York")
    ref = cm.rfm_summary(cm.TransactionLog(df, **kw), unit="D")
    assert ref.loc["a"].tolist() == [1, 121.0, 121.0]  # Mar 1 (twice), Jun 30 (EDT)
    out = cm.rfm_summary(cm.TransactionLog(engine(df, name), **kw), unit="D")
    pd.testing.assert_frame_equal(out, ref)


@pytest.mark.parametrize("name", ["pandas", "duckdb"])
def test_every_function_takes_a_transaction_log(tx, name):
    with pytest.warns(cm.DataWarning, match="21 exact duplicate rows"):  # CDNOW sample
        log = cm.TransactionLog(engine(tx, name), **KW)
    raw = dict(**KW)
    end = "1997-09-30"
    pd.testing.assert_frame_equal(cm.rfm_summary(log), cm.rfm_summary(tx, **raw))
    cal = cm.calibration_holdout(log, calibration_end=end)
    pd.testing.assert_frame_equal(cal, cm.calibration_holdout(tx, **raw, calibration_end=end))
    pd.testing.assert_frame_equal(cm.formula_clv(log), cm.formula_clv(tx, **raw))
    pd.testing.assert_frame_equal(
        cm.formula_holdout(log, cal, calibration_end=end),
        cm.formula_holdout(tx, cal, **raw, calibration_end=end))  # fmt: skip
    pd.testing.assert_series_equal(
        cm.acquisition_cohorts(log), cm.acquisition_cohorts(tx, customer="customer_id",
                                                            date="date"))  # fmt: skip
    bg = cm.BGNBD.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426)
    pd.testing.assert_frame_equal(
        cm.repeat_purchases_over_time(log, bg, calibration_end=end),
        cm.repeat_purchases_over_time(tx, bg, customer="customer_id", date="date",
                                      calibration_end=end))  # fmt: skip
    ax = plotting.plot_alive_history(bg, log, 1)
    ref = plotting.plot_alive_history(bg, tx, 1, customer="customer_id", date="date")
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), ref.lines[0].get_ydata())
    ax = plotting.plot_repeat_purchases(log, bg, calibration_end=end)
    assert len(ax.lines[0].get_ydata()) > 50
    matplotlib.pyplot.close("all")
    # the frames record their unit; the holdout formula reads it
    daily = cm.calibration_holdout(log, calibration_end=end, unit="D")
    assert daily.attrs["unit"] == "D"
    pd.testing.assert_frame_equal(
        cm.formula_holdout(log, daily, calibration_end=end),
        cm.formula_holdout(log, daily, calibration_end=end, unit="D"))  # fmt: skip


def test_column_roles_and_bad_policies():
    with pytest.raises(cm.DataError, match="given for both customer and date"):
        cm.TransactionLog(small(), customer="customer_id", date="customer_id")
    with pytest.raises(cm.DataError, match="duplicates must be one of"):
        cm.TransactionLog(small(), **KW, duplicates="maybe")
    with pytest.raises(cm.DataError, match="not an IANA time zone"):
        cm.TransactionLog(small(), **KW, timezone="Mars/Olympus")
    with pytest.raises(cm.DataError, match="empty"):
        cm.TransactionLog(small().iloc[:0], **KW)


def test_units_travel_with_the_frame(tx):
    """The frame records its unit; the plots and the holdout formula read it from there."""
    log = cm.TransactionLog(tx, **KW, duplicates="drop")
    assert log.quality.excluded == {"exact duplicates dropped": 21}
    months = cm.rfm_summary(log, observation_end="1997-09-30", unit="M")
    assert months.attrs["unit"] == "M" and cm.rfm.frame_unit(months) == "M"
    assert cm.rfm.frame_unit(months, "D") == "D"  # an explicit unit wins
    bg = cm.BGNBD().fit(months)
    ax = plotting.plot_frequency_recency(bg, rfm=months, t=3)
    assert ax.get_xlabel() == "recency: time of the last purchase (months after the first)"
    assert cm.rfm.unit_name(10) == "10 days"
    matplotlib.pyplot.close("all")
