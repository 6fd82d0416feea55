"""Chains of a nutpie model whose log density is a Python callback, in parallel processes.

nutpie's ``"c"`` backend calls the pytensor-compiled log density through Python, so its
chains hold Python's GIL and cannot run in parallel threads. Here each chain is its own
``nutpie.sample(chains=1)`` call with a seed of its own, and the chains are dealt to
``min(cores, chains)`` worker processes forked from this one after compilation (Linux
only: the compiled functions are inherited, nothing is compiled or imported again). On
CDNOW, 4 chains took 3.3 s in one process and 1.8 s in two workers on two cores.

The draws do not depend on how the chains were dealt: chain ``i`` always gets the
``i``-th seed of ``numpy.random.SeedSequence(random_seed)``, so ``cores=1``, any other
``cores``, and the in-process fallback give identical draws for the same seed.

Workers send their draws back as ``.npz`` bytes (no pickle) and progress as small
messages; the parent shows one progress bar (tqdm) for all chains. If a worker fails,
the chains run again in this process with the same seeds, where a genuine error raises
with its own traceback.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import traceback
import warnings

import numpy as np

_POLL_SECONDS = 0.25
_SKIP_STATS = ("chain", "draw")  # coordinates, not statistics
# per-draw vectors nutpie keeps only when asked (as nutpie.sample's own conversion does)
_STORED_IF = {
    "store_gradient": ["gradient"],
    "store_unconstrained": ["unconstrained_draw"],
    "store_mass_matrix": ["mass_matrix_inv", "mass_matrix_eigvals", "mass_matrix_stds"],
    "store_divergences": [
        "divergence_start",
        "divergence_end",
        "divergence_momentum",
        "divergence_start_gradient",
    ],
}


def chain_seeds(random_seed: int | None, chains: int) -> list[int]:
    """One 64-bit seed per chain from ``numpy.random.SeedSequence(random_seed)``."""
    state = np.random.SeedSequence(random_seed).generate_state(chains, dtype=np.uint64)
    return [int(s) for s in state]


def can_fork() -> bool:
    """Worker processes are forked only on Linux (fork is unsafe on macOS, absent on
    Windows)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def sample_chains(
    compiled,
    var_names,
    *,
    draws: int,
    tune: int,
    chains: int,
    cores: int,
    random_seed,
    progressbar: bool,
    **kwargs,
):
    """Sample ``chains`` chains of ``compiled`` (see the module docstring); InferenceData
    with the posterior of ``var_names`` and the sampler statistics of the kept draws."""
    seeds = chain_seeds(random_seed, chains)
    run = {"draws": int(draws), "tune": int(tune), **kwargs}
    workers = min(int(cores), chains) if can_fork() else 1
    total = chains * (int(draws) + int(tune))
    with _progress(progressbar, total, chains) as bar:
        arrays = None
        if workers > 1:
            arrays = _in_workers(compiled, var_names, seeds, workers, run, bar)
        if arrays is None:
            bar.reset()
            arrays = {}
            for i, seed in enumerate(seeds):
                report = bar.update if bar.shown else None
                arrays.update(_one_chain(compiled, var_names, i, seed, run, report))
    return _to_idata(arrays, chains, compiled)


# ---- one chain ------------------------------------------------------------------------
def _one_chain(compiled, var_names, index, seed, run, report) -> dict[str, np.ndarray]:
    """Run chain ``index``; its kept draws as ``{"{index}/post/{name}": array, ...,
    "{index}/stat/{name}": array}``, arrays of shape (draws, *item_shape)."""
    import nutpie

    settings = {"chains": 1, "cores": 1, "seed": seed, "progress_bar": False}
    settings.update(save_warmup=False, return_raw_trace=True, **run)
    # not blocking: an interrupt (Ctrl-C) cancels the chain and propagates, where
    # nutpie's blocking call would return the draws so far as if complete
    sampler = nutpie.sample(compiled, blocking=False, **settings)
    try:
        while (trace := _wait(sampler)) is None:
            if report is not None:
                report(index, _rows(sampler.inspect()))
    except BaseException:
        sampler.cancel()
        raise
    (draw_batch,), (stat_batch,) = trace.get_arrow_trace()
    if report is not None:
        report(index, draw_batch.num_rows)
    tuning = _column(stat_batch, "tuning")
    kept = slice(int(tuning.sum()), draw_batch.num_rows)
    out = {f"{index}/post/{name}": _column(draw_batch, name)[kept] for name in var_names}
    skip = set(_SKIP_STATS)
    for setting, names in _STORED_IF.items():
        if not run.get(setting, False):
            skip.update(names)
    for name in stat_batch.column_names:
        if name not in skip and (values := _column(stat_batch, name)) is not None:
            out[f"{index}/stat/{name}"] = values[kept]
    return out


def _wait(sampler):
    """The finished trace, or None when the chain is still running after a short wait."""
    try:
        return sampler.wait(timeout=_POLL_SECONDS)
    except TimeoutError:
        return None


def _rows(trace) -> int:
    batches, _ = trace.get_arrow_trace()
    return sum(b.num_rows for b in batches)


def _column(batch, name) -> np.ndarray | None:
    """A column of an arrow batch as (rows, *shape), the shape from nutpie's metadata
    (per-draw vectors without it as (rows, length)); None for a column with missing
    values or vectors of unequal length (nutpie's divergence locations)."""
    import pyarrow as pa

    col = batch.column(name)
    meta = col.field.metadata or {}
    shape = meta.get(b"shape", b"")
    shape = tuple(int(s) for s in shape.decode().split(",")) if shape else ()
    values = pa.array(col)
    if values.null_count:
        return None
    if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        offsets = np.asarray(values.offsets)
        lengths = np.diff(offsets)
        if not shape and (len(lengths) == 0 or lengths.min() != lengths.max()):
            return None
        shape = shape or (int(lengths[0]),)
        values = values.flatten()
    return values.to_numpy(zero_copy_only=False).reshape((batch.num_rows, *shape))


# ---- worker processes -----------------------------------------------------------------
def _in_workers(compiled, var_names, seeds, workers, run, bar):
    """Chains dealt round-robin to forked workers; None if a worker failed."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    from ._sampling import join_probe

    join_probe()
    ctx = mp.get_context("fork")
    procs, readers = [], {}
    try:
        for k in range(workers):
            mine = list(range(k, len(seeds), workers))
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_worker,
                args=(send, compiled, var_names, mine, seeds, run, bar.shown),
                daemon=True,
            )
            try:
                with warnings.catch_warnings():
                    # Python >= 3.12 warns about forking a process with threads (BLAS
                    # pools); the workers use no lock those threads could hold
                    warnings.simplefilter("ignore", DeprecationWarning)
                    # JAX (the fast path, if it ran first) warns at every fork that a
                    # child using JAX could deadlock: these children never touch JAX and
                    # leave by os._exit (no atexit handlers)
                    warnings.filterwarnings(
                        "ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning
                    )
                    proc.start()
            except Exception as err:  # e.g. fit() inside a daemonic process: no children
                recv.close()
                _warn_fallback(f"could not start worker processes ({err!r})")
                return None
            finally:
                send.close()
            procs.append(proc)
            readers[recv] = k
        _prepare_conversion()  # while the workers sample
        arrays, failed = {}, []
        while readers:
            for conn in wait(list(readers)):
                try:
                    message = conn.recv_bytes()
                except EOFError:
                    failed.append(f"worker {readers.pop(conn)} exited without its draws")
                    continue
                kind, body = message[:1], message[1:]
                if kind == b"p":
                    bar.update(*struct.unpack("<qq", body))
                elif kind == b"r":
                    with np.load(io.BytesIO(body), allow_pickle=False) as npz:
                        arrays.update({k: npz[k] for k in npz.files})
                    readers.pop(conn)
                else:
                    failed.append(body.decode(errors="replace"))
                    readers.pop(conn)
        if failed:
            _warn_fallback(failed[0].strip().splitlines()[-1])
            return None
        return arrays
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()


def _warn_fallback(reason: str) -> None:
    warnings.warn(
        f"parallel chains failed; sampling them again in this process: {reason}",
        RuntimeWarning,
        stacklevel=6,  # the caller of fit()
    )


def _worker(conn, compiled, var_names, mine, seeds, run, progress) -> None:
    """Body of a forked worker: run the chains ``mine``, send their draws, exit."""

    def report(index, rows):
        conn.send_bytes(b"p" + struct.pack("<qq", index, rows))

    try:
        arrays = {}
        for i in mine:
            arrays.update(
                _one_chain(compiled, var_names, i, seeds[i], run, report if progress else None)
            )
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        conn.send_bytes(b"r" + buf.getvalue())
    except BaseException:
        conn.send_bytes(b"e" + traceback.format_exc().encode())
    finally:
        conn.close()


# ---- assembling -----------------------------------------------------------------------
def _prepare_conversion() -> None:
    """xarray imports its optional array back-ends (dask: 0.2 s) on the first array it
    wraps; a tiny Dataset does it now, not after sampling."""
    import xarray as xr

    xr.Dataset({"x": ("chain", np.zeros(1))})


def _to_idata(arrays, chains, compiled):
    """InferenceData (posterior, sample_stats) from the chains' arrays."""
    import arviz as az

    groups: dict[str, dict[str, np.ndarray]] = {"post": {}, "stat": {}}
    names = {(key.split("/", 2)[1], key.split("/", 2)[2]) for key in arrays}
    for group, name in sorted(names):
        groups[group][name] = np.stack([arrays[f"{i}/{group}/{name}"] for i in range(chains)])
    dims = getattr(compiled, "dims", None) or {}
    coords = getattr(compiled, "coords", None) or {}
    return az.from_dict(
        posterior=groups["post"],
        sample_stats=groups["stat"],
        coords={k: list(v) for k, v in coords.items()},
        dims={k: list(v) for k, v in dims.items() if k in groups["post"]},
    )


# ---- progress -------------------------------------------------------------------------
class _Bar:
    """Progress of all chains in one bar; rows done per chain, whoever reports them."""

    def __init__(self, tqdm_bar, chains):
        self._bar = tqdm_bar
        self._done = [0] * chains

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def update(self, index: int, rows: int) -> None:
        rows = max(int(rows), self._done[index])
        if self._bar is not None and rows > self._done[index]:
            self._bar.update(rows - self._done[index])
        self._done[index] = rows

    def reset(self) -> None:
        if self._bar is not None and any(self._done):
            self._bar.reset()
        self._done = [0] * len(self._done)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.close()


def _progress(show: bool, total: int, chains: int) -> _Bar:
    if not show:
        return _Bar(None, chains)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm.auto without ipywidgets falls back to text
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"Sampling {chains} chains", unit=" draws")
    return _Bar(bar, chains)
