r"""Static covariates: customer characteristics that scale a model's parameters.

A covariate model multiplies some of the model's parameters, customer by customer, by
:math:`\exp(\pm\gamma^\top z_i)`, where :math:`z_i` are the customer's covariates of
one *role* (``purchase``, ``dropout`` or ``spend``) and :math:`\gamma` their
coefficients. The per-customer parameters then feed the model's own pure likelihood and
prediction functions, which broadcast, so no formula is written twice; derivatives with
respect to the coefficients follow by the chain rule (:func:`rows_in_log_coordinates`).

Conventions (those of CLVTools [1]_ and pymc-marketing [2]_, after Fader & Hardie [3]_):

* purchase process, all models: :math:`\lambda_i \sim \mathrm{Gamma}(r,\ \alpha
  e^{-\gamma_P^\top z_i})`, i.e. :math:`\alpha_i = \alpha\,e^{-\gamma_P^\top z_i}`
  ([3]_ eq. (2)): a positive coefficient raises the purchase rate;
* Pareto/NBD drop-out: :math:`\mu_i \sim \mathrm{Gamma}(s,\ \beta e^{-\gamma_D^\top
  z_i})` ([3]_ eq. (3)): a positive coefficient raises the drop-out rate;
* BG/NBD and MBG/NBD drop-out: :math:`a_i = a\,e^{\gamma_D^\top z_i}` and
  :math:`b_i = b\,e^{\gamma_D^\top z_i}`, one coefficient shared by a and b, as
  CLVTools' ``bgnbd`` with static covariates ([1]_, ``bgnbd_staticcov_LL_ind``: "a_i: a0
  * exp(cov.life * cov.param.life), b_i: b0 * exp(cov.life * cov.param.life)"; [3]_ §3).
  pymc-marketing gives a and b separate coefficients; the shared one keeps the results
  comparable with CLVTools, whose published fits are the reference here. A positive
  coefficient concentrates the drop-out probability around its mean a / (a + b);
* Gamma-Gamma spend: :math:`\nu_i \sim \mathrm{Gamma}(q,\ v\,e^{\gamma_S^\top z_i})`,
  so the mean spend :math:`p v_i / (q - 1)` scales by :math:`e^{\gamma_S^\top z_i}`.

The reported baseline parameters are those of a customer with all covariates 0 (and
the reference level of each categorical column).

Categorical columns (strings, categories, booleans) are expanded into one 0/1 column per
level but the first (sorted), the *reference level*. Numeric columns are centred and
scaled for the optimiser (a better conditioned problem); estimates and standard errors
are reported on the user's scale (a linear map of the optimiser's coordinates).

References
----------
.. [1] Bachmann, P., Meierer, M. and Naef, J. CLVTools: Tools for Customer Lifetime Value
   Estimation (R package), https://github.com/bachmannpatrick/CLVTools
   (``src/pnbd.cpp``, ``src/bgnbd.cpp``).
.. [2] pymc-marketing, ``pymc_marketing/clv/models/pareto_nbd.py`` and ``beta_geo.py``
   (``purchase_covariate_cols``, ``dropout_covariate_cols``).
.. [3] Fader, P. S. and Hardie, B. G. S. (2007). Incorporating Time-Invariant Covariates
   into the Pareto/NBD and BG/NBD Models. http://www.brucehardie.com/notes/019/
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError

ROLES = ("purchase", "dropout", "spend")
ALL_COVARIATES = "all covariates"  # the label of the test against the model without any


@dataclass(frozen=True)
class Term:
    """One column of the design: a numeric column, or one level of a categorical one."""

    column: str
    level: str | None = None  # None: numeric
    center: float = 0.0
    scale: float = 1.0
    reference: str | None = None  # the categorical column's reference level

    @property
    def name(self) -> str:
        return self.column if self.level is None else f"{self.column}[{self.level}]"

    def raw(self, frame: pd.DataFrame) -> np.ndarray:
        values = frame[self.column]
        if self.level is None:
            return values.to_numpy(dtype=float)
        return (values.astype(str) == self.level).to_numpy(dtype=float)


@dataclass(frozen=True)
class Design:
    """The covariate terms of each role and the parameters they scale.

    ``links``: ``(parameter index, role, sign)``: parameter ``index`` of the model is
    multiplied by ``exp(sign * coefficients' z)`` of that role's terms.
    """

    terms: Mapping[str, tuple[Term, ...]]
    links: tuple[tuple[int, str, int], ...]

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(r for r in ROLES if self.terms.get(r))

    @property
    def names(self) -> list[str]:
        return [f"{role}:{t.name}" for role in self.roles for t in self.terms[role]]

    @property
    def columns(self) -> list[str]:
        """The user's columns the design reads (each once)."""
        seen: dict[str, None] = {}
        for role in self.roles:
            for t in self.terms[role]:
                seen[t.column] = None
        return list(seen)

    def raw_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, m) covariates on the user's scale, all roles, in :attr:`names` order."""
        check_frame(frame, self)
        terms = [t for role in self.roles for t in self.terms[role]]
        return np.column_stack([t.raw(frame) for t in terms]) if terms else np.zeros(
            (len(frame), 0))

    def standardised(self, raw: np.ndarray) -> np.ndarray:
        terms = [t for role in self.roles for t in self.terms[role]]
        center = np.array([t.center for t in terms])
        scale = np.array([t.scale for t in terms])
        return (raw - center) / scale

    def jacobian(self, z: np.ndarray, k: int) -> np.ndarray:
        """(n, k, k + m): d log(parameter p of row i) / d (log-parameters, coefficients)."""
        n, m = z.shape
        J = np.zeros((n, k, k + m))
        J[:, np.arange(k), np.arange(k)] = 1.0
        for p, role, sign in self.links:
            sl = self.slice(role, k)
            J[:, p, sl] = sign * z[:, sl.start - k : sl.stop - k]
        return J

    def slice(self, role: str, k: int) -> slice:
        start = k
        for r in self.roles:
            size = len(self.terms[r])
            if r == role:
                return slice(start, start + size)
            start += size
        return slice(start, start)

    def to_user_scale(self, k: int) -> np.ndarray:
        """M with ``x_user = M x_std``: optimiser coordinates (log-parameters, coefficients
        of the standardised covariates) to the user's (same, for the raw covariates)."""
        terms = [t for role in self.roles for t in self.terms[role]]
        m = len(terms)
        M = np.eye(k + m)
        scale = np.array([t.scale for t in terms])
        center = np.array([t.center for t in terms])
        M[k:, k:] = np.diag(1.0 / scale)
        for p, role, sign in self.links:
            sl = self.slice(role, k)
            # log theta_p(z) = log theta_p + sign c'(z - center)/scale
            part = slice(sl.start - k, sl.stop - k)
            M[p, sl] -= sign * center[part] / scale[part]
        return M

    def to_dict(self) -> dict:
        return {
            "terms": {role: [vars(t) for t in self.terms[role]] for role in self.roles},
            "links": [list(link) for link in self.links],
        }

    @classmethod
    def from_dict(cls, spec: dict) -> Design:
        terms = {role: tuple(Term(**t) for t in ts) for role, ts in spec["terms"].items()}
        return cls(terms, tuple((int(p), str(r), int(s)) for p, r, s in spec["links"]))


def _is_categorical(values: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)


def check_frame(frame: pd.DataFrame, design: Design) -> None:
    """Covariate columns present and complete (clear errors naming column and count)."""
    for column in design.columns:
        if column not in frame.columns:
            raise DataError(column, "covariate column not found in the data", len(frame))
        n_missing = int(frame[column].isna().sum())
        if n_missing:
            raise DataError(column, "covariate has missing values", n_missing,
                            hint="Fill or drop those customers before fitting/predicting")
    for role in design.roles:
        for t in design.terms[role]:
            if t.level is None:
                values = frame[t.column]
                if _is_categorical(values):
                    raise DataError(t.column, "was numeric when the model was fitted",
                                    len(frame))
                bad = int((~np.isfinite(values.to_numpy(dtype=float))).sum())
                if bad:
                    raise DataError(t.column, "covariate must be finite", bad)
            else:
                known = {t.reference} | {
                    u.level for u in design.terms[role] if u.column == t.column}
                unseen = ~frame[t.column].astype(str).isin(known)
                if unseen.any():
                    raise DataError(
                        t.column,
                        f"has levels not seen in the fit (known: {sorted(known)})",
                        int(unseen.sum()),
                    )


def build_design(
    frame: pd.DataFrame,
    spec: Mapping[str, Sequence[str] | None],
    links: Sequence[tuple[int, str, int]],
) -> Design | None:
    """The design of ``spec`` (role -> user columns) learned from ``frame``; None when
    no role has covariates. Missing, non-finite or constant columns raise
    :class:`~clvmodels.errors.DataError` naming the column and the count of rows."""
    terms: dict[str, tuple[Term, ...]] = {}
    for role, columns in spec.items():
        if not columns:
            continue
        if isinstance(columns, str):
            raise TypeError(f"{role}_covariates must be a list of column names, "
                            f"got the string {columns!r}")
        out: list[Term] = []
        for column in columns:
            if column not in frame.columns:
                raise DataError(column, f"{role} covariate column not found in the data",
                                len(frame))
            values = frame[column]
            n_missing = int(values.isna().sum())
            if n_missing:
                raise DataError(column, f"{role} covariate has missing values", n_missing,
                                hint="Fill or drop those customers before fitting")
            if _is_categorical(values):
                levels = sorted(values.astype(str).unique())
                if len(levels) < 2:
                    raise DataError(column, f"{role} covariate is constant (one level, "
                                    f"{levels[0]!r}): its effect cannot be estimated",
                                    len(frame))
                out += [Term(column, level, reference=levels[0]) for level in levels[1:]]
                continue
            z = values.to_numpy(dtype=float)
            bad = int((~np.isfinite(z)).sum())
            if bad:
                raise DataError(column, f"{role} covariate must be finite", bad)
            lo, hi = float(z.min()), float(z.max())
            if lo == hi:
                raise DataError(column, f"{role} covariate is constant (all {lo:g}): its "
                                "effect cannot be told from the baseline parameter",
                                len(frame))
            if set(np.unique(z)) <= {0.0, 1.0}:
                out.append(Term(column))  # dummies: kept as they are
            else:
                out.append(Term(column, center=float(z.mean()), scale=float(z.std())))
        terms[role] = tuple(out)
    if not terms:
        return None
    known = {role for _, role, _ in links}
    unused = set(terms) - known
    if unused:
        raise ValueError(f"this model has no {sorted(unused)} covariates "
                         f"(it takes {sorted(known)})")
    return Design(terms, tuple(links))


def design_from_names(names: Sequence[str], links) -> Design | None:
    """The design implied by coefficient names ``role:column`` (numeric, unscaled): what
    ``from_params`` uses for known coefficients."""
    terms: dict[str, list[Term]] = {}
    for name in names:
        role, _, column = name.partition(":")
        if role not in ROLES or not column:
            raise ValueError(f"unknown parameter {name!r} (covariate coefficients are "
                             "named 'purchase:<column>', 'dropout:<column>', 'spend:<column>')")
        terms.setdefault(role, []).append(Term(column))
    if not terms:
        return None
    known = {role for _, role, _ in links}
    if set(terms) - known:
        raise ValueError(f"this model has no {sorted(set(terms) - known)} covariates")
    return Design({r: tuple(t) for r, t in terms.items()}, tuple(links))


def log_offsets(coef, z, design: Design, k: int) -> list:
    """Per parameter p of the model, ``sum over its links of sign * z_role @ coef_role``
    (the log of the factor that scales it per row), 0.0 where no covariate scales it.

    ``coef`` holds the coefficients in :attr:`Design.names` order, (m,) or with leading
    dimensions (e.g. posterior draws, (draws, m)); ``z`` is (n, m). Each offset is then
    (n,) or (draws, n). Only indexing, ``*`` and ``+`` are used, so numpy arrays and
    pytensor tensors both work: the maximum-likelihood fit, the Bayesian model's graph and
    the predictions at every posterior draw share this one mapping. (A sum of products
    rather than a matrix product: pytensor links a BLAS for ``dot``, and warns where it
    finds none.)
    """
    out = [0.0] * k
    for p, role, sign in design.links:
        sl = design.slice(role, k)
        for j in range(sl.start - k, sl.stop - k):
            c = coef[..., j]
            if getattr(c, "ndim", 0):  # one coefficient per draw: a column against the rows
                c = c[..., None]
            out[p] = out[p] + sign * (c * z[:, j])
    return out


def row_log_params(log_theta: np.ndarray, coef: np.ndarray, z: np.ndarray,
                   design: Design) -> np.ndarray:
    """(n, k) log-parameters of each row: ``log theta_p + sign_p coef_role' z_role``;
    with coefficient draws (draws, m) and ``log_theta`` (k,) or (draws, k): (draws, n, k)."""
    k = log_theta.shape[-1]
    lead = np.broadcast_shapes(np.shape(log_theta)[:-1], np.shape(coef)[:-1])
    out = np.broadcast_to(np.asarray(log_theta)[..., None, :], (*lead, z.shape[0], k)).copy()
    for p, offset in enumerate(log_offsets(coef, z, design, k)):
        out[..., p] += offset
    return out


def varying(design: Design, k: int) -> np.ndarray:
    """Boolean (k,): which parameters vary by customer (linked to a role with terms)."""
    out = np.zeros(k, dtype=bool)
    for p, role, _ in design.links:
        out[p] |= bool(design.terms.get(role))
    return out


def row_params(theta_rows: np.ndarray, varies: np.ndarray) -> list:
    """The k parameters as the pure functions take them: a column per customer where the
    parameter varies, else the number (which keeps the formulas' fast paths)."""
    return [theta_rows[:, j] if varies[j] else float(theta_rows[0, j])
            for j in range(theta_rows.shape[1])]


def rows_in_log_coordinates(g_nat: np.ndarray, theta_rows: np.ndarray,
                            J: np.ndarray) -> np.ndarray:
    r"""Chain rule for the gradient: rows (n, K) of d ll_i / d x from the gradient in the
    natural parameters (n, k): :math:`J_i^\top (\theta_i \circ g_i)`."""
    return np.einsum("nk,nkK->nK", g_nat * theta_rows, J)


def hessian_in_log_coordinates(g_nat, h_nat, theta_rows, J, w) -> np.ndarray:
    r"""Chain rule for the Hessian of the weighted total: :math:`\sum_i w_i J_i^\top
    [\theta_i\theta_i^\top \circ H_i + \mathrm{diag}(\theta_i \circ g_i)] J_i` (the map
    from x to the rows' log-parameters is linear, so no second-derivative term)."""
    h_log = h_nat * theta_rows[:, :, None] * theta_rows[:, None, :]
    k = theta_rows.shape[1]
    h_log[:, np.arange(k), np.arange(k)] += g_nat * theta_rows
    return np.einsum("n,nkK,nkl,nlL->KL", w, J, h_log, J, optimize=True)


def likelihood_ratio_test(restricted, full) -> dict[str, float]:
    r"""Likelihood-ratio test of a nested model against a larger one, fitted on the same
    data (e.g. without and with some covariates):
    :math:`D = 2(\ell_{full} - \ell_{restricted}) \sim \chi^2_k` under the smaller model,
    k the number of extra parameters (Wilks 1938 [4]_).

    Returns ``statistic``, ``df`` and ``p_value``. Raises ValueError when the models were
    not fitted on the same number of customers or are not nested by parameter names.

    References
    ----------
    .. [4] Wilks, S. S. (1938). The Large-Sample Distribution of the Likelihood Ratio for
       Testing Composite Hypotheses. *Annals of Mathematical Statistics* 9(1), 60-62.
    """
    for model in (restricted, full):
        if not hasattr(model, "loglik_"):
            raise ValueError(f"{type(model).__name__} is not fitted (no loglik_)")
    if type(restricted) is not type(full):
        raise ValueError("the two models must be of the same class, got "
                         f"{type(restricted).__name__} and {type(full).__name__}")
    small, big = set(restricted.params_.index), set(full.params_.index)
    if not small < big:
        raise ValueError(f"not nested: {sorted(small - big)} are not in the larger model "
                         "(or it adds nothing)")
    if restricted.n_obs_ != full.n_obs_:
        raise ValueError(f"fitted on different data ({restricted.n_obs_:g} and "
                         f"{full.n_obs_:g} customers)")
    df = len(big - small)
    return {**lr_statistic(restricted.loglik_, full.loglik_, df), "df": float(df)}


def lr_statistic(loglik_nested: float, loglik_full: float, df: float) -> dict[str, float]:
    r"""The likelihood-ratio statistic :math:`D = 2(\ell_{full} - \ell_{nested})` (floored
    at 0: the larger model's optimum is at least the nested one's, up to the optimiser's
    tolerance) and its p-value :math:`P(\chi^2_{df} > D)` (Wilks 1938 [4]_, as in
    :func:`likelihood_ratio_test`); NaN when the nested fit failed.
    """
    from scipy import stats

    if not (np.isfinite(loglik_nested) and np.isfinite(df) and df > 0):
        return {"statistic": float("nan"), "p_value": float("nan")}
    stat = max(2.0 * (loglik_full - loglik_nested), 0.0)
    return {"statistic": stat, "p_value": float(stats.chi2.sf(stat, df))}
