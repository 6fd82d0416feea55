"""rfm_summary and calibration_holdout: published CDNOW values, lifetimes, hand examples."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clvmodels import datasets
from clvmodels.errors import DataError
from clvmodels.rfm import calibration_holdout, rfm_summary, unit_days

with warnings.catch_warnings():  # lifetimes imports pkg_resources
    warnings.simplefilter("ignore")
    import lifetimes
    from lifetimes.utils import (
        calibration_and_holdout_data,
        summary_data_from_transaction_data,
    )

LIFETIMES_DATA = Path(lifetimes.__file__).parent / "datasets"
KEYS = dict(customer="customer_id", date="date", amount="amount")


@pytest.fixture(scope="module")
def sample():
    return datasets.cdnow_transactions(sample=True)


@pytest.fixture(scope="module")
def master():
    return datasets.cdnow_transactions()


@pytest.fixture()
def small():
    """Hand-made log: a has a same-day pair and a purchase after the end; c starts late."""
    return pd.DataFrame(
        {
            "cid": ["a", "a", "a", "a", "b", "a", "c"],
            "when": pd.to_datetime(
                [
                    "2020-01-01 09:00",
                    "2020-01-08 10:00",
                    "2020-01-08 18:30",
                    "2020-01-22",
                    "2020-01-15",
                    "2020-02-05",
                    "2020-02-01",
                ],
                format="ISO8601",
            ),
            "usd": [10.0, 5.0, 7.0, 3.0, 4.0, 100.0, 1.0],
        }
    )


def lifetimes_summary(tx, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return summary_data_from_transaction_data(tx, "customer_id", "date", "amount", **kw)


# --- the published CDNOW summary -------------------------------------------------------


def test_reproduces_published_cdnow_summary(sample):
    """Fader, Hardie & Lee (2005) data: x, t_x, T (weeks, 2 decimals) and zbar."""
    pub = pd.read_csv(LIFETIMES_DATA / "cdnow_customers_summary_with_transactions.csv")
    pub = pub.set_index("ID")
    rfm = rfm_summary(sample, **KEYS, observation_end="1997-09-30", unit="W")
    assert len(rfm) == len(pub) == 2357
    assert rfm.index.tolist() == pub.index.tolist()
    np.testing.assert_array_equal(rfm["frequency"], pub["x"])
    np.testing.assert_allclose(rfm["recency"], pub["t_x"], atol=0.01)
    np.testing.assert_allclose(rfm["T"], pub["T"], atol=0.01)
    np.testing.assert_allclose(rfm["monetary_value"], pub["zbar"], atol=0.01)
    assert rfm.loc[1, "T"] == pytest.approx(272 / 7)
    assert rfm.loc[1].tolist() == pytest.approx([2, 213 / 7, 272 / 7, (14.96 + 29.73) / 2])
    assert int(rfm["frequency"].sum()) == 2457  # repeat purchases in weeks 1-39
    assert int((rfm["frequency"] > 0).sum()) == 946  # the Gamma-Gamma repeat buyers


def test_output_dtypes_and_index(sample):
    rfm = rfm_summary(sample, **KEYS, observation_end="1997-09-30")
    assert list(rfm.columns) == ["frequency", "recency", "T", "monetary_value"]
    assert rfm["frequency"].dtype == np.int64
    assert (rfm[["recency", "T", "monetary_value"]].dtypes == np.float64).all()
    assert rfm.index.name == "customer_id"
    assert list(rfm_summary(sample, "customer_id", "date").columns) == ["frequency", "recency", "T"]


# --- lifetimes as the reference implementation ------------------------------------------


@pytest.mark.parametrize(("unit", "kw"), [("D", {"freq": "D"}), ("W", {"freq_multiplier": 7})])
@pytest.mark.parametrize("end", [None, "1997-09-30"])
def test_matches_lifetimes_on_master(master, unit, kw, end):
    ours = rfm_summary(master, **KEYS, observation_end=end, unit=unit)
    ref = lifetimes_summary(master, observation_period_end=end, **kw)
    assert sorted(ref.index) == ours.index.tolist()
    ref = ref.loc[ours.index]
    np.testing.assert_array_equal(ours["frequency"], ref["frequency"])
    for col in ["recency", "T", "monetary_value"]:
        np.testing.assert_allclose(ours[col], ref[col], rtol=0, atol=1e-9)


def test_lifetimes_weekly_periods_are_a_different_convention(sample):
    """lifetimes' freq="W" counts calendar weeks; ours is days / 7 as in the papers."""
    ref = lifetimes_summary(sample, observation_period_end="1997-09-30", freq="W")
    ours = rfm_summary(sample, **KEYS, observation_end="1997-09-30", unit="W")
    assert ref.loc[1, ["recency", "T"]].tolist() == [30.0, 39.0]
    assert ours.loc[1, ["recency", "T"]].tolist() == pytest.approx([213 / 7, 272 / 7])


def test_calibration_holdout_matches_lifetimes(master):
    cal = calibration_holdout(
        master, **KEYS, calibration_end="1997-09-30", observation_end="1998-06-30"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = calibration_and_holdout_data(
            master, "customer_id", "date", "1997-09-30", "1998-06-30",
            freq="D", freq_multiplier=7, monetary_value_col="amount",
        )  # fmt: skip
        # lifetimes averages raw holdout rows; on a log merged by day it averages days
        merged = master.groupby(["customer_id", "date"], as_index=False)["amount"].sum()
        ref_merged = calibration_and_holdout_data(
            merged, "customer_id", "date", "1997-09-30", "1998-06-30",
            freq="D", freq_multiplier=7, monetary_value_col="amount",
        )  # fmt: skip
    assert list(cal.columns) == [
        "frequency", "recency", "T", "monetary_value",
        "frequency_holdout", "monetary_value_holdout", "duration_holdout",
    ]  # fmt: skip
    assert cal.index.tolist() == sorted(ref.index)
    ref, ref_merged = ref.loc[cal.index], ref_merged.loc[cal.index]
    for ours, theirs in [
        ("frequency", "frequency_cal"),
        ("recency", "recency_cal"),
        ("T", "T_cal"),
        ("monetary_value", "monetary_value_cal"),
        ("frequency_holdout", "frequency_holdout"),
        ("duration_holdout", "duration_holdout"),
    ]:
        np.testing.assert_allclose(cal[ours], ref[theirs], rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        cal["monetary_value_holdout"], ref_merged["monetary_value_holdout"], rtol=0, atol=1e-9
    )
    assert not np.allclose(cal["monetary_value_holdout"], ref["monetary_value_holdout"])
    assert cal["frequency_holdout"].dtype == np.int64
    assert (cal["duration_holdout"] == 39.0).all()


def test_calibration_holdout_times_of_day_differ_from_lifetimes():
    """Documented difference: lifetimes splits at midnight, we split by calendar day."""
    tx = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 1],
            "date": pd.to_datetime(
                ["2020-01-01 09:00", "2020-01-10 10:00", "2020-01-20 00:00", "2020-01-31 12:00"]
            ),
            "amount": [1.0, 2.0, 3.0, 4.0],
        }
    )
    ours = calibration_holdout(
        tx, **KEYS, calibration_end="2020-01-10", observation_end="2020-01-31", unit="D"
    )
    assert ours.loc[1].tolist() == [1, 9.0, 9.0, 2.0, 2, 3.5, 21.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = calibration_and_holdout_data(
            tx, "customer_id", "date", "2020-01-10", "2020-01-31", monetary_value_col="amount"
        )
    # 01-10 10:00 went to lifetimes' holdout, 01-31 12:00 was dropped
    assert ref.loc[1, ["frequency_cal", "frequency_holdout"]].tolist() == [0.0, 2.0]
    assert ref.loc[1, "monetary_value_holdout"] == 2.5


def test_calibration_holdout_cdnow_sample_totals(sample):
    """Papers: 2,357 customers; weeks 1-39 calibration, 40-78 holdout."""
    cal = calibration_holdout(
        sample, **KEYS, calibration_end="1997-09-30", observation_end="1998-06-30"
    )
    rfm = rfm_summary(sample, **KEYS, observation_end="1997-09-30")
    pd.testing.assert_frame_equal(cal[rfm.columns], rfm)
    assert len(cal) == 2357
    assert int(cal["frequency_holdout"].sum()) == 1882
    assert cal.loc[1, ["frequency_holdout", "monetary_value_holdout"]].tolist() == [1, 26.48]


# --- hand-computed examples --------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "days"), [("D", 1), ("W", 7), ("M", 30.4375), ("Y", 365.25), (14, 14), (0.5, 0.5)]
)
def test_hand_example_units(small, unit, days):
    rfm = rfm_summary(small, "cid", "when", "usd", observation_end="2020-01-29", unit=unit)
    assert rfm.index.tolist() == ["a", "b"]  # c's first purchase is after the end
    assert rfm["frequency"].tolist() == [2, 0]  # the two 2020-01-08 rows are one purchase
    np.testing.assert_allclose(rfm["recency"], [21 / days, 0.0])
    np.testing.assert_allclose(rfm["T"], [28 / days, 14 / days])
    np.testing.assert_allclose(rfm["monetary_value"], [(5 + 7 + 3) / 2, 0.0])
    assert unit_days(unit) == days


def test_default_observation_end_is_last_transaction_day(small):
    rfm = rfm_summary(small, "cid", "when", "usd", unit="D")
    assert rfm.index.tolist() == ["a", "b", "c"]
    assert rfm.loc["a"].tolist() == [3, 35.0, 35.0, (12 + 3 + 100) / 3]
    assert rfm.loc["c"].tolist() == [0, 0.0, 4.0, 0.0]


def test_purchase_on_observation_end_counts_whatever_the_time(small):
    tx = pd.concat(
        [small, pd.DataFrame({"cid": ["b"], "when": [pd.Timestamp("2020-01-29 23:59")]})],
        ignore_index=True,
    )
    rfm = rfm_summary(tx, "cid", "when", observation_end="2020-01-29 08:00", unit="D")
    assert rfm.loc["b"].tolist() == [1, 14.0, 14.0]


def test_allow_returns_nets_per_day(small):
    tx = small.copy()
    tx.loc[2, "usd"] = -2.0  # a return on 2020-01-08 against the 5.00 purchase
    with pytest.raises(DataError, match="allow_returns"):
        rfm_summary(tx, "cid", "when", "usd", observation_end="2020-01-29")
    rfm = rfm_summary(tx, "cid", "when", "usd", observation_end="2020-01-29", allow_returns=True)
    assert rfm.loc["a", "frequency"] == 2
    assert rfm.loc["a", "monetary_value"] == pytest.approx((5 - 2 + 3) / 2)


def test_string_dates_and_ids_of_mixed_types():
    tx = pd.DataFrame(
        {"cid": [2, "x", 2, "x"], "when": ["2021-03-01", "2021-03-02", "2021-03-15", "2021-03-02"]}
    )
    rfm = rfm_summary(tx, "cid", "when", unit="D")
    assert set(rfm.index) == {2, "x"}
    assert rfm.loc[2].tolist() == [1, 14.0, 14.0]
    assert rfm.loc["x"].tolist() == [0, 0.0, 13.0]
    fmt = rfm_summary(
        tx.assign(when=["01.03.2021", "02.03.2021", "15.03.2021", "02.03.2021"]),
        "cid",
        "when",
        unit="D",
        date_format="%d.%m.%Y",
    )
    pd.testing.assert_frame_equal(fmt, rfm)


def test_time_zone_aware_dates_take_the_calendar_day_of_the_named_zone():
    local = pd.to_datetime(["2020-01-01 23:30", "2020-01-05 00:30", "2020-01-09 22:00"])
    tx = pd.DataFrame({"cid": [1, 1, 1], "when": local.tz_localize("America/New_York")})
    ny = dict(observation_end="2020-01-09", unit="D", timezone="America/New_York")
    rfm = rfm_summary(tx, "cid", "when", **ny)
    assert rfm.loc[1].tolist() == [2, 8.0, 8.0]
    # default UTC: the days are 01-02, 01-05 and 01-10 (after the end, excluded)
    utc = rfm_summary(tx, "cid", "when", observation_end="2020-01-09", unit="D")
    assert utc.loc[1].tolist() == [1, 3.0, 7.0]
    # an aware end is converted to the zone: 03:00 UTC on the 10th is the 9th in NY
    aware = rfm_summary(tx, "cid", "when", **{**ny, "observation_end": pd.Timestamp(
        "2020-01-10 03:00", tz="UTC")})  # fmt: skip
    pd.testing.assert_frame_equal(aware, rfm)
    # naive timestamps are wall-clock time in the zone
    naive = rfm_summary(tx.assign(when=local), "cid", "when", **ny)
    pd.testing.assert_frame_equal(naive, rfm)


def test_matches_brute_force_on_random_logs():
    """The vectorised summary equals a per-customer loop written from the definitions."""
    rng = np.random.default_rng(42)
    n = 3000
    tx = pd.DataFrame(
        {
            "cid": rng.integers(0, 300, n),
            "when": pd.Timestamp("2019-01-01")
            + pd.to_timedelta(rng.integers(0, 400 * 24, n), unit="h"),
            "usd": rng.gamma(2.0, 10.0, n).round(2),
        }
    )
    end = pd.Timestamp("2019-11-15")
    rfm = rfm_summary(tx, "cid", "when", "usd", observation_end=end, unit=3.5)
    expected = {}
    for cid, g in tx.groupby("cid"):
        days = g.assign(day=g["when"].dt.normalize())
        days = days[days["day"] <= end].groupby("day")["usd"].sum().sort_index()
        if len(days) == 0:
            continue
        first, last = days.index[0], days.index[-1]
        expected[cid] = [
            len(days) - 1,
            (last - first).days / 3.5,
            (end - first).days / 3.5,
            days.iloc[1:].mean() if len(days) > 1 else 0.0,
        ]
    ref = pd.DataFrame.from_dict(
        expected, orient="index", columns=["frequency", "recency", "T", "monetary_value"]
    )
    assert rfm.index.tolist() == ref.index.tolist()
    np.testing.assert_allclose(rfm.to_numpy(float), ref.to_numpy(float), rtol=1e-12)


def test_calibration_holdout_hand_example(small):
    cal = calibration_holdout(
        small, "cid", "when", "usd",
        calibration_end="2020-01-08", observation_end="2020-02-01", unit="D",
    )  # fmt: skip
    # a: 01-01, 01-08 (10:00 and 18:30, both calibration), then 01-22; 02-05 is after the end
    # b: first seen on 01-15 (holdout) and c on 02-01: not in the calibration cohort
    assert cal.index.tolist() == ["a"]
    assert cal.loc["a"].tolist() == [1, 7.0, 7.0, 12.0, 1, 3.0, 24.0]


# --- errors: each names column, rule and count; the caller's frame is never changed -------


def raises_unchanged(df, func, match, column, n_rows, **kwargs):
    before = df.copy(deep=True)
    with pytest.raises(DataError, match=match) as info:
        func(df, **kwargs)
    pd.testing.assert_frame_equal(df, before)
    assert info.value.column == column
    assert info.value.n_rows == n_rows
    return info.value


BASE = dict(customer="cid", date="when", amount="usd")


def test_error_missing_column(small):
    raises_unchanged(small, rfm_summary, "missing", "price", None, **{**BASE, "amount": "price"})
    raises_unchanged(small, rfm_summary, "missing", "cust", None, **{**BASE, "customer": "cust"})


def test_error_empty(small):
    raises_unchanged(small.iloc[:0], rfm_summary, "empty", None, 0, **BASE)


def test_error_null_customers_and_dates(small):
    tx = small.astype({"cid": object})
    tx.loc[[1, 4], "cid"] = None
    raises_unchanged(tx, rfm_summary, "must not be missing", "cid", 2, **BASE)
    tx = small.copy()
    tx.loc[3, "when"] = pd.NaT
    raises_unchanged(tx, rfm_summary, "must not be missing", "when", 1, **BASE)


def test_error_unparseable_dates(small):
    tx = small.assign(when=small["when"].dt.strftime("%Y-%m-%d"))
    tx.loc[[0, 2, 5], "when"] = ["2020-13-01", "yesterday", "2020/01/08"]
    err = raises_unchanged(tx, rfm_summary, "could not be parsed", "when", 3, **BASE)
    assert "(3 rows)" in str(err)
    ints = small.assign(when=small["when"].dt.strftime("%Y%m%d").astype(int))
    raises_unchanged(ints, rfm_summary, "datetime64 or date strings", "when", 7, **BASE)


def test_mixed_utc_offsets_are_converted_to_the_zone():
    tx = pd.DataFrame(
        {
            "cid": [1, 1, 2],
            "when": ["2020-01-01T10:00+01:00", "2020-01-02T23:30+01:00", "2020-01-02T22:00-05:00"],
        }
    )
    before = tx.copy()
    rfm = rfm_summary(tx, "cid", "when", unit="D")  # UTC: 01-01, 01-02, 01-03
    assert rfm["T"].tolist() == [2.0, 0.0] and rfm["recency"].tolist() == [1.0, 0.0]
    tokyo = rfm_summary(tx, "cid", "when", unit="D", timezone="Asia/Tokyo")  # 01-01, 01-03, 01-03
    assert tokyo["recency"].tolist() == [2.0, 0.0]
    pd.testing.assert_frame_equal(tx, before)


def test_error_bad_amounts(small):
    tx = small.copy()
    tx.loc[[1, 3], "usd"] = [-1.0, -2.5]
    raises_unchanged(tx, rfm_summary, "non-negative", "usd", 2, **BASE)
    tx = small.copy()
    tx.loc[4, "usd"] = np.nan
    raises_unchanged(tx, rfm_summary, "must not be missing", "usd", 1, **BASE)
    tx = small.astype({"usd": object})
    tx.loc[[0, 1, 2], "usd"] = ["12.50", "n/a", True]
    raises_unchanged(tx, rfm_summary, "must be numeric", "usd", 3, **BASE)
    tx = small.copy()
    tx.loc[0, "usd"] = np.inf
    raises_unchanged(tx, rfm_summary, "finite", "usd", 1, **BASE)


def test_error_observation_end_before_first_transaction(small):
    raises_unchanged(
        small, rfm_summary, "after observation_end 2019-12-31", "when", 7,
        **BASE, observation_end="2019-12-31",
    )  # fmt: skip


def test_error_calibration_end_not_before_observation_end(small):
    raises_unchanged(
        small, calibration_holdout, "must be before observation_end", None, None,
        **BASE, calibration_end="2020-02-02", observation_end="2020-02-01",
    )  # fmt: skip
    raises_unchanged(
        small, calibration_holdout, "after calibration_end", "when", 6,
        **BASE, calibration_end="2019-12-01", observation_end="2020-02-01",
    )  # fmt: skip
    with pytest.raises(TypeError, match="calibration_end"):
        calibration_holdout(small, **BASE)


def test_aware_end_with_naive_dates_is_read_in_the_zone(small):
    aware = rfm_summary(small, **BASE, observation_end=pd.Timestamp("2020-01-29 02:00",
                                                                    tz="Europe/Berlin"))
    pd.testing.assert_frame_equal(aware, rfm_summary(small, **BASE, observation_end="2020-01-29"))


@pytest.mark.parametrize("unit", ["w", "week", 0, -7, float("nan"), True])
def test_error_bad_unit(small, unit):
    with pytest.raises(ValueError, match="unit"):
        rfm_summary(small, **BASE, unit=unit)


def test_successful_calls_leave_frame_unchanged(small):
    tx = small.assign(when=small["when"].dt.strftime("%Y-%m-%d %H:%M"))
    before = tx.copy(deep=True)
    rfm_summary(tx, **BASE, observation_end="2020-01-29")
    calibration_holdout(tx, **BASE, calibration_end="2020-01-10")
    pd.testing.assert_frame_equal(tx, before)


def test_sparse_string_and_dense_integer_ids_agree(sample):
    """Compact integer ids take a counting path; sparse or string ids a hashing path."""
    dense = rfm_summary(sample, **KEYS, observation_end="1997-09-30")
    sparse = rfm_summary(
        sample.assign(customer_id=sample["customer_id"] * 10**12 + 7),
        **KEYS,
        observation_end="1997-09-30",
    )
    strings = rfm_summary(
        sample.assign(customer_id="c" + sample["customer_id"].astype(str).str.zfill(4)),
        **KEYS,
        observation_end="1997-09-30",
    )
    np.testing.assert_array_equal(sparse.index, dense.index * 10**12 + 7)
    np.testing.assert_array_equal(strings.index, "c" + dense.index.astype(str).str.zfill(4))
    for other in (sparse, strings):
        np.testing.assert_array_equal(other.to_numpy(), dense.to_numpy())


def test_other_engines_through_to_pandas(small):
    pa = pytest.importorskip("pyarrow")
    table = pa.Table.from_pandas(small, preserve_index=False)
    expected = rfm_summary(small, **BASE, observation_end="2020-01-29")
    pd.testing.assert_frame_equal(
        rfm_summary(table, **BASE, observation_end="2020-01-29"), expected
    )
    with pytest.raises(TypeError, match="pandas DataFrame"):
        rfm_summary(small.to_dict(), **BASE)
