"""Comparison of the formula and the models on a holdout period (the public entry point).

The work lives in two modules: :mod:`clvmodels.holdout` (what each method predicts for
each customer: :func:`holdout_predictions`, the formula's and the naive predictions,
segment estimates, tracking over calendar time, acquisition cohorts) and
:mod:`clvmodels.metrics` (how the predictions are scored: :func:`compare`, ranking and
calibration metrics). This module gathers both under their historical names.
"""

from .holdout import (
    ACTUAL,
    acquisition_cohorts,
    formula_holdout,
    holdout_predictions,
    naive_holdout,
    repeat_purchases_over_time,
    segment_estimates,
)
from .metrics import (
    calibration_deciles,
    captured_share,
    compare,
    mae_difference,
    normalised_gini,
    top_decile_lift,
)

__all__ = [
    "ACTUAL",
    "acquisition_cohorts",
    "calibration_deciles",
    "captured_share",
    "compare",
    "formula_holdout",
    "holdout_predictions",
    "mae_difference",
    "naive_holdout",
    "normalised_gini",
    "repeat_purchases_over_time",
    "segment_estimates",
    "top_decile_lift",
]
