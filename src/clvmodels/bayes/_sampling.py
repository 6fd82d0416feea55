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
    **kwargs,
):
    """Sample ``model`` with nutpie (numba back-end), reusing a compiled twin if cached."""
    import nutpie

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
        approx = pm.fit(n=n_steps, method="advi", random_seed=random_seed, progressbar=progressbar)
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
