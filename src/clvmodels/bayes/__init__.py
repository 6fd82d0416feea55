"""Bayesian BTYD models in PyMC: full posteriors, predictions with uncertainty, segments.

* :class:`BGNBD`, :class:`MBGNBD`, :class:`ParetoNBD` and :class:`GammaGamma`: one set
  of parameters for all customers; the likelihoods are the maximum-likelihood modules'
  functions evaluated with pytensor (the Pareto/NBD's numpy quadrature as one Op with its
  exact gradient).
* :class:`SegmentBGNBD` and :class:`SegmentGammaGamma`: parameters per segment, partially
  pooled through a non-centred hierarchical prior (:mod:`clvmodels.bayes.segments`);
  :func:`simulate_segments` draws data from such a population (simulation studies).
* :func:`customer_lifetime_value`: posterior of discounted CLV per customer.
* :class:`SBG`, :class:`BDW`, :class:`SegmentSBG`: contractual (subscription) models
  (:mod:`clvmodels.bayes.sbg`).
* :class:`ParetoGGG`: Pareto/GGG (regular inter-purchase times, a regularity per
  customer), sampled by the paper's Gibbs scheme in numpy (no PyMC).

Sampling uses nutpie (PyMC's NUTS as fallback); predictions report mean, sd and the 94%
highest-density interval per customer, computed in bounded memory. Posteriors are saved
to and loaded from netCDF (``save``/``load``).
"""

from .bgnbd import BGNBD
from .clv import customer_lifetime_value
from .gammagamma import GammaGamma
from .mbgnbd import MBGNBD
from .paretoggg import ParetoGGG
from .paretonbd import ParetoNBD
from .sbg import BDW, SBG, SegmentSBG
from .segments import SegmentBGNBD, SegmentGammaGamma, simulate_segments

__all__ = [
    "BDW",
    "SBG",
    "SegmentSBG",
    "BGNBD",
    "GammaGamma",
    "MBGNBD",
    "ParetoNBD",
    "ParetoGGG",
    "SegmentBGNBD",
    "SegmentGammaGamma",
    "customer_lifetime_value",
    "simulate_segments",
]
