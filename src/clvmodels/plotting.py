"""Figures for comparing the formula with the models (matplotlib).

Every function draws on the Axes passed as ``ax`` (a new figure when None) and returns
it, so figures can be composed, styled and tested. The observed data are always drawn in
black; each method keeps its colour across figures (the order of first appearance in
the Matplotlib default cycle). Bayesian models contribute posterior means, and their
highest-density intervals where a figure shows uncertainty.

* :func:`plot_repeat_purchases` -- repeat purchases per period (or cumulative), actual vs
  model, across calibration and holdout (Fader, Hardie & Lee 2005, Figs. 2-3).
* :func:`plot_holdout_by_frequency` -- mean holdout purchases by calibration frequency,
  actual vs each method (conditional expectations, ibid. Fig. 4).
* :func:`plot_frequency_recency` -- heatmap of expected purchases or P(alive) over
  frequency and recency.
* :func:`plot_purchase_distribution` -- customers by number of repeat purchases, model
  vs actual (ibid. Fig. 1).
* :func:`plot_alive_history` -- one customer's P(alive) over time.
* :func:`plot_segment_forest` -- per-segment estimates with intervals, several methods.
* :func:`plot_clv_distribution` -- customers' CLV ranked, with credible intervals.
* :func:`plot_formula_vs_model` -- formula CLV against model CLV per customer.
* :func:`plot_regularity` and :func:`plot_intertransaction_times` -- is purchase timing
  regular? Wheat & Morrison's ratio and the inter-transaction times against the Poisson
  (k = 1) and Erlang-k references (:func:`clvmodels.estimate_regularity`).
* :func:`plot_calibration_deciles` -- predicted vs actual holdout value per decile of
  the predicted value (:func:`clvmodels.calibration_deciles`).
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.colors import to_rgba
from matplotlib.ticker import FuncFormatter, MaxNLocator, SymmetricalLogLocator

from ._aggregate import purchase_days_of
from .compare import ACTUAL, holdout_predictions, repeat_purchases_over_time
from .rfm import frame_unit, unit_days, unit_name

__all__ = [
    "plot_alive_history",
    "plot_calibration_deciles",
    "plot_clv_distribution",
    "plot_cumulative_repeat_purchases",
    "plot_formula_vs_model",
    "plot_frequency_recency",
    "plot_holdout_by_frequency",
    "plot_intertransaction_times",
    "plot_purchase_distribution",
    "plot_regularity",
    "plot_repeat_purchases",
    "plot_segment_forest",
]



def _axes(ax, *, figsize=(8, 4.5), layout=None):
    """`ax`, or the Axes of a new figure (`layout="constrained"` keeps a legend placed
    outside the Axes within the figure)."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize, layout=layout)
    return ax


def _legend_outside(ax, **kwargs):
    """A legend to the right of the Axes, top-aligned, where it cannot hide data."""
    kwargs.setdefault("frameon", False)
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


def _unit_name(unit) -> str:
    return unit_name(unit)


class _Palette:
    """A stable colour per method name; the observed data are black."""

    def __init__(self, names):
        import matplotlib as mpl

        cycle = mpl.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
        others = [n for n in names if n != ACTUAL]
        self._colors = {n: cycle[i % len(cycle)] for i, n in enumerate(others)}
        self._colors[ACTUAL] = "black"

    def __call__(self, name):
        return self._colors[name]


def _models(models) -> dict:
    if isinstance(models, Mapping):
        return dict(models)
    return {type(models).__name__: models}


def _mean(values) -> np.ndarray:
    if isinstance(values, pd.DataFrame):
        values = values["mean"]
    return np.asarray(values, dtype=float)


# ---- tracking plots --------------------------------------------------------------------
def plot_repeat_purchases(
    tx: pd.DataFrame,
    models,
    *,
    customer: str | None = None,
    date: str | None = None,
    calibration_end: object,
    observation_end: object = None,
    unit: str | float = "W",
    cumulative: bool = False,
    ax=None,
):
    """Repeat purchases per period (or cumulative) of the calibration cohort, actual vs models.

    The data are :func:`clvmodels.compare.repeat_purchases_over_time`; a vertical line
    marks the end of the calibration period. Models are fitted on the calibration frame
    (a single model or a mapping of name to model).

    Returns
    -------
    matplotlib.axes.Axes
        One line per series (label ``"actual"`` or the model's name), x the period start.
    """
    ax = _axes(ax)
    models = _models(models)
    data = repeat_purchases_over_time(
        tx,
        models,
        customer=customer,
        date=date,
        calibration_end=calibration_end,
        observation_end=observation_end,
        unit=unit,
    )
    if cumulative:
        data = data.cumsum()
    colors = _Palette([ACTUAL, *models])
    x = data.index
    ax.plot(x, data["actual"], color=colors(ACTUAL), lw=1.8, label=ACTUAL)
    for name in models:
        ax.plot(x, data[name], color=colors(name), lw=1.5, ls="--", label=name)
    cal_end = data.attrs["calibration_end"]
    ax.axvline(cal_end, color="grey", ls=":", lw=1)
    ax.annotate(
        "end of calibration",
        xy=(cal_end, 1),
        xycoords=("data", "axes fraction"),
        xytext=(4, -12),
        textcoords="offset points",
        fontsize=8,
        color="grey",
    )
    per = _unit_name(unit)
    ax.set_xlabel("period start")
    ax.set_ylabel("cumulative repeat purchases" if cumulative else f"repeat purchases per {per}")
    ax.set_title(
        ("Cumulative repeat purchases" if cumulative else f"Repeat purchases per {per}")
        + ": actual vs model"
    )
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False)
    return ax


def plot_cumulative_repeat_purchases(tx: pd.DataFrame, models, **kwargs):
    """:func:`plot_repeat_purchases` with ``cumulative=True``."""
    return plot_repeat_purchases(tx, models, cumulative=True, **kwargs)


# ---- holdout by calibration frequency ---------------------------------------------------
def plot_holdout_by_frequency(
    cal: pd.DataFrame,
    methods,
    *,
    segment: str | None = None,
    max_frequency: int = 7,
    emphasize=None,
    ax=None,
):
    """Mean holdout purchases per customer by calibration frequency, actual vs each method.

    Parameters
    ----------
    cal : pandas.DataFrame
        Calibration/holdout frame.
    methods : mapping or pandas.DataFrame
        Methods as for :func:`clvmodels.compare`, or the output of
        :func:`clvmodels.compare.holdout_predictions`.
    max_frequency : int, default 7
        Customers with more calibration purchases are pooled in the last group (``"7+"``).
    emphasize : sequence of str, optional
        Methods drawn in colour; the others thin and light grey (default: all in colour).

    Returns
    -------
    matplotlib.axes.Axes
        One line per method plus ``"actual"``; x the calibration frequency (0 ..
        `max_frequency`), y the mean holdout purchases of the customers in the group.
    """
    ax = _axes(ax)
    if isinstance(methods, pd.DataFrame) and isinstance(methods.columns, pd.MultiIndex):
        preds = methods
    else:
        preds = holdout_predictions(cal, methods, segment=segment)
    group = np.minimum(cal["frequency"].to_numpy(), max_frequency)
    names = [n for n in preds.columns.get_level_values(0).unique() if n != ACTUAL]
    colors = _Palette([ACTUAL, *names])
    counts = np.bincount(group, minlength=max_frequency + 1)
    x = np.arange(max_frequency + 1)
    strong = set(names if emphasize is None else emphasize) | {ACTUAL}
    order = [n for n in names if n not in strong] + [ACTUAL] + [n for n in names if n in strong]
    for name in order:
        sums = np.bincount(
            group, weights=preds[name]["purchases"].to_numpy(float), minlength=max_frequency + 1
        )
        mean = np.divide(sums, counts, out=np.full(len(x), np.nan), where=counts > 0)
        weak = name not in strong
        ax.plot(
            x,
            mean,
            color="0.75" if weak else colors(name),
            marker=None if weak else "o",
            ms=4,
            lw=0.8 if weak else (2 if name == ACTUAL else 1.5),
            ls="-" if name == ACTUAL else "--",
            label=None if weak else name,
            zorder=1 if weak else 2,
        )
    if len(strong) < len(names) + 1:
        ax.plot([], [], color="0.75", lw=0.8, ls="--", label="other methods")
    ax.set_xticks(x, [str(i) for i in x[:-1]] + [f"{max_frequency}+"])
    ax.set_xlabel("repeat purchases in the calibration period")
    ax.set_ylabel("mean purchases in the holdout")
    ax.set_title("Holdout purchases by calibration frequency")
    ax.legend(frameon=False)
    return ax


# ---- frequency/recency heatmaps ------------------------------------------------------------
def plot_frequency_recency(
    model,
    *,
    kind: str = "expected_purchases",
    t: float = 52.0,
    T: float | None = None,
    max_frequency: int | None = None,
    rfm: pd.DataFrame | None = None,
    n_recency: int = 60,
    unit: str | float | None = None,
    ax=None,
):
    """Heatmap of expected purchases in the next `t` or of P(alive), by frequency and recency.

    All cells are customers of the same age `T` (default: the largest ``T`` of `rfm`);
    frequency runs from 0 to `max_frequency` (default: the 99th percentile of `rfm`'s
    frequencies, at least 5), recency from 0 to `T`. Cells with frequency 0 and recency
    > 0 cannot occur and are left blank.

    Returns
    -------
    matplotlib.axes.Axes
        With one image (``ax.images[0]``, array of shape (frequencies, recencies)) and
        its colour bar.
    """
    if kind not in ("expected_purchases", "probability_alive"):
        raise ValueError(f"kind must be 'expected_purchases' or 'probability_alive', got {kind!r}")
    if T is None or max_frequency is None:
        if rfm is None:
            raise ValueError("pass rfm=, or both T= and max_frequency=")
        if T is None:
            T = float(rfm["T"].max())
        if max_frequency is None:
            max_frequency = max(5, int(np.ceil(rfm["frequency"].quantile(0.99))))
    unit = frame_unit(rfm, unit) if rfm is not None else (unit or "W")  # the frame's own
    ax = _axes(ax)
    freq = np.arange(max_frequency + 1)
    rec = np.linspace(0.0, float(T), n_recency)
    F, R = np.meshgrid(freq, rec, indexing="ij")
    valid = ~((F == 0) & (R > 0))
    grid = pd.DataFrame(
        {"frequency": F[valid], "recency": R[valid], "T": np.full(valid.sum(), float(T))}
    )
    values = np.full(F.shape, np.nan)
    if kind == "expected_purchases":
        values[valid] = _mean(model.expected_purchases(t, grid))
        label = f"expected purchases in the next {t:g} {_unit_name(unit)}s"
    else:
        values[valid] = _mean(model.probability_alive(grid))
        label = "P(alive)"
    step = rec[1] - rec[0] if n_recency > 1 else 1.0
    image = ax.imshow(
        values,
        origin="lower",
        aspect="auto",
        cmap="viridis",
        extent=(-step / 2, float(T) + step / 2, -0.5, max_frequency + 0.5),
        vmin=0.0,
        vmax=1.0 if kind == "probability_alive" else None,
    )
    ax.figure.colorbar(image, ax=ax, label=label)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"recency: time of the last purchase ({_unit_name(unit)}s after the first)")
    ax.set_ylabel("repeat purchases (frequency)")
    ax.set_title(f"{label.capitalize()}, customers of age {T:.0f} {_unit_name(unit)}s")
    return ax


# ---- distribution of repeat purchases -------------------------------------------------------
def plot_purchase_distribution(models, rfm: pd.DataFrame, *, max_frequency: int = 7, ax=None):
    r"""Customers by number of repeat purchases in their observation period, model vs actual.

    The model's expected number of customers with n repeat purchases is
    :math:`\sum_i P(X(T_i) = n)` (``probability_of_purchases``); the last bar pools
    `max_frequency` and more.

    Returns
    -------
    matplotlib.axes.Axes
        Grouped bars: ``ax.containers[k]`` holds the bars of series k (``"actual"``
        first), with the series name as label.
    """
    ax = _axes(ax)
    models = _models(models)
    colors = _Palette([ACTUAL, *models])
    n = np.arange(max_frequency + 1)
    actual = np.bincount(
        np.minimum(rfm["frequency"].to_numpy(), max_frequency), minlength=max_frequency + 1
    ).astype(float)
    series = {ACTUAL: actual}
    T_values, T_counts = np.unique(rfm["T"].to_numpy(float), return_counts=True)
    for name, model in models.items():
        probs = np.asarray(
            model.probability_of_purchases(n[:-1, None].astype(float), T_values[None, :]), float
        )
        expected = probs @ T_counts
        series[name] = np.append(expected, len(rfm) - expected.sum())
    width = 0.8 / len(series)
    for k, (name, values) in enumerate(series.items()):
        ax.bar(
            n + (k - (len(series) - 1) / 2) * width,
            values,
            width=width,
            color=colors(name),
            label=name,
        )
    ax.set_xticks(n, [str(i) for i in n[:-1]] + [f"{max_frequency}+"])
    ax.set_xlabel("repeat purchases")
    ax.set_ylabel("customers")
    ax.set_title("Customers by number of repeat purchases: model vs actual")
    ax.legend(frameon=False)
    return ax


# ---- one customer's P(alive) over time ----------------------------------------------------------
def plot_alive_history(
    model,
    tx: pd.DataFrame,
    customer_id,
    *,
    customer: str | None = None,
    date: str | None = None,
    observation_end: object = None,
    unit: str | float = "W",
    ax=None,
):
    """P(alive) of one customer, day by day from the first purchase to `observation_end`.

    On each day *D* the customer's history up to *D* (frequency, recency, age) goes into
    the model's ``probability_alive``; purchase days are marked by a rug of ticks at the
    bottom. For a Bayesian model the 94% HDI is shaded. `tx` may be a frame of any engine
    narwhals supports (only this customer's purchase days are collected).

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.lines[0]`` is the P(alive) path (x dates, y probabilities); the purchase
        days are the line collection labelled ``"purchase day"``. The legend sits to the
        right of the Axes: the path and the rug can fill the whole frame.
    """
    ax = _axes(ax, layout="constrained")
    days, end = purchase_days_of(tx, customer, date, customer_id, observation_end)
    first = int(days[0])
    grid = np.arange(first, max(end, first) + 1)
    n_before = np.searchsorted(days, grid, side="right")  # purchase days <= D
    last = days[n_before - 1]
    u = unit_days(unit)
    hist = pd.DataFrame(
        {"frequency": n_before - 1, "recency": (last - first) / u, "T": (grid - first) / u}
    )
    alive = model.probability_alive(hist)
    x = pd.to_datetime(grid.astype("datetime64[D]"))
    ax.plot(x, _mean(alive), color="C0", lw=1.5, label="P(alive)")
    if isinstance(alive, pd.DataFrame) and {"hdi_low", "hdi_high"} <= set(alive.columns):
        ax.fill_between(
            x, alive["hdi_low"], alive["hdi_high"], color="C0", alpha=0.2, label="94% HDI"
        )
    ax.vlines(
        pd.to_datetime(days.astype("datetime64[D]")),
        0.0,
        0.06,
        color="black",
        lw=1,
        label="purchase day",
    )
    ax.set_ylim(0, 1.05)
    # short date labels ("Mar", "May", "1998"): they stay apart in a narrow panel
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("date")
    ax.set_ylabel("P(alive)")
    ax.set_title(f"Customer {customer_id}: probability of being alive")
    _legend_outside(ax, fontsize=9)
    return ax


# ---- segments ---------------------------------------------------------------------------------
def _forest_height(n_segments: int, n_methods: int) -> float:
    """Figure height (inches) for a forest plot: a seventh of an inch per marker, at
    least half an inch per segment, plus room for the title and the x axis; 3.5 at least."""
    return max(3.5, 1.3 + n_segments * max(0.5, 0.14 * n_methods))


def plot_segment_forest(
    estimates: pd.DataFrame, *, xlabel: str = "mean holdout purchases per customer", ax=None
):
    """Forest plot: one row per segment, one marker (and interval) per method.

    Parameters
    ----------
    estimates : pandas.DataFrame
        Indexed by (segment, method) with columns ``mean``, ``low``, ``high`` (NaN:
        no interval) and optionally ``customers``, e.g. from
        :func:`clvmodels.compare.segment_estimates`. The method ``"actual"`` is drawn as a
        black diamond.
    ax : matplotlib.axes.Axes, optional
        Without it, a new figure 9 inches wide whose height grows with the number of
        segments and methods.

    Returns
    -------
    matplotlib.axes.Axes
        One errorbar container per method (``ax.containers``, labelled by method); only
        methods with at least one interval have error bars, so the legend shows bars
        exactly for them. The legend sits to the right of the Axes. y tick labels are the
        segments (with their number of customers).
    """
    segments = list(pd.unique(estimates.index.get_level_values(0)))
    methods = list(pd.unique(estimates.index.get_level_values(1)))
    if ax is None:
        height = _forest_height(len(segments), len(methods))
        ax = _axes(None, figsize=(9, height), layout="constrained")
    colors = _Palette(methods)
    others = [m for m in methods if m != ACTUAL]
    # within a segment the methods run top to bottom in legend order
    offsets = {
        m: ((len(others) - 1) / 2 - k) * 0.6 / max(len(others), 1) for k, m in enumerate(others)
    }
    offsets[ACTUAL] = 0.0
    y0 = np.arange(len(segments))[::-1]
    for m in methods:
        part = estimates.xs(m, level=1).reindex(segments)
        y = y0 + offsets[m]
        mean = part["mean"].to_numpy(float)
        low, high = part["low"].to_numpy(float), part["high"].to_numpy(float)
        err = np.vstack([mean - low, high - mean])
        # a method without any interval gets no error bars (and none in its legend entry)
        err = np.where(np.isfinite(err), err, 0.0) if np.isfinite(err).any() else None
        if m == ACTUAL:
            ax.errorbar(
                mean, y, fmt="D", color="black", ms=7, mfc="white", mew=1.5, label=m, zorder=3
            )
        else:
            ax.errorbar(
                mean, y, xerr=err, fmt="o", color=colors(m), ms=5, capsize=2, lw=1.3, label=m
            )
    labels = [str(s) for s in segments]
    if "customers" in estimates.columns:
        n = estimates["customers"].groupby(level=0).first()
        labels = [f"{s} (n={int(n[s]):,})" for s in segments]
    ax.set_yticks(y0, labels)
    ax.set_ylim(-0.5, len(segments) - 0.5)
    ax.set_xlabel(xlabel)
    ax.set_title("Segments: estimates with intervals by method")
    ax.grid(axis="x", alpha=0.3)
    _legend_outside(ax, fontsize=9)
    return ax


# ---- CLV -------------------------------------------------------------------------------------
def _headroom_top(vmax: float, log: bool) -> float:
    """An upper y limit above `vmax`: the next decade on a symlog axis (so the top decade
    has a labelled tick), 5% more on a linear one."""
    if log and vmax > 1.0:
        return float(10.0 ** np.ceil(np.log10(vmax) + 1e-9))
    return vmax * 1.05 if vmax > 0 else vmax


def plot_clv_distribution(
    clv,
    *,
    formula: float | Mapping[str, float] | None = None,
    log: bool = False,
    ylabel: str = "CLV",
    ax=None,
):
    """Customers ranked by CLV, with each customer's credible interval.

    Parameters
    ----------
    clv : pandas.DataFrame or pandas.Series
        Per customer: ``mean``, ``hdi_low``, ``hdi_high`` (from
        :func:`clvmodels.bayes.customer_lifetime_value`), or point values (Series).
    formula : float or mapping of label to float, optional
        The formula's CLV per customer, drawn as horizontal reference lines.
    log : bool, default False
        Symmetric-logarithmic y axis, linear below 1 (CLV is usually very skewed).
    ylabel : str, default "CLV"
        The y axis label; name the currency here (e.g. ``"CLV, $"``).

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.lines[0]`` is the ranked CLV (x: share of customers in %, highest first);
        the interval band is ``ax.collections[0]`` when there are intervals (shaded, with
        an outline); with ``low``/``high`` columns (``level=`` of the CLV functions) the
        predictive interval of the value is a hatched band after it, labelled as a range
        of outcomes. Where the bands of most customers are narrower than the line, the
        band's legend label says so. The upper y limit is above every value drawn; on a
        log axis it is the next power of ten, so the top decade has a tick.
    """
    ax = _axes(ax)
    mean = _mean(clv)
    order = np.argsort(-mean, kind="stable")
    x = 100.0 * (np.arange(len(mean)) + 0.5) / len(mean)
    lw = 1.5
    ax.plot(
        x,
        mean[order],
        color="C0",
        lw=lw,
        zorder=3,
        label="model CLV (posterior mean)" if isinstance(clv, pd.DataFrame) else "model CLV",
    )
    drawn = [mean]
    band = None
    if isinstance(clv, pd.DataFrame) and {"hdi_low", "hdi_high"} <= set(clv.columns):
        low = clv["hdi_low"].to_numpy(float)[order]
        high = clv["hdi_high"].to_numpy(float)[order]
        drawn += [low, high]
        band = ax.fill_between(
            x,
            low,
            high,
            facecolor=to_rgba("C0", 0.3),
            edgecolor=to_rgba("C0", 0.8),
            lw=0.6,
            zorder=2,
            label="94% credible interval",
        )
    if isinstance(clv, pd.DataFrame) and {"low", "high"} <= set(clv.columns):
        # the predictive interval: a range of outcomes, not of the expectation
        p_low = clv["low"].to_numpy(float)[order]
        p_high = clv["high"].to_numpy(float)[order]
        drawn += [p_low, p_high]
        level = clv.attrs.get("level")
        share = f"{level:.0%} " if level is not None else ""
        ax.fill_between(
            x, p_low, p_high, facecolor="none", edgecolor=to_rgba("C1", 0.9), hatch="////",
            lw=0.6, zorder=1, label=f"{share}predictive interval (range of outcomes)",
        )
    if formula is not None:
        refs = formula if isinstance(formula, Mapping) else {"formula": formula}
        for k, (label, value) in enumerate(refs.items()):
            ax.axhline(float(value), color=f"C{k + 1}", ls="--", lw=1.2, label=label)
            drawn.append(np.array([float(value)]))
    if log:
        ax.set_yscale("symlog", linthresh=1.0)
        _plain_ticks(ax.yaxis)
        # minor ticks at 2..9 x 10^k: values between the decades can be read
        ax.yaxis.set_minor_locator(
            SymmetricalLogLocator(linthresh=1.0, base=10.0, subs=np.arange(2.0, 10.0))
        )
    values = np.concatenate(drawn)
    values = values[np.isfinite(values)]
    if values.size:
        top = _headroom_top(float(values.max()), log)
        if np.nanmin(mean) >= 0:
            ax.set_ylim(0, top)
        elif top > ax.get_ylim()[0]:
            ax.set_ylim(top=top)
    if band is not None:
        # in display units (points, at the current Axes size): how many customers'
        # bands stick out beyond the line, by half a point or more on either side?
        ok = np.isfinite(low) & np.isfinite(high)
        ys = ax.transData.transform(np.column_stack([x[ok], low[ok]]))[:, 1]
        ye = ax.transData.transform(np.column_stack([x[ok], high[ok]]))[:, 1]
        hidden = np.mean(np.abs(ye - ys) * 72.0 / ax.figure.dpi <= lw + 1.0) if ok.any() else 0
        if hidden > 0.5:
            band.set_label(
                f"94% credible interval (narrower than the line for {hidden:.0%} of customers)"
            )
    ax.grid(axis="y", alpha=0.3)
    ax.set_xlabel("customers ranked by CLV (% of customers, highest first)")
    ax.set_ylabel(ylabel)
    ax.set_title("Customer lifetime value, customer by customer")
    ax.legend(frameon=False)
    return ax


def plot_formula_vs_model(
    formula,
    model,
    *,
    xlabel: str = "formula CLV",
    ylabel: str = "model CLV",
    log: bool = False,
    zero_label: str = "formula = 0",
    ax=None,
):
    """Scatter of the formula's CLV against a model's CLV, one point per customer.

    Customers whose formula value is exactly 0 (for an own-history formula: no repeat
    purchase yet) are drawn apart: a strip of points in the next colour of the cycle at
    x = 0, jittered sideways (seeded, half-width :data:`ZERO_STRIP`) so that thousands of
    them stay visible, inside the frame, with their number and share in the legend. On
    log axes the tick labels read 0, 1, 10, 100 (symmetric log, linear below 1).

    Parameters
    ----------
    formula, model : pandas.Series or DataFrame
        Per-customer values (Bayesian summaries: the ``mean`` column), aligned on the
        index of `model`.
    log : bool, default False
        Symmetric-logarithmic axes (linear below 1), for skewed values.
    zero_label : str, default "formula = 0"
        Legend label of the customers with formula value 0, followed by their number
        and share: ``"formula = 0: 1,234 customers (52%)"``.

    Returns
    -------
    matplotlib.axes.Axes
        The points with a non-zero formula value are ``ax.collections[0]``; those with
        formula value 0, if any, ``ax.collections[1]``. ``ax.lines[0]`` is the diagonal
        y = x.
    """
    ax = _axes(ax)
    m = model["mean"] if isinstance(model, pd.DataFrame) else model
    f = (formula["mean"] if isinstance(formula, pd.DataFrame) else formula).reindex(m.index)
    x, y = f.to_numpy(float), m.to_numpy(float)
    finite = np.isfinite(x) & np.isfinite(y)
    zero = finite & (x == 0)
    ax.scatter(x[~zero], y[~zero], s=6, alpha=0.35, color="C0", lw=0)
    hi = float(max(x[finite].max(), y[finite].max())) if finite.any() else 1.0
    lo = float(min(0.0, x[finite].min(), y[finite].min())) if finite.any() else 0.0
    ax.plot([lo, hi], [lo, hi], color="grey", ls="--", lw=1, label="formula = model")
    width = ZERO_STRIP * (1.0 if log else hi)  # half-width of the strip at x = 0
    if zero.any():
        n_zero = int(zero.sum())
        # a strip with a seeded horizontal jitter: thousands of customers stay visible
        jitter = np.random.default_rng(0).uniform(-width, width, n_zero)
        ax.scatter(
            x[zero] + jitter,
            y[zero],
            s=8,
            alpha=0.35,
            color="C1",
            lw=0,
            zorder=3,
            label=f"{zero_label}: {n_zero:,} customers ({n_zero / finite.sum():.0%})",
        )
    if log:
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_yscale("symlog", linthresh=1.0)
        _plain_ticks(ax.xaxis)
        _plain_ticks(ax.yaxis)
    if lo >= 0:
        # customers at x = 0 are drawn inside the frame, not on its edge
        ax.set_xlim(left=-1.5 * width if zero.any() else 0.0)
        ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("Formula vs model, customer by customer")
    ax.legend(frameon=False, loc="upper left")
    return ax


ZERO_STRIP = 0.3  # half-width of the x = 0 strip: symlog units, or a share of the x range


def _plain_ticks(axis) -> None:
    """Tick labels 0, 1, 10, 1,000 on a symlog axis (not 0, 10^0, 10^1: the linear part
    below 1 then reads as one scale)."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if abs(v) >= 1 or v == 0
                                           else f"{v:g}"))  # fmt: skip


def plot_calibration_deciles(deciles: pd.DataFrame, *, ax=None):
    """Predicted against actual mean holdout value per decile of the predicted value.

    Parameters
    ----------
    deciles : pandas.DataFrame
        From :func:`clvmodels.calibration_deciles`: indexed by (method, decile) with
        ``predicted`` and ``actual``.

    Returns
    -------
    matplotlib.axes.Axes
        Per method: the predicted means (solid line, circles) and the actual means of the
        same customers (dashed, crosses), in the method's colour; a calibrated method's
        two lines coincide, a method that ranks well has rising actual means.
    """
    ax = _axes(ax, layout="constrained")
    names = list(deciles.index.get_level_values("method").unique())
    color = _Palette(names)
    for name in names:
        part = deciles.loc[name]
        ax.plot(part.index, part["predicted"], "o-", color=color(name), label=f"{name}: predicted")
        ax.plot(part.index, part["actual"], "x--", color=color(name), label=f"{name}: actual")
    quantity = str(deciles["quantity"].iloc[0]) if "quantity" in deciles.columns else "value"
    ax.set_xlabel("decile of predicted holdout value (1 = lowest)")
    ax.set_ylabel(f"mean holdout {quantity} per customer")
    ax.set_title("Calibration: predicted vs actual by decile")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    return ax


# ---- regularity of purchase timing ----------------------------------------------------------
def _reference_ks(estimate) -> dict[str, float]:
    """Reference shapes of the regularity plots: Poisson (k = 1), Erlang-2 and the estimate."""
    refs = {"k = 1 (Poisson models)": 1.0, "k = 2": 2.0}
    if np.isfinite(estimate.k) and estimate.k > 0:
        refs[f"k = {estimate.k:.2f} (Wheat & Morrison)"] = float(estimate.k)
    return refs


def plot_regularity(estimate, *, bins: int = 20, ax=None):
    """Wheat & Morrison's ratio of the last two inter-transaction times, against Beta(k, k).

    ``estimate`` is :func:`clvmodels.estimate_regularity`'s result. Under Gamma(k)
    inter-transaction times the ratio ITT_1 / (ITT_1 + ITT_2) is Beta(k, k): flat for the
    Poisson models (k = 1), peaked at 1/2 for regular buyers.

    Returns
    -------
    matplotlib.axes.Axes
        A density histogram (``ax.patches``) and one line per reference k (``ax.lines``).
    """
    from scipy import stats

    ax = _axes(ax)
    ax.hist(estimate.m, bins=bins, range=(0, 1), density=True, color="0.8",
            edgecolor="white", label=f"actual ({estimate.n_customers} customers)")
    grid = np.linspace(0.0025, 0.9975, 200)
    for label, k in _reference_ks(estimate).items():
        ax.plot(grid, stats.beta.pdf(grid, k, k), label=label)
    ax.set_xlabel("ITT\u2081 / (ITT\u2081 + ITT\u2082), last two inter-transaction times")
    ax.set_ylabel("density")
    ax.set_title("Regularity of purchase timing (Wheat & Morrison)")
    ax.legend(frameon=False)
    return ax


def plot_intertransaction_times(estimate, *, max_ratio: float = 4.0, bins: int = 40, ax=None):
    """Inter-transaction times relative to each customer's mean, against Gamma(k) references.

    ``estimate`` is :func:`clvmodels.estimate_regularity`'s result; the reference curves
    are :func:`clvmodels.regularity.ratio_density` (exact for any spread of purchase
    rates across customers): exponential-like for k = 1, concentrated around 1 for
    regular buyers. Ratios above `max_ratio` are not drawn.

    Returns
    -------
    matplotlib.axes.Axes
        A density histogram (``ax.patches``) and one line per reference k (``ax.lines``).
    """
    from .regularity import ratio_density

    ax = _axes(ax)
    ax.hist(estimate.ratios, bins=bins, range=(0, max_ratio), density=True, color="0.8",
            edgecolor="white", label=f"actual ({estimate.ratios.size} times)")
    grid = np.linspace(max_ratio / 400, max_ratio, 200)
    for label, k in _reference_ks(estimate).items():
        ax.plot(grid, ratio_density(grid, estimate.gaps, k), label=label)
    ax.set_xlabel("inter-transaction time / the customer's mean")
    ax.set_ylabel("density")
    ax.set_title("Inter-transaction times: actual vs Gamma(k)")
    ax.legend(frameon=False)
    return ax
