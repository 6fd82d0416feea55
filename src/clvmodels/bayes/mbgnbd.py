r"""Bayesian MBG/NBD (Batislam, Denizel & Filiztekin 2007) in PyMC.

The likelihood is :func:`clvmodels.models.mbgnbd.loglik` ([1]_, [2]_; the BG/NBD's [3]_
eq. (6) at ``b + 1`` plus the drop-out at time 0) evaluated with pytensor; predictions
are :func:`clvmodels.models.mbgnbd.expected_purchases` and
:func:`clvmodels.models.mbgnbd.probability_alive` evaluated at every posterior draw (the
formulas of the maximum-likelihood :class:`clvmodels.MBGNBD`, one record, not two).

Default priors: those of the Bayesian BG/NBD (:mod:`clvmodels.bayes.bgnbd`), since the
parameters have the same roles and units,

.. math::
    \log r \sim N(0, 2^2), \quad \log \alpha \sim N(\log \alpha_0, 2^2), \quad
    \log a \sim N(0, 2^2), \quad \log b \sim N(0, 2^2),

with :math:`\alpha_0 = \sum_i w_i T_i / \sum_i w_i x_i` the data's mean time between
repeat purchases (:math:`\alpha` is a time; ``a`` and ``b`` are unit-free).

References
----------
.. [1] Batislam, E. P., Denizel, M. and Filiztekin, A. (2007). *International Journal of
   Research in Marketing* 24(3), 201-209; the
   erratum and full entries are in :mod:`clvmodels.models.mbgnbd`.
.. [2] Hoppe, D. and Wagner, U. (2007). *Marketing - Journal of Research and
   Management* 3(2), 75-90.
.. [3] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). *Marketing Science* 24(2),
   275-284.
"""

from __future__ import annotations

from ..models import mbgnbd
from ..models.mbgnbd import MBGNBD as MLEMBGNBD
from ._base import BayesModel
from .bgnbd import BGNBDMixin


class MBGNBDMixin(BGNBDMixin):
    """The BG/NBD's data handling and predictions with the MBG/NBD's formulas."""

    param_names = mbgnbd.PARAM_NAMES
    formulas = MLEMBGNBD.formulas
    covariate_links = MLEMBGNBD.covariate_links
    _ll = staticmethod(mbgnbd.loglik)
    _count_terms = None
    _loglik_total = None


class MBGNBD(MBGNBDMixin, BayesModel):
    """Bayesian MBG/NBD model: posterior of (r, alpha, a, b) given an RFM frame.

    ``priors`` replaces default priors by parameter name, as in :class:`BGNBD` (a PyMC
    distribution name and its arguments, or a callable ``f(name)``), and
    ``purchase_covariates=`` / ``dropout_covariates=`` as there; the defaults are in
    :mod:`clvmodels.bayes.mbgnbd`. Example: ``bayes.MBGNBD().fit(rfm, random_seed=0)``,
    then ``m.probability_alive(rfm)``.
    """

    def __init__(self, *, priors=None, purchase_covariates=None, dropout_covariates=None):
        self.priors = priors
        self.purchase_covariates = purchase_covariates
        self.dropout_covariates = dropout_covariates
