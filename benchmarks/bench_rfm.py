"""Time and peak memory of clvmodels.rfm_summary against lifetimes' summary function.

Usage::

    uv run python benchmarks/bench_rfm.py                     # CDNOW master + 5M synthetic
    uv run python benchmarks/bench_rfm.py --rows 500000 --customers 50000   # quicker

Both implementations get the same frame (int64 customer ids, datetime64 timestamps with
a time of day, float64 amounts) and compute the same daily summary: ``rfm_summary(...,
unit="D")`` and ``summary_data_from_transaction_data(..., freq="D")``. The outputs are
checked equal (sums of every column, to 1e-6 relative) before any number is reported.

How it is measured. Every (data, implementation) case runs in a fresh Python
subprocess, so neither implementation inherits the other's heap or imports. The worker
builds the data, runs ``gc.collect()``, then resets the kernel's peak-RSS counter
(writes ``5`` to ``/proc/self/clear_refs``, Linux >= 4.0) and reads ``VmRSS`` as the
baseline; after the call, *peak memory* is ``VmHWM - baseline``: the extra resident
memory the call needed at its high point, everything it allocated in C or Python
included. Where the counter cannot be reset, the worker falls back to ``tracemalloc``
(peak of traced allocations during the call; numpy and pandas buffers are traced, but
tracemalloc slows pure-Python code, so timings are then taken from a separate untraced
call). *Time* is wall-clock (``time.perf_counter``) and CPU time of the process
(``time.process_time``; both implementations are single-threaded, so CPU time is the
better measure on a busy machine) of the call: the best of ``--repeat`` calls for CDNOW,
a single call for the large log.

The synthetic log (seeded, ``numpy.random.default_rng(--seed)``): ``--customers``
customers, each with a first purchase on a uniform day of the two years 2022-2023 and
further purchases, ``--rows`` in all, each by a uniformly drawn customer on a uniform
day between that customer's first day and the end; uniform times of day; log-normal
amounts in cents; rows sorted by time, like a real log.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd

START = np.datetime64("2022-01-01T00:00:00", "s")
DAYS = 730


def synthetic(rows: int, customers: int, seed: int) -> pd.DataFrame:
    """A seeded transaction log of `rows` transactions by `customers` customers."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, DAYS, customers)
    who = np.concatenate([np.arange(customers), rng.integers(0, customers, rows - customers)])
    day = first[who]
    later = slice(customers, None)
    day[later] = day[later] + (rng.random(rows - customers) * (DAYS - day[later])).astype(int)
    seconds = day * 86_400 + rng.integers(0, 86_400, rows)
    order = np.argsort(seconds, kind="stable")
    return pd.DataFrame(
        {
            "customer_id": who[order].astype(np.int64),
            "date": pd.to_datetime(START + seconds[order].astype("timedelta64[s]")),
            "amount": np.round(rng.lognormal(3.0, 0.8, rows), 2),
        }
    )


def load(data: str, rows: int, customers: int, seed: int) -> pd.DataFrame:
    if data == "cdnow":
        from clvmodels.datasets import cdnow_transactions

        return cdnow_transactions()[["customer_id", "date", "amount"]]
    return synthetic(rows, customers, seed)


def implementation(name: str):
    if name == "clvmodels":
        from clvmodels.rfm import rfm_summary

        return lambda tx: rfm_summary(tx, "customer_id", "date", "amount", unit="D")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes.utils import summary_data_from_transaction_data

    return lambda tx: summary_data_from_transaction_data(
        tx, "customer_id", "date", "amount", freq="D"
    )


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _status_kb("VmHWM") <= _status_kb("VmRSS") + 1024
    except OSError:
        return False


def worker(data: str, impl: str, rows: int, customers: int, seed: int, repeat: int) -> dict:
    """Run one case in this (fresh) process and return its measurements."""
    tx = load(data, rows, customers, seed)
    func = implementation(impl)
    gc.collect()
    if _reset_peak():
        method = "VmHWM - VmRSS after reset"
        base = _status_kb("VmRSS")
        t0, c0 = time.perf_counter(), time.process_time()
        out = func(tx)
        times, cpu = [time.perf_counter() - t0], [time.process_time() - c0]
        peak_mb = (_status_kb("VmHWM") - base) / 1024
    else:
        method = "tracemalloc peak"
        tracemalloc.start()
        out = func(tx)
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        times, cpu = [], []
    for _ in range(repeat - len(times)):
        del out
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        out = func(tx)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {
        "data": data,
        "impl": impl,
        "rows": len(tx),
        "customers": int(tx["customer_id"].nunique()),
        "seconds": min(times),
        "cpu_seconds": min(cpu),
        "peak_mb": peak_mb,
        "input_mb": tx.memory_usage(deep=True).sum() / 2**20,
        "method": method,
        "check": {c: float(out[c].astype(float).sum()) for c in out.columns},
    }


def run_case(data: str, impl: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", data, impl]
    cmd += ["--rows", str(args.rows), "--customers", str(args.customers)]
    cmd += ["--seed", str(args.seed), "--repeat", str(args.repeat if data == "cdnow" else 1)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--customers", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--repeat", type=int, default=5, help="calls per CDNOW case (best)")
    parser.add_argument("--worker", nargs=2, metavar=("DATA", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.rows, args.customers, args.seed, args.repeat)))
        return

    results = []
    for data in ["cdnow", "synthetic"]:
        pair = {}
        for impl in ["clvmodels", "lifetimes"]:
            print(f"running {data} / {impl} ...", file=sys.stderr, flush=True)
            pair[impl] = run_case(data, impl, args)
        ours, ref = pair["clvmodels"]["check"], pair["lifetimes"]["check"]
        for col, value in ref.items():
            if not np.isclose(ours[col], value, rtol=1e-6, atol=1e-6):
                raise SystemExit(f"{data}: outputs differ in {col}: {ours[col]} vs {value}")
        results.append(pair)

    import lifetimes

    print(
        f"\nPython {platform.python_version()}, pandas {pd.__version__}, numpy "
        f"{np.__version__}, lifetimes {lifetimes.__version__}; {os.cpu_count()} CPUs; "
        f"peak memory: {results[0]['clvmodels']['method']}\n"
    )
    print("| data | rows | customers | input MB | implementation | wall (s) | CPU (s) | peak MB |")
    print("|---|---:|---:|---:|---|---:|---:|---:|")
    for pair in results:
        for impl in ["clvmodels", "lifetimes"]:
            r = pair[impl]
            print(
                f"| {r['data']} | {r['rows']:,} | {r['customers']:,} | {r['input_mb']:.0f} | "
                f"{impl} | {r['seconds']:.3f} | {r['cpu_seconds']:.3f} | {r['peak_mb']:.0f} |"
            )
    print("\n| data | speed-up, wall | speed-up, CPU | peak memory, ours / lifetimes |")
    print("|---|---:|---:|---:|")
    for pair in results:
        ours, ref = pair["clvmodels"], pair["lifetimes"]
        print(
            f"| {ours['data']} | {ref['seconds'] / ours['seconds']:.1f}x | "
            f"{ref['cpu_seconds'] / ours['cpu_seconds']:.1f}x | "
            f"{ours['peak_mb'] / max(ref['peak_mb'], 1e-9):.2f} |"
        )


if __name__ == "__main__":
    main()
