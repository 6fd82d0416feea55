r"""Subscriptions and contracts: data, the analysts' formula, and the formula vs the models.

In a contractual business (software, telecoms, insurance, memberships) churn is observed:
each period a customer renews or does not. This module holds everything around the
contractual models :class:`~clvmodels.SBG` and :class:`~clvmodels.BDW`:

* :func:`subscription_summary` turns a subscription log (one row per customer: start and,
  if cancelled, end of the subscription) into the per-customer frame the models fit
  (``renewals``, ``churned``, with the cohort and the renewal opportunities observed);
  :func:`alive_table` counts the customers still active per period and cohort;
* :func:`formula_contractual` is the analysts' formula for subscriptions: retention of the
  last observed period, lifespan = 1 / churn, value = margin x lifespan;
* :func:`retention_holdout` fits the sBG and the BdW on the first periods of a cohort and
  sets the formula's projection beside theirs on the later periods: survivors,
  retention rates and the value of a customer by tenure (margin x DERL);
* :func:`fader_hardie_2007` returns the two cohorts of Fader & Hardie (2007) as printed in
  the paper; :func:`plot_retention_curves`, :func:`plot_retention_rates` and
  :func:`plot_value_by_tenure` draw the comparison; :func:`run_contractual_report` writes
  the HTML report (``clvmodels report --contractual``).

Why the formula goes wrong. Customers differ in their propensity to churn. Those who
churn easily leave first, so the survivors of a cohort are ever more loyal and the
cohort's retention rate rises with tenure (Fader & Hardie 2007 [1]_, eq. (8)) even if no
customer changes. The formula extrapolates the last observed retention rate for ever: it
understates the survivors of later periods and, by giving every tenure the same value,
understates the value of the customers who have stayed (Fader & Hardie 2010 [2]_).

References
----------
.. [1] Fader, P. S. and Hardie, B. G. S. (2007). How to Project Customer Retention.
   *Journal of Interactive Marketing* 21(1), 76-90.
.. [2] Fader, P. S. and Hardie, B. G. S. (2010). Customer-Base Valuation in a Contractual
   Setting: The Perils of Ignoring Heterogeneity. *Marketing Science* 29(1), 85-93.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError
from .models._retention import CHURNED, RENEWALS, likelihood_ratio_test, retention_rows
from .models.bdw import BDW
from .models.sbg import SBG

__all__ = [
    "LIFESPAN_RULE",
    "RetentionComparison",
    "add_report_arguments",
    "alive_table",
    "cli_report",
    "default_calibration",
    "fader_hardie_2007",
    "formula_contractual",
    "is_subscription_log",
    "load_retention_input",
    "plot_retention_curves",
    "plot_retention_rates",
    "plot_value_by_tenure",
    "read_retention",
    "retention_holdout",
    "run_contractual_report",
    "subscription_summary",
    "wants_contractual_report",
]

NOTEBOOK = "07-subscriptions.ipynb"
LIFESPAN_RULE = "1 / churn, churn = 1 - retention of the last observed period (t-1 to t)"
FORMULA, ACTUAL = "formula", "actual"


def fader_hardie_2007() -> pd.DataFrame:
    """Customers still subscribed, of 1,000 acquired, years 0-12: the "regular" and "high
    end" cohorts of Fader & Hardie (2007) [1]_, Table 1 (their percentages times 10).

    The paper fits years 0-7 and projects 8-12 (sBG: regular alpha 0.704, beta 1.182;
    high end alpha 0.668, beta 3.806).
    """
    return pd.DataFrame(
        {
            "regular": [1000, 631, 468, 382, 326, 289, 262, 241, 223, 207, 194, 183, 173],
            "highend": [1000, 869, 743, 653, 593, 551, 517, 491, 468, 445, 427, 409, 394],
        },
        index=pd.RangeIndex(13, name="year"),
    )


# ---- a subscription log ---------------------------------------------------------------
def _dates(log: pd.DataFrame, col: str, allow_missing: bool) -> pd.Series:
    if col not in log.columns:
        raise DataError(col, "column not found in the subscription log", len(log))
    raw = log[col]
    values = pd.to_datetime(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():
        raise DataError(col, "must be dates", int(bad.sum()))
    if not allow_missing and values.isna().any():
        raise DataError(col, "must not be missing", int(values.isna().sum()))
    return values


def _months_between(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Whole months m with a + m months <= b, and whether a + m months == b (same day of
    the month; b >= a)."""
    m = (b.dt.year - a.dt.year) * 12 + (b.dt.month - a.dt.month)
    m = m - (b.dt.day < a.dt.day).astype(int)
    exact = (b.dt.day == a.dt.day).to_numpy()
    return m.to_numpy(dtype=np.int64), exact


def subscription_summary(
    log: pd.DataFrame,
    *,
    customer: str = "customer_id",
    start: str = "start",
    end: str = "end",
    observation_end: object = None,
    period_months: int = 1,
) -> pd.DataFrame:
    """The per-customer frame of the contractual models from a subscription log.

    Parameters
    ----------
    log : DataFrame
        One row per customer: ``start`` (first day of the first paid period) and ``end``
        (first day without service; empty while the subscription runs).
    customer, start, end : str
        Column names.
    observation_end : date-like, optional
        Last day of observation (default: the latest start or end date in the log). An
        end after it counts as still active.
    period_months : int, default 1
        Length of a paid period in months (12: annual contracts). Periods start on the
        same day of the month as the subscription.

    Returns
    -------
    DataFrame
        Indexed by customer: ``cohort`` (month of the start, ``"YYYY-MM"``), ``renewals``
        (renewals made), ``churned`` (cancelled by ``observation_end``) and
        ``opportunities`` (renewal decisions due by ``observation_end``). A customer who
        paid p periods and cancelled has ``renewals = p - 1``; an active customer in
        their p-th period has ``renewals = p - 1`` and ``churned = False``.

    Raises
    ------
    DataError
        Missing columns, non-dates, duplicate customers, ends before starts or starts
        after ``observation_end`` (the message names the column and the rows).
    """
    p = int(period_months)
    if p < 1 or p != period_months:
        raise ValueError(f"period_months must be a whole number >= 1, got {period_months!r}")
    if customer not in log.columns:
        raise DataError(customer, "column not found in the subscription log", len(log))
    dup = int(log[customer].duplicated().sum())
    if dup:
        raise DataError(customer, "must be unique: one subscription per customer", dup)
    s = _dates(log, start, allow_missing=False)
    e = _dates(log, end, allow_missing=True)
    early = int((e.notna() & (e <= s)).sum())
    if early:
        raise DataError(end, f"must be after {start!r} (a subscription pays at least one "
                        "period)", early)
    obs = (pd.Timestamp(observation_end) if observation_end is not None
           else max(s.max(), e.max() if e.notna().any() else s.max()))
    late = int((s > obs).sum())
    if late:
        raise DataError(start, f"must not be after observation_end {obs.date()}", late)
    obs_s = pd.Series(obs, index=s.index)
    m_obs, _ = _months_between(s, obs_s)
    churned = (e.notna() & (e <= obs)).to_numpy()
    paid_active = m_obs // p + 1
    m_end, exact = _months_between(s, e.where(e.notna() & (e <= obs), obs_s))
    paid_churned = np.where(exact, -(-m_end // p), m_end // p + 1)
    paid = np.where(churned, paid_churned, paid_active)
    return pd.DataFrame(
        {
            "cohort": s.dt.strftime("%Y-%m").to_numpy(),
            RENEWALS: (paid - 1).astype(np.int64),
            CHURNED: churned,
            "opportunities": (m_obs // p).astype(np.int64),
        },
        index=pd.Index(log[customer].to_numpy(), name=customer),
    )


def alive_table(customers: pd.DataFrame, cohort: str = "cohort") -> pd.DataFrame:
    """Customers still active at the start of periods 0, 1, ... per cohort.

    ``customers`` is a frame of :func:`subscription_summary`. A cohort's column runs up to
    the renewal opportunities observed for all its customers (the smallest
    ``opportunities`` of the cohort) and is NaN beyond: the cohort table
    :meth:`clvmodels.SBG.fit` takes.
    """
    for col in (cohort, RENEWALS, "opportunities"):
        if col not in customers.columns:
            raise DataError(col, "column not found (use subscription_summary)", len(customers))
    out = {}
    for label, group in customers.groupby(cohort, sort=True):
        age = int(group["opportunities"].min())
        k = group[RENEWALS].to_numpy()
        out[label] = pd.Series([float((k >= t).sum()) for t in range(age + 1)])
    table = pd.DataFrame(out)
    table.index.name = "period"
    return table


def read_retention(path: str | Path) -> pd.DataFrame:
    """A retention table from CSV: the first column is the period (0, 1, ...), every other
    column one cohort's customers still active (empty beyond its age)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"retention file not found: {path}")
    try:
        table = pd.read_csv(p, index_col=0)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(None, f"cannot read {path} as CSV: {exc}") from None
    if table.shape[1] == 0:
        raise DataError(None, f"{path}: needs a period column and at least one cohort column")
    return table


# ---- the analysts' formula ----------------------------------------------------------------
def formula_contractual(alive, *, margin: float = 1.0, discount_rate: float = 0.0) -> pd.DataFrame:
    r"""The analysts' subscription formula, per cohort: lifespan = 1 / churn.

    Retention is that of the last observed period, :math:`r = N_n / N_{n-1}`; churn is
    :math:`1 - r` and the lifespan :math:`1/(1 - r)` periods: the expected lifetime under
    a retention rate that stays at r for ever (Gupta & Lehmann 2003, eq. 2; Farris et al.
    2010, section 5.3). The value of a customer is ``margin * lifespan`` (undiscounted, as
    analysts use it) and, with a discount rate d, the discounted sum
    :math:`m \sum_{t \ge 0} r^t/(1+d)^t = m (1+d)/(1+d-r)`. The formula gives every
    customer the same residual value whatever their tenure:
    :math:`m\,r(1+d)/(1+d-r)` (its DERL).

    Returns a DataFrame indexed by cohort: retention, churn, lifespan, clv,
    clv_discounted, residual_value (margin x the formula's DERL) and lifespan_rule (the
    rule stated in words).
    """
    table = _as_table(alive)
    d = float(discount_rate)
    rows = {}
    for col in table.columns:
        s = table[col].dropna()
        if len(s) < 2:
            raise DataError(str(col), "needs at least two periods for a retention rate", len(s))
        if s.iloc[-2] <= 0:
            raise DataError(str(col), f"no customers left in period {len(s) - 2}, so the "
                            f"retention rate of period {len(s) - 1} is undefined; end the "
                            "calibration (or the observation) earlier", 1)
        r = float(s.iloc[-1] / s.iloc[-2])
        with np.errstate(divide="ignore"):
            lifespan = 1.0 / (1.0 - r) if r < 1 else np.inf
            rows[col] = {
                "retention": r,
                "churn": 1.0 - r,
                "lifespan": lifespan,
                "clv": margin * lifespan,
                "clv_discounted": margin * (1 + d) / (1 + d - r) if d > 0 or r < 1 else np.inf,
                "residual_value": margin * r * (1 + d) / (1 + d - r) if d > 0 or r < 1
                else np.inf,
                "lifespan_rule": LIFESPAN_RULE,
            }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "cohort"
    return out


def _as_table(alive) -> pd.DataFrame:
    if isinstance(alive, pd.DataFrame):
        return alive
    s = alive if isinstance(alive, pd.Series) else pd.Series(np.asarray(alive, dtype=float))
    return s.to_frame(s.name if s.name is not None else "cohort")


# ---- the formula vs the models on a holdout ---------------------------------------------------
@dataclass
class RetentionComparison:
    """Result of :func:`retention_holdout` for one cohort (all tables indexed by period)."""

    survivors: pd.DataFrame  # actual and projected customers active, periods 0..N
    retention: pd.DataFrame  # actual and projected retention rates, periods 1..N
    errors: pd.DataFrame  # per method: errors of the survivors in the holdout periods
    value: pd.DataFrame  # value of an active customer by renewals made (margin x DERL)
    params: pd.DataFrame  # estimates and standard errors of the models
    lr_test: pd.Series  # BdW against sBG
    calibration_periods: int
    models: dict = field(default_factory=dict)


def retention_holdout(
    alive: pd.Series,
    *,
    calibration_periods: int,
    margin: float = 1.0,
    discount_rate: float = 0.1,
    max_tenure: int | None = None,
) -> RetentionComparison:
    """Fit the sBG and the BdW on periods 0..``calibration_periods`` of one cohort and
    compare them with the formula on the later periods.

    Parameters
    ----------
    alive : Series
        Customers active at the start of periods 0..N (N > ``calibration_periods`` for a
        holdout; equal for projections only).
    calibration_periods : int
        Last period of the fit (the formula uses the retention from the period before it).
    margin : float
        Margin per customer and period (value = margin x DERL).
    discount_rate : float
        Per period.
    max_tenure : int, optional
        Renewals shown in the value table (default N).

    Returns
    -------
    RetentionComparison
        ``survivors`` (actual, sBG, BdW, formula, and ``holdout`` flags), ``retention``,
        ``errors`` (mean absolute and mean absolute percentage error of the survivors,
        and the error in the last period, per method), ``value`` (margin x DERL of a
        customer with k renewals, per method), ``params`` and ``lr_test``.
    """
    s = pd.to_numeric(alive.dropna(), errors="coerce").astype(float).reset_index(drop=True)
    n_cal = int(calibration_periods)
    if not 1 <= n_cal < len(s):
        raise ValueError(f"calibration_periods must be between 1 and {len(s) - 1}, got "
                         f"{calibration_periods!r}")
    cal = s.iloc[: n_cal + 1]
    sbg, bdw = SBG().fit(cal), BDW().fit(cal)
    periods = np.arange(len(s))
    size = float(s.iloc[0])
    form = formula_contractual(cal, margin=margin, discount_rate=discount_rate).iloc[0]
    r = form["retention"]
    formula_alive = np.where(periods <= n_cal, s.to_numpy(),
                             cal.iloc[-1] * r ** (periods - n_cal))
    survivors = pd.DataFrame(
        {
            ACTUAL: s.to_numpy(),
            "sBG": sbg.projected_alive(size, periods),
            "BdW": bdw.projected_alive(size, periods),
            FORMULA: formula_alive,
            "holdout": periods > n_cal,
        },
        index=pd.Index(periods, name="period"),
    )
    t = periods[1:]
    retention = pd.DataFrame(
        {
            ACTUAL: s.to_numpy()[1:] / np.where(s.to_numpy()[:-1] > 0, s.to_numpy()[:-1], np.nan),
            "sBG": sbg.retention_rate(t),
            "BdW": bdw.retention_rate(t),
            FORMULA: np.where(t <= n_cal, s.to_numpy()[1:] / s.to_numpy()[:-1], r),
            "holdout": t > n_cal,
        },
        index=pd.Index(t, name="period"),
    )
    hold = survivors[survivors["holdout"]]
    errors = {}
    for method in ("sBG", "BdW", FORMULA):
        if hold.empty:
            break
        diff = hold[method] - hold[ACTUAL]
        errors[method] = {
            "mean_abs_error": float(diff.abs().mean()),
            "mape_pct": float((diff.abs() / hold[ACTUAL]).mean() * 100),
            "last_period_error_pct": float(diff.iloc[-1] / hold[ACTUAL].iloc[-1] * 100),
        }
    tenure = np.arange((len(s) - 1 if max_tenure is None else int(max_tenure)) + 1)
    value = pd.DataFrame(
        {
            "sBG": margin * np.atleast_1d(sbg.derl(discount_rate, tenure)),
            "BdW": margin * np.atleast_1d(bdw.derl(discount_rate, tenure)),
            FORMULA: np.full(tenure.size, form["residual_value"]),
        },
        index=pd.Index(tenure, name="renewals"),
    )
    params = pd.concat(
        {name: m.summary()[["estimate", "se"]] for name, m in (("sBG", sbg), ("BdW", bdw))}
    )
    return RetentionComparison(
        survivors=survivors,
        retention=retention,
        errors=pd.DataFrame(errors).T,
        value=value,
        params=params,
        lr_test=likelihood_ratio_test(sbg, bdw),
        calibration_periods=n_cal,
        models={"sBG": sbg, "BdW": bdw},
    )


# ---- figures ----------------------------------------------------------------------------
_COLOURS = {ACTUAL: "black", "sBG": "C0", "BdW": "C2", FORMULA: "C3"}


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    return ax


def _holdout_line(ax, comparison: RetentionComparison):
    ax.axvline(comparison.calibration_periods + 0.5, color="grey", ls=":", lw=1)
    ax.text(comparison.calibration_periods + 0.6, 0.98, "holdout", va="top", color="grey",
            fontsize=9, transform=ax.get_xaxis_transform())


def _plot_methods(tab: pd.DataFrame, comparison: RetentionComparison, ax, **labels):
    """Actual (dots) and each method (lines) of one of the comparison's tables."""
    ax = _axes(ax)
    ax.plot(tab.index, tab[ACTUAL], "o", color=_COLOURS[ACTUAL], label="actual")
    for method in ("sBG", "BdW", FORMULA):
        ax.plot(tab.index, tab[method], "-", color=_COLOURS[method], label=method)
    _holdout_line(ax, comparison)
    ax.set(**labels)
    ax.legend(frameon=False)
    return ax


def plot_retention_curves(comparison: RetentionComparison, *, ax=None, title: str = ""):
    """Customers still active by period: actual (dots) and the projections (lines), with
    the end of the calibration period marked."""
    return _plot_methods(comparison.survivors, comparison, ax, xlabel="period",
                         ylabel="customers still active", title=title)


def plot_retention_rates(comparison: RetentionComparison, *, ax=None, title: str = ""):
    """Retention rate by tenure: actual and each method's (the formula's is flat after the
    calibration period; the models' rise with tenure)."""
    return _plot_methods(comparison.retention, comparison, ax,
                         xlabel="period (renewal opportunity)", ylabel="retention rate",
                         title=title)


def plot_value_by_tenure(comparison: RetentionComparison, *, ax=None, title: str = ""):
    """Value of an active customer by renewals made (margin x DERL) for each method."""
    ax = _axes(ax)
    tab = comparison.value
    for method in ("sBG", "BdW", FORMULA):
        ax.plot(tab.index, tab[method], "-o", ms=3, color=_COLOURS[method], label=method)
    ax.set(xlabel="renewals made", ylabel="expected residual value per customer", title=title)
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False)
    return ax


# ---- the report ---------------------------------------------------------------------------------
def run_contractual_report(
    retention: str | Path | None = None,
    *,
    out: str | Path = "report.html",
    calibration_periods: int | None = None,
    margin: float = 100.0,
    discount_rate: float = 0.1,
    customer: str = "customer_id",
    start: str = "start",
    end: str = "end",
    period_months: int = 12,
    observation_end: object = None,
    bayes: bool = True,
    draws: int | None = None,
    tune: int | None = None,
    chains: int | None = None,
    seed: int = 0,
    show_code: bool = False,
    progress: bool = True,
    keep_notebook: str | Path | None = None,
    log=None,
) -> dict:
    """The contractual report: the ``07-subscriptions`` notebook run on a retention table
    or a subscription log, written as one self-contained HTML file (the machinery of
    :func:`clvmodels.report.run_report`).

    Parameters
    ----------
    retention : path, optional
        CSV retention table (:func:`read_retention`) or a subscription log (columns
        ``customer``, ``start``, ``end``: :func:`subscription_summary`); default: the
        published cohorts of Fader & Hardie (2007).
    calibration_periods : int, optional
        Last period of the fit; default: about 60% of the shortest cohort's periods.
    margin, discount_rate : float
        Value per customer and period, discount rate per period.
    period_months : int
        Length of a paid period of a subscription log, in months (default 12).
    observation_end : date-like, optional
        Last day of observation of a subscription log (default: its latest date).
    bayes : bool
        Fit the Bayesian cohort model (uncertainty of the projections).
    draws, tune, chains : int, optional
        Its sampling settings (the notebook's defaults when None).
    seed : int
        Random seed.

    Returns
    -------
    dict
        The report's key numbers (the notebook's last cell) plus ``"html"`` and
        ``"seconds"``.
    """
    from . import report

    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    table = load_retention_input(retention, customer=customer, start=start, end=end,
                                 period_months=period_months, observation_end=observation_end)
    say(f"[1/3] checking {retention or 'Fader & Hardie (2007), two cohorts'}: "
        f"{table.shape[1]} cohort(s), up to {len(table) - 1} periods")
    calibration = default_calibration(table) if calibration_periods is None else int(
        calibration_periods)
    shortest = int(table.notna().sum().min()) - 1
    if not 1 <= calibration < shortest:
        raise DataError(None, f"calibration_periods (--calibration-periods) must be between 1 "
                        f"and {shortest - 1}: the shortest cohort has {shortest} periods after "
                        f"period 0 and at least one is held out; got {calibration}")
    retention_rows(table)  # the counts (bad input is reported here, not in the notebook)
    formula_contractual(table.iloc[: calibration + 1])  # customers left to compute a retention
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    params = {
        "retention": None if retention is None else str(Path(retention).resolve()),
        "calibration_periods": calibration,
        "margin": float(margin),
        "discount_rate": float(discount_rate),
        "customer": customer,
        "start": start,
        "end": end,
        "period_months": int(period_months),
        "observation_end": None if observation_end is None else str(observation_end),
        "bayes": bool(bayes),
        "seed": int(seed),
    }
    params.update(report.sampling_params(draws=draws, tune=tune, chains=chains))
    summary = report.render_notebook(NOTEBOOK, params, out, show_code=show_code,
                                     progress=progress, keep_notebook=keep_notebook, say=say)
    summary.update({"html": str(out), "seconds": time.perf_counter() - t0})
    return summary


def load_retention_input(retention=None, *, customer="customer_id", start="start", end="end",
                         period_months: int = 12, observation_end=None) -> pd.DataFrame:
    """The cohort table of the report's input: the published cohorts (None), a
    subscription log (a CSV with the ``customer``, ``start`` and ``end`` columns) or a
    retention table (:func:`read_retention`)."""
    if retention is None:
        return fader_hardie_2007()
    path = Path(retention)
    if not path.is_file():
        raise FileNotFoundError(f"retention file not found: {retention}")
    head = pd.read_csv(path, nrows=0)
    if {customer, start, end} <= set(head.columns):
        log = pd.read_csv(path, dtype={customer: str})
        summary = subscription_summary(log, customer=customer, start=start, end=end,
                                       period_months=period_months,
                                       observation_end=observation_end)
        return alive_table(summary)
    return read_retention(path)


def default_calibration(table: pd.DataFrame) -> int:
    """About 60% of the shortest cohort's periods (at least 2 and a holdout of one)."""
    shortest = int(table.notna().sum().min()) - 1
    return max(min(int(round(0.6 * shortest)), shortest - 1), min(2, shortest))



# ---- the command line (wired into ``clvmodels report`` by clvmodels.cli) -------------------
def is_subscription_log(path, *, customer="customer_id", start="start", end="end") -> bool:
    """Whether a CSV file has the columns of a subscription log (header only is read)."""
    p = Path(path) if path is not None else None
    if p is None or not p.is_file() or p.suffix.lower() in {".parquet", ".pq"}:
        return False
    try:
        head = pd.read_csv(p, nrows=0)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return False
    return {customer, start, end} <= set(head.columns)


def add_report_arguments(parser) -> None:
    """The ``clvmodels report`` flags of the contractual report."""
    g = parser.add_argument_group(
        "contractual report (--contractual, or a --transactions file with the columns of a "
        "subscription log: --customer, --start, --end)")
    g.add_argument("--contractual", action="store_true",
                   help="subscriptions: --transactions is a retention table (CSV: period, one "
                   "column per cohort) or a subscription log (default: Fader & Hardie 2007)")
    g.add_argument("--start", default="start", metavar="COL",
                   help="subscription start column (default: start)")
    g.add_argument("--end", default="end", metavar="COL",
                   help="subscription end column, empty while active (default: end)")
    g.add_argument("--period-months", type=int, default=12, metavar="N",
                   help="length of a paid period in months (default: 12)")
    g.add_argument("--calibration-periods", type=int, default=None, metavar="N",
                   help="last period of the fit (default: about 60%% of the shortest cohort)")
    g.add_argument("--margin", type=float, default=100.0,
                   help="margin per customer and period (default: 100)")
    g.add_argument("--discount-rate", type=float, default=0.1,
                   help="discount rate per period (default: 0.1)")


def wants_contractual_report(args) -> bool:
    """``--contractual``, or a transactions file that is a subscription log."""
    return bool(args.contractual) or is_subscription_log(
        args.transactions, customer=args.customer, start=args.start, end=args.end)


def cli_report(args) -> int:
    """``clvmodels report --contractual``: run the report and print its key numbers."""
    draws, tune, chains = args.draws, args.tune, args.chains
    if args.fast:
        draws, tune, chains = draws or 100, tune or 100, chains or 2
    try:
        s = run_contractual_report(
            args.transactions, out=args.out, calibration_periods=args.calibration_periods,
            margin=args.margin, discount_rate=args.discount_rate, customer=args.customer,
            start=args.start, end=args.end, period_months=args.period_months,
            observation_end=args.observation_end, bayes=not args.no_bayes, draws=draws,
            tune=tune, chains=chains, seed=args.seed,
            show_code=args.show_code, progress=not args.no_progress,
            keep_notebook=args.keep_notebook)
    except RuntimeError as exc:
        print(f"clvmodels: report failed: {exc}", file=sys.stderr)
        return 1
    print(f"Report written to {s['html']} in {s['seconds']:.0f} s")
    print(f"\nFitted on periods 0-{s['calibration_periods']}, holdout to period {s['periods']}:"
          " mean absolute error of the customers still active")
    for cohort, errors in s["errors"].items():
        row = ", ".join(f"{m} {v:.1f}%" for m, v in errors.items())
        print(f"  {cohort}: {row}")
    for line in s["conclusions"]:
        print(f"- {line.replace('**', '')}")
    for line in s["notes"]:
        print(f"note: {line}")
    return 0
