"""clvmodels: probabilistic customer lifetime value.

Data preparation (:func:`rfm_summary`, :func:`calibration_holdout`), the analysts'
formula (:func:`formula_clv`), maximum-likelihood BTYD models (:class:`BGNBD`,
:class:`ParetoNBD`, :class:`MBGNBD`, :class:`GGomNBD`, :class:`BGBB`, :class:`GammaGamma`;
the regularity models :class:`MBGCNBD`, :class:`BGCNBD` with :func:`estimate_regularity`)
and discounted CLV (:func:`customer_lifetime_value`). Bayesian models live in :mod:`clvmodels.bayes`
(imported on demand: PyMC is heavy). :func:`compare` scores the formula and the models on
a holdout period (predictions: :mod:`clvmodels.holdout`; errors, Gini, lift and decile
calibration: :mod:`clvmodels.metrics`); figures
are in :mod:`clvmodels.plotting`, the HTML report in :mod:`clvmodels.report` (untrusted
values escaped by :mod:`clvmodels.escaping`); :mod:`clvmodels.intervals` gives HDIs and
delta-method intervals.

A transaction log is read and checked once: :func:`read_transactions` (files) and
:class:`TransactionLog` (frames of any engine) apply the data rules of
:mod:`clvmodels.rules`; :func:`clvmodels.analysis.analyze` is the report's analysis.
"""

from . import analysis, contractual, datasets, escaping, intervals
from .clv import customer_lifetime_value, new_customer_value, value_against_cost
from .compare import (
    acquisition_cohorts,
    calibration_deciles,
    compare,
    formula_holdout,
    holdout_predictions,
    mae_difference,
    naive_holdout,
    normalised_gini,
    repeat_purchases_over_time,
    segment_estimates,
    top_decile_lift,
)
from .errors import ConvergenceError, DataError, DataWarning, NotFittedError, StatisticalWarning
from .formula import acquisition_cost, formula_clv
from .log import TransactionLog
from .models import (
    BDW,
    BGBB,
    BGCNBD,
    BGNBD,
    MBGCNBD,
    MBGNBD,
    SBG,
    GammaGamma,
    GGomNBD,
    ParetoNBD,
    ParetoNBDDynCov,
)
from .models._covariates import likelihood_ratio_test
from .reader import read_transactions
from .regularity import estimate_regularity
from .rfm import calibration_holdout, rfm_summary

__version__ = "0.1.0"

__all__ = [
    "BDW",
    "SBG",
    "BGBB",
    "BGCNBD",
    "BGNBD",
    "MBGCNBD",
    "MBGNBD",
    "ConvergenceError",
    "DataError",
    "GGomNBD",
    "DataWarning",
    "GammaGamma",
    "NotFittedError",
    "ParetoNBD",
    "ParetoNBDDynCov",
    "StatisticalWarning",
    "TransactionLog",
    "acquisition_cohorts",
    "analysis",
    "acquisition_cost",
    "calibration_deciles",
    "calibration_holdout",
    "compare",
    "contractual",
    "customer_lifetime_value",
    "datasets",
    "escaping",
    "estimate_regularity",
    "formula_clv",
    "formula_holdout",
    "holdout_predictions",
    "intervals",
    "likelihood_ratio_test",
    "mae_difference",
    "naive_holdout",
    "new_customer_value",
    "normalised_gini",
    "read_transactions",
    "repeat_purchases_over_time",
    "rfm_summary",
    "segment_estimates",
    "value_against_cost",
    "top_decile_lift",
]
