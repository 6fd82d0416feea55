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
    assert s["recommended"] == a.recommended and not s["unconverged"]
    assert sum(a.recommended in c for c in s["conclusions"]) >= 3


def test_recommended_model_by_the_stated_rule(one_segment):
    a = one_segment
    candidates = a.results.drop(index=["actual", "formula (overall)", "naive (own history)"])
    assert a.recommended == candidates["revenue_mae"].idxmin() == a.best
    assert "lowest mean absolute error" in analysis.RECOMMENDATION_RULE
    # the forecast is the recommended model refitted on the whole history
    model = {"BG/NBD": cm.BGNBD, "Pareto/NBD": cm.ParetoNBD}[a.recommended]().fit(a.rfm)
    spend = a.rfm[(a.rfm["frequency"] == 0) | (a.rfm["monetary_value"] > 0)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cm.StatisticalWarning)  # the report's notes
        gg = cm.GammaGamma().fit(spend)
    clv = cm.customer_lifetime_value(model, gg, a.rfm, horizon=52, period=52 / 12,
                                     discount_rate=1.1 ** (1 / 12) - 1)
    assert a.forecast.loc["total", "model"] == pytest.approx(clv.sum(), rel=1e-8)
    assert a.top["P(alive)"].to_dict() == pytest.approx(model.probability_alive(a.rfm).to_dict())
    assert a.summary()["forecast"]["model_name"] == a.recommended


def test_formula_numbers_are_reconciled(one_segment):
    a = one_segment
    t, fa = a.formula_numbers, a.formula_all.iloc[0]
    assert t.loc["lifetime CLV", "per customer"] == pytest.approx(
        t.loc["yearly value", "per customer"] * fa["lifespan"])
    hold = [k for k in t.index if k.startswith("holdout forecast")][0]
    assert t.loc[hold, "total"] == a.results.loc["formula (overall)", "revenue_predicted"]
    assert t.loc[hold, "customers"] == len(a.cal)
    assert t.loc["next 52 weeks", "total"] == pytest.approx(a.forecast.loc["total", "formula"])
    assert t["total"].tolist() == pytest.approx((t["per customer"] * t["customers"]).tolist())


def test_next_steps_win_back_and_one_time_buyers(one_segment):
    a = one_segment
    w = a.win_back
    assert len(w) and (w["P(alive)"] < analysis.WIN_BACK_P_ALIVE).all()
    assert (w["repeat purchases"] > 0).all() and w["past repeat revenue"].is_monotonic_decreasing
    past = a.rfm["frequency"] * a.rfm["monetary_value"]
    assert w["past repeat revenue"].iloc[0] == past[a.top["P(alive)"] < 0.5].max()
    assert a.top["CLV"].is_monotonic_decreasing
    low, high = a.top["90% range low (BG/NBD)"], a.top["90% range high (BG/NBD)"]
    shown = low.head(analysis.TOP_N).index
    assert (low[shown] <= high[shown]).all() and (high[shown] > 0).all()
    # BG/NBD keeps every one-time buyer alive; MBG/NBD and Pareto/NBD do not
    pa = a.p_alive
    assert pa.loc["BG/NBD", "one-time buyers: mean P(alive)"] == pytest.approx(1.0)
    assert pa.loc["MBG/NBD", "one-time buyers: mean P(alive)"] < 0.9
    once = a.rfm["frequency"] == 0
    assert pa.attrs["one_time_share"] == pytest.approx(once.mean())
    mbg = cm.MBGNBD().fit(a.rfm).probability_alive(a.rfm)
    assert pa.loc["MBG/NBD", "one-time buyers: P(alive) < 20%"] == pytest.approx(
        (mbg[once] < 0.2).mean())


def test_acquisition_cost_per_segment_gives_clv_cac(tmp_path):
    log = cm.TransactionLog(segment_column(["a", "b"]), amount="amount", segment="segment")
    costs = tmp_path / "costs.csv"
    pd.DataFrame({"segment": ["a", "b"], "cost": [20.0, 40.0]}).to_csv(costs, index=False)
    a = analysis.analyze(log, bayes=False, acquisition_cost=str(costs))
    t = a.clv_cac
    assert t.loc[["a", "b"], "acquisition cost"].tolist() == [20.0, 40.0]
    mean_clv = a.clv.groupby(a.rfm["segment"]).mean()
    assert t.loc["b", "model value : cost"] == pytest.approx(mean_clv["b"] / 40.0)
    assert t.loc["a", "formula CLV : cost"] == pytest.approx(a.formula.loc["a", "clv"] / 20.0)
    assert t.loc["all", "customers"] == len(a.rfm)
    one = analysis.acquisition_costs("12.5")
    assert one == 12.5 and analysis.acquisition_costs({"a": 1, "b": 2}).tolist() == [1.0, 2.0]


@pytest.mark.parametrize(("cost", "match"), [
    (-1, "acquisition_cost: the cost must be a number >= 0"),
    ("nope.csv", "acquisition_cost: not a number and no such file"),
    ({"a": 1.0, "b": float("nan")}, r"costs must be finite numbers >= 0 \(1 row"),
    ({"a": 1.0}, "acquisition_cost: no cost for 1 segment"),
])  # fmt: skip
def test_bad_acquisition_cost_names_the_keyword(cost, match):
    log = cm.TransactionLog(segment_column(["a", "b"]), amount="amount", segment="segment")
    with pytest.raises(ValueError, match=match):
        analysis.analyze(log, bayes=False, acquisition_cost=cost)


def test_unconverged_fit_is_marked_and_excluded():
    """A Bayesian fit forced to fail (20 draws) is marked in every table, not recommended,
    not in the conclusions' results, and its advice is in the caller's language."""
    log = cm.TransactionLog(segment_column(["a", "b"]), amount="amount", segment="segment")
    a = analysis.analyze(log, draws=20, tune=20, hierarchical=False, caller="cli")
    name = "Bayesian BG/NBD"
    marked = f"{name} (did not converge)"
    assert not a.unconverged[name].passed
    assert marked in a.results.index and name not in a.results.index
    assert marked in a.by_segment.index.get_level_values("method")
    assert marked in a.methods and a.recommended != marked
    assert a.recommended in a.results.index and not a.recommended.endswith("converge)")
    assert a.clv_post is None  # intervals only from a recommended Bayesian model
    results = [c for c in a.conclusions if not c.startswith("Not used")]
    assert not any(name in c for c in results)
    assert any(c.startswith("Not used") and name in c for c in a.conclusions)
    s = a.summary()
    assert "--draws 1000" in s["unconverged"][name] and "draws=" not in s["unconverged"][name]


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
