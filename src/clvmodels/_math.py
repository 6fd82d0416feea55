"""Array back-ends shared by the maximum-likelihood and the Bayesian models.

Each model's log-likelihood is written once, as a function of an ``ops`` namespace that
provides the elementary functions it needs. :data:`NUMPY` evaluates it with numpy/scipy
(maximum likelihood, predictions); :func:`pytensor_ops` returns the same namespace built
from pytensor, so that the PyMC models use the very same formula (no second derivation).
"""

from __future__ import annotations

from functools import cache
from types import SimpleNamespace

import numpy as np
from scipy import special


def _softplus(x):
    """log(1 + exp(x)) without overflow."""
    return np.logaddexp(0.0, x)


NUMPY = SimpleNamespace(
    gammaln=special.gammaln,
    betaln=special.betaln,
    log=np.log,
    log1p=np.log1p,
    exp=np.exp,
    softplus=_softplus,
    logaddexp=np.logaddexp,
    where=np.where,
    maximum=np.maximum,
    minimum=np.minimum,
)
"""numpy/scipy implementation of the ops namespace."""


@cache
def pytensor_ops() -> SimpleNamespace:
    """The ops namespace built from pytensor (imported lazily: PyMC is heavy)."""
    import pytensor.tensor as pt

    return SimpleNamespace(
        gammaln=pt.gammaln,
        betaln=lambda a, b: pt.gammaln(a) + pt.gammaln(b) - pt.gammaln(a + b),
        log=pt.log,
        log1p=pt.log1p,
        exp=pt.exp,
        softplus=pt.softplus,
        logaddexp=pt.logaddexp,
        where=pt.where,
        maximum=pt.maximum,
        minimum=pt.minimum,
    )


def log1mexp(x):
    """log(1 - exp(x)) for x <= 0, accurate near 0 and for very negative x (Maechler 2012)."""
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    small = x > -np.log(2.0)
    out[small] = np.log(-np.expm1(x[small]))
    out[~small] = np.log1p(-np.exp(x[~small]))
    return out
