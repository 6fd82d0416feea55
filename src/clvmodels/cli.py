"""The ``clvmodels`` command.

``clvmodels summary`` prints, for CDNOW by default or for a CSV/Parquet transaction log:
the RFM summary statistics, the analysts' formula table and the BG/NBD + Gamma-Gamma
estimates. ``clvmodels report`` writes the HTML report comparing the formula with the
models (see :mod:`clvmodels.report`) and prints its key numbers. Bad input gives one line
naming the problem and exit code 2.
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
    rfm = rfm_summary(
        tx,
        customer=customer,
        date=date,
        amount=amount,
        observation_end=args.observation_end,
        unit=args.unit,
    )
    print(f"Data: {source}")
    print(f"{len(tx):,} transactions, {len(rfm):,} customers; time unit {args.unit!r}\n")
    print("RFM summary statistics")
    print(rfm.describe().T.round(2).to_string(), "\n")
    formula = formula_clv(tx, customer=customer, date=date, amount=amount, segment=args.segment)
    print("The formula: avg purchase value x purchase frequency x lifespan")
    print(formula.round(2).to_string(), "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StatisticalWarning)
        bg = BGNBD().fit(rfm)
        # repeat buyers whose purchases were all free have no place in a gamma spend model
        zero = (rfm["frequency"] > 0) & (rfm["monetary_value"] <= 0)
        gg = GammaGamma().fit(rfm[~zero])
    if zero.any():
        print(
            f"note: {int(zero.sum())} repeat buyers with zero average spend are left out "
            "of the Gamma-Gamma fit\n"
        )
    print("BG/NBD (maximum likelihood)")
    print(bg.summary().round(4).to_string(), "\n")
    print("Gamma-Gamma (maximum likelihood)")
    print(gg.summary().round(4).to_string(), "\n")
    for w in caught:
        print(f"warning: {w.message}")
    per_year = {"D": 365.25, "W": 52.0, "M": 12.0, "Y": 1.0}.get(args.unit)
    if per_year is not None:
        clv = customer_lifetime_value(
            bg, gg, rfm, horizon=per_year, period=per_year / 12, discount_rate=0.01
        )
        print(
            f"Model CLV, next year, 1% per month discount: mean {clv.mean():.2f}, "
            f"total {clv.sum():,.0f}; formula CLV (all, per customer): "
            f"{formula['clv'].iloc[0]:.2f}"
        )
    return 0


def _money(x: float) -> str:
    return f"{x:,.0f}"


def _print_report_summary(s: dict) -> None:
    print(f"Report written to {s['html']} in {s['seconds']:.0f} s")
    if "holdout" not in s:
        return
    a = s["actual"]
    print(
        f"\nHoldout {s['holdout_start']} to {s['holdout_end']} "
        f"({s['holdout_weeks']:.1f} weeks), {s['customers']:,} customers: actual "
        f"{a['purchases']:,.0f} purchases, revenue {_money(a['revenue'])}"
    )
    print(
        f"  {'method':<28}{'purchases':>11}{'error':>9}{'revenue':>13}{'error':>9}"
        f"{'MAE/customer':>14}"
    )
    for name, m in s["holdout"].items():
        rev = m.get("revenue_predicted")
        rev_txt = _money(rev) if rev is not None else "-"
        rev_err = (
            f"{m['revenue_error_pct']:+.1f}%" if m.get("revenue_error_pct") is not None else "-"
        )
        mae = f"{m['revenue_mae']:.2f}" if m.get("revenue_mae") is not None else "-"
        print(
            f"  {name:<28}{m['purchases_predicted']:>11,.0f}"
            f"{m['purchases_error_pct']:>+8.1f}%{rev_txt:>13}{rev_err:>9}{mae:>14}"
        )
    for line in s.get("conclusions", []):
        print(f"- {line}")
    for line in s.get("notes", []):
        print(f"note: {line.replace('`', '')}")


def _report(args: argparse.Namespace) -> int:
    from . import contractual
    from .report import run_report

    if contractual.wants_contractual_report(args):  # subscriptions: clvmodels.contractual
        return contractual.cli_report(args)

    draws, tune, chains = args.draws, args.tune, args.chains
    if args.fast:
        draws, tune, chains = draws or 100, tune or 100, chains or 2
    try:
        summary = run_report(
            args.transactions,
            customer=args.customer,
            date=args.date,
            amount=args.amount,
            segment=args.segment,
            calibration_end=args.calibration_end,
            observation_end=args.observation_end,
            out=args.out,
            draws=draws,
            tune=tune,
            chains=chains,
            bayes=not args.no_bayes,
            hierarchical=True if args.hierarchical else None,
            seed=args.seed,
            show_code=args.show_code,
            progress=not args.no_progress,
            keep_notebook=args.keep_notebook,
            engine=args.engine,
        )
    except RuntimeError as exc:
        print(f"clvmodels: report failed: {exc}", file=sys.stderr)
        return 1
    _print_report_summary(summary)
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
    s.add_argument(
        "--observation-end",
        default=None,
        help="last day of observation (default: the last transaction day)",
    )
    s.add_argument("--unit", default="W", help="time unit: D, W, M, Y or a number of days")
    s.set_defaults(func=_summary)

    r = sub.add_parser(
        "report",
        help="HTML report: the formula vs the models on a holdout",
        description="Run the report notebook on a transaction log (CDNOW by "
        "default) and write one self-contained HTML file.",
    )
    r.add_argument(
        "--transactions",
        metavar="FILE",
        help="CSV or Parquet transaction log (default: CDNOW master)",
    )
    r.add_argument(
        "--customer",
        default="customer_id",
        metavar="COL",
        help="customer id column (default: customer_id)",
    )
    r.add_argument(
        "--date",
        default="date",
        metavar="COL",
        help="transaction date column; times of day are ignored (default: date)",
    )
    r.add_argument(
        "--amount",
        default="amount",
        metavar="COL",
        help="transaction amount column (default: amount)",
    )
    r.add_argument(
        "--segment",
        default=None,
        metavar="COL",
        help="segment column, one per customer (default: acquisition cohort)",
    )
    r.add_argument(
        "--calibration-end",
        default=None,
        metavar="DATE",
        help="last day of the calibration period (default: the middle of the "
        "data, holdout at most one year)",
    )
    r.add_argument(
        "--observation-end",
        default=None,
        metavar="DATE",
        help="last day of the data (default: the last transaction day)",
    )
    r.add_argument(
        "--out",
        default="report.html",
        metavar="FILE",
        help="HTML file to write (default: report.html)",
    )
    r.add_argument(
        "--engine",
        choices=["duckdb", "pandas"],
        default="duckdb",
        help="how the --transactions file is aggregated: duckdb (default: inside DuckDB, "
        "never loaded, bounded memory) or pandas (loaded into memory; same numbers)",
    )
    r.add_argument("--draws", type=int, default=None, help="posterior draws per chain")
    r.add_argument("--tune", type=int, default=None, help="tuning steps per chain")
    r.add_argument("--chains", type=int, default=None, help="chains")
    r.add_argument(
        "--fast",
        action="store_true",
        help="quick, rough posteriors (100 draws, 100 tuning steps, 2 chains)",
    )
    r.add_argument(
        "--no-bayes",
        action="store_true",
        help="maximum-likelihood models only (no Bayesian or hierarchical model)",
    )
    r.add_argument(
        "--hierarchical",
        action="store_true",
        help="fit the hierarchical model also on more than 30,000 customers (slow)",
    )
    r.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    r.add_argument("--show-code", action="store_true", help="keep the code in the HTML")
    r.add_argument(
        "--keep-notebook", default=None, metavar="FILE", help="also save the executed notebook"
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    from .contractual import add_report_arguments

    add_report_arguments(r)  # --contractual and its flags
    r.set_defaults(func=_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"clvmodels: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
