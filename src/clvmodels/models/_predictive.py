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

Models whose future given alive is a mixture over a latent phase j with weights
:math:`\pi_j(\theta, h)` that depend on the recency (the MBG/CNBD-k's Erlang clock:
:func:`clvmodels.models.cnbd.phase_weights`) replace :math:`A\,(1 - G_n)` by
:math:`\sum_j A\,\pi_j\,(1 - G_{n, j})`: the phases are handled as J times as many
draws, each with its weight.

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
        # phases (cond.phase_weights): (J, D, pairs, N + 1) -> (J * D, pairs, N + 1); each
        # phase's mean over draws reaches the target, so does any mixture of them
        n_draws = sub[0].shape[0]
        cdf = cdf.reshape(-1, *cdf.shape[-2:])
        short = cdf[..., -1].reshape(-1, n_draws, cdf.shape[1]).mean(axis=1).min(axis=0) < target
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
    # pairs per chunk: the CDF tables hold (J x) D x pairs x (N + 1) values, N ~ 16..64
    n_phases = 1
    if cond.phase_weights is not None and x.size:
        n_phases = len(cond.phase_weights(*[p[0, 0] for p in draws], x[:1], t_x[:1], T[:1]))
    n_draws_phases = n_draws * n_phases
    pairs_per_chunk = max(1, memory_limit // (8 * n_draws_phases * 64))

    def blocks():
        with _blas_controller().limit(limits=1, user_api="blas"):  # small products
            for c0 in range(0, pc.size, pairs_per_chunk):
                c1 = min(pc.size, c0 + pairs_per_chunk)
                params = [p[:, pc[c0:c1]] if p.shape[1] > 1 else p for p in draws]
                for pairs, cdf in _table_parts(cond, params, px[c0:c1], pT[c0:c1], t, target):
                    rows, local = _ranges(p_start[c0 + pairs], p_end[c0 + pairs])
                    step = max(1, memory_limit // (8 * max(n_draws_phases, cdf.shape[-1]) * 4))
                    for b0 in range(0, rows.size, step):
                        r, k = rows[b0 : b0 + step], local[b0 : b0 + step]
                        a = _alive_per_draw(cond, alive, draws, uc[r], ux[r], ut[r], uT[r])
                        yield r, ((1.0 - a.sum(axis=0) / n_draws)[:, None]
                                  + _mixture(a, cdf, k, n_draws))

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
    coverage: bool = False,
):
    """Quantiles ``probs`` of each customer's purchases in (T, T + t]: (customers, len(probs)).

    ``draws``: one (D, G) array per parameter (D draws, G segments; G = 1 without
    segments); ``codes``: each customer's segment (0..G-1); ``alive(*params, x, t_x, T)``
    is the model's P(alive at T). See the module docstring. With ``coverage=True`` also
    the predictive probability of [first quantile, last quantile] per customer (the
    interval's achieved level), from the same CDF tables.
    """
    probs = np.asarray(probs, dtype=float)
    inverse, blocks = _cdf_blocks(
        cond, alive, draws, codes, x, t_x, T, t, float(probs.max()), memory_limit
    )
    n_distinct = int(inverse.max(initial=-1)) + 1
    out = np.empty((n_distinct, probs.size), dtype=np.int64)
    mass = np.empty(n_distinct)
    for rows, F in blocks:
        q = out[rows] = _quantiles(F, probs)
        if coverage:
            mass[rows] = _cdf_at(F, q[:, -1]) - _cdf_at(F, q[:, 0] - 1)
    return (out[inverse], mass[inverse]) if coverage else out[inverse]


def _cdf_at(F: np.ndarray, n: np.ndarray) -> np.ndarray:
    """F[i, n_i] per row; 0 for n < 0 and the table's last value beyond its end."""
    n = np.asarray(n, dtype=np.int64)
    at = F[np.arange(F.shape[0]), np.clip(n, 0, F.shape[1] - 1)]
    return np.where(n < 0, 0.0, at)


def interval_frame(cond, alive, draws, codes, rfm_columns, t, level, index, *,
                   memory_limit=MEMORY_LIMIT):
    """The ``prediction_interval`` of the models: a DataFrame of low, median and high,
    the quantiles at (1 - level)/2, 1/2, (1 + level)/2 (:func:`predictive_quantiles`),
    and ``coverage``, the predictive probability of [low, high]: the level the integer
    interval achieves, at least ``level`` (well above it where the counts are small,
    e.g. an interval [0, 0] of a customer with P(no purchase) = 0.97 has coverage 0.97
    at level 0.8). ``rfm_columns`` is (x, t_x, T)."""
    level = check_level(level)
    q, mass = predictive_quantiles(
        cond, alive, draws, codes, *rfm_columns, t, [(1 - level) / 2, 0.5, (1 + level) / 2],
        memory_limit=memory_limit, coverage=True,
    )
    out = pd.DataFrame(q, index=index, columns=["low", "median", "high"])
    out["coverage"] = np.minimum(mass, 1.0)
    return out


def predictive_cdf(
    cond, alive, draws, codes, x, t_x, T, t, values, *, memory_limit=MEMORY_LIMIT
) -> np.ndarray:
    """P(Y(t) <= v | history) per customer under the predictive distribution (the
    mixture over draws), for one or more columns of whole numbers ``values`` (shape
    (customers,) or (customers, m)); 0 for v < 0. The tables reach 1 - 1e-6, so a value
    further in the tail reads that (an error below 1e-6)."""
    values = np.asarray(values, dtype=np.int64)
    one = values.ndim == 1
    values = values.reshape(x.size, -1)
    inverse, blocks = _cdf_blocks(cond, alive, draws, codes, x, t_x, T, t, 1 - 1e-6,
                                  memory_limit)
    by_row = np.argsort(inverse, kind="stable")
    first = np.searchsorted(inverse[by_row], np.arange(int(inverse.max(initial=-1)) + 2))
    out = np.empty(values.shape)
    for rows, F in blocks:
        at, k = _ranges(first[rows], first[rows + 1])
        customers = by_row[at]
        for j in range(values.shape[1]):
            out[customers, j] = _cdf_at(F[k], values[customers, j])
    return np.minimum(out[:, 0] if one else out, 1.0)


def predictive_coverage(
    cond, alive, draws, codes, x, t_x, T, t, low, high, *, memory_limit=MEMORY_LIMIT
) -> np.ndarray:
    """P(low <= Y(t) <= high | history) per customer under the predictive distribution
    (the mixture over draws): the probability that an interval covers, which the
    intervals' own checks compare with the observed share."""
    low, high = np.asarray(low, dtype=np.int64), np.asarray(high, dtype=np.int64)
    F = predictive_cdf(cond, alive, draws, codes, x, t_x, T, t,
                       np.column_stack([low - 1, high]), memory_limit=memory_limit)
    return F[:, 1] - F[:, 0]


def randomized_pit(
    cond, alive, draws, codes, x, t_x, T, t, observed, random_state=0, *,
    memory_limit=MEMORY_LIMIT,
) -> np.ndarray:
    r"""Randomised probability integral transform of observed counts ([1]_ eq. (1)).

    :math:`u = F(y - 1) + V\,(F(y) - F(y - 1))`, :math:`V \sim U(0, 1)` independent, with
    F each customer's predictive CDF (:func:`predictive_cdf`): uniform on (0, 1) exactly
    when the predictive distributions are right, however discrete the counts. So a
    check of calibration that does not depend on the level or on the integer ends of
    the intervals: e.g. the share of u in (0.1, 0.9) estimates the coverage of an
    exact 80% interval.

    References
    ----------
    .. [1] Czado, C., Gneiting, T. and Held, L. (2009). Predictive model assessment for
       count data. *Biometrics* 65(4), 1254-1261, §2.1.
    """
    y = np.asarray(observed, dtype=np.int64)
    F = predictive_cdf(cond, alive, draws, codes, x, t_x, T, t, np.column_stack([y - 1, y]),
                       memory_limit=memory_limit)
    v = np.random.default_rng(random_state).random(y.size)
    return F[:, 0] + v * (F[:, 1] - F[:, 0])


def _alive_per_draw(cond, alive, draws, seg, x, t_x, T) -> np.ndarray:
    """P(alive at T) of each customer at each draw: (D, rows), one draw at a time (the
    models' formulas take one parameter value per customer, or one for all). With
    phases (``cond.phase_weights``), P(alive at T and in phase j): (J * D, rows), phase
    major, as the tables of :func:`_table_parts`."""
    n_draws = draws[0].shape[0]
    out = None
    for d in range(n_draws):
        params = [p[d, seg] if p.shape[1] > 1 else p[d, 0] for p in draws]
        a = alive(*params, x, t_x, T)
        if cond.phase_weights is not None:
            a = a * cond.phase_weights(*params, x, t_x, T)  # (J, rows)
        a = np.atleast_2d(a)
        if out is None:
            out = np.empty((a.shape[0], n_draws, x.size))
        out[:, d] = a
    return out.reshape(-1, x.size)


def _mixture(a: np.ndarray, cdf: np.ndarray, local: np.ndarray, n_draws: int) -> np.ndarray:
    r""":math:`\frac{1}{D}\sum_d a_{d,i}\, G_{d, u_i}(n)` for each row i: (rows, N + 1)
    (with phases, d runs over the J * D pairs of phase and draw).

    Rows arrive sorted by pair: one matrix product per run of rows of the same pair
    (the tables are read once, never gathered per row)."""
    out = np.empty((local.size, cdf.shape[-1]))
    cut = np.flatnonzero(np.r_[True, local[1:] != local[:-1], True])
    for s, e in zip(cut[:-1].tolist(), cut[1:].tolist(), strict=True):
        np.matmul(a[:, s:e].T, cdf[:, local[s], :], out=out[s:e])
    out /= n_draws
    return out


def lognormal_draws(theta: np.ndarray, cov: np.ndarray | None, n_draws: int, seed) -> np.ndarray:
    """(n_draws, k) parameter draws from the asymptotic normal law of the log-parameters
    (the delta-method covariance ``cov`` of the fit, turned back to log scale); the point
    estimate alone when there is no usable covariance."""
    if cov is None or not np.all(np.isfinite(cov)):
        return theta[None, :]
    return np.exp(normal_draws(np.log(theta), cov / np.outer(theta, theta), n_draws, seed,
                               flat=FLAT_LOG_VARIANCE))


# A log-scale variance above this (sd 3: a factor 20 per sd) is a direction in which the
# likelihood is flat (a parameter drifting to 0 or infinity, e.g. a, b -> inf at a fixed
# a / b when the data show no heterogeneity): the normal law is no approximation there,
# and its draws would overflow. The predictions do not move along such a ridge.
FLAT_LOG_VARIANCE = 9.0


def normal_draws(mean: np.ndarray, cov: np.ndarray, n_draws: int, seed,
                 flat: float = np.inf) -> np.ndarray:
    """(n_draws, k) draws of N(mean, cov) (symmetrised; negative eigenvalues of rounding
    clipped to 0; eigen-directions of variance above ``flat`` held at the mean: see
    :data:`FLAT_LOG_VARIANCE`)."""
    cov = (cov + cov.T) / 2
    evals, evecs = np.linalg.eigh(cov)
    evals = np.where(evals > flat, 0.0, evals)
    root = evecs * np.sqrt(np.clip(evals, 0.0, None))
    z = np.random.default_rng(seed).standard_normal((n_draws, mean.size))
    return mean[None, :] + z @ root.T
