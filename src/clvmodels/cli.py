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

EXIT_BAD_INPUT = 2

# Python keyword -> flag, for messages in the command-line user's language
# (:func:`clvmodels.errors.option`); any other keyword becomes --its-name.
FLAGS = {
    "customer": "--customer", "date": "--date", "amount": "--amount", "segment": "--segment",
    "sep": "--sep", "decimal": "--decimal", "date_format": "--date-format",
    "timezone": "--timezone", "duplicates": "--duplicates", "allow_returns": "--allow-returns",
    "observation_end": "--observation-end", "calibration_end": "--calibration-end",
    "engine": "--engine", "lifespan": "--lifespan", "unit": "--unit",
    "acquisition_cost": "--acquisition-cost", "draws": "--draws", "tune": "--tune",
    "channel": "--channel",
}  # fmt: skip
# the reading options both commands take, as keywords of clvmodels.read_transactions
READ_OPTIONS = ("sep", "decimal", "date_format", "timezone", "duplicates", "allow_returns",
                "engine")  # fmt: skip


def _read_kw(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in READ_OPTIONS}


def _open_log(args: argparse.Namespace):
    from .analysis import open_log

    return open_log(
        args.transactions, customer=args.customer, date=args.date, amount=args.amount,
        segment=args.segment, observation_end=args.observation_end, **_read_kw(args),
    )  # fmt: skip


def _print_quality(log) -> None:
    print(f"Data: {getattr(log, 'source', 'the transaction log')}")
    for line in log.quality.lines():
        print(f"  {line}")
    print()


def _summary(args: argparse.Namespace) -> int:
    from . import BGNBD, GammaGamma, customer_lifetime_value, rfm_summary
    from .analysis import formula_tables
    from .errors import ConvergenceError, StatisticalWarning
    from .rfm import unit_days, unit_name

    log = _open_log(args)
    rfm = rfm_summary(log, observation_end=args.observation_end, unit=args.unit)
    _print_quality(log)
    print(f"RFM summary statistics (time unit: {unit_name(args.unit)})")
    print(rfm.describe().T.round(2).to_string(), "\n")
    formula, _, note = formula_tables(log, args.segment, args.observation_end, args.lifespan)
    print(f"The formula: avg purchase value x purchase frequency x lifespan ({note})")
    # no acquisition cost here: net CLV is the CLV and CLV:CAC is not defined (rules.clv_to_cac)
    print(formula.drop(columns=["net_clv", "clv_to_cac"]).round(2).to_string(), "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StatisticalWarning)
        try:
            bg = BGNBD().fit(rfm)
            # repeat buyers whose purchases were all free have no place in a spend model
            zero = (rfm["frequency"] > 0) & (rfm["monetary_value"] <= 0)
            gg = GammaGamma().fit(rfm[~zero])
        except (ConvergenceError, ValueError) as err:  # too few customers or repeat buyers
            print(f"The models cannot be fitted on these data, so none is shown: {err}")
            return 0
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
        if issubclass(w.category, StatisticalWarning):
            print(f"warning: {w.message}")
    per_year = 365.25 / unit_days(args.unit)  # the one unit table (clvmodels.rfm)
    if per_year >= 1:
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
    w = max([28, *(len(name) + 1 for name in s["holdout"])])
    print(
        f"  {'method':<{w}}{'purchases':>11}{'error':>9}{'revenue':>13}{'error':>9}"
        f"{'MAE/customer':>14}"
    )
    for name, m in s["holdout"].items():
        if name.endswith("(did not converge)"):
            print(f"  {name:<{w}}  not a result: see below")
            continue
        rev = m.get("revenue_predicted")
        rev_txt = _money(rev) if rev is not None else "-"
        rev_err = (
            f"{m['revenue_error_pct']:+.1f}%" if m.get("revenue_error_pct") is not None else "-"
        )
        mae = f"{m['revenue_mae']:.2f}" if m.get("revenue_mae") is not None else "-"
        print(
            f"  {name:<{w}}{m['purchases_predicted']:>11,.0f}"
            f"{m['purchases_error_pct']:>+8.1f}%{rev_txt:>13}{rev_err:>9}{mae:>14}"
        )
    if s.get("recommended"):
        f = s["forecast"]
        print(
            f"\nRecommended model: {s['recommended']} (rule: {s['recommendation_rule']})."
            + (f"\n  {s['recommendation_reason']}" if s.get("recommendation_reason") else "")
            + f"\n  Next {f['horizon_weeks']:g} weeks: {s['recommended']} "
            f"{_money(f['model'])}, the formula {_money(f['formula'])}"
        )
    reg = s.get("regularity")
    if reg is not None:
        from .analysis import REGULAR_K

        k = reg["wheat_morrison_k"]
        words = ("regular (customers buy on a rhythm)" if k >= REGULAR_K
                 else "Poisson-like (random)")
        model = f"; regular-buyer model: {s['regular_model']}" if s.get("regular_model") else ""
        print(f"\nPurchase timing: Wheat & Morrison k = {k:.2f}, {words}{model}")
    if s.get("channels"):
        print(f"\nA new customer per channel (next {s['forecast']['horizon_weeks']:g} weeks)"
              + (f"; CAC = {s['cost_basis']}" if s.get("cost_basis") else ""))
        for name, row in s["channels"].items():
            cac = row.get("acquisition cost")
            ratio = row.get("value : cost")
            extra = "" if cac is None else f", CAC {_money(cac)}, CLV:CAC " + (
                "- (no cost)" if ratio is None else f"{ratio:.2f}")
            print(f"  {name}: value {_money(row['new customer value'])}{extra}")
    for name, message in s.get("unconverged", {}).items():
        print(f"did not converge, not used: {name}: {message}")
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
            check_only=args.check_only,
            acquisition_cost=args.acquisition_cost,
            channel=args.channel,
            horizon_weeks=args.horizon,
            pareto_ggg=args.pareto_ggg,
            caller="cli",
            **_read_kw(args),
        )
    except RuntimeError as exc:
        print(f"clvmodels: report failed: {exc}", file=sys.stderr)
        return 1
    if args.check_only:
        print(f"Data: {summary['source']}")
        for line in summary["data"]["quality"]:
            print(f"  {line}")
        return 0
    _print_report_summary(summary)
    return 0


def _positive_weeks(text: str) -> float:
    try:
        weeks = float(text)
    except ValueError:
        weeks = float("nan")
    if not 1 <= weeks <= 520:  # also NaN
        raise argparse.ArgumentTypeError(f"a number of weeks from 1 to 520, got {text!r}")
    return weeks


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (exit code 2), as every other bad input."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"clvmodels: error: {message} (see {self.prog} --help)\n")


def _add_log_options(p: argparse.ArgumentParser) -> None:
    """The options of the log, shared by summary and report (see read_transactions)."""
    p.add_argument("--transactions", metavar="FILE",
                   help="CSV or Parquet transaction log, told apart by content "
                   "(default: CDNOW master)")  # fmt: skip
    p.add_argument("--customer", default="customer_id", metavar="COL",
                   help="customer id column, read as text (default: customer_id)")  # fmt: skip
    p.add_argument("--date", default="date", metavar="COL",
                   help="transaction date column; times of day are ignored (default: date)")
    p.add_argument("--amount", default="amount", metavar="COL",
                   help="transaction amount column (default: amount)")  # fmt: skip
    p.add_argument("--observation-end", default=None, metavar="DATE",
                   help="last day of the data; later rows are excluded and counted "
                   "(default: the last transaction day; dates after today are an error)")
    p.add_argument("--sep", default=None, metavar="CHAR",
                   help="CSV column separator (default: detected among , ; tab |)")
    p.add_argument("--decimal", default=None, choices=[".", ","],
                   help="decimal mark of the amounts (default: detected)")
    p.add_argument("--date-format", default=None, metavar="FORMAT",
                   help="strftime format of the dates, e.g. '%%d/%%m/%%Y' (default: detected)")
    p.add_argument("--timezone", default="UTC", metavar="ZONE",
                   help="time zone in which calendar days are taken; timestamps with UTC "
                   "offsets are converted to it (default: UTC)")
    p.add_argument("--duplicates", default="warn", choices=["warn", "drop", "error"],
                   help="exact duplicate rows (same customer, timestamp and amount): kept "
                   "and counted, dropped, or an error (default: warn)")
    p.add_argument("--allow-returns", action="store_true",
                   help="accept negative amounts, netted against the same customer's "
                   "purchases of that day")
    p.add_argument("--engine", choices=["duckdb", "pandas"], default="duckdb",
                   help="how the file is aggregated: duckdb (default: inside DuckDB, never "
                   "loaded, bounded memory) or pandas (loaded into memory; same numbers)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="clvmodels", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    s = sub.add_parser("summary", help="RFM statistics, formula table and model estimates")
    _add_log_options(s)
    s.add_argument("--segment", default=None, metavar="COL",
                   help="optional segment column for the formula")  # fmt: skip
    s.add_argument("--unit", default="W", help="time unit: D, W, M, Y or a number of days")
    s.add_argument("--lifespan", type=float, default=None, metavar="YEARS",
                   help="customer lifespan of the formula (default: estimated)")
    s.set_defaults(func=_summary)

    r = sub.add_parser(
        "report",
        help="HTML report: the formula vs the models on a holdout",
        description="Run the report notebook on a transaction log (CDNOW by "
        "default) and write one self-contained HTML file.",
    )
    _add_log_options(r)
    r.add_argument("--segment", default=None, metavar="COL",
                   help="segment column, one per customer (default: acquisition cohort)")
    r.add_argument("--calibration-end", default=None, metavar="DATE",
                   help="last day of the calibration period (default: the middle of the "
                   "data, holdout at most one year)")
    r.add_argument("--out", default="report.html", metavar="FILE",
                   help="HTML file to write (default: report.html)")
    r.add_argument("--check-only", action="store_true",
                   help="read and check the log, print its data quality; write no report")
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
    r.add_argument(
        "--pareto-ggg",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit the regular-buyer model Pareto/GGG (slow Gibbs sampling; shown only if "
        "its chains converge); default: not fitted, with a note when purchase timing is "
        "regular (Wheat & Morrison k >= 1.5)",
    )
    r.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    r.add_argument(
        "--horizon",
        type=_positive_weeks,
        default=52.0,
        metavar="WEEKS",
        help="forecast horizon in weeks (default: 52)",
    )
    r.add_argument(
        "--acquisition-cost",
        default=None,
        metavar="COST",
        help="cost of acquiring a customer: a number, or a CSV with a column segment or "
        "channel and one of cost, cost_per_customer (per acquired customer) or spend "
        "(marketing and sales spend, divided by the customers acquired: a column "
        "customers, else those in the log); the report compares value with it (CLV:CAC)",
    )
    r.add_argument(
        "--channel",
        default=None,
        metavar="COL",
        help="acquisition channel column, one per customer (read as the segment column): "
        "the report adds the value of a new customer per channel against its CAC",
    )
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
    """Run the command. Bad input: one line on standard error and exit code 2; no
    traceback and no Python warning reaches the terminal (the data-quality lines and the
    models' statistical warnings are printed as text)."""
    from .errors import cli_flags

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    with cli_flags(FLAGS), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # counted in the data quality, or printed as notes
        try:
            return args.func(args)
        except (ValueError, FileNotFoundError, KeyError) as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            print(f"clvmodels: error: {message}", file=sys.stderr)
            return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
