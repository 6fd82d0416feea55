"""One contract over every model: settings-only __init__, not-fitted errors, fit returns
self and leaves the caller's frame untouched, learned attributes end with ``_`` and hold
no training data, predictions indexed like the input, and a save/load round trip that
predicts the same."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import clvmodels as cm
from clvmodels.errors import NotFittedError


def _rfm(cdnow_rfm):
    return cdnow_rfm.iloc[::3].copy()


def _donations():
    return cm.datasets.donations()


def _transactions(m, frame):
    return m.expected_purchases(10.0, frame)


def _bgbb_predict(m, frame):
    return m.expected_purchases(2, frame)


def _spend(m, frame):
    return m.expected_spend(frame)


MLE = [
    (cm.BGNBD, _rfm, _transactions, {}),
    (cm.MBGNBD, _rfm, _transactions, {}),
    (cm.ParetoNBD, _rfm, _transactions, {}),
    (cm.BGBB, lambda _: _donations(), _bgbb_predict, {"weights": "weights"}),
    (cm.GammaGamma, _rfm, _spend, {}),
]


def _learned_attributes(model):
    return {k: v for k, v in vars(model).items() if k.endswith("_")}


def _holds_training_data(model, n_rows):
    """Any attribute that is a frame/array with one entry per training row."""
    for value in vars(model).values():
        if isinstance(value, pd.DataFrame | pd.Series | np.ndarray) and len(value) == n_rows:
            return True
    return False


@pytest.mark.parametrize("cls, data, predict, fit_kwargs", MLE,
                         ids=[c[0].__name__ for c in MLE])
def test_mle_contract(cls, data, predict, fit_kwargs, cdnow_rfm, tmp_path):
    frame = data(cdnow_rfm)
    before = frame.copy(deep=True)
    model = cls()
    assert _learned_attributes(model) == {}  # __init__ stores settings only
    with pytest.raises(NotFittedError):
        predict(model, frame)
    with pytest.raises(NotFittedError):
        model.save(tmp_path / "unfitted.json")
    assert model.fit(frame, **fit_kwargs) is model
    pd.testing.assert_frame_equal(frame, before)  # the caller's frame is untouched
    assert {"params_", "se_", "cov_", "loglik_"} <= set(_learned_attributes(model))
    assert not _holds_training_data(model, len(frame))
    pred = predict(model, frame)
    assert (pred.index == frame.index).all() and np.isfinite(pred.to_numpy(float)).all()
    path = tmp_path / "model.json"
    model.save(path)
    assert path.read_text().lstrip().startswith("{")  # JSON, not pickle
    again = cls.load(path)
    pd.testing.assert_series_equal(predict(again, frame), pred)
    pd.testing.assert_series_equal(again.params_, model.params_)
    # refitting on other data replaces the fit
    if fit_kwargs:  # counts of identical customers: five more of each pattern
        refit = model.fit(frame.assign(weights=frame["weights"] + 5), **fit_kwargs)
    else:
        refit = model.fit(frame.iloc[: len(frame) // 2])
    assert not np.allclose(refit.params_, pd.Series(again.params_))


def _fit_for_contract(cls, cdnow_rfm):
    if cls is cm.BGBB:
        return cls().fit(_donations(), weights="weights")
    if cls in (cm.MBGCNBD, cm.BGCNBD):  # k = 2: a mixture over two Erlang phases
        tx = cm.datasets.cdnow_transactions(sample=True)
        litt = cm.rfm_summary(tx, "customer_id", "date", "amount",
                              observation_end="1997-09-30", litt=True)
        return cls(k=2).fit(litt)
    if cls is cm.GGomNBD:
        from clvmodels.errors import StatisticalWarning

        with pytest.warns(StatisticalWarning):  # CDNOW: at the Pareto/NBD limit
            return cls().fit(cdnow_rfm)
    return cls().fit(cdnow_rfm)


@pytest.mark.parametrize("cls", [cm.BGNBD, cm.MBGNBD, cm.ParetoNBD, cm.BGBB, cm.MBGCNBD,
                                 cm.BGCNBD, cm.GGomNBD],
                         ids=lambda c: c.__name__)
def test_transaction_model_predictive_methods_share_a_contract(cls, cdnow_rfm):
    """Every transaction model has the predictive methods, not-fitted errors included."""
    frame = _donations().head(20) if cls is cm.BGBB else cdnow_rfm.head(20)
    before = frame.copy(deep=True)
    t = 2 if cls is cm.BGBB else 10.0
    calls = [
        lambda m: m.probability_of_purchases([0, 1, 2], t, frame),
        lambda m: m.probability_of_no_purchase(t, frame),
        lambda m: m.probability_alive(frame, ahead=t),
        lambda m: m.prediction_interval(t, frame, level=0.8),
        lambda m: m.randomized_pit(t, frame, frame["frequency"]),
    ]
    for call in calls:
        with pytest.raises(NotFittedError):
            call(cls())
    fitted = _fit_for_contract(cls, cdnow_rfm)
    for call in calls:
        out = call(fitted)
        assert (out.index == frame.index).all()
        assert np.isfinite(out.to_numpy(float)).all()
    pd.testing.assert_frame_equal(frame, before)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["BGNBD", "MBGNBD", "ParetoNBD", "GammaGamma", "SegmentBGNBD", "SegmentGammaGamma"]
)
def test_bayes_contract(name, cdnow_rfm, tmp_path):
    """The same contract for the Bayesian models (posterior mode fits: quick)."""
    from clvmodels import bayes

    frame = cdnow_rfm.iloc[::4].assign(seg=lambda f: np.where(f.index.astype(int) % 2, "a", "b"))
    before = frame.copy(deep=True)
    cls = getattr(bayes, name)
    model = cls(segment="seg") if name.startswith("Segment") else cls()
    assert _learned_attributes(model) == {}
    predict = _spend if "Gamma" in name else _transactions
    with pytest.raises(NotFittedError):
        predict(model, frame)
    with pytest.raises(NotFittedError):
        model.posterior_draws()
    assert model.fit(frame, method="map", random_seed=0, progressbar=False) is model
    pd.testing.assert_frame_equal(frame, before)
    assert not _holds_training_data(model, len(frame))
    pred = predict(model, frame)
    assert (pred.index == frame.index).all() and np.isfinite(pred.to_numpy(float)).all()
    path = tmp_path / "posterior.nc"
    model.save(path)
    pd.testing.assert_frame_equal(predict(cls.load(path), frame), pred)
