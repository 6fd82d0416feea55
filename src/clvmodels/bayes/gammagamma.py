r"""Bayesian Gamma-Gamma spend model (Fader, Hardie & Lee 2005; Fader & Hardie 2013) in PyMC.

The likelihood is :func:`clvmodels.models.gammagamma.loglik` ([2]_ eq. (3)) evaluated with
pytensor on the repeat buyers (``frequency > 0``); the prediction is
:func:`clvmodels.models.gammagamma.expected_spend` ([2]_ eq. (5)) at every draw.

Default priors (weakly informative, on the log scale; override with ``priors=``):

.. math::
    \log p \sim N(0, 2^2), \quad \log q \sim N(0, 2^2), \quad
    \log v \sim N(\log \bar m, 2^2)

where :math:`\bar m` is the (weighted) mean of the repeat buyers' mean spend: ``v`` is an
amount of money, so its prior follows the currency of the data. Draws with
:math:`q \le 1` have no finite population mean spend; the expected spend of a customer
without repeat purchases is then infinite in that draw.

References
----------
.. [1] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). RFM and CLV: Using Iso-Value
   Curves for Customer Base Analysis. *Journal of Marketing Research* 42(4), 415-430.
.. [2] Fader, P. S. and Hardie, B. G. S. (2013). The Gamma-Gamma Model of Monetary Value.
   http://brucehardie.com/notes/025/
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._validate import validate_rfm
from ..errors import DataError
from ..models import gammagamma
from ..models.gammagamma import GammaGamma as MLEGammaGamma
from ._base import BayesModel, _lognormal
from ._predict import HDI_PROB, MEMORY_LIMIT

PRIOR_SCALE = 2.0


def default_priors(x, m, w) -> dict:
    """Weakly informative default priors of (p, q, v) (see the module docstring)."""
    mean = float(np.average(m, weights=w))
    return {
        "p": _lognormal(0.0, PRIOR_SCALE),
        "q": _lognormal(0.0, PRIOR_SCALE),
        "v": _lognormal(np.log(max(mean, 1e-12)), PRIOR_SCALE),
    }


class GammaGammaMixin:
    """Data handling and predictions shared by :class:`GammaGamma` and
    ``SegmentGammaGamma``."""

    param_names = gammagamma.PARAM_NAMES
    data_names = ("x", "m")
    # v_i = v exp(c'z_i): the mean spend scales by exp(c'z_i), as the MLE model
    covariate_links = MLEGammaGamma.covariate_links
    covariate_arguments = {"spend": "covariates"}
    _ll = staticmethod(gammagamma.loglik)
    _loglik_total = (gammagamma.GroupedSpend, gammagamma.loglik_total_and_grad)

    def _fit_rows(self, frame):
        validate_rfm(frame, require_monetary=True)
        rows = frame[frame["frequency"] > 0]
        bad = int((rows["monetary_value"] <= 0).sum())
        if bad:
            raise DataError("monetary_value", "must be > 0 where frequency > 0", bad)
        return rows

    def _data(self, frame):
        frame = validate_rfm(frame, require_monetary=True)
        return [
            frame["frequency"].to_numpy(dtype=float),
            frame["monetary_value"].to_numpy(dtype=float),
        ]

    def _default_priors(self, cols, w):
        return default_priors(*cols, w)

    def expected_spend(
        self,
        rfm: pd.DataFrame,
        *,
        hdi_prob: float = HDI_PROB,
        memory_limit: int = MEMORY_LIMIT,
    ) -> pd.DataFrame:
        """Posterior of E[mean transaction value | history] per customer ([2]_ eq. 5).

        Customers with ``frequency == 0`` get the population mean ``p v / (q - 1)`` of
        each draw. Columns mean, sd, hdi_low, hdi_high.
        """
        cols = self._data(rfm)
        return self._posterior_summary(
            lambda p, d: gammagamma.expected_spend(*p, *d),
            rfm,
            cols,
            hdi_prob=hdi_prob,
            memory_limit=memory_limit,
            name="expected_spend",
        )

    #: E[mean spend | history] as a function of (p, q, v, frequency, monetary_value)
    expected_spend_formula = staticmethod(gammagamma.expected_spend)


class GammaGamma(GammaGammaMixin, BayesModel):
    r"""Bayesian Gamma-Gamma model: posterior of (p, q, v) from the repeat buyers.

    Parameters
    ----------
    priors : dict, optional
        Replaces default priors by parameter name (see :class:`clvmodels.bayes.BGNBD`).
    covariates : list of str, optional
        Columns of the RFM frame that scale each customer's mean spend,
        :math:`v_i = v e^{\gamma_S^\top z_i}` (coefficients ``spend:<col>``), as
        :class:`clvmodels.GammaGamma`; see :class:`clvmodels.bayes.BGNBD`.
    """

    def __init__(self, *, priors=None, covariates=None):
        self.priors = priors
        self.covariates = covariates
