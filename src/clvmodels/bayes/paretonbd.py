r"""Bayesian Pareto/NBD (Schmittlein, Morrison & Colombo 1987) in PyMC.

The likelihood is :func:`clvmodels.models.paretonbd.loglik` ([2]_ eqs. (18)-(20)), the
function of the maximum-likelihood model, sampled in one of two ways:

* on the fast path (:mod:`clvmodels.bayes._fast`, ``sampler="auto"`` or
  ``"blackjax"``, without covariates) with ``grid=quadrature_grid(...)``: the integral
  by a fixed quadrature on the data's points, in JAX, so that XLA compiles the density
  and its gradient (on the 1M-customer benchmark it agrees with the adaptive quadrature
  to about 1e-12 per row, see :func:`~clvmodels.models.paretonbd.quadrature_grid`);
* otherwise as the numpy quadrature of the maximum-likelihood fit, whose panels depend
  on the data and the parameters: ``loglik(..., ops=pytensor_ops())`` puts it in the
  graph as one Op whose gradient is the module's exact gradient
  (:func:`~clvmodels.models.paretonbd.loglik_and_grad`: value and gradient from one
  quadrature; :mod:`clvmodels._numpy_op`). nutpie samples it through pytensor's C
  back-end (numba cannot compile numpy code in an Op).

Predictions are :func:`clvmodels.models.paretonbd.expected_purchases` ([2]_ eq. (41))
and :func:`clvmodels.models.paretonbd.probability_alive` ([2]_ eqs. (36)-(37)) at every
posterior draw.

Default priors (weakly informative, on the log scale; override with ``priors=``):

.. math::
    \log r \sim N(0, 2^2), \quad \log \alpha \sim N(\log \alpha_0, 2^2), \quad
    \log s \sim N(0, 2^2), \quad \log \beta \sim N(\log \beta_0, 2^2)

The shapes ``r`` and ``s`` are unit-free. :math:`\alpha` and :math:`\beta` are times
(the rates :math:`\lambda \sim \mathrm{Gamma}(r, \alpha)` and :math:`\mu \sim
\mathrm{Gamma}(s, \beta)` are per time unit), so their priors scale with the time unit
of the data. :math:`\alpha_0 = \sum_i w_i T_i / \sum_i w_i x_i` is the mean time between
repeat purchases, as for the BG/NBD (:mod:`clvmodels.bayes.bgnbd`: at :math:`r = 1` the
prior mean purchase rate is the observed one). :math:`\beta_0 = \sum_i w_i T_i / \sum_i
w_i` is the mean age: at :math:`s = 1` the lifetime survival is :math:`\beta / (\beta +
t)`, so the prior's centre says half of the customers are still active after one mean
age, neither "all gone" nor "all alive" over the period the data cover. A standard
deviation of 2 on the log scale spreads 95% of the prior mass over a factor
:math:`e^{3.9} \approx 50` either side of the centre (on CDNOW, with weeks,
:math:`\alpha_0 \approx 13` and :math:`\beta_0 \approx 33` against the maximum-likelihood
10.6 and 11.7).

References
----------
.. [1] Schmittlein, Morrison & Colombo (1987), *Management Science* 33(1), 1-24.
.. [2] Fader & Hardie (2005), "A Note on Deriving the Pareto/NBD Model and Related
   Expressions", http://brucehardie.com/notes/009/ (equation numbers as in
   :mod:`clvmodels.models.paretonbd`).
"""

from __future__ import annotations

import numpy as np

from ..models import paretonbd
from ..models.paretonbd import ParetoNBD as MLEParetoNBD
from ._base import BayesModel, _lognormal
from .bgnbd import PRIOR_SCALE, BGNBDMixin
from .bgnbd import default_priors as bgnbd_priors


def default_priors(x, t_x, T, w) -> dict:
    """Weakly informative default priors of (r, alpha, s, beta) (see the module docstring)."""
    purchase = bgnbd_priors(x, t_x, T, w)  # r and alpha as in the BG/NBD
    age = float(np.dot(w, T)) / max(float(np.sum(w)), 1e-300)
    return {
        "r": purchase["r"],
        "alpha": purchase["alpha"],
        "s": _lognormal(0.0, PRIOR_SCALE),
        "beta": _lognormal(np.log(max(age, 1e-12)), PRIOR_SCALE),
    }


class ParetoNBDMixin(BGNBDMixin):
    """The BG/NBD's data handling and predictions with the Pareto/NBD's formulas."""

    param_names = paretonbd.PARAM_NAMES
    formulas = MLEParetoNBD.formulas
    covariate_links = MLEParetoNBD.covariate_links
    _ll = staticmethod(paretonbd.loglik)
    _count_terms = None
    _loglik_total = None
    _numba_backend = False

    def _default_priors(self, cols, w):
        return default_priors(*cols, w)


class ParetoNBD(ParetoNBDMixin, BayesModel):
    """Bayesian Pareto/NBD model: posterior of (r, alpha, s, beta) given an RFM frame.

    ``priors`` replaces default priors by parameter name, as in :class:`BGNBD` (a PyMC
    distribution name and its arguments, or a callable ``f(name)``), and
    ``purchase_covariates=`` / ``dropout_covariates=`` as there; the defaults are in
    :mod:`clvmodels.bayes.paretonbd`. Example: ``bayes.ParetoNBD().fit(rfm,
    random_seed=0)``, then ``m.probability_alive(rfm, ahead=13)``. Without covariates
    it samples on the fast path; nutpie (``sampler="nutpie"``, covariates) always uses
    pytensor's C back-end here (``backend="numba"`` raises ``ValueError``).
    """

    def __init__(self, *, priors=None, purchase_covariates=None, dropout_covariates=None):
        self.priors = priors
        self.purchase_covariates = purchase_covariates
        self.dropout_covariates = dropout_covariates
