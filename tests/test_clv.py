"""Discounted CLV: agreement with lifetimes, units, chunking and argument checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clvmodels import clv as clv_module
from clvmodels.clv import customer_lifetime_value, discount_schedule
from clvmodels.models.bgnbd import BGNBD
from clvmodels.models.gammagamma import GammaGamma


@pytest.fixture(scope="module")
def models(cdnow_rfm):
    return BGNBD().fit(cdnow_rfm), GammaGamma().fit(cdnow_rfm)


def test_matches_lifetimes(models, cdnow_rfm, lifetimes):
    bg, gg = models
    ref_bg = lifetimes.BetaGeoFitter()
    ref_bg.params_ = pd.Series(bg.params_.to_dict())
    # lifetimes attaches `predict` inside fit(); attach it for known parameters
    ref_bg.predict = ref_bg.conditional_expected_number_of_purchases_up_to_time
    ref_gg = lifetimes.GammaGammaFitter()
    ref_gg.params_ = pd.Series(gg.params_.to_dict())
    f, r, T, m = (cdnow_rfm[c] for c in ("frequency", "recency", "T", "monetary_value"))
    # lifetimes' freq="W" hides a month of 4.345 weeks; here the period is explicit
    theirs = ref_gg.customer_lifetime_value(ref_bg, f, r, T, m, time=12,
                                            discount_rate=0.01, freq="W")
    ours = customer_lifetime_value(bg, gg, cdnow_rfm, horizon=12 * 4.345, period=4.345,
                                   discount_rate=0.01)
    np.testing.assert_allclose(ours, theirs, rtol=1e-8)


def test_no_discount_equals_spend_times_expected_purchases(models, cdnow_rfm):
    bg, gg = models
    ours = customer_lifetime_value(bg, gg, cdnow_rfm, horizon=52, period=4,
                                   discount_rate=0.0, margin=0.3)
    expected = 0.3 * gg.expected_spend(cdnow_rfm) * bg.expected_purchases(52, cdnow_rfm)
    np.testing.assert_allclose(ours, expected, rtol=1e-10)


def test_time_unit_is_the_frames(models, cdnow_rfm):
    """The same CLV in weeks and in days when horizon, period and parameters agree."""
    bg, gg = models
    weekly = customer_lifetime_value(bg, gg, cdnow_rfm, horizon=52, period=4,
                                     discount_rate=0.01)
    daily_rfm = cdnow_rfm.assign(recency=cdnow_rfm["recency"] * 7, T=cdnow_rfm["T"] * 7)
    p = bg.params_
    bg_daily = BGNBD.from_params(r=p["r"], alpha=p["alpha"] * 7, a=p["a"], b=p["b"])
    daily = customer_lifetime_value(bg_daily, gg, daily_rfm, horizon=364, period=28,
                                    discount_rate=0.01)
    np.testing.assert_allclose(daily, weekly, rtol=1e-9)


def test_chunked_equals_whole(models, cdnow_rfm, monkeypatch):
    bg, gg = models
    whole = customer_lifetime_value(bg, gg, cdnow_rfm, horizon=52, period=4)
    monkeypatch.setattr(clv_module, "CHUNK_ROWS", 100)
    chunked = customer_lifetime_value(bg, gg, cdnow_rfm, horizon=52, period=4)
    np.testing.assert_allclose(chunked, whole, rtol=1e-12)
    assert chunked.index.equals(cdnow_rfm.index)


def test_discount_schedule():
    ends, factors = discount_schedule(12, 4, 0.1)
    np.testing.assert_allclose(ends, [4, 8, 12])
    np.testing.assert_allclose(factors, [1 / 1.1, 1 / 1.21, 1 / 1.331])


@pytest.mark.parametrize(
    ("horizon", "period", "rate", "match"),
    [(10, 4, 0.01, "whole number"), (-1, 4, 0.01, "horizon"), (12, 0, 0.01, "period"),
     (12, 4, -1.0, "discount_rate")],
)
def test_bad_arguments(horizon, period, rate, match):
    with pytest.raises(ValueError, match=match):
        discount_schedule(horizon, period, rate)
