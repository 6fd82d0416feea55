"""The bundled data sets: sizes and values from the papers and the raw files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clvmodels import datasets

REPO = Path(__file__).resolve().parents[1]


def test_cdnow_master_sizes_and_dtypes():
    tx = datasets.cdnow_transactions()
    assert list(tx.columns) == ["customer_id", "date", "quantity", "amount"]
    assert len(tx) == 69_659
    assert tx["customer_id"].nunique() == 23_570
    assert tx["customer_id"].min() == 1 and tx["customer_id"].max() == 23_570
    assert tx["customer_id"].dtype == np.int64
    assert pd.api.types.is_datetime64_dtype(tx["date"].dtype)
    assert tx["quantity"].dtype == np.int64
    assert tx["amount"].dtype == np.float64
    assert tx["date"].min() == pd.Timestamp("1997-01-01")
    assert tx["date"].max() == pd.Timestamp("1998-06-30")
    # the cohort: first purchase in the first quarter of 1997
    assert tx.groupby("customer_id")["date"].min().max() < pd.Timestamp("1997-04-01")


def test_cdnow_master_values_match_raw_file():
    """Totals computed from the raw text with plain Python, independently of pandas."""
    lines = (REPO / "data" / "CDNOW_master.txt").read_text().split("\n")[1:]
    rows = [line.split() for line in lines if line.strip()]
    tx = datasets.cdnow_transactions()
    assert len(rows) == len(tx)
    assert tx["quantity"].sum() == sum(int(r[2]) for r in rows)
    assert tx["amount"].sum() == pytest.approx(sum(float(r[3]) for r in rows), abs=1e-6)
    first, last = tx.iloc[0], tx.iloc[-1]
    assert (first["customer_id"], first["date"], first["quantity"], first["amount"]) == (
        1,
        pd.Timestamp("1997-01-01"),
        1,
        11.77,
    )
    assert last["customer_id"] == int(rows[-1][0])
    assert last["date"] == pd.Timestamp(rows[-1][1])
    assert last["amount"] == float(rows[-1][3])


def test_cdnow_sample_uses_paper_ids():
    tx = datasets.cdnow_transactions(sample=True)
    assert list(tx.columns) == ["customer_id", "date", "quantity", "amount"]
    assert len(tx) == 6_919
    assert tx["customer_id"].nunique() == 2_357
    assert sorted(tx["customer_id"].unique()) == list(range(1, 2_358))
    # customer 1 of the papers: purchases on 1997-01-01, 01-18, 08-02, 12-12
    one = tx[tx["customer_id"] == 1]
    assert one["date"].dt.strftime("%Y-%m-%d").tolist() == [
        "1997-01-01",
        "1997-01-18",
        "1997-08-02",
        "1997-12-12",
    ]
    assert one["amount"].tolist() == [29.33, 29.73, 14.96, 26.48]


def test_cdnow_sample_rows_are_master_rows():
    raw = pd.read_csv(REPO / "data" / "CDNOW_sample.txt", sep=r"\s+", header=None, dtype={2: str})
    master = datasets.cdnow_transactions()
    sample = datasets.cdnow_transactions(sample=True).assign(master_id=raw[0].to_numpy())
    key = ["customer_id", "date", "quantity", "amount"]
    joined = sample.rename(columns={"customer_id": "sid", "master_id": "customer_id"}).merge(
        master.drop_duplicates(key), on=key, how="left", indicator=True
    )
    assert (joined["_merge"] == "both").all()


def test_donations():
    don = datasets.donations()
    assert list(don.columns) == ["frequency", "recency", "T", "weights"]
    assert len(don) == 22
    assert (don.dtypes == np.int64).all()
    assert int(don["weights"].sum()) == 11_104
    assert (don["T"] == 6).all()
    assert don.iloc[0].tolist() == [0, 0, 6, 3464]
    assert don.iloc[1].tolist() == [1, 1, 6, 1091]
    assert (don["frequency"] <= don["recency"]).all()


def test_loaders_return_fresh_frames():
    a = datasets.cdnow_transactions(sample=True)
    a.loc[0, "amount"] = -1.0
    assert datasets.cdnow_transactions(sample=True).loc[0, "amount"] == 29.33


@pytest.mark.slow
def test_data_load_from_installed_wheel(tmp_path, installed_wheel):
    """Build the wheel, install it (no deps) into a fresh venv, load every data set; the
    data can only come from the installed wheel (see ``installed_wheel``), as asserted."""
    python, purelib, env = installed_wheel.python, installed_wheel.purelib, installed_wheel.env
    script = (
        "import clvmodels, clvmodels.datasets as d\n"
        "from importlib import resources\n"
        "print(clvmodels.__file__)\n"
        "print(resources.files('clvmodels') / '_data' / 'CDNOW_master.txt')\n"
        "print(len(d.cdnow_transactions()), len(d.cdnow_transactions(sample=True)),"
        " int(d.donations()['weights'].sum()))\n"
    )
    out = subprocess.run(
        [python, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0].startswith(purelib)
    assert Path(out[1]).is_file() and out[1].startswith(purelib)
    assert out[2] == "69659 6919 11104"
