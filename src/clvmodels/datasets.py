"""The reference data sets of the BTYD literature, shipped with the package.

* :func:`cdnow_transactions` -- CDNOW music CD purchases, 1997-01-01 to 1998-06-30, of the
  23,570 customers who first bought in the first quarter of 1997 (Fader, Hardie & Lee
  2005 [1]_), or the 1/10 sample of 2,357 customers used in the papers.
* :func:`donations` -- annual donations of 11,104 first-time supporters of a non-profit
  over 6 opportunities, 1996-2001, as BG/BB sufficient statistics (Fader, Hardie & Shang
  2010 [2]_).

The files are those distributed with the ``lifetimes`` package; see ``data/README.md``.
In an installed wheel they live in ``clvmodels/_data``; in a source checkout (editable
install) they are read from the repository's ``data/`` folder.

References
----------
.. [1] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting your customers" the
   easy way: An alternative to the Pareto/NBD model. *Marketing Science* 24(2), 275-284.
.. [2] Fader, P. S., Hardie, B. G. S. & Shang, J. (2010). Customer-base analysis in a
   discrete-time noncontractual setting. *Marketing Science* 29(6), 1086-1108.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from importlib import resources
from pathlib import Path

import pandas as pd

__all__ = ["cdnow_transactions", "donations"]

_REPO_DATA = Path(__file__).resolve().parents[2] / "data"


def _open(name: str) -> AbstractContextManager:
    """Open a data file: the package's ``_data`` first, then the checkout's ``data/``."""
    packaged = resources.files("clvmodels") / "_data" / name
    if packaged.is_file():
        return packaged.open("rb")
    local = _REPO_DATA / name
    if local.is_file():
        return local.open("rb")
    raise FileNotFoundError(
        f"data file {name!r} is neither in the installed package (clvmodels/_data) nor in "
        f"{_REPO_DATA}; reinstall clvmodels"
    )


def _read_table(name: str, names: list[str], header: int | None) -> pd.DataFrame:
    with _open(name) as fh:
        return pd.read_csv(
            fh, sep=r"\s+", header=header, names=names, dtype={"date": str}, engine="c"
        )


def cdnow_transactions(sample: bool = False) -> pd.DataFrame:
    """CDNOW transaction log (Fader, Hardie & Lee 2005).

    Parameters
    ----------
    sample : bool, default False
        False: the full master file, 69,659 transactions of 23,570 customers.
        True: the 1/10 sample used in the papers, 6,919 transactions of 2,357 customers,
        numbered 1 to 2,357 as in the papers (the file's sample id).

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id`` (int64), ``date`` (datetime64, a calendar day),
        ``quantity`` (int64, number of CDs) and ``amount`` (float64, US dollars), one row
        per transaction, in file order. Several rows may share a customer and day.

    Examples
    --------
    >>> tx = cdnow_transactions(sample=True)
    >>> len(tx), tx["customer_id"].nunique()
    (6919, 2357)
    >>> print(tx.head(2).to_string(index=False))
     customer_id       date  quantity  amount
               1 1997-01-01         2   29.33
               1 1997-01-18         2   29.73
    """
    if sample:
        raw = _read_table(
            "CDNOW_sample.txt",
            ["master_id", "customer_id", "date", "quantity", "amount"],
            header=None,
        )
    else:
        raw = _read_table(
            "CDNOW_master.txt", ["customer_id", "date", "quantity", "amount"], header=0
        )
    return pd.DataFrame(
        {
            "customer_id": raw["customer_id"].astype("int64"),
            "date": pd.to_datetime(raw["date"], format="%Y%m%d"),
            "quantity": raw["quantity"].astype("int64"),
            "amount": raw["amount"].astype("float64"),
        }
    )


def donations() -> pd.DataFrame:
    """Donations data for the BG/BB model (Fader, Hardie & Shang 2010).

    11,104 people who first donated in 1995, observed over the 6 annual donation
    opportunities 1996-2001, as sufficient statistics with a count of donors per pattern.

    Returns
    -------
    pandas.DataFrame
        22 rows; columns ``frequency`` (number of repeat donations, 0-6), ``recency``
        (the opportunity of the last donation, 0 if none), ``T`` (number of
        opportunities, always 6; ``periods`` in the source file) and ``weights`` (number
        of donors with this pattern), all int64.

    Examples
    --------
    >>> don = donations()
    >>> int(don["weights"].sum()), don["T"].unique().tolist()
    (11104, [6])
    """
    with _open("donations.csv") as fh:
        raw = pd.read_csv(fh)
    out = raw.rename(columns={"periods": "T"})[["frequency", "recency", "T", "weights"]]
    return out.astype("int64")
