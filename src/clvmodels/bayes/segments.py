r"""Hierarchical segment models: BG/NBD and Gamma-Gamma with parameters per segment.

Each segment :math:`s = 1..S` has its own parameters :math:`\theta_{s,j}` (``r, alpha,
a, b`` for :class:`SegmentBGNBD`, ``p, q, v`` for :class:`SegmentGammaGamma`). Their logs
are drawn from a population distribution, written in the non-centred form:

.. math::
    \log \theta_{s,j} = \mu_j + \sigma_j z_{s,j}, \qquad z_{s,j} \sim N(0, 1),

    \mu_j \sim N(m_j, 2^2), \qquad \sigma_j \sim \text{HalfNormal}(0.5),

where :math:`N(m_j, 2^2)` is the default prior of :math:`\log \theta_j` in the
one-segment model (:mod:`clvmodels.bayes.bgnbd`, :mod:`clvmodels.bayes.gammagamma`,
computed on all the data). Customer :math:`i` of segment :math:`s(i)` contributes the
log-likelihood of the one-segment model at :math:`\theta_{s(i)}`; identical rows of a
segment enter once with their count as weight.

:math:`\sigma_j` is the spread of segments on the log scale (prior scale 0.5: segments
typically within a factor :math:`e^{\pm 0.5} \approx 1.65` of each other). A small
segment's data say little about :math:`\theta_s`, so its posterior stays near the
population :math:`e^{\mu_j}` (partial pooling); a large segment's likelihood dominates and
its estimate is close to a separate fit. It works from 2 to 50 segments and for segments
of 20 customers.

Pairs of parameters (:class:`SegmentBGNBD`, ``population="pairs"``, the default). The
data pin down a ratio of each BG/NBD pair much better than the pair itself: the mean
purchase rate :math:`r/\alpha` and the odds :math:`a/b` of the mean drop-out probability,
while :math:`r\alpha` and :math:`ab` are weakly identified (the posterior of
:math:`(\log r, \log\alpha)` is a narrow ridge, and so is that of
:math:`(\log a, \log b)`). Segments mostly differ along the ratio. So the population is
put on the rotated coordinates of each pair :math:`(j, k)`:

.. math::
    u_s = (\log\theta_{s,j} - \log\theta_{s,k}) / \sqrt 2, \qquad
    v_s = (\log\theta_{s,j} + \log\theta_{s,k}) / \sqrt 2,

    u_s \sim N(\mu_u, \sigma_u^2), \quad v_s \sim N(\mu_v, \sigma_v^2), \quad
    \mu_u \sim N(\tfrac{m_j - m_k}{\sqrt 2}, 2^2), \quad
    \mu_v \sim N(\tfrac{m_j + m_k}{\sqrt 2}, 2^2), \quad
    \sigma_u, \sigma_v \sim \text{HalfNormal}(0.5).

The rotation is orthonormal, so the prior of the population centre is the same as with
independent logs (an isotropic normal turns into itself), and a segment deviation of
:math:`\sigma` in :math:`u` or :math:`v` is one of :math:`\sigma/\sqrt 2` in each log.
The population is a bivariate normal of the two logs whose axes are the ratio and the
product (a special case of the bivariate lognormal population of Abe (2009), *Counting your
customers one by one*, Marketing Science 28(3), eq. 3); ``population="independent"`` gives
the model with independent logs above. On the CDNOW master (9 segments) the pairs
population sampled in about half the time, with no divergences where the independent one
had 4 and a minimum bulk ESS of 335 (``benchmarks/bench_bayes.py``).

Parametrization. The same model can be sampled in two forms. Non-centred (above: the
sampler moves :math:`z_{s,j}`) is efficient when a segment's data are weak relative to
the population spread, the case of small segments. For a large segment the data pin
:math:`\theta_s` down and the non-centred form couples :math:`z_s` tightly to
:math:`(\mu, \sigma)`; there the centred form (the sampler moves
:math:`\log\theta_{s,j} \sim N(\mu_j, \sigma_j^2)` directly) is the efficient one.
``parametrization="auto"`` (default) centres the well-identified ratio coordinates
:math:`u` of segments with at least 500 customers and leaves everything else non-centred
(with ``population="independent"``: non-centred throughout); ``"non_centered"`` and
``"centered"`` use one form for all; a sequence of booleans (one per segment, in sorted
segment order, True = centred) mixes them, and a dict gives either per coordinate (e.g.
``{"r_alpha_u": "centered"}``, or ``{"r": "centered"}`` with independent logs;
coordinates not named stay non-centred). The coordinates are listed in
``population_coords_`` and the choice is kept in ``centered_`` (segments x coordinates).
The posterior is the same; only the sampler's efficiency differs.

Posterior variables (in ``idata_.posterior``): ``r`` (dimension ``segment``) and so on for
each parameter, and per population coordinate ``c`` (``r_alpha_u``, ``r_alpha_v``,
``a_b_u``, ``a_b_v`` for pairs; ``r``, ``alpha``, ... for independent logs) its centre
``c_mu`` and spread ``c_sigma`` (``r_log_mu`` and ``r_log_sigma`` for independent logs).
Hyperpriors are overridden by these names, e.g.
``priors={"a_b_v_sigma": ("HalfNormal", {"sigma": 0.2})}``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError
from ..models import bgnbd as bgnbd_formulas
from ..models.bgnbd import BGNBD as MLEBGNBD
from ._base import BayesModel, _check_spec
from ._predict import HDI_PROB
from .bgnbd import BGNBDMixin
from .gammagamma import GammaGammaMixin

SIGMA_SCALE = 0.5
AUTO_CENTER_MIN = 500  # customers in a segment from which "auto" centres its u coordinates
_SQRT_HALF = np.sqrt(0.5)


class SegmentMixin(BayesModel):
    """Hierarchical (partially pooled) parameters per segment, non-centred."""

    #: pairs of parameters whose population is put on rotated log coordinates
    pairs: tuple = ()

    def __init__(
        self,
        *,
        segment: str = "segment",
        priors=None,
        parametrization="auto",
        population: str = "pairs",
    ):
        if population not in ("pairs", "independent"):
            raise ValueError(f"population must be 'pairs' or 'independent', got {population!r}")
        self.segment = segment
        self.priors = priors
        self.parametrization = parametrization
        self.population = population

    def _coordinates(self) -> list[tuple[str, tuple[str, ...], str]]:
        """The population coordinates: (name, parameters, kind) with kind "log" (one
        parameter's log), "u" (log ratio of a pair) or "v" (log product), each over sqrt 2."""
        pairs = self.pairs if self.population == "pairs" else ()
        paired = {n for pair in pairs for n in pair}
        out = []
        for n in self.param_names:
            if n not in paired:
                out.append((n, (n,), "log"))
        for j, k in pairs:
            out += [(f"{j}_{k}_u", (j, k), "u"), (f"{j}_{k}_v", (j, k), "v")]
        return out

    @staticmethod
    def _hyper_names(name: str, kind: str) -> tuple[str, str]:
        """Names of the coordinate's population centre and spread."""
        stem = f"{name}_log" if kind == "log" else name
        return f"{stem}_mu", f"{stem}_sigma"

    def _settings(self) -> dict:
        def plain(form):
            return form if isinstance(form, str) else [bool(v) for v in form]

        par = self.parametrization
        par = {k: plain(v) for k, v in par.items()} if isinstance(par, dict) else plain(par)
        return {
            **super()._settings(),
            "segment": self.segment,
            "parametrization": par,
            "population": self.population,
        }

    def _segment_values(self, frame: pd.DataFrame) -> pd.Series:
        if self.segment not in frame.columns:
            raise DataError(self.segment, "segment column not found in the data", len(frame))
        values = frame[self.segment]
        missing = int(values.isna().sum())
        if missing:
            raise DataError(self.segment, "must not be missing", missing)
        return values

    def _fit_codes(self, data, rows):
        # every segment of the data gets parameters, also one without rows to fit on
        # (e.g. no repeat buyers for the Gamma-Gamma): its posterior is the population's
        labels = pd.Index(pd.unique(self._segment_values(data))).sort_values()
        codes = labels.get_indexer(self._segment_values(rows).to_numpy())
        return codes.astype(np.int64), np.asarray(labels)

    def segment_index(self, rfm):
        """Position of each row's segment (column ``segment``) among the fitted
        segments: the ``segment`` dimension of :meth:`posterior_draws`."""
        labels = self._check_fitted().posterior["segment"].values
        values = self._segment_values(rfm)
        codes = pd.Index(labels).get_indexer(values.to_numpy())
        unknown = int((codes < 0).sum())
        if unknown:
            new = sorted(set(values[codes < 0].astype(str)))[:5]
            raise DataError(
                self.segment,
                f"has segments the model was not fitted on (e.g. {new})",
                unknown,
            )
        return codes.astype(np.int64)

    def _prior_specs(self, cols, w):
        base = {n: args for n, (_, args) in self._default_priors(cols, w).items()}
        specs = {}
        for name, params, kind in self._coordinates():
            mu_name, sigma_name = self._hyper_names(name, kind)
            if kind == "log":
                mu, sd = base[name]["mu"], base[name]["sigma"]
            else:  # the rotated centre of two independent normal priors
                (m1, s1), (m2, s2) = ((base[n]["mu"], base[n]["sigma"]) for n in params)
                mu = _SQRT_HALF * (m1 - m2 if kind == "u" else m1 + m2)
                sd = float(np.sqrt(0.5 * (s1**2 + s2**2)))
            specs[mu_name] = ("Normal", {"mu": float(mu), "sigma": float(sd)})
            specs[sigma_name] = ("HalfNormal", {"sigma": SIGMA_SCALE})
        for name, spec in (self.priors or {}).items():
            if name not in specs:
                raise ValueError(
                    f"{type(self).__name__}: no hyperparameter {name!r} to put a prior on; "
                    f"the priors are {sorted(specs)}"
                )
            specs[name] = _check_spec(name, spec)
        return specs

    def _coords(self, n_groups):
        return {"segment": np.arange(n_groups)}

    def _set_groups(self, codes, w, n_groups):
        kinds = {name: kind for name, _, kind in self._coordinates()}
        names = list(kinds)
        par = self.parametrization
        per_coord = par if isinstance(par, dict) else dict.fromkeys(names, par)
        unknown = set(per_coord) - set(names)
        if unknown:
            raise ValueError(
                f"parametrization: unknown parameter(s) or coordinate(s) {sorted(unknown)}; "
                f"the population coordinates are {names}"
            )
        size = np.zeros(n_groups)
        if codes is not None:
            weights = np.ones(len(codes)) if w is None else np.asarray(w, dtype=float)
            size = np.bincount(codes, weights=weights, minlength=n_groups)
        centered = {}
        for name in names:
            form = per_coord.get(name, "non_centered")
            if isinstance(form, str):
                if form not in ("auto", "centered", "non_centered"):
                    raise ValueError(
                        "parametrization must be 'auto', 'non_centered', 'centered', one "
                        "boolean per segment (True: centred) or a dict of these by population "
                        f"coordinate; got {form!r}"
                    )
                if form == "auto":
                    centered[name] = (size >= AUTO_CENTER_MIN) & (kinds[name] == "u")
                else:
                    centered[name] = np.full(n_groups, form == "centered")
            else:
                centered[name] = np.asarray(form, dtype=bool)
                if centered[name].shape != (n_groups,):
                    raise ValueError(f"parametrization: need one boolean per segment ({n_groups})")
        self.population_coords_ = names
        self.centered_ = pd.DataFrame(centered)
        return (n_groups, self.population, tuple(tuple(v.tolist()) for v in centered.values()))

    def _parameters(self, specs, prior):
        import pymc as pm
        import pytensor.tensor as pt

        value = {}
        for name, _, kind in self._coordinates():
            mu_name, sigma_name = self._hyper_names(name, kind)
            centered = self.centered_[name].to_numpy()
            i_c, i_nc = np.flatnonzero(centered), np.flatnonzero(~centered)
            mu = prior(mu_name, specs[mu_name])
            sigma = prior(sigma_name, specs[sigma_name])
            coord = pt.zeros(centered.size)
            if i_nc.size:
                z = pm.Normal(f"{name}_z", 0.0, 1.0, shape=i_nc.size)
                coord = pt.set_subtensor(coord[i_nc], mu + sigma * z)
            if i_c.size:
                direct_name = f"{name}_log" if kind == "log" else name
                direct = pm.Normal(direct_name, mu, sigma, shape=i_c.size)
                coord = pt.set_subtensor(coord[i_c], direct)
            value[name] = coord
        out = {}
        for n, log_theta in self._logs(value).items():
            out[n] = pm.Deterministic(n, pt.exp(log_theta), dims="segment")
        return out

    def _logs(self, value: dict) -> dict:
        """Each parameter's log from the population coordinates (arrays or tensors)."""
        logs = {}
        for name, params, kind in self._coordinates():
            if kind == "log":
                logs[name] = value[name]
            elif kind == "u":
                j, k = params
                u, v = value[name], value[f"{j}_{k}_v"]
                logs[j] = _SQRT_HALF * (v + u)
                logs[k] = _SQRT_HALF * (v - u)
        return {n: logs[n] for n in self.param_names}

    def _var_names(self):
        names = list(self.param_names)
        for name, _, kind in self._coordinates():
            names += list(self._hyper_names(name, kind))
        return names

    _check_names = _var_names

    def segment_params(self, hdi_prob: float = HDI_PROB) -> pd.DataFrame:
        """Posterior of each segment's parameters.

        DataFrame indexed by (segment, parameter) with columns mean, sd, hdi_low,
        hdi_high.
        """
        from ._predict import hdi_of_sorted

        post = self._check_fitted().posterior
        labels = post["segment"].values
        frames = []
        for n, draws in zip(self.param_names, self._draws(), strict=True):
            s = np.sort(draws.T, axis=1)
            low, high = hdi_of_sorted(s, hdi_prob)
            frames.append(
                pd.DataFrame(
                    {
                        "segment": labels,
                        "parameter": n,
                        "mean": draws.mean(axis=0),
                        "sd": draws.std(axis=0, ddof=1) if draws.shape[0] > 1 else 0.0,
                        "hdi_low": low,
                        "hdi_high": high,
                    }
                )
            )
        out = pd.concat(frames).set_index(["segment", "parameter"])
        order = pd.MultiIndex.from_product(
            [labels, list(self.param_names)], names=["segment", "parameter"]
        )
        return out.reindex(order)

    def population_params(self, hdi_prob: float = HDI_PROB) -> pd.DataFrame:
        """Posterior of the population: ``<parameter>_median`` (the median segment value,
        ``exp`` of the population centre of its log) per parameter, and the spread
        (``..._sigma``, of the log values or of the rotated coordinates) per population
        coordinate."""
        from ._predict import hdi_of_sorted

        post = self._check_fitted().posterior
        hyper = {name: self._hyper_names(name, kind) for name, _, kind in self._coordinates()}
        centre = {name: post[mu] for name, (mu, _) in hyper.items()}
        series = [(f"{n}_median", np.exp(v)) for n, v in self._logs(centre).items()]
        series += [(sigma, post[sigma]) for _, sigma in hyper.values()]
        rows = []
        for label, da in series:
            v = np.ravel(da.values)
            low, high = hdi_of_sorted(np.sort(v)[None, :], hdi_prob)
            rows.append((label, v.mean(), v.std(ddof=1) if v.size > 1 else 0.0, low[0], high[0]))
        return pd.DataFrame(
            rows, columns=["parameter", "mean", "sd", "hdi_low", "hdi_high"]
        ).set_index("parameter")


class SegmentBGNBD(BGNBDMixin, SegmentMixin):
    """Hierarchical BG/NBD: (r, alpha, a, b) per segment, partially pooled.

    Parameters
    ----------
    segment : str, default "segment"
        Column of the RFM frame naming each customer's segment.
    priors : dict, optional
        Replaces hyperpriors by name (``"r_alpha_u_mu"``, ``"a_b_v_sigma"``, ...; with
        ``population="independent"``: ``"r_log_mu"``, ``"r_log_sigma"``, ...); see
        :mod:`clvmodels.bayes.segments` for the model and its defaults.
    parametrization : str, sequence of bool or dict, default "auto"
        Centred or non-centred form per population coordinate and segment (see
        :mod:`clvmodels.bayes.segments`); the posterior does not depend on it.
    population : {"pairs", "independent"}, default "pairs"
        The population of the segments' logs: a normal on the rotated coordinates
        (log ratio, log product) of (r, alpha) and of (a, b), or independent normals of
        the four logs.
    """

    pairs = (("r", "alpha"), ("a", "b"))


class SegmentGammaGamma(GammaGammaMixin, SegmentMixin):
    """Hierarchical Gamma-Gamma: (p, q, v) per segment, partially pooled.

    Parameters
    ----------
    segment : str, default "segment"
        Column of the RFM frame naming each customer's segment.
    priors : dict, optional
        Replaces hyperpriors by name (``"p_log_mu"``, ``"p_log_sigma"``, ...).
    parametrization : str, sequence of bool or dict, default "auto"
        Centred or non-centred form per parameter and segment (``"auto"``: non-centred);
        see :mod:`clvmodels.bayes.segments`.
    population : {"pairs", "independent"}
        Without pairs of parameters here, both are the model with independent logs.
    """


def simulate_segments(
    sizes,
    population: dict,
    *,
    spread: float = 0.5,
    ages=(26, 52),
    horizon: float | None = None,
    random_state=None,
) -> tuple[pd.DataFrame, dict]:
    r"""Customers of segments whose BG/NBD parameters come from a log-normal population.

    Segment ``s`` gets :math:`\log\theta_{s,j} = \log\theta_j + \sigma z_{s,j}`,
    :math:`z_{s,j} \sim N(0, 1)`: the independent-log population of this module with
    centre ``population`` (``{"r": .., "alpha": .., "a": .., "b": ..}``) and spread
    :math:`\sigma` = ``spread``. Its ``sizes[s]`` customers are drawn exactly from the
    BG/NBD (:func:`clvmodels.models.bgnbd.simulate`) at ages ``T`` of whole weeks, uniform
    on ``ages`` (inclusive), with the recency rounded to whole days (1/7 week), as in
    weekly RFM data from daily transactions.

    Returns ``(rfm, truth)``: ``rfm`` has the columns frequency, recency, T and segment
    (``0 .. len(sizes) - 1``), indexed by ``customer_id``, and with ``horizon`` a column
    ``truth``, each customer's expected purchases in the next ``horizon`` weeks given the
    history at the true parameters (Fader, Hardie & Lee 2005, eq. 10); ``truth`` maps each
    segment to its parameters. The data of simulation studies of :class:`SegmentBGNBD`
    (``benchmarks/bayes_segments_study.py``).
    """
    rng = np.random.default_rng(random_state)
    names = MLEBGNBD.param_names
    missing = [k for k in names if k not in population]
    if missing:
        raise ValueError(f"population needs {list(names)}; missing {missing}")
    lo, hi = (int(v) for v in ages)
    if not 0 < lo <= hi:
        raise ValueError(f"ages must be whole weeks 0 < low <= high, got {ages}")
    truth, frames = {}, []
    for seg, n in enumerate(sizes):
        theta = {
            k: float(population[k] * np.exp(spread * rng.standard_normal())) for k in names
        }
        truth[seg] = theta
        T = rng.integers(lo, hi + 1, int(n)).astype(float)
        sim = MLEBGNBD.from_params(**theta).simulate(int(n), T, random_state=rng)
        # whole days, never past T (recency is the time of the last purchase in (0, T])
        sim["recency"] = np.minimum(np.round(sim["recency"] * 7) / 7, sim["T"])
        sim["segment"] = seg
        if horizon is not None:
            sim["truth"] = bgnbd_formulas.expected_purchases(
                *theta.values(),
                float(horizon),
                sim["frequency"].to_numpy(float),
                sim["recency"].to_numpy(float),
                sim["T"].to_numpy(float),
            )
        frames.append(sim)
    rfm = pd.concat(frames, ignore_index=True)
    rfm.index.name = "customer_id"
    return rfm, truth
