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

Covariates
----------
The hook for static covariates is generic: a model sets ``covariate_links`` (those of its
maximum-likelihood twin, e.g. ``clvmodels.BGNBD.covariate_links``) and
``covariate_arguments`` (role -> constructor argument naming the columns, e.g.
``{"purchase": "purchase_covariates", "dropout": "dropout_covariates"}``), and stores
those arguments in ``__init__``; fitting, priors, the user's scale, predictions, CLV,
saving and loading then follow here. The design matrix, its checks (missing, constant,
non-finite columns, unseen levels: :class:`~clvmodels.errors.DataError` naming the column
and the count) and the per-customer mapping :math:`\theta_{i,p} = \theta_p
\exp(\pm\gamma^\top z_i)` are those of :mod:`clvmodels.models._covariates`, the same
functions as the maximum-likelihood fit (:func:`~clvmodels.models._covariates.log_offsets`
with pytensor in the graph, with numpy at every posterior draw).

The sampler sees the covariates on the design's internal scale (numeric columns centred
and scaled by their sd, 0/1 columns as they are) and a vector ``coefficients`` (dimension
``covariate``, labelled ``purchase:<col>``, ...) with the prior
:math:`N(0, 1)` per coefficient on that scale (``COEFFICIENT_PRIOR_SD``; override with
``priors={"coefficients": ...}``). Why: a one-sd change of a covariate (or a 0/1 switch)
then multiplies a parameter by a factor within :math:`e^{\pm 1.96} \approx 7` with 95%
prior probability, wide for what characteristics do to purchase or drop-out rates
(CLVTools' apparel effects are 0.3-0.8) yet it keeps a weakly identified coefficient away
from factors of thousands, where the likelihood is flat (a customer group without
repeat buyers); the centring also decorrelates each coefficient from the baseline it
scales. Each baseline parameter's prior is that of the model without covariates, on the
parameter at the covariates' means (the average customer). After sampling, every draw is
mapped to the user's scale (:meth:`~clvmodels.models._covariates.Design.to_user_scale`):
the stored ``coefficients`` are per unit of the user's columns and the stored parameters
(``r``, ``alpha``, ...) those of a customer with all covariates 0 and the reference
levels, as in the maximum-likelihood ``params_``. Without covariates the model, its
graph and its draws are exactly those of a model that never heard of covariates.
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
from ..models import _covariates as cov
from ..models._base import MLEModel, compress_rows, unique_rows
from . import _predict, _sampling
from .convergence import verdict

_FORMAT_VERSION = 1
# backend="auto" is "c": numba was slower at every size measured, compile included --
# SegmentBGNBD on the CDNOW master (9,366 rows): 60 s "c", 65 s "numba"; BG/NBD graph at
# 327,068 rows: numba 2x slower per gradient, 77 s compiling; GammaGamma, 1 chain x 200
# steps: 42,501 rows 32 s "c" / 75 s "numba", 423,732 rows 97 s / 207 s (s3-14b)
# above this many distinct rows ``sampler="auto"`` samples a model with a summed
# likelihood Op (``_loglik_total``) with nutpie rather than the fast path (measured in
# benchmarks/bench_bayes_scale.py --cases gradient, and end to end on a quiet machine:
# BG/NBD, fresh processes, warm caches, fast path against nutpie with the Op: CDNOW
# sample 1,016 rows (4 x 1,000 after 1,000) 9.2 s against 14.4-15.2 s; 7,000 CDNOW
# master customers, 2,833 rows (2 x 500 after 500) 7.4 s against 9.7 s, the same CPU;
# the whole master, 8,685 rows, 12-14 s against 10-12 s, 19-23 CPU-s against 11-13)
AUTO_TOTAL_MIN_ROWS = 4_000
PriorSpec = tuple[str, dict[str, float]] | Callable[[str], Any]
# prior sd of each covariate coefficient on the design's internal scale (module docstring)
COEFFICIENT_PRIOR_SD = 1.0
COEFFICIENTS = "coefficients"  # the posterior variable of the covariate coefficients


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
    # optional: (row arrangement, numpy total) -- ``_ll`` summed over the rows, arranged
    # by what its terms depend on (e.g. :func:`clvmodels.models.bgnbd.loglik_total_and_grad`),
    # sampled as one Op (clvmodels._numpy_op.NumpyTotal) on pytensor's C back-end when the
    # model has no covariates; ``backend="numba"`` samples the ``_ll`` graph instead
    _loglik_total: ClassVar[tuple[type, Callable] | None] = None
    segment: str | None = None
    # NUTS settings of the model (``fit(**sampler_kwargs)`` overrides them)
    _nuts_defaults: ClassVar[dict] = {}
    # False when ``_ll`` is a numpy function wrapped in a pytensor Op (clvmodels._numpy_op):
    # numba cannot compile it, so nutpie always gets pytensor's C back-end
    _numba_backend: ClassVar[bool] = True
    # static covariates (module docstring): (parameter index, role, sign) as in the
    # maximum-likelihood twin, and role -> the constructor argument naming the columns
    covariate_links: ClassVar[tuple[tuple[int, str, int], ...]] = ()
    covariate_arguments: ClassVar[dict[str, str]] = {}

    def __init__(self, *, priors: dict[str, PriorSpec] | None = None):
        self.priors = priors

    @property
    def idata_(self):
        """The posterior draws and sampler statistics (``arviz.InferenceData``); after a
        fit on the fast path made when first read (ArviZ's import costs 1.5 s)."""
        idata = self.__dict__.get("_idata")
        if idata is None:
            pending = self.__dict__.get("_idata_pending")
            if pending is None:
                raise AttributeError(f"this {type(self).__name__} is not fitted (no idata_)")
            from . import _fast

            idata = _fast.inference_data(*pending)
            self.__dict__["_idata"] = idata
            del self.__dict__["_idata_pending"]
        return idata

    @idata_.setter
    def idata_(self, idata) -> None:
        self.__dict__.pop("_idata_pending", None)
        self.__dict__["_idata"] = idata

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

    def _covariate_spec(self) -> dict[str, Any]:
        """Role -> the covariate columns the model was asked for."""
        return {role: getattr(self, arg, None) for role, arg in self.covariate_arguments.items()}

    def _coefficient_prior(self) -> dict[str, PriorSpec]:
        """The default prior of the covariate coefficients (none without covariates)."""
        if getattr(self, "design_", None) is None:
            return {}
        return {COEFFICIENTS: ("Normal", {"mu": 0.0, "sigma": COEFFICIENT_PRIOR_SD})}

    def _prior_specs(self, cols, w) -> dict[str, PriorSpec]:
        specs = self._default_priors(cols, w)
        specs.update(self._coefficient_prior())
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
    def _build(self, cols, w, codes, n_groups, specs, z=None, total=False):
        """The PyMC model, its cache key and the values of its shared variables (``z``:
        the covariates on the design's internal scale, rows x terms; ``total``: the
        likelihood as the model's ``_loglik_total`` Op)."""
        import pymc as pm
        import pytensor.tensor as pt

        _sampling.probe_compiler()
        shared: dict[str, np.ndarray] = {}
        key: list = [type(self).__name__]

        def data(name, value):
            shared[name] = np.asarray(value)
            return pm.Data(name, value)

        def prior(name, spec, **dims):
            if callable(spec):
                key.append(None)  # not cacheable
                return spec(name)
            dist, args = spec
            key.append((name, dist, tuple(sorted(args))))
            return getattr(pm, dist)(
                name, **{k: data(f"prior_{name}_{k}", v) for k, v in args.items()}, **dims
            )

        key.append(self._set_groups(codes, w, n_groups, cols))
        design = getattr(self, "design_", None)
        coords = self._coords(n_groups)
        if design is not None:
            key.append(("covariates", tuple(design.names), design.links))
            coords = {**coords, "covariate": design.names}
        with pm.Model(coords=coords) as model:
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
            if total:  # the summed likelihood, one Op (see ``_loglik_total``)
                from .._numpy_op import NumpyTotal

                arrange, value_and_grad = type(self)._loglik_total
                arrays = arrange(codes, *cols, w).arrays()
                key.append(("total", value_and_grad.__qualname__))
                params = [par[n] if self.segment is not None else pt.reshape(par[n], (1,))
                          for n in self.param_names]
                inputs = [data(f"data_total_{k}", v) for k, v in enumerate(arrays)]
                ll_total = NumpyTotal(value_and_grad, len(params))(*params, *inputs)[0]
                pm.Potential("loglik", ll_total)
                cache_key = None if None in key else tuple(key)
                return model, cache_key, shared
            # with covariates the parameters vary by customer: no terms per (segment, x)
            if self._count_terms is not None and design is None:
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
            if design is not None:  # theta_i = theta exp(sign coefficients' z_i)
                coef = prior(COEFFICIENTS, specs[COEFFICIENTS], dims="covariate")
                offsets = cov.log_offsets(coef, data("data_covariates", z), design,
                                          len(self.param_names))
                per_row = [p if isinstance(o, float) else p * pt.exp(o)
                           for p, o in zip(per_row, offsets, strict=True)]
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
            (:mod:`clvmodels.bayes._fast`: chains in ``cores`` threads, ``backend``
            unused) for the one-segment models without covariates whose priors are all of
            its families and whose likelihood it reproduces (BG/NBD, MBG/NBD, Pareto/NBD,
            Gamma-Gamma, sBG, BdW), else nutpie; ``"blackjax"`` asks for
            the fast path (also for the segment models; a warning and nutpie when it
            cannot be used); nutpie falls back to PyMC's with a warning when it cannot
            be used.
        backend : {"auto", "numba", "c"}
            How nutpie gets the compiled log density (see
            :func:`clvmodels.bayes._sampling.sample_nutpie`): ``"numba"`` has the fastest
            gradients and truly parallel chains but compiles for 15-30 s in every new
            process; ``"c"`` uses pytensor's C back-end, compiled once per machine and
            cached on disk, its chains in forked worker processes (on Linux; see
            :mod:`clvmodels.bayes._chains`). ``"auto"`` is ``"c"`` (numba was slower
            at every size measured, its compilation included). The Pareto/NBD, whose
            likelihood is then numpy code called from the graph, always uses ``"c"``; so do
            the BG/NBD and Gamma-Gamma (and their segment models) without covariates,
            whose likelihood is then one numpy Op summed by distinct values
            (``loglik_total_and_grad`` of :mod:`clvmodels.models.bgnbd` and
            :mod:`clvmodels.models.gammagamma`), unless ``"numba"`` is asked for (the
            pytensor graph of ``loglik``).
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
        if backend == "numba" and not self._numba_backend:
            raise ValueError(
                f"backend='numba' cannot compile the likelihood of {type(self).__name__} "
                "(numpy code in a pytensor Op); use backend='c' or 'auto'"
            )
        for name, value in (("draws", draws), ("chains", chains)):
            if int(value) < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        for name in ("_idata", "_idata_pending", "method_", "n_obs_", "diagnostics_",
                     "n_divergent_", "convergence_", "design_"):
            self.__dict__.pop(name, None)  # refitting discards the previous fit
        codes, labels, cols, z, w = self._fit_data(data, weights)
        design = self.design_
        specs = self._prior_specs(cols, w)
        n_groups = 1 if labels is None else len(labels)
        var_names = self._var_names() + ([] if design is None else [COEFFICIENTS])
        progress = _sampling.show_progress(progressbar)
        # the summed likelihood Op (``_loglik_total``), unless numba is asked for
        total = design is None and self._loglik_total is not None and backend != "numba"
        if sampler == "auto" and total and w.size > AUTO_TOTAL_MIN_ROWS:
            sampler = "nutpie"  # faster per gradient than the fast path there
        fast = None
        if method == "nuts" and sampler in ("auto", "blackjax"):
            from . import _fast  # not for covariates or likelihoods it does not know

            fast = _fast.plan(
                self,
                specs,
                cols,
                w,
                codes,
                n_groups,
                {**self._nuts_defaults, **sampler_kwargs},
                auto=sampler == "auto",
            )
            if fast is None and sampler == "blackjax":
                warnings.warn(
                    "the fast path (blackjax) cannot sample this model (custom priors, "
                    "covariates, a likelihood or sampler settings it does not know); "
                    "sampling with nutpie.",
                    StatisticalWarning,
                    stacklevel=2,
                )
            sampler = "nutpie"
        if fast is None:
            with _sampling.gc_paused():
                model, key, shared = self._build(cols, w, codes, n_groups, specs, z,
                                                 total=total)
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
                        backend = "c"
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
        attrs = {
            "clvmodels": json.dumps(
                {
                    "format_version": _FORMAT_VERSION,
                    "model": type(self).__name__,
                    "settings": self._settings(),
                    "priors": {k: (list(v) if not callable(v) else repr(v))
                               for k, v in specs.items()},
                    "method": method,
                    "sampler": used,
                    "random_seed": random_seed,
                    "n_obs": float(w.sum()),
                    "n_unique": int(w.size),
                    "design": None if design is None else design.to_dict(),
                }
            )
        }
        if fast is not None:  # numpy draws: the InferenceData when first read
            coords = {} if labels is None else {"segment": np.asarray(labels)}
            self.__dict__["_idata_pending"] = (idata, coords, attrs)
        else:
            idata = _keep_posterior(idata, var_names)
            if design is not None:
                idata.posterior = self._to_user_scale(idata.posterior)
            if labels is not None:
                idata.posterior = idata.posterior.assign_coords(segment=np.asarray(labels))
            idata.posterior.attrs.update(attrs)
            self.idata_ = idata
        self.method_ = method
        self.n_obs_ = float(w.sum())
        self._set_convergence()
        if method == "nuts" and not self.convergence_.passed:
            warnings.warn(self.convergence_.message(), StatisticalWarning, stacklevel=2)
        return self

    def _fit_data(self, data: pd.DataFrame, weights=None):
        """The distinct fitted rows: (group codes, group labels, data columns, covariates
        on the design's internal scale (rows x terms, None without), weights); sets
        ``design_`` (None without covariates)."""
        rows = self._fit_rows(data)
        w = MLEModel._weights(data, rows, weights)
        codes, labels = self._fit_codes(data, rows)
        design = cov.build_design(rows, self._covariate_spec(), self.covariate_links)
        columns = self._data(rows)
        n_data = len(columns)
        if design is not None:
            columns = [*columns, *design.standardised(design.raw_matrix(rows)).T]
        unique, w = compress_rows([codes, *columns], w)
        keep = w > 0
        if not keep.any():
            raise DataError(None, "no rows with positive weight to fit on", 0)
        codes = unique[0][keep].astype(np.int64)
        cols = [c[keep].astype(float) for c in unique[1 : 1 + n_data]]
        z = None if design is None else np.column_stack(
            [c[keep].astype(float) for c in unique[1 + n_data :]])
        self.design_ = design
        return codes, labels, cols, z, w[keep]

    def _set_convergence(self) -> None:
        """``diagnostics_``, ``n_divergent_`` (NUTS) and the verdict ``convergence_``."""
        table, n_div = None, 0
        pending = self.__dict__.get("_idata_pending")
        if pending is not None:  # the fast path's numpy draws (no InferenceData yet)
            draws, coords, _ = pending
            n_chains, n_draws = draws.sample_stats["diverging"].shape
        else:
            sizes = self.idata_.posterior.sizes
            n_chains, n_draws = sizes["chain"], sizes["draw"]
        if self.method_ == "nuts":
            if pending is not None:
                labels = [coords.get("segment", [])]
                table = _sampling.diagnostics_of([
                    e for name in self._checked_names()
                    for e in _sampling.array_elements(name, draws.posterior[name], labels)
                ])
                n_div = int(draws.sample_stats["diverging"].sum())
            else:
                table, n_div = _sampling.diagnostics(self.idata_, self._checked_names())
            self.diagnostics_ = table
            self.n_divergent_ = n_div
        self.convergence_ = verdict(
            type(self).__name__, self.method_, table, n_div, n_chains, n_draws
        )

    def _settings(self) -> dict:
        if self.priors and any(callable(v) for v in self.priors.values()):
            priors = None
        else:
            priors = {k: list(_check_spec(k, v)) for k, v in (self.priors or {}).items()}
        columns = {}
        for arg in self.covariate_arguments.values():
            value = getattr(self, arg, None)
            columns[arg] = None if value is None else list(value)
        return {"priors": priors, **columns}

    def _checked_names(self) -> list[str]:
        """The variables the convergence checks and :meth:`summary` cover."""
        extra = [] if getattr(self, "design_", None) is None else [COEFFICIENTS]
        return list(self._check_names()) + extra

    # ---- covariates: the user's scale and each customer's parameters ----------------
    def _to_user_scale(self, post):
        """The posterior mapped draw by draw from the sampler's coordinates (covariates
        on the design's internal scale) to the user's
        (:meth:`~clvmodels.models._covariates.Design.to_user_scale`)."""
        import xarray as xr

        k = len(self.param_names)
        M = self.design_.to_user_scale(k)
        coef = post[COEFFICIENTS]
        other = [d for d in coef.dims if d not in ("chain", "draw")]
        if other != ["covariate"]:
            coef = coef.rename({other[0]: "covariate"})
        values = coef.transpose("chain", "draw", "covariate").values
        shift = values @ M[:k, k:].T  # (chain, draw, k): change of each log-parameter
        out = post.drop_vars(COEFFICIENTS)
        if other != ["covariate"]:
            out = out.drop_vars(other[0], errors="ignore")
        out[COEFFICIENTS] = xr.DataArray(values @ M[k:, k:].T,
                                         dims=("chain", "draw", "covariate"),
                                         coords={"covariate": self.design_.names})
        for j, name in enumerate(self.param_names):
            if np.any(M[j, k:] != 0):
                out[name] = post[name] * np.exp(xr.DataArray(shift[..., j],
                                                             dims=("chain", "draw")))
        return self._shift_hyperparameters(out, shift)

    def _shift_hyperparameters(self, post, shift):
        """Hook of the hierarchical models: their population centres move with the
        log-parameters by ``shift`` (chain, draw, parameter). None here."""
        return post

    def covariate_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The fitted model's covariates of each row of ``frame`` on the user's scale,
        (rows, terms) in ``design_.names`` order; (rows, 0) without covariates. Missing
        columns or values and unseen levels raise :class:`~clvmodels.errors.DataError`."""
        self._check_fitted()
        design = getattr(self, "design_", None)
        if design is None:
            return np.zeros((len(frame), 0))
        return design.raw_matrix(frame)

    def _with_covariates(self, params: list, coef, z: np.ndarray) -> list:
        """Each row's parameter draws: ``params`` (draws, rows) or (draws, 1) scaled by
        ``exp(sign coefficients' z)`` (``coef`` (draws, terms), ``z`` (rows, terms) on the
        user's scale); unchanged without covariates."""
        if coef is None or z.shape[1] == 0:
            return params
        offsets = cov.log_offsets(coef, z, self.design_, len(self.param_names))
        return [p if isinstance(o, float) else p * np.exp(o)
                for p, o in zip(params, offsets, strict=True)]

    def _coefficient_draws(self, n_draws: int | None = None):
        """(samples, terms) coefficient draws, as :meth:`posterior_draws` picks them."""
        if getattr(self, "design_", None) is None:
            return None
        return self.posterior_draws(n_draws)[COEFFICIENTS].values

    def customer_draws(self, rfm: pd.DataFrame, n_draws: int | None = None):
        """Each customer's parameter draws: ``(draws, codes)`` with ``draws`` a list of
        (samples, groups) arrays per parameter and ``codes`` each row's group. A group is
        a segment (models without covariates: :meth:`posterior_draws` and
        :meth:`segment_index`) or, with covariates, a distinct (segment, covariates)
        pattern at its own parameters. What the predictive intervals, the posterior
        predictive and the segment estimates read."""
        draws = draw_matrices(self.posterior_draws(n_draws), self.param_names)
        seg = self.segment_index(rfm)
        z = self.covariate_matrix(rfm)
        if z.shape[1] == 0:
            return draws, seg
        uniq, codes = _predict.unique_rows([seg, *z.T])
        groups = uniq[0].astype(np.int64)
        params = [_take(p, groups) for p in draws]
        params = self._with_covariates(params, self._coefficient_draws(n_draws),
                                       np.column_stack(uniq[1:]))
        shape = (draws[0].shape[0], groups.size)
        return [np.broadcast_to(p, shape) for p in params], codes.astype(np.int64)

    def covariate_summary(self, hdi_prob: float = _predict.HDI_PROB) -> pd.DataFrame:
        """Posterior of the covariate coefficients on the user's scale: mean, sd, HDI,
        the posterior probability that the effect is positive, and each categorical
        column's reference level (as the maximum-likelihood ``summary()``)."""
        idata = self._check_fitted()
        design = getattr(self, "design_", None)
        if design is None:
            raise ValueError(f"this {type(self).__name__} has no covariates")
        draws = idata.posterior[COEFFICIENTS].stack(sample=("chain", "draw"))
        v = draws.transpose("covariate", "sample").values
        low, high = _predict.hdi_of_sorted(np.sort(v, axis=1), hdi_prob)
        refs = {f"{role}:{t.name}": f"{t.column}={t.reference}" for role in design.roles
                for t in design.terms[role] if t.reference is not None}
        out = pd.DataFrame({
            "mean": v.mean(axis=1),
            "sd": v.std(axis=1, ddof=1) if v.shape[1] > 1 else 0.0,
            "hdi_low": low, "hdi_high": high,
            "p_positive": (v > 0).mean(axis=1),
            "reference": [refs.get(n, "") for n in design.names],
        }, index=pd.Index(design.names, name="coefficient"))
        return out

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
        ``n_draws`` picks that many evenly spaced samples (all by default). With
        covariates also ``coefficients`` (dimension ``covariate``); each customer's
        parameters are in :meth:`customer_draws`. This is what predictions, CLV and
        comparisons read; ``idata_`` holds the full posterior.
        """
        post = self._check_fitted().posterior
        names = list(self.param_names)
        if getattr(self, "design_", None) is not None:
            names.append(COEFFICIENTS)
        ds = post[names].stack(sample=("chain", "draw"))
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
        """Posterior summary per customer of ``func(params, data)`` (see _predict), each
        customer at the parameters of their segment and covariates."""
        draws = self._draws()
        coef = self._coefficient_draws()
        z = self.covariate_matrix(rfm)
        m = z.shape[1]
        uniq, inverse = _predict.unique_rows([self._codes(rfm), *z.T, *cols])
        codes, data = uniq[0].astype(np.int64), uniq[1 + m :]
        z = np.column_stack(uniq[1 : 1 + m]) if m else np.zeros((codes.size, 0))

        def evaluate(rows, sl):
            params = [_take(p[sl], codes[rows]) for p in draws]
            params = self._with_covariates(params, None if coef is None else coef[sl], z[rows])
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
        return az.summary(idata, var_names=self._checked_names(), hdi_prob=hdi_prob)

    def __repr__(self) -> str:
        # not hasattr(self, "idata_"): that would build a pending InferenceData
        fitted = "_idata" in self.__dict__ or "_idata_pending" in self.__dict__
        state = "fitted" if fitted else "not fitted"
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
        design = meta.get("design")
        model.design_ = None if design is None else cov.Design.from_dict(design)
        model.method_ = meta.get("method")
        model.n_obs_ = meta.get("n_obs")
        model._set_convergence()
        return model


class TransactionCovariates:
    """Mixin of the Bayesian transaction models (BG/NBD, Pareto/NBD, ...): covariates on
    the purchase and the drop-out process (``purchase_covariates=``,
    ``dropout_covariates=``, stored by the model's ``__init__``) and the expected
    purchases of a new customer given their characteristics. The model sets
    ``covariate_links`` (its maximum-likelihood twin's) and ``formulas``."""

    covariate_arguments: ClassVar[dict[str, str]] = {
        "purchase": "purchase_covariates", "dropout": "dropout_covariates"}

    def expected_purchases_new(
        self,
        t: float,
        covariates: pd.DataFrame | dict | None = None,
        *,
        hdi_prob: float = _predict.HDI_PROB,
        memory_limit: int = _predict.MEMORY_LIMIT,
    ) -> pd.DataFrame:
        """Posterior of E[X(t)], the repeat purchases in (0, t] of a customer acquired at
        0 (the model's ``expected_purchases_new`` formula at every draw), for new
        customers with the characteristics in ``covariates``: a frame (one row per
        customer; and the segment column in segment models) or a dict of one customer's
        values. Columns mean, sd, hdi_low, hdi_high, indexed like the frame (``[0]`` for
        a dict or without covariates)."""
        t = float(t)
        if not (np.isfinite(t) and t >= 0):
            raise ValueError(f"t must be a finite number >= 0, got {t}")
        if covariates is None:
            frame = pd.DataFrame(index=[0])
        elif isinstance(covariates, dict):
            frame = pd.DataFrame([covariates])
        else:
            frame = covariates
        formula = self.formulas.expected_purchases_new
        return self._posterior_summary(
            lambda p, d: formula(*p, t), frame, [], hdi_prob=hdi_prob,
            memory_limit=memory_limit, name="expected_purchases_new")


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
