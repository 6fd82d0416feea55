"""Base class of the 'buy till you die' transaction models (BG/NBD, MBG/NBD, Pareto/NBD, BG/BB).

The data are an RFM frame: ``frequency`` (x, repeat purchases), ``recency`` (t_x, time of
the last repeat purchase) and ``T`` (age), all in the frame's time unit.

How a model plugs in
--------------------
A model class names its parameters and states its formulas explicitly, as a
:class:`Formulas` record of the pure functions of its module (each takes the parameters
first, in ``param_names`` order, then the data)::

    class BGNBD(TransactionModel):
        param_names = PARAM_NAMES
        formulas = Formulas(
            loglik=loglik,                  # each entry a function of bgnbd.py
            loglik_grad=loglik_grad,
            ...,                            # the other required entries, by keyword
            conditional=Conditional(updated=updated_if_alive, survival=survival, ...),
        )

(see the end of :mod:`clvmodels.models.bgnbd` for the full record).
A new model writes its module's pure functions and lists them in such a record; the
base classes do the rest (fit, standard errors, predictions, save/load, and, with
``conditional``, the predictive distribution and intervals).

Nothing is looked up by name: a reader (or an IDE) follows ``self.formulas.loglik``
straight to the function. Optional entries:

* ``expected_purchases_path(*p, times, x, t_x, T)`` -> (n, K): faster than broadcasting
  ``expected_purchases`` over K horizons;
* ``loglik_and_grad(*p, x, t_x, T)``: both from shared work (what the optimiser calls);
* ``loglik_value_grad_and_hessian(*p, x, t_x, T, weights=)``: enables Newton's method and
  analytic standard errors in :class:`~clvmodels.models._base.MLEModel`;
* ``conditional``: the future of a customer who is alive at T, as a customer just
  acquired with updated parameters (:class:`Conditional`); it gives the conditional
  distribution of future purchases, P(alive at T + t), future draws and the prediction
  intervals (:mod:`clvmodels.models._predictive`). Models without it (no conjugate
  update) raise ``NotImplementedError`` from those methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from .._validate import rfm_arrays
from . import _covariates, _predictive
from ._base import MLEModel


@dataclass(frozen=True)
class Conditional:
    """How the future looks from a customer who is alive at T.

    For the four BTYD models a customer alive at T with history (x, T) is, from then on,
    a customer just acquired whose parameters are updated by the history (conjugacy and
    lack of memory). Each entry takes the parameters first:

    * ``updated(*p, x, T)``: those parameters (each broadcast against x and T);
    * ``survival(*q, t)``: P(still active at t) of a new customer with parameters q;
    * ``pmf(*q, n, t)``: P(X(t) = n) of a new customer (closed form, full accuracy);
    * ``pmf_table(*q, t, n_max)``: the same for n = 0..n_max, array (..., n_max + 1)
      (fast recurrences where the model has them; what the intervals use);
    * ``simulate_future(*p, t, x, t_x, T, rng)``: draws of the purchases in (T, T+t];
    * ``mean(*q, t)`` (optional): E[X(t)] of a new customer with parameters q (the
      family of ``updated``), so that E[Y(t) | history] = P(alive) ``mean(updated, t)``
      (the Bayesian CLV evaluates it once per (x, T));
    * ``phase_weights(*p, x, t_x, T)`` (optional): for a model whose future given alive
      at T is a mixture over a latent phase that depends on the recency too (the
      MBG/CNBD-k's Erlang clock), the phases' posterior weights, array (J, ...) summing
      to 1 over the first axis. ``updated`` then gives each parameter with a leading
      phase axis of length J, and ``survival``, ``pmf`` and ``pmf_table`` act phase by
      phase; the methods mix them with these weights.
    """

    updated: Callable
    survival: Callable
    pmf: Callable
    pmf_table: Callable
    simulate_future: Callable
    phase_weights: Callable | None = None
    mean: Callable | None = None

    def given_alive(self, p, x, t_x, T, f, expand=()):
        """E[f(q) | alive at T]: ``f`` of the updated parameters ``q``, mixed over the
        phases when the model has them. ``expand``: axes added to each parameter and
        weight (e.g. ``(slice(None), None)`` for a column of customers)."""
        q = self.updated(*p, x, T)
        if self.phase_weights is None:
            return f([np.asarray(v)[expand] for v in q])
        w = self.phase_weights(*p, x, t_x, T)
        return sum(w[j][expand] * f([np.asarray(v)[j][expand] for v in q])
                   for j in range(w.shape[0]))


@dataclass(frozen=True)
class Formulas:
    """The pure functions a transaction model is made of (see the module docstring)."""

    loglik: Callable
    loglik_grad: Callable
    expected_purchases: Callable
    probability_alive: Callable
    expected_purchases_new: Callable
    probability_of_purchases: Callable
    simulate: Callable
    expected_purchases_path: Callable | None = None
    loglik_and_grad: Callable | None = None
    loglik_value_grad_and_hessian: Callable | None = None
    conditional: Conditional | None = None


def _as_series(values, index, name) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=index, name=name)


def _observed_counts(observed, n_rows: int) -> np.ndarray:
    """Observed purchase counts, validated: one whole number >= 0 per customer."""
    y = np.asarray(observed, dtype=float).reshape(-1)
    if y.size != n_rows:
        raise ValueError(f"observed must have one count per row of rfm ({n_rows}); "
                         f"got {y.size}")
    bad = int((~np.isfinite(y) | (y < 0) | (y != np.floor(y))).sum())
    if bad:
        raise ValueError(f"observed must be whole numbers >= 0; {bad} rows are not")
    return y.astype(np.int64)


class TransactionModel(MLEModel):
    """Shared fit/predict plumbing for models of (frequency, recency, T)."""

    columns: ClassVar[tuple[str, str, str]] = ("frequency", "recency", "T")
    formulas: ClassVar[Formulas]  # set by each model class (see the module docstring)

    @property
    def _has_hessian(self) -> bool:
        return self.formulas.loglik_value_grad_and_hessian is not None

    def _loglik_value_grad_and_hessian(self, params, *data, weights=None):
        return self.formulas.loglik_value_grad_and_hessian(*params, *data, weights=weights)

    def _loglik_and_grad(self, params, *data):
        if self.formulas.loglik_and_grad is None:
            return super()._loglik_and_grad(params, *data)
        ll, grad = self.formulas.loglik_and_grad(*params, *data)
        return ll, np.column_stack(grad)

    def _data(self, frame):
        arrays = rfm_arrays(frame)
        return tuple(arrays[c] for c in self.columns)

    def _loglik(self, params, *data):
        return self.formulas.loglik(*params, *data)

    def _loglik_grad(self, params, *data):
        return np.column_stack(self.formulas.loglik_grad(*params, *data))

    def _start(self, data, weights):
        x, _, T = data
        rate = max(np.average(x, weights=weights) / np.average(T, weights=weights), 1e-6)
        # r = 1 and alpha = 1 / mean rate put the prior mean rate at the observed one;
        # the remaining (dropout) parameters start at 1.
        start = np.ones(len(self.param_names))
        start[1] = 1.0 / rate
        return start

    # ---- predictions ------------------------------------------------------------------
    def _arrays(self, rfm: pd.DataFrame):
        arrays = rfm_arrays(rfm)
        return tuple(arrays[c] for c in self.columns)

    def expected_purchases(self, t: float, rfm: pd.DataFrame) -> pd.Series:
        """Expected number of purchases in (T, T + t] given each customer's history
        (and covariates, when the model has them)."""
        p = self._params_for(rfm)
        x, t_x, T = self._arrays(rfm)
        values = self._expected_path(p, np.array([float(t)]), x, t_x, T)[:, 0]
        return _as_series(values, rfm.index, "expected_purchases")

    def expected_purchases_path(self, times, rfm: pd.DataFrame) -> np.ndarray:
        """Expected purchases in (T, T + t] for each of ``times``: array (customers, times)."""
        p = self._params_for(rfm)
        x, t_x, T = self._arrays(rfm)
        return self._expected_path(p, np.asarray(times, dtype=float), x, t_x, T)

    def _expected_path(self, p, times, x, t_x, T) -> np.ndarray:
        """(customers, times) expected purchases, by the module's ``expected_purchases_path``
        where it has one (faster), else by broadcasting ``expected_purchases`` (also with
        per-customer parameters, which become columns)."""
        per_row = any(np.ndim(v) for v in p)
        if self.formulas.expected_purchases_path is not None and not per_row:
            return self.formulas.expected_purchases_path(*p, times, x, t_x, T)
        f = self.formulas.expected_purchases
        p = [np.asarray(v)[:, None] if np.ndim(v) else v for v in p]
        return np.asarray(f(*p, times[None, :], x[:, None], t_x[:, None], T[:, None]))

    def _conditional(self) -> Conditional:
        cond = self.formulas.conditional
        if cond is None:
            raise NotImplementedError(
                f"{type(self).__name__} has no conditional distribution of future purchases"
            )
        return cond

    def _alive_formula(self) -> Callable:
        """P(alive at T | history) as a function of (*params, x, t_x, T)."""
        return self.formulas.probability_alive

    def _horizon(self, t) -> float:
        t = float(t)
        if not (np.isfinite(t) and t >= 0):
            raise ValueError(f"t must be a finite number >= 0, got {t}")
        return t

    def probability_alive(self, rfm: pd.DataFrame, *, ahead: float = 0.0) -> pd.Series:
        """P(active at T + ``ahead`` | history) per customer.

        ``ahead=0`` (default): active at T. Otherwise P(active at T) times the
        probability that an active customer survives ``ahead`` more time units, i.e.
        ``survival`` of the model's :class:`Conditional` at the updated parameters.
        """
        p = self._params_for(rfm)
        x, t_x, T = self._arrays(rfm)
        alive = self._alive_formula()(*p, x, t_x, T)
        ahead = self._horizon(ahead)
        if ahead > 0:
            cond = self._conditional()
            alive = alive * cond.given_alive(p, x, t_x, T, lambda q: cond.survival(*q, ahead))
        return _as_series(alive, rfm.index, "probability_alive")

    def expected_purchases_new(self, t, covariates: pd.DataFrame | dict | None = None):
        """E[X(t)]: expected repeat purchases in (0, t] of a customer acquired at 0.

        With covariates, ``covariates`` gives the new customers' characteristics (a frame,
        one row per customer, or a dict of one customer's values) and the result is a
        Series (frame) or a number (dict), for a single ``t``.
        """
        if covariates is None:
            p = self._params_for(None)
            out = self.formulas.expected_purchases_new(*p, np.asarray(t, dtype=float))
            return float(out) if np.ndim(out) == 0 else out
        one = isinstance(covariates, dict)
        frame = pd.DataFrame([covariates]) if one else covariates
        p = self._params_for(frame)
        t = self._horizon(t)
        out = np.broadcast_to(self.formulas.expected_purchases_new(*p, t), (len(frame),))
        return float(out[0]) if one else _as_series(out, frame.index, "expected_purchases")

    def probability_of_purchases(self, n, t, rfm: pd.DataFrame | None = None):
        """P(n purchases in (T, T + t] | history) per customer, or P(X(t) = n) for a
        customer just acquired when ``rfm`` is None.

        With ``rfm`` and a single ``n``: a Series per customer; with an array of ``n``: a
        DataFrame, one column per n. The conditional probability is
        ``A g_n(q) + (1 - A) [n = 0]`` with A = P(alive at T) and ``g`` the new-customer
        pmf at the parameters updated by (x, T) (see :class:`Conditional` and
        :mod:`clvmodels.models._predictive`).
        """
        p = self._params_for(rfm)
        if rfm is None:
            out = self.formulas.probability_of_purchases(
                *p, np.asarray(n, dtype=float), np.asarray(t, dtype=float)
            )
            return float(out) if np.ndim(out) == 0 else out
        t = self._horizon(t)
        ns = np.atleast_1d(np.asarray(n, dtype=float))
        if ns.ndim != 1 or np.any((ns < 0) | (ns != np.floor(ns))):
            raise ValueError(f"n must be whole numbers >= 0, got {n}")
        x, t_x, T = self._arrays(rfm)
        cond = self._conditional()
        alive = self._alive_formula()(*p, x, t_x, T)[:, None]
        future = cond.given_alive(p, x, t_x, T, lambda q: cond.pmf(*q, ns[None, :], t),
                                  (slice(None), None))
        values = alive * future + (1 - alive) * (ns[None, :] == 0)
        if np.ndim(n) == 0:
            return _as_series(values[:, 0], rfm.index, "probability")
        return pd.DataFrame(values, index=rfm.index, columns=ns.astype(np.int64))

    def probability_of_no_purchase(self, t, rfm: pd.DataFrame) -> pd.Series:
        """P(no purchase in (T, T + t] | history) per customer: inactive at T, or active
        and no purchase in the next t (``probability_of_purchases(0, t, rfm)``)."""
        out = self.probability_of_purchases(0, t, rfm)
        return out.rename("probability_of_no_purchase")

    def parameter_draws(self, n_draws: int = 50, random_state=0) -> np.ndarray:
        """(n_draws, k) parameter draws for the intervals: the asymptotic normal law of
        the log-parameters at the fit (observed information, ``cov_``); one row with the
        estimates when the model has no covariance (:meth:`from_params`)."""
        p = self._check_fitted()
        cov = getattr(self, "cov_", None)
        cov = None if cov is None else cov.to_numpy()
        k = len(self.param_names)
        if getattr(self, "design_", None) is None or p.size == k:
            return _predictive.lognormal_draws(p, cov, int(n_draws), random_state)
        # with covariates: normal in (log-parameters, coefficients), the fit's coordinates
        if cov is None or not np.all(np.isfinite(cov)):
            return p[None, :]
        d = np.r_[p[:k], np.ones(p.size - k)]
        x = np.r_[np.log(p[:k]), p[k:]]
        draws = _predictive.normal_draws(x, cov / np.outer(d, d), int(n_draws), random_state)
        draws[:, :k] = np.exp(draws[:, :k])
        return draws

    def prediction_interval(
        self,
        t: float,
        rfm: pd.DataFrame,
        level: float = 0.9,
        *,
        n_draws: int = 50,
        random_state=0,
        memory_limit: int = _predictive.MEMORY_LIMIT,
    ) -> pd.DataFrame:
        """Interval of each customer's number of purchases in (T, T + t]: columns low,
        median, high.

        The quantiles at (1 - level)/2, 1/2 and (1 + level)/2 of the predictive
        distribution, which carries both the process uncertainty (what a customer with
        known parameters may do) and the parameter uncertainty: a mixture over
        ``n_draws`` draws of the parameters from the asymptotic normal law of the
        log-parameters, whose covariance is the inverse observed information of the fit
        (no refits: a bootstrap would refit the model ``n_draws`` times, minutes on a
        million customers, for what the likelihood's curvature already gives). Models
        made by :meth:`from_params` have no covariance: process uncertainty only.
        Counts are whole numbers, so an interval covers at least ``level``; the column
        ``coverage`` gives each interval's achieved level, the predictive probability of
        [low, high] (e.g. 0.97 for an interval [0, 0] at level 0.8 of a customer who
        makes no purchase with probability 0.97). Intervals are not randomised: users
        get whole numbers, and the achieved level says how much more than ``level``
        they hold (:meth:`randomized_pit` checks calibration without that excess).
        """
        self._check_fitted()
        x, t_x, T = self._arrays(rfm)
        draws, codes = self._draws_by_pattern(n_draws, random_state, rfm)
        return _predictive.interval_frame(
            self._conditional(),
            self._alive_formula(),
            draws,
            codes,
            (x, t_x, T),
            self._horizon(t),
            level,
            rfm.index,
            memory_limit=memory_limit,
        )

    def randomized_pit(self, t: float, rfm: pd.DataFrame, observed, *, n_draws: int = 50,
                       random_state=0) -> pd.Series:
        """Randomised PIT of observed purchases in (T, T + t] under the predictive
        distribution of :meth:`prediction_interval` (same parameter draws): uniform on
        (0, 1) when the model is calibrated, however discrete the counts (Czado, Gneiting
        & Held 2009; :func:`clvmodels.models._predictive.randomized_pit`). ``observed``:
        one whole number >= 0 per row of ``rfm`` (e.g. a holdout's frequency)."""
        self._check_fitted()
        y = _observed_counts(observed, len(rfm))
        x, t_x, T = self._arrays(rfm)
        draws, codes = self._draws_by_pattern(n_draws, random_state, rfm)
        u = _predictive.randomized_pit(
            self._conditional(), self._alive_formula(), draws, codes,
            x, t_x, T, self._horizon(t), y, random_state,
        )
        return _as_series(u, rfm.index, "pit")

    def _draws_by_pattern(self, n_draws, random_state, rfm):
        """Parameter draws as the intervals take them: one (D, G) array per parameter and
        each customer's column. Without covariates G = 1; with covariates the columns are
        the distinct covariate patterns (customers who share one share parameters)."""
        draws = self.parameter_draws(n_draws, random_state)
        k = len(self.param_names)
        design = getattr(self, "design_", None)
        if design is None:
            return [draws[:, [j]] for j in range(k)], np.zeros(len(rfm), dtype=np.int64)
        patterns, codes = np.unique(design.raw_matrix(rfm), axis=0, return_inverse=True)
        per = np.stack([
            d[:k] * np.exp(_covariates.row_log_params(np.zeros(k), d[k:], patterns, design))
            for d in draws])  # (D, G, k)
        return [per[:, :, j] for j in range(k)], codes.reshape(-1).astype(np.int64)

    def simulate_future(self, t: float, rfm: pd.DataFrame, random_state=None) -> pd.Series:
        """One draw per customer of the purchases in (T, T + t], given the history, at
        the fitted parameters (e.g. to check intervals on simulated holdouts)."""
        p = self._params_for(rfm)
        t = self._horizon(t)
        x, t_x, T = self._arrays(rfm)
        rng = np.random.default_rng(random_state)
        y = self._conditional().simulate_future(*p, t, x, t_x, T, rng)
        return pd.Series(np.asarray(y, dtype=np.int64), index=rfm.index, name="purchases")

    def simulate(self, n_customers: int, T, random_state=None,
                 covariates: pd.DataFrame | None = None) -> pd.DataFrame:
        """An RFM frame drawn from the model (exact, vectorised).

        ``T`` is one age for all customers or one per customer. A model with covariates
        draws each customer with the parameters of its row of ``covariates`` (one row per
        customer), whose columns are copied into the result.
        """
        p = self._params_for(covariates)
        rng = np.random.default_rng(random_state)
        T = np.broadcast_to(np.asarray(T, dtype=float), (n_customers,)).copy()
        x, t_x = self.formulas.simulate(*p, T, rng)
        out = pd.DataFrame(
            {"frequency": x.astype(np.int64), "recency": t_x, "T": T},
            index=pd.RangeIndex(n_customers, name="customer_id"),
        )
        if covariates is not None and getattr(self, "design_", None) is not None:
            for column in self.design_.columns:
                out[column] = covariates[column].to_numpy()
        return out


class CovariateTransactionModel(TransactionModel):
    """A transaction model that takes static covariates on its purchase and drop-out
    processes (:mod:`clvmodels.models._covariates`).

    Parameters
    ----------
    penalizer : float, default 0
        L2 penalty on the log-parameters and the (standardised) coefficients.
    purchase_covariates, dropout_covariates : list of str, optional
        Columns of the RFM frame that scale the purchase rate (``purchase:<column>``
        coefficients) and the drop-out process (``dropout:<column>``).
    lr_tests : bool, default True
        With covariates, also fit the nested models without each covariate column (per
        process) and without any covariate, and keep their log-likelihoods for the
        likelihood-ratio tests of ``lr_tests_`` and :meth:`summary` (one more fit per
        column; see :meth:`MLEModel._nested_tests`). False skips them.
    """

    _covariate_arguments = {"purchase": "purchase_covariates",
                            "dropout": "dropout_covariates"}

    def __init__(self, *, penalizer: float = 0.0, purchase_covariates=None,
                 dropout_covariates=None, lr_tests: bool = True):
        super().__init__(penalizer=penalizer)
        self.purchase_covariates = purchase_covariates
        self.dropout_covariates = dropout_covariates
        self.lr_tests = lr_tests

    def _settings(self):
        return {**super()._settings(),
                "purchase_covariates": self.purchase_covariates,
                "dropout_covariates": self.dropout_covariates,
                "lr_tests": self.lr_tests}

    def _covariate_spec(self):
        return {"purchase": self.purchase_covariates, "dropout": self.dropout_covariates}
