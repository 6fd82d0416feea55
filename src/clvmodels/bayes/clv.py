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
:math:`E[Y_i(\text{horizon})]` that the interval (``level=``) needs. The shortcut
needs the model's ``conditional.mean`` (BG/NBD, MBG/NBD, Pareto/NBD) and no purchase
covariates (each customer's parameters differ); otherwise E[Y(t)] is evaluated per
distinct customer at every period end (``formulas.expected_purchases``).
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
    cond = tm.formulas.conditional
    # the shortcut of the module docstring: exact where the future of an alive customer
    # depends on (segment, x, T) alone (no purchase covariates, no latent phase)
    per_pair = (m_t == 0 and cond is not None and cond.mean is not None
                and cond.phase_weights is None)
    x, t_x, T, m = (arrays[c] for c in ("frequency", "recency", "T", "monetary_value"))
    # distinct customers, sorted so that those of one (segment, x, T) are neighbours
    uniq, inverse = _predict.unique_rows(
        [tm.segment_index(rfm), *z_t.T, x, T, t_x, sm.segment_index(rfm), *z_s.T, m]
    )
    code_t, code_s = uniq[0].astype(np.int64), uniq[4 + m_t].astype(np.int64)
    ux, uT, ut, um = uniq[1 + m_t], uniq[2 + m_t], uniq[3 + m_t], uniq[-1]
    z_t = np.column_stack(uniq[1 : 1 + m_t]) if m_t else np.zeros((code_t.size, 0))
    z_s = np.column_stack(uniq[5 + m_t : -1]) if m_s else np.zeros((code_t.size, 0))
    new = np.r_[True, (code_t[1:] != code_t[:-1]) | (ux[1:] != ux[:-1]) | (uT[1:] != uT[:-1])]
    pair = np.cumsum(new) - 1  # each distinct customer's (segment, x, T)
    first = np.flatnonzero(new)
    formulas, spend = tm.formulas, sm.expected_spend_formula
    times = np.asarray(ends, dtype=float)[None, None, :]

    def at_rows(p, codes):  # each row's parameter draws: (draws, rows) or (draws, 1)
        return p[:, :1] if p.shape[1] == 1 else p[:, codes]

    def per_pair_value(rows, sl):
        # E[Y(t) | history] = P(alive) E[Y(t) | alive], the second a function of
        # (segment, x, T) alone: the customer as a new one with updated parameters
        pairs = first[pair[rows[0]] : pair[rows[-1]] + 1]
        p_pairs = [at_rows(p[sl], code_t[pairs]) for p in draws_t]
        updated = cond.updated(*p_pairs, ux[None, pairs], uT[None, pairs])
        value, previous = 0.0, 0.0
        for end, factor in zip(ends, factors, strict=True):
            cumulative = cond.mean(*updated, end)
            value = value + factor * (cumulative - previous)
            previous = cumulative
        local = pair[rows] - pair[rows[0]]
        p_t = [at_rows(p[sl], code_t[rows]) for p in draws_t]
        alive = formulas.probability_alive(*p_t, ux[None, rows], ut[None, rows], uT[None, rows])
        return alive * value[:, local], alive * previous[:, local]

    def per_row_value(rows, sl):
        p_t = tm._with_covariates([at_rows(p[sl], code_t[rows]) for p in draws_t],
                                  None if coef_t is None else coef_t[sl], z_t[rows])
        d_t = [d[rows][None, :, None] for d in (ux, ut, uT)]
        # all period ends in one call, (draws, rows, periods): a model whose P(alive)
        # does not depend on the horizon (the Pareto/NBD's quadrature) computes it once
        cumulative = formulas.expected_purchases(*[p[..., None] for p in p_t], times, *d_t)
        return np.diff(cumulative, axis=-1, prepend=0.0) @ factors, cumulative[..., -1]

    def evaluate(rows, sl):
        value, purchases = (per_pair_value if per_pair else per_row_value)(rows, sl)
        p_s = sm._with_covariates([at_rows(p[sl], code_s[rows]) for p in draws_s],
                                  None if coef_s is None else coef_s[sl], z_s[rows])
        return margin * spend(*p_s, ux[None, rows], um[None, rows]) * value, purchases

    values = _predict.summarise(  # per row: (draws, rows, periods) within the memory bound
        evaluate, len(code_t), len(pick_t), hdi_prob=hdi_prob,
        memory_limit=memory_limit if per_pair else max(memory_limit // (len(ends) + 1), 1),
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
