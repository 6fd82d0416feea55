"""Base class of the continuous-time 'buy till you die' models (BG/NBD, MBG/NBD, Pareto/NBD).

The data are an RFM frame: ``frequency`` (x, repeat purchases), ``recency`` (t_x, time of
the last repeat purchase) and ``T`` (age), all in the frame's time unit. A subclass names
its parameters and plugs in the pure functions of its module, each taking the parameters
first, in ``param_names`` order, then the data.
"""

from __future__ import annotations

from types import ModuleType
from typing import ClassVar

import numpy as np
import pandas as pd

from .._validate import rfm_arrays
from ._base import MLEModel

_FORMULAS = {
    "_ll": "loglik",
    "_ll_grad": "loglik_grad",
    "_f_expected": "expected_purchases",
    "_f_alive": "probability_alive",
    "_f_expected_new": "expected_purchases_new",
    "_f_pmf": "probability_of_purchases",
    "_f_simulate": "simulate",
}
_OPTIONAL_FORMULAS = {"_f_path": "expected_purchases_path", "_f_ll_and_grad": "loglik_and_grad"}


def _as_series(values, index, name) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=index, name=name)


class TransactionModel(MLEModel):
    """Shared fit/predict plumbing for models of (frequency, recency, T)."""

    columns: ClassVar[tuple[str, str, str]] = ("frequency", "recency", "T")

    # the model's module of pure functions, named by subclasses (``formulas = module``);
    # its functions become the static methods of _FORMULAS (optional ones where present)
    formulas: ClassVar[ModuleType | None] = None
    _ll = _ll_grad = _f_expected = _f_alive = _f_expected_new = _f_pmf = _f_simulate = None
    _f_path = _f_ll_and_grad = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        module = cls.__dict__.get("formulas")
        if module is None:
            return
        for attr, name in _FORMULAS.items():
            setattr(cls, attr, staticmethod(getattr(module, name)))

        def own(name):  # defined in the module itself, not imported from another model's
            f = getattr(module, name, None)
            return f if getattr(f, "__module__", None) == module.__name__ else None

        for attr, name in _OPTIONAL_FORMULAS.items():
            if own(name) is not None:
                setattr(cls, attr, staticmethod(own(name)))
        hessian = own("loglik_value_grad_and_hessian")
        if hessian is not None:

            def value_grad_and_hessian(self, params, *data, weights=None):
                return hessian(*params, *data, weights=weights)

            cls._loglik_value_grad_and_hessian = value_grad_and_hessian

    def _loglik_and_grad(self, params, *data):
        if type(self)._f_ll_and_grad is None:
            return super()._loglik_and_grad(params, *data)
        ll, grad = type(self)._f_ll_and_grad(*params, *data)
        return ll, np.column_stack(grad)

    def _data(self, frame):
        arrays = rfm_arrays(frame)
        return tuple(arrays[c] for c in self.columns)

    def _loglik(self, params, *data):
        return type(self)._ll(*params, *data)

    def _loglik_grad(self, params, *data):
        return np.column_stack(type(self)._ll_grad(*params, *data))

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
        """Expected number of purchases in (T, T + t] given each customer's history."""
        p = self._check_fitted()
        x, t_x, T = self._arrays(rfm)
        values = self._expected_path(p, np.array([float(t)]), x, t_x, T)[:, 0]
        return _as_series(values, rfm.index, "expected_purchases")

    def expected_purchases_path(self, times, rfm: pd.DataFrame) -> np.ndarray:
        """Expected purchases in (T, T + t] for each of ``times``: array (customers, times)."""
        p = self._check_fitted()
        x, t_x, T = self._arrays(rfm)
        return self._expected_path(p, np.asarray(times, dtype=float), x, t_x, T)

    def _expected_path(self, p, times, x, t_x, T) -> np.ndarray:
        """(customers, times) expected purchases, by the module's ``expected_purchases_path``
        where it has one (faster), else by broadcasting ``expected_purchases``."""
        if type(self)._f_path is not None:
            return type(self)._f_path(*p, times, x, t_x, T)
        return np.asarray(
            type(self)._f_expected(*p, times[None, :], x[:, None], t_x[:, None], T[:, None])
        )

    def probability_alive(self, rfm: pd.DataFrame) -> pd.Series:
        """Probability that each customer is still active at T, given the history."""
        p = self._check_fitted()
        x, t_x, T = self._arrays(rfm)
        return _as_series(type(self)._f_alive(*p, x, t_x, T), rfm.index, "probability_alive")

    def expected_purchases_new(self, t):
        """E[X(t)]: expected repeat purchases in (0, t] of a customer acquired at 0."""
        p = self._check_fitted()
        out = type(self)._f_expected_new(*p, np.asarray(t, dtype=float))
        return float(out) if np.ndim(out) == 0 else out

    def probability_of_purchases(self, n, t):
        """P(X(t) = n) for a customer acquired at 0."""
        p = self._check_fitted()
        out = type(self)._f_pmf(*p, np.asarray(n, dtype=float), np.asarray(t, dtype=float))
        return float(out) if np.ndim(out) == 0 else out

    def simulate(self, n_customers: int, T, random_state=None) -> pd.DataFrame:
        """An RFM frame drawn from the model (exact, vectorised).

        ``T`` is one age for all customers or one per customer.
        """
        p = self._check_fitted()
        rng = np.random.default_rng(random_state)
        T = np.broadcast_to(np.asarray(T, dtype=float), (n_customers,)).copy()
        x, t_x = type(self)._f_simulate(*p, T, rng)
        return pd.DataFrame(
            {"frequency": x.astype(np.int64), "recency": t_x, "T": T},
            index=pd.RangeIndex(n_customers, name="customer_id"),
        )
