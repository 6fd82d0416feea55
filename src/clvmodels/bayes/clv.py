r"""Posterior of discounted customer lifetime value from a Bayesian purchase and spend model.

For each posterior draw :math:`d` the CLV of customer :math:`i` is the formula of
:func:`clvmodels.customer_lifetime_value`,

.. math::
    \mathrm{CLV}_i^{(d)} = \mathrm{margin} \cdot E^{(d)}[\text{spend}_i]
        \sum_{k=1}^{K} \frac{E^{(d)}[Y_i(k\Delta)] - E^{(d)}[Y_i((k-1)\Delta)]}{(1 + d)^k},
        \qquad K = \text{horizon}/\Delta,

and we report its mean, sd and HDI over the draws. The two models are fitted separately,
so their posteriors are independent: draw :math:`j` of one is paired with draw :math:`j`
of the other (when the numbers of draws differ, evenly spaced draws of the longer
posterior are used), which is a draw from the joint posterior.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._validate import validate_rfm
from ..clv import discount_schedule
from . import _predict
from ._base import _take
from ._predict import HDI_PROB, MEMORY_LIMIT


def _paired(n_a: int, n_b: int):
    n = min(n_a, n_b)
    return (
        np.linspace(0, n_a - 1, n).round().astype(np.int64),
        np.linspace(0, n_b - 1, n).round().astype(np.int64),
    )


def customer_lifetime_value(
    transaction_model,
    spend_model,
    rfm: pd.DataFrame,
    horizon: float = 52,
    period: float = 4,
    discount_rate: float = 0.01,
    margin: float = 1.0,
    *,
    hdi_prob: float = HDI_PROB,
    memory_limit: int = MEMORY_LIMIT,
) -> pd.DataFrame:
    """Posterior of each customer's discounted CLV over (T, T + horizon].

    Parameters
    ----------
    transaction_model : fitted bayes.BGNBD or bayes.SegmentBGNBD
    spend_model : fitted bayes.GammaGamma or bayes.SegmentGammaGamma
    rfm : DataFrame
        ``frequency``, ``recency``, ``T``, ``monetary_value`` (and the segment columns of
        segment models).
    horizon, period : float
        In the RFM frame's time unit; the horizon is a whole number of periods. No unit
        conversion is done.
    discount_rate : float
        Discount rate per ``period``.
    margin : float
        Share of revenue that is profit.

    Returns
    -------
    DataFrame
        Indexed like ``rfm``: mean, sd, hdi_low, hdi_high.
    """
    ends, factors = discount_schedule(horizon, period, discount_rate)
    validate_rfm(rfm, require_monetary=True)
    tm, sm = transaction_model, spend_model
    draws_t, draws_s = tm._draws(), sm._draws()
    pick_t, pick_s = _paired(draws_t[0].shape[0], draws_s[0].shape[0])
    draws_t = [p[pick_t] for p in draws_t]
    draws_s = [p[pick_s] for p in draws_s]
    cols_t, cols_s = tm._data(rfm), sm._data(rfm)
    uniq, inverse = _predict.unique_rows([tm._codes(rfm), sm._codes(rfm), *cols_t, *cols_s])
    code_t, code_s = uniq[0].astype(np.int64), uniq[1].astype(np.int64)
    data_t, data_s = uniq[2 : 2 + len(cols_t)], uniq[2 + len(cols_t) :]

    def evaluate(rows, sl):
        p_t = [_take(p[sl], code_t[rows]) for p in draws_t]
        p_s = [_take(p[sl], code_s[rows]) for p in draws_s]
        d_t = [d[rows][None, :] for d in data_t]
        d_s = [d[rows][None, :] for d in data_s]
        value = np.zeros((p_t[0].shape[0], rows.size))
        previous = 0.0
        for cumulative, factor in zip(
            tm._cumulative_purchases(p_t, d_t, ends), factors, strict=True
        ):
            value += factor * (cumulative - previous)
            previous = cumulative
        return margin * sm._spend(p_s, d_s) * value

    values = _predict.summarise(
        evaluate, len(code_t), len(pick_t), hdi_prob=hdi_prob, memory_limit=memory_limit
    )
    out = _predict.summary_frame(values, inverse, rfm.index)
    out.columns.name = "clv"
    return out
