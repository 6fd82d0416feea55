"""clvmodels.compare: holdout predictions of the formula and the models, and their metrics.

Metrics are checked against hand computations on small frames; model predictions against
the models' own methods; Bayesian paths on fake posteriors whose draws all equal known
parameters (so they must reproduce the maximum-likelihood predictions exactly).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import clvmodels as cm
from clvmodels.compare import (
    acquisition_cohorts,
    captured_share,
    formula_holdout,
    holdout_predictions,
    naive_holdout,
    repeat_purchases_over_time,
    segment_estimates,
)
from clvmodels.errors import DataError

BG = {"r": 0.2425945, "alpha": 4.4136019, "a": 0.7929199, "b": 2.4258881}
GG = {"p": 6.25, "q": 3.74, "v": 15.44}


@pytest.fixture(scope="module")
def tx():
    return cm.datasets.cdnow_transactions(sample=True)


@pytest.fixture(scope="module")
def cal(tx):
    out = cm.calibration_holdout(
        tx,
        "customer_id",
        "date",
        "amount",
        calibration_end="1997-09-30",
        observation_end="1998-06-30",
    )
    out["cohort"] = acquisition_cohorts(tx, customer="customer_id", date="date").reindex(out.index)
    return out


def small_cal() -> pd.DataFrame:
    """Four customers, holdout of 10 weeks, hand-checkable."""
    return pd.DataFrame(
        {
            "frequency": [0, 1, 3, 2],
            "recency": [0.0, 2.0, 8.0, 5.0],
            "T": [10.0, 10.0, 12.0, 0.0 + 6.0],
            "monetary_value": [0.0, 10.0, 20.0, 5.0],
            "frequency_holdout": [0, 2, 1, 0],
            "monetary_value_holdout": [0.0, 12.0, 30.0, 0.0],
            "duration_holdout": [10.0] * 4,
            "seg": ["a", "a", "b", "b"],
        },
        index=pd.Index([11, 12, 13, 14], name="id"),
    )


# ---- captured share --------------------------------------------------------------------
def test_captured_share_hand_example():
    actual = np.array([10.0, 0.0, 5.0, 5.0])
    # ranking 0 > 2 > 3 > 1: top 25% = customer 0 -> 10 / 20; top 50% -> 15 / 20
    pred = np.array([4.0, 1.0, 3.0, 2.0])
    assert captured_share(pred, actual, 0.25) == pytest.approx(0.5)
    assert captured_share(pred, actual, 0.5) == pytest.approx(0.75)
    # fractional boundary: 0.3 * 4 = 1.2 customers -> 10 + 0.2 * 5
    assert captured_share(pred, actual, 0.3) == pytest.approx(11 / 20)


def test_captured_share_ties_are_shared_in_proportion():
    rng = np.random.default_rng(0)
    actual = rng.gamma(1.0, 10.0, size=101)
    assert captured_share(np.ones(101), actual, 0.1) == pytest.approx(0.1)
    assert captured_share(np.ones(101), actual, 0.2) == pytest.approx(0.2)
    # two tied blocks: the top block is taken whole, the next block in proportion
    pred = np.array([2.0, 2.0, 1.0, 1.0])
    actual = np.array([1.0, 3.0, 4.0, 0.0])
    assert captured_share(pred, actual, 0.75) == pytest.approx((4 + 0.5 * 4) / 8)
    assert np.isnan(captured_share(pred, np.zeros(4), 0.5))


# ---- the formula's and the naive predictions ---------------------------------------------
def test_naive_holdout_is_own_rate_times_horizon():
    cal = small_cal()
    pred = naive_holdout(cal)
    expected = np.array([0.0, 1 / 10 * 10, 3 / 12 * 10, 2 / 6 * 10])
    np.testing.assert_allclose(pred["purchases"], expected)
    np.testing.assert_allclose(pred["revenue"], expected * [0.0, 10.0, 20.0, 5.0])
    zero_age = cal.assign(T=[0.0, 10.0, 12.0, 6.0], frequency=[0, 1, 3, 2])
    assert naive_holdout(zero_age)["purchases"].iloc[0] == 0.0


def test_formula_holdout_by_hand():
    # window 2020-01-01 .. 2020-07-01 (183 days incl.), customers A (3 purchase days,
    # one with two rows) and B (1), holdout 2020-07-02 .. 2020-12-31
    tx = pd.DataFrame(
        {
            "who": ["A", "A", "A", "A", "B", "A", "B"],
            "when": [
                "2020-01-01 09:00",
                "2020-02-01 08:30",
                "2020-02-01 15:00",
                "2020-06-01 23:59",
                "2020-03-01 00:00",
                "2020-08-01 12:00",
                "2020-09-09 18:00",
            ],
            "usd": [10.0, 5.0, 5.0, 20.0, 40.0, 7.0, 9.0],
            "grp": ["x", "x", "x", "x", "y", "x", "y"],
        }
    )
    cal = cm.calibration_holdout(tx, "who", "when", "usd", calibration_end="2020-07-01", unit="D")
    years_window = 183 / 365.25
    years_holdout = float(cal["duration_holdout"].iloc[0]) / 365.25
    pred = formula_holdout(
        tx, cal, customer="who", date="when", amount="usd", calibration_end="2020-07-01", unit="D"
    )
    freq = 4 / 2 / years_window  # 4 purchase days, 2 customers
    value = 80.0 / 4  # average purchase value
    np.testing.assert_allclose(pred["purchases"], freq * years_holdout)
    np.testing.assert_allclose(pred["revenue"], freq * value * years_holdout)
    seg = formula_holdout(
        tx,
        cal,
        customer="who",
        date="when",
        amount="usd",
        calibration_end="2020-07-01",
        unit="D",
        segment="grp",
    )
    np.testing.assert_allclose(seg.loc["A", "purchases"], 3 / years_window * years_holdout)
    np.testing.assert_allclose(seg.loc["B", "revenue"], 40.0 / years_window * years_holdout)
    # the segment may also be a column of the frame only
    only_cal = cal.assign(grp=["x", "y"])
    seg2 = formula_holdout(
        tx.drop(columns="grp"),
        only_cal,
        customer="who",
        date="when",
        amount="usd",
        calibration_end="2020-07-01",
        unit="D",
        segment="grp",
    )
    pd.testing.assert_frame_equal(seg, seg2)
    assert list(seg.attrs["formula"].index) == ["x", "y"]


def test_formula_holdout_on_cdnow_totals(tx, cal):
    pred = formula_holdout(
        tx, cal, customer="customer_id", date="date", amount="amount", calibration_end="1997-09-30"
    )
    # 4,814 purchase days of 2,357 customers over 273 days, extrapolated over 273 days
    assert pred["purchases"].sum() == pytest.approx(4814 * 273 / 273, rel=1e-12)
    per_segment = formula_holdout(
        tx,
        cal,
        customer="customer_id",
        date="date",
        amount="amount",
        calibration_end="1997-09-30",
        segment="cohort",
    )
    # per-segment rates reallocate the same total
    assert per_segment["purchases"].sum() == pytest.approx(pred["purchases"].sum())
    assert per_segment["purchases"].nunique() == 3


# ---- compare ----------------------------------------------------------------------------
def test_compare_metrics_by_hand():
    cal = small_cal()
    pred = pd.DataFrame(
        {"purchases": [0.5, 1.0, 2.0, 0.0], "revenue": [5.0, 10.0, 60.0, 0.0]}, index=cal.index
    )
    table = cm.compare(cal, {"mine": pred})
    assert list(table.index) == ["mine", "actual"]
    row = table.loc["mine"]
    err = np.array([0.5, -1.0, 1.0, 0.0])
    assert row["purchases_mae"] == pytest.approx(np.abs(err).mean())
    assert row["purchases_rmse"] == pytest.approx(np.sqrt((err**2).mean()))
    assert row["purchases_bias"] == pytest.approx(err.mean())
    assert row["purchases_predicted"] == pytest.approx(3.5)
    assert row["purchases_actual"] == 3
    assert row["purchases_error_pct"] == pytest.approx(100 * (3.5 / 3 - 1))
    actual_rev = np.array([0.0, 24.0, 30.0, 0.0])
    rev_err = np.array([5.0, 10.0, 60.0, 0.0]) - actual_rev
    assert row["revenue_mae"] == pytest.approx(np.abs(rev_err).mean())
    assert row["revenue_bias"] == pytest.approx(rev_err.mean())
    assert row["revenue_spearman"] == pytest.approx(
        stats.spearmanr([5.0, 10.0, 60.0, 0.0], actual_rev).statistic
    )
    # top 25% by predicted revenue = customer 13 -> 30 / 54
    assert row["top10_revenue_share"] == pytest.approx(0.4 * 30 / 54)
    assert row["top20_revenue_share"] == pytest.approx(0.8 * 30 / 54)
    ref = table.loc["actual"]
    assert ref["revenue_mae"] == 0 and ref["purchases_error_pct"] == 0
    assert ref["top20_revenue_share"] == pytest.approx(0.8 * 30 / 54)
    assert table["customers"].tolist() == [4, 4]


def test_compare_constant_predictions_cannot_rank():
    cal = small_cal()
    table = cm.compare(cal, {"flat": pd.Series(1.0, index=cal.index)}, reference=False)
    assert np.isnan(table.loc["flat", "purchases_spearman"])
    assert np.isnan(table.loc["flat", "revenue_mae"])  # no revenue prediction
    assert table.loc["flat", "top10_revenue_share"] == pytest.approx(0.1)


def test_compare_models_use_their_predictions(cal):
    bg = cm.BGNBD.from_params(**BG)
    gg = cm.GammaGamma.from_params(**GG)
    preds = holdout_predictions(cal, {"bg": bg, "bg+gg": (bg, gg)})
    expected = bg.expected_purchases(39.0, cal)
    np.testing.assert_allclose(preds["bg"]["purchases"], expected)
    assert preds["bg"]["revenue"].isna().all()
    np.testing.assert_allclose(preds["bg+gg"]["revenue"], expected * gg.expected_spend(cal))
    np.testing.assert_array_equal(preds["actual"]["purchases"], cal["frequency_holdout"])
    table = cm.compare(cal, {"bg+gg": (bg, gg)})
    assert table.loc["bg+gg", "purchases_predicted"] == pytest.approx(expected.sum())
    assert table.loc["actual", "purchases_actual"] == cal["frequency_holdout"].sum() == 1882


def test_compare_per_segment_mapping_and_table(cal):
    models = {
        s: cm.BGNBD.from_params(**{**BG, "r": BG["r"] * (1 + k)})
        for k, s in enumerate(sorted(cal["cohort"].unique()))
    }
    with pytest.raises(ValueError, match="segment="):
        cm.compare(cal, {"separate": models})
    table = cm.compare(cal, {"separate": models}, segment="cohort")
    assert table.index.names == ["segment", "method"]
    assert list(table.index.get_level_values(0).unique()) == [
        "all",
        "1997-01",
        "1997-02",
        "1997-03",
    ]
    for s, model in models.items():
        part = cal[cal["cohort"] == s]
        assert table.loc[(s, "separate"), "purchases_predicted"] == pytest.approx(
            model.expected_purchases(39.0, part).sum()
        )
        assert table.loc[(s, "separate"), "customers"] == len(part)
    flat = cm.compare(cal, {"separate": models}, segment="cohort", by_segment=False)
    assert list(flat.index) == ["separate", "actual"]
    with pytest.raises(DataError, match="no model for segment"):
        cm.compare(cal, {"separate": {"1997-01": models["1997-01"]}}, segment="cohort")


def test_compare_rejects_bad_methods(cal):
    with pytest.raises(ValueError, match="reserved"):
        cm.compare(cal, {"actual": naive_holdout(cal)})
    with pytest.raises(TypeError, match="cannot predict"):
        cm.compare(cal, {"x": 3.0})
    with pytest.raises(DataError, match="no prediction for some customers"):
        cm.compare(cal, {"x": naive_holdout(cal).iloc[:10]})
    with pytest.raises(DataError, match="calibration_holdout"):
        cm.compare(cal.drop(columns="frequency_holdout"), {"x": naive_holdout(cal)})


# ---- Bayesian paths on fake posteriors ----------------------------------------------------
def _fake(cls, draws: dict, segments=None, **settings):
    import arviz as az

    posterior = {k: np.asarray(v, dtype=float) for k, v in draws.items()}
    coords, dims = {}, {}
    if segments is not None:
        coords["segment"] = segments
        dims = {k: ["segment"] for k in posterior}
    idata = az.from_dict(posterior=posterior, coords=coords, dims=dims)
    idata.posterior.attrs["clvmodels"] = json.dumps(
        {"format_version": 1, "model": cls.__name__, "settings": settings, "method": "fake"}
    )
    model = cls(**settings)
    model.idata_ = idata
    return model


def test_bayesian_methods_reduce_to_their_parameters(cal):
    from clvmodels import bayes

    const = {k: np.full((2, 50), v) for k, v in BG.items()}
    spend = {k: np.full((2, 50), v) for k, v in GG.items()}
    b_bg, b_gg = _fake(bayes.BGNBD, const), _fake(bayes.GammaGamma, spend)
    bg, gg = cm.BGNBD.from_params(**BG), cm.GammaGamma.from_params(**GG)
    preds = holdout_predictions(cal, {"mle": (bg, gg), "bayes": (b_bg, b_gg)})
    np.testing.assert_allclose(preds["bayes"]["purchases"], preds["mle"]["purchases"], rtol=1e-9)
    np.testing.assert_allclose(preds["bayes"]["revenue"], preds["mle"]["revenue"], rtol=1e-9)
    # hierarchical: one parameter set per segment, equal to the separate fits
    labels = sorted(cal["cohort"].unique())
    scale = np.array([0.5, 1.0, 2.0])
    draws = {
        k: np.broadcast_to(v * (scale if k == "r" else 1.0), (2, 50, 3)).copy()
        for k, v in BG.items()
    }
    h_bg = _fake(bayes.SegmentBGNBD, draws, segments=labels, segment="cohort")
    separate = {
        s: cm.BGNBD.from_params(**{**BG, "r": BG["r"] * f})
        for s, f in zip(labels, scale, strict=True)
    }
    both = holdout_predictions(cal, {"h": h_bg, "sep": separate}, segment="cohort")
    np.testing.assert_allclose(both["h"]["purchases"], both["sep"]["purchases"], rtol=1e-9)
    est = segment_estimates(cal, {"h": h_bg, "sep": separate}, "cohort", n_draws=40)
    h_rows = est.xs("h", level="method")
    # all draws equal: a zero-width interval at the mean
    np.testing.assert_allclose(h_rows["low"], h_rows["mean"], rtol=1e-9)
    np.testing.assert_allclose(h_rows["high"], h_rows["mean"], rtol=1e-9)


# ---- segment estimates --------------------------------------------------------------------
def test_segment_estimates_intervals(cal):
    fits = {s: cm.BGNBD().fit(part) for s, part in cal.groupby("cohort")}
    est = segment_estimates(cal, {"sep": fits, "naive": naive_holdout(cal)}, "cohort", n_draws=60)
    assert est.index.names == ["segment", "method"]
    assert set(est.index.get_level_values("method")) == {"sep", "naive", "actual"}
    sep = est.xs("sep", level="method")
    assert (sep["low"] < sep["mean"]).all() and (sep["mean"] < sep["high"]).all()
    assert est.xs("naive", level="method")["low"].isna().all()
    actual = est.xs("actual", level="method")["mean"]
    expected = cal.groupby("cohort")["frequency_holdout"].mean()
    np.testing.assert_allclose(actual.to_numpy(), expected.to_numpy())
    ahead = segment_estimates(cal, {"sep": fits}, "cohort", t=52.0, n_draws=10)
    assert "actual" not in ahead.index.get_level_values("method")
    np.testing.assert_allclose(
        ahead.loc[("1997-01", "sep"), "mean"],
        fits["1997-01"].expected_purchases(52.0, cal[cal["cohort"] == "1997-01"]).mean(),
    )


# ---- tracking data and cohorts -------------------------------------------------------------
def test_repeat_purchases_over_time(tx, cal):
    bg = cm.BGNBD.from_params(**BG)
    track = repeat_purchases_over_time(
        tx, {"bg": bg}, customer="customer_id", date="date", calibration_end="1997-09-30"
    )
    assert track.index[0] == pd.Timestamp("1997-01-01")
    assert (np.diff(track.index.values).astype("timedelta64[D]").astype(int) == 7).all()
    # every repeat purchase day of the cohort, calibration + holdout
    assert track["actual"].sum() == cal["frequency"].sum() + cal["frequency_holdout"].sum()
    # the cumulative expectation at the last day is sum_i E[X(age_i)]
    rfm = cm.rfm_summary(tx, "customer_id", "date", observation_end="1998-06-30")
    assert track["bg"].sum() == pytest.approx(bg.expected_purchases_new(rfm["T"]).sum())
    assert track.attrs["calibration_end"] == pd.Timestamp("1997-09-30")


def test_repeat_purchases_leave_out_late_customers():
    tx = pd.DataFrame(
        {
            "c": [1, 1, 2, 2],
            "d": pd.to_datetime(["2021-01-01", "2021-01-09", "2021-02-01", "2021-02-03"]),
        }
    )
    track = repeat_purchases_over_time(
        tx, cm.BGNBD.from_params(**BG), customer="c", date="d", calibration_end="2021-01-15"
    )
    assert track["actual"].sum() == 1  # customer 2 joined after the calibration end
    assert track.loc["2021-01-08", "actual"] == 1


def test_acquisition_cohorts():
    tx = pd.DataFrame(
        {
            "c": [1, 2, 3, 3],
            "d": pd.to_datetime(["2021-01-05", "2021-03-01", "2022-12-31", "2023-01-02"]),
        }
    )
    months = acquisition_cohorts(tx, customer="c", date="d", max_cohorts=3)
    assert months.to_dict() == {1: "2021-01", 2: "2021-03", 3: "2022-12"}
    quarters = acquisition_cohorts(tx, customer="c", date="d", max_cohorts=2)
    assert quarters.to_dict() == {1: "2021Q1", 2: "2021Q1", 3: "2022Q4"}
    years = acquisition_cohorts(tx, customer="c", date="d", max_cohorts=1)
    assert years.to_dict() == {1: "2021", 2: "2021", 3: "2022"}
    # only the customers seen by `before` count towards max_cohorts
    early = acquisition_cohorts(tx, customer="c", date="d", max_cohorts=2, before="2021-12-31")
    assert early[1] == "2021-01"
