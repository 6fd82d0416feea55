r"""Scores of holdout predictions: errors, ranking and calibration.

:func:`compare` scores each method's holdout predictions
(:func:`clvmodels.holdout.holdout_predictions`) against what the customers did:

* errors of the totals and per customer (MAE, RMSE, bias), rank correlation;
* ranking: the share of the actual revenue captured by the top N% of customers
  (:func:`captured_share`), the normalised Gini coefficient (:func:`normalised_gini`) and
  the top-decile lift (:func:`top_decile_lift`);
* calibration: predicted against actual per decile of the predicted value
  (:func:`calibration_deciles`; plotted by
  :func:`clvmodels.plotting.plot_calibration_deciles`).

Ties in the predictions (e.g. every one-time buyer of a cohort gets the same value) are
broken at random *in expectation*: a method that gives everybody the same prediction
captures exactly N% of the total, has a Gini of 0 and a lift of 1.

References
----------
.. [1] Frees, E. W., Meyers, G. and Cummings, A. D. (2011). Summarizing Insurance Scores
   Using a Gini Index. *Journal of the American Statistical Association* 106(495),
   1085-1098 (the ordered Lorenz curve and the Gini of a score).
.. [2] Malthouse, E. C. and Blattberg, R. C. (2005). Can we predict customer lifetime
   value? *Journal of Interactive Marketing* 19(1), 2-16 (top-decile accuracy of CLV
   predictions).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .holdout import ACTUAL, holdout_predictions

__all__ = [
    "calibration_deciles",
    "captured_share",
    "compare",
    "mae_difference",
    "normalised_gini",
    "top_decile_lift",
]


def _tie_groups(predicted: np.ndarray, actual: np.ndarray):
    """Counts and sums of `actual` per distinct prediction, by decreasing prediction."""
    values, inverse = np.unique(-predicted, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(values)).astype(float)
    sums = np.bincount(inverse, weights=actual, minlength=len(values))
    return counts, sums


def captured_share(predicted: np.ndarray, actual: np.ndarray, fraction: float) -> float:
    """Share of the total of `actual` held by the top `fraction` of customers by `predicted`.

    The top ``fraction * n`` customers are taken in order of decreasing prediction;
    customers with tied predictions at the boundary (and a fractional boundary customer)
    contribute in proportion, which is the expected share under random tie-breaking. A
    method that gives everybody the same prediction therefore captures exactly
    `fraction` of the total.
    """
    predicted = np.asarray(predicted, float)
    actual = np.asarray(actual, float)
    total = actual.sum()
    if total <= 0 or len(actual) == 0:
        return float("nan")
    k = fraction * len(actual)
    counts, sums = _tie_groups(predicted, actual)
    before = np.concatenate(([0.0], np.cumsum(counts)[:-1]))
    taken = np.clip(k - before, 0.0, counts)
    return float(np.sum(sums * taken / counts) / total)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0 or np.isnan(a).any():
        return float("nan")
    from scipy import stats  # heavy: imported when needed

    return float(stats.spearmanr(a, b).statistic)


def _metrics(pred: pd.DataFrame, actual: pd.DataFrame, top: tuple[float, ...]) -> dict:
    out: dict[str, float] = {"customers": float(len(actual))}
    for q in ("purchases", "revenue"):
        p, a = pred[q].to_numpy(float), actual[q].to_numpy(float)
        err = p - a
        out[f"{q}_mae"] = float(np.mean(np.abs(err))) if len(err) else np.nan
        out[f"{q}_rmse"] = float(np.sqrt(np.mean(err**2))) if len(err) else np.nan
        out[f"{q}_bias"] = float(np.mean(err)) if len(err) else np.nan
        out[f"{q}_predicted"] = float(p.sum())
        out[f"{q}_actual"] = float(a.sum())
        out[f"{q}_error_pct"] = 100.0 * (p.sum() / a.sum() - 1.0) if a.sum() > 0 else np.nan
        out[f"{q}_spearman"] = _spearman(p, a)
        out[f"{q}_gini"] = normalised_gini(p, a)
        out[f"{q}_top_decile_lift"] = (
            top_decile_lift(p, a) if a.sum() > 0 and not np.isnan(p).any() else np.nan
        )
    ranking = pred["revenue"] if pred["revenue"].notna().all() else pred["purchases"]
    for f in top:
        out[f"top{round(100 * f)}_revenue_share"] = captured_share(
            ranking.to_numpy(float), actual["revenue"].to_numpy(float), f
        )
    return out


def _ordered_lorenz_area(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Mean cumulative share of `actual` over the customers ordered by decreasing
    `predicted`, ties in random order (in expectation: linear within a tie group)."""
    counts, sums = _tie_groups(predicted, actual)
    before = np.concatenate(([0.0], np.cumsum(sums)[:-1]))
    # a group of c customers after a cumulative S adds c S + s (c + 1) / 2
    return float(np.sum(counts * before + sums * (counts + 1) / 2) / (actual.sum() * len(actual)))


def normalised_gini(predicted, actual) -> float:
    r"""Normalised Gini coefficient of a ranking: how much of the best possible ordering
    of the actual values the predictions achieve.

    With customers ordered by decreasing prediction, the Gini of the prediction is
    :math:`G = \frac{1}{n}\sum_{k=1}^{n} \frac{A_k}{A_n} - \frac{n+1}{2n}`, with
    :math:`A_k` the actual total of the first k customers (the area between the ordered
    Lorenz curve and the diagonal of a random order, [1]_); normalised by the Gini of
    the actual values themselves, so 1 is the perfect ranking, 0 a random (or
    constant) one and below 0 worse than random. NaN when the actual total is not
    positive.
    """
    predicted = np.asarray(predicted, float)
    actual = np.asarray(actual, float)
    n = len(actual)
    if n == 0 or actual.sum() <= 0 or np.isnan(predicted).any():
        return float("nan")
    base = (n + 1) / (2 * n)
    best = _ordered_lorenz_area(actual, actual) - base
    if best <= 0:
        return float("nan")
    return (_ordered_lorenz_area(predicted, actual) - base) / best


def top_decile_lift(predicted, actual) -> float:
    """Mean actual value of the top 10% of customers by prediction over the mean of all
    ([2]_): :func:`captured_share` at 0.1 divided by 0.1 (1 for a random ranking)."""
    return captured_share(predicted, actual, 0.1) / 0.1


def calibration_deciles(
    cal: pd.DataFrame,
    methods: Mapping[str, object],
    *,
    quantity: str = "revenue",
    segment: str | None = None,
    bins: int = 10,
) -> pd.DataFrame:
    """Predicted against actual holdout values per decile of the predicted value.

    For each method the customers are ordered by their predicted `quantity` and cut into
    `bins` groups of equal size (decile 1: the lowest predictions; customers with tied
    predictions are split between neighbouring groups in the order of the frame). A
    calibrated method has ``predicted`` close to ``actual`` in every decile; a method
    that ranks well has ``actual`` increasing with the decile.

    Parameters
    ----------
    cal, methods, segment
        As for :func:`compare`.
    quantity : {"revenue", "purchases"}
        Methods without revenue predictions are grouped by purchases whatever this says.
    bins : int, default 10

    Returns
    -------
    pandas.DataFrame
        Indexed by (method, decile): ``customers``, ``predicted`` and ``actual`` (means
        per customer), ``predicted_total``, ``actual_total`` and ``quantity``.
    """
    if quantity not in ("revenue", "purchases"):
        raise ValueError(f"quantity must be 'revenue' or 'purchases', got {quantity!r}")
    if int(bins) < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    preds = holdout_predictions(cal, methods, segment=segment)
    frames = {}
    for name in [n for n in preds.columns.get_level_values(0).unique() if n != ACTUAL]:
        q = quantity if preds[name][quantity].notna().all() else "purchases"
        p = preds[name][q].to_numpy(float)
        a = preds[ACTUAL][q].to_numpy(float)
        order = np.argsort(p, kind="stable")
        decile = np.empty(len(p), dtype=np.int64)
        decile[order] = np.arange(len(p)) * int(bins) // max(len(p), 1) + 1
        table = pd.DataFrame({"decile": decile, "predicted": p, "actual": a}).groupby("decile")
        out = table.agg(customers=("predicted", "size"), predicted=("predicted", "mean"),
                        actual=("actual", "mean"), predicted_total=("predicted", "sum"),
                        actual_total=("actual", "sum"))
        out["quantity"] = q
        frames[name] = out
    return pd.concat(frames, names=["method", "decile"])


def mae_difference(
    predictions: pd.DataFrame, method: str, other: str, quantity: str = "revenue"
) -> tuple[float, float]:
    r"""The difference of two methods' mean absolute errors on the same customers, and its
    paired standard error.

    With :math:`d_i = |\hat y_{i,\mathrm{method}} - y_i| - |\hat y_{i,\mathrm{other}} - y_i|`
    over the n customers of `predictions` (the frame of
    :func:`clvmodels.holdout.holdout_predictions`, with the method ``"actual"``), the
    difference is :math:`\bar d` (MAE of `method` minus MAE of `other`, as the
    ``q_mae`` columns of :func:`compare`) and its standard error
    :math:`s_d / \sqrt{n}`, :math:`s_d` the sample standard deviation of the
    :math:`d_i`: the paired comparison of two forecasts' losses of Diebold & Mariano
    (1995), eq. (3), for independent customers instead of a time series (no
    autocorrelation correction).

    References
    ----------
    .. [3] Diebold, F. X. and Mariano, R. S. (1995). Comparing Predictive Accuracy.
       *Journal of Business & Economic Statistics* 13(3), 253-263.
    """
    actual = predictions[(ACTUAL, quantity)].to_numpy(float)
    loss = [np.abs(predictions[(m, quantity)].to_numpy(float) - actual) for m in (method, other)]
    d = loss[0] - loss[1]
    d = d[np.isfinite(d)]
    if d.size < 2:
        return float("nan"), float("nan")
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))


def compare(
    cal: pd.DataFrame,
    methods: Mapping[str, object],
    *,
    segment: str | None = None,
    by_segment: bool | None = None,
    top: tuple[float, ...] = (0.1, 0.2),
    reference: bool = True,
) -> pd.DataFrame:
    """Score each method's holdout predictions against what the customers did.

    Parameters
    ----------
    cal : pandas.DataFrame
        Calibration/holdout frame from :func:`clvmodels.calibration_holdout` (with
        ``monetary_value`` and ``monetary_value_holdout`` for the revenue metrics, and
        the segment column if `segment` is given).
    methods : mapping of name to method
        ``{"formula": formula_holdout(...), "BG/NBD": (bg, gg), ...}``: fitted models,
        (purchase model, spend model) pairs, per-segment mappings of models, or
        precomputed predictions; the module docstring says how each predicts.
    segment : str, optional
        Segment column of `cal`: needed by per-segment mappings of models, and by default
        the methods are also scored within each segment.
    by_segment : bool, optional
        Score within each segment too (default: when `segment` is given).
    top : tuple of float, default (0.1, 0.2)
        Fractions of customers for the captured-revenue columns.
    reference : bool, default True
        Add a row ``"actual"``: the observed values scored as a prediction (zero errors,
        and the largest revenue share any ranking can capture).

    Returns
    -------
    pandas.DataFrame
        One row per method (index ``method``), or with `by_segment` one row per
        (segment, method), segment ``"all"`` first. Columns, for ``q`` in purchases and
        revenue: ``q_mae``, ``q_rmse``, ``q_bias`` (mean of predicted - actual per
        customer), ``q_predicted`` and ``q_actual`` (totals over the customers),
        ``q_error_pct`` (100 x (predicted / actual - 1) of the totals), ``q_spearman``
        (rank correlation of predicted and actual; NaN when a method gives everybody
        the same value), ``q_gini`` (:func:`normalised_gini`: 1 = the best ranking,
        0 = random) and ``q_top_decile_lift`` (:func:`top_decile_lift`);
        ``topN_revenue_share`` (share of the actual holdout revenue
        made by the top N% of customers as ranked by the method's predicted revenue, or
        purchases without a spend model; see :func:`captured_share`) and ``customers``.
        Revenue columns are NaN for methods without revenue predictions. The decile
        calibration table of the same methods is :func:`calibration_deciles`.

    Examples
    --------
    >>> import clvmodels as cm
    >>> tx = cm.datasets.cdnow_transactions(sample=True)
    >>> cal = cm.calibration_holdout(tx, "customer_id", "date", "amount",
    ...                              calibration_end="1997-09-30")
    >>> bg = cm.BGNBD().fit(cal)
    >>> table = compare(cal, {"naive": cm.naive_holdout(cal), "BG/NBD": bg})
    >>> round(float(table.loc["BG/NBD", "purchases_error_pct"]), 1)
    -12.1
    """
    preds = holdout_predictions(cal, methods, segment=segment)
    names = [n for n in preds.columns.get_level_values(0).unique() if n != ACTUAL]
    if reference:
        names.append(ACTUAL)
    actual = preds[ACTUAL]
    groups: list[tuple[object, np.ndarray]] = [("all", np.ones(len(cal), dtype=bool))]
    if by_segment is None:
        by_segment = segment is not None
    if by_segment and segment is None:
        raise ValueError("by_segment=True needs the segment column: pass segment=")
    if by_segment:
        labels = cal[segment].to_numpy()
        try:
            order = sorted(pd.unique(labels))
        except TypeError:
            order = list(pd.unique(labels))
        groups += [(s, labels == s) for s in order]
    rows, index = [], []
    for label, mask in groups:
        for name in names:
            rows.append(_metrics(preds[name][mask], actual[mask], tuple(top)))
            index.append((label, name))
    if not by_segment:
        out = pd.DataFrame(rows, index=pd.Index([n for _, n in index], name="method"))
    else:
        out = pd.DataFrame(
            rows, index=pd.MultiIndex.from_tuples(index, names=["segment", "method"])
        )
    out["customers"] = out["customers"].astype(np.int64)
    return out
