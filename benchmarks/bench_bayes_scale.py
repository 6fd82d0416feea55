"""Benchmark of the Bayesian models at scale: a million customers, in one run.

Data. ``simulate`` draws customers exactly from a BTYD model (BG/NBD by default) with
ages and recencies in whole days over two years, as ``rfm_summary(..., unit="D")`` gives
them from a daily log: customer i is acquired on a uniform day of the two years at a
uniform time of that day, observed to the end of the last day, so ``T`` is a whole
number of days (0..730) and the recency the day of the last purchase (floored, never past
``T``). 1,000,000 such customers have about 330,000 distinct (x, t_x, T) rows. Each repeat
buyer's mean spend is drawn from the Gamma-Gamma model (CDNOW's published p, q, v). With
``segments=20`` customer i belongs to one of 20 segments of unequal sizes (12% down to
2.5%), each with its own parameters, log-normal around the population's (spread 0.3 on
the log scale).

Cases (each in a fresh Python process, its fits' progress bars shown; wall and CPU
time, with the CPU of its chain worker processes, and peak memory: the largest resident
set of any one of its processes (``wait4``) and the peak of the proportional set size
summed over its process tree, sampled every 0.5 s, in which pages that forked chain
workers share count once):

* ``fit`` (one per ``--models`` name): the Bayesian model on ``--customers`` customers,
  4 chains x 1,000 draws after 1,000 tuning steps; convergence, and whether each true
  parameter is inside its 94% HDI. The posterior is saved (netCDF) for ``clv``.
* ``gammagamma``: the Bayesian Gamma-Gamma on the repeat buyers of the same customers.
* ``clv``: both posteriors loaded, the 52-week (364 days, 13 periods of 28 days, 1% per
  period) CLV of every customer with its 94% HDI and 90% predictive interval
  (``bayes.customer_lifetime_value(..., level=0.9)``), in bounded memory.
* ``segments``: the hierarchical ``SegmentBGNBD`` on the customers in 20 segments.
* ``gradient``: milliseconds per log density and gradient of ``bayes.BGNBD`` at
  ``--gradient-sizes`` customers: the ``loglik`` graph (pytensor C), the summed numpy Op
  that nutpie's C back-end samples (``bgnbd.loglik_total_and_grad``) and the fast path's
  JAX program.
* ``reference`` and ``ours_small``: pymc-marketing's ``BetaGeoModel`` (``--reference-
  sampler``, nutpie by default) and ``bayes.BGNBD`` on the same ``--small-customers``
  (100,000) customers, for the ratio.

Run: ``uv run --group bench python benchmarks/bench_bayes_scale.py`` (pymc-marketing is in
the ``bench`` dependency group; ``--cases`` picks cases, ``--models`` the transaction
models: ``bgnbd`` by default, ``paretonbd`` with CDNOW's published Pareto/NBD parameters
in days); a model is added with one line of ``MODELS``. The 1M cases take tens of
minutes of two cores: run them rarely.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

DRAWS, TUNE, CHAINS, CORES, SEED = 1000, 1000, 4, 2, 0
DAYS = 730
# CDNOW's published weekly parameters (REFERENCE.md), alpha and beta in days
MODELS = {
    "bgnbd": ("BGNBD", dict(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426)),
    "paretonbd": ("ParetoNBD", dict(r=0.553, alpha=10.578 * 7, s=0.606, beta=11.669 * 7)),
}
SPEND = dict(p=6.25, q=3.74, v=15.44)  # Gamma-Gamma on CDNOW (REFERENCE.md)
HORIZON, PERIOD, DISCOUNT, LEVEL = 364.0, 28.0, 0.01, 0.9  # 52 weeks in days
SEGMENTS, SEGMENT_SPREAD = 20, 0.3
OUT = Path("/tmp/clvmodels_bench_bayes_scale")


# --- data --------------------------------------------------------------------------------------


def segment_sizes(n: int, segments: int) -> np.ndarray:
    """Unequal segment sizes summing to ``n``: proportional to 1 / (s + 2) ** 0.6."""
    share = 1.0 / np.arange(2, segments + 2) ** 0.6
    sizes = np.floor(n * share / share.sum()).astype(np.int64)
    sizes[0] += n - sizes.sum()
    return sizes


def simulate(model: str, n: int, seed: int, segments: int = 0):
    """Customers of ``model`` (a key of MODELS) in days, with Gamma-Gamma spend (see the
    module docstring). Returns (rfm, truth): truth maps each segment (0 without segments)
    to its parameters."""
    from clvmodels import models
    from clvmodels.models import gammagamma

    name, population = MODELS[model]
    mle = getattr(models, name)
    rng = np.random.default_rng(seed)
    sizes = segment_sizes(n, segments) if segments else np.array([n])
    frames, truth = [], {}
    for s, size in enumerate(sizes):
        theta = dict(population)
        if segments:
            theta = {k: float(v * np.exp(SEGMENT_SPREAD * rng.standard_normal()))
                     for k, v in population.items()}  # fmt: skip
        truth[s] = theta
        age = rng.integers(0, DAYS + 1, size)
        u = rng.random(size)  # time of day of the first purchase, as a share of the day
        sim = mle.from_params(**theta).simulate(int(size), age + 1.0 - u, random_state=rng)
        x = sim["frequency"].to_numpy()
        last = np.minimum(np.floor(u + sim["recency"].to_numpy()), age)
        frames.append(pd.DataFrame({
            "frequency": x,
            "recency": np.where(x > 0, last, 0.0),
            "T": age.astype(float),
            "monetary_value": gammagamma.simulate(*SPEND.values(), x, rng),
            "segment": s,
        }))  # fmt: skip
    rfm = pd.concat(frames, ignore_index=True)
    rfm.index.name = "customer_id"
    return (rfm if segments else rfm.drop(columns="segment")), truth


def _covered(model, truth: dict, prob: float = 0.94) -> dict:
    """For each (segment and) parameter: the true value, the HDI and whether it is inside."""
    import arviz as az

    post = model.idata_.posterior
    out = {}
    for name in model.param_names:
        hdi = az.hdi(post[name], hdi_prob=prob)[name].values.reshape(-1, 2)
        for s, (lo, hi) in enumerate(hdi):
            label = name if len(hdi) == 1 else f"{post['segment'].values[s]}/{name}"
            true = truth[int(post["segment"].values[s]) if len(hdi) > 1 else 0][name]
            out[label] = {"true": true, "hdi": [float(lo), float(hi)],
                          "inside": bool(lo <= true <= hi)}  # fmt: skip
    return out


def _convergence(model) -> dict:
    stats = model.idata_.sample_stats
    steps = "n_steps" if "n_steps" in stats else "tree_size"
    return {
        "converged": bool(model.convergence_.passed),
        "max_rhat": float(model.diagnostics_["r_hat"].max()),
        "min_ess_bulk": float(model.diagnostics_["ess_bulk"].min()),
        "divergences": int(model.n_divergent_),
        "gradients_per_draw": float(stats[steps].mean()) if steps in stats else None,
    }


def _fit_info(model) -> dict:
    meta = json.loads(model.idata_.posterior.attrs["clvmodels"])
    return {"distinct_rows": meta["n_unique"], "sampler": meta["sampler"]}


def _fit_kwargs(args) -> dict:
    return {"draws": args.draws, "tune": args.tune, "chains": CHAINS, "cores": CORES,
            "random_seed": SEED, "progressbar": True, "backend": args.backend}  # fmt: skip


# --- the cases (each in a fresh subprocess) -------------------------------------------------------


def case_fit(args) -> dict:
    from clvmodels import bayes

    rfm, truth = simulate(args.model, args.customers, args.seed)
    cls = getattr(bayes, MODELS[args.model][0])
    t0 = time.perf_counter()
    m = cls().fit(rfm, **_fit_kwargs(args))
    seconds = time.perf_counter() - t0
    OUT.mkdir(exist_ok=True)
    m.save(OUT / f"{args.model}_{args.customers}.nc")
    return {"seconds_fit": seconds, "customers": len(rfm),
            **_fit_info(m),
            **_convergence(m), "truth_in_hdi94": _covered(m, truth)}  # fmt: skip


def case_gammagamma(args) -> dict:
    from clvmodels import bayes

    rfm, _ = simulate(args.model, args.customers, args.seed)
    t0 = time.perf_counter()
    m = bayes.GammaGamma().fit(rfm, **_fit_kwargs(args))
    seconds = time.perf_counter() - t0
    m.save(OUT / f"gammagamma_{args.model}_{args.customers}.nc")
    return {"seconds_fit": seconds, "repeat_buyers": int((rfm["frequency"] > 0).sum()),
            **_fit_info(m), **_convergence(m),
            "truth_in_hdi94": _covered(m, {0: SPEND})}  # fmt: skip


def case_clv(args) -> dict:
    from clvmodels import bayes

    rfm, _ = simulate(args.model, args.customers, args.seed)
    tm = getattr(bayes, MODELS[args.model][0]).load(OUT / f"{args.model}_{args.customers}.nc")
    sm = bayes.GammaGamma.load(OUT / f"gammagamma_{args.model}_{args.customers}.nc")
    t0 = time.perf_counter()
    clv = bayes.customer_lifetime_value(tm, sm, rfm, horizon=HORIZON, period=PERIOD,
                                        discount_rate=DISCOUNT, level=LEVEL)  # fmt: skip
    seconds = time.perf_counter() - t0
    return {"seconds_clv": seconds, "customers": len(clv),
            "draws": int(tm.posterior_draws().sizes["sample"]),
            "total_clv_mean": float(clv["mean"].sum()),
            "finite": bool(np.isfinite(clv.to_numpy()).all())}  # fmt: skip


def case_segments(args) -> dict:
    from clvmodels import bayes

    rfm, truth = simulate(args.model, args.customers, args.seed, segments=SEGMENTS)
    t0 = time.perf_counter()
    m = bayes.SegmentBGNBD(segment="segment").fit(rfm, **_fit_kwargs(args))
    seconds = time.perf_counter() - t0
    covered = _covered(m, truth)
    return {"seconds_fit": seconds, "customers": len(rfm), "segments": SEGMENTS,
            **_fit_info(m), **_convergence(m),
            "truth_in_hdi94_share": float(np.mean([c["inside"] for c in covered.values()]))}


def case_ours_small(args) -> dict:
    from clvmodels import bayes

    rfm, truth = simulate("bgnbd", args.small_customers, args.seed)
    t0 = time.perf_counter()
    m = bayes.BGNBD().fit(rfm, **_fit_kwargs(args))
    seconds = time.perf_counter() - t0
    return {"seconds_fit": seconds, "customers": len(rfm), **_fit_info(m), **_convergence(m),
            "means": {k: float(m.idata_.posterior[k].mean()) for k in m.param_names}}


def case_reference(args) -> dict:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pymc_marketing.clv import BetaGeoModel

        rfm, _ = simulate("bgnbd", args.small_customers, args.seed)
        data = rfm.reset_index()[["customer_id", "frequency", "recency", "T"]]
        t0 = time.perf_counter()
        idata = BetaGeoModel(data=data).fit(
            method="mcmc", nuts_sampler=args.reference_sampler,
            **{k: v for k, v in _fit_kwargs(args).items() if k != "backend"})
        seconds = time.perf_counter() - t0
    return {"seconds_fit": seconds, "customers": len(rfm), "sampler": args.reference_sampler,
            "divergences": int(idata.sample_stats["diverging"].sum()),
            "means": {k: float(idata.posterior[k].mean()) for k in ("r", "alpha", "a", "b")}}


def _value_and_grad(g, data, z):
    import jax

    return jax.block_until_ready(g(z, data))


def case_gradient(args) -> dict:
    """Milliseconds per log density + gradient of ``bayes.BGNBD`` at each of
    ``--gradient-sizes`` customers: the pytensor graph of ``loglik`` (C), the summed numpy
    Op (``loglik_total_and_grad``, what nutpie's C back-end samples) and the fast path's
    JAX program (blackjax); the last two decide ``AUTO_TOTAL_MIN_ROWS``."""
    import jax

    from clvmodels import bayes
    from clvmodels.bayes import _fast

    def per_call(f, x0, k=20):
        f(x0)
        t0 = time.perf_counter()
        for i in range(k):
            f(x0 + 1e-3 * i)
        return 1e3 * (time.perf_counter() - t0) / k

    out = {}
    for n in (int(v) for v in args.gradient_sizes.split(",")):
        rfm, _ = simulate("bgnbd", n, args.seed)
        m = bayes.BGNBD()
        codes, _, cols, z, w = m._fit_data(rfm)
        specs = m._prior_specs(cols, w)
        row = {"distinct_rows": int(w.size)}
        for name, total in (("graph_c_ms", False), ("numpy_op_ms", True)):
            model, _, _ = m._build(cols, w, codes, 1, specs, z, total=total)
            f = model.logp_dlogp_function(ravel_inputs=True)
            f.set_extra_values({})
            x0 = np.concatenate([np.atleast_1d(v) for v in model.initial_point().values()])
            row[name] = per_call(f, x0)
        plan = _fast.plan(m, specs, cols, w, codes, 1, {}, auto=False)
        data = _fast.device_data(plan)
        g = jax.jit(jax.value_and_grad(partial(_fast.log_density, m, plan)))
        row["jax_ms"] = per_call(partial(_value_and_grad, g, data), jax.numpy.zeros(plan.dim))
        print(n, row, file=sys.stderr, flush=True)
        out[str(n)] = row
    return out


CASES = {"fit": case_fit, "gradient": case_gradient, "gammagamma": case_gammagamma, "clv": case_clv,
         "segments": case_segments, "ours_small": case_ours_small,
         "reference": case_reference}  # fmt: skip


# --- measurement (in the parent) --------------------------------------------------------------


def _tree_pss_kb(root: int) -> int:
    """Proportional set size of ``root`` and all its descendants, in kB: pages shared by
    forked chain workers count once in all (0 once the tree is gone)."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parent[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in parent and pid not in tree:
            tree.add(pid)
            todo.extend(p for p, q in parent.items() if q == pid)
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                total += next(int(line.split()[1]) for line in fh if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
    return total


def run(case: str, args) -> dict:
    """Run one case in a fresh interpreter, measuring its time, CPU and peak memory."""
    cmd = [sys.executable, __file__, "--worker", case, *sys.argv[1:]]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    stop = threading.Event()

    def poll():
        while not stop.wait(0.5):
            peak[0] = max(peak[0], _tree_pss_kb(proc.pid))

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    tail = []

    def relay():  # the case's progress bars and messages, shown as they come
        for chunk in iter(lambda: proc.stderr.read(256), ""):
            sys.stderr.write(chunk)
            sys.stderr.flush()
            tail.append(chunk)
        proc.err = "".join(tail)

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    stop.set()
    reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"case {case} failed:\n{proc.err[-4000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update({
        "seconds_process": time.perf_counter() - t0,
        "cpu_seconds_process": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "peak_tree_pss_mb": peak[0] / 1024,
    })  # fmt: skip
    print(case, json.dumps(result), file=sys.stderr, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="fit,gammagamma,clv,segments,reference,ours_small")
    parser.add_argument("--models", default="bgnbd", help=f"of {sorted(MODELS)}")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--small-customers", type=int, default=100_000)
    parser.add_argument("--draws", type=int, default=DRAWS)
    parser.add_argument("--tune", type=int, default=TUNE)
    parser.add_argument("--backend", default="auto", choices=["auto", "c", "numba"],
                        help="nutpie back-end of our fits (bayes.BGNBD.fit's backend=)")
    parser.add_argument("--reference-sampler", default="nutpie", choices=["nutpie", "pymc"])
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--gradient-sizes", default="3000,10000,30000,100000,1000000")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="bgnbd", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(CASES[args.worker](args)))
        return
    results = {}
    for case in args.cases.split(","):
        if case in ("fit", "gammagamma", "clv"):
            for model in args.models.split(","):
                sys.argv += ["--model", model]
                results[f"{case}:{model}"] = run(case, args)
                del sys.argv[-2:]
        else:
            results[case] = run(case, args)
    print(json.dumps(results, indent=2))
    summary(results, args)


def summary(results: dict, args) -> None:
    """The acceptance figures, one line each."""
    print(f"\n{args.customers:,} simulated customers (days, two years); {CHAINS} chains x "
          f"{args.draws} draws after {args.tune} tuning steps, {CORES} cores")  # fmt: skip
    for key, r in results.items():
        inside = r.get("truth_in_hdi94")
        cover = "" if inside is None else (
            " | truth in 94% HDI: " + ", ".join(f"{k} {'yes' if v['inside'] else 'NO'}"
                                                 for k, v in inside.items()))  # fmt: skip
        conv = "" if "converged" not in r else (
            f" | converged {r['converged']} (R-hat {r['max_rhat']:.3f}, "
            f"ESS {r['min_ess_bulk']:.0f}, {r['divergences']} div.)")  # fmt: skip
        print(f"{key:>16}: {r['seconds_process']:7.1f} s end to end "
              f"({r['cpu_seconds_process']:.0f} s CPU), peak RSS {r['peak_rss_mb']:.0f} MB "
              f"(tree PSS {r['peak_tree_pss_mb']:.0f} MB){conv}{cover}")  # fmt: skip
    if "reference" in results and "ours_small" in results:
        ref, ours = results["reference"], results["ours_small"]
        print(f"\n{args.small_customers:,} customers: pymc-marketing / clvmodels time "
              f"{ref['seconds_process'] / ours['seconds_process']:.2f}x, peak memory "
              f"{ref['peak_tree_pss_mb'] / ours['peak_tree_pss_mb']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
