r"""Gauss hypergeometric function in log space, and the quadrature behind it.

Two tools live here.

:func:`log_integral` computes :math:`\log \int_{lo}^{hi} e^{\varphi(u)}\,du` for a smooth
*unimodal* log-integrand :math:`\varphi`, one integral per row, vectorised. It is the
workhorse of the Pareto/NBD likelihood (where the integral is the model's own
representation, see :mod:`clvmodels.models.paretonbd`) and of the fallback of
:func:`log_hyp2f1`. The rule is a composite Gauss-Legendre rule whose panels are placed
where the integrand lives:

* rows whose integrand is tame on its whole range get one panel: 12 nodes where the
  width in ``u`` is at most 1 and the log-integrand varies by at most 10 (bounded
  through the end tangents, which is valid for concave :math:`\varphi`), 16 nodes for
  width 2 and variation 18, 24 nodes for width 2 and variation 40. This is the fast
  path, taken by every row of the CDNOW data at the fitted parameters;
* the other rows are split at the mode and at the points where :math:`\varphi` has
  dropped by 3, 8, 15, 24, 34 and 46 below its maximum (found by safeguarded Newton),
  wide panels are split further (width <= 2; intervals wider than 64 get a mesh graded
  geometrically from both ends instead, see ``_split``, so the work stays bounded at
  extreme parameters), and each panel gets 12 nodes. The part of
  the range beyond a drop of 46 (relative weight below 1e-20) is left out.

In log-variables the integrands of the BTYD models are log-concave (a sum of linear and
``-softplus`` terms) and analytic in a strip around the real axis, so the rule keeps a
relative error near 1e-13 from the textbook regime to the extremes (parameters 1e-3 to
1e3, x up to 500, T up to 1e4); ``tests/test_hyp2f1.py`` checks this against mpmath.
Rows are processed in chunks of 32k so that the (rows x nodes) temporaries stay small.
Weights for expectations under the normalised integrand are returned on request, which
gives exact (to quadrature accuracy) derivatives by differentiating under the integral
sign.

:func:`log_hyp2f1` returns :math:`(\log|{}_2F_1(a, b; c; z)|, \mathrm{sign})` for real
parameters and :math:`0 \le z < 1`. scipy's ``hyp2f1`` (Cephes) is used where it was
found accurate (see ``_trust_scipy``: a, b > -1, c > max(a, b, 0), moderate size, z not
too close to 1, F not within 1e-6 of 1); elsewhere it overflows or loses every digit
(``hyp2f1(1998.999, 999, 2498, 0.9999) = inf`` while the value is 6.51e2241;
``hyp2f1(-137.3, 145.2, 155.1, 0.33) = -0.173`` while the value is 2.65e-22).
There the function is computed in log space from Euler's
integral (Abramowitz & Stegun 15.3.1; DLMF 15.6.1) after Pfaff's transformation (A&S
15.3.4; DLMF 15.8.1), with :math:`p = 1 - t` and :math:`\kappa = z / (1 - z)`, in one
of two forms:

.. math::
    {}_2F_1(a, b; c; z) &= (1-z)^{-b}\,
        \mathrm{E}_{p \sim \mathrm{Beta}(b,\, c-b)}\big[(1 + \kappa p)^{a - c}\big],
        \qquad c > b > 0, \\
    {}_2F_1(a, b; c; z) &= (1-z)^{-b} \Big[1 - \frac{b}{c}\,
        \mathrm{E}_{p \sim \mathrm{Beta}(b+1,\, c-b)}
        \Big[\frac{1 - (1 + \kappa p)^{a-c}}{p}\Big]\Big], \qquad c > b > -1,\ c > a.

The second is the first integrated by parts once (for :math:`-1 < b \le 0` it is the
regularisation of Euler's integral at :math:`t = 1`). It is tried first: its bracket
gives :math:`1 - (1-z)^b F` with full relative accuracy even when that is tiny (b near
0, z near 0), which is what the BG/NBD conditional expectation needs — the expectation
is exactly :math:`\frac{c}{b}(1 - (1-z)^b F)` at :math:`(a, b, c) = (a+b-1-r, a-1,
a+b+x-1)`, i.e. the mean of :math:`(1 - (1+\kappa p)^{-(r+x)})/p` over the posterior
drop-out probability :math:`p \sim \mathrm{Beta}(a, b+x)` (Fader, Hardie & Lee 2005,
eq. (10)). Where that bracket is below 1/2 (b > 0) the first form, whose integrand is
positive, is used instead. The expectations are integrals over the logit of p, whose
log-integrand is concave for :math:`0 \le a \le c` and tends to straight lines at both
ends; :func:`log_integral` covers the middle and the linear tails are added in closed
form. ``a`` and ``b`` are swapped when that makes a form applicable; where none applies
(both a and b above c, or both below -1; no BTYD model gets there) scipy's value is
returned.

References
----------
.. [1] Abramowitz, M. and Stegun, I. A. (1972). *Handbook of Mathematical Functions*,
   15.1.1, 15.3.1, 15.3.3, 15.3.4.
.. [2] NIST Digital Library of Mathematical Functions, §15.6 (integral
   representations) and §15.8 (transformations). https://dlmf.nist.gov/15
.. [3] Pearson, J. W., Olver, S. and Porter, M. A. (2017). Numerical methods for the
   computation of the confluent and Gauss hypergeometric functions. *Numerical
   Algorithms* 74, 821-866 (compares series, transformations, recurrences and
   quadrature of the integral representations; quadrature is the robust choice for
   large parameters).
.. [4] Davis, P. J. and Rabinowitz, P. (1984). *Methods of Numerical Integration*, 2nd
   ed., Academic Press (composite Gauss-Legendre rules).
.. [5] Maechler, M. (2012). Accurately computing log(1 - exp(-|a|)). Rmpfr vignette.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import special

_GL = {n: np.polynomial.legendre.leggauss(n) for n in (12, 16, 24)}
_SLOW_NODES = 12
# one-panel tiers: (nodes, largest width, largest variation of the log-integrand)
_FAST_TIERS = ((12, 1.0, 10.0), (16, 2.0, 18.0), (24, 2.0, 40.0))
_LEVELS = np.array([3.0, 8.0, 15.0, 24.0, 34.0, 46.0])
_MAX_PANEL = 2.0
_MAX_UNIFORM = 32  # wider intervals get a graded mesh (see _split)
_CHUNK = 1 << 15

LogIntegrand = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray] | np.ndarray]


def _solve_decreasing(g_fun, lo, hi, x0, iters: int = 60):
    """Root of a decreasing function on [lo, hi] (g(lo) >= 0 >= g(hi)), per row.

    Newton's method safeguarded by bisection: a Newton step that leaves the current
    bracket is replaced by the midpoint, so it always converges.
    """
    lo, hi = lo.copy(), hi.copy()
    x = np.clip(x0, lo, hi)
    active = np.ones(x.shape, dtype=bool)
    for _ in range(iters):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        g, dg = g_fun(x[idx], idx)
        pos = g > 0
        lo[idx] = np.where(pos, x[idx], lo[idx])
        hi[idx] = np.where(pos, hi[idx], x[idx])
        with np.errstate(all="ignore"):
            xn = x[idx] - g / dg
        bad = ~np.isfinite(xn) | (xn < lo[idx]) | (xn > hi[idx])
        xn = np.where(bad, 0.5 * (lo[idx] + hi[idx]), xn)
        xn = np.where(g == 0, x[idx], xn)
        done = np.abs(xn - x[idx]) <= 1e-12 * (1.0 + np.abs(xn))
        x[idx] = xn
        active[idx[done]] = False
    return x


def _panels_slow(fun: LogIntegrand, rows, lo, hi, f_end, d_end, cross):
    """Panels of the rows that need splitting: mode, drop levels, width limit."""
    n = rows.size
    d_lo, d_hi = d_end[:, 0], d_end[:, 1]
    inner = (d_lo > 0) & (d_hi < 0)
    mode = np.where(d_lo <= 0, lo, hi)
    if inner.any():
        k = np.flatnonzero(inner)

        def g_mode(x, sub):
            _, d1, d2 = fun(x[:, None], rows[k[sub]], 2)
            return d1[:, 0], d2[:, 0]

        x0 = np.where(np.isfinite(cross[k]), cross[k], 0.5 * (lo[k] + hi[k]))
        mode[k] = _solve_decreasing(g_mode, lo[k], hi[k], x0)
    f_mode = fun(mode[:, None], rows, 0)[:, 0]

    n_lev = _LEVELS.size
    bounds = [mode[:, None]]
    for side in (0, 1):
        end = lo if side == 0 else hi
        target = f_mode[:, None] - _LEVELS[None, :]
        exists = target > f_end[:, side][:, None]
        xs = np.full((n, n_lev), np.nan)
        sel_r, sel_l = np.nonzero(exists)
        if sel_r.size:
            tt = target[sel_r, sel_l]
            sgn = 1.0 if side == 1 else -1.0

            def g_lev(x, sub, sel_r=sel_r, tt=tt, sgn=sgn):
                f, d1, _ = fun(x[:, None], rows[sel_r[sub]], 1)
                return sgn * (f[:, 0] - tt[sub]), sgn * d1[:, 0]

            span = np.maximum(f_mode - f_end[:, side], 1e-300)[sel_r]
            x0 = mode[sel_r] + np.clip(_LEVELS[sel_l] / span, 0, 1) * (end - mode)[sel_r]
            a0 = np.where(side == 1, mode[sel_r], end[sel_r])
            b0 = np.where(side == 1, end[sel_r], mode[sel_r])
            # g is decreasing on [mode, hi] for side 1, and on [lo, mode] (as target - f)
            xs[sel_r, sel_l] = _solve_decreasing(g_lev, a0, b0, x0)
        # the deepest existing level truncates the range; otherwise the end bounds it
        last = np.where(exists[:, -1], xs[:, -1], end)
        xs[:, -1] = last
        bounds.append(xs)
    b = np.concatenate([bounds[1], bounds[0], bounds[2]], axis=1)
    b = np.sort(np.where(np.isnan(b), mode[:, None], b), axis=1)
    a, b = b[:, :-1].ravel(), b[:, 1:].ravel()
    lo_p, hi_p, k = _split(a, b)
    return lo_p, hi_p, np.repeat(np.repeat(rows, n_lev * 2), k), f_mode


def _split(a, b):
    r"""Panels of the intervals [a, b]: (panel ends, panels per interval).

    Intervals up to :data:`_MAX_UNIFORM` panels of width :data:`_MAX_PANEL` are cut
    into equal panels of at most that width. Wider ones (an integrand that stays
    within one drop level over a range of width > 64, e.g. at the optimiser's extreme
    trial parameters: 1.6e8 in the GGompertz/NBD's log D with a variation of 0.7) get a
    geometrically graded mesh instead: panels of widths 2, 4, 8, ... from each end, two
    panels in the middle, so 2 log2(width) + O(1) panels where the uniform cut needed
    width / 2 (1e8 panels per row, a 146 GiB index array). Each graded panel is at most
    as wide as its distance to the nearer end plus 2, which keeps Gauss-Legendre's
    geometric convergence for integrands analytic in a neighbourhood that widens in
    proportion to the distance from the interval's ends, as the logs of the BTYD
    integrands are (terms like :math:`\log(c + e^u)` are linear up to :math:`e^{-|u|}`
    away from their bend, and a bend inside a wide interval of small variation can only
    have a small coefficient); ``tests/test_hyp2f1.py`` checks such a case against mpmath.
    """
    width = b - a
    uniform = width <= _MAX_PANEL * _MAX_UNIFORM
    with np.errstate(invalid="ignore"):
        levels = np.floor(np.log2(np.where(uniform, 4.0, width) / (2 * _MAX_PANEL) + 1.0))
    levels = levels.astype(np.int64)  # graded: panels 2 (2^j - 1) .. 2 (2^(j+1) - 1) per side
    k = np.where(
        uniform,
        np.where(width > 0, np.maximum(np.ceil(width / _MAX_PANEL), 1), 0),
        2 * levels + 2,
    ).astype(np.int64)
    ia = np.repeat(np.arange(a.size), k)
    j = np.arange(ia.size) - np.repeat(np.cumsum(k) - k, k)
    a, b, kk, lev, uni = a[ia], b[ia], k[ia], levels[ia], uniform[ia]
    h = (b - a) / np.maximum(kk, 1)
    lo_p, hi_p = a + j * h, a + (j + 1) * h
    g = np.flatnonzero(~uni)
    if g.size:
        a, b, j, lev = a[g], b[g], j[g], lev[g]
        reach = _MAX_PANEL * (np.exp2(lev) - 1.0)  # covered by the graded panels of a side
        mid = 0.5 * (a + b)
        left, right = j < lev, j > lev + 1
        jr = np.where(right, 2 * lev + 1 - j, 0)  # index from the right end
        jl = np.where(left, j, 0)
        lo_g = np.where(left, a + _MAX_PANEL * (np.exp2(jl) - 1.0),
                        np.where(right, b - _MAX_PANEL * (np.exp2(jr + 1) - 1.0),
                                 np.where(j == lev, a + reach, mid)))
        hi_g = np.where(left, a + _MAX_PANEL * (np.exp2(jl + 1) - 1.0),
                        np.where(right, b - _MAX_PANEL * (np.exp2(jr) - 1.0),
                                 np.where(j == lev, mid, b - reach)))
        lo_p[g], hi_p[g] = lo_g, hi_g
    return lo_p, hi_p, k


def _rule01(m):
    x, w = _GL[m]
    return 0.5 * (x + 1.0), 0.5 * w


def log_integral(fun: LogIntegrand, lo, hi, *, weights: bool = False):
    r""":math:`\log \int_{lo}^{hi} \exp(\varphi(u))\,du` per row, for unimodal :math:`\varphi`.

    Parameters
    ----------
    fun : callable
        ``fun(u, rows, order) -> (phi, dphi, d2phi)``: the log-integrand and its first
        two derivatives at points ``u`` of shape ``(len(rows), k)``; ``rows`` indexes the
        rows (parameters) each line of ``u`` belongs to. With ``order=0`` it returns
        ``phi`` alone.
    lo, hi : array
        Finite integration limits (1-d), ``lo <= hi``; equal limits give ``-inf``.
    weights : bool
        Also return the quadrature as a list of blocks ``(rows, u, w, phi)``: nodes
        ``u`` of shape ``(len(rows), k)``, their weights under the normalised integrand
        and the log-integrand there, so
        that a caller can form :math:`\mathrm{E}[g(u)] = \int g e^{\varphi} / \int
        e^{\varphi}` per row as the sum over blocks of ``np.bincount(rows, (w *
        g(u)).sum(axis=1))`` (the rows of a block lie in ``rows.min()..rows.max()``).
        This is how gradients are differentiated under the integral sign.

    Notes
    -----
    See the module docstring for the rule. Rows whose range is short and whose
    log-integrand varies little get one panel of 12, 16 or 24 nodes (see the module
    docstring); the bound on the variation uses the end
    tangents and relies on the concavity of :math:`\varphi`. The other rows are split
    at the mode and at drop levels, which relies on unimodality only.
    """
    lo = np.asarray(lo, dtype=float).ravel()
    hi = np.asarray(hi, dtype=float).ravel()
    n = lo.size
    if n > _CHUNK:  # bounded temporaries: (rows x nodes) arrays stay in cache
        outs, blocks = [], []
        for s0 in range(0, n, _CHUNK):
            sl = slice(s0, min(n, s0 + _CHUNK))

            def sub(u, rows, order=2, s0=s0):
                return fun(u, rows + s0, order)

            res = log_integral(sub, lo[sl], hi[sl], weights=weights)
            if weights:
                outs.append(res[0])
                blocks += [(r + s0, u, w, f) for r, u, w, f in res[1]]
            else:
                outs.append(res)
        out = np.concatenate(outs)
        return (out, blocks) if weights else out
    rows = np.arange(n)
    f_end, d_end, _ = fun(np.stack([lo, hi], axis=1), rows, 2)
    width = hi - lo
    f_max = np.maximum(f_end[:, 0], f_end[:, 1])
    inner = (d_end[:, 0] > 0) & (d_end[:, 1] < 0)
    with np.errstate(all="ignore"):
        # the tangents at both ends meet above the maximum of a concave function
        cross = (f_end[:, 1] - f_end[:, 0] - d_end[:, 1] * hi + d_end[:, 0] * lo) / (
            d_end[:, 0] - d_end[:, 1]
        )
        cross = np.clip(cross, lo, hi)
        top = np.where(inner, f_end[:, 0] + d_end[:, 0] * (cross - lo), f_max)
    top = np.where(np.isfinite(top), np.maximum(top, f_max), f_max)
    drop = top - np.minimum(f_end[:, 0], f_end[:, 1])
    empty = ~(width > 0)
    total = np.zeros(n)
    ref = np.where(empty, 0.0, top)
    blocks = []
    slow = ~empty
    for m, max_width, max_drop in _FAST_TIERS:
        fast = slow & (width <= max_width) & (drop <= max_drop)
        if not fast.any():
            continue
        slow &= ~fast
        i = rows[fast]
        x01, w01 = _rule01(m)
        u = lo[i][:, None] + width[i][:, None] * x01
        f = fun(u, i, 0)
        val = np.exp(f - ref[i][:, None])
        val *= width[i][:, None] * w01
        total[i] = val.sum(axis=1)
        blocks.append((i, u, val, f))
    if slow.any():
        i = rows[slow]
        a, b, row, f_mode = _panels_slow(fun, i, lo[i], hi[i], f_end[i], d_end[i], cross[i])
        ref[i] = f_mode
        x01, w01 = _rule01(_SLOW_NODES)
        u = a[:, None] + (b - a)[:, None] * x01[None, :]
        f = fun(u, row, 0)
        val = ((b - a)[:, None] * w01[None, :]) * np.exp(f - ref[row][:, None])
        total += np.bincount(row, weights=val.sum(axis=1), minlength=n)
        blocks.append((row, u, val, f))
    with np.errstate(divide="ignore"):
        out = np.where(empty, -np.inf, ref + np.log(np.where(empty, 1.0, total)))
    if not weights:
        return out
    return out, [(r, u, v / total[r][:, None], f) for r, u, v, f in blocks]


# ---- the Gauss hypergeometric function ---------------------------------------------

_LOG_HALF = -0.6931471805599453


def _log1mexp(x):
    """log(1 - exp(x)) for x < 0, elementwise ([5]_)."""
    with np.errstate(divide="ignore"):
        return np.where(x > _LOG_HALF, np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def _log_beta_mean(a1, b1, m, log_z, regularised: bool):
    r"""log E_{p ~ Beta(a1, b1)}[g(p)], one value per row (1-d arrays, a1, b1, m > 0).

    :math:`g(p) = (1 + \kappa p)^{-m}` or, if ``regularised``,
    :math:`(1 - (1 + \kappa p)^{-m}) / p`, with :math:`\kappa = z / (1 - z)`. Integrated
    in the logit variable :math:`t = \log(p / (1 - p))`, where the log-integrand is
    concave when :math:`m \le a_1 + b_1` and tends to lines of slopes :math:`a_1` and
    :math:`-b_1` at both ends: :func:`log_integral` covers the range where those lines
    are not yet exact to e^-40, the two linear tails are added in closed form.
    """
    log_k = log_z - np.log1p(-np.exp(log_z))  # log kappa
    shift = 1.0 if regularised else 0.0

    def fun(t, rows, order=2):
        a_, b_, m_, lk = (v[rows][:, None] for v in (a1, b1, m, log_k))
        sp_neg = np.logaddexp(0.0, -t)  # -log p
        sp_t = t + sp_neg  # -log(1 - p)
        q = np.logaddexp(0.0, lk - sp_neg)  # log(1 + kappa p)
        if regularised:
            f = (a_ - 1) * t - (a_ + b_ - 1) * sp_t + _log1mexp(-m_ * q)
        else:
            f = a_ * t - (a_ + b_) * sp_t - m_ * q
        if order == 0:
            return f
        p = special.expit(t)
        s1 = special.expit(lk - sp_neg)
        q1 = s1 * (1 - p)
        q2 = s1 * (1 - s1) * (1 - p) ** 2 - s1 * p * (1 - p)
        c = a_ + b_ - shift
        d1 = (a_ - shift) - c * p
        d2 = -c * p * (1 - p)
        if regularised:
            with np.errstate(over="ignore"):
                rr = 1.0 / np.expm1(m_ * q)
            d1 = d1 + rr * m_ * q1
            d2 = d2 - rr * (1 + rr) * (m_ * q1) ** 2 + rr * m_ * q2
        else:
            d1 = d1 - m_ * q1
            d2 = d2 - m_ * q2
        return f, d1, d2

    n = a1.size
    rows = np.arange(n)
    t_lo = -40.0 - np.logaddexp(np.log1p(a1 + b1), np.log1p(m) + log_k)
    t_hi = 40.0 + np.log1p(a1 + b1 + m)
    main = log_integral(fun, t_lo, t_hi)
    f_end, d_end, _ = fun(np.stack([t_lo, t_hi], axis=1), rows)
    tails = f_end - np.log(
        np.abs(np.where(np.isfinite(d_end) & (d_end != 0), d_end, np.stack([a1, -b1], axis=1)))
    )
    log_mean = np.logaddexp(main, np.logaddexp(tails[:, 0], tails[:, 1]))
    return log_mean - special.betaln(a1, b1)


def _trust_scipy(a, b, c, z, value):
    """Where scipy's hyp2f1 is used as is.

    a, b > -1 and c > max(a, b, 0): the Maclaurin series and its Euler transform have
    terms of one sign (after the first), so there is no cancellation; and a size and a
    closeness to z = 1 within which Cephes' transformations were found accurate to
    1e-13 against mpmath (120 digits) on 3,000 random points, about half of them in
    this class (size up to 1000 at z <= 0.99, up to 30 at z <= 0.999; half that size
    is used); ``tests/test_hyp2f1.py`` re-checks on other points;
    and F not within 1e-6 of 1, where log F would inherit scipy's absolute error.
    """
    big = np.maximum(np.maximum(np.abs(a), np.abs(b)), np.abs(c))
    return (
        (a > -1)
        & (b > -1)
        & (c > 0)
        & (c > a)
        & (c > b)
        & np.isfinite(value)
        & (value > 0)
        & (((z <= 0.99) & (big <= 500.0)) | ((z <= 0.999) & (big <= 30.0)))
        # near F = 1 scipy's absolute error 1e-16 is a large relative error of log F
        & (np.abs(value - 1.0) > 1e-6)
    )


_SERIES_TERMS = 40


def _log_pfaff_series(a, b, c, z):
    r"""log F (F > 0 here) from Pfaff's transformation and the series in :math:`w`, where
    it converges at once; (log F, usable) per element (1-d arrays).

    .. math::
        {}_2F_1(a, b; c; z) = (1-z)^{-b} \sum_{n \ge 0}
            \frac{(b)_n (c-a)_n}{(c)_n\, n!} w^n, \qquad w = \frac{z}{z-1} \le 0

    (DLMF 15.8.1). For large :math:`c` the sum is also the large-parameter expansion of
    DLMF 15.12.2, whose error is of the order of the first omitted term; it is used where
    every ratio of consecutive terms up to :data:`_SERIES_TERMS` is at most 0.1 (error
    below 1e-40), which is the case of the BG/NBD with a huge ``b`` (no drop-out), where
    the quadrature needs many panels. The sum minus 1 is accumulated on its own, so that
    1 - (1-z)^b F keeps its relative accuracy.
    """
    w = z / (z - 1.0)
    n = np.arange(_SERIES_TERMS, dtype=float)[:, None]
    with np.errstate(all="ignore"):
        ratios = (b + n) * (c - a + n) / ((c + n) * (n + 1.0)) * w
    usable = (c > 0) & np.all(np.abs(ratios) <= 0.1, axis=0)
    sum_minus_1 = np.sum(np.cumprod(np.where(usable, ratios, 0.0), axis=0), axis=0)
    return -b * np.log1p(-z) + np.log1p(sum_minus_1), usable


def log_hyp2f1(a, b, c, z):
    r"""Logarithm of :math:`|{}_2F_1(a, b; c; z)|` and its sign, for real a, b, c and 0 <= z < 1.

    Returns ``(log_abs, sign)`` (arrays, broadcast shape). See the module docstring for
    the method: scipy where its series has positive terms and moderate size, otherwise
    Pfaff's transformation and the series in :math:`z/(z-1)` where :math:`c` is so large
    that it converges at once (:func:`_log_pfaff_series`), otherwise Euler's integral after
    Pfaff's transformation (regularised when :math:`-1 < b \le 0`), evaluated in log space
    by :func:`log_integral`; ``a`` and
    ``b`` are swapped when that makes the integral applicable. Where neither applies
    (no BTYD model gets there) scipy's value is returned, ``nan`` where it has none.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import special
    >>> log_f, sign = log_hyp2f1(1998.999, 999.0, 2498.0, 0.9999)
    >>> round(float(log_f / np.log(10)), 3), float(sign)   # 6.51e2241; scipy gives inf
    (2241.814, 1.0)
    """
    a, b, c, z = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (a, b, c, z)))
    shape = a.shape
    a, b, c, z = (v.ravel() for v in (a, b, c, z))
    with np.errstate(all="ignore"):
        value = special.hyp2f1(a, b, c, z)
        log_abs = np.log(np.abs(value))
    sign = np.sign(value)
    todo = ~_trust_scipy(a, b, c, z, value) & (z > 0)
    # the integral needs -1 < B < C and A < C; swap a and b where that helps
    ok_ab = (b > -1) & (b < c) & (a < c)
    ok_ba = (a > -1) & (a < c) & (b < c)
    use_swap = ~ok_ab & ok_ba
    big_a = np.where(use_swap, b, a)
    big_b = np.where(use_swap, a, b)
    todo &= ok_ab | ok_ba
    zero_b = todo & (big_b == 0)
    log_abs[zero_b], sign[zero_b] = 0.0, 1.0
    todo &= big_b != 0
    # large c: the transformed series converges in a few terms (no quadrature)
    k = np.flatnonzero(todo)
    if k.size:
        series, usable = _log_pfaff_series(big_a[k], big_b[k], c[k], z[k])
        k = k[usable]
        log_abs[k], sign[k] = series[usable], 1.0
        todo[k] = False
    log_1mz = np.log1p(-z)
    # regularised form first (exact 1 - (1-z)^B F even when it is tiny, e.g. B near 0)
    k = np.flatnonzero(todo)
    redo = np.zeros(a.size, dtype=bool)
    if k.size:
        aa, bb, cc = big_a[k], big_b[k], c[k]
        log_i = _log_beta_mean(bb + 1, cc - bb, cc - aa, np.log(z[k]), True)
        # F = (1-z)^-B (1 - y), y = (B/C) I
        log_y = np.log(np.abs(bb / cc)) + log_i
        y_pos = bb / cc > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            # y > 0: log(1 - y); y < 0: log(1 + |y|)
            inner = np.where(y_pos, _log1mexp(np.minimum(log_y, -1e-300)), np.logaddexp(0.0, log_y))
        sgn = np.ones(k.size)
        over = y_pos & (log_y > 0)  # y > 1: only when C < 0 < B or B < 0 < ... (sign flip)
        if over.any():
            inner[over] = log_y[over] + _log1mexp(-log_y[over])
            sgn[over] = -1.0
        log_abs[k] = -bb * log_1mz[k] + inner
        sign[k] = sgn
        # where 1 - y is small, y carries no digits of F: use the positive integral
        redo[k] = (bb > 0) & (cc > 0) & (log_y > -0.6931471805599453)
    if redo.any():
        k = np.flatnonzero(redo)
        aa, bb, cc = big_a[k], big_b[k], c[k]
        log_abs[k] = -bb * log_1mz[k] + _log_beta_mean(bb, cc - bb, cc - aa, np.log(z[k]), False)
        sign[k] = 1.0
    return log_abs.reshape(shape), sign.reshape(shape)
