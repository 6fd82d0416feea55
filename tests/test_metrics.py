"""clvmodels.metrics: normalised Gini, top-decile lift and the decile calibration table,
against independent computations (AUC by Mann-Whitney, hand-made examples), and their
place in compare and in the plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

import clvmodels as cm  # noqa: E402
from clvmodels import plotting  # noqa: E402
from clvmodels.metrics import calibration_deciles, normalised_gini, top_decile_lift  # noqa: E402

BG = {"r": 0.2425945, "alpha": 4.4136019, "a": 0.7929199, "b": 2.4258881}
GG = {"p": 6.25, "q": 3.74, "v": 15.44}


@pytest.fixture(scope="module")
def cal():
    tx = cm.datasets.cdnow_transactions(sample=True)
    return cm.calibration_holdout(tx, "customer_id", "date", "amount",
                                  calibration_end="1997-09-30")


def test_gini_of_a_binary_outcome_is_twice_the_auc_minus_one():
    """For 0/1 outcomes the normalised Gini is 2 AUC - 1 (ties in the score counted as
    half, which is our random tie-breaking in expectation); AUC by Mann-Whitney."""
    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.3
    score = np.round(y + rng.normal(0, 1.0, 500), 1)  # rounded: many ties
    u = stats.mannwhitneyu(score[y], score[~y]).statistic
    auc = u / (y.sum() * (~y).sum())
    assert normalised_gini(score, y.astype(float)) == pytest.approx(2 * auc - 1, rel=1e-12)


def test_gini_extremes():
    actual = np.array([0.0, 1.0, 5.0, 2.0, 0.0, 9.0])
    assert normalised_gini(actual, actual) == pytest.approx(1.0)
    assert normalised_gini(2 * actual + 1, actual) == pytest.approx(1.0)  # only ranks count
    assert normalised_gini(np.ones(6), actual) == pytest.approx(0.0, abs=1e-15)
    assert normalised_gini(-actual, actual) < -0.5
    assert np.isnan(normalised_gini(actual, np.zeros(6)))


def test_top_decile_lift_by_hand():
    actual = np.r_[np.full(10, 5.0), np.ones(90)]  # mean 1.4
    predicted = np.r_[np.full(10, 2.0), np.zeros(90)]
    assert top_decile_lift(predicted, actual) == pytest.approx(5.0 / 1.4)
    assert top_decile_lift(np.zeros(100), actual) == pytest.approx(1.0)


def test_compare_has_gini_and_lift(cal):
    bg = cm.BGNBD.from_params(**BG)
    table = cm.compare(cal, {"BG/NBD": (bg, cm.GammaGamma.from_params(**GG)),
                             "naive": cm.naive_holdout(cal)})
    preds = cm.holdout_predictions(cal, {"BG/NBD": bg})
    want = normalised_gini(preds["BG/NBD"]["purchases"], preds["actual"]["purchases"])
    assert table.loc["BG/NBD", "purchases_gini"] == pytest.approx(want, rel=1e-12)
    assert table.loc["actual", "revenue_gini"] == pytest.approx(1.0)
    assert 0.3 < table.loc["BG/NBD", "revenue_gini"] < 1.0
    assert table.loc["BG/NBD", "revenue_top_decile_lift"] == pytest.approx(
        10 * table.loc["BG/NBD", "top10_revenue_share"], rel=1e-12
    )


def test_calibration_deciles(cal):
    bg = cm.BGNBD.from_params(**BG)
    methods = {"BG/NBD": bg, "naive": cm.naive_holdout(cal)}
    table = calibration_deciles(cal, methods, quantity="purchases")
    preds = cm.holdout_predictions(cal, methods)
    for name in methods:
        part = table.loc[name]
        assert list(part.index) == list(range(1, 11))
        assert part["customers"].sum() == len(cal)
        assert part["customers"].max() - part["customers"].min() <= 1
        assert part["predicted_total"].sum() == pytest.approx(preds[name]["purchases"].sum())
        assert part["actual_total"].sum() == pytest.approx(cal["frequency_holdout"].sum())
        assert part["predicted"].is_monotonic_increasing
    # the BG/NBD is calibrated within its top decile to 25% on CDNOW
    top = table.loc[("BG/NBD", 10)]
    assert top["predicted"] == pytest.approx(top["actual"], rel=0.25)
    # methods without revenue are grouped by purchases
    assert (calibration_deciles(cal, {"BG/NBD": bg})["quantity"] == "purchases").all()
    with pytest.raises(ValueError, match="quantity"):
        calibration_deciles(cal, methods, quantity="clv")


def test_plot_calibration_deciles(cal):
    bg = cm.BGNBD.from_params(**BG)
    table = calibration_deciles(cal, {"BG/NBD": bg, "naive": cm.naive_holdout(cal)},
                                quantity="purchases")
    ax = plotting.plot_calibration_deciles(table)
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == [
        "BG/NBD: predicted", "BG/NBD: actual", "naive: predicted", "naive: actual"]
    np.testing.assert_allclose(lines[1].get_ydata(), table.loc["BG/NBD", "actual"])
    assert "purchases" in ax.get_ylabel()
    plt.close("all")


def test_clv_plot_shows_the_predictive_interval(cal):
    bg = cm.BGNBD.from_params(**BG)
    gg = cm.GammaGamma.from_params(**GG)
    clv = cm.customer_lifetime_value(bg, gg, cal, horizon=52, period=4, level=0.9)
    ax = plotting.plot_clv_distribution(clv.rename(columns={"clv": "mean"}).assign(
        hdi_low=lambda f: f["mean"], hdi_high=lambda f: f["mean"]))
    labels = [c.get_label() for c in ax.collections]
    assert "90% predictive interval (range of outcomes)" in labels
    assert isinstance(clv, pd.DataFrame) and clv.attrs["level"] == 0.9
    plt.close("all")
