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
) -> pd.Series:
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

    Returns
    -------
    Series
        CLV per customer, indexed like ``rfm``.
    """
    ends, factors = discount_schedule(horizon, period, discount_rate)
    spend = spend_model.expected_spend(rfm).to_numpy()
    out = np.empty(len(rfm))
    for start in range(0, len(rfm), CHUNK_ROWS):
        part = rfm.iloc[start:start + CHUNK_ROWS]
        cumulative = transaction_model.expected_purchases_path(ends, part)
        per_period = np.diff(cumulative, axis=1, prepend=0.0)
        out[start:start + CHUNK_ROWS] = per_period @ factors
    return pd.Series(margin * spend * out, index=rfm.index, name="clv")
