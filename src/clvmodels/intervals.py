r"""Intervals of estimates: highest-density intervals (HDI) of posterior draws, and
delta-method intervals of maximum-likelihood estimates on the log scale.

* :func:`hdi`: the shortest interval holding ``prob`` of the draws (the algorithm of
  ``arviz.hdi`` for a unimodal posterior).
* :func:`log_scale_interval`: :math:`\hat\theta \exp(\pm z\, se(\log\hat\theta))`, the
  normal approximation of :math:`\log\hat\theta` (delta method, [1]_ theorem 5.5.24),
  which keeps a positive parameter's interval positive.
* :func:`param_ratio`: a ratio of two parameters per segment (e.g. the mean purchase
  rate :math:`r/\alpha` of the BG/NBD) with either interval, for maximum-likelihood and
  Bayesian models alike.

References
----------
.. [1] Casella, G. and Berger, R. L. (2002). *Statistical Inference*, 2nd ed. Duxbury.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HDI_PROB = 0.94


def hdi_of_sorted(s: np.ndarray, prob: float = HDI_PROB):
    """Row-wise HDI of an array sorted along axis 1 (the algorithm of ``arviz.hdi``): the
    narrowest run of ``floor(prob * n) + 1`` sorted draws (all of them when prob is 1).
    NaN draws count as missing values of the interval's width."""
    n = s.shape[1]
    k = min(int(np.floor(prob * n)), n - 1)
    width = s[:, k:] - s[:, : n - k]
    width = np.where(np.isnan(width), np.inf, width)
    i = np.argmin(width, axis=1)
    rows = np.arange(s.shape[0])
    return s[rows, i], s[rows, i + k]


def hdi(draws, prob: float = HDI_PROB):
    """Highest-density interval of ``draws`` along the last axis: ``(low, high)``,
    floats for a 1-d array, arrays otherwise (:func:`hdi_of_sorted` of the sorted draws;
    a row with NaN gets the interval of its other draws' ends)."""
    if not 0 < prob <= 1:
        raise ValueError(f"prob must be in (0, 1], got {prob}")
    values = np.asarray(draws, dtype=float)
    one = values.ndim == 1
    low, high = hdi_of_sorted(np.sort(np.atleast_2d(values).reshape(-1, values.shape[-1]),
                                      axis=1), prob)
    if one:
        return float(low[0]), float(high[0])
    shape = values.shape[:-1]
    return low.reshape(shape), high.reshape(shape)


def log_scale_interval(estimate, se_log, prob: float = HDI_PROB):
    r"""Delta-method interval of a positive estimate from the standard error of its log:
    ``estimate * exp(-/+ z * se_log)`` with ``z`` the normal quantile of
    ``(1 + prob) / 2`` ([1]_ theorem 5.5.24)."""
    from scipy import stats

    z = float(stats.norm.ppf(0.5 + prob / 2))
    est = np.asarray(estimate, dtype=float)
    se = np.asarray(se_log, dtype=float)
    return est * np.exp(-z * se), est * np.exp(z * se)


def param_ratio(model, numerator: str, denominator: str, prob: float = HDI_PROB):
    r"""The ratio ``numerator / denominator`` of two fitted parameters, per segment.

    Maximum-likelihood models (``params_`` and ``cov_``): the estimate and the
    delta-method interval of :func:`log_scale_interval`, with
    :math:`se^2 = \mathrm{var}(\log a) + \mathrm{var}(\log b) - 2\,\mathrm{cov}(\log a,
    \log b)` from ``cov_`` (:math:`\mathrm{cov}(\log\theta_i, \log\theta_j) =
    \mathrm{cov}(\theta_i, \theta_j) / (\theta_i\theta_j)`, delta method).
    Bayesian models (``idata_``): the posterior mean and :func:`hdi` of the ratio
    computed draw by draw.

    Returns a DataFrame with columns mean, low, high, indexed by segment for segment
    models and by ``["all"]`` otherwise (name ``segment``).
    """
    if hasattr(model, "idata_"):
        post = model.idata_.posterior
        ratio = post[numerator] / post[denominator]
        segments = list(post["segment"].values) if "segment" in ratio.dims else ["all"]
        values = ratio.transpose(..., "chain", "draw").values.reshape(len(segments), -1)
        low, high = hdi(values, prob)
        mean = values.mean(axis=1)
    elif hasattr(model, "params_") and hasattr(model, "cov_"):
        a, b = float(model.params_[numerator]), float(model.params_[denominator])
        cov = model.cov_.loc[[numerator, denominator], [numerator, denominator]].to_numpy()
        cov_log = cov / np.outer([a, b], [a, b])
        se = np.sqrt(max(cov_log[0, 0] + cov_log[1, 1] - 2 * cov_log[0, 1], 0.0))
        mean = np.array([a / b])
        low, high = log_scale_interval(mean, se, prob)
        segments = ["all"]
    else:
        raise ValueError(f"{type(model).__name__} is not fitted (no params_/cov_ or idata_)")
    return pd.DataFrame(
        {"mean": mean, "low": low, "high": high}, index=pd.Index(segments, name="segment")
    )
