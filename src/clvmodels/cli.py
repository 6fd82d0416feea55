"""The ``clvmodels`` command.

``clvmodels summary`` prints, for CDNOW by default or for a CSV/Parquet transaction log:
the RFM summary statistics, the analysts' formula table and the BG/NBD + Gamma-Gamma
estimates. Bad input gives one line naming the problem and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import pandas as pd

EXIT_BAD_INPUT = 2


def _read_log(path: str) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"transactions file not found: {path}")
    if p.suffix.lower() in {".parquet", ".pq"}:
        return pd.read_parquet(p)
    return pd.read_csv(p)


def _summary(args: argparse.Namespace) -> int:
    from . import BGNBD, GammaGamma, customer_lifetime_value, datasets, formula_clv, rfm_summary
    from .errors import StatisticalWarning

    if args.transactions is None:
        tx = datasets.cdnow_transactions()
        source = "CDNOW master (23,570 customers, 1997-01-01 to 1998-06-30)"
        customer, date, amount = "customer_id", "date", "amount"
    else:
        tx = _read_log(args.transactions)
        source = args.transactions
        customer, date, amount = args.customer, args.date, args.amount
    rfm = rfm_summary(tx, customer=customer, date=date, amount=amount,
                      observation_end=args.observation_end, unit=args.unit)
    print(f"Data: {source}")
    print(f"{len(tx):,} transactions, {len(rfm):,} customers; time unit {args.unit!r}\n")
    print("RFM summary statistics")
    print(rfm.describe().T.round(2).to_string(), "\n")
    formula = formula_clv(tx, customer=customer, date=date, amount=amount,
                          segment=args.segment)
    print("The formula: avg purchase value x purchase frequency x lifespan")
    print(formula.round(2).to_string(), "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StatisticalWarning)
        bg = BGNBD().fit(rfm)
        gg = GammaGamma().fit(rfm)
    print("BG/NBD (maximum likelihood)")
    print(bg.summary().round(4).to_string(), "\n")
    print("Gamma-Gamma (maximum likelihood)")
    print(gg.summary().round(4).to_string(), "\n")
    for w in caught:
        print(f"warning: {w.message}")
    per_year = {"D": 365.25, "W": 52.0, "M": 12.0, "Y": 1.0}.get(args.unit)
    if per_year is not None:
        clv = customer_lifetime_value(bg, gg, rfm, horizon=per_year, period=per_year / 12,
                                      discount_rate=0.01)
        print(f"Model CLV, next year, 1% per month discount: mean {clv.mean():.2f}, "
              f"total {clv.sum():,.0f}; formula CLV (all, per customer): "
              f"{formula['clv'].iloc[0]:.2f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clvmodels", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("summary", help="RFM statistics, formula table and model estimates")
    s.add_argument("--transactions", help="CSV or Parquet transaction log (default: CDNOW)")
    s.add_argument("--customer", default="customer_id", help="customer id column")
    s.add_argument("--date", default="date", help="date column")
    s.add_argument("--amount", default="amount", help="amount column")
    s.add_argument("--segment", default=None, help="optional segment column for the formula")
    s.add_argument("--observation-end", default=None,
                   help="last day of observation (default: the last transaction day)")
    s.add_argument("--unit", default="W", help="time unit: D, W, M, Y or a number of days")
    s.set_defaults(func=_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"clvmodels: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
