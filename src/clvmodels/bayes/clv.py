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

Cost. For the BTYD models a customer alive at T is, from then on, a new customer whose
parameters are updated by (x, T) (the model's ``formulas.conditional.updated``), so
:math:`E^{(d)}[Y_i(t)] = P^{(d)}(\text{alive}_i)\, E^{(d)}_{\text{new}}[Y(t) \mid
q^{(d)}(x_i, T_i)]` (Fader, Hardie & Lee 2005, derivation of eq. (10)): the costly
discounted sum of expectations (a hypergeometric function per period for the BG/NBD)
depends on the customer's (segment, x, T) alone, and only P(alive) and the expected spend
are evaluated per distinct customer. Customers are sorted so that those sharing (segment,
x, T) are neighbours and each chunk of :func:`clvmodels.bayes._predict.summarise`
evaluates the sum once per pair it holds (ages in whole days: a million customers have
tens of thousands of pairs). The same pass gives the posterior mean of
:math:`E[Y_i(\text{horizon})]` that the interval (``level=``) needs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._validate import rfm_arrays
from ..clv import discount_schedule, value_interval
from . import _predict
from ._base import draw_matrices
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
    level: float | None = None,
    n_draws: int = 50,
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
    level : float, optional
        Also give the posterior predictive interval of each customer's value at this
        level (columns ``low``, ``high``): the interval of the purchases over the horizon
        (``transaction_model.prediction_interval``, ``n_draws`` posterior draws) times
        the posterior mean value per expected purchase, as in
        :func:`clvmodels.clv.value_interval`. Unlike the HDI (of the *expected* value),
        this is a range of outcomes.

    Returns
    -------
    DataFrame
        Indexed like ``rfm``: mean, sd, hdi_low, hdi_high (and low, high with ``level``).
    """
    ends, factors = discount_schedule(horizon, period, discount_rate)
    arrays = rfm_arrays(rfm, require_monetary=True)
    tm, sm = transaction_model, spend_model
    draws_t = draw_matrices(tm.posterior_draws(), tm.param_names)
    draws_s = draw_matrices(sm.posterior_draws(), sm.param_names)
    pick_t, pick_s = _paired(draws_t[0].shape[0], draws_s[0].shape[0])
    draws_t = [p[pick_t] for p in draws_t]
    draws_s = [p[pick_s] for p in draws_s]
    x, t_x, T, m = (arrays[c] for c in ("frequency", "recency", "T", "monetary_value"))
    # distinct customers, sorted so that those of one (segment, x, T) are neighbours
    (code_t, ux, uT, ut, code_s, um), inverse = _predict.unique_rows(
        [tm.segment_index(rfm), x, T, t_x, sm.segment_index(rfm), m]
    )
    code_t, code_s = code_t.astype(np.int64), code_s.astype(np.int64)
    new = np.r_[True, (code_t[1:] != code_t[:-1]) | (ux[1:] != ux[:-1]) | (uT[1:] != uT[:-1])]
    pair = np.cumsum(new) - 1  # each distinct customer's (segment, x, T)
    first = np.flatnonzero(new)
    formulas, spend = tm.formulas, sm.expected_spend_formula

    def at_rows(p, codes):  # each row's parameter draws: (draws, rows) or (draws, 1)
        return p[:, :1] if p.shape[1] == 1 else p[:, codes]

    def evaluate(rows, sl):
        # E[Y(t) | history] = P(alive) E[Y(t) | alive], the second a function of
        # (segment, x, T) alone: the customer as a new one with updated parameters
        pairs = first[pair[rows[0]] : pair[rows[-1]] + 1]
        p_pairs = [at_rows(p[sl], code_t[pairs]) for p in draws_t]
        updated = formulas.conditional.updated(*p_pairs, ux[None, pairs], uT[None, pairs])
        value, previous = 0.0, 0.0
        for end, factor in zip(ends, factors, strict=True):
            cumulative = formulas.expected_purchases_new(*updated, end)
            value = value + factor * (cumulative - previous)
            previous = cumulative
        local = pair[rows] - pair[rows[0]]
        p_t = [at_rows(p[sl], code_t[rows]) for p in draws_t]
        alive = formulas.probability_alive(*p_t, ux[None, rows], ut[None, rows], uT[None, rows])
        p_s = [at_rows(p[sl], code_s[rows]) for p in draws_s]
        value = margin * spend(*p_s, ux[None, rows], um[None, rows]) * alive * value[:, local]
        return value, alive * previous[:, local]

    values = _predict.summarise(
        evaluate, len(code_t), len(pick_t), hdi_prob=hdi_prob, memory_limit=memory_limit,
        side=True,
    )
    purchases = values.pop("side_mean")[inverse]  # posterior mean of E[Y(horizon)]
    out = _predict.summary_frame(values, inverse, rfm.index)
    if level is not None:
        interval = tm.prediction_interval(horizon, rfm, level=level, n_draws=n_draws,
                                          memory_limit=memory_limit)
        value = value_interval(out["mean"], purchases, interval, rfm.index)
        out["low"], out["high"] = value["low"], value["high"]
        out.attrs["level"] = float(level)
    out.columns.name = "clv"
    return out
