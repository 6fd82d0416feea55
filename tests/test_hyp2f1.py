"""log 2F1 and the quadrature behind it, against mpmath; BG/NBD at the extremes."""

from __future__ import annotations

import itertools
import warnings

import mpmath as mp
import numpy as np
import pytest
from scipy import special

from clvmodels.models import bgnbd
from clvmodels.models._hyp2f1 import log_hyp2f1, log_integral

# mpmath's hyp2f1 itself loses digits at 40-50 digits for some large-parameter inputs
# (e.g. (364.7, 9.17, 632.3, 0.88)); 120 digits are safe on these grids.
DPS = 120


def _mp_log_hyp2f1(a, b, c, z):
    with mp.workdps(DPS):
        v = mp.hyp2f1(mp.mpf(a), mp.mpf(b), mp.mpf(c), mp.mpf(z), maxterms=10**6)
        return float(mp.log(abs(v))), float(mp.sign(v))


def _bgnbd_grid(n, seed):
    """The parameters of BG/NBD eq. (10) after Euler: (a+b-1-r, a-1; a+b+x-1; z)."""
    rng = np.random.default_rng(seed)
    a, b, r = (10 ** rng.uniform(-3, 3, n) for _ in range(3))
    x = np.where(rng.random(n) < 0.3, 0, rng.integers(0, 501, n)).astype(float)
    z = np.where(rng.random(n) < 0.5, 1 - 10 ** rng.uniform(-10, 0, n), rng.random(n))
    return a + b - 1 - r, a - 1, a + b + x - 1, z


def _general_grid(n, seed):
    """Supported domain at large: b in (-1, c), a < c (a may be very negative)."""
    rng = np.random.default_rng(seed)
    b = np.where(rng.random(n) < 0.3, rng.uniform(-0.99, 0, n), 10 ** rng.uniform(-3, 3, n))
    a = np.where(rng.random(n) < 0.3, -(10 ** rng.uniform(-3, 3, n)), 10 ** rng.uniform(-3, 3, n))
    c = np.maximum(a, b) + 10 ** rng.uniform(-2, 3, n)
    z = np.where(rng.random(n) < 0.5, 1 - 10 ** rng.uniform(-10, 0, n), rng.random(n))
    return a, b, c, z


def _huge_b_grid(n, seed, z_max=1.0):
    """BG/NBD with b from 1e4 to 1e8 (no drop-out): where the large-c series applies."""
    rng = np.random.default_rng(seed)
    a, r = (10 ** rng.uniform(-3, 3, n) for _ in range(2))
    b = 10 ** rng.uniform(4, 8, n)
    x = np.where(rng.random(n) < 0.3, 0, rng.integers(0, 501, n)).astype(float)
    z = np.where(rng.random(n) < 0.5, 1 - 10 ** rng.uniform(-6, 0, n), rng.random(n))
    return a + b - 1 - r, a - 1, a + b + x - 1, np.minimum(z, z_max)


@pytest.mark.parametrize(
    "grid",
    # mpmath takes minutes at c > 1e4 with z near 1: the huge-b grid stops at z = 0.5
    [_bgnbd_grid(150, 0), _general_grid(120, 1), _huge_b_grid(100, 2, z_max=0.5)],
    ids=["bgnbd", "general", "huge-b"],
)
def test_log_hyp2f1_matches_mpmath(grid):
    a, b, c, z = grid
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_f, sign = log_hyp2f1(a, b, c, z)
    ref = np.array([_mp_log_hyp2f1(*v) for v in zip(a, b, c, z, strict=True)])
    np.testing.assert_array_equal(sign, ref[:, 1])
    # relative error of the log value ...
    rel_log = np.abs(log_f - ref[:, 0]) / np.maximum(1.0, np.abs(ref[:, 0]))
    assert rel_log.max() < 1e-10
    # ... and of F itself where it is representable
    small = np.abs(ref[:, 0]) < 700
    rel_f = np.abs(np.expm1(log_f[small] - ref[small, 0]))
    assert rel_f.max() < 1e-9


def test_large_c_series_agrees_with_the_quadrature(monkeypatch):
    """Up to z = 1 - 1e-6, where mpmath is too slow: the series (taken for most of these
    points) against the quadrature path, itself checked against mpmath above."""
    from clvmodels.models import _hyp2f1

    a, b, c, z = _huge_b_grid(200, 3)
    _, usable = _hyp2f1._log_pfaff_series(a, b, c, z)
    assert usable.mean() > 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        series, _ = log_hyp2f1(a, b, c, z)
        monkeypatch.setattr(
            _hyp2f1, "_log_pfaff_series", lambda a, *_: (a, np.zeros(a.size, dtype=bool))
        )
        quadrature, _ = log_hyp2f1(a, b, c, z)
    rel = np.abs(series - quadrature) / np.maximum(1.0, np.abs(quadrature))
    assert rel.max() < 1e-10


def test_scipy_failures_are_fixed():
    # overflow: the value is 6.51e2241
    with np.errstate(all="ignore"):
        assert np.isinf(special.hyp2f1(1998.999, 999.0, 2498.0, 0.9999))
    log_f, sign = log_hyp2f1(1998.999, 999.0, 2498.0, 0.9999)
    assert sign == 1 and log_f / np.log(10) == pytest.approx(2241.8136686888, abs=1e-9)
    # cancellation: scipy returns -0.173 for a value of 2.65e-22
    assert special.hyp2f1(-137.3, 145.2, 155.1, 0.33) < 0
    log_f, sign = log_hyp2f1(-137.3, 145.2, 155.1, 0.33)
    assert sign == 1
    assert log_f == pytest.approx(_mp_log_hyp2f1(-137.3, 145.2, 155.1, 0.33)[0], rel=1e-12)


@pytest.mark.parametrize(
    "args",
    [
        (1.2, -0.7, -0.4, 0.6),  # c < 0: scipy fallback, sign +
        (0.5, -0.9, -0.3, 0.95),  # c < 0 with a sign change of F
        (2.0, 0.0, 3.0, 0.5),  # b = 0: F = 1
        (3.0, 2.5, 7.0, 0.0),  # z = 0
        (1e-7, 1e-7, 1000.0, 1e-3),  # F - 1 ~ 1e-20 (scipy: exactly 1); absolute 1e-22
    ],
)
def test_log_hyp2f1_special_cases(args):
    log_f, sign = log_hyp2f1(*args)
    ref_log, ref_sign = _mp_log_hyp2f1(*args)
    assert sign == ref_sign
    assert log_f == pytest.approx(ref_log, rel=1e-9, abs=1e-21)


def test_log_hyp2f1_broadcasts():
    log_f, sign = log_hyp2f1(np.array([[1.0], [2.0]]), 0.5, 3.0, np.array([0.1, 0.5, 0.9]))
    assert log_f.shape == sign.shape == (2, 3)
    np.testing.assert_allclose(
        np.exp(log_f), special.hyp2f1([[1.0], [2.0]], 0.5, 3.0, [0.1, 0.5, 0.9]), rtol=1e-13
    )


def test_log_integral_of_a_gaussian_and_a_plateau():
    # exp(-(u - m)^2 / 2) on a wide range: the mode, level panels and truncation
    m = np.array([0.0, 3.0, -40.0])

    def gauss(u, rows, order=2):
        d = u - m[rows][:, None]
        return (-0.5 * d * d) if order == 0 else (-0.5 * d * d, -d, -np.ones_like(d))

    out = log_integral(gauss, np.full(3, -50.0), np.full(3, 50.0))
    np.testing.assert_allclose(out, 0.5 * np.log(2 * np.pi), rtol=1e-13)
    # plateau then a Gumbel drop: -e^u on [-30, 5] (integral = E1-type, mpmath reference)

    def gumbel(u, rows, order=2):
        e = np.exp(u)
        return -e if order == 0 else (-e, -e, -e)

    out = log_integral(gumbel, np.array([-30.0]), np.array([5.0]))
    ref = mp.log(mp.quad(lambda u: mp.exp(-mp.exp(u)), [-30, -5, 0, 2, 5]))
    assert out[0] == pytest.approx(float(ref), rel=1e-12)
    # empty range
    assert log_integral(gumbel, np.array([1.0]), np.array([1.0]))[0] == -np.inf


# ---- BG/NBD predictions, which use log_hyp2f1 ---------------------------------------

EXTREME = [1e-3, 1.0, 1e3]


def _bgnbd_data():
    x = np.array([0, 1, 10, 500], dtype=float)
    T = np.array([1.0, 39.0, 1e4])
    t = np.array([1e-3, 1.0, 39.0, 1e4])
    xx, TT, ff, tt = (v.ravel() for v in np.meshgrid(x, T, [0.0, 0.5, 1.0], t, indexing="ij"))
    return xx, np.where(xx > 0, ff * TT, 0.0), TT, tt


@pytest.mark.parametrize("a", [1e-3, 0.5, 1.0, 2.0, 1e3])
def test_bgnbd_predictions_at_the_extremes(a):
    """r, alpha, b in {1e-3, 1, 1e3}, a also at 1 (the removable singularity of eq. (10)),
    x up to 500, T and t up to 1e4: finite, non-negative, no RuntimeWarning."""
    x, t_x, T, t = _bgnbd_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for r, alpha, b in itertools.product(EXTREME, repeat=3):
            e = bgnbd.expected_purchases(r, alpha, a, b, t, x, t_x, T)
            e_new = bgnbd.expected_purchases_new(r, alpha, a, b, np.array([1e-3, 1.0, 1e4]))
            assert np.all(np.isfinite(e)) and np.all(e >= 0)
            assert np.all(np.isfinite(e_new)) and np.all(e_new >= 0)


def _mp_expected_if_alive(r, alpha, a, b, t, x, T):
    """(a+b+x-1)/(a-1) [1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)] in mpmath."""
    with mp.workdps(DPS):
        r, alpha, a, b, t, x, T = (mp.mpf(float(v)) for v in (r, alpha, a, b, t, x, T))
        z = t / (alpha + T + t)
        g = (1 - z) ** (a - 1) * mp.hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
        return float((a + b + x - 1) / (a - 1) * (1 - g))


@pytest.mark.parametrize(
    "params",
    [
        (1e3, 1e-3, 1.0 + 1e-7, 1e3),  # a at the step off a = 1
        (1e-3, 1e3, 0.5, 1e-3),
        (1.0, 1e-3, 1e3, 1.0),
        (0.243, 4.414, 0.793, 2.426),
        (1e3, 1.0, 1e-3, 1e3),
    ],
)
def test_bgnbd_conditional_expectation_matches_mpmath(params):
    r, alpha, a, b = params
    for x, T, t in [(0, 1.0, 1e-3), (0, 39.0, 39.0), (10, 39.0, 1e4), (500, 1e4, 1e4)]:
        ours = bgnbd._expected_if_alive(r, alpha, a, b, t, x, T)
        assert float(ours) == pytest.approx(
            _mp_expected_if_alive(r, alpha, a, b, t, x, T), rel=1e-8
        )


def test_bgnbd_still_matches_lifetimes_on_cdnow(cdnow_rfm, lifetimes):
    bg = bgnbd.BGNBD.from_params(r=0.2425945, alpha=4.4136019, a=0.7929199, b=2.4258881)
    ref = lifetimes.BetaGeoFitter()
    ref.params_ = bg.params_.copy()
    f, rec, T = cdnow_rfm["frequency"], cdnow_rfm["recency"], cdnow_rfm["T"]
    for t in (1.0, 39.0, 78.0):
        np.testing.assert_allclose(
            bg.expected_purchases(t, cdnow_rfm),
            ref.conditional_expected_number_of_purchases_up_to_time(t, f, rec, T),
            rtol=1e-6,
        )
    times = np.array([1.0, 39.0, 78.0])
    np.testing.assert_allclose(
        bg.expected_purchases_new(times),
        ref.expected_number_of_purchases_up_to_time(times),
        rtol=1e-6,
    )


def test_log_integral_of_a_slow_power_law_on_a_huge_range():
    # (1 + u)^-e on [0, W]: within one drop level over a range of width 1e12, where
    # panels of width 2 would number 5e11 (the old rule allocated them and failed);
    # the graded mesh needs about 2 log2(W) panels per interval and keeps 1e-13
    e = np.array([0.05, 0.3, 0.9])
    width = np.array([1e12, 1e8, 1e5])

    def power(u, rows, order=2):
        ee = e[rows][:, None]
        f = -ee * np.log1p(u)
        return f if order == 0 else (f, -ee / (1 + u), ee / (1 + u) ** 2)

    out, blocks = log_integral(power, np.zeros(3), width, weights=True)
    ref = np.log(np.expm1((1 - e) * np.log1p(width)) / (1 - e))
    np.testing.assert_allclose(out, ref, rtol=1e-13)
    assert sum(u.shape[0] for _, u, _, _ in blocks) < 3 * 13 * 100
