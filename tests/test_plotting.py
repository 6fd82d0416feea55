"""clvmodels.plotting: every figure is checked through the Axes it returns (lines, bars,
images, labels and the plotted numbers)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import clvmodels as cm  # noqa: E402
from clvmodels import plotting  # noqa: E402
from clvmodels.compare import repeat_purchases_over_time  # noqa: E402

BG = {"r": 0.2425945, "alpha": 4.4136019, "a": 0.7929199, "b": 2.4258881}
PNBD = {"r": 0.5534, "alpha": 10.5802, "s": 0.6061, "beta": 11.6562}
GG = {"p": 6.25, "q": 3.74, "v": 15.44}


@pytest.fixture(scope="module")
def tx():
    return cm.datasets.cdnow_transactions(sample=True)


@pytest.fixture(scope="module")
def cal(tx):
    return cm.calibration_holdout(tx, "customer_id", "date", "amount", calibration_end="1997-09-30")


@pytest.fixture(scope="module")
def bg():
    return cm.BGNBD.from_params(**BG)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def labels(ax):
    return [line.get_label() for line in ax.get_lines()]


def test_repeat_purchases_weekly_and_cumulative(tx, bg):
    pnbd = cm.ParetoNBD.from_params(**PNBD)
    kw = dict(customer="customer_id", date="date", calibration_end="1997-09-30")
    data = repeat_purchases_over_time(tx, {"BG/NBD": bg, "Pareto/NBD": pnbd}, **kw)
    ax = plotting.plot_repeat_purchases(tx, {"BG/NBD": bg, "Pareto/NBD": pnbd}, **kw)
    assert labels(ax)[:3] == ["actual", "BG/NBD", "Pareto/NBD"]
    actual, model = ax.get_lines()[0], ax.get_lines()[1]
    np.testing.assert_array_equal(actual.get_ydata(), data["actual"])
    np.testing.assert_allclose(model.get_ydata(), data["BG/NBD"])
    assert len(actual.get_xdata()) == 78  # 1997-01-01 .. 1998-06-30 in weeks
    assert actual.get_color() == "black"
    # the calibration end is marked
    vline = ax.get_lines()[3]
    assert pd.Timestamp(vline.get_xdata()[0]) == pd.Timestamp("1997-09-30")
    assert "per week" in ax.get_ylabel()
    ax2 = plotting.plot_cumulative_repeat_purchases(tx, bg, **kw)
    np.testing.assert_allclose(ax2.get_lines()[0].get_ydata(), data["actual"].cumsum())
    assert ax2.get_lines()[0].get_ydata()[-1] == 4339  # all repeat purchase days
    assert labels(ax2)[1] == "BGNBD"
    assert "cumulative" in ax2.get_ylabel()


def test_holdout_by_frequency(cal, bg):
    naive = cm.naive_holdout(cal)
    fig, ax = plt.subplots()
    out = plotting.plot_holdout_by_frequency(cal, {"BG/NBD": bg, "naive": naive}, ax=ax)
    assert out is ax
    assert labels(ax) == ["actual", "BG/NBD", "naive"]
    group = np.minimum(cal["frequency"], 7)
    expected = cal.groupby(group)["frequency_holdout"].mean()
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), expected.to_numpy())
    model = bg.expected_purchases(39.0, cal).groupby(group).mean()
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), model.to_numpy())
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "7+"
    # precomputed predictions give the same figure
    preds = cm.holdout_predictions(cal, {"BG/NBD": bg, "naive": naive})
    ax2 = plotting.plot_holdout_by_frequency(cal, preds)
    np.testing.assert_allclose(ax2.get_lines()[1].get_ydata(), model.to_numpy())


@pytest.mark.parametrize("kind", ["expected_purchases", "probability_alive"])
def test_frequency_recency_heatmap(cal, bg, kind):
    ax = plotting.plot_frequency_recency(
        bg, kind=kind, t=52, T=39.0, max_frequency=10, n_recency=40
    )
    image = ax.images[0].get_array()
    assert image.shape == (11, 40)
    assert np.ma.getmaskarray(image)[0, 1:].all() or np.isnan(image[0, 1:]).all()
    grid = pd.DataFrame({"frequency": [4], "recency": [39.0], "T": [39.0]})
    value = (
        bg.expected_purchases(52, grid)
        if kind == "expected_purchases"
        else bg.probability_alive(grid)
    ).iloc[0]
    assert image[4, -1] == pytest.approx(value)
    assert "recency" in ax.get_xlabel() and "frequency" in ax.get_ylabel()
    # a colour bar was added to the figure
    assert len(ax.figure.axes) == 2
    # ranges from an RFM frame
    ax2 = plotting.plot_frequency_recency(bg, kind=kind, rfm=cal)
    assert (
        ax2.images[0].get_array().shape[0]
        == max(5, int(np.ceil(cal["frequency"].quantile(0.99)))) + 1
    )
    with pytest.raises(ValueError, match="kind"):
        plotting.plot_frequency_recency(bg, kind="clv", rfm=cal)


def test_purchase_distribution(cal, bg):
    ax = plotting.plot_purchase_distribution({"BG/NBD": bg}, cal, max_frequency=7)
    actual, model = ax.containers
    assert actual.get_label() == "actual" and model.get_label() == "BG/NBD"
    heights = np.array([p.get_height() for p in actual])
    expected = np.bincount(np.minimum(cal["frequency"], 7), minlength=8)
    np.testing.assert_array_equal(heights, expected)
    model_heights = np.array([p.get_height() for p in model])
    assert model_heights.sum() == pytest.approx(len(cal))
    p0 = bg.probability_of_purchases(0, cal["T"].to_numpy()).sum()
    assert model_heights[0] == pytest.approx(p0)


def test_alive_history(tx, bg):
    ax = plotting.plot_alive_history(
        bg, tx, 1, customer="customer_id", date="date", observation_end="1998-06-30"
    )
    line = ax.get_lines()[0]
    y = line.get_ydata()
    x = pd.to_datetime(line.get_xdata())
    assert x[0] == pd.Timestamp("1997-01-01") and x[-1] == pd.Timestamp("1998-06-30")
    assert y[0] == 1.0 and np.all((y >= 0) & (y <= 1))
    # on the last day P(alive) is the model's value for the customer's full history
    rfm = cm.rfm_summary(tx, "customer_id", "date", observation_end="1998-06-30")
    assert y[-1] == pytest.approx(bg.probability_alive(rfm.loc[[1]]).iloc[0])
    rug = [c for c in ax.collections if c.get_label() == "purchase day"]
    assert len(rug) == 1 and len(rug[0].get_segments()) == 4  # customer 1: 4 purchase days
    with pytest.raises(ValueError, match="not found"):
        plotting.plot_alive_history(bg, tx, -5, customer="customer_id", date="date")


def test_segment_forest():
    est = pd.DataFrame(
        {
            "mean": [1.0, 1.2, 0.9, 2.0, 2.1, 1.8],
            "low": [np.nan, 1.0, np.nan, np.nan, 1.9, np.nan],
            "high": [np.nan, 1.4, np.nan, np.nan, 2.3, np.nan],
            "customers": [10, 10, 10, 50, 50, 50],
        },
        index=pd.MultiIndex.from_product(
            [["A", "B"], ["formula", "model", "actual"]], names=["segment", "method"]
        ),
    )
    ax = plotting.plot_segment_forest(est)
    assert [c.get_label() for c in ax.containers] == ["formula", "model", "actual"]
    model = ax.containers[1]
    xs = model.lines[0].get_xdata()
    np.testing.assert_allclose(xs, [1.2, 2.1])
    # the interval of segment A spans 1.0 .. 1.4
    segs = model.lines[2][0].get_segments()
    np.testing.assert_allclose(sorted(segs[0][:, 0]), [1.0, 1.4])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A (n=10)", "B (n=50)"]
    assert ax.get_yticks()[0] > ax.get_yticks()[1]  # first segment on top


def test_clv_distribution_with_intervals():
    clv = pd.DataFrame(
        {
            "mean": [5.0, 50.0, 1.0, 20.0],
            "hdi_low": [2.0, 30.0, 0.0, 10.0],
            "hdi_high": [9.0, 80.0, 3.0, 35.0],
        }
    )
    ax = plotting.plot_clv_distribution(clv, formula={"formula": 12.0})
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), [50.0, 20.0, 5.0, 1.0])
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [12.5, 37.5, 62.5, 87.5])
    band = ax.collections[0]
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.max() == 80.0 and ys.min() == 0.0
    assert ax.get_lines()[1].get_label() == "formula"
    assert ax.get_lines()[1].get_ydata()[0] == 12.0
    ax2 = plotting.plot_clv_distribution(pd.Series([3.0, 1.0]), log=True)
    assert not ax2.collections and ax2.get_yscale() == "symlog"


def test_formula_vs_model():
    idx = pd.Index([1, 2, 3])
    model = pd.DataFrame({"mean": [1.0, 5.0, 9.0]}, index=idx)
    formula = pd.Series([4.0, 4.0, 4.0], index=[3, 2, 1])
    ax = plotting.plot_formula_vs_model(formula, model, xlabel="f", ylabel="m")
    offsets = ax.collections[0].get_offsets()
    np.testing.assert_allclose(offsets, [[4.0, 1.0], [4.0, 5.0], [4.0, 9.0]])
    diag = ax.get_lines()[0]
    np.testing.assert_allclose(diag.get_xdata(), diag.get_ydata())
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("f", "m")
