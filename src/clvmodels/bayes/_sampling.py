"""Running the samplers: nutpie (default), PyMC's NUTS (fallback), MAP and ADVI; diagnostics.

Compiled nutpie models are cached per model *structure* (model class, prior families,
number of segments): data and prior hyperparameters are shared variables, so refitting
the same kind of model on other data (cross-validation, simulation studies, one fit per
segment) swaps them in with ``CompiledPyMCModel.with_data`` instead of compiling again.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import weakref
from collections import OrderedDict

import numpy as np

_CACHE_SIZE = 16
_COMPILED: OrderedDict = OrderedDict()
_PROBE: threading.Thread | None = None


def show_progress(progressbar: bool | None) -> bool:
    """Progress bar policy: never when the environment variable ``CI`` is set; otherwise
    the caller's choice, or (``None``) only in a terminal or a notebook."""
    if os.environ.get("CI"):
        return False
    if progressbar is not None:
        return bool(progressbar)
    if "ipykernel" in sys.modules:
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def sample_nutpie(
    model,
    key,
    shared_values,
    var_names,
    *,
    draws,
    tune,
    chains,
    cores,
    random_seed,
    progressbar,
    backend="numba",
    **kwargs,
):
    """Sample ``model`` with nutpie.

    ``backend="numba"``: nutpie's own compilation of the log density with numba (fast
    gradients, chains truly parallel; the compilation, ~15-30 s, is not cached on disk,
    so compiled models are cached in memory by structure and refits only swap the data).
    ``backend="c"``: the log density compiled by pytensor's C back-end, whose compiled
    code is cached on disk (~2 s when warm), called from nutpie's Rust sampler through
    Python (one function copy per chain). Such chains hold Python's GIL, so they run in
    ``min(cores, chains)`` forked worker processes, not threads (see
    :mod:`clvmodels.bayes._chains`).
    """
    import nutpie

    common = {"draws": draws, "tune": tune, "chains": chains, "cores": cores, **kwargs}
    if backend == "c":
        from ._chains import sample_chains

        with gc_paused():
            compiled = compile_c(model, var_names)
        return sample_chains(
            compiled,
            var_names,
            random_seed=random_seed,
            progressbar=progressbar,
            **common,
        )
    if backend != "numba":
        raise ValueError(f"backend must be 'numba' or 'c', got {backend!r}")
    compiled = _COMPILED.get(key) if key is not None else None
    if compiled is None:
        with gc_paused():
            compiled = nutpie.compile_pymc_model(model, backend="numba", var_names=var_names)
        if key is not None:
            _COMPILED[key] = compiled
            while len(_COMPILED) > _CACHE_SIZE:
                _COMPILED.popitem(last=False)
    else:
        _COMPILED.move_to_end(key)
        compiled = compiled.with_data(**shared_values)
    return nutpie.sample(
        compiled, seed=random_seed, progress_bar=progressbar, save_warmup=False, **common
    )


def compile_c(model, var_names):
    """A nutpie model whose log density and gradient are compiled by pytensor's C back-end.

    Mirrors nutpie's own JAX path (``nutpie.compile_pymc._compile_pymc_model_jax``) with
    pytensor's C back-end (:func:`_c_mode`); it uses nutpie helpers that are not public
    API, so an ImportError here makes the caller fall back to PyMC's NUTS.
    """
    import numpy as np
    from nutpie.compile_pymc import _make_functions, _prepare_dims_and_coords, _wrap_with_lock
    from nutpie.compiled_pyfunc import from_pyfunc
    from pymc.initial_point import make_initial_point_fn

    point_fn = make_initial_point_fn(
        model=model,
        default_strategy="support_point",
        jitter_rvs=set(model.free_RVs),
        return_transformed=True,
    )
    n_dim, _, logp_fn, expand_fn, initial_point_fn, shape_info = _make_functions(
        model,
        mode=_c_mode(),
        compute_grad=True,
        join_expanded=False,
        pymc_initial_point_fn=_wrap_with_lock(point_fn),
        var_names=var_names,
    )
    names, _, shapes = shape_info
    copies = {"logp": [], "expand": []}

    def borrow(kind, template, closure_of):
        """A copy of a compiled function for one chain (pytensor functions are not
        thread-safe), back in the pool when the chain's closure is freed: chains run one
        after another in a process reuse it (a copy takes ~40 ms)."""
        pool = copies[kind]
        try:
            fn = pool.pop()
        except IndexError:
            fn = template.copy()
            fn.trust_input = True
        closure = closure_of(fn)
        weakref.finalize(closure, pool.append, fn)
        return closure

    def make_logp_func():
        def closure_of(fn):
            def logp(x, **shared):
                value, grad = fn(x)
                return float(value), np.asarray(grad, dtype="float64", order="C")

            return logp

        return borrow("logp", logp_fn, closure_of)

    def make_expand_func(seed1, seed2, chain):
        def closure_of(fn):
            def expand(x, **shared):
                return {
                    n: np.asarray(v, dtype="float64", order="C").reshape(s)
                    for n, v, s in zip(names, fn(x), shapes, strict=True)
                }

            return expand

        return borrow("expand", expand_fn, closure_of)

    dims, coords = _prepare_dims_and_coords(model, shape_info)
    return from_pyfunc(
        ndim=n_dim,
        make_logp_fn=make_logp_func,
        make_expand_fn=make_expand_func,
        make_initial_point_fn=initial_point_fn,
        expanded_dtypes=[np.dtype("float64")] * len(names),
        expanded_shapes=shapes,
        expanded_names=names,
        dims=dims,
        coords=coords,
    )


@contextlib.contextmanager
def gc_paused():
    """Python's cyclic garbage collector off while PyMC is imported and a model is built
    and compiled (restored on exit, also after an error).

    Importing PyMC and building and rewriting a pytensor graph create hundreds of
    thousands of long-lived objects, which trigger full collections that traverse every
    object in the process (half a million): pausing them took 0.4-0.5 s off a 6.3 s
    BG/NBD fit on CDNOW, end to end in a fresh process. Objects are still freed by
    reference counting; the cycles made meanwhile wait for the next collection (peak
    memory +5 MB on that fit, +12 MB for the segment model on the CDNOW master).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _c_mode():
    """pytensor's ``FAST_RUN`` rewrites and C back-end, with two changes measured on the
    BG/NBD on CDNOW (1,016 distinct rows): the ``cvm_nogc`` linker keeps intermediate
    arrays between calls instead of freeing and allocating them again (80 -> 75 us per
    log density and gradient; a few MB for the up to 10,000 rows this backend
    gets), and without the in-place rewrites, whose failed attempts cost 0.09 s of
    rewriting and which save nothing once buffers are kept."""
    from pytensor.compile.mode import Mode

    return Mode(linker="cvm_nogc", optimizer="fast_run").excluding("inplace")


def probe_compiler() -> None:
    """Start pytensor's once-per-process probe of the C++ compiler in a thread.

    Before its first C module in a process, pytensor runs g++ three times to find the
    flags ``-march=native`` stands for (0.26 s on this machine). The probe mostly waits on
    g++, without holding the GIL, so it runs while this thread builds the model and
    rewrites its graph. If the linker gets there first it probes again, with the same
    result.

    The thread must import nothing: an import there ran concurrently with this thread's
    ``import nutpie``, and setuptools' distutils shim, imported by the probe, edits
    ``sys.meta_path`` while the other import walks it, which once made nutpie "not
    found". So the module the probe imports lazily is imported here first, and a test
    checks that the probe imports no module (``tests/test_bayes.py``).
    """
    try:
        import setuptools._distutils.sysconfig  # noqa: F401 - pytensor's lazy import
        from pytensor.link.c.cmodule import GCC_compiler
    except ImportError:
        return
    global _PROBE
    if getattr(GCC_compiler, "march_flags", ()) is None and _PROBE is None:

        def probe():
            try:
                GCC_compiler.compile_args()
            except Exception:  # noqa: BLE001 - the linker will probe (and report) itself
                pass

        _PROBE = threading.Thread(target=probe, name="clvmodels-compiler-probe", daemon=True)
        _PROBE.start()


def join_probe() -> None:
    """Wait for the compiler probe (before forking: a forked child must not inherit a
    half-done subprocess call)."""
    if _PROBE is not None:
        _PROBE.join()


def sample_pymc(
    model, var_names, *, draws, tune, chains, cores, random_seed, progressbar, **kwargs
):
    """Sample with PyMC's own NUTS (the fallback when nutpie is unavailable or fails)."""
    import pymc as pm

    with model:
        return pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            random_seed=random_seed,
            progressbar=progressbar,
            var_names=var_names,
            nuts_sampler="pymc",
            compute_convergence_checks=False,
            **kwargs,
        )


def fit_map(model, var_names, *, random_seed, progressbar):
    """The posterior mode, stored as a posterior of one chain with one draw."""
    import arviz as az
    import pymc as pm

    with model:
        point = pm.find_MAP(progressbar=progressbar, seed=random_seed)
    posterior = {n: np.asarray(point[n])[None, None, ...] for n in var_names}
    return az.from_dict(posterior=posterior, coords=_coords(model), dims=_dims(model, var_names))


def fit_advi(model, var_names, *, draws, n_steps, random_seed, progressbar):
    """Mean-field ADVI, then ``draws`` draws of the approximation as one chain."""
    import pymc as pm

    with model:
        # start at the posterior mode: from the prior's centre, mean-field ADVI stalled far
        # from the posterior on CDNOW (r off by 2x after 20,000 steps)
        start = pm.find_MAP(progressbar=False, seed=random_seed, include_transformed=True)
        approx = pm.fit(
            n=n_steps, method="advi", start=start, random_seed=random_seed, progressbar=progressbar
        )
        idata = approx.sample(draws=draws, random_seed=random_seed)
    keep = [v for v in idata.posterior.data_vars if v in var_names]
    idata.posterior = idata.posterior[keep]
    return idata


def _coords(model):
    return {k: list(v) for k, v in model.coords.items() if v is not None}


def _dims(model, var_names):
    return {
        n: list(model.named_vars_to_dims[n]) for n in var_names if n in model.named_vars_to_dims
    }


def _elements(da):
    """('r', draws) or ('r[seg A]', draws) for each element of a variable; draws is a
    (chain, draw) array."""
    dims = [d for d in da.dims if d not in ("chain", "draw")]
    values = da.transpose("chain", "draw", *dims).values
    return array_elements(da.name, values, [da[d].values for d in dims])


def array_elements(name, values, labels):
    """:func:`_elements` of a (chain, draw, ...) array whose further axes are labelled
    ``labels`` (one sequence of labels per axis)."""
    values = np.asarray(values)
    flat = values.reshape(values.shape[0], values.shape[1], -1)
    if values.ndim == 2:
        return [(name, flat[:, :, 0])]
    rows = np.array(np.meshgrid(*labels, indexing="ij"), dtype=object)
    rows = rows.reshape(len(labels), -1).T
    return [
        (f"{name}[{', '.join(str(v) for v in row)}]", flat[:, :, j])
        for j, row in enumerate(rows)
    ]


def diagnostics(idata, var_names):
    """R-hat, bulk and tail ESS per parameter element, and the number of divergences,
    of an InferenceData (:func:`diagnostics_of`)."""
    elements = [e for name in var_names for e in _elements(idata.posterior[name])]
    n_div = 0
    if hasattr(idata, "sample_stats") and "diverging" in idata.sample_stats:
        n_div = int(idata.sample_stats["diverging"].sum())
    return diagnostics_of(elements), n_div


def diagnostics_of(elements):
    """R-hat and bulk and tail ESS of each (label, (chain, draw) draws) element, as a
    table indexed by ``parameter``.

    Rank-normalised split R-hat and bulk/tail ESS (Vehtari et al. 2021; tail ESS at the
    5% and 95% quantiles, ArviZ's default) from ArviZ's array layer
    (``arviz_stats.base.array_stats``: numpy only, without ArviZ's 1.5 s import of its
    plotting stack; the same values as ``arviz.rhat`` and ``arviz.ess``).
    """
    import pandas as pd
    from arviz_stats.base import array_stats

    rows = []
    with np.errstate(divide="ignore", invalid="ignore"):  # a stuck chain: NaN R-hat
        for label, draws in elements:
            rhat = array_stats.rhat(draws, chain_axis=0, draw_axis=1)
            bulk = array_stats.ess(draws, chain_axis=0, draw_axis=1, method="bulk")
            tail = array_stats.ess(draws, chain_axis=0, draw_axis=1, method="tail", prob=0.05)
            rows.append((label, float(rhat), float(bulk), float(tail)))
    table = pd.DataFrame(rows, columns=["parameter", "r_hat", "ess_bulk", "ess_tail"])
    return table.set_index("parameter")
