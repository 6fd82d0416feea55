r"""Holdout predictions of the formula and of the models, per customer and per segment.

Every method predicts, for each customer of a calibration/holdout frame (from
:func:`clvmodels.calibration_holdout`), the number of purchases and the revenue in the
holdout period (:func:`holdout_predictions`); :func:`clvmodels.compare` (in
:mod:`clvmodels.metrics`) scores those predictions against what the customers did.

How each method produces a holdout prediction
---------------------------------------------
Let :math:`h_i` be customer *i*'s holdout length (``duration_holdout``, in the frame's time
unit) and :math:`y_i = h_i \times \text{unit} / 365.25` the same in years.

* **The formula, aggregate** (:func:`formula_holdout` without `segment`): the analysts'
  formula of :func:`clvmodels.formula_clv`, computed on the calibration period only,
  gives one ``purchase_frequency`` :math:`f` (purchases per customer per year, first
  purchases included, over the whole calibration window) and one ``customer_value``
  :math:`v = f \times \text{avg\_purchase\_value}` (revenue per customer per year). Every
  customer is predicted :math:`f\,y_i` purchases and :math:`v\,y_i` revenue: the
  formula's own assumption that customers keep buying at the historic average rate for
  their lifespan (the lifespan only matters beyond the holdout).
* **The formula, per segment** (:func:`formula_holdout` with `segment`): the same with
  :math:`f` and :math:`v` of the customer's segment.
* **Naive per customer** (:func:`naive_holdout`): own average value x own frequency x
  horizon: :math:`x_i / T_i \times h_i` purchases (the customer's repeat-purchase rate
  in the calibration period, 0 when :math:`T_i = 0`) and that times ``monetary_value``
  (the mean value of the customer's repeat purchases) as revenue. One-time buyers are
  predicted 0.
* **A probabilistic model** (a fitted BG/NBD, Pareto/NBD, MBG/NBD, BG/BB or a Bayesian
  model): :math:`E[Y_i(h_i) \mid x_i, t_{x,i}, T_i]`, the model's expected purchases in
  :math:`(T_i, T_i + h_i]`; Bayesian models contribute the posterior mean. Paired with a
  spend model, ``(purchase_model, spend_model)``, the revenue is that times the expected
  spend per purchase (for two Bayesian models: the posterior mean of the product, via
  :func:`clvmodels.bayes.customer_lifetime_value` with no discounting).
* **Separate fits per segment**: a mapping ``{segment label: model or (model, spend)}``;
  each customer is predicted by the model of their segment.
* **Precomputed predictions**: a DataFrame with ``purchases`` (and ``revenue``) columns
  or a Series of purchases, indexed like the frame.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ._aggregate import customer_segments, first_purchase_days, repeat_purchase_days
from ._validate import column_names, rfm_arrays
from .errors import DataError
from .formula import formula_clv
from .intervals import hdi
from .log import TransactionLog
from .rfm import frame_unit, unit_days

__all__ = [
    "acquisition_cohorts",
    "formula_holdout",
    "holdout_predictions",
    "naive_holdout",
    "repeat_purchases_over_time",
    "segment_estimates",
]

_YEAR_DAYS = 365.25
ACTUAL = "actual"
_HOLDOUT_COLUMNS = ("frequency", "recency", "T", "frequency_holdout", "duration_holdout")


# ---- the formula's holdout predictions ------------------------------------------------
def _check_holdout_frame(cal: pd.DataFrame, revenue: bool = False) -> None:
    need = list(_HOLDOUT_COLUMNS) + (
        ["monetary_value", "monetary_value_holdout"] if revenue else []
    )
    missing = [c for c in need if c not in cal.columns]
    if missing:
        raise DataError(
            None,
            f"the calibration/holdout frame lacks columns {missing}; build it with "
            "clvmodels.calibration_holdout(...)",
        )


def _segment_of(cal: pd.DataFrame, tx: object, customer: str | None, segment: str) -> pd.Series:
    """Each customer's segment: the column of `cal` if present, else from `tx`."""
    if segment in cal.columns:
        return cal[segment]
    if isinstance(tx, TransactionLog):
        customer = tx.customer
    if tx is None or customer is None or segment not in column_names(tx):
        raise DataError(segment, "segment column not found in the frame or the transactions")
    out = customer_segments(tx, customer, segment).reindex(cal.index)
    missing = int(out.isna().sum())
    if missing:
        raise DataError(segment, "has no value for some customers of the frame", missing)
    return out


def formula_holdout(
    tx: pd.DataFrame,
    cal: pd.DataFrame,
    *,
    customer: str | None = None,
    date: str | None = None,
    amount: str | None = None,
    calibration_end: object,
    segment: str | None = None,
    unit: str | float | None = None,
) -> pd.DataFrame:
    r"""The analysts' formula's prediction of each customer's holdout purchases and revenue.

    :func:`clvmodels.formula_clv` is computed on the transactions up to `calibration_end`
    (overall, or per segment); each customer is predicted ``purchase_frequency x years``
    purchases and ``customer_value x years`` revenue, with ``years`` the holdout length
    ``duration_holdout x unit / 365.25``. See the module docstring.

    Parameters
    ----------
    tx : pandas.DataFrame or any narwhals frame
        The transaction log the frame was built from (other engines aggregate it
        themselves, see :func:`clvmodels.formula_clv`).
    cal : pandas.DataFrame
        Calibration/holdout frame from :func:`clvmodels.calibration_holdout`.
    customer, date, amount : str
        Columns of `tx`.
    calibration_end : date-like
        The calibration end used to build `cal`.
    segment : str, optional
        Segment column (of `cal`, or else of `tx`): per-segment rates. Default: one rate.
    unit : str or float, optional
        The time unit `cal` was built with (default: the one `cal` records, see
        :func:`clvmodels.rfm.frame_unit`).

    Returns
    -------
    pandas.DataFrame
        Indexed like `cal`: ``purchases`` and ``revenue``. ``attrs["formula"]`` holds the
        formula table on the calibration period.

    Examples
    --------
    >>> import clvmodels as cm
    >>> tx = cm.datasets.cdnow_transactions(sample=True)
    >>> cal = cm.calibration_holdout(tx, "customer_id", "date", "amount",
    ...                              calibration_end="1997-09-30")
    >>> pred = formula_holdout(tx, cal, customer="customer_id", date="date",
    ...                        amount="amount", calibration_end="1997-09-30")
    >>> round(float(pred["purchases"].sum()))  # the customers made 1,882
    4814
    """
    _check_holdout_frame(cal)
    by = segment
    if segment is not None and segment in cal.columns:
        # the frame's own column first; the customers with transactions up to
        # calibration_end are those of `cal`
        by = cal[segment]
    elif segment is not None and segment not in column_names(tx):
        raise DataError(segment, "segment column not found in the frame or the transactions")
    # the lifespan does not enter the holdout prediction; passing one avoids estimating
    # it from a calibration period that may be shorter than the year the estimate needs
    table = formula_clv(
        tx, customer, date, amount, segment=by, lifespan=1.0, observation_end=calibration_end
    )
    unit = frame_unit(cal, unit)
    years = cal["duration_holdout"].to_numpy(float) * unit_days(unit) / _YEAR_DAYS
    if segment is None:
        row = np.zeros(len(cal), dtype=np.int64)
    else:
        labels = _segment_of(cal, tx, customer, segment)
        row = table.index.get_indexer(labels.to_numpy())
        if (row < 0).any():
            raise DataError(
                segment, "has segments without calibration transactions", int((row < 0).sum())
            )
    out = pd.DataFrame(
        {
            "purchases": table["purchase_frequency"].to_numpy()[row] * years,
            "revenue": table["customer_value"].to_numpy()[row] * years,
        },
        index=cal.index,
    )
    out.attrs["formula"] = table
    return out


def naive_holdout(cal: pd.DataFrame) -> pd.DataFrame:
    r"""Per-customer naive formula: own average value x own frequency x horizon.

    ``purchases = frequency / T * duration_holdout`` (0 where ``T == 0``) and
    ``revenue = purchases * monetary_value``: each customer keeps buying at their own
    calibration repeat-purchase rate and average repeat-purchase value.

    Returns
    -------
    pandas.DataFrame
        Indexed like `cal`: ``purchases`` and ``revenue`` (NaN without ``monetary_value``).
    """
    _check_holdout_frame(cal)
    x = cal["frequency"].to_numpy(float)
    T = cal["T"].to_numpy(float)
    rate = np.divide(x, T, out=np.zeros(len(cal)), where=T > 0)
    purchases = rate * cal["duration_holdout"].to_numpy(float)
    value = (
        cal["monetary_value"].to_numpy(float)
        if "monetary_value" in cal.columns
        else np.full(len(cal), np.nan)
    )
    return pd.DataFrame({"purchases": purchases, "revenue": purchases * value}, index=cal.index)


# ---- predictions of any method ----------------------------------------------------------
def _mean_of(values) -> np.ndarray:
    """A Series, or a Bayesian summary frame's ``mean`` column, as floats."""
    if isinstance(values, pd.DataFrame):
        values = values["mean"]
    return np.asarray(values, dtype=float)


def _is_bayesian(model) -> bool:
    return hasattr(model, "idata_")


def _model_predictions(method, frame: pd.DataFrame) -> pd.DataFrame:
    """Holdout purchases (and revenue) of one fitted model or (model, spend) pair."""
    spend = None
    if isinstance(method, tuple):
        if len(method) != 2:
            raise TypeError("a method tuple must be (purchase_model, spend_model)")
        method, spend = method
    if not hasattr(method, "expected_purchases"):
        raise TypeError(
            f"cannot predict with {type(method).__name__}: expected a fitted model, "
            "(model, spend_model), a mapping of segment -> model, a DataFrame with "
            "'purchases' (and 'revenue') or a Series"
        )
    purchases = np.empty(len(frame))
    revenue = np.full(len(frame), np.nan)
    durations = frame["duration_holdout"].to_numpy(float)
    for h in np.unique(durations):
        rows = np.flatnonzero(durations == h)
        part = frame.iloc[rows]
        purchases[rows] = _mean_of(method.expected_purchases(float(h), part))
        if spend is None:
            continue
        if _is_bayesian(method) and _is_bayesian(spend):
            from .bayes import customer_lifetime_value

            value = customer_lifetime_value(
                method, spend, part, horizon=float(h), period=float(h), discount_rate=0.0
            )
            revenue[rows] = _mean_of(value)
        else:
            revenue[rows] = purchases[rows] * _mean_of(spend.expected_spend(part))
    return pd.DataFrame({"purchases": purchases, "revenue": revenue}, index=frame.index)


def _predictions(method, cal: pd.DataFrame, segment: str | None, name: str) -> pd.DataFrame:
    if isinstance(method, pd.Series):
        method = method.to_frame("purchases")
    if isinstance(method, pd.DataFrame):
        if "purchases" not in method.columns:
            raise DataError("purchases", f"method {name!r}: predictions need this column")
        missing = int((~cal.index.isin(method.index)).sum())
        if missing:
            raise DataError(None, f"method {name!r} has no prediction for some customers", missing)
        out = method.reindex(cal.index)
        revenue = out["revenue"] if "revenue" in out.columns else np.nan
        return pd.DataFrame(
            {"purchases": out["purchases"].astype(float), "revenue": revenue}, index=cal.index
        ).astype(float)
    if isinstance(method, Mapping):
        if segment is None:
            raise ValueError(f"method {name!r} has one model per segment: pass segment=")
        labels = cal[segment]
        parts = []
        for label in pd.unique(labels):
            if label not in method:
                raise DataError(
                    segment,
                    f"method {name!r} has no model for segment {label!r}",
                    int((labels == label).sum()),
                )
            parts.append(_model_predictions(method[label], cal[labels == label]))
        return pd.concat(parts).reindex(cal.index)
    return _model_predictions(method, cal)


def holdout_predictions(
    cal: pd.DataFrame, methods: Mapping[str, object], *, segment: str | None = None
) -> pd.DataFrame:
    """Each method's predicted holdout purchases and revenue per customer.

    Parameters
    ----------
    cal : pandas.DataFrame
        Calibration/holdout frame (:func:`clvmodels.calibration_holdout`), with the
        segment column when a method needs it.
    methods : mapping of name to method
        Fitted models, ``(purchase_model, spend_model)`` pairs, mappings of segment label
        to model (separate fits), or precomputed predictions; see the module docstring.
    segment : str, optional
        Segment column of `cal`, needed by per-segment mappings.

    Returns
    -------
    pandas.DataFrame
        Indexed like `cal`, columns a MultiIndex (method, quantity) with quantities
        ``purchases`` and ``revenue`` (NaN for methods without a spend model), plus the
        method ``"actual"`` (the observed ``frequency_holdout`` and revenue).
    """
    _check_holdout_frame(cal)
    if not methods:
        raise ValueError("methods is empty: pass at least one {name: method}")
    if ACTUAL in methods:
        raise ValueError(f"{ACTUAL!r} is reserved for the observed values; rename the method")
    if segment is not None and segment not in cal.columns:
        raise DataError(segment, "segment column not found in the frame")
    frames = {name: _predictions(m, cal, segment, name) for name, m in methods.items()}
    revenue = (
        cal["frequency_holdout"] * cal["monetary_value_holdout"]
        if "monetary_value_holdout" in cal.columns
        else np.nan
    )
    frames[ACTUAL] = pd.DataFrame(
        {"purchases": cal["frequency_holdout"].astype(float), "revenue": revenue}, index=cal.index
    ).astype(float)
    return pd.concat(frames, axis=1, names=["method", "quantity"])


# ---- segment-level estimates with intervals (forest plots) -------------------------------
def _bayes_segment_draws(model, frame: pd.DataFrame, t: float, n_draws: int) -> np.ndarray:
    """Posterior draws of the mean of E[Y(t)] over the customers of `frame`."""
    draws, codes = model.customer_draws(frame, n_draws)  # segment and covariates
    arrays = rfm_arrays(frame)
    data = [arrays[c][None, :] for c in ("frequency", "recency", "T")]
    params = [(p[:, :1] if p.shape[1] == 1 else p[:, codes]) for p in draws]
    values = model.formulas.expected_purchases(*params, float(t), *data)
    return np.asarray(values).mean(axis=1)


def _mle_segment_draws(
    model, frame: pd.DataFrame, t: float, n_draws: int, rng: np.random.Generator
) -> np.ndarray | None:
    """Draws of the mean of E[Y(t)] from the normal approximation of the log-parameters."""
    cov = getattr(model, "cov_", None)
    if cov is None or not np.isfinite(cov.to_numpy()).all():
        return None
    if getattr(model, "design_", None) is not None:  # covariates: coefficients are not logs
        return _covariate_segment_draws(model, frame, t, n_draws, rng)
    theta = model.params_.to_numpy()
    cov_log = cov.to_numpy() / np.outer(theta, theta)
    try:
        logs = rng.multivariate_normal(np.log(theta), cov_log, size=n_draws, check_valid="raise")
    except (ValueError, np.linalg.LinAlgError):
        return None
    names = list(model.params_.index)
    out = np.full(n_draws, np.nan)
    # a flat likelihood (small segment) gives draws far outside the usual range
    with np.errstate(all="ignore"):
        for j, values in enumerate(np.exp(logs)):
            if not np.all(np.isfinite(values) & (values > 0)):
                continue
            draw = type(model).from_params(**dict(zip(names, values, strict=True)))
            out[j] = float(draw.expected_purchases(t, frame).mean())
    out = out[np.isfinite(out)]
    return out if out.size >= n_draws // 2 else None


def _covariate_segment_draws(model, frame, t, n_draws, rng) -> np.ndarray:
    """As :func:`_mle_segment_draws` for a model with covariates: its own parameter draws
    (normal in log-parameters and coefficients), each customer at its covariates."""
    import copy

    out = np.empty(n_draws)
    with np.errstate(all="ignore"):
        for j, values in enumerate(model.parameter_draws(n_draws, rng)):
            draw = copy.copy(model)
            draw.params_ = pd.Series(values, index=model.params_.index)
            out[j] = float(draw.expected_purchases(t, frame).mean())
    return out[np.isfinite(out)]


def segment_estimates(
    cal: pd.DataFrame,
    methods: Mapping[str, object],
    segment: str,
    *,
    t: float | None = None,
    interval: float = 0.94,
    n_draws: int = 400,
    random_state: int | None = 0,
) -> pd.DataFrame:
    """Mean predicted holdout purchases per customer in each segment, with intervals.

    For each segment and method: the mean over the segment's customers of the predicted
    purchases in the holdout (or in the next `t` time units). Intervals: for Bayesian
    models (one-segment or hierarchical) the `interval` highest-density interval of the
    segment mean over `n_draws` evenly spaced posterior draws; for per-segment mappings
    of maximum-likelihood models (separate fits) the same over draws from the normal
    approximation of the log-parameters (``cov_``); none (NaN) for the formula and other
    point predictions. The observed mean holdout purchases are the method ``"actual"``
    (only when `t` is None).

    Returns
    -------
    pandas.DataFrame
        Indexed by (segment, method): ``mean``, ``low``, ``high``, ``customers``.
    """
    if segment not in cal.columns:
        raise DataError(segment, "segment column not found in the frame")
    frame = cal if t is None else cal.assign(duration_holdout=float(t))
    preds = holdout_predictions(frame, methods, segment=segment)
    labels = cal[segment].to_numpy()
    try:
        order = sorted(pd.unique(labels))
    except TypeError:
        order = list(pd.unique(labels))
    rng = np.random.default_rng(random_state)
    rows, index = [], []
    horizon = frame["duration_holdout"].to_numpy(float)
    for s in order:
        mask = labels == s
        part = frame[mask]
        h = float(horizon[mask][0])
        for name in [*methods, ACTUAL]:
            if name == ACTUAL and t is not None:
                continue
            mean = float(preds[name]["purchases"][mask].mean())
            draws = None
            method = methods.get(name)
            model = method[0] if isinstance(method, tuple) else method
            if isinstance(method, Mapping) and s in method:
                sub = method[s][0] if isinstance(method[s], tuple) else method[s]
                if _is_bayesian(sub):
                    draws = _bayes_segment_draws(sub, part, h, n_draws)
                elif hasattr(sub, "params_"):
                    draws = _mle_segment_draws(sub, part, h, n_draws, rng)
            elif _is_bayesian(model):
                draws = _bayes_segment_draws(model, part, h, n_draws)
            low, high = hdi(draws, interval) if draws is not None else (np.nan, np.nan)
            rows.append({"mean": mean, "low": low, "high": high, "customers": int(mask.sum())})
            index.append((s, name))
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["segment", "method"]))


# ---- repeat purchases over calendar time (tracking plots) -------------------------------
def repeat_purchases_over_time(
    tx: pd.DataFrame,
    models: Mapping[str, object] | object,
    *,
    customer: str | None = None,
    date: str | None = None,
    calibration_end: object,
    observation_end: object = None,
    unit: str | float = "W",
) -> pd.DataFrame:
    r"""Actual and expected repeat purchases of the calibration cohort, period by period.

    The cohort is the customers whose first purchase is on or before `calibration_end`
    (those of :func:`clvmodels.calibration_holdout`). Periods of length `unit` start on
    the first transaction day. A repeat purchase is a purchase day after the customer's
    first one (same-day transactions merged). The model's expected repeat purchases up to
    the end of day *D* are :math:`\sum_i E[X(D - d_i)]` over the cohort, with
    :math:`d_i` customer *i*'s first purchase day and :math:`E[X(t)]` the model's
    ``expected_purchases_new(t)`` (Fader, Hardie & Lee 2005, Fig. 3).

    Parameters
    ----------
    tx : pandas.DataFrame or any narwhals frame
        The transaction log; other engines count the repeat purchases per day themselves
        (only one row per day and per first-purchase day is collected).
    models : fitted model or mapping of name to fitted model
        Models with ``expected_purchases_new`` (fitted on the calibration frame).
    customer, date : str
        Columns of `tx`.
    calibration_end, observation_end : date-like
        End of the calibration period and of the data (default: the last transaction).
    unit : str or float, default "W"
        Period length, and the time unit the models were fitted in.

    Returns
    -------
    pandas.DataFrame
        Indexed by the periods' first day (``period_start``): ``actual`` and one column per
        model, repeat purchases in the period (cumulate with ``.cumsum()``).
        ``attrs["calibration_end"]`` is the calibration end as a Timestamp.
    """
    if not isinstance(models, Mapping):
        models = {type(models).__name__: models}
    days = unit_days(unit)
    cal_day = int(
        pd.Timestamp(calibration_end).to_datetime64().astype("datetime64[D]").astype(np.int64)
    )
    r = repeat_purchase_days(tx, customer, date, cal_day, observation_end)
    if not len(r.firsts):
        raise DataError(date, "no customer's first purchase is on or before calibration_end")
    start = r.start
    n_periods = int(np.ceil((r.end_day - start + 1) / days))
    period = np.floor(np.arange(len(r.repeats)) / days).astype(np.int64)
    out = {"actual": np.bincount(period, weights=r.repeats, minlength=n_periods)}
    # expected: cumulative at the last day of each period
    last_day = np.minimum(start + np.ceil((np.arange(n_periods) + 1) * days) - 1, r.end_day)
    age = (last_day[:, None] - r.firsts[None, :]) / days
    for name, model in models.items():
        e = np.zeros(age.shape)
        alive = age > 0
        e[alive] = np.asarray(model.expected_purchases_new(age[alive]), float)
        cumulative = e @ r.counts
        out[name] = np.diff(cumulative, prepend=0.0)
    starts = np.datetime64(start, "D") + np.ceil(np.arange(n_periods) * days).astype(
        "timedelta64[D]"
    )
    frame = pd.DataFrame(out, index=pd.DatetimeIndex(starts, name="period_start"))
    frame.attrs["calibration_end"] = pd.Timestamp(np.datetime64(cal_day, "D"))
    frame.attrs["unit"] = unit
    return frame


# ---- segments every log has --------------------------------------------------------------
def acquisition_cohorts(
    tx: pd.DataFrame,
    *,
    customer: str | None = None,
    date: str | None = None,
    max_cohorts: int = 12,
    before: object = None,
) -> pd.Series:
    """Each customer's acquisition cohort: the month, quarter or year of the first purchase.

    The finest of month, quarter and year that gives at most `max_cohorts` cohorts among
    the customers first seen on or before `before` (default: all) is used; labels are
    ``"2023-04"``, ``"2023Q2"`` or ``"2023"``. `tx` may be a frame of any engine narwhals
    supports (the first purchase days are found by that engine).

    Returns
    -------
    pandas.Series
        Indexed by customer id (all customers of `tx`), name ``"cohort"``.
    """
    ids, first = first_purchase_days(tx, customer, date)
    stamps = pd.to_datetime(first.astype("datetime64[D]"))
    seen = np.ones(len(first), dtype=bool)
    if before is not None:
        limit = pd.Timestamp(before).to_datetime64().astype("datetime64[D]").astype(np.int64)
        seen = first <= limit
    for fmt, freq in (("%Y-%m", "M"), (None, "Q"), ("%Y", "Y")):
        periods = stamps.to_period(freq)
        if len(pd.unique(periods[seen])) <= max_cohorts or freq == "Y":
            labels = periods.strftime(fmt) if fmt else periods.astype(str)
            return pd.Series(np.asarray(labels), index=ids, name="cohort")
    raise AssertionError("unreachable")
