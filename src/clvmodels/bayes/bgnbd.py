r"""Bayesian BG/NBD (Fader, Hardie & Lee 2005) in PyMC.

The likelihood is :func:`clvmodels.models.bgnbd.loglik` ([1]_ eq. (6)) evaluated with
pytensor; predictions are :func:`clvmodels.models.bgnbd.expected_purchases` ([1]_ eq.
(10)) and :func:`clvmodels.models.bgnbd.probability_alive` ([1]_ eq. (11)) evaluated at
every posterior draw.

Default priors (weakly informative, on the log scale; override with ``priors=``):

.. math::
    \log r \sim N(0, 2^2), \quad \log \alpha \sim N(\log \alpha_0, 2^2), \quad
    \log a \sim N(0, 2^2), \quad \log b \sim N(0, 2^2)

where :math:`\alpha_0 = \sum_i w_i T_i / \sum_i w_i x_i` is the data's mean time between
repeat purchases (the value of :math:`\alpha` that puts the prior mean purchase rate
:math:`r/\alpha` at the observed rate when :math:`r = 1`). :math:`\alpha` is a time, so
its prior scales with the time unit of the data; the others are unit-free. A standard
deviation of 2 on the log scale puts 95% of the prior mass within a factor
:math:`e^{3.9} \approx 50` of the centre.

References
----------
.. [1] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "Counting Your Customers"
   the Easy Way: An Alternative to the Pareto/NBD Model. *Marketing Science* 24(2),
   275-284.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._validate import validate_rfm
from ..models import bgnbd
from ._base import BayesModel, _lognormal
from ._predict import HDI_PROB, MEMORY_LIMIT

PRIOR_SCALE = 2.0


def default_priors(x, t_x, T, w) -> dict:
    """Weakly informative default priors of (r, alpha, a, b) (see the module docstring)."""
    purchases = float(np.dot(w, x))
    time = float(np.dot(w, T))
    alpha0 = time / purchases if purchases > 0 else time / max(float(np.sum(w)), 1.0)
    return {
        "r": _lognormal(0.0, PRIOR_SCALE),
        "alpha": _lognormal(np.log(alpha0), PRIOR_SCALE),
        "a": _lognormal(0.0, PRIOR_SCALE),
        "b": _lognormal(0.0, PRIOR_SCALE),
    }


class BGNBDMixin:
    """Data handling and predictions shared by :class:`BGNBD` and ``SegmentBGNBD``."""

    param_names = bgnbd.PARAM_NAMES
    data_names = ("x", "t_x", "T")
    _ll = staticmethod(bgnbd.loglik)
    _count_terms = staticmethod(bgnbd.count_terms)

    def _data(self, frame):
        frame = validate_rfm(frame)
        return [frame[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T")]

    def _default_priors(self, cols, w):
        return default_priors(*cols, w)

    def expected_purchases(
        self,
        t: float,
        rfm: pd.DataFrame,
        *,
        hdi_prob: float = HDI_PROB,
        memory_limit: int = MEMORY_LIMIT,
    ) -> pd.DataFrame:
        """Posterior of E[purchases in (T, T + t] | history] per customer ([1]_ eq. 10).

        Returns a DataFrame indexed like ``rfm`` with columns mean, sd, hdi_low, hdi_high
        (``hdi_prob`` highest-density interval), computed in bounded memory (see
        :mod:`clvmodels.bayes._predict`).
        """
        t = float(t)
        if not (np.isfinite(t) and t >= 0):
            raise ValueError(f"t must be a finite number >= 0, got {t}")
        cols = self._data(rfm)
        return self._posterior_summary(
            lambda p, d: bgnbd.expected_purchases(*p, t, *d),
            rfm,
            cols,
            hdi_prob=hdi_prob,
            memory_limit=memory_limit,
            name="expected_purchases",
        )

    def probability_alive(
        self,
        rfm: pd.DataFrame,
        *,
        hdi_prob: float = HDI_PROB,
        memory_limit: int = MEMORY_LIMIT,
    ) -> pd.DataFrame:
        """Posterior of P(alive at T | history) per customer ([1]_ eq. 11); columns mean,
        sd, hdi_low, hdi_high."""
        cols = self._data(rfm)
        return self._posterior_summary(
            lambda p, d: bgnbd.probability_alive(*p, *d),
            rfm,
            cols,
            hdi_prob=hdi_prob,
            memory_limit=memory_limit,
            name="probability_alive",
        )

    def _cumulative_purchases(self, params, data, ends):
        """E[Y(t)] at each of ``ends`` for a block of draws x customers (used by CLV)."""
        return [bgnbd.expected_purchases(*params, t, *data) for t in ends]


class BGNBD(BGNBDMixin, BayesModel):
    """Bayesian BG/NBD model: posterior of (r, alpha, a, b) given an RFM frame.

    Parameters
    ----------
    priors : dict, optional
        Replaces default priors by parameter name: ``{"r": ("Gamma", {"alpha": 1.0,
        "beta": 1.0})}`` (a PyMC distribution name and its arguments) or a callable
        ``f(name)`` creating the PyMC variable. Defaults: see :mod:`clvmodels.bayes.bgnbd`.

    Examples
    --------
    >>> from clvmodels import bayes
    >>> m = bayes.BGNBD().fit(rfm, draws=1000, tune=1000, chains=4, random_seed=0)  # doctest: +SKIP
    >>> m.probability_alive(rfm).head()  # doctest: +SKIP
    """
