r"""Predictive distribution of a customer's future purchases, and its intervals.

For the four BTYD models a customer with history :math:`h = (x, t_x, T)` is, at the
parameters :math:`\theta`, either inactive at T (probability :math:`1 - A(\theta, h)`,
no purchase ever after) or active, and then, by conjugacy and lack of memory, a customer
just acquired whose parameters are updated by :math:`(x, T)` (the model's
:class:`~clvmodels.models._btyd.Conditional`). Hence

.. math::
    P(Y(t) = n \mid h, \theta) = A(\theta, h)\, g_n(q(\theta, x, T), t)
        + (1 - A(\theta, h))\,\delta_{n0},

with :math:`g` the new-customer pmf (e.g. Fader, Hardie & Lee 2005, eq. (8), at the
updated parameters). Parameter uncertainty enters as a mixture over draws
:math:`\theta_1, \dots, \theta_D` (maximum likelihood: the asymptotic normal law of the
log-parameters; Bayesian: posterior draws), so the predictive CDF is

.. math::
    F_h(n) = 1 - \frac{1}{D}\sum_d A(\theta_d, h)\,\big(1 - G_n(q(\theta_d, x, T))\big),

and the interval of level :math:`\ell` is the pair of quantiles at :math:`(1 \mp \ell)/2`
(the smallest n with :math:`F_h(n) \ge p`), the median the quantile at 1/2. Counts are
discrete, so such an interval covers *at least* :math:`\ell` under the model
(:func:`predictive_coverage` gives its exact probability).

Cost. :math:`G` depends on the history only through (x, T) (and the segment): it is
tabulated once per distinct (segment, x, T) and draw, by the models' recurrences
(``pmf_table``), in chunks bounded by ``memory_limit``; only :math:`A` is evaluated per
customer and draw. Ages computed from calendar days repeat, so a million customers have
some ten thousand distinct (x, T) pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ._base import _blas_controller, unique_rows

MEMORY_LIMIT = 64 * 2**20
_FIRST_N_MAX = 15
_LARGEST_N_MAX = 1 << 20


def check_level(level: float) -> float:
    level = float(level)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return level


def _table_parts(cond, params, x, T, t, target):
    """CDF tables of the pairs (x, T): a list of ``(pairs, cdf)`` with ``cdf`` of shape
    (D, len(pairs), N + 1), N long enough that the mean over draws reaches ``target``
    for each of its pairs. N starts small and doubles for the pairs that need it."""
    n_max = _FIRST_N_MAX
    todo = np.arange(x.size)
    parts = []
    while todo.size:
        sub = [p[:, todo] if p.shape[1] > 1 else p for p in params]
        q = cond.updated(*sub, x[None, todo], T[None, todo])
        cdf = np.cumsum(cond.pmf_table(*q, t, n_max), axis=-1)
        np.minimum(cdf, 1.0, out=cdf)
        short = cdf[..., -1].mean(axis=0) < target
        if n_max >= _LARGEST_N_MAX:
            short[:] = False
        parts.append((todo[~short], cdf[:, ~short] if short.any() else cdf))
        todo, n_max = todo[short], 2 * n_max + 1
    return parts


def _ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ``arange(starts[k], ends[k])`` and, for each element, its k."""
    lengths = ends - starts
    owner = np.repeat(np.arange(starts.size), lengths)
    offset = np.arange(owner.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return starts[owner] + offset, owner


def _quantiles(F: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Smallest n with F[:, n] >= p, for each p (F increasing along axis 1): (rows, len(p))."""
    # F is a CDF table; a tiny tolerance keeps F = p (exact rounding ties) on the low side
    return (F[:, :, None] < probs[None, None, :] - 1e-12).sum(axis=1)


def _cdf_blocks(cond, alive, draws, codes, x, t_x, T, t, target, memory_limit):
    """The predictive CDF tables of the distinct customers (see the module docstring).

    Returns ``(inverse, blocks)``: each customer's distinct row, and a generator of
    ``(rows, F)`` with F[:, n], n = 0..N, the CDF of the distinct ``rows``, N large enough
    that F reaches ``target``.
    """
    n_draws = draws[0].shape[0]
    # distinct (segment, x, T, t_x), sorted: rows of one pair (segment, x, T) are adjacent
    (uc, ux, uT, ut), inverse, _, _ = unique_rows([codes, x, T, t_x])
    uc = uc.astype(np.int64)
    new = np.r_[True, (uc[1:] != uc[:-1]) | (ux[1:] != ux[:-1]) | (uT[1:] != uT[:-1])]
    p_start = np.flatnonzero(new)
    p_end = np.r_[p_start[1:], uc.size]
    pc, px, pT = uc[p_start], ux[p_start], uT[p_start]
    # pairs per chunk: the CDF tables hold D x pairs x (N + 1) values, N ~ 16..64
    pairs_per_chunk = max(1, memory_limit // (8 * n_draws * 64))

    def blocks():
        with _blas_controller().limit(limits=1, user_api="blas"):  # small products
            for c0 in range(0, pc.size, pairs_per_chunk):
                c1 = min(pc.size, c0 + pairs_per_chunk)
                params = [p[:, pc[c0:c1]] if p.shape[1] > 1 else p for p in draws]
                for pairs, cdf in _table_parts(cond, params, px[c0:c1], pT[c0:c1], t, target):
                    rows, local = _ranges(p_start[c0 + pairs], p_end[c0 + pairs])
                    step = max(1, memory_limit // (8 * max(n_draws, cdf.shape[-1]) * 4))
                    for b0 in range(0, rows.size, step):
                        r, k = rows[b0 : b0 + step], local[b0 : b0 + step]
                        a = _alive_per_draw(alive, draws, uc[r], ux[r], ut[r], uT[r])
                        yield r, (1.0 - a.mean(axis=0))[:, None] + _mixture(a, cdf, k)

    return inverse, blocks()


def predictive_quantiles(
    cond,
    alive: Callable,
    draws: Sequence[np.ndarray],
    codes: np.ndarray,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    t: float,
    probs: Sequence[float],
    *,
    memory_limit: int = MEMORY_LIMIT,
) -> np.ndarray:
    """Quantiles ``probs`` of each customer's purchases in (T, T + t]: (customers, len(probs)).

    ``draws``: one (D, G) array per parameter (D draws, G segments; G = 1 without
    segments); ``codes``: each customer's segment (0..G-1); ``alive(*params, x, t_x, T)``
    is the model's P(alive at T). See the module docstring.
    """
    probs = np.asarray(probs, dtype=float)
    inverse, blocks = _cdf_blocks(
        cond, alive, draws, codes, x, t_x, T, t, float(probs.max()), memory_limit
    )
    out = np.empty((int(inverse.max(initial=-1)) + 1, probs.size), dtype=np.int64)
    for rows, F in blocks:
        out[rows] = _quantiles(F, probs)
    return out[inverse]


def interval_frame(cond, alive, draws, codes, rfm_columns, t, level, index, *,
                   memory_limit=MEMORY_LIMIT):
    """The ``prediction_interval`` of the models: a DataFrame of low, median and high,
    the quantiles at (1 - level)/2, 1/2, (1 + level)/2 (:func:`predictive_quantiles`);
    ``rfm_columns`` is (x, t_x, T)."""
    level = check_level(level)
    q = predictive_quantiles(
        cond, alive, draws, codes, *rfm_columns, t, [(1 - level) / 2, 0.5, (1 + level) / 2],
        memory_limit=memory_limit,
    )
    return pd.DataFrame(q, index=index, columns=["low", "median", "high"])


def predictive_coverage(
    cond, alive, draws, codes, x, t_x, T, t, low, high, *, memory_limit=MEMORY_LIMIT
) -> np.ndarray:
    """P(low <= Y(t) <= high | history) per customer under the predictive distribution
    (the mixture over draws): the probability that an interval covers, which the
    intervals' own checks compare with the observed share."""
    low, high = np.asarray(low, dtype=np.int64), np.asarray(high, dtype=np.int64)
    # F reaches 1 - 1e-6 within its table: the highs of intervals of levels up to 0.99
    # are inside
    inverse, blocks = _cdf_blocks(cond, alive, draws, codes, x, t_x, T, t, 1 - 1e-6,
                                  memory_limit)
    by_row = np.argsort(inverse, kind="stable")
    first = np.searchsorted(inverse[by_row], np.arange(int(inverse.max(initial=-1)) + 2))
    out = np.empty(x.size)
    for rows, F in blocks:
        at, k = _ranges(first[rows], first[rows + 1])
        customers = by_row[at]
        hi = np.minimum(high[customers], F.shape[1] - 1)
        lo = low[customers]
        below = np.where(lo > 0, F[k, np.maximum(lo - 1, 0)], 0.0)
        out[customers] = F[k, hi] - below
    return out


def _alive_per_draw(alive, draws, seg, x, t_x, T) -> np.ndarray:
    """P(alive at T) of each customer at each draw: (D, rows), one draw at a time (the
    models' formulas take one parameter value per customer, or one for all)."""
    out = np.empty((draws[0].shape[0], x.size))
    for d in range(out.shape[0]):
        params = [p[d, seg] if p.shape[1] > 1 else p[d, 0] for p in draws]
        out[d] = alive(*params, x, t_x, T)
    return out


def _mixture(a: np.ndarray, cdf: np.ndarray, local: np.ndarray) -> np.ndarray:
    r""":math:`\frac{1}{D}\sum_d a_{d,i}\, G_{d, u_i}(n)` for each row i: (rows, N + 1).

    Rows arrive sorted by pair: one matrix product per run of rows of the same pair
    (the tables are read once, never gathered per row)."""
    out = np.empty((local.size, cdf.shape[-1]))
    cut = np.flatnonzero(np.r_[True, local[1:] != local[:-1], True])
    for s, e in zip(cut[:-1].tolist(), cut[1:].tolist(), strict=True):
        np.matmul(a[:, s:e].T, cdf[:, local[s], :], out=out[s:e])
    out /= a.shape[0]
    return out


def lognormal_draws(theta: np.ndarray, cov: np.ndarray | None, n_draws: int, seed) -> np.ndarray:
    """(n_draws, k) parameter draws from the asymptotic normal law of the log-parameters
    (the delta-method covariance ``cov`` of the fit, turned back to log scale); the point
    estimate alone when there is no usable covariance."""
    if cov is None or not np.all(np.isfinite(cov)):
        return theta[None, :]
    return np.exp(normal_draws(np.log(theta), cov / np.outer(theta, theta), n_draws, seed))


def normal_draws(mean: np.ndarray, cov: np.ndarray, n_draws: int, seed) -> np.ndarray:
    """(n_draws, k) draws of N(mean, cov) (symmetrised; negative eigenvalues of rounding
    clipped to 0)."""
    cov = (cov + cov.T) / 2
    evals, evecs = np.linalg.eigh(cov)
    root = evecs * np.sqrt(np.clip(evals, 0.0, None))
    z = np.random.default_rng(seed).standard_normal((n_draws, mean.size))
    return mean[None, :] + z @ root.T
