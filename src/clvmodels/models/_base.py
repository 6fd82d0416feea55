"""Shared machinery of the maximum-likelihood models: fitting, standard errors, saving.

A model class is thin: it names its parameters, points at the pure functions of its
module (log-likelihood per row and its gradient) and says how to read its data from a
frame. Everything else lives here, once:

* identical rows are fitted once (compressed to unique rows with counts), user weights
  multiply those counts;
* the optimiser works on log-parameters with the analytic gradient (L-BFGS-B), starting
  from a data-scaled point and retrying from other starts before it gives up with a
  :class:`~clvmodels.errors.ConvergenceError`;
* an optional L2 penalty ``penalizer * sum(log(theta)**2)`` shrinks the log-parameters
  towards 0 (parameters towards 1), the remedy for flat likelihoods on small data;
* standard errors come from the observed information (the Hessian of the total
  log-likelihood, by central differences of the analytic gradient) and the delta method;
* fitted parameters round-trip through a human-readable JSON file; nothing is pickled.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import optimize

from ..errors import ConvergenceError, DataError, NotFittedError, StatisticalWarning

_LOG_BOUND = 25.0  # |log(theta)| <= 25: 1.4e-11 < theta < 7.2e10
_FORMAT_VERSION = 1


def compress_rows(columns: Sequence[np.ndarray], weights: np.ndarray | None = None):
    """Collapse identical rows to one row with a count (times the user's weights).

    Returns the unique columns (in order of first appearance) and the summed weights.
    Fitting on the compressed rows gives exactly the likelihood of the full data.
    """
    n = len(columns[0])
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    frame = pd.DataFrame({i: c for i, c in enumerate(columns)})
    codes = frame.groupby(list(frame.columns), sort=False, dropna=False).ngroup().to_numpy()
    counts = np.bincount(codes, weights=w)
    first = np.full(counts.size, n, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(n))
    return [np.asarray(c)[first] for c in columns], counts


class MLEModel:
    """Base class: a parametric model fitted by maximum likelihood.

    Subclasses set ``param_names`` and implement ``_data``, ``_loglik``, ``_loglik_grad``
    and ``_start``. ``__init__`` stores settings only; everything learned ends with ``_``.

    Parameters
    ----------
    penalizer : float, default 0
        Weight of the L2 penalty on the log-parameters (see module docstring).
    """

    param_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, penalizer: float = 0.0):
        self.penalizer = penalizer

    # ---- to be provided by subclasses -------------------------------------------
    def _data(self, frame: pd.DataFrame) -> tuple[np.ndarray, ...]:
        """Validated data arrays from a frame (no copy of the frame is kept)."""
        raise NotImplementedError

    @staticmethod
    def _loglik(params: np.ndarray, *data: np.ndarray) -> np.ndarray:
        """Log-likelihood of each row at natural-scale parameters."""
        raise NotImplementedError

    @staticmethod
    def _loglik_grad(params: np.ndarray, *data: np.ndarray) -> np.ndarray:
        """Gradient of each row's log-likelihood w.r.t. the natural parameters, (n, k)."""
        raise NotImplementedError

    def _start(self, data: tuple[np.ndarray, ...], weights: np.ndarray) -> np.ndarray:
        """A data-scaled starting point (natural scale)."""
        return np.ones(len(self.param_names))

    def _fit_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``frame`` the model is fitted on (all, by default)."""
        return frame

    # ---- fitting ------------------------------------------------------------------
    def fit(
        self,
        data: pd.DataFrame,
        *,
        weights: str | np.ndarray | pd.Series | None = None,
        initial_params: dict[str, float] | None = None,
    ):
        """Fit the model by maximum likelihood and return ``self``.

        Parameters
        ----------
        data : DataFrame
            The model's data (an RFM frame; see the class docstring for the columns).
        weights : str, array or Series, optional
            A column name of ``data`` or one non-negative number per row: each row
            counts that many times (e.g. the count of identical customers).
        initial_params : dict, optional
            Starting values by parameter name; by default a data-scaled start.
        """
        rows = self._fit_rows(data)
        w = self._weights(data, rows, weights)
        cols = self._data(rows)
        cols, w = compress_rows(cols, w)
        keep = w > 0
        cols = [c[keep] for c in cols]
        w = w[keep]
        if w.size == 0:
            raise DataError(None, "no rows with positive weight to fit on", 0)
        starts = self._starts(cols, w, initial_params)
        result = self._maximise(cols, w, starts)
        theta = np.exp(result.x)
        self.params_ = pd.Series(theta, index=list(self.param_names), name="estimate")
        self.loglik_ = float(np.sum(w * self._loglik(theta, *cols)))
        self.n_obs_ = float(w.sum())
        self.n_unique_ = int(w.size)
        self.converged_ = True
        self.cov_ = self._covariance(theta, cols, w)
        self.se_ = pd.Series(
            np.sqrt(np.clip(np.diag(self.cov_.to_numpy()), 0, None)),
            index=self.params_.index,
            name="se",
        )
        at_bound = np.abs(result.x) >= _LOG_BOUND - 1e-6
        if at_bound.any():
            names = [n for n, b in zip(self.param_names, at_bound, strict=True) if b]
            warnings.warn(
                f"{type(self).__name__}: parameter(s) {names} reached the bound "
                f"exp(+-{_LOG_BOUND:g}); the likelihood is flat in that direction. "
                "Consider a penalizer or more data.",
                StatisticalWarning,
                stacklevel=2,
            )
        self._after_fit(rows, w)
        return self

    def _after_fit(self, rows: pd.DataFrame, weights: np.ndarray) -> None:
        """Hook for model-specific diagnostics after a fit."""

    @staticmethod
    def _weights(data, rows, weights) -> np.ndarray | None:
        if weights is None:
            return None
        if isinstance(weights, str):
            if weights not in data.columns:
                raise DataError(weights, "weights column not found", len(data))
            weights = data.loc[rows.index, weights]
        elif len(weights) == len(data) and len(rows) != len(data):
            weights = pd.Series(np.asarray(weights), index=data.index).loc[rows.index]
        w = np.asarray(weights, dtype=float)
        if w.shape != (len(rows),):
            raise DataError("weights", f"must have one value per row ({len(rows)})", w.size)
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            raise DataError("weights", "must be finite and non-negative", int(bad.sum()))
        return w

    def _starts(self, cols, w, initial_params) -> list[np.ndarray]:
        if initial_params is not None:
            missing = set(self.param_names) - set(initial_params)
            if missing:
                raise ValueError(f"initial_params lacks {sorted(missing)}")
            first = np.array([initial_params[n] for n in self.param_names], dtype=float)
        else:
            first = self._start(cols, w)
        first = np.log(first)
        k = len(self.param_names)
        # fallbacks: all ones, and the first start shrunk halfway to ones
        return [first, np.zeros(k), first / 2]

    def _objective(self, cols, w) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
        total = w.sum()

        def f(log_theta: np.ndarray):
            theta = np.exp(log_theta)
            with np.errstate(all="ignore"):
                ll = self._loglik(theta, *cols)
                g = self._loglik_grad(theta, *cols)
            value = -np.dot(w, ll) / total + self.penalizer * np.sum(log_theta**2)
            grad = -(w @ g) * theta / total + 2 * self.penalizer * log_theta
            if not np.isfinite(value) or not np.all(np.isfinite(grad)):
                return np.inf, np.zeros_like(log_theta)
            return float(value), grad

        return f

    def _maximise(self, cols, w, starts):
        f = self._objective(cols, w)
        bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(self.param_names)
        best, tried = None, []
        for x0 in starts:
            value0, _ = f(x0)
            if not np.isfinite(value0):
                tried.append(f"start {np.exp(x0).round(4).tolist()}: log-likelihood not finite")
                continue
            res = optimize.minimize(
                f, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-8},
            )
            grad_norm = float(np.max(np.abs(res.jac)))
            ok = np.isfinite(res.fun) and (res.success or grad_norm < 1e-5)
            if ok and (best is None or res.fun < best.fun - 1e-10):
                best = res
            if ok:
                break
            tried.append(
                f"start {np.exp(x0).round(4).tolist()}: {res.message} "
                f"(max |gradient| {grad_norm:.2e})"
            )
        if best is None:
            self.converged_ = False
            raise ConvergenceError(
                f"{type(self).__name__}: the optimiser did not converge from any start: "
                + "; ".join(tried)
                + ". Check the data (units of recency and T), pass initial_params, "
                "or set a small penalizer."
            )
        return best

    def _covariance(self, theta, cols, w) -> pd.DataFrame:
        """Inverse observed information, on the natural scale (delta method)."""
        log_theta = np.log(theta)
        k = theta.size

        def grad_total(lt):
            th = np.exp(lt)
            with np.errstate(all="ignore"):
                g = (w @ self._loglik_grad(th, *cols)) * th
            return g - 2 * self.penalizer * lt * w.sum()

        hess = np.empty((k, k))
        for j in range(k):
            h = 1e-5 * max(1.0, abs(log_theta[j]))
            e = np.zeros(k)
            e[j] = h
            hess[:, j] = (grad_total(log_theta + e) - grad_total(log_theta - e)) / (2 * h)
        hess = (hess + hess.T) / 2
        try:
            cov_log = np.linalg.inv(-hess)
        except np.linalg.LinAlgError:
            cov_log = np.full((k, k), np.nan)
        cov = cov_log * np.outer(theta, theta)
        names = list(self.param_names)
        return pd.DataFrame(cov, index=names, columns=names)

    # ---- known parameters -----------------------------------------------------------
    @classmethod
    def from_params(cls, **params: float):
        """A model with known parameters, without fitting (e.g. published values)."""
        unknown = set(params) - set(cls.param_names)
        missing = set(cls.param_names) - set(params)
        if unknown or missing:
            raise ValueError(
                f"{cls.__name__}.from_params takes exactly {list(cls.param_names)}; "
                f"missing {sorted(missing)}, unknown {sorted(unknown)}"
            )
        values = np.array([params[n] for n in cls.param_names], dtype=float)
        if not np.all(np.isfinite(values) & (values > 0)):
            raise ValueError(f"{cls.__name__}: parameters must be positive and finite: {params}")
        model = cls()
        model.params_ = pd.Series(values, index=list(cls.param_names), name="estimate")
        return model

    # ---- helpers for predictions ------------------------------------------------------
    def _check_fitted(self) -> np.ndarray:
        if not hasattr(self, "params_"):
            raise NotFittedError(
                f"This {type(self).__name__} has no parameters yet: call fit(...) or "
                f"{type(self).__name__}.from_params(...) first."
            )
        return self.params_.to_numpy()

    @property
    def _p(self) -> dict[str, float]:
        self._check_fitted()
        return {k: float(v) for k, v in self.params_.items()}

    def summary(self) -> pd.DataFrame:
        """Estimates, standard errors and 95% Wald intervals on the log scale."""
        self._check_fitted()
        est = self.params_
        se = getattr(self, "se_", pd.Series(np.nan, index=est.index))
        half = 1.959963984540054 * se / est
        return pd.DataFrame(
            {"estimate": est, "se": se, "lower_95": est * np.exp(-half),
             "upper_95": est * np.exp(half)}
        )

    def __repr__(self) -> str:
        if not hasattr(self, "params_"):
            return f"{type(self).__name__}(penalizer={self.penalizer})"
        p = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        return f"{type(self).__name__}({p})"

    # ---- persistence ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description of the fitted model."""
        self._check_fitted()
        out: dict[str, Any] = {
            "format": "clvmodels", "format_version": _FORMAT_VERSION,
            "model": type(self).__name__,
            "settings": {"penalizer": self.penalizer},
            "params": {k: float(v) for k, v in self.params_.items()},
        }
        for name in ("loglik_", "n_obs_", "n_unique_"):
            if hasattr(self, name):
                out[name.rstrip("_")] = getattr(self, name)
        if hasattr(self, "se_"):
            out["se"] = {k: float(v) for k, v in self.se_.items()}
            out["cov"] = self.cov_.to_numpy().tolist()
        return out

    def save(self, path: str | Path) -> None:
        """Write the fitted model to a JSON file (human-readable; loading runs no code)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, allow_nan=True))

    @classmethod
    def load(cls, path: str | Path):
        """Read a model written by :meth:`save`."""
        spec = json.loads(Path(path).read_text())
        if spec.get("format") != "clvmodels" or spec.get("model") != cls.__name__:
            raise ValueError(
                f"{path} holds a {spec.get('model')!r} model, not a {cls.__name__}"
            )
        model = cls(**spec.get("settings", {}))
        names = list(cls.param_names)
        model.params_ = pd.Series([spec["params"][n] for n in names], index=names,
                                  name="estimate")
        for key in ("loglik", "n_obs", "n_unique"):
            if key in spec:
                setattr(model, key + "_", spec[key])
        if "se" in spec:
            model.se_ = pd.Series([spec["se"][n] for n in names], index=names, name="se")
            model.cov_ = pd.DataFrame(spec["cov"], index=names, columns=names, dtype=float)
        return model
