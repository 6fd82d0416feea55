"""The subscription helpers, the analysts' contractual formula and the holdout comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import clvmodels as cm
from clvmodels import contractual
from clvmodels.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def retention():
    return pd.read_csv(SHARED / "sbg_retention.csv", index_col="year")


def test_subscription_summary_counts_periods():
    log = pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e"],
        "start": ["2024-01-01", "2024-01-15", "2024-03-01", "2024-01-31", "2024-06-10"],
        "end": ["2024-04-01", None, "2024-03-20", "2024-02-29", "2024-08-11"],
    })
    before = log.copy()
    s = contractual.subscription_summary(log, observation_end="2024-06-30")
    pd.testing.assert_frame_equal(log, before)
    # a: paid Jan, Feb, Mar (ends on the day the 4th period would start): 2 renewals
    # b: active, periods start Jan 15 .. Jun 15: 6 periods paid, 5 renewals
    # c: one period paid, cancelled: 0 renewals
    # d: Jan 31 -> Feb 29 is not a whole month: one period paid
    # e: ends after observation_end: active, periods Jun 10: 0 renewals
    assert s["renewals"].tolist() == [2, 5, 0, 0, 0]
    assert s["churned"].tolist() == [True, False, True, True, False]
    assert s["opportunities"].tolist() == [5, 5, 3, 4, 0]
    assert s["cohort"].tolist() == ["2024-01", "2024-01", "2024-03", "2024-01", "2024-06"]
    annual = contractual.subscription_summary(log, observation_end="2026-01-20", period_months=12)
    assert annual.loc["b", "renewals"] == 2 and not annual.loc["b", "churned"]


def test_subscription_summary_errors():
    log = pd.DataFrame({"customer_id": [1, 1], "start": ["2024-01-01", "2024-02-01"],
                        "end": [None, None]})
    with pytest.raises(DataError, match="customer_id.*unique.*1 row"):
        contractual.subscription_summary(log)
    log = pd.DataFrame({"customer_id": [1, 2], "start": ["2024-01-01", "x"], "end": [None, None]})
    with pytest.raises(DataError, match="start.*dates.*1 row"):
        contractual.subscription_summary(log)
    log = pd.DataFrame({"customer_id": [1, 2], "start": ["2024-01-01"] * 2,
                        "end": ["2023-12-01", None]})
    with pytest.raises(DataError, match="end.*after"):
        contractual.subscription_summary(log)
    with pytest.raises(DataError, match="start.*observation_end"):
        contractual.subscription_summary(log.assign(end=None), observation_end="2023-01-01")


def test_log_to_fit_recovers_parameters():
    """A simulated monthly subscription log (several monthly cohorts, customers observed
    for different times): summary -> pooled fit recovers the sBG parameters, and the
    cohort table gives the same fit as the per-customer frame."""
    rng = np.random.default_rng(3)
    alpha, beta, n = 1.2, 3.0, 6000
    start = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 12, n) * 31, "D")
    start = start.to_period("M").to_timestamp()  # first of the month
    theta = rng.beta(alpha, beta, n)
    life = cm.models.sbg.simulate_lifetimes(theta, 1.0, n, rng)  # periods paid
    end = [s + pd.DateOffset(months=int(m)) if m < 200 else pd.NaT
           for s, m in zip(start, life, strict=True)]
    log = pd.DataFrame({"customer_id": np.arange(n), "start": start, "end": end})
    summary = contractual.subscription_summary(log, observation_end="2023-12-31")
    fit = cm.SBG().fit(summary)
    for name, true in (("alpha", alpha), ("beta", beta)):
        assert abs(fit.params_[name] - true) < 3 * fit.se_[name]
    table = contractual.alive_table(summary)
    assert table.shape[1] == 12 and table.iloc[0].sum() == n
    assert table.iloc[:, 0].notna().sum() == 24  # January 2022: 23 renewal opportunities
    pooled = cm.SBG().fit(table)
    np.testing.assert_allclose(pooled.params_, fit.params_, rtol=0.15)


def test_formula_states_its_lifespan(retention):
    f = contractual.formula_contractual(retention.loc[:7], margin=100.0, discount_rate=0.1)
    r = 241 / 262
    assert f.loc["regular", "retention"] == pytest.approx(r)
    assert f.loc["regular", "lifespan"] == pytest.approx(1 / (1 - r))
    assert f.loc["regular", "clv"] == pytest.approx(100 / (1 - r))
    assert f.loc["regular", "clv_discounted"] == pytest.approx(
        100 * sum((r / 1.1) ** t for t in range(2000)))
    assert "1 / churn" in f.loc["regular", "lifespan_rule"]
    assert "last observed period" in f.loc["highend", "lifespan_rule"]


def test_holdout_comparison(retention):
    """Fader & Hardie (2007): fit 0-7, project 8-12. The sBG is within 2% (regular) and
    4.1% (high end) of the actual survivors; the BdW's projection of the high-end cohort
    is better than the sBG's; the formula's residual value is flat in tenure while the
    models' rises."""
    out = {}
    for cohort in retention.columns:
        c = contractual.retention_holdout(retention[cohort], calibration_periods=7,
                                          margin=100.0, discount_rate=0.1)
        out[cohort] = c
        hold = c.survivors[c.survivors["holdout"]]
        assert hold.index.tolist() == [8, 9, 10, 11, 12]
        assert np.all(np.abs(hold["sBG"] / hold["actual"] - 1) < 0.041)
        assert c.value["formula"].nunique() == 1
        assert np.all(np.diff(c.value["sBG"]) > 0) and np.all(np.diff(c.value["BdW"]) > 0)
        sbg = c.models["sBG"]
        np.testing.assert_allclose(c.value["sBG"], 100 * sbg.derl(0.1, c.value.index), rtol=1e-12)
        assert c.params.loc[("sBG", "alpha"), "estimate"] == pytest.approx(
            {"regular": 0.704, "highend": 0.668}[cohort], abs=5e-4)
    high = out["highend"].errors
    assert high.loc["BdW", "mape_pct"] < high.loc["sBG", "mape_pct"]
    assert out["highend"].lr_test["p_value"] < 0.01
    reg = out["regular"].errors
    assert reg.loc["sBG", "mape_pct"] < reg.loc["formula", "mape_pct"]


def test_figures(retention):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = contractual.retention_holdout(retention["regular"], calibration_periods=7)
    for plot in (contractual.plot_retention_curves, contractual.plot_retention_rates,
                 contractual.plot_value_by_tenure):
        ax = plot(c, title="regular")
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert {"sBG", "BdW", "formula"} <= set(labels)
        plt.close(ax.figure)


def test_read_inputs(tmp_path, retention):
    path = tmp_path / "ret.csv"
    retention.to_csv(path)
    table = contractual.load_retention_input(path)
    pd.testing.assert_frame_equal(table, retention)
    assert contractual.default_calibration(table) == 7
    log = pd.DataFrame({"customer_id": ["x", "y"], "start": ["2024-01-01", "2024-01-01"],
                        "end": ["2024-03-01", None]})
    log.to_csv(tmp_path / "log.csv", index=False)
    alive = contractual.load_retention_input(tmp_path / "log.csv", period_months=1)
    assert alive.iloc[:, 0].tolist() == [2.0, 2.0, 1.0]
    with pytest.raises(FileNotFoundError):
        contractual.load_retention_input(tmp_path / "missing.csv")


def test_cli_detects_subscription_logs(tmp_path):
    from clvmodels.cli import build_parser

    log = tmp_path / "subs.csv"
    pd.DataFrame({"customer_id": [1], "start": ["2024-01-01"], "end": [None]}).to_csv(log)
    tx = tmp_path / "tx.csv"
    pd.DataFrame({"customer_id": [1], "date": ["2024-01-01"], "amount": [3.0]}).to_csv(tx)
    parser = build_parser()
    assert contractual.wants_contractual_report(parser.parse_args(["report", "--transactions",
                                                                   str(log)]))
    assert not contractual.wants_contractual_report(parser.parse_args(["report", "--transactions",
                                                                       str(tx)]))
    assert contractual.wants_contractual_report(parser.parse_args(["report", "--contractual"]))


def test_cli_bad_calibration(capsys):
    from clvmodels.cli import main

    assert main(["report", "--contractual", "--calibration-periods", "12", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--calibration-periods" in err and "between 1 and 11" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_cli_contractual_report(tmp_path, capsys):
    """The whole contractual report on the published cohorts (no sampling): HTML with its
    three figures and the holdout errors printed."""
    from clvmodels.cli import main

    out = tmp_path / "r.html"
    assert main(["report", "--contractual", "--no-bayes", "--no-progress", "--out",
                 str(out)]) == 0
    html = out.read_text()
    assert html.count("<img") >= 3 and "<script src" not in html
    printed = capsys.readouterr().out
    assert "regular: sBG 1.5%, BdW 1.4%, formula 3.9%" in printed


def test_formula_needs_customers_left():
    with pytest.raises(DataError, match="no customers left in period 1.*period 2 is undefined"):
        contractual.formula_contractual(pd.Series([10.0, 0.0, 0.0]))
