r"""Shared machinery of the Bayesian models: priors, the PyMC model, fitting, predicting, saving.

The likelihood of every Bayesian model is the log-likelihood function of the
maximum-likelihood module (e.g. :func:`clvmodels.models.bgnbd.loglik`) called with the
pytensor back-end ``ops=pytensor_ops()``: one formula, not two derivations. Identical
rows (and, in segment models, identical rows of the same segment) enter once, weighted
by their count, through ``pm.Potential("loglik", sum(weight * loglik))``.

Priors
------
A prior is ``(distribution, {argument: value})`` with a PyMC distribution name, e.g.
``{"r": ("Gamma", {"alpha": 1.0, "beta": 1.0})}``, or a callable ``f(name)`` that creates
the PyMC variable (for anything else; such models are not cached and their priors are
saved only as text). The defaults are weakly informative log-normal priors, documented on
each model.

Sampling
--------
``method="nuts"`` (default) samples on the fast path of :mod:`clvmodels.bayes._fast`
(the same log density compiled by XLA, blackjax's NUTS, chains vectorised, compiled code
cached on disk) when the model and its priors allow it (``sampler="auto"``), otherwise
with nutpie, and falls back to PyMC's NUTS when nutpie is missing
(``sampler="blackjax"``, ``"nutpie"`` or ``"pymc"`` ask for one). nutpie gets the compiled log
density from pytensor's C back-end (cached on disk: no compilation wait after the first
fit on a machine; chains in forked worker processes) for up to 10,000 distinct rows, and
from numba (faster gradients, chains in threads, but 15-30 s of compilation per process)
above; ``backend=`` overrides.
nutpie adapts a low-rank-modified mass matrix by default. ``method="map"`` stores the
posterior mode as one draw (no uncertainty: a quick look), ``method="advi"`` a mean-field
ADVI approximation started at the mode (``chains * draws`` draws in one chain). The same
``random_seed`` gives identical draws. After NUTS, R-hat, bulk and tail ESS and divergences
are checked (table in ``diagnostics_``); the verdict is ``convergence_``
(:mod:`clvmodels.bayes.convergence`: R-hat <= 1.01, ESS >= 400, no divergences), and a
fit that fails it warns (:class:`~clvmodels.errors.StatisticalWarning`) naming what failed.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .._math import pytensor_ops
from ..errors import DataError, NotFittedError, StatisticalWarning
from ..models._base import MLEModel, compress_rows, unique_rows
from . import _predict, _sampling
from .convergence import verdict

_FORMAT_VERSION = 1
# SegmentBGNBD on the CDNOW master (9,366 distinct rows, 9 segments): 60 s with "c",
# 65 s with "numba" (24 s of it compiling); with more rows numba's faster gradients win
AUTO_C_MAX_ROWS = 10_000
PriorSpec = tuple[str, dict[str, float]] | Callable[[str], Any]


def _check_spec(name: str, spec) -> PriorSpec:
    """Validate one prior specification (see the module docstring)."""
    if callable(spec):
        return spec
    import pymc as pm

    ok = (
        isinstance(spec, tuple | list)
        and len(spec) == 2
        and isinstance(spec[0], str)
        and isinstance(spec[1], dict)
    )
    dist = getattr(pm, spec[0], None) if ok else None
    if not (isinstance(dist, type) and issubclass(dist, pm.Distribution)):
        raise ValueError(
            f"prior for {name!r} must be (PyMC distribution name, {{argument: value}}) or a "
            f"callable f(name) creating the variable; got {spec!r}"
        )
    args = {}
    for k, v in spec[1].items():
        if not isinstance(v, int | float | np.integer | np.floating) or not np.isfinite(v):
            raise ValueError(f"prior for {name!r}: argument {k!r} must be a finite number")
        args[str(k)] = float(v)
    return (spec[0], args)


def _lognormal(loc: float, scale: float = 2.0):
    return ("LogNormal", {"mu": float(loc), "sigma": float(scale)})


class BayesModel:
    """Base class of the Bayesian models (one set of parameters for all customers).

    Subclasses set ``param_names`` and ``data_names``, point ``_ll`` at the model's
    log-likelihood (a function of ``ops``) and implement ``_fit_rows``, ``_data`` and
    ``_default_priors``.
    """

    param_names: ClassVar[tuple[str, ...]] = ()
    data_names: ClassVar[tuple[str, ...]] = ()
    _ll: ClassVar[Callable] = None
    # optional: the likelihood's terms of (parameters, first data column) alone, passed
    # to ``_ll`` as ``counts=`` after evaluation once per distinct (segment, value)
    _count_terms: ClassVar[Callable | None] = None
    segment: str | None = None
    # NUTS settings of the model (``fit(**sampler_kwargs)`` overrides them)
    _nuts_defaults: ClassVar[dict] = {}

    def __init__(self, *, priors: dict[str, PriorSpec] | None = None):
        self.priors = priors

    # ---- to be provided by subclasses ---------------------------------------------
    def _fit_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame

    def _data(self, frame: pd.DataFrame) -> list[np.ndarray]:
        raise NotImplementedError

    def _default_priors(self, cols, w) -> dict[str, PriorSpec]:
        raise NotImplementedError

    # ---- segments (overridden by the hierarchical models) ---------------------------
    def _fit_codes(self, data: pd.DataFrame, rows: pd.DataFrame):
        """Group index of each fitted row and the group labels (one group here)."""
        return np.zeros(len(rows), dtype=np.int64), None

    def _prior_specs(self, cols, w) -> dict[str, PriorSpec]:
        specs = self._default_priors(cols, w)
        for name, spec in (self.priors or {}).items():
            if name not in specs:
                raise ValueError(
                    f"{type(self).__name__}: no parameter {name!r} to put a prior on; "
                    f"the priors are {sorted(specs)}"
                )
            specs[name] = _check_spec(name, spec)
        return specs

    def _parameters(self, specs, prior):
        """The parameter tensors: scalars here, one value per segment in segment models."""
        return {n: prior(n, specs[n]) for n in self.param_names}

    def _var_names(self) -> list[str]:
        return list(self.param_names)

    def _set_groups(self, codes: np.ndarray, w: np.ndarray, n_groups: int, cols=None) -> tuple:
        """Hook before the model is built (``cols``: the fitted data columns); returns what
        the model structure depends on."""
        return (n_groups,)

    _check_names = _var_names

    def _coords(self, n_groups: int) -> dict:
        return {}

    # ---- the PyMC model -----------------------------------------------------------
    def _build(self, cols, w, codes, n_groups, specs):
        """The PyMC model, its cache key and the values of its shared variables."""
        import pymc as pm
        import pytensor.tensor as pt

        _sampling.probe_compiler()
        shared: dict[str, np.ndarray] = {}
        key: list = [type(self).__name__]

        def data(name, value):
            shared[name] = np.asarray(value)
            return pm.Data(name, value)

        def prior(name, spec):
            if callable(spec):
                key.append(None)  # not cacheable
                return spec(name)
            dist, args = spec
            key.append((name, dist, tuple(sorted(args))))
            return getattr(pm, dist)(
                name, **{k: data(f"prior_{name}_{k}", v) for k, v in args.items()}
            )

        key.append(self._set_groups(codes, w, n_groups, cols))
        with pm.Model(coords=self._coords(n_groups)) as model:
            tensors = [data(f"data_{n}", c) for n, c in zip(self.data_names, cols, strict=True)]
            weight = data("data_weight", w)
            par = self._parameters(specs, prior)

            def params_at(name, segments):
                """The parameters at each of ``segments`` (scalars without segments)."""
                if self.segment is None:
                    return [par[n] for n in self.param_names]
                at = data(name, segments.astype(np.int64))
                return [par[n][at] for n in self.param_names]

            extra = {}
            if self._count_terms is not None:
                # terms of (parameters, x) alone: once per distinct (segment, x), indexed
                (pair_seg, pair_x), index, _, _ = unique_rows([codes, cols[0]])
                terms = type(self)._count_terms(
                    *params_at("data_pair_segment", pair_seg),
                    data("data_pair_x", pair_x),
                    ops=pytensor_ops(),
                )
                at = data("data_pair_index", index)
                extra["counts"] = [t[at] for t in terms]
            per_row = params_at("data_segment", codes)
            ll = type(self)._ll(*per_row, *tensors, ops=pytensor_ops(), **extra)
            pm.Potential("loglik", pt.sum(weight * ll))
        cache_key = None if None in key else tuple(key)
        return model, cache_key, shared

    # ---- fitting ------------------------------------------------------------------
    def fit(
        self,
        data: pd.DataFrame,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        random_seed: int | None = 0,
        *,
        method: str = "nuts",
        sampler: str = "auto",
        backend: str = "auto",
        cores: int | None = None,
        progressbar: bool | None = None,
        weights: str | np.ndarray | pd.Series | None = None,
        advi_steps: int = 10_000,
        **sampler_kwargs,
    ):
        """Draw from the posterior and return ``self`` (draws in ``idata_``).

        Parameters
        ----------
        data : DataFrame
            The model's data (see the class docstring for the columns).
        draws, tune, chains : int
            Draws kept per chain, tuning steps per chain, number of chains.
        random_seed : int or None
            The same seed gives identical draws.
        method : {"nuts", "map", "advi"}
            Full posterior (NUTS), the posterior mode as a single draw, or mean-field ADVI.
        sampler : {"auto", "blackjax", "nutpie", "pymc"}
            NUTS implementation. ``"auto"``: blackjax on the fast path
            (:mod:`clvmodels.bayes._fast`: all chains vectorised in one process, ``cores``
            and ``backend`` unused) when the model's priors are all of its families and
            the model has no custom build (covariates), else nutpie; ``"blackjax"`` asks
            for the fast path (a warning and nutpie when it cannot be used); nutpie falls
            back to PyMC's with a warning when it cannot be used.
        backend : {"auto", "numba", "c"}
            How nutpie gets the compiled log density (see
            :func:`clvmodels.bayes._sampling.sample_nutpie`): ``"numba"`` has the fastest
            gradients and truly parallel chains but compiles for 15-30 s in every new
            process; ``"c"`` uses pytensor's C back-end, compiled once per machine and
            cached on disk, its chains in forked worker processes (on Linux; see
            :mod:`clvmodels.bayes._chains`). ``"auto"`` picks ``"c"`` for up to 10,000
            distinct rows (compilation dominates there) and ``"numba"`` above.
        cores : int, optional
            Chains run in parallel, this many at a time (default:
            ``min(chains, os.cpu_count())``): threads with ``"numba"``, worker processes
            with ``"c"`` (Linux; elsewhere one chain after another). With ``"c"`` the
            draws do not depend on ``cores``.
        progressbar : bool, optional
            Default: shown in terminals and notebooks, never when ``CI`` is set.
        weights : str, array or Series, optional
            Column name or one non-negative number per row: each row counts that many
            times.
        advi_steps : int
            Optimisation steps of ADVI (started at the posterior mode).
        **sampler_kwargs
            Passed to ``nutpie.sample`` or ``pymc.sample`` (e.g. ``target_accept``).
            With nutpie, ``low_rank_modified_mass_matrix=True`` is the default here: the
            BTYD parameters are strongly correlated in pairs ((r, alpha), (a, b)) and a
            mass matrix that adapts to the correlations needs about 3x fewer gradient
            evaluations per draw on CDNOW than a diagonal one.
        """
        if method not in ("nuts", "map", "advi"):
            raise ValueError(f"method must be 'nuts', 'map' or 'advi', got {method!r}")
        if sampler not in ("auto", "blackjax", "nutpie", "pymc"):
            raise ValueError(
                f"sampler must be 'auto', 'blackjax', 'nutpie' or 'pymc', got {sampler!r}"
            )
        for name, value in (("draws", draws), ("chains", chains)):
            if int(value) < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        for name in ("idata_", "method_", "n_obs_", "diagnostics_", "n_divergent_", "convergence_"):
            self.__dict__.pop(name, None)  # refitting discards the previous fit
        rows = self._fit_rows(data)
        w = MLEModel._weights(data, rows, weights)
        codes, labels = self._fit_codes(data, rows)
        unique, w = compress_rows([codes, *self._data(rows)], w)
        keep = w > 0
        if not keep.any():
            raise DataError(None, "no rows with positive weight to fit on", 0)
        codes = unique[0][keep].astype(np.int64)
        cols = [c[keep].astype(float) for c in unique[1:]]
        w = w[keep]
        specs = self._prior_specs(cols, w)
        n_groups = 1 if labels is None else len(labels)
        var_names = self._var_names()
        progress = _sampling.show_progress(progressbar)
        fast = None
        if method == "nuts" and sampler in ("auto", "blackjax"):
            from . import _fast

            fast = _fast.plan(
                self, specs, cols, w, codes, n_groups, {**self._nuts_defaults, **sampler_kwargs}
            )
            if fast is None and sampler == "blackjax":
                warnings.warn(
                    "the fast path (blackjax) cannot sample this model (custom priors, "
                    "covariates or sampler settings it does not know); sampling with nutpie.",
                    StatisticalWarning,
                    stacklevel=2,
                )
            sampler = "nutpie"
        if fast is None:
            with _sampling.gc_paused():
                model, key, shared = self._build(cols, w, codes, n_groups, specs)
        if cores is None:
            import os

            cores = min(chains, os.cpu_count() or 1)
        used = sampler
        if method == "nuts":
            run = {
                "draws": int(draws),
                "tune": int(tune),
                "chains": int(chains),
                "cores": int(cores),
                "random_seed": random_seed,
                "progressbar": progress,
                **self._nuts_defaults,
                **sampler_kwargs,
            }
            idata = None
            if fast is not None:
                idata = _fast.sample(
                    self,
                    fast,
                    specs,
                    draws=int(draws),
                    tune=int(tune),
                    chains=int(chains),
                    cores=int(cores),
                    random_seed=random_seed,
                    progressbar=progress,
                )
                used = "blackjax"
            elif sampler == "nutpie":
                try:
                    if backend == "auto":
                        backend = "c" if w.size <= AUTO_C_MAX_ROWS else "numba"
                    idata = _sampling.sample_nutpie(
                        model,
                        key,
                        shared,
                        var_names,
                        backend=backend,
                        **{"low_rank_modified_mass_matrix": True, **run},
                    )
                    used = f"nutpie-{backend}"
                except (ImportError, NotImplementedError) as err:
                    warnings.warn(
                        f"nutpie could not be used ({err}); sampling with PyMC's NUTS.",
                        StatisticalWarning,
                        stacklevel=2,
                    )
                    used = "pymc"
            if idata is None:
                idata = _sampling.sample_pymc(model, var_names, **run)
        elif method == "map":
            idata = _sampling.fit_map(
                model, var_names, random_seed=random_seed, progressbar=progress
            )
            used = "pymc"
        else:
            idata = _sampling.fit_advi(
                model,
                var_names,
                draws=int(draws) * int(chains),
                n_steps=int(advi_steps),
                random_seed=random_seed,
                progressbar=progress,
            )
            used = "pymc"
        idata = _keep_posterior(idata, var_names)
        if labels is not None:
            idata.posterior = idata.posterior.assign_coords(segment=np.asarray(labels))
        idata.posterior.attrs["clvmodels"] = json.dumps(
            {
                "format_version": _FORMAT_VERSION,
                "model": type(self).__name__,
                "settings": self._settings(),
                "priors": {k: (list(v) if not callable(v) else repr(v)) for k, v in specs.items()},
                "method": method,
                "sampler": used,
                "random_seed": random_seed,
                "n_obs": float(w.sum()),
                "n_unique": int(w.size),
            }
        )
        self.idata_ = idata
        self.method_ = method
        self.n_obs_ = float(w.sum())
        self._set_convergence()
        if method == "nuts" and not self.convergence_.passed:
            warnings.warn(self.convergence_.message(), StatisticalWarning, stacklevel=2)
        return self

    def _set_convergence(self) -> None:
        """``diagnostics_``, ``n_divergent_`` (NUTS) and the verdict ``convergence_``."""
        table, n_div = None, 0
        if self.method_ == "nuts":
            table, n_div = _sampling.diagnostics(self.idata_, self._check_names())
            self.diagnostics_ = table
            self.n_divergent_ = n_div
        sizes = self.idata_.posterior.sizes
        self.convergence_ = verdict(
            type(self).__name__, self.method_, table, n_div, sizes["chain"], sizes["draw"]
        )

    def _settings(self) -> dict:
        if self.priors and any(callable(v) for v in self.priors.values()):
            priors = None
        else:
            priors = {k: list(_check_spec(k, v)) for k, v in (self.priors or {}).items()}
        return {"priors": priors}

    # ---- posterior draws --------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "idata_"):
            raise NotFittedError(
                f"This {type(self).__name__} has no posterior yet: call fit(...) first."
            )
        return self.idata_

    def posterior_draws(self, n_draws: int | None = None):
        """Posterior draws of the model's parameters as an ``xarray.Dataset``.

        One variable per parameter (``param_names``), with dimension ``sample`` (chains
        and draws stacked, chain by chain) and, in segment models, ``segment`` (labelled
        with the segment values; :meth:`segment_index` maps an RFM frame onto it).
        ``n_draws`` picks that many evenly spaced samples (all by default). This is what
        predictions, CLV and comparisons read; ``idata_`` holds the full posterior.
        """
        post = self._check_fitted().posterior
        ds = post[list(self.param_names)].stack(sample=("chain", "draw"))
        ds = ds.drop_vars(["sample", "chain", "draw"], errors="ignore")
        ds = ds.transpose("sample", ...)
        ds.attrs = {}
        if n_draws is not None:
            total = ds.sizes["sample"]
            pick = np.linspace(0, total - 1, min(int(n_draws), total)).round().astype(np.int64)
            ds = ds.isel(sample=pick)
        return ds

    def segment_index(self, rfm: pd.DataFrame) -> np.ndarray:
        """Position of each row's segment on the ``segment`` dimension of
        :meth:`posterior_draws` (all 0 for models without segments)."""
        return np.zeros(len(rfm), dtype=np.int64)

    def _draws(self, n_draws: int | None = None) -> list[np.ndarray]:
        """Posterior draws of each parameter as (n_draws, n_groups) arrays."""
        return draw_matrices(self.posterior_draws(n_draws), self.param_names)

    def _codes(self, rfm: pd.DataFrame) -> np.ndarray:
        return self.segment_index(rfm)

    def _posterior_summary(self, func, rfm, cols, *, hdi_prob, memory_limit, name) -> pd.DataFrame:
        """Posterior summary per customer of ``func(params, data)`` (see _predict)."""
        draws = self._draws()
        uniq, inverse = _predict.unique_rows([self._codes(rfm), *cols])
        codes, data = uniq[0].astype(np.int64), uniq[1:]

        def evaluate(rows, sl):
            params = [_take(p[sl], codes[rows]) for p in draws]
            return func(params, [d[rows][None, :] for d in data])

        values = _predict.summarise(
            evaluate, len(codes), draws[0].shape[0], hdi_prob=hdi_prob, memory_limit=memory_limit
        )
        out = _predict.summary_frame(values, inverse, rfm.index)
        out.columns.name = name
        return out

    def summary(self, hdi_prob: float = _predict.HDI_PROB) -> pd.DataFrame:
        """Posterior mean, sd, HDI, R-hat and ESS of the parameters (``arviz.summary``)."""
        import arviz as az

        idata = self._check_fitted()
        return az.summary(idata, var_names=self._check_names(), hdi_prob=hdi_prob)

    def __repr__(self) -> str:
        state = "fitted" if hasattr(self, "idata_") else "not fitted"
        return f"{type(self).__name__}({state})"

    # ---- persistence ------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the posterior (and the settings) to a netCDF file; loading runs no code."""
        idata = self._check_fitted()
        idata.to_netcdf(str(path), engine="h5netcdf")

    @classmethod
    def load(cls, path: str | Path):
        """Read a model written by :meth:`save`."""
        import arviz as az

        idata = az.from_netcdf(str(path), engine="h5netcdf")
        try:
            meta = json.loads(idata.posterior.attrs["clvmodels"])
        except (KeyError, AttributeError, json.JSONDecodeError):
            raise ValueError(f"{path} is not a posterior saved by clvmodels") from None
        if meta.get("model") != cls.__name__:
            raise ValueError(f"{path} holds a {meta.get('model')!r} model, not a {cls.__name__}")
        settings = dict(meta.get("settings", {}))
        priors = settings.pop("priors", None)
        if priors is not None:
            settings["priors"] = {k: tuple(v) for k, v in priors.items()}
        model = cls(**settings)
        model.idata_ = idata
        model.method_ = meta.get("method")
        model.n_obs_ = meta.get("n_obs")
        model._set_convergence()
        return model


def draw_matrices(draws, names) -> list[np.ndarray]:
    """The variables ``names`` of a :meth:`BayesModel.posterior_draws` Dataset as
    (samples, segments) arrays (one column without segments)."""
    return [draws[n].values.reshape(draws.sizes["sample"], -1) for n in names]


def _take(p: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Each row's parameter draws: (draws, rows), or (draws, 1) with one group."""
    return p[:, :1] if p.shape[1] == 1 else p[:, codes]


def _keep_posterior(idata, var_names):
    """Only the posterior of the named variables and the sampler statistics: no
    transformed values, warm-up draws or observed data (the model keeps no data)."""
    import arviz as az

    keep = [v for v in var_names if v in idata.posterior.data_vars]
    groups = {"posterior": idata.posterior[keep]}
    if "sample_stats" in idata.groups():
        groups["sample_stats"] = idata.sample_stats
    return az.InferenceData(**groups)
