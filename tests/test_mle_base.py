"""The shared MLE machinery: compression, weights, errors, persistence, penalizer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from clvmodels.errors import ConvergenceError, DataError, NotFittedError
from clvmodels.models._base import compress_rows
from clvmodels.models.bgnbd import BGNBD
from clvmodels.models.gammagamma import GammaGamma


def test_compress_rows_keeps_the_likelihood(cdnow_rfm):
    cols = [cdnow_rfm[c].to_numpy(float) for c in ("frequency", "recency", "T")]
    unique, counts = compress_rows(cols)
    assert counts.sum() == len(cdnow_rfm)
    assert len(unique[0]) < len(cdnow_rfm)
    from clvmodels.models import bgnbd

    theta = (0.24, 4.4, 0.79, 2.4)
    full = bgnbd.loglik(*theta, *cols).sum()
    assert np.dot(counts, bgnbd.loglik(*theta, *unique)) == pytest.approx(full, rel=1e-12)


def test_weights_equal_repeated_rows(cdnow_rfm):
    head = cdnow_rfm.iloc[:600]
    w = np.random.default_rng(1).integers(1, 4, len(head))
    weighted = BGNBD().fit(head, weights=w)
    repeated = BGNBD().fit(head.loc[head.index.repeat(w)])
    np.testing.assert_allclose(weighted.params_, repeated.params_, rtol=1e-5)
    assert weighted.loglik_ == pytest.approx(repeated.loglik_, rel=1e-9)


def test_bad_weights(cdnow_rfm):
    w = np.ones(len(cdnow_rfm))
    w[:3] = -1
    with pytest.raises(DataError, match="weights.*3 rows"):
        BGNBD().fit(cdnow_rfm, weights=w)


def test_fit_does_not_modify_input_and_refit_discards(cdnow_rfm):
    before = cdnow_rfm.copy()
    model = BGNBD()
    model.fit(cdnow_rfm.iloc[:300])
    first = model.params_.copy()
    model.fit(cdnow_rfm)
    pd.testing.assert_frame_equal(cdnow_rfm, before)
    assert not np.allclose(first, model.params_)
    assert not any(isinstance(v, pd.DataFrame) and len(v) == len(cdnow_rfm)
                   for v in vars(model).values())


def test_not_fitted_error():
    with pytest.raises(NotFittedError, match="fit"):
        BGNBD().probability_alive(pd.DataFrame({"frequency": [0], "recency": [0.0],
                                                "T": [1.0]}))


def test_from_params_checks_names_and_values():
    with pytest.raises(ValueError, match="missing"):
        BGNBD.from_params(r=1, alpha=1, a=1)
    with pytest.raises(ValueError, match="positive"):
        BGNBD.from_params(r=1, alpha=-1, a=1, b=1)


def test_save_load_roundtrip(tmp_path, cdnow_rfm):
    bg = BGNBD().fit(cdnow_rfm)
    path = tmp_path / "bg.json"
    bg.save(path)
    spec = json.loads(path.read_text())
    assert spec["model"] == "BGNBD" and set(spec["params"]) == {"r", "alpha", "a", "b"}
    back = BGNBD.load(path)
    pd.testing.assert_series_equal(back.params_, bg.params_)
    pd.testing.assert_series_equal(back.se_, bg.se_)
    assert back.loglik_ == bg.loglik_
    pd.testing.assert_series_equal(back.probability_alive(cdnow_rfm),
                                   bg.probability_alive(cdnow_rfm))
    with pytest.raises(ValueError, match="not a GammaGamma"):
        GammaGamma.load(path)


def test_invalid_rfm_rejected_before_fitting():
    rfm = pd.DataFrame({"frequency": [1, 0, 2], "recency": [5.0, 0.0, 1.0],
                        "T": [4.0, 3.0, 3.0]})
    with pytest.raises(DataError, match="recency.*1 row"):
        BGNBD().fit(rfm)


def test_convergence_error_is_explained(monkeypatch, cdnow_rfm):
    from scipy import optimize

    def failing(*args, **kwargs):
        x0 = args[1]
        return optimize.OptimizeResult(x=x0, fun=1.0, jac=np.ones_like(x0), success=False,
                                       message="ABNORMAL")

    monkeypatch.setattr(optimize, "minimize", failing)
    monkeypatch.setattr(BGNBD, "_newton", lambda self, *args, **kwargs: None)
    with pytest.raises(ConvergenceError, match="did not converge.*ABNORMAL"):
        BGNBD().fit(cdnow_rfm)


def test_penalizer_shrinks_towards_one(cdnow_rfm):
    free = BGNBD().fit(cdnow_rfm)
    shrunk = BGNBD(penalizer=0.1).fit(cdnow_rfm)
    assert np.all(np.abs(np.log(shrunk.params_)) <= np.abs(np.log(free.params_)) + 1e-9)
