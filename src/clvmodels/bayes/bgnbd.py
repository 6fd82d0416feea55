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
from ..models import _predictive, bgnbd
from ..models.bgnbd import BGNBD as MLEBGNBD
from ._base import BayesModel, TransactionCovariates, _lognormal
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


class BGNBDMixin(TransactionCovariates):
    """Data handling and predictions shared by :class:`BGNBD`, ``SegmentBGNBD`` and the
    Bayesian MBG/NBD and Pareto/NBD (:mod:`clvmodels.bayes.mbgnbd`,
    :mod:`clvmodels.bayes.paretonbd`), which set their own ``param_names``, ``formulas``
    (the maximum-likelihood model's record), ``_ll`` and default priors: every
    prediction goes through ``self.formulas``."""

    param_names = bgnbd.PARAM_NAMES
    # a_i = a exp(d'z_i), b_i = b exp(d'z_i), alpha_i = alpha exp(-g'z_i), as the MLE model
    covariate_links = MLEBGNBD.covariate_links
    data_names = ("x", "t_x", "T")
    # the model's formulas: those of the maximum-likelihood BG/NBD (one record, not two)
    formulas = MLEBGNBD.formulas
    _ll = staticmethod(bgnbd.loglik)
    _count_terms = staticmethod(bgnbd.count_terms)
    _loglik_total = (bgnbd.GroupedRows, bgnbd.loglik_total_and_grad)

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
            lambda p, d: self.formulas.expected_purchases(*p, t, *d),
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
        ahead: float = 0.0,
        hdi_prob: float = HDI_PROB,
        memory_limit: int = MEMORY_LIMIT,
    ) -> pd.DataFrame:
        """Posterior of P(alive at T + ``ahead`` | history) per customer ([1]_ eq. 11 at
        ``ahead=0``); columns mean, sd, hdi_low, hdi_high.

        ``ahead > 0``: P(alive at T) times the probability that an active customer
        survives ``ahead`` more time units (``survival`` at the updated parameters of the
        model's :class:`~clvmodels.models._btyd.Conditional`), draw by draw, as the
        maximum-likelihood model's ``probability_alive(ahead=)``.
        """
        ahead = float(ahead)
        if not (np.isfinite(ahead) and ahead >= 0):
            raise ValueError(f"ahead must be a finite number >= 0, got {ahead}")
        cols = self._data(rfm)
        alive = self.formulas.probability_alive
        cond = self.formulas.conditional

        def func(p, d):
            value = alive(*p, *d)
            if ahead > 0:
                value = value * cond.survival(*cond.updated(*p, d[0], d[2]), ahead)
            return value

        return self._posterior_summary(
            func,
            rfm,
            cols,
            hdi_prob=hdi_prob,
            memory_limit=memory_limit,
            name="probability_alive",
        )

    def prediction_interval(
        self,
        t: float,
        rfm: pd.DataFrame,
        level: float = 0.9,
        *,
        n_draws: int = 50,
        memory_limit: int = MEMORY_LIMIT,
    ) -> pd.DataFrame:
        """Posterior predictive interval of each customer's purchases in (T, T + t]:
        columns low, median, high and coverage (the interval's achieved level, as for
        :meth:`clvmodels.BGNBD.prediction_interval`).

        The quantiles at (1 - level)/2, 1/2 and (1 + level)/2 of the posterior predictive
        distribution: the conditional pmf of the BG/NBD
        (:meth:`clvmodels.BGNBD.probability_of_purchases`, each customer at the
        parameters of their segment) mixed over ``n_draws`` evenly spaced posterior
        draws; process and parameter uncertainty. This is a range of *outcomes*, unlike
        the HDI of :meth:`expected_purchases`, which is a range of the expectation.
        """
        t = float(t)
        if not (np.isfinite(t) and t >= 0):
            raise ValueError(f"t must be a finite number >= 0, got {t}")
        return _predictive.interval_frame(
            self.formulas.conditional,
            self.formulas.probability_alive,
            *self.customer_draws(rfm, n_draws),
            self._data(rfm),
            t,
            level,
            rfm.index,
            memory_limit=memory_limit,
        )

    def randomized_pit(self, t: float, rfm: pd.DataFrame, observed, *, n_draws: int = 50,
                       random_state=0) -> pd.Series:
        """Randomised PIT of observed purchases in (T, T + t] under the posterior
        predictive of :meth:`prediction_interval` (same draws): uniform on (0, 1) when the
        model is calibrated (Czado, Gneiting & Held 2009; see
        :meth:`clvmodels.BGNBD.randomized_pit`)."""
        from ..models._btyd import _observed_counts

        t = float(t)
        if not (np.isfinite(t) and t >= 0):
            raise ValueError(f"t must be a finite number >= 0, got {t}")
        y = _observed_counts(observed, len(rfm))
        u = _predictive.randomized_pit(
            self.formulas.conditional, self.formulas.probability_alive,
            *self.customer_draws(rfm, n_draws), *self._data(rfm), t, y, random_state,
        )
        return pd.Series(u, index=rfm.index, name="pit")

    def posterior_predictive(self, t: float, rfm: pd.DataFrame, *, n_draws: int = 200,
                             random_seed=0):
        """Draws from the posterior predictive of the purchases in (T, T + t]: an
        ``xarray.DataArray`` (sample, customer) of counts, one simulated future per
        posterior draw (``n_draws`` evenly spaced draws) and customer
        (:func:`clvmodels.models.bgnbd.simulate_future`). Holds ``n_draws`` x customers
        integers: for large frames use :meth:`prediction_interval`."""
        import xarray as xr

        x, t_x, T = self._data(rfm)
        draws, seg = self.customer_draws(rfm, n_draws)
        rng = np.random.default_rng(random_seed)
        out = np.empty((draws[0].shape[0], x.size), dtype=np.int64)
        for d in range(out.shape[0]):
            params = [p[d, seg] if p.shape[1] > 1 else p[d, 0] for p in draws]
            out[d] = self.formulas.conditional.simulate_future(*params, float(t), x, t_x, T, rng)
        return xr.DataArray(out, dims=("sample", "customer"),
                            coords={"customer": rfm.index.to_numpy()},
                            name="purchases")


class BGNBD(BGNBDMixin, BayesModel):
    r"""Bayesian BG/NBD model: posterior of (r, alpha, a, b) given an RFM frame.

    Parameters
    ----------
    priors : dict, optional
        Replaces default priors by parameter name: ``{"r": ("Gamma", {"alpha": 1.0,
        "beta": 1.0})}`` (a PyMC distribution name and its arguments) or a callable
        ``f(name)`` creating the PyMC variable. Defaults: see :mod:`clvmodels.bayes.bgnbd`.
    purchase_covariates, dropout_covariates : list of str, optional
        Columns of the RFM frame that scale each customer's purchase process
        (:math:`\alpha_i = \alpha e^{-\gamma_P^\top z_i}`) and drop-out process
        (:math:`a_i, b_i = a, b \cdot e^{\gamma_D^\top z_i}`), the convention of
        :class:`clvmodels.BGNBD` (:mod:`clvmodels.models._covariates`). Coefficients are
        in ``idata_.posterior["coefficients"]`` (``purchase:<col>``, ``dropout:<col>``,
        per unit of the column; :meth:`covariate_summary`); their prior and the user's
        scale: :mod:`clvmodels.bayes._base`.

    Examples
    --------
    >>> from clvmodels import bayes
    >>> m = bayes.BGNBD().fit(rfm, draws=1000, tune=1000, chains=4, random_seed=0)  # doctest: +SKIP
    >>> m.probability_alive(rfm).head()  # doctest: +SKIP
    """

    def __init__(self, *, priors=None, purchase_covariates=None, dropout_covariates=None):
        self.priors = priors
        self.purchase_covariates = purchase_covariates
        self.dropout_covariates = dropout_covariates
