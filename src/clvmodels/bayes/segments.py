r"""Hierarchical segment models: BG/NBD and Gamma-Gamma with parameters per segment.

Each segment :math:`s = 1..S` has its own parameters :math:`\theta_{s,j}` (``r, alpha,
a, b`` for :class:`SegmentBGNBD`, ``p, q, v`` for :class:`SegmentGammaGamma`). Their logs,
in the population coordinates :math:`c` described below, are the segments' average plus
deviations that the segments share a spread for:

.. math::
    c_s = m_c + d_{s,c}, \qquad m_c \sim N(m^0_c, 2^2), \qquad
    (d_{1,c}, \dots, d_{S,c}) \sim \text{ZeroSumNormal}(\sigma), \qquad
    \sigma \sim \text{LogNormal}(\log 0.2, 0.8^2),

where :math:`N(m^0_c, 2^2)` is the default prior of the coordinate in the one-segment
model (:mod:`clvmodels.bayes.bgnbd`, :mod:`clvmodels.bayes.gammagamma`, computed on all
the data) and the ZeroSumNormal is :math:`S` independent :math:`N(0, \sigma^2)` values
minus their mean. Customer :math:`i` of segment :math:`s(i)` contributes the
log-likelihood of the one-segment model at :math:`\theta_{s(i)}`; identical rows of a
segment enter once with their count as weight. A small segment's data say little about
:math:`\theta_s`, so its posterior stays near the average (partial pooling, the more so
the smaller :math:`\sigma`); a large segment's likelihood dominates and its estimate is
close to a separate fit.

Why this form. Users meet the model with few segments (2-5, e.g. three acquisition
cohorts), of unequal sizes, that hardly differ or differ by about 0.5 on the log scale.
With a population centre :math:`\mu_c` and a half-normal spread per coordinate (the
model up to version 0.1) the CDNOW master's 3 cohorts gave R-hat 1.47 and 413 divergent
transitions: each spread rested on 3 values, and its posterior reached down to 0, the
neck of the funnel where NUTS diverges. Three choices remove that geometry:

* **One spread for all coordinates** (``spread="shared"``): with 3 segments, one spread
  per coordinate rests on 2 degrees of freedom, 4 coordinates share :math:`3 \times 4 -
  4 = 8`. The segments are assumed to differ by a similar amount in every coordinate
  (the simulation population of :func:`simulate_segments`). ``spread="per_coordinate"``
  gives one spread per coordinate (hyperparameters ``c_sigma``), for many segments.
* **A zero-avoiding prior on the spread**: :math:`\text{LogNormal}(\log 0.2, 0.8^2)`,
  median 0.2 (segments typically within :math:`e^{\pm 0.2}`, about 20%, of the average),
  95% between 0.04 (alike) and 0.96 (a factor 2.6 apart). With few segments the data
  cannot tell a spread of 0.01 from 0.001 (both: the segments are alike); a half-normal
  then gives :math:`\log\sigma` a long exponential left tail, the funnel's neck, where a
  log-normal's tail is Gaussian. Boundary-avoiding priors for the group-level spread of
  few groups: Chung, Rabe-Hesketh, Dorie, Gelman & Liu (2013), *Psychometrika* 78(4),
  685-709; weakly informative priors for few groups: Gelman (2006), *Bayesian Analysis*
  1(3), 515-534. Override with ``priors={"segment_sigma": ...}``.
* **The prior on the segments' average, not on a population centre**: with few large
  segments :math:`(\mu_c, \sigma)` is itself a funnel (:math:`\mu_c \mid c, \sigma \sim
  N(\bar c, \sigma^2/S)`). Integrating :math:`\mu_c` out of :math:`c_s \sim N(\mu_c,
  \sigma^2)` leaves exactly the average :math:`m_c = \bar c` and the zero-sum deviations
  above; the prior :math:`N(m^0_c, 2^2)` on :math:`m_c` differs from the same prior on
  :math:`\mu_c` only by the variance :math:`\sigma^2/S` (a few hundredths against 4). The
  hyperparameter ``c_mu`` is that average.

Coordinates (:class:`SegmentBGNBD`, ``population="pairs"``, the default). The data pin
down a ratio of each BG/NBD pair much better than the pair itself: the mean purchase rate
:math:`r/\alpha` and the odds :math:`a/b` of the mean drop-out probability, while
:math:`r\alpha` and :math:`ab` are weakly identified. So the coordinates of each pair
:math:`(j, k)` are rotated logs,
:math:`u = (\log\theta_j - \log\theta_k)/\sqrt 2` and
:math:`v = (\log\theta_j + \log\theta_k)/\sqrt 2` (``r_alpha_u``, ``r_alpha_v``,
``a_b_u``, ``a_b_v``); the centres' priors are the rotated priors of the two logs (an
orthonormal rotation turns an isotropic normal into itself). A special case of the
bivariate lognormal population of Abe (2009), *Counting your customers one by one*,
Marketing Science 28(3), eq. 3. :class:`SegmentGammaGamma` has the log of ``q`` and the
rotated pair (``p``, ``v``) (``p_v_u``, ``p_v_v``): the maximum-likelihood estimates of
``log p`` and ``log v`` correlate at -0.97 on CDNOW, the product ``p v`` (the scale of the
spend) being what the data pin down. ``population="independent"`` uses each parameter's
log (coordinates ``r``, ``alpha``, ...; hyperparameters ``r_log_mu``, ...).

Parametrization. Each coordinate's deviations are sampled as
:math:`d = \sigma^{1-\lambda} t`, :math:`t \sim \text{ZeroSumNormal}(\sigma^\lambda)`:
:math:`\lambda = 1` is the centred form (the sampler moves :math:`d`), efficient when the
data pin the segments down more precisely than they differ; :math:`\lambda = 0` the
non-centred form (:math:`d = \sigma z`), efficient when they do not; values between are
the partially non-centred forms of Papaspiliopoulos, Roberts & Sköld (2007), *Statistical
Science* 22(1), 59-73. ``parametrization="auto"`` (default) takes
:math:`\lambda_c = \tilde\sigma^2 / (\tilde\sigma^2 + se_c^2)`, the share of the
segments' spread in the variance of a segment's estimate, from a pilot: a
maximum-likelihood fit of each segment of at least 50 customers gives the coordinates and
their standard errors; :math:`se_c` is their median over segments and
:math:`\tilde\sigma` half the method-of-moments spread (the root of the mean over
coordinates of the variance of the estimates minus their mean squared standard error),
half because the posterior of :math:`\sigma` reaches well below that estimate and the
centred form's trouble is at small :math:`\sigma`, but not below the prior's 5% quantile
(0.054: where segments hardly differ the pilot spread is 0, yet the posterior keeps
:math:`\sigma` near its prior's lower range). ``"centered"``, ``"non_centered"``, a
number in [0, 1], or a dict of these by coordinate (``{"a_b_v": "non_centered"}``) fix
it; the weights are kept in ``centering_``, the pilot spread in ``pilot_spread_``. The
posterior is the same; only the sampler's efficiency differs.

Directions (:class:`SegmentGammaGamma` with ``parametrization="auto"`` and
``spread="shared"``, the defaults). The coordinates' estimates can be correlated within a
segment: in the Gamma-Gamma the data pin
down the mean spend :math:`pv/(q-1)`, so ``q`` and ``p_v_v`` (the log of ``p v``) move
together (posterior correlation 0.82-0.97 per segment in the simulated sets) and neither
alone is well determined. A weight per coordinate then has to choose between a centred
form for the well-determined combination and a non-centred one for the ridge along which
it is not, and gets both wrong: at a spread of 0.1 the spread ``segment_sigma`` had a
bulk ESS of 234-386 at 2 x 500 draws in 3 of 5 sets. So "auto" samples the deviations
along the directions in which the segments' pilot estimates are uncorrelated: the
eigenvectors :math:`e_k` (rows of ``basis_``, coordinates in columns) of the sum over the
segments of their pilot covariance matrices, each scaled to trace 1;
:math:`(d_{s,c})_c = \sum_k e_{k,c}\, \delta_{s,k}` with :math:`\delta_{\cdot,k} =
\sigma^{1-\lambda_k} t_k`, :math:`t_k \sim \text{ZeroSumNormal}(\sigma^{\lambda_k})`,
and :math:`\lambda_k` as above with the median standard error along :math:`e_k`
(``centering_`` is then indexed by direction, ``direction_1``, ...). Since the
deviations' prior :math:`\sigma^2 I` is isotropic and the :math:`e_k` orthonormal, this
is the same model (same prior and posterior of every variable); only the sampler's
coordinates change. The same sets' ``segment_sigma`` then has a bulk ESS of 1,173-1,250
(seeds 0 and 2), and on CDNOW's cohorts the bulk ESS per gradient evaluation rises from
0.132 to 0.192. :class:`SegmentBGNBD` (and :class:`~clvmodels.bayes.SegmentSBG`) keep
the weights by coordinate: on CDNOW's cohorts the directions changed nothing (0.117
against 0.126), and on the simulated sets the first fit's R-hat exceeded 1.01 in 3 of 3
sets tried (1.012-1.017), two of which pass by coordinate (1.008, 1.009).
``_rotate`` (a class attribute) says which model rotates. With one spread per
coordinate the prior is not isotropic, and a ``parametrization`` other than the string
"auto" (a dict, even of "auto", included) gives weights by coordinate, so neither
rotates (nor does a pilot without two segments of at least 50 customers with usable
fits).

Draws. NUTS runs with ``target_accept=0.9`` (nutpie's default 0.8 left R-hat up to 1.011
on CDNOW's cohorts). At the report's 500 draws after 500 tuning steps in 2 chains the
verdict's thresholds (R-hat <= 1.01, ESS >= 400) are close to what R-hat's own sampling
noise gives: the worst of about 20 quantities has a bulk ESS of 350-1,800, and which one
fails changes from set to set. So ``fit`` (with ``retry=True``, the default) refits a
NUTS fit that fails its verdict once, with 2x the draws and tuning steps in at least 4
chains and ``target_accept=0.95`` (2 x 500 becomes 4 x 1,000 after 1,000, about 4-5
times as long; the higher target because 2 of 7 Gamma-Gamma refits at 0.9 had 3
divergent transitions), and keeps the
first verdict in ``first_convergence_`` (None when the first fit stands); the report
says when it refitted. Only the second fit is the result, judged by the same verdict;
when it fails too it is marked "did not converge". ``target_accept=0.95`` for the first
fit instead passed two failing sets but raised CDNOW's R-hat to 1.017 at 2 x 500.

The study (``benchmarks/bayes_segments_few.py``, the report's 500 draws after 500
tuning steps in 2 chains, with the refit above): the CDNOW master's 3 acquisition
cohorts (the report's default segments) and simulated sets of 3 segments of 300, 1,500
and 8,000 customers with a spread of 0.5 and of 0.1; every fit's verdict, and the small
segment's RMSE of E[Y(39) | history] (of E[mean spend | x, m] for the Gamma-Gamma twin)
against its value at the true parameters, for the hierarchical model, a pooled fit and a
separate fit. Verdict: all 40 simulated sets (10 seeds x 2 spreads x 2 models) pass, 0
divergences, R-hat <= 1.0097, bulk ESS >= 499, tail ESS >= 481; 12 of them after the
refit (the first fit: R-hat 1.0104-1.0160 in 5; one divergence or a tail ESS of 268-398
in 7). CDNOW's cohorts pass at the first fit.

Small segments: what partial pooling buys, and when it costs. At a spread of 0.1 the
hierarchical model is about as good as the pooled fit (RMSE 0.091 against 0.108 over 10
seeds, paired difference -0.016, standard error 0.017, lower in 6 of 10) and far better
than separate fits (0.206; -0.115, se 0.040, lower in 8 of 10). The Gamma-Gamma twin's
gain is larger, as the spend of a segment's few repeat buyers says little about its
(p, q, v): over 10 seeds per spread its small-segment RMSE is 0.86 against 1.21 separate
and 21.5 pooled at 0.5 (paired difference with separate -0.35, se 0.22, lower in 6 of 10;
lower than pooled in 10 of 10), and 0.61 against 2.56 separate and 1.93 pooled at 0.1
(-1.95, se 0.38, and -1.31, se 0.26: lower than both in 10 of 10).

At a spread of 0.5, over 10 seeds, the hierarchical BG/NBD's RMSE is 0.129 against 0.165
for separate fits and 0.271 pooled (paired differences -0.036, standard error 0.036,
lower in 7 of 10 seeds; and -0.142, se 0.034, lower in 9 of 10). Over the first 5 seeds
it looked like a tie with separate fits (0.170 against 0.165): one draw (seed 2) gives
the small segment a ``b`` 2.4 population standard deviations below the centre, a
coordinate (the product :math:`ab`) that 300 customers hardly pin down, so partial
pooling pulls it to the other segments and its error is 0.297 against 0.133 for the
separate fit. That is the price of shrinkage for an outlying segment, not of the prior
on the spread: with the spread fixed at its true 0.5 the error in that seed is still
0.240, and a wider prior (median 0.3, log-scale sd 1.0, which moves the prior's 95%
quantile from 0.75 to 1.55 and keeps its 5% quantile) gives 0.294 there, while R-hat
rose to 1.013-1.017 in seeds 0-2 (probably the spread's longer right tail, which 3
segments hardly constrain). The default prior stays.

Posterior variables (in ``idata_.posterior``): ``r`` (dimension ``segment``) and so on for
each parameter, per coordinate ``c`` its segments' average ``c_mu`` and the spread
``segment_sigma`` (``c_sigma`` per coordinate with ``spread="per_coordinate"``).
Hyperpriors are overridden by these names, e.g.
``priors={"segment_sigma": ("HalfNormal", {"sigma": 0.5})}``.

Customer-level covariates (``purchase_covariates=``, ``dropout_covariates=``;
``covariates=`` for the spend) scale each customer's parameters around their segment's,
:math:`\theta_{i,p} = \theta_{s(i),p} \exp(\pm\gamma^\top z_i)`, with one coefficient
per covariate shared by the segments (:mod:`clvmodels.bayes._base`, which also gives the
coefficients' prior). The segments' parameters and their averages ``c_mu`` are reported
for a customer with all covariates 0 (reference levels), as in the one-segment model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError
from ..models import bgnbd as bgnbd_formulas
from ..models.bgnbd import BGNBD as MLEBGNBD
from ..models.gammagamma import GammaGamma as MLEGammaGamma
from ._base import BayesModel, _check_spec
from ._predict import HDI_PROB
from .bgnbd import BGNBDMixin
from .gammagamma import GammaGammaMixin

# the spread's prior: LogNormal with median 0.2 and log-scale sd 0.8 (module docstring)
SIGMA_MEDIAN = 0.2
SIGMA_LOG_SD = 0.8
SHARED_SIGMA = "segment_sigma"  # the one spread of ``spread="shared"``
AUTO_MIN_CUSTOMERS = 50  # segments smaller than this do not enter the pilot estimates
AUTO_MAX_SE = 1.0  # pilot estimates less precise than this (log scale) are not used
AUTO_SPREAD_FRACTION = 0.5  # "auto" balances the forms at half the pilot spread ...
# ... but not below the 5% quantile of the spread's default prior (about 0.054)
AUTO_SPREAD_FLOOR = float(SIGMA_MEDIAN * np.exp(-1.645 * SIGMA_LOG_SD))
_SQRT_HALF = np.sqrt(0.5)
# a fit failing its verdict is refitted once with 2x the draws and tuning, >= 4 chains
RETRY_DRAWS = 2
RETRY_CHAINS = 4
RETRY_TARGET_ACCEPT = 0.95  # ... and smaller steps (divergences of the Gamma-Gamma twin)


class SegmentMixin(BayesModel):
    """Hierarchical (partially pooled) parameters per segment."""

    #: pairs of parameters whose population is put on rotated log coordinates
    pairs: tuple = ()
    _nuts_defaults = {"target_accept": 0.9}
    #: the maximum-likelihood model of the pilot fits, its columns of the data arrays
    _mle: type
    _columns: tuple[str, ...] = ()
    _pilot_constants: dict = {}
    #: "auto" with one shared spread samples the deviations along the pilot's directions
    #: (the Gamma-Gamma twin only: measured, see the module docstring)
    _rotate = False

    def __init__(
        self,
        *,
        segment: str = "segment",
        priors=None,
        parametrization="auto",
        population: str = "pairs",
        spread: str = "shared",
    ):
        if population not in ("pairs", "independent"):
            raise ValueError(f"population must be 'pairs' or 'independent', got {population!r}")
        if spread not in ("shared", "per_coordinate"):
            raise ValueError(f"spread must be 'shared' or 'per_coordinate', got {spread!r}")
        self.segment = segment
        self.priors = priors
        self.parametrization = parametrization
        self.population = population
        self.spread = spread

    def fit(self, data, draws=1000, tune=1000, chains=4, random_seed=0, *, retry=True,
            **kwargs):
        """Draw from the posterior (see :meth:`clvmodels.bayes.BGNBD.fit`); with `retry`
        (default) a NUTS fit that fails its convergence verdict is refitted once with
        :data:`RETRY_DRAWS` times the draws and tuning steps and at least
        :data:`RETRY_CHAINS` chains (the first verdict is kept in
        ``first_convergence_``, None when the first fit was kept; see the module
        docstring). Returns ``self``."""
        import warnings

        from ..errors import StatisticalWarning

        run = dict(draws=draws, tune=tune, chains=chains, random_seed=random_seed, **kwargs)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            super().fit(data, **run)
        self.first_convergence_ = None
        first = self.convergence_
        again = retry and first.method == "nuts" and not first.passed and int(chains) > 1
        for w in caught:  # the first fit's warnings, but its verdict only when it is kept
            if not (again and issubclass(w.category, StatisticalWarning)
                    and str(w.message) == first.message()):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if again:
            run.update(draws=RETRY_DRAWS * int(draws), tune=RETRY_DRAWS * int(tune),
                       chains=max(int(chains), RETRY_CHAINS),
                       target_accept=max(run.get("target_accept", 0.0), RETRY_TARGET_ACCEPT))
            super().fit(data, **run)
            self.first_convergence_ = first
        return self

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

    def _hyper_names(self, name: str, kind: str) -> tuple[str, str]:
        """Names of the coordinate's population centre and spread."""
        stem = f"{name}_log" if kind == "log" else name
        return f"{stem}_mu", SHARED_SIGMA if self.spread == "shared" else f"{stem}_sigma"

    def _rotation(self) -> np.ndarray:
        """(coordinates x parameters) matrix: the population coordinates of the logs."""
        index = {n: i for i, n in enumerate(self.param_names)}
        rows = []
        for _, params, kind in self._coordinates():
            row = np.zeros(len(index))
            for n, sign in zip(params, (1.0, -1.0 if kind == "u" else 1.0), strict=False):
                row[index[n]] = sign * (1.0 if kind == "log" else _SQRT_HALF)
            rows.append(row)
        return np.array(rows)

    def _settings(self) -> dict:
        def plain(form):  # JSON-safe: a name or a number
            return form if isinstance(form, str) else float(form)

        par = self.parametrization
        par = {k: plain(v) for k, v in par.items()} if isinstance(par, dict) else plain(par)
        return {
            **super()._settings(),
            "segment": self.segment,
            "parametrization": par,
            "population": self.population,
            "spread": self.spread,
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
            specs[sigma_name] = (
                "LogNormal",
                {"mu": float(np.log(SIGMA_MEDIAN)), "sigma": SIGMA_LOG_SD},
            )
        specs.update(self._coefficient_prior())  # customer-level covariates, if any
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

    def _pilot(self, codes, w, n_groups, cols) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each segment's maximum-likelihood population coordinates, their standard errors
        (segments x coordinates) and covariance matrices (segments x coordinates x
        coordinates); NaN where a segment is too small or its fit fails."""
        import warnings

        from ..errors import ConvergenceError

        rot = self._rotation()
        est = np.full((n_groups, rot.shape[0]), np.nan)
        cov = np.full((n_groups, rot.shape[0], rot.shape[0]), np.nan)
        for s in range(n_groups):
            rows = codes == s
            if w[rows].sum() < AUTO_MIN_CUSTOMERS:
                continue
            frame = pd.DataFrame({c: col[rows] for c, col in zip(self._columns, cols, strict=True)})
            for c, value in self._pilot_constants.items():  # columns the spend model ignores
                frame[c] = value
            try:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    mle = self._mle().fit(frame, weights=w[rows])
                    theta = mle.params_.to_numpy()
                    cov_log = mle.cov_.to_numpy() / np.outer(theta, theta)
                    est[s] = rot @ np.log(theta)
                    cov[s] = rot @ cov_log @ rot.T
            except (ValueError, ConvergenceError, ArithmeticError, np.linalg.LinAlgError):
                continue
        with np.errstate(invalid="ignore"):
            se = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
        return est, se, cov

    def _auto_centering(self, codes, w, n_groups, cols, rotate=False) -> pd.Series:
        """``parametrization="auto"``: each coordinate's weight of the centred form (see
        the module docstring), from maximum-likelihood fits of the segments; with
        `rotate` (one shared spread) each direction's of ``basis_`` when the pilot gives
        one (indexed by direction then)."""
        names = [name for name, _, _ in self._coordinates()]
        if cols is None or codes is None or n_groups < 2:
            return pd.Series(0.0, index=names)
        weights = np.ones(len(codes)) if w is None else np.asarray(w, dtype=float)
        est, se, cov = self._pilot(np.asarray(codes), weights, n_groups, cols)
        with np.errstate(invalid="ignore"):
            usable = np.isfinite(est) & np.isfinite(se) & (se < AUTO_MAX_SE)
        excess = np.zeros(len(names))
        se_typical = np.full(len(names), np.inf)
        for j in range(len(names)):
            ok = usable[:, j]
            if ok.sum() >= 2:
                excess[j] = np.var(est[ok, j], ddof=1) - np.mean(se[ok, j] ** 2)
                se_typical[j] = np.median(se[ok, j])
        excess = np.clip(excess, 0.0, None)
        spread = np.sqrt(excess.mean() if self.spread == "shared" else excess)
        self.pilot_spread_ = pd.Series(np.broadcast_to(spread, len(names)), index=names)
        target = np.maximum(AUTO_SPREAD_FRACTION * spread, AUTO_SPREAD_FLOOR)
        basis = self._pilot_basis(cov, usable) if rotate else None
        if basis is not None:  # the directions' standard errors, as the coordinates' above
            with np.errstate(invalid="ignore"):
                se_dir = np.sqrt(np.einsum("kc,scd,kd->sk", basis, cov, basis))
            ok = usable.all(axis=1)
            se_typical = np.median(se_dir[ok], axis=0)
            self.basis_ = pd.DataFrame(basis, index=[f"direction_{k + 1}" for k in
                                                     range(len(names))], columns=names)
        with np.errstate(invalid="ignore", divide="ignore"):
            lam = np.where(target > 0, target**2 / (target**2 + se_typical**2), 0.0)
        index = names if basis is None else self.basis_.index
        return pd.Series(np.round(lam, 2), index=index)

    @staticmethod
    def _pilot_basis(cov, usable) -> np.ndarray | None:
        """The directions (rows, orthonormal) along which the segments' pilot estimates are
        uncorrelated: eigenvectors of their covariance matrices each scaled to trace 1 and
        summed over the segments with a usable fit (None with fewer than 2 of them)."""
        ok = usable.all(axis=1)
        if ok.sum() < 2:
            return None
        shape = sum(c / np.trace(c) for c in cov[ok])
        _, vectors = np.linalg.eigh(shape)  # columns, ascending variance
        vectors = vectors * np.where(vectors.sum(axis=0) < 0, -1.0, 1.0)  # a fixed sign
        return vectors.T

    def _set_groups(self, codes, w, n_groups, cols=None):
        names = [name for name, _, _ in self._coordinates()]
        par = self.parametrization
        per_coord = par if isinstance(par, dict) else dict.fromkeys(names, par)
        unknown = set(per_coord) - set(names)
        if unknown:
            raise ValueError(
                f"parametrization: unknown parameter(s) or coordinate(s) {sorted(unknown)}; "
                f"the population coordinates are {names}"
            )
        self.__dict__.pop("basis_", None)
        if par == "auto" and self.spread == "shared" and self._rotate:
            lam = self._auto_centering(codes, w, n_groups, cols, rotate=True)
            if hasattr(self, "basis_"):
                self.population_coords_ = names
                self.centering_ = lam.rename("centering")
                basis = tuple(map(tuple, np.round(self.basis_.to_numpy(), 9)))  # cache key
                return (n_groups, self.population, self.spread, tuple(lam), basis)
        auto = None
        centering = {}
        for name in names:
            form = per_coord.get(name, "auto")
            if form == "auto":
                if auto is None:
                    auto = self._auto_centering(codes, w, n_groups, cols)
                centering[name] = float(auto[name])
            elif form in ("centered", "non_centered"):
                centering[name] = 1.0 if form == "centered" else 0.0
            elif (
                isinstance(form, int | float | np.integer | np.floating)
                and not isinstance(form, bool)
                and 0 <= form <= 1
            ):
                centering[name] = float(form)
            else:
                raise ValueError(
                    "parametrization must be 'auto', 'centered', 'non_centered', a weight of "
                    "the centred form in [0, 1], or a dict of these by population coordinate; "
                    f"got {form!r}"
                )
        self.population_coords_ = names
        self.centering_ = pd.Series(centering, name="centering")
        return (n_groups, self.population, self.spread, tuple(centering.values()))

    def _parameters(self, specs, prior):
        import pymc as pm
        import pytensor.tensor as pt

        value, spreads, centres, sigmas = {}, {}, {}, {}
        for name, _, kind in self._coordinates():
            mu_name, sigma_name = self._hyper_names(name, kind)
            centres[name] = prior(mu_name, specs[mu_name])
            if sigma_name not in sigmas:  # one variable for a shared spread
                sigmas[sigma_name] = prior(sigma_name, specs[sigma_name])
            spreads[name] = sigmas[sigma_name]
        basis = getattr(self, "basis_", None)  # only with one shared spread
        for name in self.centering_.index:  # coordinates, or directions of ``basis_``
            sigma = sigmas[SHARED_SIGMA] if basis is not None else spreads[name]
            lam = float(self.centering_[name])
            # deviations from the segments' average, summing to zero: sigma^(1 - lam) * t
            # with t ~ ZeroSumNormal(sigma^lam) (lam = 1: centred, 0: non-centred)
            t = pm.ZeroSumNormal(f"{name}_t", sigma=sigma**lam, dims="segment")
            value[name] = sigma ** (1.0 - lam) * t
        if basis is not None:  # directions -> coordinates (orthonormal: the same model)
            dirs = list(basis.index)
            value = {c: sum(float(basis.loc[d, c]) * value[d] for d in dirs)
                     for c in basis.columns}
        value = {c: centres[c] + value[c] for c in centres}
        out = {}
        for n, log_theta in self._logs(value).items():
            out[n] = pm.Deterministic(n, pt.exp(log_theta), dims="segment")
        return out

    def _shift_hyperparameters(self, post, shift):
        """With covariates: the segments' average of each coordinate moves with the
        log-parameters (``shift``: chain, draw, parameter) as the segments' own values
        do, so ``population_params`` describes customers with covariates 0 too."""
        import xarray as xr

        for row, (name, _, kind) in zip(self._rotation(), self._coordinates(), strict=True):
            move = shift @ row
            if np.any(move != 0):
                mu = self._hyper_names(name, kind)[0]
                post[mu] = post[mu] + xr.DataArray(move, dims=("chain", "draw"))
        return post

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
        return list(dict.fromkeys(names))

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
        """Posterior of the population: ``<parameter>_median`` (the average segment's
        value, ``exp`` of the segments' average log, rotated back from the coordinates)
        per parameter, and the spread (``segment_sigma``, or ``..._sigma`` per coordinate
        with ``spread="per_coordinate"``) of the segments on the log scale."""
        from ._predict import hdi_of_sorted

        post = self._check_fitted().posterior
        hyper = {name: self._hyper_names(name, kind) for name, _, kind in self._coordinates()}
        centre = {name: post[mu] for name, (mu, _) in hyper.items()}
        series = [(f"{n}_median", np.exp(v)) for n, v in self._logs(centre).items()]
        spreads = dict.fromkeys(sigma for _, sigma in hyper.values())
        series += [(sigma, post[sigma]) for sigma in spreads]
        rows = []
        for label, da in series:
            v = np.ravel(da.values)
            low, high = hdi_of_sorted(np.sort(v)[None, :], hdi_prob)
            rows.append((label, v.mean(), v.std(ddof=1) if v.size > 1 else 0.0, low[0], high[0]))
        return pd.DataFrame(
            rows, columns=["parameter", "mean", "sd", "hdi_low", "hdi_high"]
        ).set_index("parameter")


class SegmentBGNBD(BGNBDMixin, SegmentMixin):
    r"""Hierarchical BG/NBD: (r, alpha, a, b) per segment, partially pooled.

    Parameters
    ----------
    segment : str, default "segment"
        Column of the RFM frame naming each customer's segment.
    priors : dict, optional
        Replaces hyperpriors by name (``"r_alpha_u_mu"``, ``"segment_sigma"``, ...; with
        ``population="independent"``: ``"r_log_mu"``, ...); see
        :mod:`clvmodels.bayes.segments` for the model and its defaults.
    parametrization : str, float or dict, default "auto"
        Weight of the centred form per population coordinate: ``"auto"`` (from pilot
        fits), ``"centered"`` (1), ``"non_centered"`` (0), a number in [0, 1] or a dict
        by coordinate (see :mod:`clvmodels.bayes.segments`); the posterior does not
        depend on it.
    population : {"pairs", "independent"}, default "pairs"
        The population of the segments' logs: a normal on the rotated coordinates
        (log ratio, log product) of (r, alpha) and of (a, b), or independent normals of
        the four logs.
    spread : {"shared", "per_coordinate"}, default "shared"
        One spread of the segments for all coordinates, or one per coordinate.
    purchase_covariates, dropout_covariates : list of str, optional
        Customer-level covariates on top of the segments' partially pooled parameters:
        customer i of segment s has :math:`\alpha_i = \alpha_s e^{-\gamma_P^\top z_i}`
        and :math:`a_i, b_i = a_s, b_s \cdot e^{\gamma_D^\top z_i}`, one coefficient
        per covariate for all segments (as :class:`clvmodels.bayes.BGNBD`). A covariate
        that is constant within every segment is confounded with the segments.
    """

    pairs = (("r", "alpha"), ("a", "b"))
    _mle = MLEBGNBD
    _columns = ("frequency", "recency", "T")

    def __init__(self, *, segment="segment", priors=None, parametrization="auto",
                 population="pairs", spread="shared", purchase_covariates=None,
                 dropout_covariates=None):
        super().__init__(segment=segment, priors=priors, parametrization=parametrization,
                         population=population, spread=spread)
        self.purchase_covariates = purchase_covariates
        self.dropout_covariates = dropout_covariates


class SegmentGammaGamma(GammaGammaMixin, SegmentMixin):
    r"""Hierarchical Gamma-Gamma: (p, q, v) per segment, partially pooled.

    Parameters
    ----------
    segment : str, default "segment"
        Column of the RFM frame naming each customer's segment.
    priors : dict, optional
        Replaces hyperpriors by name (``"p_log_mu"``, ``"segment_sigma"``, ...).
    parametrization : str, float or dict, default "auto"
        Weight of the centred form per parameter (see :class:`SegmentBGNBD`).
    population : {"pairs", "independent"}
        Without pairs of parameters here, both are the model with independent logs.
    spread : {"shared", "per_coordinate"}, default "shared"
        One spread of the segments for all parameters, or one per parameter.
    covariates : list of str, optional
        Customer-level covariates of the spend, :math:`v_i = v_s e^{\gamma_S^\top z_i}`
        (as :class:`clvmodels.bayes.GammaGamma`).
    """

    pairs = (("p", "v"),)
    _rotate = True  # the q / p v ridge (module docstring)
    _mle = MLEGammaGamma
    _columns = ("frequency", "monetary_value")
    _pilot_constants = {"recency": 1.0, "T": 1.0}  # validated by the MLE, not used

    def __init__(self, *, segment="segment", priors=None, parametrization="auto",
                 population="pairs", spread="shared", covariates=None):
        super().__init__(segment=segment, priors=priors, parametrization=parametrization,
                         population=population, spread=spread)
        self.covariates = covariates


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
