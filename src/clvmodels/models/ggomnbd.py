r"""GGompertz/NBD model (Bemmaor & Glady 2012): pure functions and the estimator.

While active, a customer buys at Poisson rate :math:`\lambda`; the customer's lifetime
is Gompertz, :math:`P(\tau > t \mid \eta) = \exp(-\eta(e^{bt} - 1))`, so the drop-out
rate :math:`\eta b e^{bt}` grows with the customer's age when :math:`b > 0`. Across
customers :math:`\lambda \sim \mathrm{Gamma}(r, \alpha)` and :math:`\eta \sim
\mathrm{Gamma}(s, \beta)` (shape, rate), independently, so the lifetime is
gamma-Gompertz ([1]_ §2):

.. math::
    S(t) = \Big(\frac{\beta}{D(t)}\Big)^s, \qquad
    f(t) = \frac{b s \beta^s e^{bt}}{D(t)^{s+1}}, \qquad D(t) = \beta + e^{bt} - 1.

Parameters follow CLVTools' ``ggomnbd`` (r, alpha, b, s, beta). As :math:`b \to 0` with
:math:`\beta / b` fixed, :math:`D(t) \approx b(\beta/b + t)` and the model becomes the
Pareto/NBD with drop-out parameters :math:`(s, \beta/b)`: on data without ageing (CDNOW)
the likelihood rises towards that boundary, and ``b`` and ``beta`` are then only
identified through their ratio (``fit`` says so with a
:class:`~clvmodels.errors.StatisticalWarning`).

Numerics. The likelihood ([1]_ eq. (4); [2]_ eq. (A1)) contains
:math:`\int_{t_x}^T (\alpha+y)^{-(r+x)} f(y)\,dy`, which has no closed form. CLVTools
integrates it with GSL's adaptive ``qags`` in ``y``; here it is evaluated by the
composite Gauss-Legendre rule of :func:`clvmodels.models._hyp2f1.log_integral`, in the
variable in which the log-integrand is best behaved: :math:`v = \log D(y)`, in which the
lifetime part is exactly :math:`s\beta^s e^{-sv}` (so the integrand is decreasing for all
parameters, and concave where :math:`\alpha` exceeds the lifetime scale
:math:`D/D' - y`), or :math:`u = \log(\alpha + y)`, in which the purchase part is
exactly linear (concave in the opposite case). These are the two variables of the
Pareto/NBD likelihood (:mod:`clvmodels.models.paretonbd`), to which they reduce as
:math:`b \to 0`. :math:`\log D` is computed as :math:`\log(\beta + \mathrm{expm1}(by))`
or :math:`by + \log(1 + (\beta-1)e^{-by})`, so neither :math:`b \to 0` nor
:math:`by \gg 1` overflows or cancels. The gradient differentiates under the integral
sign on the same nodes.

The log-likelihood is numpy-only (no ``ops`` back-end): its quadrature needs
data-dependent panels, which a pytensor graph cannot express (as for the Pareto/NBD).

References
----------
.. [1] Bemmaor, A. C. and Glady, N. (2012). Modeling Purchasing Behavior with Sudden
   "Death": A Flexible Customer Lifetime Model. *Management Science* 58(5), 1012-1021.
.. [2] Bemmaor, A. C. and Glady, N. (2011). Implementing the Gamma/Gompertz/NBD Model in
   MATLAB. ESSEC Business School working paper (the formulas CLVTools implements).
.. [3] Adler, J. (2022). Comment on "Modeling Purchasing Behavior with Sudden 'Death'".
   *Management Science* 69(3) (erratum of the conditional expectation, CLVTools #206).
.. [4] Bachmann, P., Meierer, M. and Naef, J. CLVTools (R package),
   https://github.com/bachmannpatrick/CLVTools, ``src/ggomnbd.cpp`` (static covariates).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import special

from ..errors import StatisticalWarning
from ._btyd import Conditional, CovariateTransactionModel, Formulas
from ._hyp2f1 import log_integral

PARAM_NAMES = ("r", "alpha", "b", "s", "beta")


def _flat(*values):
    """Broadcast to one shape and flatten; returns (shape, flat arrays)."""
    arrays = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in values))
    return arrays[0].shape, [a.ravel() for a in arrays]


def log_clock(b, beta, y):
    r""":math:`\log D(y) = \log(\beta + e^{by} - 1)` without overflow or cancellation."""
    by = b * y
    small = by <= 1.0
    with np.errstate(over="ignore"):
        near = np.log(beta + np.expm1(np.minimum(by, 1.0)))
    far = by + np.log1p((beta - 1.0) * np.exp(-np.maximum(by, 1.0)))
    return np.where(small, near, far)


def log_survival(b, s, beta, t):
    r""":math:`\log S(t) = s(\log\beta - \log D(t))`, the share of customers still alive
    at age t ([1]_ eq. (2))."""
    return s * (np.log(beta) - log_clock(b, beta, t))


def _y_from_v(b, beta, t0, l0, v):
    """Age y >= t0 at which log D(y) = l0 + v, where l0 = log D(t0) and v >= 0."""
    lv = l0 + v
    with np.errstate(over="ignore", invalid="ignore"):
        # e^{by} - 1 = (e^{b t0} - 1) + D(t0) expm1(v), exact where D is small
        near = np.log1p(np.expm1(np.minimum(b * t0, 2.0))
                        + np.exp(np.minimum(l0, 1.0)) * np.expm1(np.minimum(v, 1.0 - l0)))
        far = lv + np.log1p((1.0 - beta) * np.exp(-np.maximum(lv, 1.0)))
    return np.maximum(np.where(lv > 1.0, far, near) / b, t0)


def _dead_integral(r, alpha, b, s, beta, x, t_x, T, *, weights=False):
    r"""log of :math:`\int_{t_x}^T (\alpha+y)^{-(r+x)} f(y)\,dy` per row (1-d arrays).

    Where the lifetime density has its mode :math:`y^* = \log((\beta-1)/s)/b` inside
    the range (:math:`\beta > s + 1`), the range is split there, so that each piece
    holds at most one of the two peaks (the purchase factor's at :math:`t_x`, the
    lifetime density's at :math:`y^*`); see :func:`_piece_integral`. With
    ``weights=True`` also returns the ages ``y`` of the quadrature nodes and their
    weights under the normalised integrand, as blocks ``(rows, y, w)``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        mode = np.log(np.maximum(beta - 1.0, 0.0) / s) / b
    split = (mode > t_x) & (mode < T)
    if not split.any():
        return _piece_integral(r, alpha, b, s, beta, x, t_x, T, weights=weights)
    k = np.flatnonzero(split)
    dip = _rising_minimum(r[k], alpha[k], b[k], s[k], beta[k], x[k], t_x[k], mode[k])
    # pieces: [t_x, dip] and [dip, mode] (rising side, in w = by), [mode, T]
    rows = np.concatenate([np.arange(x.size), k, k])
    lo = np.concatenate([t_x, dip, mode[k]])
    hi = np.concatenate([np.where(split, t_x, T), mode[k], T[k]])
    hi[k] = dip
    rising = np.zeros(rows.size, dtype=bool)
    rising[k] = True
    rising[x.size: x.size + k.size] = True
    res = _piece_integral(*(v[rows] for v in (r, alpha, b, s, beta, x)), lo, hi,
                          weights=weights, rising=rising)
    pieces, blocks = res if weights else (res, None)
    out = np.logaddexp.reduceat(pieces[np.argsort(rows, kind="stable")],
                                np.searchsorted(np.sort(rows), np.arange(x.size)))
    if not weights:
        return out
    # each piece's weights are normalised within the piece: rescale to the whole row
    with np.errstate(invalid="ignore"):
        share = np.nan_to_num(np.exp(pieces - out[rows]))
    return out, [(rows[i], y, w * share[i][:, None]) for i, y, w in blocks]


def _rising_minimum(r, alpha, b, s, beta, x, t_x, mode):
    r"""Where the log-integrand :math:`-(r+x)\log(\alpha+y) + by - (s+1)\log D(y)` has a
    local minimum in (t_x, mode) (the falling purchase factor meets the rising lifetime
    density), else t_x; per row.

    Its derivative is negative at the mode; a minimum exists where it is negative at t_x
    and positive somewhere between. Found on a grid of 64 ages (in w = by) and refined by
    bisection on the first bracket from - to +.
    """
    e = r + x

    def slope(y):
        ld = log_clock(b[:, None], beta[:, None], y)
        bq = b[:, None] * np.exp(b[:, None] * y - ld)
        return -e[:, None] / (alpha[:, None] + y) + b[:, None] - (s[:, None] + 1.0) * bq

    grid = t_x[:, None] + (mode - t_x)[:, None] * np.linspace(0.0, 1.0, 65)[None, :]
    d = slope(grid)
    up = (d[:, :-1] < 0) & (d[:, 1:] >= 0)
    has = up.any(axis=1)
    j = np.argmax(up, axis=1)
    idx = np.arange(t_x.size)
    lo, hi = grid[idx, j], grid[idx, j + 1]
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        neg = slope(mid[:, None])[:, 0] < 0
        lo, hi = np.where(neg, mid, lo), np.where(neg, hi, mid)
    return np.where(has, 0.5 * (lo + hi), t_x)


def _piece_integral(r, alpha, b, s, beta, x, t_x, T, *, weights=False, rising=None):
    r"""log of :math:`\int_{t_x}^T (\alpha+y)^{-(r+x)} f(y)\,dy` per row, on a range
    that holds at most one peak of the integrand.

    Rows where :math:`\alpha + t_x` is at least the lifetime scale
    :math:`D/D'(t_x) - t_x` are integrated in :math:`v = \log D(y)`, the others in
    :math:`u = \log(\alpha + y)` (see the module docstring); ``t_x`` and ``T`` are the
    ends of the range. Pieces below the lifetime density's mode (``rising``), where that
    density grows like :math:`e^{by}`, are integrated in :math:`w = by`, in which the
    log-integrand is monotone on each of them (:func:`_dead_integral` splits them so).
    """
    e = r + x
    ld0 = log_clock(b, beta, t_x)
    # lifetime scale D / D' at t_x, minus t_x (beta/b in the Pareto/NBD limit)
    scale = np.exp(ld0 - b * t_x) / b - t_x
    in_w = np.zeros(x.shape, dtype=bool) if rising is None else rising
    in_v = (alpha >= scale) & ~in_w
    la0 = np.log(alpha + t_x)
    out = np.full(x.shape, -np.inf)
    blocks = []

    # w = b (y - t_x): the rising side of the lifetime density
    iw = np.flatnonzero(in_w & (T > t_x))
    if iw.size:
        a, bb, ss, be, ee, tx = alpha[iw], b[iw], s[iw], beta[iw], e[iw], t_x[iw]
        c0 = bb * tx - (ss + 1.0) * ld0[iw]

        def fun_w(w, rows, order=2):
            a_, b_, s_, be_, e_, tx_ = (v[rows][:, None] for v in (a, bb, ss, be, ee, tx))
            y = tx_ + w / b_
            ld = log_clock(b_, be_, y)
            f = -e_ * np.log1p((y - tx_) / (a_ + tx_)) + b_ * y - (s_ + 1.0) * ld
            f = f - c0[rows][:, None]
            if order == 0:
                return f
            bq = b_ * np.exp(b_ * y - ld)  # D'/D
            ay = a_ + y
            d1 = (-e_ / ay + b_ - (s_ + 1.0) * bq) / b_
            d2 = (e_ / ay**2 - (s_ + 1.0) * bq * (b_ - bq)) / b_**2
            return f, d1, d2

        const = np.log(ss) + ss * np.log(be) + c0 - ee * la0[iw]
        res = log_integral(fun_w, np.zeros(iw.size), bb * (T[iw] - tx), weights=weights)
        if weights:
            res, raw = res
            for rows, w, wt, _ in raw:
                blocks.append((iw[rows], tx[rows][:, None] + w / bb[rows][:, None], wt))
        out[iw] = const + res

    # u = log((alpha+y) / (alpha+t_x)): purchase part linear, lifetime part b y - (s+1) log D
    iu = np.flatnonzero(~in_v & ~in_w & (T > t_x))
    if iu.size:
        a, bb, ss, be, ee, tx = alpha[iu], b[iu], s[iu], beta[iu], e[iu], t_x[iu]
        c0 = bb * tx - (ss + 1.0) * ld0[iu]

        def fun_u(u, rows, order=2):
            a_, b_, s_, be_, e_, tx_ = (v[rows][:, None] for v in (a, bb, ss, be, ee, tx))
            y = tx_ + (a_ + tx_) * np.expm1(u)
            ld = log_clock(b_, be_, y)
            f = (1.0 - e_) * u + b_ * y - (s_ + 1.0) * ld - c0[rows][:, None]
            if order == 0:
                return f
            bq = b_ * np.exp(b_ * y - ld)  # D'/D
            ay = a_ + y
            g = b_ - (s_ + 1.0) * bq
            return f, (1.0 - e_) + ay * g, ay * g - (s_ + 1.0) * ay**2 * bq * (b_ - bq)

        hi = np.log1p((T[iu] - tx) / (a + tx))
        const = (1.0 - ee) * la0[iu] + np.log(bb) + np.log(ss) + ss * np.log(be) + c0
        res = log_integral(fun_u, np.zeros(iu.size), hi, weights=weights)
        if weights:
            res, raw = res
            for rows, u, w, _ in raw:
                y = tx[rows][:, None] + (a + tx)[rows][:, None] * np.expm1(u)
                blocks.append((iu[rows], y, w))
        out[iu] = const + res

    # v = log(D(y) / D(t_x)): lifetime part exactly s beta^s e^{-s v}
    iv = np.flatnonzero(in_v & (T > t_x))
    if iv.size:
        a, bb, ss, be, ee, tx, l0 = (v[iv] for v in (alpha, b, s, beta, e, t_x, ld0))

        def fun_v(v, rows, order=2):
            a_, b_, be_, e_, tx_, l0_ = (q[rows][:, None] for q in (a, bb, be, ee, tx, l0))
            y = _y_from_v(b_, be_, tx_, l0_, v)
            ay = a_ + y
            f = -ss[rows][:, None] * v - e_ * np.log1p((y - tx_) / (a_ + tx_))
            if order == 0:
                return f
            ld = l0_ + v
            inv_bq = np.exp(ld - b_ * y) / b_  # D / D'
            k = inv_bq / ay
            dm = (1.0 - be_) * np.exp(-b_ * y)  # d(D/D')/dy
            return f, -ss[rows][:, None] - e_ * k, -e_ * k * (dm - k)

        hi = log_clock(bb, be, T[iv]) - l0
        const = np.log(ss) + ss * (np.log(be) - l0) - ee * la0[iv]
        res = log_integral(fun_v, np.zeros(iv.size), np.maximum(hi, 0.0), weights=weights)
        if weights:
            res, raw = res
            for rows, v, w, _ in raw:
                y = _y_from_v(bb[rows][:, None], be[rows][:, None], tx[rows][:, None],
                              l0[rows][:, None], v)
                blocks.append((iv[rows], y, w))
        out[iv] = const + res
    return (out, blocks) if weights else out


def _log_terms(r, alpha, b, s, beta, x, t_x, T, *, weights=False):
    """log of the likelihood's two terms: alive at T, and died in (t_x, T]."""
    log_alive = -(r + x) * np.log(alpha + T) + log_survival(b, s, beta, T)
    res = _dead_integral(r, alpha, b, s, beta, x, t_x, T, weights=weights)
    return (log_alive, *res) if weights else (log_alive, res)


def loglik(r, alpha, b, s, beta, x, t_x, T):
    r"""Log-likelihood of each customer's (x, t_x, T), [1]_ eq. (4) ([2]_ eq. (A1)).

    .. math::
        L = \frac{\Gamma(r+x)\alpha^r}{\Gamma(r)}
            \Big[\frac{S(T)}{(\alpha+T)^{r+x}}
            + \int_{t_x}^T \frac{f(y)\,dy}{(\alpha+y)^{r+x}}\Big]

    alive at T after x purchases, or dead at some y in (t_x, T]; S and f are the
    gamma-Gompertz survival and density of the module docstring. numpy only.
    """
    shape, (r, alpha, b, s, beta, x, t_x, T) = _flat(r, alpha, b, s, beta, x, t_x, T)
    log_alive, log_dead = _log_terms(r, alpha, b, s, beta, x, t_x, T)
    const = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    return (const + np.logaddexp(log_alive, log_dead)).reshape(shape)


def loglik_and_grad(r, alpha, b, s, beta, x, t_x, T):
    """:func:`loglik` and :func:`loglik_grad` from one quadrature (what the fit calls)."""
    shape, (r, alpha, b, s, beta, x, t_x, T) = _flat(r, alpha, b, s, beta, x, t_x, T)
    log_alive, log_dead, blocks = _log_terms(r, alpha, b, s, beta, x, t_x, T, weights=True)
    n, e = x.size, r + x
    # averages of the derivatives of the log-integrand over the normalised integrand
    mean = np.zeros((5, n))
    for rows, y, w in blocks:
        rr = rows[:, None] if rows.ndim == 1 else rows
        a_, b_, s_, be_, e_ = (v[rr] for v in (alpha, b, s, beta, e))
        ld = log_clock(b_, be_, y)
        parts = (
            -np.log(a_ + y),
            -e_ / (a_ + y),
            y - (s_ + 1.0) * y * np.exp(b_ * y - ld),
            -ld,
            -(s_ + 1.0) * np.exp(-ld),
        )
        for k, p in enumerate(parts):
            mean[k] += np.bincount(rows, weights=(w * p).sum(axis=1), minlength=n)
    ld_t = log_clock(b, beta, T)
    alive = np.stack([
        -np.log(alpha + T),
        -e / (alpha + T),
        -s * T * np.exp(b * T - ld_t),
        np.log(beta) - ld_t,
        s / beta - s * np.exp(-ld_t),
    ])
    dead = mean + np.stack([np.zeros(n), np.zeros(n), 1.0 / b, 1.0 / s + np.log(beta), s / beta])
    w = special.expit(log_dead - log_alive)  # share of "died in (t_x, T]"; 0 if t_x = T
    grad = (1.0 - w) * alive + w * dead
    grad[0] += special.digamma(r + x) - special.digamma(r) + np.log(alpha)
    grad[1] += r / alpha
    const = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    ll = const + np.logaddexp(log_alive, log_dead)
    return ll.reshape(shape), tuple(g.reshape(shape) for g in grad)


def loglik_grad(r, alpha, b, s, beta, x, t_x, T):
    r"""Gradient of :func:`loglik` w.r.t. (r, alpha, b, s, beta), one row per customer.

    With :math:`w` the share of the "died in (t_x, T]" term and :math:`\mathrm{E}_y` the
    average over the normalised integrand (same quadrature nodes), each derivative is
    :math:`(1-w)\,\partial \log(\text{alive}) + w\,\mathrm{E}_y[\partial \log(\text{integrand})]`
    plus the derivative of :math:`\log\Gamma(r+x)\alpha^r/\Gamma(r)`; e.g.
    :math:`\partial_b \log(\text{integrand}) = 1/b + y - (s+1)\,y e^{by}/D(y)`.
    """
    return loglik_and_grad(r, alpha, b, s, beta, x, t_x, T)[1]


def probability_alive(r, alpha, b, s, beta, x, t_x, T):
    r"""P(alive at T | x, t_x, T), [2]_ §3.2: the share of "alive at T" in the likelihood

    .. math::
        P = \frac{S(T)(\alpha+T)^{-(r+x)}}{S(T)(\alpha+T)^{-(r+x)}
            + \int_{t_x}^T (\alpha+y)^{-(r+x)} f(y)\,dy}.
    """
    shape, (r, alpha, b, s, beta, x, t_x, T) = _flat(r, alpha, b, s, beta, x, t_x, T)
    log_alive, log_dead = _log_terms(r, alpha, b, s, beta, x, t_x, T)
    return special.expit(log_alive - log_dead).reshape(shape)


def log_survival_integral(b, s, beta, start, t):
    r"""log of :math:`\int_{start}^{start+t} (D(start)/D(y))^s\,dy`: expected alive time in
    (start, start + t] of a customer alive at ``start`` ([1]_ eq. (7) integrand).

    For :math:`\beta < 1` it is integrated in :math:`v = \log D(y)`, where the
    log-integrand :math:`-s v + \log(D/D')` is concave; for :math:`\beta \ge 1` in
    :math:`w = by`, where :math:`-s \log D` is concave (in :math:`v` it would have a
    singularity at :math:`\log(\beta-1)`, near the start for large beta).
    Returns -inf where t = 0.
    """
    shape, (b, s, beta, start, t) = _flat(b, s, beta, start, t)
    l0 = log_clock(b, beta, start)
    small = beta < 1.0
    hi = np.where(small, log_clock(b, beta, start + t) - l0, b * t)

    def fun(v, rows, order=2):
        b_, s_, be_, l0_, st_, sm = (q[k[rows]][:, None]
                                     for q in (b, s, beta, l0, start, small))
        # v-branch: log of (D(start)/D)^s dy/dv = -s v + log(D/D'), D/D' = D e^{-by} / b
        y_v = _y_from_v(b_, be_, st_, l0_, np.where(sm, v, 0.0))
        g = (1.0 - be_) * np.exp(-b_ * y_v)  # 1 - b D/D'
        # w-branch: y = start + w / b, log-integrand -s (log D(y) - log D(start))
        y_w = st_ + np.where(sm, 0.0, v) / b_
        ld_w = log_clock(b_, be_, y_w)
        f = np.where(sm, (1.0 - s_) * v - b_ * (y_v - st_), -s_ * (ld_w - l0_))
        if order == 0:
            return f
        q = np.exp(b_ * y_w - ld_w)  # D' / (b D)
        d1 = np.where(sm, g - s_, -s_ * q)
        d2 = np.where(sm, -g * (1.0 - g), -s_ * q * (1.0 - q))
        return f, d1, d2

    out = np.full(b.shape, -np.inf)
    k = np.flatnonzero(t > 0)
    if k.size:
        # log(D/D') at start (v-branch), log(1/b) (w-branch)
        base = np.where(small, l0 - b * start, 0.0)[k] - np.log(b[k])
        out[k] = base + log_integral(fun, np.zeros(k.size), np.maximum(hi[k], 0.0))
    return out.reshape(shape)


def expected_purchases(r, alpha, b, s, beta, t, x, t_x, T):
    r"""E[Y(t) | x, t_x, T]: expected purchases in (T, T+t], [1]_ eq. (7) as corrected by
    [3]_:

    .. math::
        P(\text{alive}) \, \frac{r+x}{\alpha+T}
        \int_T^{T+t} \Big(\frac{D(T)}{D(y)}\Big)^s dy,

    the posterior mean rate times the expected alive time in (T, T+t] of a customer
    alive at T (whose :math:`\eta` is then Gamma(s, D(T))).
    """
    alive = probability_alive(r, alpha, b, s, beta, x, t_x, T)
    t, x, T = (np.asarray(v, dtype=float) for v in (t, x, T))
    time_alive = np.exp(log_survival_integral(b, s, beta, T, t))
    return (r + x) / (alpha + T) * time_alive * alive


def expected_purchases_path(r, alpha, b, s, beta, times, x, t_x, T):
    """:func:`expected_purchases` at each of ``times`` (K,) for customers (n,): (n, K).

    P(alive) does not depend on the horizon and is computed once per customer.
    """
    alive = probability_alive(r, alpha, b, s, beta, x, t_x, T)
    times = np.asarray(times, dtype=float)
    x, T = np.asarray(x, dtype=float), np.asarray(T, dtype=float)
    time_alive = np.exp(log_survival_integral(b, s, beta, T[:, None], times[None, :]))
    return ((r + x) / (alpha + T) * alive)[:, None] * time_alive


def expected_purchases_new(r, alpha, b, s, beta, t):
    r"""E[X(t)] for a customer acquired at time 0, [1]_ eq. (6) ([2]_ §3.3):

    .. math::
        \frac{r}{\alpha} \int_0^t S(y)\,dy
        = \frac{r}{\alpha}\Big[t\,S(t) + \int_0^t y f(y)\,dy\Big].
    """
    t = np.asarray(t, dtype=float)
    return r / alpha * np.exp(log_survival_integral(b, s, beta, np.zeros_like(t), t))


def probability_of_purchases(r, alpha, b, s, beta, n, t):
    r"""P(X(t) = n) for a customer acquired at time 0 ([2]_ §3.4):

    .. math::
        P(X(t)=n) = \mathrm{NBD}(n; r, \tfrac{\alpha}{\alpha+t})\,S(t)
        + \frac{\Gamma(r+n)\,\alpha^r}{\Gamma(r)\,n!}
          \int_0^t \frac{\tau^n f(\tau)\,d\tau}{(\alpha+\tau)^{r+n}},

    alive through t with n purchases, or dead at some :math:`\tau \le t` after n (all
    arguments broadcast against each other). The integral is evaluated in
    :math:`\log \tau` (for n >= 1, starting 60/(n+1) below the smaller scale, a relative
    loss below 1e-26) and in :math:`\log(\alpha+\tau)` for n = 0.
    """
    shape, (r, alpha, b, s, beta, n, t) = _flat(r, alpha, b, s, beta, n, t)
    log_coef = special.gammaln(r + n) - special.gammaln(r) - special.gammaln(n + 1)
    log_nbd = (log_coef + r * (np.log(alpha) - np.log(alpha + t)) + special.xlogy(n, t)
               - n * np.log(alpha + t))
    alive = log_nbd + log_survival(b, s, beta, t)
    log_int = np.full(n.shape, -np.inf)
    zero = (t > 0) & (n == 0)
    if zero.any():
        k = np.flatnonzero(zero)
        # the likelihood's integral at x = 0 over (0, t], without its constant
        log_int[k] = _dead_integral(r[k], alpha[k], b[k], s[k], beta[k], n[k],
                                    np.zeros(k.size), t[k])
    pos = (t > 0) & (n > 0)
    if pos.any():
        k = np.flatnonzero(pos)
        log_int[k] = _log_pmf_integral(r[k], alpha[k], b[k], s[k], beta[k], n[k], t[k])
    dead = log_coef + r * np.log(alpha) + log_int
    return np.exp(np.logaddexp(alive, dead)).reshape(shape)


def _log_pmf_integral(r, alpha, b, s, beta, n, t):
    r"""log of :math:`\int_0^t \tau^n (\alpha+\tau)^{-(r+n)} f(\tau)\,d\tau`, n >= 1, in
    :math:`u = \log\tau`, split at the mode of f as in :func:`_dead_integral`."""
    la = np.log(alpha)
    lt = np.log(t)
    scale = np.log(np.minimum(alpha, np.exp(log_clock(b, beta, t) - b * t) / b))
    lo = np.minimum(np.minimum(la, scale), lt) - 60.0 / (n + 1.0)

    def fun(u, rows, order=2):
        c, e, l_a, b_, s_, be_ = ((n + 1.0)[rows][:, None], (r + n)[rows][:, None],
                                  la[rows][:, None], b[rows][:, None], s[rows][:, None],
                                  beta[rows][:, None])
        tau = np.exp(u)
        ld = log_clock(b_, be_, tau)
        sa = np.logaddexp(u, l_a)
        f = c * u - e * sa + b_ * tau - (s_ + 1.0) * ld
        if order == 0:
            return f
        ga = np.exp(u - sa)
        bq = b_ * np.exp(b_ * tau - ld)
        g = b_ - (s_ + 1.0) * bq
        d1 = c - e * ga + tau * g
        d2 = -e * ga * (1 - ga) + tau * g - (s_ + 1.0) * tau**2 * bq * (b_ - bq)
        return f, d1, d2

    const = np.log(b) + np.log(s) + s * np.log(beta)
    # split at the lifetime density's mode where it lies inside (0, t): one peak a piece
    with np.errstate(divide="ignore", invalid="ignore"):
        lm = np.log(np.log(np.maximum(beta - 1.0, 0.0) / s) / b)
    cut = np.where((lm > lo) & (lm < lt), lm, lt)
    first = log_integral(fun, lo, cut)
    second = log_integral(fun, cut, lt)
    return const + np.logaddexp(first, second)


# ---- the future of a customer alive at T (conditional distribution, intervals) ----------
def updated_if_alive(r, alpha, b, s, beta, x, T):
    r"""Parameters of the future of a customer alive at T with x purchases: a customer
    just acquired with :math:`(r + x, \alpha + T, b, s, \beta')`,
    :math:`\beta' = D(T)\,e^{-bT} = 1 + (\beta - 1)e^{-bT}`.

    Given alive at T, :math:`\lambda \sim \mathrm{Gamma}(r+x, \alpha+T)` ([1]_ §3, the
    Poisson-gamma update) and, independently, :math:`\eta \sim \mathrm{Gamma}(s, D(T))`
    (the prior times :math:`P(\tau > T \mid \eta) = e^{-\eta(e^{bT}-1)}`). The remaining
    lifetime u then has :math:`P(u > v \mid \eta) = \exp(-\eta e^{bT}(e^{bv} - 1))`: a
    Gompertz lifetime with :math:`\eta' = \eta e^{bT} \sim \mathrm{Gamma}(s, D(T)e^{-bT})`,
    so the conditional survival is :math:`(D(T)/D(T+v))^s` ([1]_ eq. (7) integrand).
    """
    x, T = np.asarray(x, dtype=float), np.asarray(T, dtype=float)
    beta_new = np.exp(log_clock(b, beta, T) - b * T)
    return tuple(np.broadcast_arrays(r + x, alpha + T, b, s, beta_new))


def survival(r, alpha, b, s, beta, t):
    """P(still alive at t) of a customer acquired at 0: exp of :func:`log_survival`."""
    return np.exp(log_survival(b, s, beta, np.asarray(t, dtype=float)))


def pmf_table(r, alpha, b, s, beta, t, n_max):
    """:func:`probability_of_purchases` for n = 0..n_max: array (..., n_max + 1), one
    quadrature per entry (no recurrence: the lifetime integral changes with n)."""
    n = np.arange(n_max + 1, dtype=float)
    q = [np.asarray(v, dtype=float)[..., None] for v in (r, alpha, b, s, beta)]
    return probability_of_purchases(*q, n, float(t))


def simulate_future(r, alpha, b, s, beta, t, x, t_x, T, rng):
    """Draws of the purchases in (T, T + t] given each history (:func:`updated_if_alive`):
    alive at T with :func:`probability_alive`; then lambda ~ Gamma(r + x, alpha + T),
    eta' ~ Gamma(s, beta'), a Gompertz remaining lifetime log(1 + E / eta') / b, and
    Poisson purchases over the part of (T, T + t] the customer is alive."""
    alive = rng.random(np.shape(x)) < probability_alive(r, alpha, b, s, beta, x, t_x, T)
    rp, ap, _, _, bp = updated_if_alive(r, alpha, b, s, beta, x, T)
    lam = rng.gamma(rp, 1.0 / ap)
    eta = rng.gamma(s, 1.0 / bp)
    with np.errstate(divide="ignore", over="ignore"):
        remaining = np.log1p(rng.exponential(1.0, np.shape(x)) / eta) / b
    return np.where(alive, rng.poisson(lam * np.minimum(remaining, t)), 0)


CONDITIONAL = Conditional(updated=updated_if_alive, survival=survival,
                          pmf=probability_of_purchases, pmf_table=pmf_table,
                          simulate_future=simulate_future)


def simulate(r, alpha, b, s, beta, T, rng):
    """Exact draws of (x, t_x) for customers of ages ``T`` (vectorised), [1]_ §2.

    Each customer draws lambda ~ Gamma(r, alpha), eta ~ Gamma(s, beta) (rates) and a
    Gompertz lifetime by inversion, tau = log(1 + E / eta) / b with E ~ Exponential(1).
    While active (up to min(tau, T)) purchases are Poisson(lambda); the last one is the
    largest of x uniform times, i.e. that span times a Beta(x, 1) draw.
    """
    eta = rng.gamma(s, 1.0 / beta, T.shape)
    with np.errstate(divide="ignore", over="ignore"):
        lifetime = np.log1p(rng.exponential(1.0, T.shape) / eta) / b
    span = np.minimum(lifetime, T)
    x = rng.poisson(rng.gamma(r, 1.0 / alpha, T.shape) * span)
    last = np.where(x > 0, rng.beta(np.maximum(x, 1), 1.0), 0.0)
    return x, span * last


class GGomNBD(CovariateTransactionModel):
    r"""GGompertz/NBD model of repeat purchasing (Bemmaor & Glady 2012).

    Parameters ``r, alpha`` (gamma heterogeneity in purchase rate), ``b`` (ageing: the
    drop-out rate grows like e^(b t)) and ``s, beta`` (gamma heterogeneity in the
    drop-out scale), as in CLVTools' ``ggomnbd``. Fit on an RFM frame with
    ``frequency``, ``recency`` and ``T``. As ``b -> 0`` with ``beta / b`` fixed it is the
    Pareto/NBD with ``beta_pareto = beta / b``.

    Static covariates (``purchase_covariates=``, ``dropout_covariates=``; see
    :class:`~clvmodels.models._btyd.CovariateTransactionModel`) follow CLVTools'
    ``ggomnbd`` with static covariates ([4]_, ``ggomnbd_staticcov_alpha_i`` and
    ``ggomnbd_staticcov_beta_i``): :math:`\alpha_i = \alpha e^{-\gamma_P^\top z_i}` and
    :math:`\beta_i = \beta e^{-\gamma_D^\top z_i}`, r, b and s common to all customers.
    A positive purchase coefficient raises the purchase rate; a positive drop-out
    coefficient shortens the lifetime (:math:`\eta_i \sim \mathrm{Gamma}(s, \beta_i)`
    has mean :math:`s/\beta_i`). The likelihood is :func:`loglik` at
    :math:`(\alpha_i, \beta_i)` ([1]_ eq. (4)).

    Examples
    --------
    >>> import clvmodels as cm
    >>> gg = cm.GGomNBD.from_params(r=0.553, alpha=10.578, b=0.0002, s=0.603, beta=0.0026)
    >>> round(gg.expected_purchases_new(39.0), 3)
    1.256
    """

    param_names = PARAM_NAMES
    covariate_links = ((1, "purchase", -1), (4, "dropout", -1))
    formulas = Formulas(
        loglik=loglik,
        loglik_grad=loglik_grad,
        expected_purchases=expected_purchases,
        probability_alive=probability_alive,
        expected_purchases_new=expected_purchases_new,
        probability_of_purchases=probability_of_purchases,
        simulate=simulate,
        expected_purchases_path=expected_purchases_path,
        loglik_and_grad=loglik_and_grad,
        conditional=CONDITIONAL,
    )

    def _after_fit(self, rows, weights) -> None:
        p = self.params_
        age = float(rows["T"].max()) if len(rows) else 0.0
        # e^{bT} - 1 = bT to 1e-4: the Pareto/NBD limit (True also tells the report)
        self.pareto_nbd_limit_ = bool(p["b"] * age < 1e-4)
        if self.pareto_nbd_limit_:
            warnings.warn(
                f"GGomNBD: b = {p['b']:.3g} is at the Pareto/NBD limit (b -> 0): the data "
                "show no ageing of the drop-out rate. b and beta are identified only "
                f"through beta / b = {p['beta'] / p['b']:.6g} (the Pareto/NBD's beta); "
                "their standard errors are not meaningful, the other parameters, the "
                "log-likelihood and the predictions are.",
                StatisticalWarning,
                stacklevel=3,
            )

    def summary(self):
        """As :meth:`MLEModel.summary`; at the Pareto/NBD limit the intervals of b and
        beta are (0, inf)."""
        with np.errstate(over="ignore"):
            return super().summary()

    def _start(self, data, weights):
        start = super()._start(data, weights)
        # e^{bT} - 1 of order 1 over the mean age, beta / b (the Pareto/NBD beta) = mean age
        start[2] = 1.0 / max(float(np.average(data[2], weights=weights)), 1e-6)
        start[4] = 1.0
        return start
