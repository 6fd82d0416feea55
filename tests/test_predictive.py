"""Conditional distribution of future purchases, P(alive ahead) and prediction intervals.

Reference values: lifetimes' Pareto/NBD conditional pmf (Fader & Hardie note 028,
eq. (16)); identities that hold for every model (the pmf sums to 1, its mean is
``expected_purchases``, P(n = 0) is P(no purchase)); quadrature of P(alive ahead); and
holdouts simulated event by event (tests/_events.py), for the coverage of the intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import _events
import clvmodels as cm
from clvmodels.models import _predictive, bgbb, bgnbd

PARAMS = {
    "BGNBD": dict(r=0.243, alpha=4.414, a=0.793, b=2.426),
    "MBGNBD": dict(r=0.525, alpha=6.183, a=0.891, b=1.614),
    "ParetoNBD": dict(r=0.553, alpha=10.578, s=0.606, beta=11.669),
    "BGBB": dict(alpha=1.204, beta=0.750, gamma=0.657, delta=2.783),
}
CONTINUOUS = ["BGNBD", "MBGNBD", "ParetoNBD"]


@pytest.fixture(scope="module")
def histories():
    """Histories from new to very loyal, short and long ages (weeks)."""
    return pd.DataFrame(
        {
            "frequency": [0, 0, 1, 2, 7, 20, 60, 500],
            "recency": [0.0, 0.0, 5.0, 30.0, 35.0, 38.0, 70.0, 9990.0],
            "T": [0.0, 39.0, 39.0, 39.0, 39.0, 39.0, 80.0, 1e4],
        }
    )


def _lifetimes_compatible(lifetimes, monkeypatch):
    """lifetimes' conditional pmf passes lists of arrays of unequal shapes to scipy's
    logsumexp, which recent scipy no longer broadcasts; broadcast them first (the
    reference formula itself is untouched)."""
    from lifetimes.fitters import pareto_nbd_fitter

    def logsumexp(a, axis=None, b=None, **kwargs):
        a = np.asarray(np.broadcast_arrays(*a))
        if b is not None:
            b = np.asarray([np.broadcast_to(v, a.shape[1:]) for v in b])
        return special.logsumexp(a, axis=axis, b=b, **kwargs)

    monkeypatch.setattr(pareto_nbd_fitter, "logsumexp", logsumexp)


def test_pareto_nbd_conditional_pmf_matches_lifetimes(cdnow_rfm, lifetimes, monkeypatch):
    _lifetimes_compatible(lifetimes, monkeypatch)
    ours = cm.ParetoNBD.from_params(**PARAMS["ParetoNBD"])
    ref = lifetimes.ParetoNBDFitter()
    ref.params_ = ours.params_.copy()
    rows = cdnow_rfm.sort_values("frequency").iloc[::47]  # 50 customers, x from 0 to 29
    f, rec, T = (rows[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    for t in (4.0, 39.0):
        ns = np.arange(8)
        got = ours.probability_of_purchases(ns, t, rows).to_numpy()
        want = np.column_stack(
            [ref.conditional_probability_of_n_purchases_up_to_time(int(n), t, f, rec, T)
             for n in ns]
        )
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name", CONTINUOUS)
def test_conditional_pmf_sums_to_one_with_the_expected_mean(name, histories):
    model = getattr(cm, name).from_params(**PARAMS[name])
    n = np.arange(6000)
    for t in (1.0, 39.0):
        pmf = model.probability_of_purchases(n, t, histories).to_numpy()
        assert np.all(np.isfinite(pmf)) and np.all(pmf >= 0)
        np.testing.assert_allclose(pmf.sum(axis=1), 1.0, rtol=0, atol=1e-9)
        np.testing.assert_allclose(
            pmf @ n, model.expected_purchases(t, histories), rtol=1e-8, atol=1e-12
        )
        np.testing.assert_allclose(
            pmf[:, 0], model.probability_of_no_purchase(t, histories), rtol=1e-12
        )


def test_bgbb_conditional_pmf_identities():
    model = cm.BGBB.from_params(**PARAMS["BGBB"])
    don = cm.datasets.donations()
    for t in (1, 5, 30):
        pmf = model.probability_of_purchases(np.arange(t + 1), t, don).to_numpy()
        np.testing.assert_allclose(pmf.sum(axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(pmf @ np.arange(t + 1), model.expected_purchases(t, don),
                                   rtol=1e-10)
    # alive ahead: the generic route equals eq. (11) of Fader, Hardie & Shang (2010)
    x, t_x, n = (don[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    for ahead in (1, 4):
        np.testing.assert_allclose(
            model.probability_alive(don, ahead=ahead),
            bgbb.probability_alive(*model.params_, x, t_x, n, ahead),
            rtol=1e-12,
        )
    with pytest.raises(ValueError, match="whole numbers"):
        model.probability_alive(don, ahead=1.5)


def test_new_customer_pmf_is_unchanged_without_rfm():
    model = cm.BGNBD.from_params(**PARAMS["BGNBD"])
    # Fader, Hardie & Lee (2005) eq. (8) at t = 39 weeks, n = 0: 1 - share of triers
    direct = bgnbd.probability_of_purchases(*model.params_, 0.0, 39.0)
    assert model.probability_of_purchases(0, 39.0) == pytest.approx(float(direct), rel=1e-15)


@pytest.mark.parametrize("name", CONTINUOUS)
def test_pmf_table_matches_the_closed_form(name):
    """The tables behind the intervals agree with the closed-form pmf: to 1e-13 by the
    BG/NBD recurrences, to 1e-8 by the Pareto/NBD's quadrature over the lifetime."""
    p = list(PARAMS[name].values())
    x = np.array([0.0, 3.0, 40.0, 300.0])
    T = np.array([10.0, 39.0, 60.0, 2000.0])
    cond = getattr(cm, name).formulas.conditional
    q = cond.updated(*p, x, T)
    for t in (0.5, 39.0, 500.0):
        table = cond.pmf_table(*q, t, 400)
        n = np.arange(401.0)
        closed = cond.pmf(*[v[:, None] for v in q], n[None, :], t)
        atol = 1e-8 if name == "ParetoNBD" else 1e-13
        np.testing.assert_allclose(table, closed, rtol=0, atol=atol)


def test_bgnbd_alive_ahead_by_quadrature(histories):
    """P(alive at T+t) = P(alive at T) E[exp(-lambda p t)] over the posterior, checked by
    integrating over p ~ Beta(a, b+x) with lambda integrated out in closed form."""
    model = cm.BGNBD.from_params(**PARAMS["BGNBD"])
    r, alpha, a, b = PARAMS["BGNBD"].values()
    t = 26.0
    got = model.probability_alive(histories, ahead=t).to_numpy()
    alive = model.probability_alive(histories).to_numpy()
    for i, (x, T) in enumerate(zip(histories["frequency"], histories["T"], strict=True)):
        dens = stats.beta(a, b + x).pdf
        val, _ = integrate.quad(
            lambda p, x=x, T=T, dens=dens: dens(p) * (1 + p * t / (alpha + T)) ** -(r + x),
            0,
            1,
            epsabs=1e-13, epsrel=1e-12, limit=200,
        )
        assert got[i] == pytest.approx(alive[i] * val, rel=1e-8)


def test_alive_ahead_for_every_model(histories):
    for name in CONTINUOUS:
        model = getattr(cm, name).from_params(**PARAMS[name])
        now = model.probability_alive(histories).to_numpy()
        later = model.probability_alive(histories, ahead=10.0).to_numpy()
        much_later = model.probability_alive(histories, ahead=1000.0).to_numpy()
        assert np.all(much_later < later) and np.all(later < now)
        np.testing.assert_allclose(model.probability_alive(histories, ahead=0.0), now)
    pn = cm.ParetoNBD.from_params(**PARAMS["ParetoNBD"])
    s, beta = PARAMS["ParetoNBD"]["s"], PARAMS["ParetoNBD"]["beta"]
    np.testing.assert_allclose(
        pn.probability_alive(histories, ahead=10.0),
        pn.probability_alive(histories)
        * ((beta + histories["T"]) / (beta + histories["T"] + 10)) ** s,
        rtol=1e-12,
    )


@pytest.mark.parametrize("name", CONTINUOUS + ["BGBB"])
def test_future_draws_follow_the_conditional_pmf(name):
    """simulate_future (the posterior predictive's sampler) against the pmf: chi-square."""
    model = getattr(cm, name).from_params(**PARAMS[name])
    hist = pd.DataFrame({"frequency": [3] * 20000, "recency": [4] * 20000, "T": [6] * 20000})
    _assert_draws_follow_the_pmf(model, hist, 5, 8)


def _assert_draws_follow_the_pmf(model, hist, t, cap):
    """Chi-square of 20,000 draws of one history's future against its pmf (counts >= cap
    pooled), at the 0.999 quantile."""
    y = model.simulate_future(t, hist, random_state=1).to_numpy()
    pmf = model.probability_of_purchases(np.arange(200), t, hist.iloc[:1]).to_numpy()[0]
    observed = np.bincount(np.minimum(y, cap), minlength=cap + 1)
    expected = np.r_[pmf[:cap], pmf[cap:].sum()] * y.size
    keep = expected > 5
    chi2 = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    assert chi2 < stats.chi2(keep.sum() - 1).ppf(0.999)


EXTREME_PARAMS = {
    "BGNBD": dict(r=2.0, alpha=0.5, a=0.3, b=40.0),
    "MBGNBD": dict(r=2.0, alpha=0.5, a=0.3, b=40.0),
    "ParetoNBD": dict(r=2.0, alpha=0.5, s=0.05, beta=1e4),
}


@pytest.mark.parametrize("name", CONTINUOUS)
def test_conditional_pmf_is_stable_at_the_extremes(name):
    """2,000 past purchases over an age of 10,000, a horizon of 10,000: no overflow, no
    NaN, mass 1 and the right mean; P(alive ahead) finite and in [0, 1]."""
    model = getattr(cm, name).from_params(**EXTREME_PARAMS[name])
    hist = pd.DataFrame({"frequency": [2000, 0], "recency": [9999.0, 0.0], "T": [1e4, 1e4]})
    _, iv = _check_extremes(model, hist, 1e4, 12000, atol=1e-9, rtol=1e-8)
    assert (iv["low"] <= iv["high"]).all() and iv["high"].iloc[0] > 1000


def _check_extremes(model, hist, t, n_max, *, atol, rtol):
    """Finite pmf of mass 1 with the right mean, P(alive ahead) in [0, 1]; the interval."""
    n = np.arange(n_max)
    pmf = model.probability_of_purchases(n, t, hist).to_numpy()
    assert np.all(np.isfinite(pmf))
    np.testing.assert_allclose(pmf.sum(axis=1), 1.0, atol=atol)
    np.testing.assert_allclose(pmf @ n, model.expected_purchases(t, hist), rtol=rtol)
    ahead = model.probability_alive(hist, ahead=t).to_numpy()
    assert np.all(np.isfinite(ahead) & (ahead >= 0) & (ahead <= 1))
    return pmf, model.prediction_interval(t, hist, level=0.9)


def test_prediction_interval_contract(histories):
    model = cm.BGNBD.from_params(**PARAMS["BGNBD"])
    iv = model.prediction_interval(39.0, histories, level=0.9)
    assert list(iv.columns) == ["low", "median", "high", "coverage"]
    assert (iv.index == histories.index).all()
    assert np.all((iv["low"] <= iv["median"]) & (iv["median"] <= iv["high"]))
    # the quantiles of the (here parameter-free) conditional pmf
    pmf = model.probability_of_purchases(np.arange(3000), 39.0, histories).to_numpy()
    cdf = np.cumsum(pmf, axis=1)
    for col, p in (("low", 0.05), ("median", 0.5), ("high", 0.95)):
        np.testing.assert_array_equal(iv[col], (cdf < p - 1e-12).sum(axis=1))
    # the achieved level: the pmf's mass on [low, high], at least the level
    rows = np.arange(len(iv))
    mass = cdf[rows, iv["high"]] - np.where(iv["low"] > 0, cdf[rows, iv["low"] - 1], 0.0)
    np.testing.assert_allclose(iv["coverage"], mass, rtol=1e-10)
    assert (iv["coverage"] >= 0.9 - 1e-12).all() and iv["coverage"].max() > 0.95
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="level"):
            model.prediction_interval(39.0, histories, level=bad)


COVERAGE_T = np.arange(1, 79) / 1.0  # ages of 1..78 weeks


@pytest.mark.parametrize(
    "name", ["BGNBD", "MBGNBD", pytest.param("ParetoNBD", marks=pytest.mark.slow), "BGBB"]
)
def test_intervals_cover_simulated_holdouts(name):
    """Fit on a simulated calibration period, predict the holdout.

    Counts are discrete, so an interval of level l covers more than l; what it must do is
    cover as often as the model says it does. The model's own coverage (the predictive
    probability of [low, high], averaged over customers) must be >= l, and the observed
    share of holdouts inside must agree with it within 4 binomial standard errors (4
    rather than 2: 8 model-level pairs are tested; the fitted parameters also differ from
    the truth).
    """
    n, t = 4000, 39.0
    T = np.resize(COVERAGE_T, n)
    if name == "BGBB":
        T, t = np.full(n, 6), 5
    data = _events.simulate(name, PARAMS[name], n, T, t, seed=7)
    model = getattr(cm, name)().fit(data)
    cond = model.formulas.conditional
    x, t_x, TT = (data[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    draws = model.parameter_draws(100, 0)
    for level in (0.8, 0.9):
        iv = model.prediction_interval(t, data, level=level)
        inside = (data["holdout"] >= iv["low"]) & (data["holdout"] <= iv["high"])
        said = _predictive.predictive_coverage(
            cond, model.formulas.probability_alive, [draws[:, [j]] for j in range(4)],
            np.zeros(n, dtype=int), x, t_x, TT, t, iv["low"].to_numpy(), iv["high"].to_numpy(),
        ).mean()
        se = np.sqrt(said * (1 - said) / n)
        assert said >= level
        assert abs(inside.mean() - said) < 4 * se, (level, inside.mean(), said)


def _pit_and_coverage(name, params, n, T, t, seed):
    data = _events.simulate(name, params, n, T, t, seed=seed)
    model = getattr(cm, name)().fit(data)
    pit = model.randomized_pit(t, data, data["holdout"]).to_numpy()
    ivs = {level: model.prediction_interval(t, data, level=level) for level in (0.8, 0.9)}
    return data, pit, ivs


def _assert_uniform(pit):
    """Chi-square over ten bins (p > 0.001) and the central shares of levels 0.8, 0.9
    within 4 binomial standard errors of the level."""
    assert np.all((pit >= 0) & (pit <= 1))
    counts = np.bincount(np.minimum((pit * 10).astype(int), 9), minlength=10)
    assert stats.chisquare(counts).pvalue > 1e-3, counts
    for level in (0.8, 0.9):
        share = ((pit > (1 - level) / 2) & (pit < (1 + level) / 2)).mean()
        assert abs(share - level) < 4 * np.sqrt(level * (1 - level) / pit.size), (level, share)


@pytest.mark.parametrize("name", ["BGNBD", "BGBB"])
def test_randomized_pit_is_uniform_where_integer_intervals_over_cover(name):
    """CDNOW-like holdouts: most intervals are [0, 0] or [0, 1] and cover ~93% at 80%;
    the randomised PIT of Czado, Gneiting & Held (2009) is uniform all the same (an
    exact check of calibration for counts), and the column ``coverage`` says how much
    each integer interval holds."""
    n = 4000
    T, t = (np.full(n, 6), 5) if name == "BGBB" else (np.resize(COVERAGE_T, n), 39.0)
    data, pit, ivs = _pit_and_coverage(name, PARAMS[name], n, T, t, seed=11)
    _assert_uniform(pit)
    assert ivs[0.8]["coverage"].mean() > 0.88  # the discreteness this answers
    for iv in ivs.values():
        inside = ((data["holdout"] >= iv["low"]) & (data["holdout"] <= iv["high"])).mean()
        said = iv["coverage"].mean()
        assert abs(inside - said) < 4 * np.sqrt(said * (1 - said) / n)


@pytest.mark.slow
def test_integer_intervals_cover_near_their_level_when_counts_spread():
    """Frequent buyers who seldom drop out (a 52-week holdout of ~50 purchases each): the
    integer intervals cover within 3 points of 80% and 90% (the tolerance: about 2.5
    binomial standard errors at n = 3000 plus the ~1 point that integer ends still add),
    as their ``coverage`` column says, and the PIT is uniform."""
    n, t = 3000, 52.0
    params = dict(r=4.0, alpha=4.0, a=1.0, b=1000.0)
    data, pit, ivs = _pit_and_coverage("BGNBD", params, n, np.resize(np.arange(26.0, 53.0), n),
                                       t, seed=4)
    _assert_uniform(pit)
    for level, iv in ivs.items():
        inside = ((data["holdout"] >= iv["low"]) & (data["holdout"] <= iv["high"])).mean()
        assert abs(inside - level) < 0.03, (level, inside)
        assert level <= iv["coverage"].mean() < level + 0.03


def test_randomized_pit_contract(histories):
    model = cm.BGNBD.from_params(**PARAMS["BGNBD"])
    y = np.array([0, 0, 1, 2, 5, 9, 30, 400])
    u = model.randomized_pit(39.0, histories, y, random_state=4)
    assert (u.index == histories.index).all() and u.name == "pit"
    # between F(y - 1) and F(y) of the conditional pmf (no parameter draws here)
    cdf = np.cumsum(model.probability_of_purchases(np.arange(3000), 39.0,
                                                   histories).to_numpy(), axis=1)
    rows = np.arange(len(y))
    below = np.where(y > 0, cdf[rows, np.maximum(y - 1, 0)], 0.0)
    assert np.all((u >= below - 1e-9) & (u <= cdf[rows, y] + 1e-9))
    for bad in ([0, 1], [0.5] * 8, [-1] * 8):
        with pytest.raises(ValueError, match="observed"):
            model.randomized_pit(39.0, histories, bad)


# ---- MBG/CNBD-k, BG/CNBD-k and GGompertz/NBD: the same identities -----------------------
LATER_PARAMS = {
    "MBGCNBD": dict(k=3, r=1.2, alpha=2.0, a=0.9, b=4.0),
    "BGCNBD": dict(k=2, r=0.9, alpha=3.0, a=0.8, b=2.5),
    "GGomNBD": dict(r=0.55, alpha=10.0, b=0.05, s=0.6, beta=2.0),
}
LATER = list(LATER_PARAMS)


@pytest.mark.parametrize("cls, ref", [(cm.MBGCNBD, cm.MBGNBD), (cm.BGCNBD, cm.BGNBD)],
                         ids=["MBGCNBD", "BGCNBD"])
def test_cnbd_at_k1_is_the_mbgnbd_and_bgnbd_future(cls, ref, histories):
    """k = 1: the phase mixture collapses to the (M)BG/NBD's conjugate update."""
    p = PARAMS["MBGNBD"]
    ours, theirs = cls.from_params(k=1, **p), ref.from_params(**p)
    n = np.arange(400)
    for t in (1.0, 39.0):
        np.testing.assert_allclose(ours.probability_of_purchases(n, t, histories),
                                   theirs.probability_of_purchases(n, t, histories),
                                   rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ours.probability_alive(histories, ahead=t),
                                   theirs.probability_alive(histories, ahead=t),
                                   rtol=1e-12, atol=1e-15)
    pd.testing.assert_frame_equal(ours.prediction_interval(39.0, histories, 0.9),
                                  theirs.prediction_interval(39.0, histories, 0.9),
                                  check_exact=False, rtol=1e-10)


@pytest.mark.parametrize("name", LATER)
def test_later_models_conditional_identities(name, histories):
    """Mass 1, mean = expected_purchases (computed by other formulas: the CNBD-k's phase
    sums, the GGompertz/NBD's survival integral), P(0) = P(no purchase), P(alive) falling
    with the horizon. CNBD-k: P(alive ahead) at least P(no purchase) - P(dead at T) (drop-out
    comes only right after a purchase, so a customer alive at T who buys nothing is still
    alive); GGompertz/NBD: P(alive at T) (D(T) / D(T+t))^s ([1]_ of the module, eq. (2)
    at the updated eta)."""
    model = getattr(cm, name).from_params(**LATER_PARAMS[name])
    n = np.arange(500)
    dead = 1 - model.probability_alive(histories).to_numpy()
    for t in (1.0, 39.0):
        pmf = model.probability_of_purchases(n, t, histories).to_numpy()
        assert np.all(np.isfinite(pmf)) and np.all(pmf >= 0)
        np.testing.assert_allclose(pmf.sum(axis=1), 1.0, rtol=0, atol=1e-9)
        np.testing.assert_allclose(pmf @ n, model.expected_purchases(t, histories),
                                   rtol=1e-8, atol=1e-12)
        none = model.probability_of_no_purchase(t, histories).to_numpy()
        np.testing.assert_allclose(pmf[:, 0], none, rtol=1e-12)
        later = model.probability_alive(histories, ahead=t).to_numpy()
        assert np.all(later <= 1 - dead + 1e-12)
        if name == "GGomNBD":
            p = LATER_PARAMS[name]
            T = histories["T"].to_numpy()
            clock = p["beta"] + np.expm1(p["b"] * T)
            np.testing.assert_allclose(
                later, (1 - dead) * (clock / (clock + np.exp(p["b"] * T) * np.expm1(p["b"] * t)))
                ** p["s"], rtol=1e-12)
        else:
            assert np.all(later >= none - dead - 1e-12)
    assert np.all(model.probability_alive(histories, ahead=500.0).to_numpy()
                  < model.probability_alive(histories, ahead=10.0).to_numpy() + 1e-15)


def test_cnbd_alive_ahead_by_the_count_of_purchases_reached():
    """P(alive at T+t | alive at T) = E[(1 - p)^M], M = floor((N + j)/k) purchases reached,
    N ~ NB(r + kx + j, (alpha+T)/(alpha+T+t)): summed here over M with scipy's negative
    binomial, against the package's sum over drop-out events."""
    from scipy.special import betaln

    k, r, alpha, a, b = LATER_PARAMS["MBGCNBD"].values()
    hist = pd.DataFrame({"frequency": [0, 4, 12], "recency": [0.0, 20.0, 36.0],
                         "T": [30.0, 39.0, 39.0]})
    model = cm.MBGCNBD.from_params(**LATER_PARAMS["MBGCNBD"])
    t = 26.0
    got = model.probability_alive(hist, ahead=t).to_numpy()
    alive = model.probability_alive(hist).to_numpy()
    from clvmodels.models import cnbd

    for i, (x, t_x, T) in enumerate(hist.to_numpy()):
        w = cnbd.phase_weights(k, r, alpha, a, b, x, t_x, T)
        want = 0.0
        N = np.arange(4000)
        for j in range(k):
            nb = stats.nbinom.pmf(N, r + k * x + j, (alpha + T) / (alpha + T + t))
            M = (N + j) // k
            want += w[j] * (nb @ np.exp(betaln(a, b + x + 1 + M) - betaln(a, b + x + 1)))
        assert got[i] == pytest.approx(alive[i] * want, rel=1e-10)


def test_ggomnbd_future_near_the_pareto_nbd_limit(histories):
    """b -> 0 with beta / b fixed is the Pareto/NBD (module docstring): the conditional
    pmf and P(alive ahead) approach the Pareto/NBD's, to O(b T)."""
    pn = PARAMS["ParetoNBD"]
    b = 1e-7
    gg = cm.GGomNBD.from_params(r=pn["r"], alpha=pn["alpha"], b=b, s=pn["s"],
                                beta=pn["beta"] * b)
    ref = cm.ParetoNBD.from_params(**pn)
    hist = histories.iloc[:7]
    n = np.arange(60)
    np.testing.assert_allclose(gg.probability_of_purchases(n, 39.0, hist),
                               ref.probability_of_purchases(n, 39.0, hist), atol=1e-5)
    np.testing.assert_allclose(gg.probability_alive(hist, ahead=39.0),
                               ref.probability_alive(hist, ahead=39.0), rtol=1e-4)


@pytest.mark.parametrize("name", LATER)
def test_later_models_future_draws_follow_the_conditional_pmf(name):
    """simulate_future against the conditional pmf: chi-square (as for the other models)."""
    model = getattr(cm, name).from_params(**LATER_PARAMS[name])
    hist = pd.DataFrame({"frequency": [3] * 20000, "recency": [20.0] * 20000,
                         "T": [30.0] * 20000})
    _assert_draws_follow_the_pmf(model, hist, 20.0, 12)


@pytest.mark.parametrize("name", LATER)
def test_later_models_intervals_and_pit_on_the_story(name):
    """Customers simulated event by event from the model's story (tests/_events.py), the
    model at the true parameters: the randomised PIT of the holdouts is uniform, and the
    intervals cover as often as their ``coverage`` column says (4 binomial se)."""
    n, t = 3000, 39.0
    data = _events.simulate(name, LATER_PARAMS[name], n, np.resize(COVERAGE_T, n), t, seed=5)
    model = getattr(cm, name).from_params(**LATER_PARAMS[name])
    _assert_uniform(model.randomized_pit(t, data, data["holdout"]).to_numpy())
    for level in (0.8, 0.9):
        iv = model.prediction_interval(t, data, level=level)
        inside = ((data["holdout"] >= iv["low"]) & (data["holdout"] <= iv["high"])).mean()
        said = iv["coverage"].mean()
        assert said >= level
        assert abs(inside - said) < 4 * np.sqrt(said * (1 - said) / n), (level, inside, said)


@pytest.mark.parametrize("name", LATER)
def test_later_models_future_is_stable_at_the_extremes(name):
    """500 past purchases over an age of 5,000, a horizon of 5,000: finite, mass 1, the
    right mean, P(alive ahead) in [0, 1], no warning (RuntimeWarnings are errors here)."""
    model = getattr(cm, name).from_params(**LATER_PARAMS[name])
    hist = pd.DataFrame({"frequency": [500, 0], "recency": [4999.0, 0.0], "T": [5e3, 5e3]})
    pmf, iv = _check_extremes(model, hist, 5e3, 3000, atol=1e-8, rtol=1e-6)
    cdf = np.cumsum(pmf, axis=1)
    for col, q in (("low", 0.05), ("median", 0.5), ("high", 0.95)):
        np.testing.assert_array_equal(iv[col], (cdf < q - 1e-12).sum(axis=1))
