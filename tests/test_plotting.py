"""clvmodels.plotting: every figure is checked through the Axes it returns (lines, bars,
images, labels and the plotted numbers)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.offsetbox import DrawingArea  # noqa: E402

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


def legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def legend_keys(ax):
    """Per legend entry, the kinds of artists drawn in its key (e.g. {"Line2D"})."""
    areas = ax.get_legend().findobj(lambda a: isinstance(a, DrawingArea))
    return [{type(c).__name__ for c in area.get_children()} for area in areas]


def drawn_extents(ax):
    """Window extents (pixels) after drawing: the Axes, its legend, the figure."""
    ax.figure.canvas.draw()
    return ax.get_window_extent(), ax.get_legend().get_window_extent(), ax.figure.bbox


def assert_legend_outside(ax):
    """The legend lies entirely beside the Axes (it cannot hide data) and in the figure."""
    frame, legend, figure = drawn_extents(ax)
    assert not frame.overlaps(legend), (frame, legend)
    assert legend.x0 >= frame.x1 - 1e-6
    assert figure.x0 <= legend.x0 and legend.x1 <= figure.x1 + 1e-6


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
    # the legend lists what is drawn and sits beside the Axes, not over the path or the rug
    assert legend_texts(ax) == ["P(alive)", "purchase day"]
    assert_legend_outside(ax)
    with pytest.raises(ValueError, match="not found"):
        plotting.plot_alive_history(bg, tx, -5, customer="customer_id", date="date")


def test_alive_history_in_a_narrow_panel(tx, bg):
    """Side by side in a report (as in 04-report): legend outside, date labels apart."""
    fig, axes = plt.subplots(1, 2, figsize=(14, 3.8))
    for ax in axes:
        plotting.plot_alive_history(
            bg, tx, 1, customer="customer_id", date="date", observation_end="1998-06-30", ax=ax
        )
    fig.tight_layout()
    for ax in axes:
        assert_legend_outside(ax)
        frame, legend, _ = drawn_extents(ax)
        other = axes[1] if ax is axes[0] else axes[0]
        assert not legend.overlaps(other.get_window_extent())
        ticks = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text()]
        assert len(ticks) >= 4
        gaps = [b.x0 - a.x1 for a, b in zip(ticks[:-1], ticks[1:], strict=True)]
        assert min(gaps) > 0, f"date labels overlap: {gaps}"


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
    # within a segment, the methods run top to bottom in the legend's order
    formula_y, model_y = (c.lines[0].get_ydata()[0] for c in ax.containers[:2])
    assert formula_y > model_y
    # error bars only where there are intervals, and the legend keys show the same
    assert [c.has_xerr for c in ax.containers] == [False, True, False]
    assert legend_texts(ax) == ["formula", "model", "actual"]
    keys = legend_keys(ax)
    assert [("LineCollection" in k) for k in keys] == [False, True, False]
    assert_legend_outside(ax)


def forest_estimates(n_segments, methods=("formula", "model", "actual")):
    index = pd.MultiIndex.from_product(
        [[f"S{k}" for k in range(n_segments)], list(methods)], names=["segment", "method"]
    )
    mean = np.linspace(1.0, 2.0, len(index))
    return pd.DataFrame({"mean": mean, "low": mean - 0.1, "high": mean + 0.1}, index=index)


def test_segment_forest_height_grows_with_segments():
    heights = {}
    for n in (1, 3, 8, 20):
        fig = plotting.plot_segment_forest(forest_estimates(n)).figure
        heights[n] = fig.get_size_inches()[1]
        assert heights[n] >= 3.5  # a readable default, not a strip
        assert heights[n] >= 0.5 * n  # at least half an inch per segment
    assert heights[1] <= heights[3] < heights[8] < heights[20]
    # more methods per segment, more height
    methods = [f"m{k}" for k in range(8)] + ["actual"]
    many = plotting.plot_segment_forest(forest_estimates(8, methods)).figure
    assert many.get_size_inches()[1] >= 0.14 * 9 * 8 > heights[8]
    # every segment row stays inside the y range
    ax = plotting.plot_segment_forest(forest_estimates(8))
    ys = np.concatenate([c.lines[0].get_ydata() for c in ax.containers])
    low, high = ax.get_ylim()
    assert low < ys.min() and ys.max() < high
    # on an Axes of the caller's, the caller's figure size is kept
    fig, ax = plt.subplots(figsize=(9, 6))
    plotting.plot_segment_forest(forest_estimates(8), ax=ax)
    np.testing.assert_allclose(fig.get_size_inches(), [9, 6])


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
    # these bands are wide: drawn with a visible fill and an outline, labelled plainly
    assert band.get_facecolor()[0][3] >= 0.25
    assert band.get_linewidth()[0] > 0 and band.get_edgecolor()[0][3] > 0.5
    assert legend_texts(ax) == [
        "model CLV (posterior mean)",
        "94% credible interval",
        "formula",
    ]
    assert [a.get_label() for a in (ax.get_lines()[0], band, ax.get_lines()[1])] == (
        legend_texts(ax)
    )
    # the top of the frame is above everything drawn (the highest interval ends at 80)
    assert ax.get_ylim()[1] > 80.0
    assert ax.get_ylabel() == "CLV"
    ax2 = plotting.plot_clv_distribution(pd.Series([3.0, 1.0]), log=True)
    assert not ax2.collections and ax2.get_yscale() == "symlog"
    assert legend_texts(ax2) == ["model CLV"]


def test_clv_distribution_log_axis_top_and_units():
    clv = pd.Series([7400.0, 900.0, 35.0, 6.0, 0.4])
    ax = plotting.plot_clv_distribution(clv, log=True, ylabel="CLV, $")
    assert ax.get_ylabel() == "CLV, $"
    bottom, top = ax.get_ylim()
    assert bottom == 0.0
    # above the largest value, at the next power of ten, which has a labelled tick
    assert top == 1e4
    ticks = [t for t in ax.get_yticks() if bottom <= t <= top]
    assert max(ticks) == top
    # minor ticks between the decades, to read the top customers' values
    assert {2e3, 5e3} <= set(ax.yaxis.get_minorticklocs())
    # a formula line above every customer is also inside the frame
    ax = plotting.plot_clv_distribution(clv, log=True, formula=12000.0)
    assert ax.get_ylim()[1] == 1e5
    # an exact power of ten still gets room above it
    assert plotting.plot_clv_distribution(pd.Series([1000.0, 5.0]), log=True).get_ylim()[1] > 1e3


def test_clv_distribution_says_when_the_band_is_narrower_than_the_line():
    rng = np.random.default_rng(0)
    mean = np.exp(rng.uniform(np.log(1.0), np.log(5000.0), 2000))
    narrow = pd.DataFrame({"mean": mean, "hdi_low": mean * 0.99, "hdi_high": mean * 1.01})
    fig, ax = plt.subplots(figsize=(7, 4.8))
    plotting.plot_clv_distribution(narrow, log=True, ax=ax)
    band = ax.collections[0]
    assert "narrower than the line for 100% of customers" in band.get_label()
    assert band.get_label() in legend_texts(ax)
    # wide intervals on the same axis are promised as a band, without the caveat
    wide = pd.DataFrame({"mean": mean, "hdi_low": mean / 3, "hdi_high": mean * 3})
    fig, ax = plt.subplots(figsize=(7, 4.8))
    plotting.plot_clv_distribution(wide, log=True, ax=ax)
    assert ax.collections[0].get_label() == "94% credible interval"


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
    # no customer at formula 0: nothing drawn apart, the frame starts at 0
    assert len(ax.collections) == 1 and ax.get_xlim()[0] == 0.0
    assert legend_texts(ax) == ["formula = model"]


@pytest.mark.parametrize("log", [False, True])
def test_formula_vs_model_draws_customers_at_zero_apart(log):
    idx = pd.Index(range(6))
    model = pd.Series([1.0, 2.0, 3.0, 5.0, 40.0, 900.0], index=idx)
    formula = pd.Series([0.0, 0.0, 0.0, 0.0, 30.0, 1000.0], index=idx)
    ax = plotting.plot_formula_vs_model(
        formula, model, log=log, zero_label="no repeat purchase (own history = 0)"
    )
    others, zeros = ax.collections
    np.testing.assert_allclose(others.get_offsets(), [[30.0, 40.0], [1000.0, 900.0]])
    at_zero = zeros.get_offsets()
    np.testing.assert_allclose(at_zero[:, 1], [1, 2, 3, 5])  # a jittered strip at x = 0
    half = plotting.ZERO_STRIP * (1.0 if log else 1000.0)
    assert np.all(np.abs(at_zero[:, 0]) <= half) and np.ptp(at_zero[:, 0]) > 0
    label = "no repeat purchase (own history = 0): 4 customers (67%)"
    assert zeros.get_label() == label and label in legend_texts(ax)
    # a distinct colour, drawn inside the frame rather than on its left edge
    assert not np.allclose(zeros.get_facecolor()[0][:3], others.get_facecolor()[0][:3])
    assert ax.get_xlim()[0] < 0.0
    frame, _, _ = drawn_extents(ax)
    x0 = ax.transData.transform(zeros.get_offsets())[:, 0]
    assert np.all(x0 > frame.x0 + 5)  # at least 5 pixels right of the axis line
    # the default label names the formula
    ax = plotting.plot_formula_vs_model(formula, model, log=log)
    assert ax.collections[1].get_label() == "formula = 0: 4 customers (67%)"
