"""Scale acceptance: 5M-row RFM vs lifetimes, 50M rows of Parquet through DuckDB, a BG/NBD
fit on 10M customers, and RFM -> fit -> score on a 2-worker Dask cluster.

Usage::

    uv run python benchmarks/bench_scale.py                       # everything, full sizes
    uv run python benchmarks/bench_scale.py --cases rfm5m,fit10m  # some cases
    uv run python benchmarks/bench_scale.py --small               # a quick run (CI sizes)

Every case runs in a fresh Python subprocess (no heap or imports inherited), and prints one
JSON line that the parent turns into the tables. Time is wall-clock and CPU time of the
measured call; the machine may be shared, so CPU time is the steadier number. Memory is
the peak resident set of the subprocess (``VmHWM``, Linux), whole process, and its peak
above the resident set just before the call (``VmHWM`` reset through
``/proc/self/clear_refs``, as in ``bench_rfm.py``).

Cases
-----
rfm5m
    ``benchmarks/bench_rfm.py``'s seeded 5M-transaction log (500,000 customers, times of
    day, two years), ``clvmodels.rfm_summary(unit="D")`` on pandas against lifetimes'
    ``summary_data_from_transaction_data(freq="D")``, each in its own subprocess, outputs
    checked equal. Also polars, polars lazy and DuckDB (from Arrow in memory) on the same log.
duckdb50m
    A seeded 50M-transaction log (5M customers, first purchases spread over two years, times
    of day, amounts) written to ``/tmp`` as Parquet in chunks of 5M rows, never held whole
    in memory; then ``clvmodels.scale.rfm_from_file`` aggregates it through DuckDB
    (``memory_limit="2GB"``, spilling beyond). Checked: every customer present, total
    repeat days equal to a separate DuckDB count.
fit10m
    10M customers simulated from BG/NBD (r=0.243, alpha=30.898 days, a=0.793, b=2.426, the
    CDNOW estimates in days) with acquisition days uniform over two years, and a realistic
    day bucketing: the first purchase falls at a uniform time u within its day, the last
    repeat purchase at continuous time t_x after it, so ``recency = floor(u + t_x)`` days
    and ``T`` = whole days from the first purchase day to the last day observed (the
    continuous age is T + 1 - u). ``BGNBD().fit(rfm)`` on the 10M-row frame (it validates,
    compresses identical rows, maximises); relative error of every parameter.
report20m
    ``clvmodels report --transactions FILE`` on a seeded 20M-transaction Parquet log (2M
    customers of :func:`churn_log`, two years, written in chunks by
    :func:`write_churn_parquet`), both engines of the report: ``duckdb`` (the default: the
    file is aggregated inside DuckDB, ``memory_limit="2GB"``) and ``pandas`` (the log loaded
    into memory). Two measurements, each engine in a fresh subprocess: (1) the report's data
    part, everything the CLI and the notebook compute from the raw log (input checks,
    calibration end, acquisition cohorts, RFM and calibration/holdout frames, totals, the
    formula overall and per cohort, the formula's holdout predictions, the tracking counts
    with fixed BG/NBD parameters, one customer's purchase days), checked equal between the
    engines to 1e-9; (2) the whole ``clvmodels report --no-bayes`` run, the CLI and its
    notebook kernel (peak RSS of the largest process, from ``getrusage``, and of the two
    together, sampled every 0.2 s).
dask
    A ``dask.distributed.LocalCluster`` with 2 worker processes (1 thread each): a 1M-row
    log (100,000 customers buying at gamma-distributed rates until exponential lifetimes
    end, :func:`churn_log`) as a Dask DataFrame -> ``rfm_summary`` (aggregated on the cluster) ->
    ``scale.compress`` (distinct rows counted on the cluster) -> ``BGNBD().fit`` and
    ``GammaGamma().fit`` -> ``scale.score_dask`` (scored by the workers) -> ``compute``;
    checked equal to the same pipeline in pandas.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_rfm  # noqa: E402  (same folder: the 5M log and the subprocess measurement)

TRUE_BG = dict(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426)
DAYS = 730
PARQUET = Path("/tmp/clvmodels_bench_scale_{rows}.parquet")
REPORT_PARQUET = Path("/tmp/clvmodels_bench_report_{rows}.parquet")


# --- measurement helpers (run inside the worker subprocess) -------------------------------------


def _kb(field: str) -> int:
    return bench_rfm._status_kb(field)


class Measure:
    """Wall, CPU and peak memory of the block (peak above the start and whole process)."""

    def __enter__(self):
        gc.collect()
        self.reset = bench_rfm._reset_peak()
        self.base_kb = _kb("VmRSS")
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.c0
        self.peak_mb = _kb("VmHWM") / 1024
        self.above_mb = (_kb("VmHWM") - self.base_kb) / 1024 if self.reset else float("nan")

    def result(self) -> dict:
        return {"seconds": self.seconds, "cpu_seconds": self.cpu, "peak_mb": self.peak_mb,
                "peak_above_start_mb": self.above_mb}  # fmt: skip


# --- data ---------------------------------------------------------------------------------------


def _write_tables(path: Path, tables) -> None:
    """Write an iterable of pyarrow tables (one schema) to one Parquet file, chunk by chunk;
    the file appears only once complete."""
    import pyarrow.parquet as pq

    tmp = path.with_suffix(".tmp")
    writer = None
    try:
        for table in tables:
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="snappy")
            writer.write_table(table, row_group_size=1_000_000)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)


def write_parquet(path: Path, rows: int, customers: int, seed: int, chunk: int = 5_000_000):
    """A seeded log of `rows` transactions written in chunks (never whole in memory).

    Customer i first buys on a uniform day of 2022-2023 (chunk k holds the first purchases
    of its share of customers); the other rows are repeat purchases of uniformly drawn
    customers on uniform days between their first day and the end; uniform times of day;
    log-normal amounts.
    """
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    first = rng.integers(0, DAYS, customers).astype(np.int32)
    n_chunks = max(1, -(-rows // chunk))
    start = np.datetime64("2022-01-01T00:00:00", "s")

    def tables():
        for k in range(n_chunks):
            n = min(chunk, rows - k * chunk)
            lo, hi = customers * k // n_chunks, customers * (k + 1) // n_chunks
            newcomers = np.arange(lo, hi)
            repeat = rng.integers(0, customers, n - len(newcomers))
            who = np.concatenate([newcomers, repeat])
            day = first[who].astype(np.int64)
            later = slice(len(newcomers), None)
            day[later] += (rng.random(len(repeat)) * (DAYS - day[later])).astype(np.int64)
            seconds = day * 86_400 + rng.integers(0, 86_400, n)
            yield pa.table({
                "customer_id": pa.array(who.astype(np.int64)),
                "date": pa.array((start + seconds.astype("timedelta64[s]")).astype(
                    "datetime64[us]")),
                "amount": pa.array(np.round(rng.lognormal(3.0, 0.8, n), 2)),
            })  # fmt: skip

    _write_tables(path, tables())


def write_churn_parquet(path: Path, rows: int, customers: int, seed: int, chunks: int = 10):
    """:func:`churn_log` written in `chunks` independent slices of the customers (ids offset,
    seeds ``seed + k``), never whole in memory: the realistic log of the report case."""
    import pyarrow as pa

    def tables():
        for k in range(chunks):
            lo, hi = customers * k // chunks, customers * (k + 1) // chunks
            part = churn_log(rows * (k + 1) // chunks - rows * k // chunks, hi - lo, seed + k)
            part["customer_id"] += lo
            part["date"] = part["date"].astype("datetime64[us]")
            yield pa.Table.from_pandas(part, preserve_index=False)

    _write_tables(path, tables())


def churn_log(rows: int, customers: int, seed: int) -> pd.DataFrame:
    """A seeded log in which customers buy at their own rate until they stop (gamma rates,
    exponential lifetimes, as the BG/NBD and Pareto/NBD models assume), for the Dask case:
    a model fitted to it has realistic parameters (the uniform log of ``bench_rfm.py`` has
    no drop-out, which drives BG/NBD's ``b`` to ~1e6, where its predictions are slow)."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, DAYS, customers)
    rate = rng.gamma(0.6, 1 / 25, customers)
    life = rng.exponential(rng.gamma(1.0, 300, customers))
    weight = rate * np.minimum(life, DAYS - first) + 1e-9
    who = np.concatenate(
        [np.arange(customers), rng.choice(customers, rows - customers, p=weight / weight.sum())]
    )
    span = np.minimum(life[who], DAYS - first[who])
    later = rng.random(rows) * span
    later[:customers] = 0
    seconds = (first[who] + later.astype(int)) * 86_400 + rng.integers(0, 86_400, rows)
    start = np.datetime64("2022-01-01T00:00:00", "s")
    return pd.DataFrame({
        "customer_id": who.astype(np.int64),
        "date": pd.to_datetime(start + seconds.astype("timedelta64[s]")),
        "amount": np.round(rng.gamma(4.0, 10.0, customers)[who] * rng.lognormal(0, 0.3, rows), 2),
    })  # fmt: skip


def simulate_days(n: int, seed: int) -> pd.DataFrame:
    """BG/NBD customers with ages and recencies in whole days (see the module docstring)."""
    from clvmodels.models.bgnbd import BGNBD

    rng = np.random.default_rng(seed)
    age_days = rng.integers(0, DAYS + 1, n)  # acquisition uniform over two years
    u = rng.random(n)  # time of day of the first purchase, as a fraction of the day
    sim = BGNBD.from_params(**TRUE_BG).simulate(n, age_days + 1.0 - u, random_state=seed + 1)
    x = sim["frequency"].to_numpy()
    recency = np.where(x > 0, np.minimum(np.floor(u + sim["recency"].to_numpy()), age_days), 0)
    return pd.DataFrame(
        {"frequency": x, "recency": recency.astype(float), "T": age_days.astype(float)},
        index=pd.RangeIndex(n, name="customer_id"),
    )


# --- the cases (each in a fresh subprocess) -------------------------------------------------------


def case_engines(args) -> dict:
    """rfm_summary on polars, polars lazy and DuckDB for the 5M log (context for rfm5m)."""
    import duckdb
    import polars as pl

    from clvmodels import rfm_summary

    tx = bench_rfm.synthetic(args.rows, args.customers, args.seed)
    ref = rfm_summary(tx, "customer_id", "date", "amount", unit="D")
    frames = {
        "polars": pl.from_pandas(tx),
        "polars lazy": pl.from_pandas(tx).lazy(),
        "duckdb": duckdb.connect().from_arrow(pl.from_pandas(tx).to_arrow()),
    }
    del tx
    out = {}
    for name, frame in frames.items():
        with Measure() as m:
            rfm = rfm_summary(frame, "customer_id", "date", "amount", unit="D")
        pd.testing.assert_frame_equal(rfm, ref, check_exact=False, rtol=1e-12)
        out[name] = m.result()
    return out


def case_duckdb(args) -> dict:
    from clvmodels import scale

    path = Path(str(PARQUET).format(rows=args.parquet_rows))
    with Measure() as m:
        rfm = scale.rfm_from_file(path, "customer_id", "date", "amount", unit="D",
                                  memory_limit=args.duckdb_memory, threads=2)  # fmt: skip
    import duckdb

    repeat_days = duckdb.sql(
        f"SELECT count(*) - count(DISTINCT customer_id) FROM (SELECT DISTINCT customer_id, "
        f"CAST(date AS DATE) FROM read_parquet('{path}'))"
    ).fetchall()[0][0]
    assert len(rfm) == args.parquet_customers, (len(rfm), args.parquet_customers)
    assert int(rfm["frequency"].sum()) == repeat_days
    return {**m.result(), "customers": len(rfm), "file_mb": path.stat().st_size / 2**20}


def case_fit(args) -> dict:
    from clvmodels import BGNBD

    rfm = simulate_days(args.fit_customers, args.seed)
    with Measure() as m:
        bg = BGNBD().fit(rfm)
    params = bg.params_.to_dict()
    return {**m.result(), "customers": len(rfm), "unique_rows": bg.n_unique_,
            "params": params, "se": bg.se_.to_dict(),
            "rel_error": {k: params[k] / v - 1 for k, v in TRUE_BG.items()}}  # fmt: skip


def case_dask(args) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import dask.dataframe as dd
        from distributed import Client, LocalCluster, wait

    import clvmodels as cm
    from clvmodels import scale

    warnings.filterwarnings("ignore", "Dask support is moving", FutureWarning)
    tx = churn_log(args.dask_rows, args.dask_rows // 10, args.seed)
    kw = dict(customer="customer_id", date="date", amount="amount", unit="W")
    stages = {}
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                     dashboard_address=None, memory_limit="3GiB") as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        workers = len(client.scheduler_info()["workers"])
        # warm-up, not timed: each worker process imports clvmodels (and its numerical stack)
        client.run(importlib.import_module, "clvmodels.scale")
        ddf = dd.from_pandas(tx, npartitions=8).persist()
        wait(ddf)
        t0 = time.perf_counter()
        rfm = cm.rfm_summary(ddf, **kw)
        stages["rfm_summary (cluster)"] = time.perf_counter() - t0
        t = time.perf_counter()
        rfm_dd = dd.from_pandas(rfm, npartitions=8).persist()  # RFM rows on the cluster
        weighted = scale.compress(rfm_dd)
        bg = cm.BGNBD().fit(weighted, weights="weight")
        spend = scale.compress(rfm_dd[rfm_dd["frequency"] > 0], ("frequency", "monetary_value"))
        gg = cm.GammaGamma().fit(spend.assign(recency=0.0, T=0.0), weights="weight")
        stages["compress on cluster + fit"] = time.perf_counter() - t
        t = time.perf_counter()
        scores = scale.score_dask(bg, rfm_dd, t=52.0, spend_model=gg, horizon=52, period=4)
        scores = scores.compute()
        stages["score_dask + compute"] = time.perf_counter() - t
        stages["end to end"] = time.perf_counter() - t0
    ref_rfm = cm.rfm_summary(tx, **kw)
    pd.testing.assert_frame_equal(rfm, ref_rfm, check_exact=False, rtol=1e-12)
    ref_bg = cm.BGNBD().fit(ref_rfm)
    ref = scale.score(ref_bg, ref_rfm, t=52.0, spend_model=gg, horizon=52, period=4)
    pd.testing.assert_frame_equal(scores.loc[ref.index], ref, check_exact=False, rtol=1e-6)
    return {"workers": workers, "rows": len(tx), "customers": len(rfm), "stages": stages,
            "params": bg.params_.to_dict()}  # fmt: skip


def report_data(tx) -> dict:
    """The report's data part on `tx` (a TransactionLog over pandas or DuckDB): what
    ``clvmodels report`` (its split, then the analysis) computes from the raw log. Returns
    small checksums of every result, to compare the engines."""
    import matplotlib

    matplotlib.use("Agg")
    import clvmodels as cm
    from clvmodels import analysis, plotting, report

    keys = dict(customer="customer_id", date="date")
    kw = dict(**keys, amount="amount")
    split = analysis.choose_split(tx)  # in the CLI process
    info = {"calibration_end": split.calibration_end, "customers": split.customers}
    end = report.default_calibration_end(tx)  # the analysis, from here on
    cohorts = cm.acquisition_cohorts(tx, **keys, before=end).rename("segment")
    rfm = cm.rfm_summary(tx, **kw, unit="W")
    cal = cm.calibration_holdout(tx, **kw, calibration_end=end, unit="W")
    cal["segment"] = cohorts.reindex(cal.index)
    totals = {"transactions": tx.quality.transactions, "revenue": tx.quality.revenue}
    try:  # as the notebook: a lifespan of 3 years where it cannot be estimated
        formula = [cm.formula_clv(tx, **kw, segment=cohorts), cm.formula_clv(tx, **kw)]
    except cm.DataError:
        formula = [cm.formula_clv(tx, **kw, segment=cohorts, lifespan=3.0),
                   cm.formula_clv(tx, **kw, lifespan=3.0)]  # fmt: skip
    formula = pd.concat(formula)
    hold = [cm.formula_holdout(tx, cal, **kw, calibration_end=end, segment=seg)
            for seg in (None, "segment")]  # fmt: skip
    bg = cm.BGNBD.from_params(**TRUE_BG)
    track = cm.repeat_purchases_over_time(tx, bg, **keys, calibration_end=end)
    ax = plotting.plot_alive_history(bg, tx, rfm["frequency"].idxmax(), **keys)
    return {
        "checks": {k: str(v) for k, v in info.items()},
        "totals": totals,
        "cohorts": cohorts.value_counts().sort_index().to_dict(),
        "rfm": rfm.sum().to_dict(),
        "cal": cal.drop(columns="segment").sum().to_dict(),
        "formula": formula.to_dict(),
        "holdout": [h.sum().to_dict() for h in hold],
        "tracking": track.sum().to_dict(),
        "alive": float(np.sum(ax.lines[0].get_ydata())),
        "customers": len(rfm),
    }


def case_report_data(args) -> dict:
    import clvmodels as cm

    path = Path(str(REPORT_PARQUET).format(rows=args.report_rows))
    with Measure() as m:
        tx = cm.read_transactions(path, "customer_id", "date", "amount", engine=args.engine,
                                  duplicates="warn")  # fmt: skip
        out = report_data(tx)
    return {**m.result(), "check": out}


def case_report_cli(args) -> dict:
    """The whole ``clvmodels report --no-bayes`` run in a subprocess (the CLI starts the
    notebook's kernel): wall time, the largest process's peak RSS (``getrusage`` of the
    reaped children: the CLI and the kernel) and the peak of both together (sampled)."""
    import resource
    import tempfile

    import psutil

    path = Path(str(REPORT_PARQUET).format(rows=args.report_rows))
    folder = Path(tempfile.mkdtemp(prefix="bench-report-"))
    cmd = [sys.executable, "-m", "clvmodels.cli", "report", "--transactions", str(path),
           "--no-bayes", "--no-progress", "--engine", args.engine,
           "--out", str(folder / "report.html")]  # fmt: skip
    t0 = time.perf_counter()
    with open(folder / "stdout", "w") as out, open(folder / "stderr", "w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=folder)
        root, tree_peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                rss = sum(q.memory_info().rss for q in [root, *root.children(recursive=True)])
                tree_peak = max(tree_peak, rss)
            except psutil.Error:  # a process ended between listing and reading it
                pass
            time.sleep(0.2)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError((folder / "stderr").read_text()[-3000:])
    return {"seconds": seconds, "max_process_mb": resource.getrusage(
                resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "tree_peak_mb": tree_peak / 2**20,
            "summary": (folder / "stdout").read_text().splitlines()[0]}  # fmt: skip


def _same(a, b, where: str = "") -> None:
    """Raise if two nested results differ by more than 1e-9 (relative)."""
    if isinstance(a, dict):
        if a.keys() != b.keys():
            raise SystemExit(f"report20m: engines differ at {where}: keys")
        for k in a:
            _same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}/{i}")
    elif isinstance(a, float) and not (np.isnan(a) and np.isnan(b)):
        if not np.isclose(a, b, rtol=1e-9, atol=1e-9):
            raise SystemExit(f"report20m: engines differ at {where}: {a!r} != {b!r}")
    elif not isinstance(a, float) and a != b:
        raise SystemExit(f"report20m: engines differ at {where}: {a!r} != {b!r}")


CASES = {"engines": case_engines, "duckdb50m": case_duckdb, "fit10m": case_fit,
         "dask": case_dask, "report_data": case_report_data,
         "report_cli": case_report_cli}  # fmt: skip


def run(case: str, args, *extra: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", case, *args.passthrough, *extra]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"case {case} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="rfm5m,fit10m,dask,duckdb50m,report20m")
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--customers", type=int, default=500_000)
    parser.add_argument("--parquet-rows", type=int, default=50_000_000)
    parser.add_argument("--parquet-customers", type=int, default=5_000_000)
    parser.add_argument("--duckdb-memory", default="2GB")
    parser.add_argument("--fit-customers", type=int, default=10_000_000)
    parser.add_argument("--dask-rows", type=int, default=1_000_000)
    parser.add_argument("--report-rows", type=int, default=20_000_000)
    parser.add_argument("--report-customers", type=int, default=2_000_000)
    parser.add_argument("--report-cli", default="duckdb,pandas",
                        help="engines of the whole `clvmodels report` run ('' for none)")
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--small", action="store_true", help="CI sizes (a minute in all)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.small:
        args.rows, args.customers = 200_000, 20_000
        args.parquet_rows, args.parquet_customers = 1_000_000, 100_000
        args.fit_customers, args.dask_rows = 200_000, 100_000
        args.report_rows, args.report_customers = 400_000, 40_000
    if args.worker:
        print(json.dumps(CASES[args.worker](args)))
        return
    args.passthrough = [
        "--rows", str(args.rows), "--customers", str(args.customers),
        "--parquet-rows", str(args.parquet_rows),
        "--parquet-customers", str(args.parquet_customers),
        "--duckdb-memory", args.duckdb_memory, "--fit-customers", str(args.fit_customers),
        "--dask-rows", str(args.dask_rows), "--seed", str(args.seed),
        "--report-rows", str(args.report_rows),
    ]  # fmt: skip
    cases = args.cases.split(",")
    import duckdb
    import lifetimes  # noqa: F401  (version only)
    import polars as pl

    print(f"Python {platform.python_version()}, pandas {pd.__version__}, numpy {np.__version__}, "
          f"polars {pl.__version__}, duckdb {duckdb.__version__}; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f}\n")  # fmt: skip

    if "rfm5m" in cases:
        bench_args = argparse.Namespace(rows=args.rows, customers=args.customers,
                                        seed=args.seed, repeat=1)  # fmt: skip
        print(f"running rfm5m ({args.rows:,} rows) ...", file=sys.stderr, flush=True)
        pair = {impl: bench_rfm.run_case("synthetic", impl, bench_args)
                for impl in ["clvmodels", "lifetimes"]}  # fmt: skip
        for col, value in pair["lifetimes"]["check"].items():
            if not np.isclose(pair["clvmodels"]["check"][col], value, rtol=1e-6, atol=1e-6):
                raise SystemExit(f"rfm5m: outputs differ in {col}")
        engines = run("engines", args)
        ours, ref = pair["clvmodels"], pair["lifetimes"]
        print(f"## {ours['rows']:,} transactions, {ours['customers']:,} customers: RFM summary")
        print(
            "| implementation | wall (s) | CPU (s) | peak above start (MB) | vs lifetimes (wall) |"
        )
        print("|---|---:|---:|---:|---:|")
        for name, r in [("clvmodels (pandas)", ours), ("lifetimes", ref)]:
            print(f"| {name} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | {r['peak_mb']:.0f} "
                  f"| {ref['seconds'] / r['seconds']:.1f}x |")  # fmt: skip
        for name, r in engines.items():
            print(
                f"| clvmodels ({name}) | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | "
                f"{r['peak_above_start_mb']:.0f} | {ref['seconds'] / r['seconds']:.1f}x |"
            )
        print()

    if "fit10m" in cases:
        print(f"running fit10m ({args.fit_customers:,} customers) ...", file=sys.stderr,
              flush=True)  # fmt: skip
        r = run("fit10m", args)
        print(f"## BG/NBD fit on {r['customers']:,} simulated customers "
              f"({r['unique_rows']:,} distinct rows)")  # fmt: skip
        print(f"wall {r['seconds']:.2f} s, CPU {r['cpu_seconds']:.2f} s, peak above start "
              f"{r['peak_above_start_mb']:.0f} MB\n")  # fmt: skip
        print("| parameter | true | estimate | se | relative error |")
        print("|---|---:|---:|---:|---:|")
        for k, v in TRUE_BG.items():
            print(f"| {k} | {v:.4f} | {r['params'][k]:.4f} | {r['se'][k]:.4f} | "
                  f"{100 * r['rel_error'][k]:+.2f}% |")  # fmt: skip
        print()

    if "dask" in cases:
        print(f"running dask ({args.dask_rows:,} rows) ...", file=sys.stderr, flush=True)
        r = run("dask", args)
        print(
            f"## Dask LocalCluster, {r['workers']} workers: {r['rows']:,} transactions, "
            f"{r['customers']:,} customers, RFM -> fit -> score (equal to pandas)"
        )
        print("| stage | wall (s) |\n|---|---:|")
        for k, v in r["stages"].items():
            print(f"| {k} | {v:.2f} |")
        print()

    if "duckdb50m" in cases:
        path = Path(str(PARQUET).format(rows=args.parquet_rows))
        if not path.exists():
            print(f"writing {path} ...", file=sys.stderr, flush=True)
            t = time.perf_counter()
            write_parquet(path, args.parquet_rows, args.parquet_customers, args.seed)
            print(f"  written in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        print(f"running duckdb50m ({args.parquet_rows:,} rows) ...", file=sys.stderr, flush=True)
        r = run("duckdb50m", args)
        print(
            f"## {args.parquet_rows:,} transactions in Parquet ({r['file_mb']:.0f} MB), "
            f"{r['customers']:,} customers, through DuckDB (memory_limit "
            f"{args.duckdb_memory}, 2 threads)"
        )
        print("| wall (s) | CPU (s) | peak RSS of the process (MB) | peak above start (MB) |")
        print("|---:|---:|---:|---:|")
        print(
            f"| {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['peak_mb']:.0f} | "
            f"{r['peak_above_start_mb']:.0f} |"
        )

    if "report20m" in cases:
        report_case(args)


def report_case(args) -> None:
    path = Path(str(REPORT_PARQUET).format(rows=args.report_rows))
    if not path.exists():
        print(f"writing {path} ...", file=sys.stderr, flush=True)
        write_churn_parquet(path, args.report_rows, args.report_customers, args.seed)
    data = {}
    for engine in ["duckdb", "pandas"]:
        print(f"running report data part ({engine}) ...", file=sys.stderr, flush=True)
        data[engine] = run("report_data", args, "--engine", engine)
    _same(data["duckdb"]["check"], data["pandas"]["check"])
    check = data["duckdb"]["check"]
    print(
        f"\n## clvmodels report on {check['totals']['transactions']:,} transactions in "
        f"Parquet ({path.stat().st_size / 2**20:.0f} MB), {check['customers']:,} customers"
    )
    print("Data part (checks, RFM, calibration/holdout, cohorts, formula, holdout formula, "
          "tracking counts), each engine in a fresh process; results equal to 1e-9.\n")  # fmt: skip
    print("| engine | wall (s) | CPU (s) | peak RSS of the process (MB) | peak above start (MB) |")
    print("|---|---:|---:|---:|---:|")
    for engine, r in data.items():
        print(f"| {engine} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['peak_mb']:.0f} "
              f"| {r['peak_above_start_mb']:.0f} |")  # fmt: skip
    engines = [e for e in args.report_cli.split(",") if e]
    if engines:
        print("\nWhole `clvmodels report --no-bayes` run (the CLI and its notebook kernel)\n")
        print("| engine | wall (s) | peak RSS, largest process (MB) | peak RSS, both (MB) |")
        print("|---|---:|---:|---:|")
    for engine in engines:
        print(f"running clvmodels report ({engine}) ...", file=sys.stderr, flush=True)
        r = run("report_cli", args, "--engine", engine)
        print(f"| {engine} | {r['seconds']:.0f} | {r['max_process_mb']:.0f} | "
              f"{r['tree_peak_mb']:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
