r"""Bayesian contractual models in PyMC: sBG, BdW, and the sBG with parameters per cohort.

The likelihoods are :func:`clvmodels.models.sbg.loglik` (Fader & Hardie 2007 [1]_, the sBG
mass and survival functions) and :func:`clvmodels.models.bdw.loglik` (Fader et al. 2018
[3]_) evaluated with pytensor; predictions are the maximum-likelihood modules' pure
functions at every posterior draw: survival, retention rates ([1]_ eq. (8)), DERL
([2]_ eq. (6); summed directly for the BdW) and DEL. They take the same data as the
maximum-likelihood models (:func:`clvmodels.models._retention.retention_rows`): a Series
of customers alive per period, a cohort table, or a per-customer frame.

Default priors (weakly informative, on the log scale; override with ``priors=``):

.. math::
    \log\alpha \sim N(0, 2^2), \quad \log\beta \sim N(0, 2^2), \quad
    \log c \sim N(0, 1) \ (\text{BdW})

All three are unit-free; the prior of c is centred on the sBG (c = 1) and puts 95% of its
mass between 0.14 and 7.

:class:`SegmentSBG` is the hierarchical version (as :class:`~clvmodels.bayes.SegmentBGNBD`
is for the BG/NBD; :mod:`clvmodels.bayes.segments`): each cohort or segment has its own
(alpha, beta), whose logs come from a population in the rotated coordinates of the pair
(log ratio, log product): the ratio :math:`\alpha/\beta` (the odds of the mean churn
probability) is pinned down by a few periods of data, the product (the spread of the
churn probabilities) much less. Short cohorts borrow strength from the others.

References
----------
.. [1] Fader, P. S. and Hardie, B. G. S. (2007). How to Project Customer Retention.
   *Journal of Interactive Marketing* 21(1), 76-90.
.. [2] Fader, P. S. and Hardie, B. G. S. (2010). Customer-Base Valuation in a Contractual
   Setting: The Perils of Ignoring Heterogeneity. *Marketing Science* 29(1), 85-93.
.. [3] Fader, P. S., Hardie, B. G. S., Liu, Y., Davin, J. and Steenburgh, T. (2018).
   "How to Project Customer Retention" Revisited: The Role of Duration Dependence.
   *Journal of Interactive Marketing* 43, 1-16.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..models import bdw, sbg
from ..models._retention import (
    COHORT,
    COUNT,
    _whole,
    discounted_sum,
    retention_rows,
    validated_columns,
)
from ._base import BayesModel, _lognormal
from ._predict import HDI_PROB, hdi_of_sorted
from .segments import SegmentMixin

PRIOR_SCALE = 2.0
C_PRIOR_SCALE = 1.0


class RetentionMixin:
    """Data handling and posterior predictions shared by the Bayesian contractual models."""

    data_names = ("renewals", "churned")
    # Smaller NUTS steps: with the default 0.8 a chain could run off along the ridge of
    # no heterogeneity (alpha, beta -> infinity at a fixed alpha / (alpha + beta)) during
    # warm-up and stay there (Fader & Hardie's high-end cohort, seed 0: R-hat 2.3). At
    # 0.95 every sBG fit of both published cohorts converged (seeds 0-3, 2 x 500 draws).
    _nuts_defaults = {"target_accept": 0.95}

    def fit(self, data, *args, weights=None, **kwargs):
        """Draw from the posterior (see :meth:`clvmodels.bayes.BGNBD.fit` for the sampling
        arguments). ``data`` is a Series of customers alive at the start of periods 0..n,
        a cohort table (one column per cohort) or a per-customer frame (``renewals``,
        ``churned``; with a ``cohort`` column for :class:`SegmentSBG`)."""
        rows, aggregated = retention_rows(data)
        if aggregated:
            if weights is not None:
                raise ValueError("weights= applies to per-customer frames only")
            weights = COUNT
        return super().fit(rows, *args, weights=weights, **kwargs)

    def _data(self, frame):
        return list(validated_columns(frame))

    def _default_priors(self, cols, w):
        priors = {n: _lognormal(0.0, PRIOR_SCALE) for n in ("alpha", "beta")}
        if "c" in self.param_names:
            priors["c"] = _lognormal(0.0, C_PRIOR_SCALE)
        return priors

    # ---- posterior predictions ----------------------------------------------------------
    def _groups(self) -> list:
        post = self._check_fitted().posterior
        return list(post["segment"].values) if "segment" in post.coords else [None]

    def _summary(self, values: np.ndarray, index, name: str, hdi_prob: float) -> pd.DataFrame:
        """values: (draws, groups, points) -> mean, sd, hdi_low, hdi_high per group, point."""
        frames = []
        for g, label in enumerate(self._groups()):
            v = values[:, g, :]
            low, high = hdi_of_sorted(np.sort(v.T, axis=1), hdi_prob)
            frame = pd.DataFrame({
                "mean": v.mean(axis=0),
                "sd": v.std(axis=0, ddof=1) if v.shape[0] > 1 else 0.0,
                "hdi_low": low,
                "hdi_high": high,
            }, index=pd.Index(index, name=name))
            frames.append(frame if label is None else frame.assign(segment=label))
        out = pd.concat(frames)
        if out.columns[-1] == "segment":
            out = out.set_index("segment", append=True).swaplevel().sort_index(level=0,
                                                                               sort_remaining=False)
        return out

    def _param_draws(self) -> list[np.ndarray]:
        """Each parameter's draws as (draws, groups, 1): broadcast against points."""
        return [p[:, :, None] for p in self._draws()]

    def survival(self, t, *, hdi_prob: float = HDI_PROB) -> pd.DataFrame:
        """Posterior of S(t) = P(T > t) for each t (and each segment of a segment model):
        mean, sd, hdi_low, hdi_high."""
        t = np.atleast_1d(_whole(t, "t"))
        values = np.exp(self._log_survival(*self._param_draws(), t[None, None, :]))
        return self._summary(values, t.astype(np.int64), "t", hdi_prob)

    def retention_rate(self, t, *, hdi_prob: float = HDI_PROB) -> pd.DataFrame:
        """Posterior of the retention rate S(t)/S(t-1), t >= 1 ([1]_ eq. (8) for the sBG)."""
        t = np.atleast_1d(_whole(t, "t", low=1))
        p = self._param_draws()
        values = np.exp(self._log_survival(*p, t[None, None, :])
                        - self._log_survival(*p, t[None, None, :] - 1))
        return self._summary(values, t.astype(np.int64), "t", hdi_prob)

    def derl(self, discount_rate: float = 0.1, renewals=0, *,
             hdi_prob: float = HDI_PROB) -> pd.DataFrame:
        """Posterior of the discounted expected residual lifetime after ``renewals``
        renewals ([2]_ eq. (6); see :meth:`clvmodels.SBG.derl`)."""
        k = np.atleast_1d(_whole(renewals, "renewals"))
        d = float(discount_rate)
        if not (np.isfinite(d) and d > 0):
            raise ValueError(f"discount_rate must be a finite number > 0, got {discount_rate!r}")
        return self._summary(self._derl_draws(d, k), k.astype(np.int64), "renewals", hdi_prob)

    def del_(self, discount_rate: float = 0.1, *, hdi_prob: float = HDI_PROB) -> pd.DataFrame:
        """Posterior of the discounted expected lifetime of a new customer
        (1 + DERL(d | 0) / (1 + d))."""
        d = float(discount_rate)
        if not (np.isfinite(d) and d > 0):
            raise ValueError(f"discount_rate must be a finite number > 0, got {discount_rate!r}")
        values = 1.0 + self._derl_draws(d, np.zeros(1)) / (1.0 + d)
        return self._summary(values, [d], "discount_rate", hdi_prob)


class SBGMixin(RetentionMixin):
    """The sBG's parameters, likelihood and closed-form DERL."""

    param_names = sbg.PARAM_NAMES
    _ll = staticmethod(sbg.loglik)
    _log_survival = staticmethod(sbg.log_survival)

    def _derl_draws(self, d, k):
        a, b = self._param_draws()
        return sbg.derl(a, b, d, k[None, None, :])


class SBG(SBGMixin, BayesModel):
    """Bayesian shifted-beta-geometric model: posterior of (alpha, beta).

    Parameters
    ----------
    priors : dict, optional
        Replaces default priors by parameter name (see :mod:`clvmodels.bayes.sbg`).

    Examples
    --------
    >>> from clvmodels import bayes
    >>> m = bayes.SBG().fit([1000, 631, 468, 382, 326, 289, 262, 241])  # doctest: +SKIP
    >>> m.survival(range(8, 13))  # doctest: +SKIP
    """


class BDW(RetentionMixin, BayesModel):
    """Bayesian beta-discrete-Weibull model: posterior of (alpha, beta, c).

    Parameters
    ----------
    priors : dict, optional
        Replaces default priors by parameter name (see :mod:`clvmodels.bayes.sbg`).
    """

    param_names = bdw.PARAM_NAMES
    _ll = staticmethod(bdw.loglik)
    _log_survival = staticmethod(bdw.log_survival)

    def _derl_draws(self, d, k):
        p = self._draws()  # (draws, groups) each
        out = []
        for start in range(0, p[0].shape[0], 200):  # bounded memory: 200 draws at a time
            part = [v[start:start + 200] for v in p]

            def log_s(t, part=part):
                return bdw.log_survival(*(v.reshape(v.shape + (1,) * t.ndim) for v in part), t)

            out.append(discounted_sum(log_s, d, k, None, "BDW"))
        return np.concatenate(out)


class SegmentSBG(SBGMixin, SegmentMixin):
    """Hierarchical sBG: (alpha, beta) per cohort or segment, partially pooled.

    Parameters
    ----------
    segment : str, default "cohort"
        Column of a per-customer frame naming each customer's cohort or segment; a cohort
        table (one column per cohort) provides it by itself.
    priors, parametrization, population
        As for :class:`~clvmodels.bayes.SegmentBGNBD` (:mod:`clvmodels.bayes.segments`);
        the population coordinates are ``alpha_beta_u`` and ``alpha_beta_v``.
    """

    pairs = (("alpha", "beta"),)
    _mle = sbg.SBG  # the pilot fits that choose the centring (clvmodels.bayes.segments)
    _columns = RetentionMixin.data_names

    def __init__(self, *, segment: str = COHORT, priors=None, parametrization="auto",
                 population: str = "pairs"):
        super().__init__(segment=segment, priors=priors, parametrization=parametrization,
                         population=population)


__all__ = ["BDW", "SBG", "SegmentSBG"]
