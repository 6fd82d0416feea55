"""clvmodels: probabilistic customer lifetime value.

Data preparation (:func:`rfm_summary`, :func:`calibration_holdout`), the analysts'
formula (:func:`formula_clv`), maximum-likelihood BTYD models (:class:`BGNBD`,
:class:`ParetoNBD`, :class:`MBGNBD`, :class:`BGBB`, :class:`GammaGamma`) and discounted
CLV (:func:`customer_lifetime_value`). Bayesian models live in :mod:`clvmodels.bayes`
(imported on demand: PyMC is heavy). :func:`compare` scores the formula and the models on
a holdout period (predictions: :mod:`clvmodels.holdout`; errors, Gini, lift and decile
calibration: :mod:`clvmodels.metrics`); figures
are in :mod:`clvmodels.plotting`, the HTML report in :mod:`clvmodels.report`.
"""

from . import datasets
from .clv import customer_lifetime_value, new_customer_value, value_against_cost
from .compare import (
    acquisition_cohorts,
    calibration_deciles,
    compare,
    formula_holdout,
    holdout_predictions,
    naive_holdout,
    normalised_gini,
    repeat_purchases_over_time,
    segment_estimates,
    top_decile_lift,
)
from .errors import ConvergenceError, DataError, NotFittedError, StatisticalWarning
from .formula import acquisition_cost, formula_clv
from .models import BGBB, BGNBD, MBGNBD, GammaGamma, ParetoNBD
from .models._covariates import likelihood_ratio_test
from .rfm import calibration_holdout, rfm_summary

__version__ = "0.1.0"

__all__ = [
    "BGBB",
    "BGNBD",
    "MBGNBD",
    "ConvergenceError",
    "DataError",
    "GammaGamma",
    "NotFittedError",
    "ParetoNBD",
    "StatisticalWarning",
    "acquisition_cohorts",
    "acquisition_cost",
    "calibration_deciles",
    "calibration_holdout",
    "compare",
    "customer_lifetime_value",
    "datasets",
    "formula_clv",
    "formula_holdout",
    "holdout_predictions",
    "likelihood_ratio_test",
    "naive_holdout",
    "new_customer_value",
    "normalised_gini",
    "repeat_purchases_over_time",
    "rfm_summary",
    "segment_estimates",
    "value_against_cost",
    "top_decile_lift",
]
