"""formula_clv, acquisition_cost and the lifespan estimate: hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clvmodels import datasets
from clvmodels.errors import DataError
from clvmodels.formula import acquisition_cost, estimate_lifespan, formula_clv
from clvmodels.rfm import rfm_summary

COLUMNS = [
    "customers", "purchases", "revenue", "avg_purchase_value", "purchase_frequency",
    "customer_value", "lifespan", "clv", "net_clv", "clv_to_cac",
]  # fmt: skip
YEARS_2020 = 366 / 365.25  # 2020-01-01 to 2020-12-31 inclusive (leap year)


@pytest.fixture()
def tx():
    """Customer 1: two rows on 01-01 (one purchase) and one on 07-01; customer 2: one."""
    return pd.DataFrame(
        {
            "id": [1, 1, 1, 2],
            "day": pd.to_datetime(["2020-01-01", "2020-01-01", "2020-07-01", "2020-12-31"]),
            "usd": [10.0, 5.0, 30.0, 15.0],
            "seg": ["A", "A", "A", "B"],
        }
    )


def test_hand_example_all(tx):
    out = formula_clv(tx, "id", "day", "usd", lifespan=2.0, margin=0.5, acquisition_cost=10.0)
    assert list(out.columns) == COLUMNS
    assert out.index.tolist() == ["all"]
    row = out.loc["all"]
    assert row["customers"] == 2 and row["purchases"] == 3
    assert row["revenue"] == 60.0
    assert row["avg_purchase_value"] == pytest.approx(20.0)
    assert row["purchase_frequency"] == pytest.approx(3 / 2 / YEARS_2020)
    assert row["customer_value"] == pytest.approx(30 / YEARS_2020)
    assert row["lifespan"] == 2.0
    assert row["clv"] == pytest.approx(60 / YEARS_2020)
    assert row["net_clv"] == pytest.approx(30 / YEARS_2020 - 10)
    assert row["clv_to_cac"] == pytest.approx(3 / YEARS_2020)
    assert out["customers"].dtype == np.int64 and out["purchases"].dtype == np.int64


def test_segment_rows_and_cost_per_segment(tx):
    before = tx.copy(deep=True)
    out = formula_clv(
        tx, "id", "day", "usd", segment="seg", lifespan=3.0, acquisition_cost={"A": 20, "B": 0}
    )
    pd.testing.assert_frame_equal(tx, before)
    assert out.index.tolist() == ["A", "B"] and out.index.name == "seg"
    assert out["customers"].tolist() == [1, 1]
    assert out["purchases"].tolist() == [2, 1]
    assert out["revenue"].tolist() == [45.0, 15.0]
    np.testing.assert_allclose(out["avg_purchase_value"], [22.5, 15.0])
    # the window is the whole log's, the same for both segments
    np.testing.assert_allclose(out["purchase_frequency"], [2 / YEARS_2020, 1 / YEARS_2020])
    np.testing.assert_allclose(out["clv"], [135 / YEARS_2020, 45 / YEARS_2020])
    np.testing.assert_allclose(out["net_clv"], [135 / YEARS_2020 - 20, 45 / YEARS_2020])
    assert out.loc["A", "clv_to_cac"] == pytest.approx(135 / YEARS_2020 / 20)
    # no acquisition cost: no ratio (rules.clv_to_cac), never infinite
    assert np.isnan(out.loc["B", "clv_to_cac"])


def test_net_clv_negative_and_zero_cac(tx):
    out = formula_clv(tx, "id", "day", "usd", lifespan=1.0, margin=0.1, acquisition_cost=100.0)
    assert out.loc["all", "net_clv"] == pytest.approx(3 / YEARS_2020 - 100)
    assert out.loc["all", "net_clv"] < 0
    assert out.loc["all", "clv_to_cac"] == pytest.approx(3 / YEARS_2020 / 100)
    zero = formula_clv(tx, "id", "day", "usd", lifespan=0.0)
    assert zero.loc["all", "clv"] == 0.0
    assert np.isnan(zero.loc["all", "clv_to_cac"])


def test_observation_end_limits_the_window(tx):
    out = formula_clv(tx, "id", "day", "usd", lifespan=1.0, observation_end="2020-07-01")
    assert out.loc["all", ["customers", "purchases", "revenue"]].tolist() == [1, 2, 45.0]
    assert out.loc["all", "purchase_frequency"] == pytest.approx(2 / (183 / 365.25))


def test_allow_returns(tx):
    tx = tx.assign(usd=[10.0, -5.0, 30.0, 15.0])
    with pytest.raises(DataError, match="non-negative"):
        formula_clv(tx, "id", "day", "usd", lifespan=1.0)
    out = formula_clv(tx, "id", "day", "usd", lifespan=1.0, allow_returns=True)
    assert out.loc["all", ["purchases", "revenue"]].tolist() == [3, 50.0]


def test_acquisition_cost():
    assert acquisition_cost(30_000, 20_000, 1_000) == 50.0
    np.testing.assert_allclose(acquisition_cost([100, 0], [50, 10], [3, 2]), [50.0, 5.0])
    for args in [(-1, 0, 1), (1, np.nan, 1), (1, 1, 0), (1, 1, -5)]:
        with pytest.raises(DataError):
            acquisition_cost(*args)


# --- lifespan estimation ----------------------------------------------------------------


@pytest.fixture()
def churn_log():
    """End 2021-12-31, so the at-risk year ends 2020-12-31 (365 days earlier)."""
    rows = [
        (1, "2020-03-01"), (1, "2021-05-01"),  # at risk, retained
        (2, "2020-06-01"),  # at risk, churned
        (3, "2020-12-31"),  # at risk (the boundary day counts), churned
        (4, "2021-12-31"),  # acquired in the last year: not at risk
        (5, "2019-12-31"),  # more than 365 days before 2020-12-31: not active then
    ]  # fmt: skip
    df = pd.DataFrame(rows, columns=["id", "day"]).assign(usd=10.0)
    return df.assign(day=pd.to_datetime(df["day"]))


def test_estimated_lifespan_hand_example(churn_log):
    out = formula_clv(churn_log, "id", "day", "usd")
    # at risk {1, 2, 3}, retained {1}: r = 1/3, lifespan = 1 / (1 - r) = 1.5 years
    assert out.loc["all", "lifespan"] == pytest.approx(1.5)
    # 180 days: active on 2020-12-31 means a purchase after 2020-07-04: only customer 3,
    # who is not active in the 180 days to 2021-12-31: r = 0, lifespan 1 year
    short = formula_clv(churn_log, "id", "day", "usd", churn_threshold_days=180)
    assert short.loc["all", "lifespan"] == pytest.approx(1.0)
    segs = churn_log.assign(seg=churn_log["id"].map({1: "x", 2: "x", 3: "y", 4: "y", 5: "y"}))
    by = formula_clv(segs, "id", "day", "usd", segment="seg")
    # x: at risk {1, 2}, retained {1} -> 2 years; y: at risk {3}, retained {} -> 1 year
    assert by["lifespan"].tolist() == pytest.approx([2.0, 1.0])


def test_estimate_lifespan_function():
    codes, day = np.array([0, 1, 2, 3, 3]), np.array([100, 200, 300, 400, 700])
    life, at_risk, kept = estimate_lifespan(codes, day, end_day=765)
    assert (life.tolist(), at_risk.tolist(), kept.tolist()) == ([4 / 3], [4], [1])
    group = np.array([0, 0, 1, 1])
    life, at_risk, kept = estimate_lifespan(codes, day, 765, 365, group=group, n_groups=3)
    assert at_risk.tolist() == [2, 2, 0] and kept.tolist() == [0, 1, 0]
    assert life[:2].tolist() == [1.0, 2.0] and np.isnan(life[2])
    life, _, _ = estimate_lifespan(np.array([0, 0]), np.array([100, 500]), 765)
    assert life.tolist() == [np.inf]  # nobody churned
    with pytest.raises(DataError, match="churn_threshold_days"):
        estimate_lifespan(codes, day, 765, 366)


def test_cdnow_formula_and_lifespan_sensitivity():
    tx = datasets.cdnow_transactions()
    out = formula_clv(tx, "customer_id", "date", "amount")
    row = out.loc["all"]
    # independent pandas computation of the same definitions
    days = tx.groupby(["customer_id", "date"]).size()
    years = 546 / 365.25  # 1997-01-01 to 1998-06-30 inclusive
    rfm = rfm_summary(tx, "customer_id", "date")
    assert row["customers"] == 23_570
    assert row["purchases"] == len(days) == int((rfm["frequency"] + 1).sum()) == 67_591
    assert row["revenue"] == pytest.approx(tx["amount"].sum())
    assert row["purchase_frequency"] == pytest.approx(len(days) / 23_570 / years)
    last = tx.groupby("customer_id")["date"].max()
    retained = int((last > pd.Timestamp("1997-06-30")).sum())  # everyone was at risk
    assert row["lifespan"] == pytest.approx(23_570 / (23_570 - retained))
    # the sensitivity numbers quoted in formula_clv's docstring
    thresholds = [30, 60, 90, 180, 270, 365]
    quoted = [1.2616, 1.4043, 1.4837, 1.2949, 1.4238, 1.5468]
    got = [
        formula_clv(tx, "customer_id", "date", "amount", churn_threshold_days=t).loc[
            "all", "lifespan"
        ]
        for t in thresholds
    ]
    np.testing.assert_allclose(got, quoted, atol=5e-5)


# --- errors -----------------------------------------------------------------------------


def raises_unchanged(df, match, column, n_rows, **kwargs):
    before = df.copy(deep=True)
    args = dict(customer="id", date="day", amount="usd") | kwargs
    with pytest.raises(DataError, match=match) as info:
        formula_clv(df, **args)
    pd.testing.assert_frame_equal(df, before)
    assert (info.value.column, info.value.n_rows) == (column, n_rows)


def test_error_customer_in_two_segments(tx):
    bad = tx.assign(seg=["A", "B", "A", "B"])
    raises_unchanged(bad, r"1 customer\(s\) in more than one segment", "seg", 3,
                     segment="seg", lifespan=1.0)  # fmt: skip


def test_error_segment_column(tx):
    raises_unchanged(tx, "missing", "region", None, segment="region", lifespan=1.0)
    bad = tx.assign(seg=["A", "A", None, "B"])
    raises_unchanged(bad, "must not be missing", "seg", 1, segment="seg", lifespan=1.0)
    raises_unchanged(tx, r"no value for segments \['B'\]", "seg", None, segment="seg",
                     lifespan=1.0, acquisition_cost={"A": 1.0})  # fmt: skip


def test_error_parameters(tx):
    raises_unchanged(tx, r"margin must be in \[0, 1\]", None, None, margin=30, lifespan=1.0)
    raises_unchanged(tx, "lifespan must be finite and >= 0", None, None, lifespan=-1.0)
    raises_unchanged(tx, "acquisition_cost.*an acquisition cost must be a finite number >= 0",
                     None, None, lifespan=1, acquisition_cost=-5)
    raises_unchanged(tx, r"churn_threshold_days must be in \(0, 365\]", None, None,
                     churn_threshold_days=400)  # fmt: skip


def test_error_lifespan_not_estimable(tx, churn_log):
    # up to 2020-07-01 tx covers half a year: nobody can be active a year before the end
    raises_unchanged(tx, "cannot estimate the lifespan.*nobody was active", None, 1,
                     observation_end="2020-07-01")  # fmt: skip
    # to 2020-12-31 customer 1 (2020-01-01) is at risk and retained (2020-07-01)
    raises_unchanged(tx, "nobody churned", None, 2)
    everyone_stays = churn_log[churn_log["id"] == 1]
    raises_unchanged(everyone_stays, r"segments \['all'\]: nobody churned", None, 1)


def test_error_transactions_are_validated(tx):
    bad = tx.astype({"usd": object})
    bad.loc[0, "usd"] = "10"
    raises_unchanged(bad, "must be numeric", "usd", 1, lifespan=1.0)
    raises_unchanged(tx.iloc[:0], "empty", None, 0, lifespan=1.0)
