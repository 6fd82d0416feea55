"""Shared fixtures: the CDNOW data built by our own pipeline, and the reference package."""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture(scope="session")
def cdnow_rfm():
    """CDNOW 1/10 sample, weekly RFM through 1997-09-30 (the papers' calibration data)."""
    from clvmodels import datasets
    from clvmodels.rfm import rfm_summary

    tx = datasets.cdnow_transactions(sample=True)
    return rfm_summary(tx, customer="customer_id", date="date", amount="amount",
                       observation_end="1997-09-30", unit="W")


@pytest.fixture(scope="session")
def lifetimes():
    """The reference implementation (imports pkg_resources, which warns on import)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lifetimes as lt
    return lt
