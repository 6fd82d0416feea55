"""The samplers, run for real: one quick small run in the default test run (nutpie, then
the cached compiled model for a second seed), MAP; longer runs are marked slow."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from clvmodels import bayes
from clvmodels.errors import StatisticalWarning

BG_MLE = {"r": 0.2425945, "alpha": 4.4136019, "a": 0.7929199, "b": 2.4258881}
QUICK = {"draws": 150, "tune": 150, "chains": 2, "cores": 2, "progressbar": False}


@pytest.fixture(scope="module")
def quick(cdnow_rfm):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)  # short chains: low ESS
        return bayes.BGNBD().fit(cdnow_rfm, random_seed=1, sampler="nutpie", **QUICK)


def test_quick_nutpie_fit(quick, cdnow_rfm):
    post = quick.idata_.posterior
    assert set(post.data_vars) == set(BG_MLE)
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 150
    assert '"sampler": "nutpie-c"' in quick.idata_.posterior.attrs["clvmodels"]  # auto
    # the posterior sits on the MLE (loose: 300 draws)
    assert float(post["r"].mean()) == pytest.approx(BG_MLE["r"], rel=0.05)
    assert float(post["alpha"].mean()) == pytest.approx(BG_MLE["alpha"], rel=0.08)
    assert set(quick.diagnostics_.columns) == {"r_hat", "ess_bulk", "ess_tail"}
    ep = quick.expected_purchases(39, cdnow_rfm)
    assert (ep["hdi_low"] <= ep["mean"]).all() and (ep["mean"] <= ep["hdi_high"]).all()
    assert ep["sd"].gt(0).all()


def test_tiny_draws_fail_the_convergence_verdict(cdnow_rfm):
    """A fit with draws=10 cannot reach ESS 400: the verdict fails, the warning says so
    and the advice names the keywords in Python and the flags on the command line."""
    with pytest.warns(StatisticalWarning, match=r"BGNBD: did not converge: .*bulk ESS < 400"):
        m = bayes.BGNBD().fit(cdnow_rfm, random_seed=1, **{**QUICK, "draws": 10, "tune": 20})
    c = m.convergence_
    assert not c.passed and not c
    assert c.ess_bulk_min < 400 and c.chains == 2 and c.draws == 10
    assert c.ess_bulk_min == m.diagnostics_["ess_bulk"].min()
    assert "draws=1000" in c.advice() and "tune=1000" in c.advice()
    assert "--draws 1000" in c.message("cli") and "draws=" not in c.message("cli")
    assert c.to_dict()["passed"] is False


def test_converged_fit_passes_the_verdict(quick):
    """The 2 x 150-draw fit of the fixture: ESS >= 400 is reachable for BG/NBD on CDNOW
    (its draws are nearly independent); the verdict agrees with the table."""
    c = quick.convergence_
    table = quick.diagnostics_
    ess_ok = (table[["ess_bulk", "ess_tail"]] >= 400).all().all()
    expected = bool((table["r_hat"] <= 1.01).all() and ess_ok and quick.n_divergent_ == 0)
    assert c.passed is expected
    assert c.rhat_max == pytest.approx(table["r_hat"].max())
    assert c.ess_tail_min == pytest.approx(table["ess_tail"].min())


def test_same_seed_same_draws(quick, cdnow_rfm):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        again = bayes.BGNBD().fit(cdnow_rfm, random_seed=1, sampler="nutpie", **QUICK)
        other = bayes.BGNBD().fit(cdnow_rfm, random_seed=2, sampler="nutpie", **QUICK)
    for k in BG_MLE:
        np.testing.assert_array_equal(
            again.idata_.posterior[k].values, quick.idata_.posterior[k].values
        )
    assert not np.array_equal(
        other.idata_.posterior["r"].values, quick.idata_.posterior["r"].values
    )


def test_numba_backend_seed_and_cached_model(cdnow_rfm):
    """The numba back-end: same seed, same draws; a refit reuses the compiled model (cached
    by structure) and must use the new data."""
    kw = {**QUICK, "sampler": "nutpie", "backend": "numba"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        first = bayes.BGNBD().fit(cdnow_rfm, random_seed=1, **kw)
        again = bayes.BGNBD().fit(cdnow_rfm, random_seed=1, **kw)  # cached compile
        half = cdnow_rfm.iloc[::2].assign(frequency=0, recency=0.0)
        other = bayes.BGNBD().fit(half, random_seed=1, **kw)
    assert '"sampler": "nutpie-numba"' in first.idata_.posterior.attrs["clvmodels"]
    np.testing.assert_array_equal(
        first.idata_.posterior["r"].values, again.idata_.posterior["r"].values
    )
    assert float(first.idata_.posterior["r"].mean()) == pytest.approx(BG_MLE["r"], rel=0.05)
    # nobody buys again: the purchase rate r / alpha collapses
    rate = (other.idata_.posterior["r"] / other.idata_.posterior["alpha"]).mean()
    assert float(rate) < 0.01 < BG_MLE["r"] / BG_MLE["alpha"]


def test_map(cdnow_rfm):
    m = bayes.BGNBD().fit(cdnow_rfm, method="map", progressbar=False)
    post = m.idata_.posterior
    assert post.sizes["chain"] == 1 and post.sizes["draw"] == 1
    # weak priors: the mode is near the MLE
    for k in ("r", "alpha"):
        assert post[k].item() == pytest.approx(BG_MLE[k], rel=0.02)
    ep = m.probability_alive(cdnow_rfm)
    assert (ep["sd"] == 0).all()


def _stats_and_draws(model):
    idata = model.idata_
    return {f"posterior/{k}": v.values for k, v in idata.posterior.data_vars.items()} | {
        f"sample_stats/{k}": v.values for k, v in idata.sample_stats.data_vars.items()
    }


def test_c_backend_draws_do_not_depend_on_cores(quick, cdnow_rfm):
    """Chains dealt to forked workers (cores=2, 3 chains: 2 + 1) or run in this process
    (cores=1) get the same seeds, so the same draws and sampler statistics."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        kw = {**QUICK, "chains": 3, "sampler": "nutpie"}
        forked = bayes.BGNBD().fit(cdnow_rfm, random_seed=1, **kw)
        serial = bayes.BGNBD().fit(cdnow_rfm, random_seed=1, **{**kw, "cores": 1})
    a, b = _stats_and_draws(forked), _stats_and_draws(serial)
    assert a.keys() == b.keys()
    assert {"sample_stats/diverging", "sample_stats/n_steps", "sample_stats/step_size"} <= set(a)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert forked.idata_.posterior.sizes["chain"] == 3
    # the first two chains are those of the 2-chain fit with the same seed
    np.testing.assert_array_equal(
        forked.idata_.posterior["r"].values[:2], quick.idata_.posterior["r"].values
    )


def test_failed_worker_falls_back_to_this_process(cdnow_rfm, monkeypatch):
    """A worker that fails: a RuntimeWarning naming the error, and the chains run again
    here with the same seeds."""
    import os

    from clvmodels.bayes import _chains

    parent, real = os.getpid(), _chains._one_chain

    def failing_in_workers(*args, **kwargs):
        if os.getpid() != parent:
            raise RuntimeError("worker broke")
        return real(*args, **kwargs)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        kw = {**QUICK, "sampler": "nutpie"}
        serial = bayes.BGNBD().fit(cdnow_rfm, random_seed=4, **{**kw, "cores": 1})
        monkeypatch.setattr(_chains, "_one_chain", failing_in_workers)
        with pytest.warns(RuntimeWarning, match="parallel chains failed.*worker broke"):
            again = bayes.BGNBD().fit(cdnow_rfm, random_seed=4, **kw)
    np.testing.assert_array_equal(
        again.idata_.posterior["b"].values, serial.idata_.posterior["b"].values
    )


def test_workers_that_cannot_start_fall_back_to_this_process(quick, cdnow_rfm, monkeypatch):
    """E.g. fit() inside a daemonic process, which may not have children."""
    import multiprocessing.context

    def refuse(self):
        raise AssertionError("daemonic processes are not allowed to have children")

    monkeypatch.setattr(multiprocessing.context.ForkProcess, "start", refuse)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        with pytest.warns(
            RuntimeWarning, match="could not start worker processes.*daemonic"
        ) as record:
            again = bayes.BGNBD().fit(cdnow_rfm, random_seed=1, sampler="nutpie", **QUICK)
    assert [w.filename for w in record if w.category is RuntimeWarning] == [__file__]
    np.testing.assert_array_equal(
        again.idata_.posterior["a"].values, quick.idata_.posterior["a"].values
    )


@pytest.mark.parametrize("sampler", ["nutpie", "blackjax"])
def test_progress_bar_counts_every_draw_of_every_chain(cdnow_rfm, monkeypatch, capsys, sampler):
    monkeypatch.delenv("CI", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        bayes.BGNBD().fit(
            cdnow_rfm, random_seed=1, sampler=sampler, **{**QUICK, "progressbar": True}
        )
    err = capsys.readouterr().err
    assert "Sampling 2 chains" in err
    assert "600/600" in err  # 2 chains x (150 tuning + 150 kept) draws


def test_chain_seeds():
    from clvmodels.bayes._chains import chain_seeds

    seeds = chain_seeds(7, 4)
    assert seeds == chain_seeds(7, 4) and len(set(seeds)) == 4
    assert seeds[:2] == chain_seeds(7, 2)  # more chains keep the first ones' seeds
    assert all(0 <= s < 2**64 for s in seeds)
    assert chain_seeds(None, 2) != chain_seeds(None, 2)


@pytest.mark.slow
def test_advi(cdnow_rfm):
    m = bayes.BGNBD().fit(
        cdnow_rfm, method="advi", draws=250, random_seed=0, progressbar=False, advi_steps=5_000
    )
    post = m.idata_.posterior
    assert post.sizes["draw"] == 1000
    assert float(post["r"].mean()) == pytest.approx(BG_MLE["r"], rel=0.1)


@pytest.mark.slow
def test_pymc_sampler(cdnow_rfm):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        m = bayes.BGNBD().fit(cdnow_rfm, sampler="pymc", random_seed=3, **QUICK)
        again = bayes.BGNBD().fit(cdnow_rfm, sampler="pymc", random_seed=3, **QUICK)
    assert '"sampler": "pymc"' in m.idata_.posterior.attrs["clvmodels"]
    np.testing.assert_array_equal(
        m.idata_.posterior["r"].values, again.idata_.posterior["r"].values
    )
    assert float(m.idata_.posterior["r"].mean()) == pytest.approx(BG_MLE["r"], rel=0.05)
