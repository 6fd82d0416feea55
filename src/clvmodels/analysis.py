"""The report's analysis as one function: :func:`analyze` a :class:`~clvmodels.TransactionLog`.

:func:`analyze` computes everything the HTML report shows (``clvmodels report`` runs the
``04-report`` notebook, which only displays the :class:`Analysis` it returns): the data
quality, the calibration/holdout split, the RFM frames, the formula, the holdout test of
the formula and the models, the segment-by-segment comparison and the forecast.
``clvmodels summary`` and ``clvmodels report`` read the log the same way
(:func:`open_log`) and state the same customers, transactions and revenue
(:attr:`TransactionLog.quality <clvmodels.log.Quality>`).

The steps are plain functions (:func:`choose_split`, :func:`pooled_segments`, ...), each
usable on its own; :func:`analyze` calls them in order.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import pandas as pd

from ._aggregate import customer_segments
from .errors import ConvergenceError, DataError, DataWarning, StatisticalWarning, option
from .log import TransactionLog, _iso, as_log

__all__ = [
    "MIN_CUSTOMERS",
    "MIN_REPEAT_BUYERS",
    "MIN_SEGMENT_CUSTOMERS",
    "Analysis",
    "Split",
    "analyze",
    "choose_split",
    "open_log",
    "pooled_segments",
]

MIN_CUSTOMERS = 50  # customers in the calibration cohort
MIN_REPEAT_BUYERS = 10  # of them with a repeat purchase in the calibration period
MIN_SEGMENT_CUSTOMERS = 30  # smaller segments are pooled into "other" for per-segment fits
OTHER = "other"
CDNOW = "the CDNOW master data set (music CD purchases, Fader, Hardie & Lee 2005)"


def open_log(
    transactions: str | None = None,
    *,
    customer: str = "customer_id",
    date: str = "date",
    amount: str = "amount",
    segment: str | None = None,
    observation_end: object = None,
    **read_kw,
) -> TransactionLog:
    """The log of ``summary`` and ``report``: a file through
    :func:`~clvmodels.read_transactions` (keywords `read_kw`: sep, decimal, date_format,
    timezone, duplicates, allow_returns, engine), or the CDNOW master when None."""
    if transactions is None:
        from .datasets import cdnow_transactions

        rules_kw = {k: v for k, v in read_kw.items()
                    if k in ("timezone", "duplicates", "allow_returns")}  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)  # counted in log.quality
            log = TransactionLog(cdnow_transactions(), "customer_id", "date", "amount",
                                 observation_end=observation_end, **rules_kw)  # fmt: skip
        log.source = CDNOW
        return log
    from .reader import read_transactions

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # counted in log.quality
        return read_transactions(transactions, customer, date, amount, segment,
                                 observation_end=observation_end, **read_kw)  # fmt: skip


@dataclass(frozen=True)
class Split:
    """The calibration/holdout split of a log (see :func:`choose_split`)."""

    calibration_end: pd.Timestamp
    chosen: bool
    first_day: pd.Timestamp
    end: pd.Timestamp
    customers: int
    repeat_buyers: int
    holdout_weeks: float

    @property
    def holdout_start(self) -> pd.Timestamp:
        return self.calibration_end + pd.Timedelta(days=1)


def default_calibration_end(
    log: object,
    *,
    customer: str | None = None,
    date: str | None = None,
    observation_end: object = None,
) -> pd.Timestamp:
    """Default end of the calibration period: the middle of the data, holdout <= 1 year.

    The window from the first transaction day to `observation_end` (default: the last
    transaction day) is split in half, the holdout at most 365 days long. On CDNOW
    (1997-01-01 to 1998-06-30) this is 1997-09-30, the split of the papers. `log` is a
    :class:`~clvmodels.TransactionLog` or a frame with `customer` and `date` columns.
    """
    log = as_log(log, customer, date, observation_end=observation_end)
    w = log.window(observation_end)
    start, end = w.first_day, w.end_day
    holdout = min((end - start + 1) // 2, 365)  # days after the calibration end
    if holdout < 1:
        rule = "all transactions are on one day: no holdout period possible"
        raise DataError(log.date, rule, w.n_rows())
    return pd.Timestamp(_iso(end - holdout))


def choose_split(
    log: TransactionLog, calibration_end: object = None, observation_end: object = None
) -> Split:
    """The calibration end (given, or :func:`default_calibration_end`) and the cohort's
    sizes; a :class:`DataError` when there is too little data for the report (fewer than
    :data:`MIN_CUSTOMERS` customers in the calibration cohort or fewer than
    :data:`MIN_REPEAT_BUYERS` of them with a repeat purchase)."""
    from .rfm import calibration_holdout

    chosen = calibration_end is None
    if chosen:
        calibration_end = default_calibration_end(log, observation_end=observation_end)
    cal = calibration_holdout(log, calibration_end=calibration_end,
                              observation_end=observation_end, unit="W")  # fmt: skip
    end = pd.Timestamp(calibration_end).normalize() + pd.Timedelta(
        days=7 * float(cal["duration_holdout"].iloc[0]))  # fmt: skip
    n, repeat = len(cal), int((cal["frequency"] > 0).sum())
    if n < MIN_CUSTOMERS or repeat < MIN_REPEAT_BUYERS:
        raise DataError(
            None,
            f"too little data: {n} customers in the calibration period (up to "
            f"{pd.Timestamp(calibration_end).date()}), {repeat} of them with a repeat "
            f"purchase; the report needs at least {MIN_CUSTOMERS} customers and "
            f"{MIN_REPEAT_BUYERS} repeat buyers",
            hint=f"A later {option('calibration_end')} gives a longer calibration period",
        )
    return Split(
        calibration_end=pd.Timestamp(calibration_end).normalize(),
        chosen=chosen,
        first_day=pd.Timestamp(log.window(observation_end).first_day, unit="D"),
        end=end,
        customers=n,
        repeat_buyers=repeat,
        holdout_weeks=float(cal["duration_holdout"].iloc[0]),
    )


def pooled_segments(
    segment_of: pd.Series, members: pd.Index, min_customers: int = MIN_SEGMENT_CUSTOMERS
) -> tuple[pd.Series, list]:
    """Segments with fewer than `min_customers` of `members` pooled into "other".

    Per-segment fits on a handful of customers are noise (and mostly warnings), so the
    report fits segments of at least `min_customers` (default
    :data:`MIN_SEGMENT_CUSTOMERS` = 30) calibration customers and one pooled "other"
    (which may itself be small; the report lists what it holds). When every segment is
    small they all become "other", one segment; a one-valued column is one segment.

    Returns the new per-customer segments (labels as text, a new Series) and the sorted
    labels that were pooled.
    """
    labels = segment_of.astype(str)
    counts = labels.reindex(members).value_counts()
    small = sorted(counts.index[counts < min_customers])
    if len(small) and len(small) < len(counts):
        labels = labels.where(~labels.isin(small), OTHER)
    elif len(small) == len(counts) and len(counts) > 1:  # every segment is small: one pool
        labels = pd.Series(OTHER, index=labels.index, name=labels.name)
    else:
        small = []
    return labels.rename(segment_of.name), small


@dataclass
class Analysis:
    """Everything the report shows, computed by :func:`analyze` (display: the notebook).

    Attributes hold the inputs of each section of the report: ``quality`` (the data
    quality table), ``split``, ``rfm`` and ``cal`` (RFM frames, whole history and
    calibration/holdout, with a ``segment`` column), ``overview`` (profile per segment),
    ``formula``/``formula_all`` and ``lifespan_note``, ``methods`` (name -> fitted
    method), ``results`` (holdout metrics, :func:`clvmodels.compare`), ``best`` (the most
    accurate model per customer), ``by_segment`` and ``estimates`` (segment by segment),
    the refitted models and ``forecast`` (next ``horizon_weeks``), ``clv`` (and
    ``clv_post`` with the Bayesian models), ``top`` (most valuable customers), ``notes``
    (statistical warnings of the fits, in words), ``skipped`` (models not fitted and why)
    and ``conclusions``. :meth:`summary` gives the key numbers as JSON-ready values.
    """

    log: TransactionLog
    source: str
    split: Split
    segment_name: str
    segment_of: pd.Series
    pooled: list
    rfm: pd.DataFrame
    cal: pd.DataFrame
    totals: dict
    overview: pd.DataFrame
    formula: pd.DataFrame
    formula_all: pd.DataFrame
    lifespan_note: str
    methods: dict
    results: pd.DataFrame
    best: str
    by_segment: pd.DataFrame
    estimates: pd.DataFrame | None
    bg: object
    pnbd: object
    bg_all: object
    gg_all: object
    clv: pd.Series
    clv_post: pd.DataFrame | None
    forecast: pd.DataFrame
    top: pd.DataFrame
    horizon_weeks: float
    notes: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    forecast_notes: list = field(default_factory=list)
    conclusions: list = field(default_factory=list)

    @property
    def quality(self):
        """The log's data quality (:class:`clvmodels.log.Quality`)."""
        return self.log.quality

    @property
    def top_share(self) -> float:
        """Share of the expected value held by the top 10% of customers."""
        clv = self.top["CLV"]
        return float(clv.head(max(1, len(clv) // 10)).sum() / clv.sum())

    @property
    def dormant_share(self) -> float:
        """Share of customers probably gone: P(alive) below 20%."""
        return float((self.top["P(alive)"] < 0.2).mean())

    def summary(self) -> dict:
        """The key numbers (what ``clvmodels report`` prints), JSON-ready."""
        actual = self.results.loc["actual"]
        metrics = ("purchases_predicted", "purchases_error_pct", "revenue_predicted",
                   "revenue_error_pct", "revenue_mae", "top20_revenue_share")  # fmt: skip
        q = self.quality
        return {
            "data": {"customers": q.customers, "transactions": q.transactions,
                     "revenue": q.revenue, "quality": q.lines()},  # fmt: skip
            "customers": int(len(self.cal)),
            "holdout_start": f"{self.split.holdout_start:%Y-%m-%d}",
            "holdout_end": f"{self.split.end:%Y-%m-%d}",
            "holdout_weeks": self.split.holdout_weeks,
            "actual": {"purchases": float(actual["purchases_actual"]),
                       "revenue": float(actual["revenue_actual"])},  # fmt: skip
            "holdout": {
                name: {k: (None if pd.isna(row[k]) else float(row[k])) for k in metrics}
                for name, row in self.results.drop(index="actual").iterrows()
            },
            "best_method": self.best,
            "forecast": {"horizon_weeks": self.horizon_weeks,
                         "formula": float(self.forecast.loc["total", "formula"]),
                         "model": float(self.forecast.loc["total", "model"])},  # fmt: skip
            "conclusions": list(self.conclusions),
            "notes": list(self.skipped) + [f"segments pooled into '{OTHER}': {self.pooled}"]
            * bool(self.pooled),
        }


ASSUMED_LIFESPAN = 3.0  # years, where the data cannot tell (less than two years of history)


def formula_tables(
    log: TransactionLog, segment: object = None, observation_end: object = None,
    lifespan: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, str]:  # fmt: skip
    """The formula per segment and overall, and how the lifespan was set.

    The lifespan is `lifespan` if given, else estimated (1 / annual churn rate), else,
    when the history is too short to estimate it, :data:`ASSUMED_LIFESPAN` years, said so
    in the note. ``clvmodels summary`` and the report both use this.
    """
    from .formula import formula_clv

    kw = dict(observation_end=observation_end, lifespan=lifespan)
    try:
        tables = formula_clv(log, segment=segment, **kw), formula_clv(log, **kw)
        note = ("given" if lifespan is not None
                else "estimated from the data (1 / annual churn rate)")  # fmt: skip
    except DataError as err:
        if lifespan is not None or "lifespan" not in str(err):
            raise
        kw["lifespan"] = ASSUMED_LIFESPAN
        tables = formula_clv(log, segment=segment, **kw), formula_clv(log, **kw)
        note = (f"assumed to be {ASSUMED_LIFESPAN:g} years: it cannot be estimated from "
                f"these data ({err})")  # fmt: skip
    return tables[0], tables[1], note


def _statistical_notes(caught) -> list[str]:
    """Statistical warnings of the fits become notes; other warnings are raised again."""
    for w in caught:
        if not issubclass(w.category, StatisticalWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return [str(w.message) for w in caught if issubclass(w.category, StatisticalWarning)]


def _profile(g: pd.DataFrame) -> pd.Series:
    repeat = g["frequency"] > 0
    return pd.Series({"customers": len(g), "share who came back": repeat.mean(),
                      "repeat purchases / customer": g["frequency"].mean(),
                      "value / repeat purchase": g.loc[repeat, "monetary_value"].mean(),
                      "weeks since last purchase": (g["T"] - g["recency"]).mean()})  # fmt: skip


def _fit_separate(cal: pd.DataFrame, gg) -> dict:
    """One BG/NBD per segment (penalised when the plain fit does not converge)."""
    from .models import BGNBD

    out = {}
    for name, part in cal.groupby("segment"):
        try:
            out[name] = (BGNBD().fit(part), gg)
        except (ConvergenceError, ValueError):
            out[name] = (BGNBD(penalizer=0.1).fit(part), gg)
    return out


def analyze(
    log: TransactionLog,
    *,
    calibration_end: object = None,
    observation_end: object = None,
    segment: str | None = None,
    horizon_weeks: float = 52,
    annual_discount_rate: float = 0.10,
    bayes: bool = True,
    hierarchical: bool | None = None,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    seed: int = 0,
    min_segment_customers: int = MIN_SEGMENT_CUSTOMERS,
) -> Analysis:
    """The report's analysis of a transaction log: the formula versus the models.

    Parameters
    ----------
    log : TransactionLog
        The log (e.g. from :func:`open_log` or :func:`~clvmodels.read_transactions`).
    calibration_end, observation_end : date-like, optional
        The split (default: :func:`default_calibration_end`) and the end of the data.
    segment : str, optional
        Segment column of the log (default: the log's own, else the acquisition cohort).
        Segments with fewer than `min_segment_customers` customers in the calibration
        cohort are pooled into "other" (:func:`pooled_segments`).
    horizon_weeks, annual_discount_rate : float
        The forecast's horizon and discount rate (applied monthly).
    bayes, hierarchical, draws, tune, chains, seed
        The Bayesian models: fitted at all; the hierarchical segment model (default:
        up to 30,000 calibration customers and at least two segments); sampling settings.

    Returns
    -------
    Analysis
    """
    from .clv import customer_lifetime_value
    from .compare import (
        acquisition_cohorts,
        compare,
        formula_holdout,
        naive_holdout,
        segment_estimates,
    )
    from .models import BGNBD, GammaGamma, ParetoNBD
    from .rfm import calibration_holdout, rfm_summary

    split = choose_split(log, calibration_end, observation_end)
    segment = segment or log.segment
    if segment is None:
        segment_name = "acquisition cohort"
        raw = acquisition_cohorts(log, before=split.calibration_end)
    else:
        segment_name = segment
        raw = customer_segments(log, log.customer, segment)
    rfm = rfm_summary(log, observation_end=observation_end, unit="W")
    cal = calibration_holdout(log, calibration_end=split.calibration_end,
                              observation_end=observation_end, unit="W")  # fmt: skip
    segment_of, pooled = pooled_segments(raw.rename("segment"), cal.index, min_segment_customers)
    rfm["segment"] = segment_of.reindex(rfm.index)
    cal["segment"] = segment_of.reindex(cal.index)
    n_rows, revenue = log.window(observation_end).totals()
    totals = {"transactions": n_rows, "revenue": revenue}  # inside the window
    overview = pd.DataFrame({s: _profile(g) for s, g in rfm.groupby("segment")}).T
    overview.loc["all"] = _profile(rfm)

    formula, formula_all, lifespan_note = formula_tables(log, segment_of, observation_end)

    # the holdout test
    spend_rows = cal[(cal["frequency"] == 0) | (cal["monetary_value"] > 0)]
    skipped: list[str] = []
    n_segments = cal["segment"].nunique()
    if n_segments < 2:
        skipped.append(f"One segment only ({segment_name}): the per-segment and "
                       "hierarchical fits are the overall ones, not shown twice.")  # fmt: skip
    if pooled:
        skipped.append(f"Segments with fewer than {min_segment_customers} customers in the "
                       f"calibration period are pooled into '{OTHER}': "
                       f"{', '.join(map(str, pooled))}.")  # fmt: skip
    fit = dict(draws=draws, tune=tune, chains=chains, random_seed=seed, progressbar=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StatisticalWarning)
        bg = BGNBD().fit(cal)
        pnbd = ParetoNBD().fit(cal)
        gg = GammaGamma().fit(spend_rows)
        kw_hold = dict(calibration_end=split.calibration_end)
        methods = {"formula (overall)": formula_holdout(log, cal, **kw_hold)}
        if n_segments > 1:
            methods["formula (per segment)"] = formula_holdout(log, cal, **kw_hold,
                                                                   segment="segment")  # fmt: skip
        methods |= {"naive (own history)": naive_holdout(cal), "BG/NBD": (bg, gg),
                    "Pareto/NBD": (pnbd, gg)}  # fmt: skip
        if n_segments > 1:
            methods["BG/NBD per segment"] = _fit_separate(cal, gg)
        if bayes:
            from . import bayes as bayesian

            methods["Bayesian BG/NBD"] = (bayesian.BGNBD().fit(cal, **fit),
                                          bayesian.GammaGamma().fit(spend_rows, **fit))  # fmt: skip
            fit_h = (len(cal) <= 30_000) if hierarchical is None else hierarchical
            if n_segments < 2:
                pass
            elif fit_h:
                h_bg = bayesian.SegmentBGNBD(segment="segment").fit(cal, **fit)
                methods["hierarchical BG/NBD"] = (h_bg, gg)
            elif hierarchical is None:
                skipped.append(
                    f"The hierarchical BG/NBD was not fitted: with {len(cal):,} customers it "
                    "would take several minutes (`clvmodels report --hierarchical` fits it "
                    "anyway); notebook 03 shows it on CDNOW.")  # fmt: skip
            else:
                skipped.append("The hierarchical BG/NBD was not fitted (hierarchical=False).")
    notes = _statistical_notes(caught)
    results = compare(cal, methods, segment="segment", by_segment=False)
    candidates = results.drop(index=[k for k in ("actual", "formula (overall)",
                              "formula (per segment)", "naive (own history)")
                              if k in results.index])  # fmt: skip
    best = str(candidates["revenue_mae"].idxmin())
    by_segment = compare(cal, methods, segment="segment", reference=False)
    forest = {k: methods[k] for k in ("formula (per segment)", "BG/NBD per segment",
                                      "hierarchical BG/NBD") if k in methods}  # fmt: skip
    estimates = segment_estimates(cal, forest, "segment") if forest else None

    # the next months, refitted on the whole history
    monthly = (1 + annual_discount_rate) ** (1 / 12) - 1
    horizon = float(horizon_weeks)
    period = horizon / round(horizon / (52 / 12))
    spend_all = rfm[(rfm["frequency"] == 0) | (rfm["monetary_value"] > 0)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        bg_all = BGNBD().fit(rfm)
        gg_all = GammaGamma().fit(spend_all)
    clv = customer_lifetime_value(bg_all, gg_all, rfm, horizon=horizon, period=period,
                                  discount_rate=monthly)  # fmt: skip
    clv_post, forecast_notes = None, []
    if bayes:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", StatisticalWarning)
            b_bg_all = bayesian.BGNBD().fit(rfm, **fit)
            b_gg_all = bayesian.GammaGamma().fit(spend_all, **fit)
        forecast_notes = _statistical_notes(caught)
        clv_post = bayesian.customer_lifetime_value(
            b_bg_all, b_gg_all, rfm, horizon=horizon, period=period, discount_rate=monthly
        )
    formula_year = rfm["segment"].map(formula["customer_value"]) * horizon / 52
    forecast = pd.DataFrame({
        "customers": rfm.groupby("segment").size(),
        "formula": formula_year.groupby(rfm["segment"]).sum(),
        "model": clv.groupby(rfm["segment"]).sum(),
    })  # fmt: skip
    forecast.loc["total"] = forecast.sum()
    forecast["model / formula"] = forecast["model"] / forecast["formula"]
    p_alive = bg_all.probability_alive(rfm)
    top = pd.DataFrame({"segment": rfm["segment"], "repeat purchases": rfm["frequency"],
                        "weeks since last": rfm["T"] - rfm["recency"], "P(alive)": p_alive,
                        "expected purchases": bg_all.expected_purchases(horizon, rfm),
                        "CLV": clv})  # fmt: skip
    if clv_post is not None:
        top["CLV 94% low"] = clv_post["hdi_low"]
        top["CLV 94% high"] = clv_post["hdi_high"]
    top = top.sort_values("CLV", ascending=False)
    result = Analysis(
        log=log, source=getattr(log, "source", "the transaction log"), split=split,
        segment_name=segment_name, segment_of=segment_of, pooled=pooled, rfm=rfm, cal=cal,
        totals=totals, overview=overview, formula=formula, formula_all=formula_all,
        lifespan_note=lifespan_note, methods=methods, results=results, best=best,
        by_segment=by_segment, estimates=estimates, bg=bg, pnbd=pnbd, bg_all=bg_all,
        gg_all=gg_all, clv=clv, clv_post=clv_post, forecast=forecast, top=top,
        horizon_weeks=horizon_weeks, notes=notes, skipped=skipped,
        forecast_notes=forecast_notes,
    )  # fmt: skip
    result.conclusions = _conclusions(result)
    return result


def _money(x: float) -> str:
    return f"${x:,.0f}"


def _pct(x: float) -> str:
    return f"{x:+.0f}%"


def _conclusions(a: Analysis) -> list[str]:
    f_all, b = a.results.loc["formula (overall)"], a.results.loc[a.best]
    total = a.forecast.loc["total"]
    share10, dormant = a.top_share, a.dormant_share
    return [
        f"On the holdout the formula's revenue forecast was {_pct(f_all['revenue_error_pct'])} "
        f"off; {a.best} was {_pct(b['revenue_error_pct'])} off.",
        f"Per customer, {a.best} cut the mean absolute revenue error from "
        f"{_money(f_all['revenue_mae'])} to {_money(b['revenue_mae'])}.",
        f"Next {a.horizon_weeks:g} weeks: the formula expects {_money(total['formula'])}, "
        f"the model {_money(total['model'])} ({total['model / formula']:.2f} x).",
        f"The top 10% of customers hold {share10:.0%} of the expected value; "
        f"{dormant:.0%} of customers are probably gone (P(alive) < 20%).",
    ]

