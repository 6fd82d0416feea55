"""litt in rfm_summary / calibration_holdout, Wheat & Morrison's estimate, regularity plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import integrate  # noqa: E402

import clvmodels as cm  # noqa: E402
from clvmodels import plotting  # noqa: E402
from clvmodels.errors import DataError  # noqa: E402
from clvmodels.regularity import ratio_density, sum_log_intertransaction_times  # noqa: E402


@pytest.fixture()
def small():
    """a: purchases on days 0, 0 (same day), 7, 21 and 40 (after the end); b: one day."""
    return pd.DataFrame({
        "id": ["a", "a", "a", "a", "b", "a"],
        "day": pd.to_datetime(["2020-01-01", "2020-01-01", "2020-01-08", "2020-01-22",
                               "2020-01-05", "2020-02-10"]),
    })


def test_litt_by_hand(small):
    rfm = cm.rfm_summary(small, "id", "day", observation_end="2020-01-31", litt=True)
    assert list(rfm.columns) == ["frequency", "recency", "T", "litt"]
    # a: gaps of 7 and 14 days = 1 and 2 weeks (the same-day pair is one purchase)
    assert rfm.loc["a", "litt"] == pytest.approx(np.log(1.0) + np.log(2.0), rel=1e-15)
    assert rfm.loc["b", "litt"] == 0.0
    days = cm.rfm_summary(small, "id", "day", observation_end="2020-01-31", unit="D", litt=True)
    assert days.loc["a", "litt"] == pytest.approx(np.log(7.0) + np.log(14.0), rel=1e-15)
    without = cm.rfm_summary(small, "id", "day", observation_end="2020-01-31")
    pd.testing.assert_frame_equal(rfm.drop(columns="litt"), without)


def test_calibration_litt_is_that_of_the_calibration_period(small):
    cal = cm.calibration_holdout(small, "id", "day", calibration_end="2020-01-10",
                                 observation_end="2020-02-29", litt=True)
    assert cal.columns.get_loc("litt") == cal.columns.get_loc("frequency_holdout") - 1
    assert cal.loc["a", "litt"] == pytest.approx(0.0)  # one gap of exactly one week
    cut = cm.rfm_summary(small, "id", "day", observation_end="2020-01-10", litt=True)
    pd.testing.assert_series_equal(cal["litt"], cut["litt"].loc[cal.index])
    without = cm.calibration_holdout(small, "id", "day", calibration_end="2020-01-10",
                                     observation_end="2020-02-29")
    pd.testing.assert_frame_equal(cal.drop(columns="litt"), without)


def test_litt_equals_the_sum_over_the_cdnow_log():
    tx = cm.datasets.cdnow_transactions(sample=True)
    rfm = cm.rfm_summary(tx, "customer_id", "date", observation_end="1997-09-30", litt=True)
    days = tx[tx["date"] <= "1997-09-30"].drop_duplicates(["customer_id", "date"])
    days = days.sort_values(["customer_id", "date"])
    gaps = days.groupby("customer_id")["date"].diff().dt.days.dropna() / 7.0
    expected = np.log(gaps).groupby(days.loc[gaps.index, "customer_id"]).sum()
    got = rfm["litt"]
    np.testing.assert_allclose(got.loc[expected.index], expected, rtol=1e-12)
    assert (got.drop(expected.index) == 0).all()
    assert (rfm.loc[rfm["frequency"] == 0, "litt"] == 0).all()


def test_litt_pure_function():
    codes = np.array([1, 0, 0, 1, 0])
    day = np.array([5, 0, 3, 5, 10])
    np.testing.assert_allclose(sum_log_intertransaction_times(codes, day, 3, 1.0),
                               [np.log(3) + np.log(7), 0.0, 0.0])


@pytest.mark.filterwarnings("ignore:Dask support is moving:FutureWarning")
@pytest.mark.parametrize("engine", ["polars-lazy", "duckdb", "dask", "pyarrow"])
def test_litt_on_other_engines(engine):
    import duckdb
    import polars as pl
    import pyarrow as pa

    tx = cm.datasets.cdnow_transactions(sample=True)[["customer_id", "date"]]
    native = {
        "polars-lazy": lambda: pl.from_pandas(tx).lazy(),
        "duckdb": lambda: duckdb.connect().from_arrow(pa.Table.from_pandas(tx)),
        "dask": lambda: __import__("dask.dataframe").dataframe.from_pandas(tx, npartitions=2),
        "pyarrow": lambda: pa.Table.from_pandas(tx),
    }[engine]()
    kw = dict(customer="customer_id", date="date", litt=True)
    if engine in ("dask", "pyarrow"):  # no ordered window function in narwhals
        with pytest.raises(NotImplementedError, match=engine):
            cm.rfm_summary(native, **kw)
        return
    ref = cm.rfm_summary(tx, **kw, observation_end="1997-09-30")
    ours = cm.rfm_summary(native, **kw, observation_end="1997-09-30")
    pd.testing.assert_frame_equal(ours, ref, check_exact=False, rtol=1e-12, atol=0)
    ref = cm.calibration_holdout(tx, **kw, calibration_end="1997-09-30")
    ours = cm.calibration_holdout(native, **kw, calibration_end="1997-09-30")
    pd.testing.assert_frame_equal(ours, ref, check_exact=False, rtol=1e-12, atol=0)


def _erlang_log(k: float, n: int, seed: int) -> pd.DataFrame:
    """Customers with Gamma(k) inter-purchase times (rates spread over two orders); the
    last purchase of all is on 2020-01-01, so that none is in the future."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(2.0, 1 / 40.0, n)  # per day: mean gap k / rate days
    gaps = rng.gamma(k, 1.0 / rate[:, None], (n, 4))
    days = np.concatenate([np.zeros((n, 1)), np.cumsum(np.maximum(gaps, 1.0), axis=1)], axis=1)
    return pd.DataFrame({
        "id": np.repeat(np.arange(n), 5),
        "date": pd.Timestamp("2020-01-01")
        + pd.to_timedelta(np.round(days - days.max()).ravel(), "D"),
    })


@pytest.mark.parametrize("k", [1.0, 3.0])
def test_wheat_morrison_recovers_k(k):
    est = cm.estimate_regularity(_erlang_log(k, 4000, 1), "id", "date")
    assert est.n_customers == est.m.size > 3500
    assert est.k == pytest.approx(k, rel=0.15)
    # the ratios of a customer's gaps to their mean average 1
    assert est.ratios.mean() == pytest.approx(1.0, rel=1e-12)


def test_grocery_is_regular_and_estimate_errors():
    from pathlib import Path

    tx = pd.read_csv(Path(__file__).resolve().parents[2] / "shared/data/grocery_elog.csv")
    est = cm.estimate_regularity(tx, "cust", "date")
    assert 1.6 < est.k < 2.2  # BTYDplus: "close to 2"
    one = pd.DataFrame({"id": [1, 1], "date": ["2020-01-01", "2020-01-05"]})
    with pytest.raises(DataError, match="three or more purchase days"):
        cm.estimate_regularity(one, "id", "date")


def test_ratio_density_is_a_density_and_matches_simulation():
    gaps = np.repeat([2, 3, 10], [10, 5, 1]).astype(float)
    for k in (1.0, 2.5):
        total, _ = integrate.quad(lambda y, k=k: ratio_density(np.array([y]), gaps, k)[0], 0, 10,
                                  limit=200)
        assert total == pytest.approx(1.0, abs=1e-6)
    rng = np.random.default_rng(0)
    draws = rng.gamma(2.0, 1.0, (50_000, 3))
    ratios = (draws / draws.mean(axis=1, keepdims=True)).ravel()
    hist, edges = np.histogram(ratios, bins=30, range=(0, 3), density=True)
    mids = (edges[1:] + edges[:-1]) / 2
    np.testing.assert_allclose(hist, ratio_density(mids, np.full(3, 3.0), 2.0), atol=0.03)


def test_regularity_plots():
    est = cm.estimate_regularity(_erlang_log(2.0, 500, 2), "id", "date")
    fig, (ax1, ax2) = plt.subplots(1, 2)
    assert plotting.plot_regularity(est, ax=ax1) is ax1
    assert plotting.plot_intertransaction_times(est, ax=ax2) is ax2
    for ax in (ax1, ax2):
        labels = [line.get_label() for line in ax.lines]
        assert labels[0].startswith("k = 1") and labels[-1].endswith("(Wheat & Morrison)")
        assert len(ax.patches) > 10
    # the Beta(1, 1) line of the Poisson models is flat at 1
    np.testing.assert_allclose(ax1.lines[0].get_ydata(), 1.0)
    plt.close(fig)


@pytest.mark.parametrize("engine", ["duckdb", "polars-lazy"])
def test_wheat_morrison_in_another_engine_equals_pandas(engine):
    """The engine's window functions give the same ratios as numpy (the report reads a
    file in DuckDB); the per-purchase ratios are left empty there."""
    import duckdb
    import polars as pl
    import pyarrow as pa

    tx = _erlang_log(2.0, 600, 3)
    native = {"duckdb": lambda: duckdb.connect().from_arrow(pa.Table.from_pandas(tx)),
              "polars-lazy": lambda: pl.from_pandas(tx).lazy()}[engine]()
    ref = cm.estimate_regularity(tx, "id", "date")
    ours = cm.estimate_regularity(native, "id", "date")
    assert ours.n_customers == ref.n_customers
    np.testing.assert_allclose(np.sort(ours.m), np.sort(ref.m), rtol=1e-12)
    assert ours.k == pytest.approx(ref.k, rel=1e-12)
    assert ours.ratios.size == 0
