"""Sampling runs of the Bayesian Pareto/NBD and MBG/NBD (``-m slow``): the posterior
against the maximum-likelihood fit on CDNOW, and recovery of simulated parameters.

The 4 chains x 1,000 draws timing is ``benchmarks/bench_bayes_paretonbd.py``."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from clvmodels import bayes
from clvmodels.errors import StatisticalWarning
from clvmodels.models import paretonbd

pytestmark = pytest.mark.slow

RUN = {"draws": 1000, "tune": 1000, "chains": 2, "cores": 2, "progressbar": False}
# Fader & Hardie (2005), "A Note on Deriving the Pareto/NBD Model", CDNOW sample
PN_PUBLISHED = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
# Batislam, Denizel & Filiztekin (2007) model as fitted by BTYDplus on the CDNOW sample
MBG_MLE = {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}


def _converged_fit(cls, rfm, **run):
    with warnings.catch_warnings():
        warnings.simplefilter("error", StatisticalWarning)  # no convergence warning
        m = cls().fit(rfm, random_seed=0, **{**RUN, **run})
    assert m.convergence_.passed and m.n_divergent_ == 0
    return m


@pytest.mark.parametrize(("cls", "mle"), [(bayes.ParetoNBD, PN_PUBLISHED),
                                          (bayes.MBGNBD, MBG_MLE)], ids=["ParetoNBD", "MBGNBD"])
def test_cdnow_posterior_agrees_with_the_mle(cls, mle, cdnow_rfm):
    """The published MLE inside every 94% HDI; the means of the purchase parameters (r,
    alpha: well identified) within 3% of it. The drop-out parameters' posteriors are
    skewed to the right, so their means lie above the mode (the MLE)."""
    s = _converged_fit(cls, cdnow_rfm).summary()
    for k, v in mle.items():
        assert s.loc[k, "hdi_3%"] <= v <= s.loc[k, "hdi_97%"], k
    for k in ("r", "alpha"):
        assert s.loc[k, "mean"] == pytest.approx(mle[k], rel=0.03), k


def test_pareto_nbd_recovers_simulated_parameters():
    truth = {"r": 0.8, "alpha": 6.0, "s": 0.5, "beta": 10.0}
    rng = np.random.default_rng(7)
    T = rng.uniform(26.0, 78.0, 2000)
    x, t_x = paretonbd.simulate(*truth.values(), T, rng)
    rfm = pd.DataFrame({"frequency": x, "recency": t_x, "T": T})
    s = _converged_fit(bayes.ParetoNBD, rfm, draws=500, tune=500).summary()
    for k, v in truth.items():
        assert s.loc[k, "hdi_3%"] <= v <= s.loc[k, "hdi_97%"], k
