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

import contextlib
import functools
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._aggregate import customer_segments
from .compare import mae_difference
from .errors import (
    ConvergenceError,
    DataError,
    DataWarning,
    StatisticalWarning,
    cli_flags,
    option,
)
from .log import TransactionLog, _iso, as_log

__all__ = [
    "MIN_CUSTOMERS",
    "MIN_REPEAT_BUYERS",
    "MIN_SEGMENT_CUSTOMERS",
    "Analysis",
    "Recommendation",
    "Split",
    "acquisition_costs",
    "analyze",
    "channel_value",
    "check_costs",
    "choose_split",
    "cost_per_label",
    "open_log",
    "pooled_segments",
    "recommend",
    "regularity_finding",
]

MIN_CUSTOMERS = 50  # customers in the calibration cohort
MIN_REPEAT_BUYERS = 10  # of them with a repeat purchase in the calibration period
MIN_SEGMENT_CUSTOMERS = 30  # smaller segments are pooled into "other" for per-segment fits
OTHER = "other"
NOT_CONVERGED = "did not converge"
#: the rule that picks the recommended model (stated in the report; :func:`recommend`)
RECOMMENDATION_RULE = (
    "among the models that converged, the one with the lowest mean absolute error of each "
    "customer's holdout revenue (MAE / customer); a model whose MAE is higher by less than "
    "1.96 paired standard errors of the difference (not significantly worse at the 5% "
    "level) is tied with it, and of the tied models the one whose holdout revenue total "
    "is closest to the actual is recommended; the formula and the naive own-history "
    "method are benchmarks, not candidates"
)
#: a larger MAE by fewer paired standard errors than this is a tie (:func:`recommend`)
TIE_SE = 1.96
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
    the refitted models and ``forecast`` (next ``horizon_weeks``, by the ``recommended``
    model, chosen by :data:`RECOMMENDATION_RULE`), ``clv`` (and ``clv_post`` with the
    Bayesian models), ``top`` (most valuable customers), ``win_back`` (high past value,
    low P(alive)), ``clv_cac`` (value against acquisition cost per segment, when costs
    are given; ``cost_basis`` says what the costs are), ``channels`` (with a
    ``channel`` column: a new customer's value per channel from the covariate models,
    against its CAC; :func:`channel_value`), ``regularity`` (Wheat & Morrison's
    :class:`~clvmodels.regularity.RegularityEstimate`; the regular-buyer model
    MBG/CNBD-k is among ``methods`` as "MBG/CNBD-k (k = ...)"), ``formula_numbers``
    (the formula's three numbers reconciled),
    ``p_alive`` (P(alive) of one-time buyers by BG/NBD and MBG/NBD), ``unconverged``
    (method -> the fit's :class:`~clvmodels.bayes.convergence.Convergence`, marked
    "did not converge" in every table and left out of the recommendation), ``notes``
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
    recommended: str = ""
    unconverged: dict = field(default_factory=dict)
    formula_numbers: pd.DataFrame | None = None
    win_back: pd.DataFrame | None = None
    clv_cac: pd.DataFrame | None = None
    p_alive: pd.DataFrame | None = None
    deciles: pd.DataFrame | None = None
    predictions: pd.DataFrame | None = None
    regularity: object = None
    channels: pd.DataFrame | None = None
    channel: str | None = None
    recommendation: Recommendation | None = None
    range_model: str = "BG/NBD"
    cost_basis: str | None = None
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
    def interval_misses(self) -> pd.DataFrame:
        """Per method with intervals in :attr:`estimates`: segments whose interval misses
        the actual mean holdout purchases (``missed``, ``segments``, ``missed_labels``)."""
        if self.estimates is None:
            return pd.DataFrame(columns=["missed", "segments", "missed_labels"])
        est = self.estimates
        actual = est.xs("actual", level="method")["mean"]
        rows = {}
        for method, part in est.drop(index="actual", level="method").groupby(level="method"):
            part = part.droplevel("method").dropna(subset=["low", "high"])
            if part.empty:
                continue
            truth = actual.reindex(part.index)
            miss = (truth < part["low"]) | (truth > part["high"])
            rows[method] = {"missed": int(miss.sum()), "segments": len(part),
                            "missed_labels": [str(x) for x in part.index[miss]]}  # fmt: skip
        return pd.DataFrame.from_dict(rows, orient="index")

    @property
    def dormant_share(self) -> float:
        """Share of customers probably gone: P(alive) below 20%."""
        return float((self.top["P(alive)"] < 0.2).mean())

    caller: str = "python"

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
            "recommended": self.recommended,
            "recommendation_rule": RECOMMENDATION_RULE,
            "recommendation_reason": ("" if self.recommendation is None
                                      else self.recommendation.reason),
            "unconverged": {k: v.message(self.caller) for k, v in self.unconverged.items()},
            "forecast": {"horizon_weeks": self.horizon_weeks, "model_name": self.recommended,
                         "formula": float(self.forecast.loc["total", "formula"]),
                         "model": float(self.forecast.loc["total", "model"])},  # fmt: skip
            "regularity": None if self.regularity is None else {
                "wheat_morrison_k": float(self.regularity.k),
                "customers": int(self.regularity.n_customers)},
            "regular_model": regular_method(self),
            "ggompertz": ggompertz_method(self),
            "channels": None if self.channels is None else {
                str(k): {c: (None if pd.isna(v) else float(v)) for c, v in row.items()}
                for k, row in self.channels.iterrows()},
            "cost_basis": self.cost_basis,
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


def _without_verdicts(notes: list[str]) -> list[str]:
    """Notes without the fits' convergence warnings: the report states those itself
    (:attr:`Analysis.unconverged`), with the advice in the caller's language."""
    return [n for n in notes if ": did not converge: " not in n
            and not n.startswith(("GGomNBD: b = ", "GGomNBD: parameter(s) ['b', 'beta']"))]
    # (the GGompertz/NBD at its Pareto/NBD limit: the page says it, ageing_finding)


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


REGULAR = "MBG/CNBD-k"  # the regular-buyer model's label starts so: "MBG/CNBD-k (k = 2)"
#: Wheat & Morrison k above this: purchase timing is called regular in the report
REGULAR_K = 1.5


def regular_name(model) -> str:
    """The report's label of a fitted MBG/CNBD-k: its selected k in the name."""
    return f"{REGULAR} (k = {int(model.params_['k'])})"


def _fit_regular(cal: pd.DataFrame, skipped: list):
    """MBG/CNBD-k with k chosen by likelihood (None, with a note, when the frame has no
    ``litt`` or the fit fails)."""
    from .models import MBGCNBD

    if "litt" not in cal.columns:
        return None
    try:
        return MBGCNBD().fit(cal)
    except (ConvergenceError, ValueError) as err:
        skipped.append(f"The regular-buyer model {REGULAR} could not be fitted: {err}")
        return None


GGOMPERTZ = "GGompertz/NBD"
#: label suffix of a GGompertz/NBD fitted at b -> 0, the Pareto/NBD (not a candidate)
AT_LIMIT = "(Pareto/NBD limit)"
PARETO_GGG = "Pareto/GGG"
#: the report's Gibbs chains of the Pareto/GGG when asked for (``pareto_ggg=True``): 300
#: sweeps, 1-3 minutes on the 1,525 grocery customers
PARETO_GGG_SETTINGS = dict(draws=200, tune=100, thin=1, chains=2)


@dataclass(frozen=True)
class FitFailure:
    """The verdict on a maximum-likelihood fit whose optimiser did not converge (the
    counterpart of a Bayesian fit's :class:`~clvmodels.bayes.convergence.Convergence`)."""

    model: str
    reason: str
    passed: bool = False

    def message(self, caller: str = "python") -> str:
        return f"{self.model}: {NOT_CONVERGED}: {self.reason}"


def ggompertz_name(model) -> str:
    """The report's label of a fitted GGompertz/NBD: "(Pareto/NBD limit)" added when its
    ageing parameter b went to 0 (then it is the Pareto/NBD, not a candidate of its own)."""
    return f"{GGOMPERTZ} {AT_LIMIT}" if getattr(model, "pareto_nbd_limit_", False) else GGOMPERTZ


def _fit_ggompertz(cal: pd.DataFrame, unconverged: dict):
    """GGompertz/NBD by maximum likelihood (None, its failure in `unconverged`, when the
    optimiser does not converge)."""
    from .models import GGomNBD

    try:
        return GGomNBD().fit(cal)
    except (ConvergenceError, ValueError) as err:
        unconverged[GGOMPERTZ] = FitFailure(GGOMPERTZ, str(err))
        return None


def wants_pareto_ggg(pareto_ggg: bool | None, bayes: bool, regularity, skipped: list) -> bool:
    """Is the Pareto/GGG fitted? Only when asked for (`pareto_ggg` True). By default
    (None) it is not: at :data:`PARETO_GGG_SETTINGS` its chains do not converge on
    regular data (BTYDplus' grocery log: bulk ESS 11-38 of r and alpha, R-hat up to
    1.16 over 3 seeds), so it would cost minutes to show "did not converge". Where
    purchase timing is regular (Wheat & Morrison's k >= :data:`REGULAR_K`) and the
    Bayesian models are on, a note says so and how to fit it."""
    if pareto_ggg is not None:
        return bool(pareto_ggg)
    if bayes and regularity is not None and regularity.k >= REGULAR_K:
        skipped.append(
            f"Purchase timing is regular, but the regular-buyer model {PARETO_GGG} was not "
            "fitted: its Gibbs chains need many more sweeps than this report's budget to "
            f"converge ({option('pareto_ggg', True)} fits it; it is shown only if its "
            "chains converge). MBG/CNBD-k, fitted here, takes regular timing into account."
        )
    return False


def _fit_pareto_ggg(frame: pd.DataFrame, seed: int):
    """The Pareto/GGG's Gibbs chains at :data:`PARETO_GGG_SETTINGS` (seeded)."""
    from .bayes import ParetoGGG

    return ParetoGGG(**PARETO_GGG_SETTINGS, random_state=seed).fit(frame)


def _regularity(log, observation_end, skipped: list):
    """Wheat & Morrison's k of the whole window (None, with a note, when the log's engine
    or the data do not allow it)."""
    from .regularity import estimate_regularity

    try:
        return estimate_regularity(log, observation_end=observation_end)
    except (NotImplementedError, DataError) as err:
        skipped.append(f"Purchase regularity was not estimated: {err}.")
        return None


def channel_segment(channel: str | None, segment: str | None) -> str | None:
    """The segment column when a channel column is given: the channel itself (the report
    reads one customer column); a ``ValueError`` naming both options if they differ."""
    if channel is None:
        return segment
    if segment is not None and segment != channel:
        raise ValueError(f"{option('channel')} and {option('segment')} name different "
                         f"columns ({channel!r}, {segment!r}): the channel column is the "
                         "report's segment column; give one of them or the same column")
    return channel


def _channel_table(rfm, raw, cost, kw_clv, channel: str, skipped: list):
    """:func:`channel_value` for the report, or None with a note when the covariate
    models cannot be fitted (one channel only, no convergence). The report adds ``value /
    existing customer``: the recommended model's mean value of the channel's customers."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StatisticalWarning)
            table, _ = channel_value(rfm, raw, cost, kw_clv)
        return table
    except (ConvergenceError, ValueError) as err:
        skipped.append(f"The value of a new customer per channel ({channel}) was not "
                       f"computed: {err}")
        return None


WIN_BACK_P_ALIVE = 0.5  # customers to win back: P(alive) below this, with repeat purchases
TOP_N = 15  # customers listed in the report's tables
BENCHMARKS = ("actual", "formula (overall)", "formula (per segment)", "naive (own history)")


def _unconverged(methods: dict) -> dict:
    """Method name -> the first failing convergence verdict of its Bayesian fits."""
    out = {}
    for name, method in methods.items():
        parts = method if isinstance(method, tuple) else (method,)
        for part in parts:
            verdict = getattr(part, "convergence_", None)
            if verdict is not None and not verdict.passed:
                out[name] = verdict
                break
    return out


def _mark(name: str, unconverged: dict) -> str:
    """The method's label in every table: "did not converge" appended when it failed."""
    return f"{name} ({NOT_CONVERGED})" if name in unconverged else name


def _candidates(results: pd.DataFrame) -> list[str]:
    """The candidates of :data:`RECOMMENDATION_RULE` by MAE / customer on the holdout: not
    the benchmarks, not a fit that did not converge, not a GGompertz/NBD at its
    Pareto/NBD limit (the same forecast as the Pareto/NBD, which is the candidate)."""
    keep = [k for k in results.index if k not in BENCHMARKS
            and not k.endswith((f"({NOT_CONVERGED})", AT_LIMIT))]  # fmt: skip
    return list(results.loc[keep, "revenue_mae"].dropna().sort_values().index)


@dataclass(frozen=True)
class Recommendation:
    """The result of :func:`recommend`: ``ranking`` (the candidates, the recommended
    first, then by MAE / customer), ``lowest_mae`` (the candidate with the lowest MAE),
    ``tied`` (candidate -> (MAE difference to ``lowest_mae``, its paired standard error)
    for the candidates within one standard error of it) and ``reason`` (in words)."""

    ranking: list
    lowest_mae: str
    tied: dict
    reason: str

    @property
    def recommended(self) -> str:
        return self.ranking[0] if self.ranking else ""


def recommend(results: pd.DataFrame, predictions: pd.DataFrame) -> Recommendation:
    """:data:`RECOMMENDATION_RULE` applied to the holdout scores `results`
    (:func:`clvmodels.compare`) and the per-customer `predictions` they came from
    (:func:`clvmodels.holdout_predictions`).

    The candidate with the lowest MAE / customer wins unless another candidate's MAE is
    higher by less than :data:`TIE_SE` = 1.96 paired standard errors of the difference
    (:func:`clvmodels.mae_difference`; the two-sided 5% Diebold-Mariano test): such
    models are tied (their difference is within the noise of which customers happened to
    buy in the holdout), and of the tied models
    the one whose holdout revenue total is closest to the actual is recommended (the
    total is what a forecast of the period is read for; MAE alone rewards models that
    predict little for everyone). One place for the rule: the report and its summary use
    it.
    """
    by_mae = _candidates(results)
    if not by_mae:
        return Recommendation([], "", {}, "")
    best = by_mae[0]
    tied = {}
    for name in by_mae[1:]:
        diff, se = mae_difference(predictions, name, best)
        if np.isfinite(se) and diff < TIE_SE * se:
            tied[name] = (diff, se)
    group = [best, *tied]
    off = results["revenue_error_pct"].abs()
    chosen = min(group, key=lambda k: (off[k] if np.isfinite(off[k]) else np.inf,
                                       by_mae.index(k)))  # fmt: skip
    mae = results["revenue_mae"]
    if not tied:
        reason = f"{best} has the lowest MAE / customer ({_money2(mae[best])})"
        if len(by_mae) > 1:
            diff, se = mae_difference(predictions, by_mae[1], best)
            reason += (f", {_money2(diff)} below {by_mae[1]}: {diff / se:.1f} paired "
                       f"standard errors ({_money2(se)}), a significant difference (the "
                       f"rule ties differences below {TIE_SE} standard errors)")
        reason += "."
    else:
        words = "; ".join(f"{k} {_money2(mae[k])} (+{_money2(d)}, standard error "
                          f"{_money2(e)})" for k, (d, e) in tied.items())  # fmt: skip
        totals = ", ".join(f"{k} {results.loc[k, 'revenue_error_pct']:+.1f}%" for k in group)
        reason = (f"{best} has the lowest MAE / customer ({_money2(mae[best])}), but the "
                  f"difference to {words} is below {TIE_SE} standard errors: tied. Of "
                  f"the tied models, {chosen}'s holdout revenue total is closest to the "
                  f"actual ({totals}).")
    return Recommendation([chosen] + [k for k in by_mae if k != chosen], best, tied, reason)


def _money2(x: float) -> str:
    return f"${x:,.2f}"


def _forecast_by(name, rfm, spend_all, bg_all, gg_all, fit, kw_clv, method, seed=0):
    """(CLV, P(alive), expected purchases, CLV posterior or None, the refitted purchase
    model or None) per customer over the horizon by the method `name` (`method` its
    calibration fit) refitted on the whole history, or the failing convergence verdict of
    that refit. MBG/CNBD-k is refitted at the k it chose on the calibration period (the k
    of its name)."""
    from .clv import customer_lifetime_value
    from .models import MBGCNBD, GGomNBD, ParetoNBD

    horizon = kw_clv["horizon"]
    mle = {"BG/NBD": lambda: bg_all, "Pareto/NBD": lambda: ParetoNBD().fit(rfm),
           GGOMPERTZ: lambda: GGomNBD().fit(rfm),
           PARETO_GGG: lambda: _fit_pareto_ggg(rfm, seed)}  # fmt: skip
    if name in mle or name.startswith(REGULAR):
        try:
            model = (MBGCNBD(k=int(method[0].params_["k"])).fit(rfm)
                     if name.startswith(REGULAR) else mle[name]())  # fmt: skip
        except ConvergenceError as err:
            return FitFailure(name, str(err))
        failed = _unconverged({name: model})
        if failed:
            return failed[name]
        clv = customer_lifetime_value(model, gg_all, rfm, **kw_clv)
        return (clv, model.probability_alive(rfm), model.expected_purchases(horizon, rfm),
                None, model)  # fmt: skip
    if name == "BG/NBD per segment":
        fitted = _fit_separate(rfm, gg_all)
        parts = [(part, fitted[s][0]) for s, part in rfm.groupby("segment")]
        cols = [pd.concat([f(m, p) for p, m in parts]).reindex(rfm.index) for f in (
            lambda m, p: customer_lifetime_value(m, gg_all, p, **kw_clv),
            lambda m, p: m.probability_alive(p),
            lambda m, p: m.expected_purchases(horizon, p))]  # fmt: skip
        return (*cols, None, None)
    from . import bayes as bayesian

    purchases = (bayesian.SegmentBGNBD(segment="segment") if name == "hierarchical BG/NBD"
                 else bayesian.BGNBD()).fit(rfm, **fit)  # fmt: skip
    pair = (purchases, bayesian.GammaGamma().fit(spend_all, **fit))
    failed = _unconverged({name: pair})
    if failed:
        return failed[name]
    post = bayesian.customer_lifetime_value(*pair, rfm, **kw_clv)
    return (post["mean"], purchases.probability_alive(rfm)["mean"],
            purchases.expected_purchases(horizon, rfm)["mean"], post, purchases)  # fmt: skip


RANGE_LEVEL = 0.9  # the tables' range of outcomes
RANGE_LOW, RANGE_HIGH = "90% range low", "90% range high"


def outcome_ranges(model, rfm: pd.DataFrame, clv: pd.Series, expected: pd.Series,
                   rows: pd.Index, horizon: float, seed: int = 0) -> pd.DataFrame | None:
    """The 90% range of each customer's value over the horizon (columns low, high) by the
    model behind `clv` (fitted on `rfm`; for the customers `rows`): its predictive interval of the
    purchases (``prediction_interval``; for the Pareto/GGG the quantiles of its
    posterior predictive draws) times the customer's expected discounted value per
    purchase (:func:`clvmodels.clv.value_interval`). None when the model gives no
    predictive distribution of a customer's purchases (one model per segment)."""
    from .clv import value_interval

    if model is None:
        return None
    part = clv.index.isin(rows)
    sub = clv.index[part]
    if hasattr(model, "purchase_draws"):  # Pareto/GGG: draws of the whole fitted frame
        draws = model.purchase_draws(horizon, rfm, seed)[:, part]
        q = np.quantile(draws, [(1 - RANGE_LEVEL) / 2, (1 + RANGE_LEVEL) / 2], axis=0,
                        method="inverted_cdf")  # whole numbers of purchases
        interval = pd.DataFrame({"low": q[0], "high": q[1]}, index=sub)
    elif hasattr(model, "prediction_interval"):
        kw = {} if hasattr(model, "idata_") else {"random_state": seed}
        interval = model.prediction_interval(horizon, rfm.loc[sub], level=RANGE_LEVEL, **kw)
    else:
        return None
    out = value_interval(clv[sub].to_numpy(), expected[sub].to_numpy(), interval, sub)
    return out[["low", "high"]]


COST_KEYS = ("segment", "channel")  # first column of a cost CSV
#: value columns of a cost CSV: a cost per acquired customer, or the spend of the period
PER_CUSTOMER, SPEND = ("cost", "cost_per_customer"), "spend"


def acquisition_costs(value: object) -> float | pd.Series:
    """The cost of acquiring a customer (CAC): one number, or per segment or channel.

    `value` is a number (or its text), a mapping or Series segment -> cost, or the path
    of a CSV file with a column ``segment`` or ``channel`` and either

    * ``cost`` (or ``cost_per_customer``): the cost per acquired customer, or
    * ``spend``: the marketing and sales spend of the period, with an optional column
      ``customers`` (customers acquired in the period). CAC = spend / customers
      acquired, as the analysts' articles define it (:func:`clvmodels.acquisition_cost`);
      without ``customers`` the report divides by the customers of that segment or
      channel in the log.

    Costs follow the one rule of :func:`clvmodels.rules.check_acquisition_costs`
    (finite, >= 0; 0 means no acquisition cost, and CLV:CAC is then not defined). A
    ``ValueError`` names the option (``acquisition_cost=``, ``--acquisition-cost`` on
    the command line) otherwise. A per-customer table is a Series named ``"cost"``; a
    spend table still to be divided by the log's customers is named ``"spend"``.
    """
    from pathlib import Path

    from .rules import check_acquisition_costs

    name = option("acquisition_cost")
    if isinstance(value, str | Path):
        try:
            value = float(value)
        except ValueError:
            path = Path(value)
            if not path.is_file():
                raise ValueError(f"{name}: not a number and no such file: {str(value)!r}") from None
            value = _read_cost_table(path, name)
    if isinstance(value, dict):
        value = pd.Series(value, dtype=object, name="cost")
    if isinstance(value, pd.Series):
        cost = pd.to_numeric(value, errors="coerce").astype(float)
        check_acquisition_costs(cost.to_numpy())
        dup = int(cost.index.duplicated().sum())
        if dup:
            raise ValueError(f"{name}: one cost per segment ({dup} duplicated segment rows)")
        cost.index = cost.index.astype(str)
        return cost.rename(SPEND if value.name == SPEND else "cost")
    check_acquisition_costs(value)
    return float(value)


def _read_cost_table(path, name: str) -> pd.Series:
    """A cost CSV as a Series (see :func:`acquisition_costs`)."""
    from .rules import check_acquisition_costs

    table = pd.read_csv(path, dtype={k: str for k in COST_KEYS})
    keys = [c for c in COST_KEYS if c in table.columns]
    values = [c for c in (*PER_CUSTOMER, SPEND) if c in table.columns]
    if len(keys) != 1 or len(values) != 1:
        raise ValueError(
            f"{name}: the CSV {path.name} needs one column segment or channel and one of "
            f"cost, cost_per_customer or spend; it has {', '.join(map(str, table.columns))}")
    out = table.set_index(keys[0])[values[0]]
    if values[0] != SPEND:
        return out.rename("cost")
    if "customers" not in table.columns:
        return out.rename(SPEND)
    customers = pd.to_numeric(table["customers"], errors="coerce").to_numpy()
    bad = int((~(customers > 0)).sum())  # also NaN
    if bad:
        raise ValueError(f"{name}: the column customers of {path.name} must be positive "
                         f"counts of acquired customers ({bad} rows break the rule)")
    spend = pd.to_numeric(out, errors="coerce").to_numpy()
    check_acquisition_costs(spend)
    return pd.Series(spend / customers, index=out.index, name="cost")


def cost_per_label(cost: float | pd.Series, labels: pd.Series) -> pd.Series:
    """CAC per label (segment or channel) of the customers' `labels`: the cost table
    itself, one number for every label, or a spend table divided by each label's
    customers (``"spend"``, see :func:`acquisition_costs`)."""
    counts = labels.astype(str).value_counts()
    if not isinstance(cost, pd.Series):
        return pd.Series(float(cost), index=counts.index.sort_values(), name="cost")
    check_costs(cost, labels)
    out = cost.reindex(counts.index.sort_values())
    return out / counts.reindex(out.index) if cost.name == SPEND else out


def cost_basis(cost: float | pd.Series) -> str:
    """What the CAC numbers are, in words."""
    if isinstance(cost, pd.Series) and cost.name == SPEND:
        return ("marketing and sales spend / customers acquired (the customers of each "
                "channel or segment in the log)")
    return "the cost per acquired customer given"


def check_costs(cost: float | pd.Series, labels: pd.Series) -> None:
    """A ``ValueError`` when a per-segment cost table misses segments of `labels`."""
    if not isinstance(cost, pd.Series):
        return
    missing = sorted(set(labels.astype(str)) - set(cost.index))
    if missing:
        shown = ", ".join(map(repr, missing[:8])) + (" ..." if len(missing) > 8 else "")
        raise ValueError(f"{option('acquisition_cost')}: no cost for {len(missing)} "
                         f"segment(s) or channel(s): {shown}")  # fmt: skip


def segment_labels(log: TransactionLog, split: Split, segment: str | None) -> pd.Series:
    """Each customer's segment before pooling: the `segment` column (or the log's own),
    else the acquisition cohort of the calibration period."""
    from .compare import acquisition_cohorts

    segment = segment or log.segment
    if segment is None:
        return acquisition_cohorts(log, before=split.calibration_end)
    return customer_segments(log, log.customer, segment)


def _clv_cac(cost, raw, segment_of, rfm, clv, formula) -> pd.DataFrame:
    """Per segment: value against acquisition cost (CLV:CAC), the model's horizon value
    and the formula's lifetime CLV per customer (ratios by :func:`clvmodels.rules.clv_to_cac`:
    not defined where the cost is 0)."""
    from .rules import clv_to_cac

    labels = raw.astype(str).reindex(rfm.index)
    per_customer = labels.map(cost_per_label(cost, labels)).astype(float)
    seg = rfm["segment"]
    out = pd.DataFrame({"customers": seg.value_counts(),
                        "acquisition cost": per_customer.groupby(seg).mean(),
                        "model value / customer": clv.groupby(seg).mean(),
                        "formula lifetime CLV": formula["clv"]})  # fmt: skip
    out.loc["all"] = [len(rfm), per_customer.mean(), clv.mean(),
                      rfm["segment"].map(formula["clv"]).mean()]  # fmt: skip
    out["model value : cost"] = clv_to_cac(out["model value / customer"], out["acquisition cost"])
    out["formula CLV : cost"] = clv_to_cac(out["formula lifetime CLV"], out["acquisition cost"])
    return out


CHANNEL = "channel"  # the covariate's name in the channel models


def channel_value(rfm: pd.DataFrame, channels: pd.Series, cost, kw_clv: dict):
    """Per acquisition channel: the value of a NEW customer from the covariate models and,
    with costs, the CAC and CLV:CAC.

    ``ParetoNBD(purchase_covariates=["channel"], dropout_covariates=["channel"])`` and
    ``GammaGamma(covariates=["channel"])`` are fitted on the whole history (`rfm`,
    `channels` each customer's channel); :func:`clvmodels.new_customer_value` gives the
    discounted value of a customer just acquired through each channel over the horizon
    (`kw_clv`), its repeat purchases only. Returns (table, models) with the table's
    columns ``customers``, ``new customer value`` and, with `cost`, ``acquisition cost``
    and ``value : cost`` (:func:`clvmodels.rules.clv_to_cac`).
    """
    from .clv import new_customer_value
    from .models import GammaGamma, ParetoNBD
    from .rules import clv_to_cac

    labels = channels.astype(str).reindex(rfm.index)
    data = rfm.assign(**{CHANNEL: labels})
    spend = data[(data["frequency"] == 0) | (data["monetary_value"] > 0)]
    pn = ParetoNBD(purchase_covariates=[CHANNEL], dropout_covariates=[CHANNEL]).fit(data)
    gg = GammaGamma(covariates=[CHANNEL]).fit(spend)
    levels = sorted(labels.unique())
    new = pd.DataFrame({CHANNEL: levels}, index=pd.Index(levels, name=None))
    out = pd.DataFrame({"customers": labels.value_counts().reindex(levels),
                        "new customer value": new_customer_value(pn, gg, new, **kw_clv)})
    if cost is not None:
        out["acquisition cost"] = cost_per_label(cost, labels)
        out["value : cost"] = clv_to_cac(out["new customer value"], out["acquisition cost"])
    return out, (pn, gg)


def _one_time_p_alive(rfm: pd.DataFrame, bg_all) -> pd.DataFrame:
    """P(alive) of the customers with no repeat purchase, by BG/NBD (alive by
    construction until a repeat purchase) and by MBG/NBD and Pareto/NBD (which can drop
    out before one)."""
    from .models import MBGNBD, ParetoNBD

    once = rfm["frequency"] == 0
    rows = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        for name, model in (("BG/NBD", bg_all), ("MBG/NBD", MBGNBD().fit(rfm)),
                            ("Pareto/NBD", ParetoNBD().fit(rfm))):  # fmt: skip
            p = model.probability_alive(rfm)
            rows[name] = {"one-time buyers: mean P(alive)": p[once].mean(),
                          "one-time buyers: P(alive) < 20%": (p[once] < 0.2).mean(),
                          "all customers: P(alive) < 20%": (p < 0.2).mean()}  # fmt: skip
    out = pd.DataFrame(rows).T
    out.attrs["one_time_share"] = float(once.mean())
    return out


def _formula_numbers(a: Analysis) -> pd.DataFrame:
    """The formula's numbers reconciled: lifetime CLV, yearly value, holdout-length
    forecast and the report's horizon forecast, each per customer and in total."""
    fa = a.formula_all.iloc[0]
    n_all, n_cal = len(a.rfm), len(a.cal)
    years = fa["lifespan"]
    hold = a.results.loc["formula (overall)", "revenue_predicted"]
    w, h = a.split.holdout_weeks, float(a.horizon_weeks)
    rows = {
        "lifetime CLV": (fa["clv"], n_all, fa["clv"] * n_all,
                         f"value / year x lifespan ({years:.1f} years), whole history"),
        "yearly value": (fa["customer_value"], n_all, fa["customer_value"] * n_all,
                         "value / purchase x purchases / year, whole history"),
        f"holdout forecast ({w:.0f} weeks)": (
            hold / n_cal, n_cal, hold,
            f"yearly value (calibration period only) x {w:.0f} / 52, for the customers "
            "of the holdout test"),
        f"next {h:g} weeks": (
            a.forecast.loc["total", "formula"] / n_all, n_all,
            a.forecast.loc["total", "formula"],
            f"each segment's yearly value x {h:g} / 52, whole history (section 4)"),
    }  # fmt: skip
    return pd.DataFrame.from_dict(rows, orient="index",
                                  columns=["per customer", "customers", "total", "what it is"])


def _in_callers_language(fn):
    """Run `fn` with every :func:`~clvmodels.errors.option` it words (notes, errors,
    advice) in the caller's language: the report's notebook calls :func:`analyze` with
    ``caller="cli"`` in a kernel outside the command's own flag context."""

    @functools.wraps(fn)
    def wrapper(*args, caller: str = "python", **kwargs):
        with cli_flags({}) if caller == "cli" else contextlib.nullcontext():
            return fn(*args, caller=caller, **kwargs)

    return wrapper


@_in_callers_language
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
    acquisition_cost: object = None,
    channel: str | None = None,
    caller: str = "python",
    pareto_ggg: bool | None = None,
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
        A Bayesian fit that fails its convergence verdict is marked "did not converge"
        in every table and is not recommended.
    acquisition_cost : float, mapping, Series or str, optional
        Cost of acquiring a customer: one number, or per segment or channel (a mapping,
        a Series or the path of a CSV with a column ``segment`` or ``channel`` and one of
        ``cost``, ``cost_per_customer`` or ``spend``; see :func:`acquisition_costs`);
        gives ``clv_cac`` (and the CAC columns of ``channels``).
    channel : str, optional
        The acquisition channel column (one value per customer; it is also the report's
        segment column, so `segment` must be None or the same column): gives
        ``channels``, the value of a new customer per channel from the covariate models
        (:func:`channel_value`) against its CAC.
    caller : {"python", "cli"}
        The language of the convergence advice (keywords or ``clvmodels report`` flags).
    pareto_ggg : bool, optional
        Fit the regular-buyer model Pareto/GGG (Gibbs sampling,
        :data:`PARETO_GGG_SETTINGS`; ``--pareto-ggg`` / ``--no-pareto-ggg`` on the
        command line). Default (None): not fitted, with a note where purchase timing
        is regular (:func:`wants_pareto_ggg`: its chains need more than the report's
        budget to converge).
        GGompertz/NBD (maximum likelihood, a second or so) is always fitted; at its
        Pareto/NBD limit (b -> 0) it is labelled so and is not a candidate.

    Returns
    -------
    Analysis
    """
    from .clv import customer_lifetime_value
    from .compare import (
        calibration_deciles,
        compare,
        formula_holdout,
        holdout_predictions,
        naive_holdout,
        segment_estimates,
    )
    from .models import BGNBD, GammaGamma, ParetoNBD
    from .rfm import calibration_holdout, rfm_summary

    split = choose_split(log, calibration_end, observation_end)
    cost = None if acquisition_cost is None else acquisition_costs(acquisition_cost)
    segment = channel_segment(channel, segment)
    raw = segment_labels(log, split, segment)
    if cost is not None:
        check_costs(cost, raw)  # before any fit
    segment = segment or log.segment
    segment_name = "acquisition cohort" if segment is None else segment
    skipped: list[str] = []
    try:  # litt: the statistic of the regular-buyer model (MBG/CNBD-k)
        rfm = rfm_summary(log, observation_end=observation_end, unit="W", litt=True)
        cal = calibration_holdout(log, calibration_end=split.calibration_end,
                                  observation_end=observation_end, unit="W", litt=True)
    except NotImplementedError as err:
        skipped.append(f"The regular-buyer model MBG/CNBD-k was not fitted: {err}.")
        rfm = rfm_summary(log, observation_end=observation_end, unit="W")
        cal = calibration_holdout(log, calibration_end=split.calibration_end,
                                  observation_end=observation_end, unit="W")  # fmt: skip
    regularity = _regularity(log, observation_end, skipped)
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
    n_segments = cal["segment"].nunique()
    if n_segments < 2:
        skipped.append(f"One segment only ({segment_name}): the per-segment and "
                       "hierarchical fits are the overall ones, not shown twice.")  # fmt: skip
    if pooled:
        skipped.append(f"Segments with fewer than {min_segment_customers} customers in the "
                       f"calibration period are pooled into '{OTHER}': "
                       f"{', '.join(map(str, pooled))}.")  # fmt: skip
    # the C back-end: compiled once per machine (cached on disk); numba would compile for
    # 15-30 s in every report's fresh process (CDNOW's whole history has 11,104 distinct rows)
    fit = dict(draws=draws, tune=tune, chains=chains, random_seed=seed, progressbar=False,
               backend="c")  # fmt: skip
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
        regular = _fit_regular(cal, skipped)
        if regular is not None:
            methods[regular_name(regular)] = (regular, gg)
        failed: dict = {}  # maximum-likelihood fits that did not converge
        ggom = _fit_ggompertz(cal, failed)
        if ggom is not None:
            methods[ggompertz_name(ggom)] = (ggom, gg)
        if wants_pareto_ggg(pareto_ggg, bayes, regularity, skipped):
            if "litt" in cal.columns:
                methods[PARETO_GGG] = (_fit_pareto_ggg(cal, seed), gg)
            else:
                skipped.append(f"{PARETO_GGG} was not fitted: it needs the sum of log "
                               "inter-purchase times, which this engine does not give.")
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
                if h_bg.first_convergence_ is not None:  # refitted with more draws
                    c = h_bg.convergence_
                    skipped.append(
                        f"The hierarchical BG/NBD failed its convergence check at {chains} "
                        f"chains x {draws} draws and was refitted with {c.chains} x "
                        f"{c.draws} draws: {'converged' if c.passed else NOT_CONVERGED}.")
            elif hierarchical is None:
                skipped.append(
                    f"The hierarchical BG/NBD was not fitted: with {len(cal):,} customers it "
                    "would take several minutes (`clvmodels report --hierarchical` fits it "
                    "anyway); notebook 03 shows it on CDNOW.")  # fmt: skip
            else:
                skipped.append("The hierarchical BG/NBD was not fitted (hierarchical=False).")
    unconverged = _unconverged(methods) | failed
    notes = _without_verdicts(_statistical_notes(caught))
    methods = {_mark(k, unconverged): v for k, v in methods.items()}
    # each method's predictions once (posterior predictions are the slow part), then scored
    predictions = holdout_predictions(cal, methods, segment="segment")
    scored = {k: predictions[k] for k in methods}
    results = compare(cal, scored, segment="segment", by_segment=False)
    recommendation = recommend(results, predictions)
    ranking = recommendation.ranking
    by_segment = compare(cal, scored, segment="segment", reference=False)
    forest = {k: methods[k] for k in ("formula (per segment)", "BG/NBD per segment",
                                      _mark("hierarchical BG/NBD", unconverged))
              if k in methods}  # fmt: skip
    estimates = segment_estimates(cal, forest, "segment") if forest else None
    formula_key = "formula (per segment)" if n_segments > 1 else "formula (overall)"
    decile_methods = [*ranking[:1], formula_key, "naive (own history)"]
    deciles = calibration_deciles(cal, {k: scored[k] for k in decile_methods}, quantity="revenue",
                                  segment="segment")  # fmt: skip

    # the next months, refitted on the whole history, by the recommended model
    monthly = (1 + annual_discount_rate) ** (1 / 12) - 1
    horizon = float(horizon_weeks)
    period = horizon / round(horizon / (52 / 12))
    kw_clv = dict(horizon=horizon, period=period, discount_rate=monthly)
    spend_all = rfm[(rfm["frequency"] == 0) | (rfm["monetary_value"] > 0)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        bg_all = BGNBD().fit(rfm)
        gg_all = GammaGamma().fit(spend_all)
    # the recommended model refitted on the whole history; a Bayesian one only when it is
    # recommended (its posterior then gives the CLV intervals), else the next candidate
    clv_post, forecast_notes = None, []
    recommended, clv, p_alive, expected, model_all = "", None, None, None, None
    for name in ranking:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", StatisticalWarning)
            out = _forecast_by(name, rfm, spend_all, bg_all, gg_all, fit, kw_clv,
                               methods.get(name), seed)
        forecast_notes += _without_verdicts(_statistical_notes(caught))
        if isinstance(out, tuple):
            recommended, (clv, p_alive, expected, clv_post, model_all) = name, out
            break
        unconverged[f"{name} (whole history)"] = out
        forecast_notes.append(f"{name} (the recommended model) {NOT_CONVERGED} when "
                              f"refitted on the whole history: {out.message(caller)} "
                              "The next model is used.")  # fmt: skip
    if clv is None:  # no candidate converged: BG/NBD by maximum likelihood
        recommended = "BG/NBD"
        clv, p_alive, expected, _, model_all = _forecast_by(
            "BG/NBD", rfm, spend_all, bg_all, gg_all, fit, kw_clv, None)  # fmt: skip
    best = recommendation.lowest_mae or recommended
    formula_year = rfm["segment"].map(formula["customer_value"]) * horizon / 52
    forecast = pd.DataFrame({
        "customers": rfm.groupby("segment").size(),
        "formula": formula_year.groupby(rfm["segment"]).sum(),
        "model": clv.groupby(rfm["segment"]).sum(),
    })  # fmt: skip
    forecast.loc["total"] = forecast.sum()
    forecast["model / formula"] = forecast["model"] / forecast["formula"]
    top = pd.DataFrame({"segment": rfm["segment"], "repeat purchases": rfm["frequency"],
                        "weeks since last purchase": rfm["T"] - rfm["recency"],
                        "P(alive)": p_alive, "expected purchases": expected,
                        "CLV": clv})  # fmt: skip
    if clv_post is not None:
        top["CLV 94% low"] = clv_post["hdi_low"]
        top["CLV 94% high"] = clv_post["hdi_high"]
    top = top.sort_values("CLV", ascending=False)
    past = rfm["frequency"] * rfm["monetary_value"].fillna(0.0)
    win_back = (top.assign(**{"past repeat revenue": past})
                .loc[lambda d: (d["P(alive)"] < WIN_BACK_P_ALIVE) & (d["repeat purchases"] > 0)]
                .sort_values("past repeat revenue", ascending=False))  # fmt: skip
    shown = top.index[:TOP_N].union(win_back.index[:TOP_N])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        ranges = outcome_ranges(model_all, rfm, clv, expected, shown, horizon, seed)
        range_model = recommended
        if ranges is None:  # one model per segment: BG/NBD's predictive distribution
            range_model = "BG/NBD"
            ranges = customer_lifetime_value(bg_all, gg_all, rfm.loc[shown], **kw_clv,
                                             level=RANGE_LEVEL, random_state=seed)
    for frame in (top, win_back):
        frame[RANGE_LOW] = ranges["low"].reindex(frame.index)
        frame[RANGE_HIGH] = ranges["high"].reindex(frame.index)
    cac = None
    if cost is not None:
        cac = _clv_cac(cost, raw, segment_of, rfm, clv, formula)
    channels = None
    if channel is not None:
        channels = _channel_table(rfm, raw, cost, kw_clv, channel, skipped)
        if channels is not None:  # for contrast: what the customers it has are worth
            channels.insert(2, "value / existing customer",
                            clv.groupby(raw.astype(str).reindex(rfm.index)).mean())
    result = Analysis(
        log=log, source=getattr(log, "source", "the transaction log"), split=split,
        segment_name=segment_name, segment_of=segment_of, pooled=pooled, rfm=rfm, cal=cal,
        totals=totals, overview=overview, formula=formula, formula_all=formula_all,
        lifespan_note=lifespan_note, methods=methods, results=results, best=best,
        by_segment=by_segment, estimates=estimates, bg=bg, pnbd=pnbd, bg_all=bg_all,
        gg_all=gg_all, clv=clv, clv_post=clv_post, forecast=forecast, top=top,
        horizon_weeks=horizon_weeks, recommended=recommended, unconverged=unconverged,
        win_back=win_back, clv_cac=cac, p_alive=_one_time_p_alive(rfm, bg_all),
        deciles=deciles, predictions=predictions, notes=notes, skipped=skipped,
        forecast_notes=forecast_notes, caller=caller, regularity=regularity,
        channels=channels, channel=channel,
        cost_basis=None if cost is None else cost_basis(cost),
        recommendation=recommendation, range_model=range_model,
    )  # fmt: skip
    result.formula_numbers = _formula_numbers(result)
    result.conclusions = _conclusions(result)
    return result


def _money(x: float) -> str:
    return f"${x:,.0f}"


def _pct(x: float) -> str:
    return f"{x:+.0f}%"


def _conclusions(a: Analysis) -> list[str]:
    f_all = a.results.loc["formula (overall)"]
    total = a.forecast.loc["total"]
    share10, dormant = a.top_share, a.dormant_share
    out = []
    if a.best in a.results.index:
        b = a.results.loc[a.best]
        out += [
            f"On the holdout the formula's revenue forecast was "
            f"{_pct(f_all['revenue_error_pct'])} off; {a.best} was "
            f"{_pct(b['revenue_error_pct'])} off.",
            f"Per customer, {a.best} cut the mean absolute revenue error from "
            f"{_money(f_all['revenue_mae'])} to {_money(b['revenue_mae'])}.",
        ]
    reason = "" if a.recommendation is None else " " + a.recommendation.reason
    out += [
        f"Recommended model: {a.recommended}.{reason}",
        f"Next {a.horizon_weeks:g} weeks: the formula expects {_money(total['formula'])}, "
        f"{a.recommended} {_money(total['model'])} ({total['model / formula']:.2f} x).",
        f"The top 10% of customers hold {share10:.0%} of the expected value; "
        f"{dormant:.0%} of customers are probably gone (P(alive) < 20%, {a.recommended}).",
    ]
    for finding in (ageing_finding(a), regularity_finding(a)):
        if finding:
            out.insert(0, finding)
    if a.channels is not None and "value : cost" in a.channels.columns:
        ratio = a.channels["value : cost"].dropna()
        if len(ratio):
            out.append(f"A new customer from channel {ratio.idxmax()} is worth "
                       f"{ratio.max():.1f} x its acquisition cost, from {ratio.idxmin()} "
                       f"{ratio.min():.1f} x (value of the next {a.horizon_weeks:g} weeks).")
    if a.unconverged:
        out.append(f"Not used ({NOT_CONVERGED}): {', '.join(a.unconverged)}.")
    return out


def regular_method(a: Analysis) -> str | None:
    """The label of the MBG/CNBD-k among the compared methods (None if not fitted)."""
    return next((k for k in a.results.index if k.startswith(REGULAR)), None)


def ggompertz_method(a: Analysis) -> str | None:
    """The label of the GGompertz/NBD among the compared methods (None if not fitted)."""
    return next((k for k in a.results.index if k.startswith(GGOMPERTZ)), None)


def ageing_finding(a: Analysis) -> str:
    """Does the drop-out rate change with a customer's age? One sentence from the
    GGompertz/NBD's ageing parameter b ("" when it was not fitted)."""
    name = ggompertz_method(a)
    if name is None:
        if GGOMPERTZ in a.unconverged:
            return f"{GGOMPERTZ} (drop-out that changes with age) {NOT_CONVERGED}: not used."
        return ""
    model = a.methods[name][0]
    b, r = model.params_["b"], a.results.loc[name]
    if name.endswith(AT_LIMIT):
        return (f"The drop-out rate does not change with a customer's age: {GGOMPERTZ} "
                f"fitted its ageing parameter b = {b:.2g}, i.e. b -> 0, where it is the "
                "Pareto/NBD (same likelihood, same forecasts); it is shown, but Pareto/NBD "
                "is the candidate.")
    return (f"{GGOMPERTZ} lets the drop-out rate change with a customer's age (b = {b:.3g} "
            f"per week): it predicted {r['purchases_predicted']:,.0f} holdout purchases "
            f"({_pct(r['purchases_error_pct'])}), MAE / customer "
            f"{_money(r['revenue_mae'])}.")


def regularity_finding(a: Analysis) -> str:
    """Is purchase timing regular? One sentence: Wheat & Morrison's k in words, and how
    the regular-buyer model did against Pareto/NBD on the holdout ("" when neither was
    computed)."""
    parts = []
    if a.regularity is not None:
        k = a.regularity.k
        if k >= REGULAR_K:
            parts.append(f"Purchase timing is regular (Wheat & Morrison k = {k:.1f}): "
                         "customers buy on a rhythm rather than at random.")
        else:
            parts.append(f"Purchase timing is Poisson-like (Wheat & Morrison k = {k:.1f}, "
                         "close to 1): purchases come at random, as the standard models "
                         "assume.")
    name = regular_method(a)
    if name is not None and "Pareto/NBD" in a.results.index:
        r, p = a.results.loc[name], a.results.loc["Pareto/NBD"]
        k_model = int(a.methods[name][0].params_["k"])
        same = ", here the MBG/NBD," if k_model == 1 else ""
        parts.append(f"{name}{same} predicted {r['purchases_predicted']:,.0f} holdout "
                     f"purchases ({_pct(r['purchases_error_pct'])}), Pareto/NBD "
                     f"{p['purchases_predicted']:,.0f} ({_pct(p['purchases_error_pct'])}); "
                     f"MAE / customer {_money2(r['revenue_mae'])} against "
                     f"{_money2(p['revenue_mae'])}.")
    if PARETO_GGG in a.results.index:
        g = a.results.loc[PARETO_GGG]
        parts.append(f"{PARETO_GGG} (a regularity per customer) predicted "
                     f"{g['purchases_predicted']:,.0f} ({_pct(g['purchases_error_pct'])}).")
    elif _mark(PARETO_GGG, a.unconverged) in a.results.index:
        parts.append(f"{PARETO_GGG} {NOT_CONVERGED} (its Gibbs chains did not mix within "
                     "the report's settings): not used.")
    return " ".join(parts)
