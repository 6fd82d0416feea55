"""clvmodels.analysis: the report's analysis as one function over a TransactionLog.

Segments: small ones pooled into "other" (fewer fits, fewer warnings), a one-valued
column is one segment; the result object holds what the report shows, and its numbers
are the package's own functions' on the same log.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import clvmodels as cm
from clvmodels import analysis


def simulated_log(n_customers: int = 400, seed: int = 11) -> pd.DataFrame:
    """BG/NBD-like buyers over 2021-2022 with text ids."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_customers):
        t, lam, p = rng.uniform(0, 180), rng.gamma(0.8, 1 / 20), rng.beta(1, 5)
        while t < 640:
            rows.append((f"c{c:04d}", pd.Timestamp("2021-01-01") + pd.Timedelta(days=float(t)),
                         round(float(rng.gamma(3, 10)), 2)))
            if rng.uniform() < p:
                break
            t += rng.exponential(1 / lam) + 1
    return pd.DataFrame(rows, columns=["customer_id", "date", "amount"])


TX = simulated_log()


def segment_column(labels) -> pd.DataFrame:
    ids = np.sort(TX["customer_id"].unique())
    of = dict(zip(ids, np.resize(np.asarray(labels, dtype=object), len(ids)), strict=True))
    return TX.assign(segment=TX["customer_id"].map(of))


def test_pooled_segments_pool_the_small_ones():
    ids = pd.Index([f"c{i}" for i in range(100)])
    seg = pd.Series(["a"] * 50 + ["b"] * 40 + ["c"] * 7 + ["d"] * 3, index=ids, name="s")
    out, pooled = analysis.pooled_segments(seg, ids, min_customers=30)
    assert pooled == ["c", "d"]
    assert out.value_counts().to_dict() == {"a": 50, "b": 40, "other": 10}
    assert seg.iloc[-1] == "d"  # the caller's series is not modified
    # members only count: with half the customers in the cohort, "b" is small too
    _, pooled = analysis.pooled_segments(seg, ids[::2], min_customers=21)  # a 25, b 20
    assert pooled == ["b", "c", "d"]
    # all small: one segment; one value: unchanged
    out, pooled = analysis.pooled_segments(seg, ids, min_customers=60)
    assert set(out) == {"other"} and pooled == ["a", "b", "c", "d"]
    one = pd.Series("x", index=ids)
    out, pooled = analysis.pooled_segments(one, ids, min_customers=200)
    assert set(out) == {"x"} and pooled == []


@pytest.fixture(scope="module")
def one_segment():
    log = cm.TransactionLog(segment_column(["everyone"]), amount="amount", segment="segment")
    return analysis.analyze(log, bayes=False)


def test_one_valued_segment_is_one_segment(one_segment):
    a = one_segment
    assert a.rfm["segment"].unique().tolist() == ["everyone"]
    assert "BG/NBD per segment" not in a.methods and "formula (per segment)" not in a.methods
    assert any("One segment only" in s for s in a.skipped)
    assert a.estimates is None


def test_the_result_is_the_package_functions_on_the_log(one_segment):
    a, log = one_segment, one_segment.log
    cal = cm.calibration_holdout(log, calibration_end=a.split.calibration_end)
    pd.testing.assert_frame_equal(a.cal.drop(columns="segment"), cal)
    assert a.split.calibration_end == analysis.default_calibration_end(log)
    bg = cm.BGNBD().fit(cal)
    assert a.bg.params_.to_dict() == pytest.approx(bg.params_.to_dict(), rel=1e-10)
    assert a.results.loc["actual", "purchases_actual"] == cal["frequency_holdout"].sum()
    assert a.totals == {"transactions": log.quality.transactions, "revenue": log.quality.revenue}
    assert a.results.loc["actual", "revenue_actual"] == pytest.approx(
        (cal["frequency_holdout"] * cal["monetary_value_holdout"]).sum(), rel=1e-12)
    s = a.summary()
    assert s["best_method"] == a.best and s["data"]["customers"] == len(a.rfm)
    assert len(s["conclusions"]) == 4


def test_many_tiny_segments_give_few_fits_and_few_warnings():
    labels = [f"s{i:03d}" for i in range(200)]
    log = cm.TransactionLog(segment_column(labels), amount="amount", segment="segment")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = analysis.analyze(log, bayes=False)
    # every segment has about 2 customers: all pooled, one segment
    assert a.pooled == sorted(labels)
    assert a.cal["segment"].unique().tolist() == ["other"]
    assert len(caught) + len(a.notes) < 10


def test_segments_pooled_into_other_are_named():
    labels = ["big"] * 10 + ["mid"] * 8 + ["tiny1", "tiny2"]
    log = cm.TransactionLog(segment_column(labels), amount="amount", segment="segment")
    a = analysis.analyze(log, bayes=False, min_segment_customers=30)
    assert a.pooled == ["tiny1", "tiny2"]
    assert sorted(a.cal["segment"].unique()) == ["big", "mid", "other"]
    assert set(a.methods["BG/NBD per segment"]) == {"big", "mid", "other"}
    assert any("tiny1, tiny2" in s for s in a.skipped)
    assert "segments pooled into 'other'" in a.summary()["notes"][-1]


def test_choose_split_too_little_data_names_the_flag():
    small = cm.TransactionLog(simulated_log(20), amount="amount")
    with pytest.raises(cm.DataError, match="too little data.*calibration_end"):
        analysis.choose_split(small)
