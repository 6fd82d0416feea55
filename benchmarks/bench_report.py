"""Time of ``clvmodels report`` end to end (what ``make run`` runs), and of its phases.

Usage::

    .venv/bin/python benchmarks/bench_report.py                 # median of 3 fresh runs
    .venv/bin/python benchmarks/bench_report.py --repeat 0 --phases    # only the phases
    .venv/bin/python benchmarks/bench_report.py -- --fast       # extra flags for the command

How it is measured. Each run is a fresh process (``clvmodels report --out
<tmp>/report.html --no-progress`` plus the extra flags: the CDNOW master with the
default settings, the hierarchical model included; the ``clvmodels`` script beside this
Python), so imports, PyTensor's compile
cache lookups and the notebook kernel's start are counted as a user meets them. The
compile cache (``~/.pytensor``) is kept between runs: the target is the time after
setup. Reported per run: wall-clock time and the CPU time of the process and its
children (``resource.getrusage(RUSAGE_CHILDREN)``: the notebook kernel and the sampler's
chain processes), then the median of ``--repeat`` runs. On a machine shared with other
work the wall time rises with the load while the CPU time does not; both are printed
with the load average before and after.

``--phases`` also times the steps of :func:`clvmodels.analysis.analyze` in this process
(one run, the same settings): the model fits and the comparisons, by wrapping the
functions analyze calls, so that one sees where the time goes.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(extra: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one fresh ``clvmodels report``."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(Path(sys.executable).with_name("clvmodels")), "report", "--out",
               str(Path(tmp) / "report.html"), "--no-progress", *extra]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            sys.exit(f"clvmodels report failed ({done.returncode}):\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def phases() -> None:
    """Seconds spent in the steps of analyze (one run in this process)."""
    import importlib
    import warnings

    from clvmodels import analysis, bayes, models

    compare = importlib.import_module("clvmodels.compare")  # the module, not the function

    spent: dict[str, float] = {}

    def timed(owner, name, label):
        inner = getattr(owner, name)

        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - t0

        setattr(owner, name, wrapper)

    for cls in (bayes.BGNBD, bayes.GammaGamma, bayes.SegmentBGNBD):
        timed(cls, "fit", f"fit bayes.{cls.__name__}")
    for cls in (models.BGNBD, models.ParetoNBD, models.GammaGamma, models.MBGNBD):
        timed(cls, "fit", f"fit {cls.__name__} (MLE)")
    for name in ("holdout_predictions", "compare", "segment_estimates", "calibration_deciles"):
        timed(compare, name, name)
    timed(bayes, "customer_lifetime_value", "bayes.customer_lifetime_value")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        log = analysis.open_log(None)
        spent["open_log"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        analysis.analyze(log)
        total = time.perf_counter() - t0
    print(f"analyze on CDNOW: {total:.1f} s")
    for label, sec in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {label:<40}{sec:8.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh runs (default 3)")
    parser.add_argument("--phases", action="store_true", help="also time analyze's steps")
    parser.add_argument("extra", nargs="*", help="flags for clvmodels report (after --)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    runs = []
    for k in range(args.repeat):
        wall, cpu = one_run(args.extra)
        runs.append((wall, cpu))
        print(f"run {k + 1}: wall {wall:6.1f} s, CPU {cpu:6.1f} s")
    if runs:
        print(f"median of {len(runs)}: wall {statistics.median(r[0] for r in runs):.1f} s, "
              f"CPU {statistics.median(r[1] for r in runs):.1f} s")  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.phases:
        phases()


if __name__ == "__main__":
    main()
