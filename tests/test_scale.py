"""clvmodels.scale: DuckDB files, compression, chunked scoring, scoring on a Dask cluster."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest

import clvmodels as cm
from clvmodels import datasets, scale
from clvmodels.models._base import compress_rows, unique_rows

pytestmark = pytest.mark.filterwarnings("ignore:Dask support is moving:FutureWarning")
KEYS = dict(customer="customer_id", date="date", amount="amount")
BG = dict(r=0.243, alpha=4.414, a=0.793, b=2.426)


@pytest.fixture(scope="module")
def master():
    return datasets.cdnow_transactions()[["customer_id", "date", "amount"]]


@pytest.fixture(scope="module")
def models(cdnow_rfm):
    bg = cm.BGNBD.from_params(**BG)
    gg = cm.GammaGamma.from_params(p=6.25, q=3.74, v=15.44)
    return bg, gg


# --- files through DuckDB -------------------------------------------------------------------


def test_rfm_from_parquet_and_csv_equal_pandas(master, tmp_path):
    master.to_parquet(tmp_path / "log.parquet")
    master.to_csv(tmp_path / "log.csv", index=False)
    kw = dict(**KEYS, observation_end="1997-09-30", unit="W")
    ref = cm.rfm_summary(master, **kw)
    for name in ["log.parquet", "log.csv"]:
        out = scale.rfm_from_file(tmp_path / name, **kw, memory_limit="500MB", threads=1)
        pd.testing.assert_frame_equal(out, ref, check_exact=False, rtol=1e-12)
    cal = dict(calibration_end="1997-09-30", observation_end="1998-06-30")
    pd.testing.assert_frame_equal(
        scale.rfm_from_file(tmp_path / "log.parquet", **KEYS, **cal),
        cm.calibration_holdout(master, **KEYS, **cal),
        check_exact=False, rtol=1e-12,
    )  # fmt: skip


def test_read_transactions_globs_directories_and_errors(master, tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(master)), 3)):
        master.iloc[rows].to_parquet(parts / f"part-{i}.parquet")
    ref = cm.rfm_summary(master, **KEYS)
    for source in [parts, str(parts / "*.parquet")]:
        rel = scale.read_transactions(source)
        assert rel.count("*").fetchall()[0][0] == len(master)
        pd.testing.assert_frame_equal(cm.rfm_summary(rel, **KEYS), ref, check_exact=False,
                                      rtol=1e-12)  # fmt: skip
    with pytest.raises(FileNotFoundError, match="not found"):
        scale.read_transactions(tmp_path / "nope.parquet")
    bad = master.assign(amount=-master["amount"])
    bad.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(cm.DataError, match=rf"non-negative \({(bad['amount'] < 0).sum()} rows\)"):
        scale.rfm_from_file(tmp_path / "bad.parquet", **KEYS)


# --- compression ------------------------------------------------------------------------------


def _lexsort_reference(cols):
    order = np.lexsort(cols[::-1])
    ordered = np.column_stack([c[order] for c in cols])
    uniq, inverse = np.unique(ordered, axis=0, return_inverse=True)
    inv = np.empty(len(order), dtype=np.int64)
    inv[order] = inverse.reshape(-1)
    return [uniq[:, j] for j in range(len(cols))], inv


@pytest.mark.parametrize("kind", ["whole", "weeks", "wide", "huge"])
def test_unique_rows_fast_paths_equal_a_sort(kind):
    rng = np.random.default_rng(5)
    n = 5000
    if kind == "whole":  # the linear-time path
        cols = [rng.integers(0, 6, n), rng.integers(0, 700, n), rng.integers(-3, 3, n)]
    elif kind == "weeks":  # np.unique per column, dense key
        cols = [rng.integers(0, 6, n), rng.integers(0, 700, n) / 7, rng.integers(0, 9, n) / 7]
    elif kind == "wide":  # sparse key: hashed integer keys
        cols = [rng.integers(0, 10**6, n) / 3, rng.integers(0, 10**6, n) / 7]
    else:  # the combined key would overflow int64: lexsort
        cols = [np.round(rng.random(n), 3) for _ in range(7)]
        cols[1:] = [np.where(rng.random(n) < 0.9, 0.0, c) for c in cols[1:]]
    cols = [np.asarray(c, dtype=float) for c in cols]
    expected, inverse = _lexsort_reference(cols)
    unique, inv, order, starts = unique_rows(cols)
    for got, want in zip(unique, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(inv, inverse)
    np.testing.assert_array_equal(inv[order], np.sort(inverse))
    np.testing.assert_array_equal(np.add.reduceat(np.ones(n), starts), np.bincount(inverse))
    w = rng.random(n)
    cu, counts = compress_rows(cols, w)
    np.testing.assert_allclose(counts, np.bincount(inverse, weights=w), rtol=1e-12)


def test_compress_any_engine_gives_the_same_fit(cdnow_rfm):
    import dask.dataframe as dd

    weighted = scale.compress(cdnow_rfm)
    assert weighted["weight"].sum() == len(cdnow_rfm)
    assert len(weighted) < len(cdnow_rfm)
    for other in [pl.from_pandas(cdnow_rfm).lazy(), dd.from_pandas(cdnow_rfm, npartitions=3)]:
        pd.testing.assert_frame_equal(scale.compress(other), weighted)
    full = cm.BGNBD().fit(cdnow_rfm)
    fitted = cm.BGNBD().fit(weighted, weights="weight")
    np.testing.assert_allclose(fitted.params_, full.params_, rtol=1e-6)
    assert fitted.loglik_ == pytest.approx(full.loglik_, rel=1e-10)
    spend = scale.compress(cdnow_rfm[cdnow_rfm["frequency"] > 0], ("frequency", "monetary_value"))
    gg = cm.GammaGamma().fit(spend.assign(recency=0.0, T=0.0), weights="weight")
    np.testing.assert_allclose(gg.params_, cm.GammaGamma().fit(cdnow_rfm).params_, rtol=1e-5)
    with pytest.raises(cm.DataError, match="missing"):
        scale.compress(cdnow_rfm, ("frequency", "nope"))


# --- scoring ------------------------------------------------------------------------------------


def test_score_equals_the_models_own_methods_in_any_chunks(cdnow_rfm, models):
    bg, gg = models
    ref = pd.DataFrame({
        "probability_alive": bg.probability_alive(cdnow_rfm),
        "expected_purchases": bg.expected_purchases(39.0, cdnow_rfm),
        "expected_spend": gg.expected_spend(cdnow_rfm),
        "clv": cm.customer_lifetime_value(bg, gg, cdnow_rfm, horizon=52, period=4,
                                          discount_rate=0.01),
    })  # fmt: skip
    for chunk in [7, 100_000]:
        out = scale.score(bg, cdnow_rfm, t=39.0, spend_model=gg, horizon=52, period=4,
                          chunk_size=chunk)  # fmt: skip
        pd.testing.assert_frame_equal(out, ref, check_exact=False, rtol=1e-12, check_names=False)
    only = scale.score(bg, cdnow_rfm, t=39.0)
    assert list(only.columns) == ["probability_alive", "expected_purchases"]
    with pytest.raises(ValueError, match="spend_model"):
        scale.score(bg, cdnow_rfm, t=39.0, horizon=52)
    with pytest.raises(ValueError, match="chunk_size"):
        scale.score(bg, cdnow_rfm, t=39.0, chunk_size=0)
    with pytest.raises(cm.DataError, match="recency"):
        scale.score(bg, cdnow_rfm.assign(recency=-1.0), t=39.0)


def test_dask_cluster_rfm_fit_score_end_to_end(master, models):
    """Transactions in Dask -> RFM (aggregated on the cluster) -> fit on the compressed
    rows (counted on the cluster) -> scores computed by the two workers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import dask.dataframe as dd
        from distributed import Client, LocalCluster

    _, gg = models
    kw = dict(**KEYS, observation_end="1997-09-30", unit="W")
    ref_rfm = cm.rfm_summary(master, **kw)
    ref_bg = cm.BGNBD().fit(ref_rfm)
    ref = scale.score(ref_bg, ref_rfm, t=39.0, spend_model=gg, horizon=52, period=4)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                     dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        assert len(client.scheduler_info()["workers"]) == 2
        rfm = cm.rfm_summary(dd.from_pandas(master, npartitions=4), **kw)
        pd.testing.assert_frame_equal(rfm, ref_rfm, check_exact=False, rtol=1e-12)
        rfm_on_cluster = dd.from_pandas(rfm, npartitions=4)
        bg = cm.BGNBD().fit(scale.compress(rfm_on_cluster), weights="weight")
        np.testing.assert_allclose(bg.params_, ref_bg.params_, rtol=1e-6)
        scores = scale.score_dask(bg, rfm_on_cluster, t=39.0, spend_model=gg, horizon=52,
                                  period=4)  # fmt: skip
        assert scores.npartitions == 4
        out = scores.compute()
    pd.testing.assert_frame_equal(out.loc[ref.index], ref, check_exact=False, rtol=1e-6)
    with pytest.raises(cm.NotFittedError):
        scale.score_dask(cm.BGNBD(), rfm_on_cluster, t=39.0)
