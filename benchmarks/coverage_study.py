"""Coverage of the prediction intervals on simulated holdouts: levels x models x MLE/Bayes.

Run:  uv run python benchmarks/coverage_study.py [--customers 4000] [--seeds 3] [--no-bayes]

For each model and seed, customers are simulated event by event (tests/_events.py: the
models' stories, no formula of the package) over a calibration period (ages 1..78
weeks; BG/BB: 6 opportunities) and a holdout of 39 weeks (BG/BB: 5 opportunities). The
model is fitted on the calibration period (maximum likelihood; for the BG/NBD also the
Bayesian model by NUTS), intervals of the holdout purchases are computed at 80% and 90%,
and the table gives, pooled over seeds:

* ``observed``: the share of customers whose holdout count lies in [low, high];
* ``model``: the coverage the model itself expects (the predictive probability of
  [low, high], averaged over customers). Counts are whole numbers, so the intervals
  cover more than their level: most customers' interval is [0, k] with P(0) alone
  above 1 - level / 2. What must hold is model >= level and observed ~ model.
* ``z``: (observed - model) / binomial standard error.

Tolerance used by tests/test_predictive.py: model >= level and |z| < 4.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import _events  # noqa: E402
import clvmodels as cm  # noqa: E402
from clvmodels.models import _predictive  # noqa: E402

PARAMS = {
    "BGNBD": dict(r=0.243, alpha=4.414, a=0.793, b=2.426),
    "MBGNBD": dict(r=0.525, alpha=6.183, a=0.891, b=1.614),
    "ParetoNBD": dict(r=0.553, alpha=10.578, s=0.606, beta=11.669),
    "BGBB": dict(alpha=1.204, beta=0.750, gamma=0.657, delta=2.783),
}
LEVELS = (0.8, 0.9)


def _model_coverage(model, data, t, iv, draws, codes=None):
    x, t_x, T = (data[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    codes = np.zeros(len(data), dtype=np.int64) if codes is None else codes
    return _predictive.predictive_coverage(
        model.formulas.conditional, model.formulas.probability_alive, draws, codes,
        x, t_x, T, t, iv["low"].to_numpy(), iv["high"].to_numpy(),
    )


def run(name, n, seed, bayes):
    T, t = (np.full(n, 6), 5) if name == "BGBB" else (np.resize(np.arange(1.0, 79.0), n), 39.0)
    data = _events.simulate(name, PARAMS[name], n, T, t, seed)
    rows = []
    mle = getattr(cm, name)().fit(data)
    fits = [("MLE", mle, mle.parameter_draws(50, 0))]
    if bayes and name == "BGNBD":
        from clvmodels import bayes as b

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            post = b.BGNBD().fit(data, draws=500, tune=500, chains=2, random_seed=seed,
                                 progressbar=False)
        from clvmodels.bayes._base import draw_matrices

        fits.append(("Bayes", post, draw_matrices(post.posterior_draws(50), post.param_names)))
    for how, model, draws in fits:
        if how == "MLE":
            draws = [draws[:, [j]] for j in range(draws.shape[1])]
        for level in LEVELS:
            iv = model.prediction_interval(t, data, level=level)
            inside = (data["holdout"] >= iv["low"]) & (data["holdout"] <= iv["high"])
            said = _model_coverage(model, data, t, iv, draws)
            rows.append({"model": name, "fit": how, "level": level, "seed": seed,
                         "inside": int(inside.sum()), "expected": float(said.sum()), "n": n})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=4000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--no-bayes", action="store_true")
    args = ap.parse_args()
    rows = []
    for name in PARAMS:
        for seed in range(args.seeds):
            rows += run(name, args.customers, seed, not args.no_bayes)
    df = pd.DataFrame(rows)
    table = df.groupby(["level", "model", "fit"], sort=False)[["inside", "expected", "n"]].sum()
    table["observed"] = table["inside"] / table["n"]
    table["model_says"] = table["expected"] / table["n"]
    se = np.sqrt(table["model_says"] * (1 - table["model_says"]) / table["n"])
    table["z"] = (table["observed"] - table["model_says"]) / se
    out = table[["n", "observed", "model_says", "z"]]
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 120):
        print(out.to_string())


if __name__ == "__main__":
    main()
