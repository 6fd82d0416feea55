r"""Discounted customer lifetime value from a purchase model and a spend model.

.. math::
    \mathrm{CLV}_i = \sum_{k=1}^{K} \frac{\mathrm{margin} \cdot E[\text{spend}_i]
        \cdot \big(E[Y_i(k\,\Delta)] - E[Y_i((k-1)\,\Delta)]\big)}{(1 + d)^k},
    \qquad K = \text{horizon} / \Delta

where :math:`\Delta` is ``period``, :math:`E[Y_i(t)]` the purchase model's expected
purchases in :math:`(T_i, T_i + t]` and :math:`d` the discount rate per period: each
period's expected purchases are discounted at the end of that period. This is the
discrete-discounting form of Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value
Curves for Customer Base Analysis", *J. Marketing Research* 42(4), sec. "Computing CLV",
and of lifetimes' ``customer_lifetime_value`` without its hidden 30-day month: here
``horizon`` and ``period`` are in the RFM frame's own time unit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CHUNK_ROWS = 200_000


def discount_schedule(horizon: float, period: float, discount_rate: float):
    """End times of the discounting periods and their discount factors."""
    if not (np.isfinite(horizon) and horizon > 0):
        raise ValueError(f"horizon must be a positive number, got {horizon}")
    if not (np.isfinite(period) and period > 0):
        raise ValueError(f"period must be a positive number, got {period}")
    if not (np.isfinite(discount_rate) and discount_rate > -1):
        raise ValueError(f"discount_rate must be > -1 (per period), got {discount_rate}")
    k = horizon / period
    n_periods = int(round(k))
    if n_periods < 1 or abs(k - n_periods) > 1e-9 * max(1.0, k):
        raise ValueError(
            f"horizon ({horizon}) must be a whole number of periods ({period}); "
            f"it is {k:.6g} periods"
        )
    steps = np.arange(1, n_periods + 1, dtype=float)
    return steps * period, (1.0 + discount_rate) ** -steps


def customer_lifetime_value(
    transaction_model,
    spend_model,
    rfm: pd.DataFrame,
    horizon: float = 52,
    period: float = 4,
    discount_rate: float = 0.01,
    margin: float = 1.0,
    *,
    level: float | None = None,
    n_draws: int = 50,
    random_state=0,
) -> pd.Series | pd.DataFrame:
    """Discounted expected value of each customer's purchases in (T, T + horizon].

    Parameters
    ----------
    transaction_model : fitted BGNBD, MBGNBD, ParetoNBD or BGBB
        Gives expected purchases in (T, T + t].
    spend_model : fitted GammaGamma
        Gives expected spend per purchase (``monetary_value`` must be in ``rfm``).
    rfm : DataFrame
        RFM frame with ``frequency``, ``recency``, ``T`` and ``monetary_value``.
    horizon, period : float
        In the RFM frame's time unit (weeks if it was built with ``unit="W"``); the
        horizon must be a whole number of periods. No unit conversion is done.
    discount_rate : float
        Discount rate per ``period`` (e.g. 0.01 per 4-week period).
    margin : float
        Share of revenue that is profit.
    level : float, optional
        Also return a predictive interval of each customer's value at this level
        (columns ``low``, ``high``; see :func:`value_interval`).
    n_draws, random_state
        Parameter draws of the interval (see ``prediction_interval`` of the model).

    Returns
    -------
    Series or DataFrame
        CLV per customer, indexed like ``rfm``; with ``level``: a DataFrame with columns
        ``clv``, ``low``, ``high``.
    """
    clv = _expected_clv(transaction_model, spend_model, rfm, horizon, period, discount_rate,
                        margin)
    if level is None:
        return clv
    interval = transaction_model.prediction_interval(
        horizon, rfm, level=level, n_draws=n_draws, random_state=random_state
    )
    expected = transaction_model.expected_purchases(horizon, rfm).to_numpy()
    out = value_interval(clv.to_numpy(), expected, interval, rfm.index)
    out.attrs["level"] = float(level)
    return out


def value_interval(clv, expected_purchases, interval: pd.DataFrame, index) -> pd.DataFrame:
    r"""CLV with the predictive interval of the value: columns clv, low, high.

    The value of a customer's purchases over the horizon is the number of purchases
    times the discounted margin of a purchase. The interval is the predictive interval
    of the number of purchases over the horizon (process and parameter uncertainty:
    the model's ``prediction_interval``) times the customer's expected discounted
    margin per purchase, :math:`\mathrm{CLV}_i / E[Y_i(	ext{horizon})]` (expected spend
    times the mean discount factor of the expected purchases). The variation of the
    amount spent per purchase around its expectation, and the timing of purchases within
    the horizon, are not in the interval: the count dominates (a customer's count varies
    by 100% and more; the Gamma-Gamma posterior mean spend of a repeat buyer by far
    less). Both ends are 0 for a customer expected to buy nothing.
    """
    clv = np.asarray(clv, dtype=float)
    expected = np.asarray(expected_purchases, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_purchase = np.where(expected > 0, clv / expected, 0.0)
    return pd.DataFrame(
        {
            "clv": clv,
            "low": interval["low"].to_numpy() * per_purchase,
            "high": interval["high"].to_numpy() * per_purchase,
        },
        index=index,
    )


def _expected_clv(transaction_model, spend_model, rfm, horizon, period, discount_rate, margin):
    ends, factors = discount_schedule(horizon, period, discount_rate)
    spend = spend_model.expected_spend(rfm).to_numpy()
    out = np.empty(len(rfm))
    for start in range(0, len(rfm), CHUNK_ROWS):
        part = rfm.iloc[start:start + CHUNK_ROWS]
        cumulative = transaction_model.expected_purchases_path(ends, part)
        per_period = np.diff(cumulative, axis=1, prepend=0.0)
        out[start:start + CHUNK_ROWS] = per_period @ factors
    return pd.Series(margin * spend * out, index=rfm.index, name="clv")


def new_customer_value(transaction_model, spend_model, covariates: pd.DataFrame, *,
                       horizon: float = 52, period: float = 4, discount_rate: float = 0.01,
                       margin: float = 1.0) -> pd.Series:
    r"""Discounted value of the repeat purchases of a customer just acquired, for each row
    of ``covariates`` (the new customers' characteristics, e.g. one row per channel).

    The formula of the module docstring with the new-customer expectation
    :math:`E[X(t)]` (``expected_purchases_new(t, covariates=)``) and the spend model's
    mean spend of such a customer (``population_mean_spend(covariates)``: mean spend
    scaled by its covariates, or the population mean without them). The first purchase
    (the acquisition itself) is not included. Models without covariates give the same
    value on every row.
    """
    ends, factors = discount_schedule(horizon, period, discount_rate)
    frame = covariates
    design = getattr(transaction_model, "design_", None)
    if design is None:
        cumulative = np.tile(np.asarray(transaction_model.expected_purchases_new(ends)),
                             (len(frame), 1))
    else:
        cumulative = np.column_stack([
            transaction_model.expected_purchases_new(t, covariates=frame).to_numpy()
            for t in ends])
    if getattr(spend_model, "design_", None) is None:
        spend = np.full(len(frame), spend_model.population_mean_spend())
    else:
        spend = spend_model.population_mean_spend(frame).to_numpy()
    per_period = np.diff(cumulative, axis=1, prepend=0.0)
    return pd.Series(margin * spend * (per_period @ factors), index=frame.index,
                     name="new_customer_value")


def value_against_cost(
    transaction_model,
    spend_model,
    covariates: pd.DataFrame,
    acquisition_cost,
    **clv_args,
) -> pd.DataFrame:
    """CLV of a new customer against what it costs to acquire one, per row (channel).

    ``covariates``: one row per channel (index: the channel) with the model's covariate
    columns; ``acquisition_cost``: the cost per acquired customer of each channel (a
    Series on the same index, e.g. from :func:`clvmodels.acquisition_cost`: marketing and
    sales spend over customers acquired). ``clv_args`` go to :func:`new_customer_value`.
    Returns columns ``clv`` (:func:`new_customer_value`), ``cac`` and ``clv_cac``, their
    ratio (above 1: a customer is worth more than it costs; analysts often aim at 3).
    Costs follow the one rule of :func:`clvmodels.rules.check_acquisition_costs`: finite
    and >= 0; a cost of 0 (no acquisition cost) gives ``clv_cac`` NaN, not infinity.
    """
    clv = new_customer_value(transaction_model, spend_model, covariates, **clv_args)
    cac = pd.Series(acquisition_cost, dtype=float).reindex(covariates.index) if isinstance(
        acquisition_cost, pd.Series | dict) else pd.Series(
        np.broadcast_to(np.asarray(acquisition_cost, dtype=float), (len(covariates),)),
        index=covariates.index)
    from .errors import DataError
    from .rules import check_acquisition_costs, clv_to_cac

    missing = cac.index[cac.isna()]
    if len(missing):
        raise DataError("acquisition_cost", f"no cost for the channels {list(missing)}",
                        len(missing))
    check_acquisition_costs(cac.to_numpy())
    return pd.DataFrame({"clv": clv, "cac": cac, "clv_cac": clv_to_cac(clv, cac)})
