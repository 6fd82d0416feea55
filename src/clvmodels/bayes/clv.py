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
    transaction_model : fitted bayes.BGNBD, bayes.MBGNBD, bayes.ParetoNBD or bayes.SegmentBGNBD
    spend_model : fitted bayes.GammaGamma or bayes.SegmentGammaGamma
    rfm : DataFrame
        ``frequency``, ``recency``, ``T``, ``monetary_value`` (and the segment columns of
        segment models and the covariate columns of covariate models: each customer at
        the parameters of their segment and covariates).
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
    # covariate coefficients (None without), paired as the parameters
    coef_t, coef_s = (None if c is None else c[pick]
                      for c, pick in ((tm._coefficient_draws(), pick_t),
                                      (sm._coefficient_draws(), pick_s)))
    z_t, z_s = tm.covariate_matrix(rfm), sm.covariate_matrix(rfm)
    m_t, m_s = z_t.shape[1], z_s.shape[1]
    cols_t = [arrays[c] for c in ("frequency", "recency", "T")]
    cols_s = [arrays[c] for c in ("frequency", "monetary_value")]
    uniq, inverse = _predict.unique_rows(
        [tm.segment_index(rfm), sm.segment_index(rfm), *z_t.T, *z_s.T, *cols_t, *cols_s]
    )
    code_t, code_s = uniq[0].astype(np.int64), uniq[1].astype(np.int64)
    z_t = np.column_stack(uniq[2 : 2 + m_t]) if m_t else np.zeros((code_t.size, 0))
    z_s = np.column_stack(uniq[2 + m_t : 2 + m_t + m_s]) if m_s else np.zeros((code_t.size, 0))
    start = 2 + m_t + m_s
    data_t, data_s = uniq[start : start + len(cols_t)], uniq[start + len(cols_t) :]
    expected = tm.formulas.expected_purchases
    spend = sm.expected_spend_formula

    def at_rows(p, codes):  # each row's parameter draws: (draws, rows) or (draws, 1)
        return p[:, :1] if p.shape[1] == 1 else p[:, codes]

    def evaluate(rows, sl):
        p_t = tm._with_covariates([at_rows(p[sl], code_t[rows]) for p in draws_t],
                                  None if coef_t is None else coef_t[sl], z_t[rows])
        p_s = sm._with_covariates([at_rows(p[sl], code_s[rows]) for p in draws_s],
                                  None if coef_s is None else coef_s[sl], z_s[rows])
        d_t = [d[rows][None, :] for d in data_t]
        d_s = [d[rows][None, :] for d in data_s]
        # all period ends in one call, (draws, rows, periods): a model whose P(alive)
        # does not depend on the horizon (the Pareto/NBD's quadrature) computes it once
        cumulative = expected(*[p[..., None] for p in p_t], times, *[d[..., None] for d in d_t])
        value = np.diff(cumulative, axis=-1, prepend=0.0) @ factors
        return margin * spend(*p_s, *d_s) * value

    times = np.asarray(ends, dtype=float)[None, None, :]
    values = _predict.summarise(  # the (draws, rows, periods) array within the memory bound
        evaluate, len(code_t), len(pick_t), hdi_prob=hdi_prob,
        memory_limit=max(memory_limit // (len(ends) + 1), 1),
    )
    out = _predict.summary_frame(values, inverse, rfm.index)
    if level is not None:
        interval = tm.prediction_interval(horizon, rfm, level=level, n_draws=n_draws,
                                          memory_limit=memory_limit)
        mean_purchases = tm.expected_purchases(horizon, rfm, memory_limit=memory_limit)["mean"]
        value = value_interval(out["mean"], mean_purchases, interval, rfm.index)
        out["low"], out["high"] = value["low"], value["high"]
        out.attrs["level"] = float(level)
    out.columns.name = "clv"
    return out
