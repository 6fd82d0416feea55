r"""The fast sampling path: the log density compiled by XLA (JAX), NUTS by blackjax.

The PyMC path (:mod:`clvmodels.bayes._sampling`) spends a fit's time importing PyMC,
rewriting and compiling a pytensor graph in every process, and calling the compiled
density from nutpie's sampler through Python (about 30 us of a 100 us gradient). Here:

* the **same** log-likelihood function of the maximum-likelihood module (e.g.
  :func:`clvmodels.models.bgnbd.loglik`) is evaluated with ``ops=jax_ops()``
  (:func:`clvmodels._math.jax_ops`), plus the priors of :data:`FAMILIES`, whose
  log-densities (on the unconstrained scale, with the Jacobian of the transform) are
  written once here and equal PyMC's;
* the whole run (window adaptation, then the draws) is one XLA program per block of
  steps: the chains are vectorised (``jax.vmap``), no Python between gradient
  evaluations;
* the compiled programs are kept in JAX's persistent compilation cache
  (:func:`cache_dir`), so a new process only traces them; the data enter as arguments,
  padded to a size class (:func:`padded_size`), so other data sets of similar size reuse
  the same compiled code.

Where a step's time goes (``benchmarks/bench_leapfrog.py``, CPU time, BG/NBD on CDNOW):
the gradient of the density is all of it; blackjax's NUTS adds about 4 us per leapfrog
step (JAX 0.10) to a 100 us gradient, and JAX 0.4.31, before XLA's CPU thunk runtime,
is no faster on this program (123 against 116 us per step on the same loaded machine),
so no older JAX is pinned.

NUTS (Hoffman & Gelman 2014, *JMLR* 15, 1593-1623) with multinomial trajectory sampling
(Betancourt 2017, arXiv:1701.02434) and Stan's window adaptation of the step size and a
dense mass matrix (Stan Reference Manual, "HMC algorithm parameters"), from blackjax
(Cabezas et al. 2024, arXiv:2402.10797). The same ``random_seed`` gives the same draws.

:func:`plan` says whether a model can take this path: a model whose priors are all
``(family, {argument: value})`` specifications of :data:`FAMILIES` with exactly those
arguments, that builds its PyMC model with the stock ``_build`` and ``_parameters`` (one
set of parameters, or the hierarchical segments of :mod:`clvmodels.bayes.segments`), and
sampler settings this path knows (``target_accept``, ``max_treedepth``), without
covariates, and whose log-likelihood is one of :func:`_likelihoods` (pure ``ops`` code
tested equal to PyMC's density; the Pareto/NBD's with its fixed grid quadrature,
:func:`clvmodels.models.paretonbd.quadrature_grid`, without segments). Anything else
(callable priors, other families, models that override the build, covariates) goes to
the PyMC path.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .._math import jax_ops

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)
#: sampler settings of ``fit(**sampler_kwargs)`` this path understands
KNOWN_SETTINGS = ("target_accept", "max_treedepth")
#: the number of steps per compiled block of draws (progress is shown between blocks)
BLOCK = 250
#: dense mass matrix up to this many unconstrained dimensions, diagonal above
DENSE_MAX_DIM = 200


# ---- prior families: (arguments, unconstrained log density, support point) ----------
def _normal(y, mu, sigma, ops):
    z = (y - mu) / sigma
    return -0.5 * z * z - ops.log(sigma) - _LOG_SQRT_2PI


def _lognormal(y, mu, sigma, ops):
    # x = exp(y): LogNormal's log density at x plus the Jacobian y is the normal's at y
    return _normal(y, mu, sigma, ops)


def _halfnormal(y, sigma, ops):
    x = ops.exp(y)
    return 0.5 * np.log(2.0 / np.pi) - ops.log(sigma) - 0.5 * (x / sigma) ** 2 + y


def _gamma(y, alpha, beta, ops):
    return alpha * ops.log(beta) - ops.gammaln(alpha) + alpha * y - beta * ops.exp(y)


def _exponential(y, lam, ops):
    return ops.log(lam) - lam * ops.exp(y) + y


FAMILIES = {
    # name: (arguments, log density of the unconstrained value y, y's starting value);
    # positive families are sampled as y = log x (PyMC's default log transform)
    "Normal": (("mu", "sigma"), _normal, lambda mu, sigma: mu),
    "LogNormal": (("mu", "sigma"), _lognormal, lambda mu, sigma: mu),
    "HalfNormal": (("sigma",), _halfnormal, lambda sigma: np.log(sigma)),
    "Gamma": (("alpha", "beta"), _gamma, lambda alpha, beta: np.log(alpha / beta)),
    "Exponential": (("lam",), _exponential, lambda lam: -np.log(lam)),
}
"""Prior families of the fast path: the log density of each on PyMC's unconstrained
scale (``Normal``: the value; the others, positive: its log), including the log Jacobian,
as PyMC computes it (``model.logp(jacobian=True)``)."""
_POSITIVE = {"LogNormal", "HalfNormal", "Gamma", "Exponential"}


def zero_sum_expand(y, ops_np):
    """The n values summing to zero that PyMC's ``ZeroSumTransform`` maps the n - 1
    unconstrained values ``y`` (last axis) to (an orthonormal map: no Jacobian)."""
    n = y.shape[-1] + 1
    s = y.sum(axis=-1, keepdims=True)
    norm = s / (np.sqrt(n) + n)
    fill = norm - s / np.sqrt(n)
    return ops_np.concatenate([y, fill], axis=-1) - norm


def zero_sum_logp(values, sigma, ops):
    """PyMC's ZeroSumNormal log density of n values summing to zero: the normal density
    of each value, the normalising constant counted for n - 1 degrees of freedom."""
    n = values.shape[-1]
    z = values / sigma
    return -0.5 * (z * z).sum() - (n - 1) * (ops.log(sigma) + _LOG_SQRT_2PI)


# ---- the plan: which blocks of the unconstrained vector are what ---------------------
@dataclass(frozen=True)
class Block:
    """One prior of the model: a slice of the unconstrained vector."""

    name: str
    family: str  # a FAMILIES name, or "ZeroSum" (the segments' deviations)
    start: int
    size: int


@dataclass
class Plan:
    """What the fast path samples: the blocks, the data arrays and the structure key."""

    blocks: tuple[Block, ...]
    dim: int
    segments: int | None  # number of segments, None without segments
    data: dict  # arrays (the jitted functions' arguments)
    structure: tuple  # everything the compiled code depends on besides array values
    var_names: list[str]
    settings: dict
    #: the length of the count terms' log-Pochhammer table (:func:`_pochhammer_table`),
    #: None for log-gamma functions (also in ``structure``, by position)
    table: int | None = None


def padded_size(n: int) -> int:
    """The size class of ``n`` rows: the next of 64, 96, 128, 192, 256, ... (at most 1.5x
    ``n``), above 65,536 the next multiple of 1/8 of the power of two below ``n``, so
    that data sets of similar size share compiled code; padded rows weigh 0."""
    if n > 1 << 16:  # multiples of 1/8 of a power of two: at most 1.125x
        step = 1 << (int(n).bit_length() - 4)
        return -(-int(n) // step) * step
    size = 64
    while size < n:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return size


def _pad(a: np.ndarray, size: int, fill=None) -> np.ndarray:
    """``a`` extended to ``size`` rows by copies of its last row (or ``fill``): sorted
    columns stay sorted."""
    a = np.asarray(a)
    if a.shape[0] == size:
        return a
    value = a[-1:] if fill is None else np.full(1, fill, dtype=a.dtype)
    return np.concatenate([a, np.repeat(value, size - a.shape[0], axis=0)])


def _runs(index: np.ndarray, n_targets: int) -> np.ndarray:
    """(2, n_targets) first and one-past-last position of each value of a sorted index."""
    targets = np.arange(n_targets)
    bounds = [np.searchsorted(index, targets, side) for side in ("left", "right")]
    return np.stack(bounds).astype(np.int32)


@cache
def _take_sorted_fn():
    """``take(values, index, runs) = values[index]`` for a sorted ``index``, whose
    gradient sums the rows' cotangents per run through a cumulative sum: the same
    numbers as the scatter-add that JAX derives for an indexing, which XLA's CPU
    back-end runs about 5x slower than the rest of a BG/NBD gradient (measured inside
    NUTS on CDNOW, 195 against 40 us per evaluation)."""
    import jax
    import jax.numpy as jnp

    @jax.custom_vjp
    def take(values, index, runs):
        return values[index]

    def forward(values, index, runs):
        return values[index], (index, runs)

    def backward(res, g):
        _, runs = res
        cs = jnp.concatenate([jnp.zeros(1, g.dtype), jnp.cumsum(g)])
        return cs[runs[1]] - cs[runs[0]], None, None

    take.defvjp(forward, backward)
    return take


@cache
def _likelihoods() -> dict:
    """The log-likelihood functions (``_ll``) this path evaluates with ``ops=jax_ops()``
    (pure ``ops`` code, each tested equal to PyMC's density, tests/test_bayes_fast.py),
    each with the count terms it sums on the grid of distinct frequencies (see
    :func:`log_density`) and the builder of its fixed quadrature (the Pareto/NBD's
    :func:`~clvmodels.models.paretonbd.quadrature_grid`: its PyMC path is a numpy
    quadrature with data-dependent panels), or None. A model is taken by its
    likelihood function, not by the class it inherits from."""
    from ..models import bdw, bgnbd, gammagamma, mbgnbd, paretonbd, sbg

    return {
        bgnbd.loglik: (bgnbd.count_terms, None),
        paretonbd.loglik: (paretonbd.count_terms, paretonbd.quadrature_grid),
        mbgnbd.loglik: (None, None),
        gammagamma.loglik: (None, None),
        sbg.loglik: (None, None),
        bdw.loglik: (None, None),
    }


def _stock(model) -> str | None:
    """"flat" or "segments" when ``model`` builds its PyMC model with the stock code this
    path reproduces, has no covariates and a likelihood of :func:`_likelihoods`, else
    None."""
    from ._base import BayesModel
    from .segments import SegmentMixin

    cls = type(model)
    known = _likelihoods()
    if cls._build is not BayesModel._build or getattr(model, "design_", None) is not None:
        return None
    if cls._ll not in known or cls._count_terms not in (None, known[cls._ll][0]):
        return None
    if cls._parameters is BayesModel._parameters and model.segment is None:
        return "flat"
    if known[cls._ll][1] is not None:
        return None  # a fixed quadrature for one set of parameters
    if isinstance(model, SegmentMixin) and cls._parameters is SegmentMixin._parameters:
        return "segments"
    return None


#: the model kinds ``sampler="auto"`` sends here; the segment models stay on nutpie by
#: default: on the CDNOW master (9,366 distinct rows, 9 segments) this path was slower
#: than nutpie's C back-end in the one measurement made (``sampler="blackjax"`` asks)
AUTO_KINDS = ("flat",)


def plan(model, specs, cols, w, codes, n_groups, settings, auto=False) -> Plan | None:
    """The fast path's plan for a model and its data, or None when it cannot take it
    (see the module docstring; with ``auto``, also for kinds not in :data:`AUTO_KINDS`).
    Calls the model's ``_set_groups`` hook, as its PyMC build does."""
    kind = _stock(model)
    if kind is None or set(settings) - set(KNOWN_SETTINGS):
        return None
    if auto and kind not in AUTO_KINDS:
        return None
    for spec in specs.values():
        if callable(spec) or spec[0] not in FAMILIES:
            return None
        if set(spec[1]) != set(FAMILIES[spec[0]][0]):
            return None
    structure_groups = model._set_groups(codes, w, n_groups, cols)
    if getattr(model, "basis_", None) is not None:
        return None  # deviations along rotated directions (segments module): not mirrored
    blocks, hyper, lam = [], [], []
    start = 0

    def add(name, family, size=1):
        nonlocal start
        blocks.append(Block(name, family, start, size))
        start += size
        if family in FAMILIES:
            args = specs[name][1]
            hyper.append([float(args[a]) for a in FAMILIES[family][0]] + [0.0] * (2 - len(args)))

    if kind == "flat":
        for n in model.param_names:
            add(n, specs[n][0])
        var_names = list(model.param_names)
    else:
        seen = set()
        for name, _, k in model._coordinates():
            mu_name, sigma_name = model._hyper_names(name, k)
            add(mu_name, specs[mu_name][0])
            if sigma_name not in seen:
                seen.add(sigma_name)
                add(sigma_name, specs[sigma_name][0])
            add(f"{name}_t", "ZeroSum", n_groups - 1)
            lam.append(float(model.centering_[name]))
        var_names = model._var_names()
    order = np.lexsort((cols[0], codes))  # by segment, then frequency (see _take_sorted_fn)
    cols, w, codes = [c[order] for c in cols], w[order], codes[order]
    size = padded_size(w.size)
    data = {
        "cols": [_pad(c.astype(float), size) for c in cols],
        "weight": _pad(w.astype(float), size, 0.0),
        "codes": _pad(codes.astype(np.int32), size),
        "hyper": np.asarray(hyper, dtype=float).reshape(-1, 2),
        "centering": np.asarray(lam, dtype=float),
    }
    n_grid, n_table, quadrature = 0, None, None
    count_terms, build_grid = _likelihoods()[type(model)._ll]
    if build_grid is not None:
        data["ll_grid"], quadrature = _quadrature_data(build_grid, cols, size)
    if count_terms is not None:
        # the count terms on the grid (segment x distinct frequency), each cell weighted
        # by its rows' total weight (0 for an empty cell): see log_density
        x_grid, x_index = np.unique(cols[0], return_inverse=True)
        n_grid = padded_size(x_grid.size)
        grid_weight = np.zeros((n_groups, n_grid))
        np.add.at(grid_weight, (codes, x_index), w)
        data["grid_x"] = _pad(x_grid.astype(float), n_grid)
        data["grid_weight"] = grid_weight
        n_table = _table_size(x_grid, n_groups)
    data["segment_runs"] = _runs(data["codes"], n_groups)
    structure = (
        type(model).__name__,
        kind,
        tuple(blocks),
        size,
        n_grid,
        n_table,
        n_groups if kind == "segments" else None,
        tuple(structure_groups) if kind == "flat" else None,
        quadrature,
    )
    return Plan(
        blocks=tuple(blocks),
        dim=start,
        segments=n_groups if kind == "segments" else None,
        data=data,
        structure=structure,
        var_names=var_names,
        settings=dict(settings),
        table=n_table,
    )


def _quadrature_data(build_grid, cols, size: int):
    """The fixed quadrature of the (sorted, unpadded) rows ``cols`` (``build_grid``, e.g.
    :func:`clvmodels.models.paretonbd.quadrature_grid`), padded: the rows' point indices
    to ``size`` rows, the arrays of each kind (``panel_*``, ``point_*``, ...: the prefix
    of a name; ``{kind}_x`` gives its count) along their last axis to its size class by
    copies of their last element (a copied last panel ends a segment of its own, a
    copied last point is no row's). Returns (data, structure:
    the padded sizes)."""
    grid, rows = build_grid(*cols)
    kinds = sorted({name.split("_")[0] for name in grid})
    sizes = {kind: padded_size(grid[f"{kind}_x"].shape[-1]) for kind in kinds}
    padded = {}
    for name, a in grid.items():
        n = sizes[name.split("_")[0]]
        if a.dtype.kind == "i":
            a = a.astype(np.int32)
        padded[name] = np.concatenate([a, np.repeat(a[..., -1:], n - a.shape[-1], axis=-1)],
                                      axis=-1)
    rows = {name: _pad(idx.astype(np.int32), size) for name, idx in rows.items()}
    return (padded, rows), tuple(sizes[k] for k in kinds)


# ---- the log density -------------------------------------------------------------------
def _named_values(model, plan_: Plan, z, data, ops):
    """(log prior, {variable name: value}) at the unconstrained vector ``z``."""
    import jax.numpy as jnp

    logp = 0.0
    values = {}
    hyper_row = 0
    for b in plan_.blocks:
        y = z[b.start : b.start + b.size]
        if b.family == "ZeroSum":
            values[b.name] = zero_sum_expand(y, jnp)
            continue
        _, logpdf, _ = FAMILIES[b.family]
        n_args = len(FAMILIES[b.family][0])
        args = [data["hyper"][hyper_row, j] for j in range(n_args)]
        hyper_row += 1
        logp = logp + logpdf(y[0], *args, ops=ops)
        values[b.name] = jnp.exp(y[0]) if b.family in _POSITIVE else y[0]
    if plan_.segments is None:
        return logp, values
    coords = {}
    for j, (name, _, kind) in enumerate(model._coordinates()):
        mu_name, sigma_name = model._hyper_names(name, kind)
        sigma, lam = values[sigma_name], data["centering"][j]
        t = values.pop(f"{name}_t")
        # t ~ ZeroSumNormal(sigma^lam), deviations sigma^(1 - lam) t (segments module)
        logp = logp + zero_sum_logp(t, sigma**lam, ops)
        coords[name] = values[mu_name] + sigma ** (1.0 - lam) * t
    for n, log_theta in model._logs(coords).items():
        values[n] = jnp.exp(log_theta)
    return logp, values


def log_density(model, plan_: Plan, z, data):
    r"""The log posterior density (up to a constant) at the unconstrained vector ``z``:
    the priors plus ``sum(weight * loglik)``, the model's own log-likelihood with
    ``ops=jax_ops()``.

    With count terms (the likelihood's in :func:`_likelihoods`, e.g.
    :func:`clvmodels.models.bgnbd.count_terms`)
    the first of them (log c1: the gamma functions of the parameters and the frequency)
    is an additive term of each row's log-likelihood, so :math:`\sum_i w_i \log c_1(g_i,
    x_i)` is evaluated on the grid of segments x distinct frequencies, each cell weighted
    by its rows' total weight, and the rows get 0 in its place (the second term, one log
    per row, the likelihood computes itself). Exact: the same sum, ordered differently.
    For whole-number frequencies the log-gamma differences are cumulative sums of logs
    (:func:`_pochhammer_table`). No per-row gather of a term: XLA fuses a gathered
    term's producer into the gather and evaluates the gamma functions once per row.
    Measured inside a gradient on the CDNOW sample (1,024 rows, CPU time): 216 us with
    the gathered terms, 80-110 us summed per cell with log-gamma, 30-43 us with the table.
    """
    ops = jax_ops()
    take = _take_sorted_fn()
    logp, values = _named_values(model, plan_, z, data, ops)
    names = model.param_names
    extra = {}
    if plan_.segments is None:
        per_row = [values[n] for n in names]
    else:
        per_row = [take(values[n], data["codes"], data["segment_runs"]) for n in names]
    if "grid_x" in data:
        table = plan_.table
        grid_ops = ops if table is None else _with_pochhammer_table(ops, table)
        if plan_.segments is None:
            at_grid, x = [values[n] for n in names], data["grid_x"]
        else:
            at_grid, x = [values[n][:, None] for n in names], data["grid_x"][None, :]
        count_terms = _likelihoods()[type(model)._ll][0]
        log_c1, _ = count_terms(*at_grid, x, ops=grid_ops)
        logp = logp + (data["grid_weight"].reshape(log_c1.shape) * log_c1).sum()
        extra["counts"] = (0.0, None)
    if "ll_grid" in data:
        extra["grid"] = data["ll_grid"]
    ll = type(model)._ll(*per_row, *data["cols"], ops=ops, **extra)
    return logp + (data["weight"] * ll).sum()


#: the largest (segments x (highest frequency + 1)) whose log-gamma differences are
#: cumulative sums of logs (:func:`_pochhammer_table`); above, the log-gamma function
TABLE_MAX_CELLS = 100_000


def _table_size(x_grid: np.ndarray, n_groups: int) -> int | None:
    """The (padded) length of the table of :func:`_pochhammer_table` for frequencies
    ``x_grid``, or None when they are not whole numbers or the table would be large."""
    if x_grid.size == 0 or x_grid.min() < 0 or not np.array_equal(x_grid, np.floor(x_grid)):
        return None
    size = padded_size(int(x_grid.max()) + 1)
    return size if size * n_groups <= TABLE_MAX_CELLS else None


def _with_pochhammer_table(ops, size: int):
    """``ops`` whose ``log_pochhammer`` is :func:`_pochhammer_table` (``size`` entries)."""
    from types import SimpleNamespace

    return SimpleNamespace(**{**vars(ops), "log_pochhammer": _pochhammer_table(size)})


def _pochhammer_table(size: int):
    r"""``log_pochhammer(base, x)`` = :math:`\log\Gamma(base + x) - \log\Gamma(base)` for
    whole numbers :math:`0 \le x < size`, as :math:`\sum_{k<x} \log(base + k)` (the
    recurrence :math:`\Gamma(z + 1) = z\Gamma(z)`, DLMF 5.5.1): one cumulative sum of
    ``size`` logs per value of ``base``, read at x; its gradient has no digamma (which
    XLA's CPU back-end evaluates slowly). ``base`` is a number or a column (g, 1),
    ``x`` varies along the last axis only: the result has their broadcast shape."""
    import jax.numpy as jnp

    k = np.arange(size, dtype=float)

    def log_pochhammer(base, x):
        base, x = jnp.asarray(base), jnp.asarray(x)
        if base.ndim and base.shape[-1] != 1:
            raise ValueError("the table's base must be a number or a column")
        shape = jnp.broadcast_shapes(base.shape, x.shape)
        logs = jnp.log(base.reshape(-1, 1) + k)
        table = jnp.concatenate([jnp.zeros((logs.shape[0], 1)), jnp.cumsum(logs, axis=1)], 1)
        return table[:, x.reshape(-1).astype(np.int32)].reshape(shape)

    return log_pochhammer


def initial_points(model, plan_: Plan, specs, chains: int, rng) -> np.ndarray:
    """Starting values (chains x dim): each prior's centre on the unconstrained scale
    plus uniform(-1, 1) jitter, as PyMC's ``jitter_rvs`` (0 for the deviations)."""
    z0 = np.zeros(plan_.dim)
    for b in plan_.blocks:
        if b.family != "ZeroSum":
            names, _, centre = FAMILIES[b.family]
            z0[b.start] = centre(*(specs[b.name][1][a] for a in names))
    return z0 + rng.uniform(-1.0, 1.0, size=(chains, plan_.dim))


def device_data(plan_: Plan):
    """The plan's data as JAX arrays, in double precision."""
    _configure_jax()
    import jax

    # device_put, not jnp.asarray: the latter compiles a small program per shape
    return jax.device_put(jax.tree.map(np.asarray, plan_.data))


# ---- compilation cache -------------------------------------------------------------------
def cache_dir() -> Path:
    """Where compiled programs are kept across processes: ``$CLVMODELS_CACHE_DIR/jax``,
    else the user cache directory (``platformdirs.user_cache_dir("clvmodels")``)."""
    root = os.environ.get("CLVMODELS_CACHE_DIR")
    if not root:
        from platformdirs import user_cache_dir

        root = user_cache_dir("clvmodels")
    return Path(root) / "jax"


@cache
def _configure_jax() -> None:
    """Double precision, and the persistent compilation cache unless the user set one."""
    jax_ops()  # enables float64
    import jax

    if not jax.config.jax_compilation_cache_dir:
        path = cache_dir()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            return  # no writable cache: compile in every process
        jax.config.update("jax_compilation_cache_dir", str(path))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# ---- the programs --------------------------------------------------------------------
#: XLA's options for the two programs: without the CPU back-end's fusion emitters (MLIR)
#: XLA compiles them in 1.5-1.8 s instead of 2.8-3.1 s each (BG/NBD, CDNOW sample, in a
#: new environment), and they run as fast (measured in benchmarks/bench_bayes.py)
COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}
_PROGRAMS: dict = {}


def _source_digest(model) -> str:
    """A digest of the code a compiled program comes from: this module, the ops, the
    model's modules (likelihood, segments), and the versions of JAX and blackjax."""
    import inspect
    from importlib.metadata import version

    from .. import _math
    from . import segments

    files = {__file__, _math.__file__, segments.__file__, inspect.getsourcefile(type(model)._ll)}
    files.add(inspect.getsourcefile(type(model)))
    h = hashlib.sha256(f"{version('jax')} {version('jaxlib')} {version('blackjax')}".encode())
    for f in sorted(files):
        h.update(Path(f).read_bytes())
    return h.hexdigest()


def _trace(model, plan_: Plan, target: float, max_depth: int, tune: int, block: int):
    """The jitted warm-up and block-of-draws functions of one chain (traced from
    blackjax: imports and tracing take about 2 s, which :func:`_programs` saves)."""
    import blackjax
    import jax
    import jax.numpy as jnp
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    dense = plan_.dim <= DENSE_MAX_DIM

    def logdensity_of(data):
        return lambda z: log_density(model, plan_, z, data)

    def warmup(key, stream, z0, data):
        key = jax.random.fold_in(key, stream)
        adapt = blackjax.window_adaptation(
            blackjax.nuts,
            logdensity_of(data),
            is_mass_matrix_diagonal=not dense,
            target_acceptance_rate=target,
            adaptation_info_fn=get_filter_adapt_info_fn(),
            max_num_doublings=max_depth,
        )
        (state, params), _ = adapt.run(key, z0, num_steps=tune)
        return tuple(state), params["step_size"], params["inverse_mass_matrix"]

    def draws(key, stream, state, step_size, imm, data, offset):
        key = jax.random.fold_in(key, stream)
        logdensity = logdensity_of(data)
        kernel = blackjax.nuts.build_kernel()
        state = blackjax.mcmc.hmc.HMCState(*state)

        def step(s, i):
            k = jax.random.fold_in(key, offset + i)
            s, info = kernel(k, s, logdensity, step_size, imm, max_depth)
            _, values = _named_values(model, plan_, s.position, data, jax_ops())
            out = {n: values[n] for n in plan_.var_names}
            stats = {
                "diverging": info.is_divergent,
                "energy": info.energy,
                "acceptance_rate": info.acceptance_rate,
                "n_steps": info.num_integration_steps,
                "tree_depth": info.num_trajectory_expansions,
                "lp": s.logdensity,
            }
            return s, (out, stats)

        state, out = jax.lax.scan(step, state, jnp.arange(block))
        return tuple(state), out

    return jax.jit(warmup), jax.jit(draws)


def _programs(model, plan_: Plan, target, max_depth, tune, block, args_warmup, args_draws,
              pool):
    """The warm-up and block-of-draws programs of one chain, compiled: two futures of
    ``jax.stages.Compiled``, compiled in ``pool`` (an executor with two threads) with
    :data:`COMPILER_OPTIONS`; after tracing, the draws program is traced while XLA
    compiles the warm-up. A failed compilation is not kept: the next fit tries again.

    Kept in memory for the process, and on disk (:func:`cache_dir`, as serialized
    StableHLO of ``jax.export``) keyed by the model structure, the settings and the
    source: a new process deserializes them instead of importing blackjax and tracing,
    and XLA's persistent cache supplies the compiled code.
    """
    import jax
    from jax import export

    key = (plan_.structure, plan_.dim, target, max_depth, tune, block)
    kept = _PROGRAMS.get(key)
    if kept is not None and not any(f.done() and f.exception() for f in kept):
        return kept
    args = (args_warmup, args_draws)

    def compile_(i, exported):
        lowered = jax.jit(exported.call).lower(*args[i])
        try:
            return lowered.compile(compiler_options=COMPILER_OPTIONS)
        except jax.errors.JaxRuntimeError:  # an XLA that does not know an option
            return lowered.compile()

    digest = hashlib.sha256(repr((key, _source_digest(model))).encode()).hexdigest()[:32]
    path = cache_dir() / "programs" / f"{type(model).__name__}-{digest}.bin"
    try:
        exported = [export.deserialize(b) for b in _unpack(path.read_bytes())]
    except (OSError, ValueError):
        exported = []
    if len(exported) == 2:
        futures = tuple(pool.submit(compile_, i, e) for i, e in enumerate(exported))
    else:
        # trace one program while XLA compiles the other
        futures, exported = [], []
        for i, fn in enumerate(_trace(model, plan_, target, max_depth, tune, block)):
            exported.append(export.export(fn)(*args[i]))
            futures.append(pool.submit(compile_, i, exported[i]))
        futures = tuple(futures)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(_pack([e.serialize() for e in exported]))
            os.replace(tmp, path)
        except OSError:
            pass  # no writable cache: trace again in the next process
    _PROGRAMS[key] = futures
    return futures


def _pack(blobs) -> bytes:
    """Blobs as one byte string: each preceded by its length (8 bytes, little-endian)."""
    return b"".join(len(b).to_bytes(8, "little") + bytes(b) for b in blobs)


def _unpack(raw: bytes) -> list[bytearray]:
    out, i = [], 0
    while i < len(raw):
        n = int.from_bytes(raw[i : i + 8], "little")
        if n <= 0 or i + 8 + n > len(raw):
            raise ValueError("truncated program cache file")
        out.append(bytearray(raw[i + 8 : i + 8 + n]))
        i += 8 + n
    return out


def sample(model, plan_: Plan, specs, *, draws, tune, chains, cores, random_seed, progressbar):
    """NUTS draws of the plan's posterior (:class:`Draws`): the variables
    ``plan_.var_names`` (a segment axis in segment models) and the sampler statistics
    (``diverging``, ``energy``, ``step_size``, ...).

    Each chain runs its warm-up, then its draws in blocks of :data:`BLOCK` steps, in one
    of ``cores`` threads (the compiled code releases Python's GIL); the draws do not
    depend on ``cores``.
    """
    _configure_jax()
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import jax

    # the convergence diagnostics' import (0.5 s): in a thread while the programs run
    importer = threading.Thread(target=_import_stats, name="clvmodels-import", daemon=True)
    importer.start()
    if random_seed is None:
        random_seed = int(np.random.SeedSequence().entropy % (2**31))
    draws, tune = int(draws), int(tune)
    target = float(plan_.settings.get("target_accept", 0.8))
    max_depth = int(plan_.settings.get("max_treedepth", 10))
    block = min(BLOCK, draws)
    rng = np.random.default_rng(random_seed)
    z0 = initial_points(model, plan_, specs, chains, rng)
    # threefry's key of the seed (its two 32-bit halves), made without JAX (jax.random
    # compiles three small programs); chain c's warm-up and draws use its streams 2c
    # and 2c + 1 (jax.random.fold_in, inside the programs)
    seed = int(random_seed) % 2**64
    root = np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32)
    data = device_data(plan_)
    shape = jax.ShapeDtypeStruct
    dense = plan_.dim <= DENSE_MAX_DIM
    spec_state = _state_spec(plan_.dim)
    spec_imm = shape((plan_.dim, plan_.dim) if dense else (plan_.dim,), np.float64)
    spec_key = shape(root.shape, root.dtype)
    spec_stream = shape((), np.int32)
    compiler = ThreadPoolExecutor(2, thread_name_prefix="clvmodels-compile")
    programs = _programs(
        model,
        plan_,
        target,
        max_depth,
        tune,
        block,
        (spec_key, spec_stream, shape((plan_.dim,), np.float64), data),
        (spec_key, spec_stream, spec_state, shape((), np.float64), spec_imm, data,
         shape((), np.int32)),
        compiler,
    )
    compiler.shutdown(wait=False)
    bar = None
    lock = threading.Lock()
    if progressbar:
        from tqdm.auto import tqdm

        bar = tqdm(total=chains * (tune + draws), desc=f"Sampling {chains} chains", unit="draw")

    def advance(n):
        if bar is not None:
            with lock:
                bar.update(n)

    workers = max(1, min(int(cores), chains))

    def run_chain(c):
        warmup = programs[0].result()
        state, step_size, imm = warmup(root, np.int32(2 * c), z0[c], data)
        jax.block_until_ready(state)
        advance(tune)
        block_fn = programs[1].result()
        pieces = []
        for offset in range(0, draws, block):
            state, piece = block_fn(
                root, np.int32(2 * c + 1), state, step_size, imm, data, np.int32(offset)
            )
            pieces.append(jax.device_get(piece))
            advance(min(block, draws - offset))
        out = jax.tree.map(lambda *a: np.concatenate(a)[:draws], *pieces)
        out[1]["step_size"] = np.full(draws, float(step_size))
        return out

    try:
        if workers == 1:
            results = [run_chain(c) for c in range(chains)]
        else:
            def run_worker(j):  # chains j, j + workers, ... in thread j
                return {c: run_chain(c) for c in range(j, chains, workers)}

            with ThreadPoolExecutor(workers, thread_name_prefix="clvmodels-chain") as pool:
                done = {}
                for f in [pool.submit(run_worker, j) for j in range(workers)]:
                    done.update(f.result())
                results = [done[c] for c in range(chains)]
    finally:
        if bar is not None:
            bar.close()
        importer.join()
    values, stats = jax.tree.map(lambda *a: np.stack(a), *results)
    return Draws({n: np.asarray(values[n]) for n in plan_.var_names},
                 {k: np.asarray(v) for k, v in stats.items()})


def _import_stats() -> None:
    """Import ArviZ's array diagnostics (errors surface again at the import in the main
    thread)."""
    try:
        from arviz_stats.base import array_stats  # noqa: F401
    except Exception:  # noqa: BLE001 - reported by the main thread's own import
        pass


def _state_spec(dim):
    """Shapes of blackjax's HMC state as a tuple (position, log density, gradient)."""
    import jax

    vec = jax.ShapeDtypeStruct((dim,), np.float64)
    return (vec, jax.ShapeDtypeStruct((), np.float64), vec)


class Draws(NamedTuple):
    """The fast path's draws as numpy arrays: ``posterior`` (name: (chain, draw) or
    (chain, draw, segment)) and ``sample_stats`` (name: (chain, draw)). The model makes
    its ``InferenceData`` (:func:`inference_data`) when it is first asked for: ArviZ
    takes 1.5 s to import, a third of a CDNOW fit."""

    posterior: dict
    sample_stats: dict


def inference_data(draws: Draws, coords: dict, attrs: dict):
    """``draws`` as an ``arviz.InferenceData``: variables with a third axis have the
    dimension ``segment`` (labels ``coords["segment"]``); ``attrs`` on the posterior."""
    import arviz as az

    dims = {n: ["segment"] for n, v in draws.posterior.items() if np.ndim(v) == 3}
    idata = az.from_dict(
        posterior=draws.posterior, sample_stats=draws.sample_stats, coords=coords, dims=dims
    )
    idata.posterior.attrs.update(attrs)
    return idata
