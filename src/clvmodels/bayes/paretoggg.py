r"""Pareto/GGG model (Platzer & Reutterer 2016): Bayesian, by the paper's MCMC scheme.

While active, customer i's inter-transaction times are Gamma(:math:`k_i`,
:math:`k_i\lambda_i`) (mean :math:`1/\lambda_i`; :math:`k_i > 1` is more regular than
Poisson, :math:`k_i = 1` is the Pareto/NBD); the lifetime is :math:`\tau_i \sim
\mathrm{Exp}(\mu_i)`. Across customers :math:`k \sim \mathrm{Gamma}(t, \gamma)`,
:math:`\lambda \sim \mathrm{Gamma}(r, \alpha)`, :math:`\mu \sim \mathrm{Gamma}(s,
\beta)` (shape, rate), each of the six with a Gamma(0.001, 0.001) hyperprior ([1]_ §3).
The data per customer are x (repeat purchases), t_x, T and ``litt``, the sum of the logs
of the x inter-transaction times.

Sampler. The paper's Gibbs scheme ([1]_ §3.3, Appendix; BTYDplus'
``pggg.mcmc.DrawParameters`` [2]_), vectorised over customers: per sweep, :math:`k_i`
and :math:`\lambda_i` by slice sampling ([3]_) from their full conditionals,
:math:`\mu_i \sim \mathrm{Gamma}(s + 1, \beta + \tau_i)` (conjugate), the activity at T
from its conditional probability and then :math:`\tau_i` (T plus an exponential if
active, else by slice sampling on (t_x, T]), and the three (shape, rate) pairs by slice
sampling in log space from their sufficient statistics. It is used rather than NUTS
because :math:`\tau_i` (or, marginalised, an integral of the incomplete gamma function
over (t_x, T], with derivatives in its shape) per customer makes a poor target for a
gradient sampler in PyMC, while every conditional here is one-dimensional and cheap.

That scheme alone mixes very slowly in the hyperparameters (on BTYDplus' grocery data,
R-hat near 2 for s and beta after 300 sweeps): each (shape, rate) pair is drawn given
1,525 customer-level values that are themselves drawn given it. Each sweep therefore also
makes joint moves ([4]_; :func:`_sweep`): tau and then (s, beta) are drawn with every mu
integrated out (the Pareto lifetime, :func:`_draw_tau_pareto`, :func:`log_dropout_pair`)
and mu afterwards; and Liu & Sabatti's
group moves rescale all the lambda (k) with alpha (gamma), and widen or narrow their
spread with r and alpha (t and gamma), accepted by Metropolis-Hastings on the joint
(:func:`scale_move`, :func:`spread_move`). Each leaves the posterior invariant.
The chains start at the Pareto/NBD maximum-likelihood estimates (as BTYDplus does): the
dropout pair (s, beta) mixes slowly, and a start far from it needs a long burn-in.

References
----------
.. [1] Platzer, M. and Reutterer, T. (2016). Ticking Away the Moments: Timing Regularity
   Helps to Better Predict Customer Activity. *Marketing Science* 35(5), 779-799.
.. [2] Platzer, M. (2016-2023). BTYDplus: Probabilistic Models for Assessing and
   Predicting your Customer Base. R package, ``R/pareto-ggg-mcmc.R``,
   ``src/slice-sampling.cpp``.
.. [3] Neal, R. M. (2003). Slice Sampling. *Annals of Statistics* 31(3), 705-767.
.. [4] Liu, J. S. and Sabatti, C. (2000). Generalised Gibbs sampler and multigrid Monte
   Carlo for Bayesian computation. *Biometrika* 87(2), 353-369.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

from ..errors import DataError, NotFittedError

HYPER_NAMES = ("t", "gamma", "r", "alpha", "s", "beta")
CUSTOMER_NAMES = ("k", "lambda", "mu", "tau")
COLUMNS = ("frequency", "recency", "T", "litt")
_HYPER_PRIOR = 0.001  # Gamma(0.001, 0.001) on each hyperparameter, as in [2]_
_GL_X, _GL_W = np.polynomial.legendre.leggauss(32)
# slice-sampling steps per sweep for k, lambda and tau (as BTYDplus), and for the
# hyperparameters (BTYDplus: 200; these are cheap, one-dimensional and well mixed)
STEPS = {"k": 3, "lambda": 3, "tau": 6, "hyper": 50}


def log_gamma_sf(k, rate, d):
    r""":math:`\log P(G > d)` for :math:`G \sim \mathrm{Gamma}(k, \mathrm{rate})`, without
    underflow: scipy's regularised upper incomplete gamma, and where it underflows the
    asymptotic expansion :math:`\log\frac{z^{k-1}e^{-z}}{\Gamma(k)}
    + \log(1 + \frac{k-1}{z} + \frac{(k-1)(k-2)}{z^2})`, z = rate d (A&S 6.5.32)."""
    z = rate * np.maximum(d, 0.0)
    q = special.gammaincc(k, z)
    tiny = q < 1e-280
    if not np.any(tiny):
        with np.errstate(divide="ignore"):
            return np.log(q)
    zz = np.where(tiny, z, 1.0)
    series = 1.0 + (k - 1.0) / zz + (k - 1.0) * (k - 2.0) / zz**2
    asym = (k - 1.0) * np.log(zz) - zz - special.gammaln(k) + np.log(np.maximum(series, 1e-300))
    with np.errstate(divide="ignore"):
        return np.where(tiny, asym, np.log(np.where(tiny, 1.0, q)))


def _slice(logf, x, width, lower, upper, rng, steps):
    """Vectorised univariate slice sampling ([3]_ §4, stepping out and shrinkage), one
    independent chain per row; ``logf(values, rows)`` evaluates the rows' log densities."""
    x = np.array(x, dtype=float)
    n = x.size
    rows_all = np.arange(n)
    ly = logf(x, rows_all)
    for _ in range(steps):
        level = ly - rng.exponential(1.0, n)
        u = rng.random(n) * width
        left, right = x - u, x + (width - u)
        for side, sign in ((0, -1.0), (1, 1.0)):
            edge = left if side == 0 else right
            for _ in range(60):
                inside = (edge > lower) & (edge < upper)
                idx = np.flatnonzero(inside)
                if idx.size == 0:
                    break
                grow = logf(edge[idx], idx) > level[idx]
                if not grow.any():
                    break
                edge[idx[grow]] += sign * width[idx[grow]]
        lo, hi = np.maximum(left, lower), np.minimum(right, upper)
        pending = rows_all
        for _ in range(200):
            cand = lo[pending] + rng.random(pending.size) * (hi[pending] - lo[pending])
            lc = logf(cand, pending)
            ok = lc > level[pending]
            done = pending[ok]
            x[done], ly[done] = cand[ok], lc[ok]
            rest, cand_rest = pending[~ok], cand[~ok]
            below = cand_rest < x[rest]
            lo[rest[below]] = cand_rest[below]
            hi[rest[~below]] = cand_rest[~below]
            pending = rest
            if pending.size == 0:
                break
    return x


def log_conditional_k(k, lam, x, t_x, T, litt, tau, t, gamma):
    r"""Log full conditional of :math:`k_i` up to a constant ([1]_ Appendix):
    :math:`(t-1)\log k - \gamma k + kx\log(k\lambda) - x\log\Gamma(k) - k\lambda t_x
    + (k-1)\,\mathrm{litt} + \log P(\mathrm{Gamma}(k, k\lambda) > \min(T,\tau) - t_x)`."""
    return ((t - 1.0) * np.log(k) - gamma * k + k * x * np.log(k * lam)
            - x * special.gammaln(k) - k * lam * t_x + (k - 1.0) * litt
            + log_gamma_sf(k, k * lam, np.minimum(T, tau) - t_x))


def log_conditional_lambda(lam, k, x, t_x, T, tau, r, alpha):
    r"""Log full conditional of :math:`\lambda_i` up to a constant ([1]_ Appendix):
    :math:`(r-1)\log\lambda - \alpha\lambda + kx\log\lambda - k\lambda t_x
    + \log P(\mathrm{Gamma}(k, k\lambda) > \min(T,\tau) - t_x)`."""
    return ((r - 1.0) * np.log(lam) - alpha * lam + k * x * np.log(lam) - k * lam * t_x
            + log_gamma_sf(k, k * lam, np.minimum(T, tau) - t_x))


def probability_alive(k, lam, mu, t_x, T):
    r"""P(:math:`\tau > T` | k, lambda, mu, data) ([1]_ eq. (9)):

    .. math::
        \frac{S(T - t_x)\,e^{-\mu T}}{S(T - t_x)\,e^{-\mu T}
        + \mu\int_{t_x}^T S(y - t_x)\,e^{-\mu y}\,dy},

    S the survival function of Gamma(k, k lambda); the integral by 32-point
    Gauss-Legendre in log space (BTYDplus uses Simpson's 3/8 rule with 12 intervals).
    """
    log_alive, log_dead = _log_alive_dead(k, lam, mu, t_x, T)
    return special.expit(log_alive - log_dead)


def _log_alive_dead(k, lam, mu, t_x, T):
    """The two terms of :func:`probability_alive`, in logs: alive at T, and dead in
    (t_x, T] (their sum is the likelihood after t_x with tau integrated out)."""
    k, lam, mu, t_x, T = np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                               for v in (k, lam, mu, t_x, T)))
    half = (T - t_x) / 2.0
    y = t_x[..., None] + half[..., None] * (_GL_X + 1.0)
    log_f = (log_gamma_sf(k[..., None], (k * lam)[..., None], y - t_x[..., None])
             - mu[..., None] * y)
    with np.errstate(divide="ignore"):
        log_int = special.logsumexp(log_f, b=_GL_W, axis=-1) + np.log(half)
    return log_gamma_sf(k, k * lam, T - t_x) - mu * T, np.log(mu) + log_int


def _log_gamma_pair(log_shape, log_rate, n, sum_x, sum_log_x, jacobian):
    """Log posterior of (shape, rate) of n Gamma draws with the given sums, in log space:
    Gamma(0.001, 0.001) densities of shape and rate, plus the log-Jacobian of the log
    transform if ``jacobian`` (else BTYDplus' target, see :class:`ParetoGGG`)."""
    shape, rate = np.exp(log_shape), np.exp(log_rate)
    h = _HYPER_PRIOR - 1.0 + float(jacobian)
    return (n * (shape * log_rate - special.gammaln(shape)) + (shape - 1.0) * sum_log_x
            - rate * sum_x + h * log_shape - _HYPER_PRIOR * shape + h * log_rate
            - _HYPER_PRIOR * rate)


def _draw_hyper(values, current, rng, jacobian):
    """Slice-sample the (shape, rate) pairs given the customer-level draws (one row of
    `values` per pair; `current` the pairs flattened)."""
    n = values.shape[1]
    sums, sum_logs = values.sum(axis=1), np.log(values).sum(axis=1)
    log_p = np.log(current.reshape(-1, 2))
    width = np.full(log_p.shape[0], 0.1)
    for _ in range(STEPS["hyper"]):
        for j in (0, 1):
            def logf(v, rows, j=j):
                a = np.where(j == 0, v, log_p[rows, 0])
                b = np.where(j == 1, v, log_p[rows, 1])
                return _log_gamma_pair(a, b, n, sums[rows], sum_logs[rows], jacobian)

            log_p[:, j] = _slice(logf, log_p[:, j], width, -50.0, 50.0, rng, 1)
    return np.exp(log_p).ravel()


def _hyper_prior_exponent(jacobian):
    """h and b of the hyperparameters' target in log space, h log(theta) - b theta
    (:func:`_log_gamma_pair`)."""
    return _HYPER_PRIOR - 1.0 + float(jacobian), _HYPER_PRIOR


def log_dropout_pair(log_s, log_beta, T, tau, jacobian):
    r"""Log posterior of the dropout pair (s, beta) in log space with every :math:`\mu_i`
    integrated out ([1]_ §3; the Pareto/NBD's Pareto lifetime, Schmittlein, Morrison &
    Colombo 1987, eq. (2)): an active customer (:math:`\tau_i > T_i`) contributes
    :math:`P(\tau > T) = (\beta / (\beta + T))^s`, a dead one the Pareto density
    :math:`s \beta^s / (\beta + \tau)^{s + 1}`; plus the hyperpriors as in
    :func:`_log_gamma_pair`. `log_s`, `log_beta` are arrays of candidates."""
    h, b = _hyper_prior_exponent(jacobian)
    shape, rate = np.exp(log_s)[..., None], np.exp(log_beta)[..., None]
    dead = tau <= T
    end = np.where(dead, tau, T)
    ll = (shape * (np.log(rate) - np.log(rate + end))
          + np.where(dead, np.log(shape) - np.log(rate + end), 0.0)).sum(axis=-1)
    return ll + h * (log_s + log_beta) - b * (np.exp(log_s) + np.exp(log_beta))


def draw_dropout_pair(s, beta, T, tau, rng, jacobian, steps=20):
    """Slice-sample (s, beta) from :func:`log_dropout_pair` (log space, one coordinate at a
    time), given which customers are dead and their lifetimes."""
    log_p = np.log([s, beta])
    width = np.full(1, 0.3)
    for _ in range(steps):
        for j in (0, 1):
            def logf(v, rows, j=j):
                a = v if j == 0 else np.full(v.size, log_p[0])
                c = v if j == 1 else np.full(v.size, log_p[1])
                return log_dropout_pair(a, c, T, tau, jacobian)

            log_p[j] = _slice(logf, log_p[j:j + 1], width, -50.0, 50.0, rng, 1)[0]
    return np.exp(log_p)


def scale_move(values, rate, log_lik, h, b, rng, steps=3):
    r"""Liu & Sabatti's ([4]_) scale move for a Gamma(shape, rate) group whose values have
    no conjugate conditional: :math:`v_i \to v_i e^u`, rate :math:`\to` rate
    :math:`e^{-u}`, by `steps` random-walk Metropolis steps in u (a proposal symmetric
    under u -> -u; [4]_ §3) on :math:`\sum_i \ell_i(v_i e^u) - h u - b\,\mathrm{rate}\,
    e^{-u}`, where :math:`\ell_i` = ``log_lik(values)`` is the data's log-likelihood
    term of each customer (the Gamma densities are invariant on log scale)."""
    base = np.sum(log_lik(values))
    scale = 1.0 / np.sqrt(max(float(values.size), 1.0))
    u, f_u = 0.0, 0.0
    for _ in range(steps):
        prop = u + 2.0 * scale * rng.standard_normal()
        f_p = np.sum(log_lik(values * np.exp(prop))) - base - h * prop \
            - b * rate * np.expm1(-prop)
        if np.log(rng.random()) < f_p - f_u:
            u, f_u = prop, f_p
    return values * np.exp(u), rate * np.exp(-u)


def spread_move(values, shape, rate, log_lik, jacobian, rng, steps=3):
    r"""A second group move ([4]_ §2) for a Gamma(shape, rate) group: the spread of the
    log values about their mean :math:`\bar g` times :math:`e^u` and both shape and rate
    times :math:`e^{-2u}` (the variance of a log-gamma is about 1 / shape), i.e.
    :math:`\log v_i \to \bar g + e^u(\log v_i - \bar g)`. The transformations form a
    group isomorphic to (R, +) (:math:`\bar g` is unchanged), with Jacobian
    :math:`e^{(n-1)u}` on the log values and Haar measure du; u by `steps` random-walk
    Metropolis steps on the full log target (Gamma densities and hyperprior,
    :func:`_log_gamma_pair`, plus ``log_lik``, the data's term per customer). It moves
    the shape and the customers' dispersion together, which one-at-a-time draws cannot."""
    n = values.size
    logv = np.log(values)
    g = logv.mean()
    ls, lr = np.log(shape), np.log(rate)

    def f(u):
        lv = g + np.exp(u) * (logv - g)
        v = np.exp(lv)
        return (_log_gamma_pair(ls - 2.0 * u, lr - 2.0 * u, n, v.sum(), lv.sum(), jacobian)
                + lv.sum() + np.sum(log_lik(v)) + (n - 1.0) * u)

    u, f_u = 0.0, f(0.0)
    scale = 1.0 / np.sqrt(max(float(n), 1.0))
    for _ in range(steps):
        prop = u + 2.0 * scale * rng.standard_normal()
        f_p = f(prop)
        if np.log(rng.random()) < f_p - f_u:
            u, f_u = prop, f_p
    return np.exp(g + np.exp(u) * (logv - g)), shape * np.exp(-2.0 * u), rate * np.exp(-2.0 * u)


def _draw_tau(k, lam, mu, tau, t_x, T, rng):
    """tau given k, lambda, mu: alive at T with :func:`probability_alive`, then T plus an
    exponential, else by slice sampling on (t_x, T]."""
    alive = rng.random(t_x.size) < probability_alive(k, lam, mu, t_x, T)
    tau = np.where(alive, T + rng.exponential(1.0, t_x.size) / mu, tau)
    dead = np.flatnonzero(~alive & (T > t_x))
    if dead.size:
        def lt(v, rows):
            i = dead[rows]
            return -mu[i] * v + log_gamma_sf(k[i], k[i] * lam[i], v - t_x[i])

        span = T[dead] - t_x[dead]
        start = np.minimum(span, rng.gamma(k[dead], 1.0 / (k[dead] * lam[dead]))) / 2.0
        tau[dead] = _slice(lambda v, rows: lt(t_x[dead][rows] + v, rows), start, span / 2.0,
                           0.0, span, rng, STEPS["tau"]) + t_x[dead]
    return tau


def _draw_tau_pareto(k, lam, s, beta, tau, t_x, T, rng):
    r"""tau given k, lambda and (s, beta), mu integrated out: the lifetime is Pareto
    (Lomax), :math:`P(\tau > y) = (\beta / (\beta + y))^s`. Alive at T with
    probability :math:`S(T - t_x)P(\tau > T) / (S(T - t_x)P(\tau > T) +
    \int_{t_x}^T S(y - t_x) f(y)\,dy)` (S the survival function of the inter-purchase
    gap, f the Lomax density; Gauss-Legendre as :func:`probability_alive`); then T plus
    the Lomax residual by inversion, else slice sampling on (t_x, T]."""
    log_pareto = s * np.log(beta) + np.log(s)
    half = (T - t_x) / 2.0
    y = t_x[:, None] + half[:, None] * (_GL_X + 1.0)
    log_f = (log_gamma_sf(k[:, None], (k * lam)[:, None], y - t_x[:, None])
             + log_pareto - (s + 1.0) * np.log(beta + y))
    with np.errstate(divide="ignore"):
        log_dead = special.logsumexp(log_f, b=_GL_W, axis=-1) + np.log(half)
    log_alive = log_gamma_sf(k, k * lam, T - t_x) + s * (np.log(beta) - np.log(beta + T))
    alive = rng.random(t_x.size) < special.expit(log_alive - log_dead)
    u = 1.0 - rng.random(t_x.size)
    with np.errstate(over="ignore"):  # tiny s: a lifetime beyond any horizon
        rest = np.minimum((beta + T) * np.expm1(-np.log(u) / s), np.finfo(float).max / 4)
    tau = np.where(alive, T + rest, tau)
    dead = np.flatnonzero(~alive & (T > t_x))
    if dead.size:
        def lt(v, rows):
            i = dead[rows]
            return -(s + 1.0) * np.log(beta + v) + log_gamma_sf(k[i], k[i] * lam[i], v - t_x[i])

        span = T[dead] - t_x[dead]
        start = np.minimum(span, rng.gamma(k[dead], 1.0 / (k[dead] * lam[dead]))) / 2.0
        tau[dead] = _slice(lambda v, rows: lt(t_x[dead][rows] + v, rows), start, span / 2.0,
                           0.0, span, rng, STEPS["tau"]) + t_x[dead]
    return tau


def _sweep(state, hyper, data, rng, jacobian, moves=True):
    """One sweep over k, lambda, mu, tau (all customers) and the hyperparameters.

    Without `moves`, the paper's Gibbs scheme ([1]_ Appendix). With them (the default of
    :class:`ParetoGGG`), blocks the one-at-a-time scheme lacks: the scale and spread
    moves of (lambda, r, alpha) and (k, t, gamma) (:func:`scale_move`,
    :func:`spread_move`); and tau, then (s, beta), with every mu integrated out
    (:func:`_draw_tau_pareto`, :func:`log_dropout_pair`), mu last given (s, beta, tau)."""
    x, t_x, T, litt = data
    k, lam, mu, tau = state
    t, gamma, r, alpha, s, beta = hyper
    h, b = _hyper_prior_exponent(jacobian)

    def lk(v, rows):
        return log_conditional_k(v, lam[rows], x[rows], t_x[rows], T[rows], litt[rows],
                                 tau[rows], t, gamma)

    k = _slice(lk, k, np.full(k.size, 3.0 * np.sqrt(t) / gamma), 0.1, 1e3, rng, STEPS["k"])

    def ll(v, rows):
        return log_conditional_lambda(v, k[rows], x[rows], t_x[rows], T[rows], tau[rows],
                                      r, alpha)

    lam = _slice(ll, lam, np.full(lam.size, 3.0 * np.sqrt(r) / alpha), 1e-30, 1e5, rng,
                 STEPS["lambda"])
    if not moves:
        mu = np.maximum(rng.gamma(s + 1.0, 1.0 / (beta + tau)), np.exp(-30.0))
        tau = _draw_tau(k, lam, mu, tau, t_x, T, rng)
        hyper = _draw_hyper(np.stack([k, lam, mu]), np.asarray(hyper), rng, jacobian)
        return (k, lam, mu, tau), hyper

    tau = _draw_tau_pareto(k, lam, s, beta, tau, t_x, T, rng)

    def lik_lam(v):
        return log_conditional_lambda(v, k, x, t_x, T, tau, 1.0, 0.0)

    lam, alpha = scale_move(lam, alpha, lik_lam, h, b, rng)
    lam, r, alpha = spread_move(lam, r, alpha, lik_lam, jacobian, rng)

    def lik_k(v):
        return log_conditional_k(v, lam, x, t_x, T, litt, tau, 1.0, 0.0)

    k, gamma = scale_move(k, gamma, lik_k, h, b, rng)
    k, t, gamma = spread_move(k, t, gamma, lik_k, jacobian, rng)
    # (s, beta, mu) jointly given who is dead and when: (s, beta) with the mu's and the
    # residual lifetimes integrated out, then mu | active ~ Gamma(s, beta + T)
    s, beta = draw_dropout_pair(s, beta, T, tau, rng, jacobian)
    active = tau > T
    mu = rng.gamma(s + 1.0 - active, 1.0 / (beta + np.where(active, T, tau)))
    mu = np.maximum(mu, np.exp(-30.0))
    hyper = np.r_[_draw_hyper(np.stack([k, lam]), np.array([t, gamma, r, alpha]), rng,
                              jacobian), s, beta]
    return (k, lam, mu, tau), hyper


def simulate(t, gamma, r, alpha, s, beta, T, rng):
    """Draws of (x, t_x, litt) for customers of ages ``T`` from the Pareto/GGG ([1]_ §3;
    BTYDplus' ``pggg.GenerateData``): k, lambda, mu from their gamma distributions,
    tau ~ Exp(mu), then Gamma(k, k lambda) inter-transaction times until min(tau, T)."""
    n = T.size
    k = rng.gamma(t, 1.0 / gamma, n)
    lam = rng.gamma(r, 1.0 / alpha, n)
    tau = rng.exponential(1.0, n) / rng.gamma(s, 1.0 / beta, n)
    end = np.minimum(tau, T)
    x, t_x, litt = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n)
    clock = np.zeros(n)
    active = np.arange(n)
    while active.size:
        gap = rng.gamma(k[active], 1.0 / (k[active] * lam[active]))
        clock[active] += gap
        ok = clock[active] < end[active]
        hit = active[ok]
        x[hit] += 1
        t_x[hit] = clock[hit]
        litt[hit] += np.log(gap[ok])
        active = hit
    return x, t_x, litt


def future_purchases(k, lam, tau, t_x, T, horizon, rng):
    """Draws of the purchases in (T, T + horizon] given each posterior draw (arrays of one
    shape): none if tau <= T, else the renewal process continued from t_x with its first
    inter-transaction time conditioned on exceeding T - t_x ([2]_
    ``mcmc.DrawFutureTransactions``), stopped at min(tau, T + horizon)."""
    return future_purchases_path(k, lam, tau, t_x, T, [horizon], rng)[0]


def future_purchases_path(k, lam, tau, t_x, T, times, rng):
    """As :func:`future_purchases` for several horizons `times` at once, from one simulated
    path per draw: row j holds the purchases in (T, T + times[j]] (the counts of a path
    are cumulative, so the discounted value of :func:`clvmodels.customer_lifetime_value`
    has no negative period). Returns an array (len(times), size of the draws)."""
    times = np.atleast_1d(np.asarray(times, dtype=float))
    k, lam, tau, t_x, T = (np.ravel(np.asarray(v, dtype=float)) for v in
                           np.broadcast_arrays(k, lam, tau, t_x, T))
    end = np.minimum(tau, T + times.max())
    counts = np.zeros((times.size, k.size))
    active = np.flatnonzero(tau > T)
    # first gap: the upper tail beyond T - t_x, by inverting the survival function
    q = special.gammaincc(k[active], k[active] * lam[active] * (T - t_x)[active])
    first = special.gammainccinv(k[active], rng.random(active.size) * q)
    first = np.maximum(first / (k[active] * lam[active]), (T - t_x)[active])
    clock = np.zeros(k.size)
    clock[active] = t_x[active] + first
    while active.size:
        ok = clock[active] < end[active]
        active = active[ok]
        counts[:, active] += clock[active] < T[active] + times[:, None]
        clock[active] += rng.gamma(k[active], 1.0 / (k[active] * lam[active]))
    return counts


@contextlib.contextmanager
def _quiet_arviz():
    """ArviZ logs "Shape validation failed" for a single chain (in ``from_dict`` and
    R-hat); the verdict reports that itself (one chain cannot show convergence)."""
    import arviz

    # ArviZ's own logger object (arviz._log), not registered with logging.getLogger
    log = getattr(arviz, "_log", None) or logging.getLogger("arviz")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def gibbs_verdict(idata, chains: int, draws: int):
    """The :class:`~clvmodels.bayes.convergence.Convergence` of the Gibbs chains: rank
    R-hat and bulk / tail ESS of the six hyperparameters (ArviZ), the thresholds of every
    Bayesian fit (R-hat <= 1.01, ESS >= 400); a Gibbs sampler has no divergences."""
    import arviz as az

    from .convergence import verdict

    with _quiet_arviz():
        table = az.summary(idata, var_names=list(HYPER_NAMES), kind="diagnostics")
    return verdict("ParetoGGG", "gibbs", table, 0, chains, draws)


def _pareto_nbd_start(rfm, x, T):
    """(r, alpha, s, beta) to start the chains: the Pareto/NBD fit, as BTYDplus does,
    else a data-scaled guess."""
    import warnings

    from ..errors import ConvergenceError
    from ..models.paretonbd import ParetoNBD

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = ParetoNBD().fit(rfm[["frequency", "recency", "T"]]).params_.to_numpy()
        if np.all(np.isfinite(p)) and np.all(np.abs(np.log(p)) < 15):
            return p
    except (ConvergenceError, ValueError):
        pass
    rate = max(x.mean() / T.mean(), 1e-6)
    return np.array([1.0, 1.0 / rate, 1.0, float(T.mean())])


class ParetoGGG:
    """Pareto/GGG (Platzer & Reutterer 2016), fitted by the paper's Gibbs sampler.

    Parameters
    ----------
    draws : int
        Draws kept per chain (after thinning).
    tune : int
        Sweeps discarded at the start of each chain.
    thin : int
        Keep every ``thin``-th sweep.
    chains : int
        Independent chains (run one after another).
    random_state : int, optional
        Seed: the same seed gives the same draws.
    btydplus_prior : bool, default True
        Sample the hyperparameters from BTYDplus' target: the Gamma(0.001, 0.001)
        densities evaluated on the log scale without the Jacobian, i.e. improper priors
        proportional to theta^-1.999 exp(-0.001 theta). ``False`` uses proper
        Gamma(0.001, 0.001) priors. The dropout pair (s, beta) is weakly identified and
        depends on the choice (on BTYDplus' grocery data: s 0.43 vs about 1.0).
    scale_moves : bool, default True
        Add to each sweep the joint moves that make the chains mix: mu drawn with the
        active customers' residual lifetimes integrated out, and Liu & Sabatti's ([4]_)
        scale moves of (mu, beta), (lambda, alpha) and (k, gamma). ``False`` is the
        paper's plain Gibbs scheme (BTYDplus), which mixes slowly in (s, beta).

    The RFM frame needs ``frequency``, ``recency``, ``T`` and ``litt`` (the sum of the
    logs of each customer's inter-transaction times, in the frame's time unit).
    Customer-level draws belong to the customers of the frame given to ``fit``:
    predictions take those customers again (any subset, any order, by the index).
    """

    def __init__(self, *, draws: int = 200, tune: int = 500, thin: int = 10, chains: int = 2,
                 random_state: int | None = None, btydplus_prior: bool = True,
                 scale_moves: bool = True):
        self.draws = draws
        self.scale_moves = scale_moves
        self.btydplus_prior = btydplus_prior
        self.tune = tune
        self.thin = thin
        self.chains = chains
        self.random_state = random_state

    @staticmethod
    def _arrays(rfm: pd.DataFrame):
        missing = [c for c in COLUMNS if c not in rfm.columns]
        if missing:
            raise DataError(missing[0], "column required by the Pareto/GGG (rfm_summary "
                            "with the sum of log inter-transaction times)", len(rfm))
        x, t_x, T, litt = (rfm[c].to_numpy(dtype=float) for c in COLUMNS)
        for name, bad in (("frequency", ~(x >= 0)), ("recency", ~((t_x >= 0) & (t_x <= T))),
                          ("litt", ~np.isfinite(litt))):
            if bad.any():
                raise DataError(name, "must be finite, frequency >= 0 and 0 <= recency <= T",
                                int(bad.sum()))
        return x, t_x, T, litt

    def fit(self, rfm: pd.DataFrame):
        """Run the chains and store the posterior in ``idata_``; returns ``self``."""
        import arviz as az

        data = self._arrays(rfm)
        x, t_x, T, _ = data
        rng = np.random.default_rng(self.random_state)
        n = x.size
        start = _pareto_nbd_start(rfm, x, T)
        hyper_draws = np.empty((self.chains, self.draws, 6))
        cust_draws = np.empty((self.chains, self.draws, 4, n))
        for c in range(self.chains):
            # start as BTYDplus: k = 1, one common rate, tau half a gap after t_x
            lam0 = max(x.mean() / np.mean(np.where(t_x == 0, T, t_x)), 1e-6)
            lam = np.full(n, lam0)
            tau = t_x + 0.5 / lam
            state = (np.ones(n), lam, 1.0 / tau, tau)
            hyper = np.array([1.0, 1.0, *start])
            for step in range(self.tune + self.draws * self.thin):
                state, hyper = _sweep(state, hyper, data, rng, not self.btydplus_prior,
                                      self.scale_moves)
                kept = step - self.tune
                if kept >= 0 and kept % self.thin == self.thin - 1:
                    hyper_draws[c, kept // self.thin] = hyper
                    cust_draws[c, kept // self.thin] = np.stack(state)
        posterior = {name: hyper_draws[:, :, j] for j, name in enumerate(HYPER_NAMES)}
        posterior.update({name: cust_draws[:, :, j] for j, name in enumerate(CUSTOMER_NAMES)})
        dims = {name: ["customer"] for name in CUSTOMER_NAMES}
        with _quiet_arviz():
            self.idata_ = az.from_dict(posterior=posterior, dims=dims,
                                       coords={"customer": np.asarray(rfm.index)})
        self.idata_.posterior.attrs["clvmodels"] = json.dumps(
            {"model": type(self).__name__, "settings": self._settings()})
        self.convergence_ = gibbs_verdict(self.idata_, self.chains, self.draws)
        return self

    def _settings(self):
        return {"draws": self.draws, "tune": self.tune, "thin": self.thin,
                "chains": self.chains, "random_state": self.random_state,
                "btydplus_prior": self.btydplus_prior, "scale_moves": self.scale_moves}

    def _check_fitted(self):
        if not hasattr(self, "idata_"):
            raise NotFittedError("This ParetoGGG has no posterior yet: call fit(...) first.")
        return self.idata_.posterior

    def _customer_draws(self, rfm):
        """The draws of the customers of `rfm` (any subset of the fitted customers, in any
        order: the holdout harness predicts groups of customers), (draws, customers)."""
        post = self._check_fitted()
        fitted = pd.Index(np.asarray(post["customer"]))
        pos = fitted.get_indexer(rfm.index)
        if (pos < 0).any():
            raise DataError(None, "the frame's index must be customers the model was fitted "
                            "on (its draws are per customer)", int((pos < 0).sum()))
        return {v: post[v].to_numpy().reshape(-1, len(fitted))[:, pos] for v in CUSTOMER_NAMES}

    def hyperparameters(self) -> pd.DataFrame:
        """Posterior mean, sd and 2.5% / 97.5% quantiles of the six hyperparameters."""
        post = self._check_fitted()
        rows = {}
        for name in HYPER_NAMES:
            v = post[name].to_numpy().ravel()
            rows[name] = {"mean": v.mean(), "sd": v.std(ddof=1),
                          "q2.5": np.quantile(v, 0.025), "q97.5": np.quantile(v, 0.975)}
        return pd.DataFrame(rows).T

    def probability_alive(self, rfm: pd.DataFrame) -> pd.Series:
        """Posterior probability that each customer is active at T (share of draws with
        tau > T; BTYDplus' ``mcmc.PAlive``)."""
        d = self._customer_draws(rfm)
        T = rfm["T"].to_numpy(dtype=float)
        return pd.Series((d["tau"] > T).mean(axis=0), index=rfm.index, name="probability_alive")

    def purchase_draws(self, t, rfm: pd.DataFrame, random_state=None) -> np.ndarray:
        """Posterior predictive draws of purchases in (T, T + t]: (draws, customers); for a
        sequence of horizons `t`, (horizons, draws, customers) from one path per draw
        (:func:`future_purchases_path`). `random_state` defaults to the model's own
        (the same seed gives the same draws)."""
        d = self._customer_draws(rfm)
        seed = self.random_state if random_state is None else random_state
        rng = np.random.default_rng(seed)
        t_x = rfm["recency"].to_numpy(dtype=float)
        T = rfm["T"].to_numpy(dtype=float)
        times = np.atleast_1d(np.asarray(t, dtype=float))
        out = future_purchases_path(d["k"], d["lambda"], d["tau"], t_x[None, :], T[None, :],
                                    times, rng).reshape(times.size, *d["k"].shape)
        return out if np.ndim(t) else out[0]

    def expected_purchases(self, t: float, rfm: pd.DataFrame, random_state=None) -> pd.Series:
        """Posterior mean of purchases in (T, T + t] per customer (simulated per draw)."""
        draws = self.purchase_draws(float(t), rfm, random_state)
        return pd.Series(draws.mean(axis=0), index=rfm.index, name="expected_purchases")

    def expected_purchases_path(self, times, rfm: pd.DataFrame, random_state=None) -> np.ndarray:
        """Posterior mean purchases in (T, T + t] for each t of `times`: (customers,
        len(times)), cumulative along one simulated path per draw (what
        :func:`clvmodels.customer_lifetime_value` discounts period by period)."""
        draws = self.purchase_draws(np.asarray(times, dtype=float), rfm, random_state)
        return draws.mean(axis=1).T

    def save(self, path: str | Path) -> None:
        """Write the posterior to a netCDF file (loading runs no code)."""
        self._check_fitted()
        self.idata_.to_netcdf(str(path), engine="h5netcdf")

    @classmethod
    def load(cls, path: str | Path):
        """Read a model written by :meth:`save`."""
        import arviz as az

        idata = az.from_netcdf(str(path), engine="h5netcdf")
        meta = json.loads(idata.posterior.attrs.get("clvmodels", "{}"))
        if meta.get("model") != cls.__name__:
            raise ValueError(f"{path} holds a {meta.get('model')!r} model, not a {cls.__name__}")
        model = cls(**meta["settings"])
        model.idata_ = idata
        return model
