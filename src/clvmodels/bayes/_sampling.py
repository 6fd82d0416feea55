"""Running the samplers: nutpie (default), PyMC's NUTS (fallback), MAP and ADVI; diagnostics.

Compiled nutpie models are cached per model *structure* (model class, prior families,
number of segments): data and prior hyperparameters are shared variables, so refitting
the same kind of model on other data (cross-validation, simulation studies, one fit per
segment) swaps them in with ``CompiledPyMCModel.with_data`` instead of compiling again.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections import OrderedDict

import numpy as np

from ..errors import StatisticalWarning

RHAT_MAX = 1.01
ESS_MIN = 400
_CACHE_SIZE = 16
_COMPILED: OrderedDict = OrderedDict()


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
    Python (one function copy per chain). These chains share Python's GIL, so they run
    in one thread whatever ``cores`` says: on CDNOW, 4 chains took 8.3 s in two threads
    contending for the GIL and 4.8 s in one.
    """
    import nutpie

    if backend == "c":
        compiled = compile_c(model, var_names)
        cores = 1
    elif backend != "numba":
        raise ValueError(f"backend must be 'numba' or 'c', got {backend!r}")
    else:
        compiled = _COMPILED.get(key) if key is not None else None
        if compiled is None:
            compiled = nutpie.compile_pymc_model(model, backend="numba", var_names=var_names)
            if key is not None:
                _COMPILED[key] = compiled
                while len(_COMPILED) > _CACHE_SIZE:
                    _COMPILED.popitem(last=False)
        else:
            _COMPILED.move_to_end(key)
            compiled = compiled.with_data(**shared_values)
    return nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        seed=random_seed,
        progress_bar=progressbar,
        save_warmup=False,
        **kwargs,
    )


def compile_c(model, var_names):
    """A nutpie model whose log density and gradient are compiled by pytensor's C back-end.

    Mirrors nutpie's own JAX path (``nutpie.compile_pymc._compile_pymc_model_jax``) with
    the pytensor mode ``FAST_RUN``; it uses nutpie helpers that are not public API, so an
    ImportError here makes the caller fall back to PyMC's NUTS.
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
        mode="FAST_RUN",
        compute_grad=True,
        join_expanded=False,
        pymc_initial_point_fn=_wrap_with_lock(point_fn),
        var_names=var_names,
    )
    names, _, shapes = shape_info

    def make_logp_func():
        fn = logp_fn.copy()  # pytensor functions are not thread-safe: one per chain
        fn.trust_input = True

        def logp(x, **shared):
            value, grad = fn(x)
            return float(value), np.asarray(grad, dtype="float64", order="C")

        return logp

    def make_expand_func(seed1, seed2, chain):
        fn = expand_fn.copy()

        def expand(x, **shared):
            return {
                n: np.asarray(v, dtype="float64", order="C").reshape(s)
                for n, v, s in zip(names, fn(x), shapes, strict=True)
            }

        return expand

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


def _element_names(da) -> list[str]:
    """'r', or 'r[seg A]' for each element of a variable with a dimension."""
    dims = [d for d in da.dims if d not in ("chain", "draw")]
    if not dims:
        return [da.name]
    labels = (
        np.array(np.meshgrid(*[da[d].values for d in dims], indexing="ij"), dtype=object)
        .reshape(len(dims), -1)
        .T
    )
    return [f"{da.name}[{', '.join(str(v) for v in row)}]" for row in labels]


def diagnostics(idata, var_names):
    """R-hat, bulk and tail ESS per parameter element, and the number of divergences."""
    import arviz as az
    import pandas as pd

    post = idata.posterior[var_names]
    rhat = az.rhat(post)
    ess_bulk = az.ess(post, method="bulk")
    ess_tail = az.ess(post, method="tail")
    rows = []
    for name in var_names:
        for label, rh, eb, et in zip(
            _element_names(post[name]),
            np.ravel(rhat[name].values),
            np.ravel(ess_bulk[name].values),
            np.ravel(ess_tail[name].values),
            strict=True,
        ):
            rows.append((label, float(rh), float(eb), float(et)))
    table = pd.DataFrame(rows, columns=["parameter", "r_hat", "ess_bulk", "ess_tail"])
    table = table.set_index("parameter")
    n_div = 0
    if hasattr(idata, "sample_stats") and "diverging" in idata.sample_stats:
        n_div = int(idata.sample_stats["diverging"].sum())
    return table, n_div


def warn_if_unconverged(
    model_name: str, table, n_divergent: int, n_chains: int, stacklevel: int = 3
) -> None:
    """A :class:`StatisticalWarning` naming each parameter with R-hat > 1.01 or bulk
    ESS < 400, and the count of divergent transitions."""
    problems = []
    if n_chains > 1:
        bad = table[~(table["r_hat"] <= RHAT_MAX)]
        if len(bad):
            problems.append(f"R-hat > {RHAT_MAX} for " + _list(bad["r_hat"], "{:.3f}"))
    bad = table[~(table["ess_bulk"] >= ESS_MIN)]
    if len(bad):
        problems.append(f"bulk ESS < {ESS_MIN} for " + _list(bad["ess_bulk"], "{:.0f}"))
    if n_divergent:
        problems.append(f"{n_divergent} divergent transition(s)")
    if problems:
        warnings.warn(
            f"{model_name}: the sampler may not have converged: "
            + "; ".join(problems)
            + ". Draw more (draws=, tune=), check the data, or tighten the priors.",
            StatisticalWarning,
            stacklevel=stacklevel,
        )


def _list(values, fmt, limit=8) -> str:
    items = [f"{k} ({fmt.format(v)})" for k, v in values.items()]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
