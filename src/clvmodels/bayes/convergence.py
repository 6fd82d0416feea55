r"""The convergence verdict of a Bayesian fit: did the sampler explore the posterior?

After NUTS every model carries ``convergence_``, a :class:`Convergence`: the largest
R-hat, the smallest bulk and tail effective sample size (ESS) over all parameters, the
number of divergent transitions, and a pass/fail against the thresholds

* rank-normalised split R-hat :math:`\le 1.01` ([1]_, section 4.2, recommends 1.01),
* bulk and tail ESS :math:`\ge 400` (100 per chain for 4 chains, [1]_ section 4.3),
* no divergent transitions ([2]_: a divergence means the sampler missed part of the
  posterior; its draws are biased).

A fit that fails is not a result: reports mark it "did not converge" and leave it out.
``advice(caller)`` says what to change in the caller's language: Python keywords
(``draws=``, ``tune=``) or the command line's flags (``--draws``, ``--tune``).

A fit without NUTS (``method="map"``, ``"advi"``) has no diagnostics and fails: a
posterior mode or an approximation is a quick look, not a converged posterior.

References
----------
.. [1] Vehtari, A., Gelman, A., Simpson, D., Carpenter, B. and Bürkner, P.-C. (2021).
   Rank-normalization, folding, and localization: An improved R-hat for assessing
   convergence of MCMC. *Bayesian Analysis* 16(2), 667-718.
.. [2] Betancourt, M. (2017). A Conceptual Introduction to Hamiltonian Monte Carlo.
   arXiv:1701.02434, section 6.2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SAMPLERS = ("nuts", "gibbs")  # methods that give chains to diagnose
RHAT_MAX = 1.01
ESS_MIN = 400
DIVERGENCES_MAX = 0

_FLAGS = {  # how a setting and its value are written by the caller
    "python": {"draws": "draws={}", "tune": "tune={}", "chains": "chains={}"},
    "cli": {"draws": "--draws {}", "tune": "--tune {}", "chains": "--chains {}"},
}


@dataclass(frozen=True)
class Convergence:
    """The convergence verdict of one fit (see the module docstring).

    Attributes
    ----------
    model : str
        The model's class name.
    method : str
        ``"nuts"``, ``"gibbs"`` (:class:`~clvmodels.bayes.ParetoGGG`), ``"map"`` or ``"advi"``.
    chains, draws : int
        Chains and draws kept per chain.
    rhat_max, ess_bulk_min, ess_tail_min : float
        Over all parameters (NaN without NUTS); R-hat is NaN with one chain.
    divergences : int
        Divergent transitions after tuning.
    passed : bool
        True when every threshold is met.
    problems : tuple of str
        What failed, naming the parameters (at most 8 each).
    """

    model: str
    method: str
    chains: int
    draws: int
    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    passed: bool
    problems: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.passed

    def advice(self, caller: str = "python") -> str:
        """What to change, in the caller's language: ``"python"`` (keywords of ``fit``)
        or ``"cli"`` (flags of ``clvmodels report``)."""
        if caller not in _FLAGS:
            raise ValueError(f"caller must be one of {sorted(_FLAGS)}, got {caller!r}")
        flag = _FLAGS[caller]
        if self.passed:
            return ""
        if self.method not in SAMPLERS:
            return "Sample the posterior with NUTS (method='nuts', the default) instead."
        if self.method == "gibbs":  # ParetoGGG: its own settings, no report flag
            return (f"Run longer chains: clvmodels.bayes.ParetoGGG(draws={2 * self.draws}, "
                    "tune=..., thin=...) in Python; its Gibbs sampler mixes slowly.")
        more = max(2 * self.draws, 1000)
        steps = [f"draw more ({flag['draws'].format(more)}, {flag['tune'].format(more)})"]
        if self.chains < 2:
            steps.append(f"run at least 2 chains ({flag['chains'].format(4)})")
        if self.divergences:
            steps.append("check the data (e.g. segments with very few customers)")
        return "; ".join(steps).capitalize() + "."

    def message(self, caller: str = "python") -> str:
        """One sentence: the model, what failed and the advice."""
        if self.passed:
            return (
                f"{self.model}: converged (R-hat <= {RHAT_MAX}, ESS >= {ESS_MIN}, "
                "no divergences)."
            )
        return (
            f"{self.model}: did not converge: {'; '.join(self.problems)}. "
            + self.advice(caller)
        )

    def to_dict(self) -> dict:
        """The verdict as plain numbers and strings (for JSON)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["problems"] = list(self.problems)
        for k in ("rhat_max", "ess_bulk_min", "ess_tail_min"):
            out[k] = None if not np.isfinite(out[k]) else float(out[k])
        return out


def verdict(
    model: str,
    method: str,
    table: pd.DataFrame | None,
    divergences: int,
    chains: int,
    draws: int,
) -> Convergence:
    """The :class:`Convergence` of a fit from its diagnostics table (columns r_hat,
    ess_bulk, ess_tail, one row per parameter element) and divergence count."""
    nan = float("nan")
    if method not in SAMPLERS or table is None:
        return Convergence(
            model, method, chains, draws, nan, nan, nan, 0, False,
            (f"method={method!r} gives no convergence diagnostics (not a sampled posterior)",),
        )
    problems = []
    rhat = table["r_hat"] if chains > 1 else pd.Series(nan, index=table.index)
    if chains > 1:
        bad = rhat[~(rhat <= RHAT_MAX)]
        if len(bad):
            problems.append(f"R-hat > {RHAT_MAX} for " + _list(bad, "{:.3f}"))
    else:
        problems.append("one chain: convergence across chains cannot be checked")
    for col, label in (("ess_bulk", "bulk"), ("ess_tail", "tail")):
        bad = table[col][~(table[col] >= ESS_MIN)]
        if len(bad):
            problems.append(f"{label} ESS < {ESS_MIN} for " + _list(bad, "{:.0f}"))
    if divergences > DIVERGENCES_MAX:
        problems.append(f"{divergences} divergent transition(s)")
    return Convergence(
        model=model,
        method=method,
        chains=int(chains),
        draws=int(draws),
        rhat_max=float(rhat.max()) if len(rhat) and rhat.notna().any() else nan,
        ess_bulk_min=float(table["ess_bulk"].min()) if len(table) else nan,
        ess_tail_min=float(table["ess_tail"].min()) if len(table) else nan,
        divergences=int(divergences),
        passed=not problems,
        problems=tuple(problems),
    )


def _list(values: pd.Series, fmt: str, limit: int = 8) -> str:
    items = [f"{k} ({fmt.format(v)})" for k, v in values.items()]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
