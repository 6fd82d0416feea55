"""The HTML report: the ``04-report`` notebook run with papermill, exported with nbconvert.

:func:`run_report` checks the input first (so that bad input gives one clear
:class:`~clvmodels.errors.DataError`, not a failed notebook), executes the notebook
shipped with the package with the report's parameters, and writes one self-contained
HTML file: figures are embedded as PNG data, CSS is inline, and no script, style sheet or
image is loaded from anywhere else (the report opens offline). Code cells are hidden
unless ``show_code=True``.

A transaction file is never loaded into pandas: :func:`open_transactions` opens it as a
DuckDB relation, and the checks and every aggregate of the report (RFM frames, the
formula per segment, acquisition cohorts, daily repeat purchases, totals) are computed
by DuckDB in bounded memory through the package's functions, which accept such frames;
only results of one row per customer at most reach pandas. CDNOW (the default) is a
pandas frame and takes the numpy path; both paths give the same numbers.

The notebook is ``clvmodels/_notebooks/04-report.ipynb`` in an installed wheel and
``notebooks/04-report.ipynb`` in a source checkout. It runs in a Jupyter kernel started
with the Python interpreter running this code (``sys.executable``), whatever kernels are
registered on the machine.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ._aggregate import customer_segments as _customer_segments
from ._aggregate import log_totals
from ._validate import column_names
from .errors import DataError
from .escaping import sanitize
from .rfm import log_window

__all__ = [
    "MIN_CUSTOMERS",
    "MIN_REPEAT_BUYERS",
    "check_inputs",
    "customer_segments",
    "default_calibration_end",
    "notebook_path",
    "open_transactions",
    "read_transactions",
    "run_report",
    "transaction_totals",
]

NOTEBOOK = "04-report.ipynb"
MIN_CUSTOMERS = 50  # customers in the calibration cohort
MIN_REPEAT_BUYERS = 10  # of them with a repeat purchase in the calibration period
_REPO_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block data_png scoped -%}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
<img src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}"
 alt="{{ ((output | get_metadata('alt', 'image/png')) or 'figure') | escape_html }}">
</div>
{%- endblock data_png -%}
{%- block extra_css -%}
<style type="text/css">
body { max-width: 1100px; margin: 0 auto; }
.jp-RenderedHTMLCommon table { font-size: 12px; }
.jp-OutputArea-output img { max-width: 100%; height: auto; }
</style>
{%- endblock extra_css -%}
"""


def notebook_path(name: str = NOTEBOOK) -> Path:
    """Path of a notebook shipped with the package (or of the source checkout)."""
    packaged = resources.files("clvmodels") / "_notebooks" / name
    if packaged.is_file():
        return Path(str(packaged))
    local = _REPO_NOTEBOOKS / name
    if local.is_file():
        return local
    raise FileNotFoundError(
        f"notebook {name!r} is neither in the installed package (clvmodels/_notebooks) "
        f"nor in {_REPO_NOTEBOOKS}; reinstall clvmodels"
    )


def read_transactions(path: str | Path, customer: str | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet transaction log into pandas (by file extension; CSV otherwise).

    CSV customer ids are read as text, so that ids such as ``"007"`` keep their leading
    zeros; dates and amounts are left to :func:`clvmodels.rfm_summary` to parse. The
    report itself does not load the log: see :func:`open_transactions`.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"transactions file not found: {path}")
    if p.suffix.lower() in {".parquet", ".pq"}:
        try:
            return pd.read_parquet(p)
        except Exception as exc:  # noqa: BLE001 - any reader failure is bad input
            raise DataError(None, f"cannot read {path} as Parquet: {exc}") from None
    try:
        head = pd.read_csv(p, nrows=0)
        dtype = {customer: str} if customer is not None and customer in head.columns else None
        return pd.read_csv(p, dtype=dtype)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(None, f"cannot read {path} as CSV: {reason}") from None


def open_transactions(path: str | Path, customer: str | None = None, **duckdb_settings):
    """The report's view of a CSV or Parquet log: a lazy DuckDB relation, nothing loaded.

    Every step of the report (checks, RFM frames, the formula, cohorts, tracking counts)
    passes the relation to the package's functions, which aggregate it inside DuckDB in
    bounded memory (``memory_limit``, spilling to disk beyond it); only results of one row
    per customer at most reach pandas. The file is only read. As with
    :func:`read_transactions`, CSV customer ids are read as text; the other CSV column
    types are detected by DuckDB from the whole file. Every query parses a CSV file
    again: for a large log, Parquet is several times faster.

    Parameters
    ----------
    path : str or Path
        CSV or Parquet file (or a directory or glob of Parquet files).
    customer : str, optional
        The customer id column (read as text from a CSV file).
    **duckdb_settings
        ``memory_limit`` (default ``"1GB"`` here; on the 20M-row log of
        ``benchmarks/bench_scale.py`` the report's data part peaks at 1.6 GB with it and
        at 1.75 GB with 2 GB, in the same time), ``threads``, ``temp_directory``: see
        :func:`clvmodels.scale.read_transactions`.

    Returns
    -------
    duckdb.DuckDBPyRelation
    """
    from .scale import read_transactions as scan

    settings = {"memory_limit": "1GB", **duckdb_settings}
    return scan(path, text_columns=[customer] if customer else [], **settings)


def default_calibration_end(
    tx: object, *, customer: str, date: str, observation_end: object = None
) -> pd.Timestamp:
    """Default end of the calibration period: the middle of the data, holdout <= 1 year.

    The window from the first transaction day to `observation_end` (default: the last
    transaction day) is split in half, the holdout at most 365 days long. On CDNOW
    (1997-01-01 to 1998-06-30) this is 1997-09-30, the split of the papers. `tx` is a
    pandas frame or any frame narwhals supports (a DuckDB relation from
    :func:`open_transactions`: two numbers are computed by DuckDB).
    """
    w = log_window(tx, customer, date, None, observation_end)
    start, end = w.first_day, w.end_day
    holdout = min((end - start + 1) // 2, 365)  # days after the calibration end
    if holdout < 1:
        rule = "all transactions are on one day: no holdout period possible"
        raise DataError(date, rule, w.n_rows())
    return pd.Timestamp(np.datetime64(end - holdout, "D"))


def customer_segments(tx: object, *, customer: str, segment: str) -> pd.Series:
    """Each customer's segment from a column of the log, one segment per customer.

    Parameters
    ----------
    tx : pandas.DataFrame or any narwhals frame (a DuckDB relation: computed by DuckDB)
    customer, segment : str
        Columns of `tx`.

    Returns
    -------
    pandas.Series
        Indexed by customer id, named `segment`; pass it as ``segment=`` to
        :func:`clvmodels.formula_clv`.

    Raises
    ------
    DataError
        A missing column, missing customer ids or segments, or customers in more than one
        segment (the message counts them and their rows).
    """
    return _customer_segments(tx, customer, segment)


def transaction_totals(
    tx: object, *, customer: str, date: str, amount: str, observation_end: object = None
) -> dict:
    """Transactions (rows) and revenue up to `observation_end` (default: all of them).

    Returns ``{"transactions": int, "revenue": float}``, computed by the frame's engine
    (numpy for pandas, DuckDB for :func:`open_transactions`) after the checks of
    :func:`clvmodels.rfm_summary`.
    """
    n, revenue = log_totals(tx, customer, date, amount, observation_end)
    return {"transactions": n, "revenue": revenue}


ENGINES = {"duckdb": open_transactions, "pandas": read_transactions}  # run_report(engine=...)


def check_inputs(
    tx: object,
    *,
    customer: str,
    date: str,
    amount: str,
    segment: str | None = None,
    calibration_end: object = None,
    observation_end: object = None,
) -> dict:
    """Validate what the report needs; return the calibration end and sizes.

    `tx` is a pandas frame or a DuckDB relation from :func:`open_transactions` (or any
    frame narwhals supports); the checks run in its engine. Raises
    :class:`~clvmodels.errors.DataError` naming the problem: missing columns,
    unparseable dates or amounts, an invalid segment column, a calibration end outside
    the data, or too little data (fewer than :data:`MIN_CUSTOMERS` customers in the
    calibration cohort or fewer than :data:`MIN_REPEAT_BUYERS` of them with a repeat
    purchase).
    """
    from .formula import formula_clv
    from .rfm import calibration_holdout

    cols = [customer, date, amount] + ([segment] if segment is not None else [])
    names = column_names(tx)
    missing = [c for c in cols if c not in names]
    if missing:
        shown = ", ".join(repr(c) for c in names[:12])
        raise DataError(missing[0], f"not found in the transactions (columns: {shown})")
    chosen = calibration_end is None
    if chosen:
        calibration_end = default_calibration_end(
            tx, customer=customer, date=date, observation_end=observation_end
        )
    cal = calibration_holdout(
        tx,
        customer,
        date,
        amount,
        calibration_end=calibration_end,
        observation_end=observation_end,
        unit="W",
    )
    if segment is not None:  # one segment per customer, none missing
        formula_clv(
            tx,
            customer,
            date,
            amount,
            segment=segment,
            lifespan=1.0,
            observation_end=observation_end,
        )
    n, repeat = len(cal), int((cal["frequency"] > 0).sum())
    if n < MIN_CUSTOMERS or repeat < MIN_REPEAT_BUYERS:
        raise DataError(
            None,
            f"too little data: {n} customers in the calibration period (up to "
            f"{pd.Timestamp(calibration_end).date()}), {repeat} of them with a repeat "
            f"purchase; the report needs at least {MIN_CUSTOMERS} customers and "
            f"{MIN_REPEAT_BUYERS} repeat buyers",
        )
    return {
        "calibration_end": pd.Timestamp(calibration_end),
        "chosen": chosen,
        "customers": n,
        "repeat_buyers": repeat,
        "holdout_weeks": float(cal["duration_holdout"].iloc[0]),
    }


def _prepare_for_html(nb):
    """Give every figure an alternative text (the section it belongs to) and move the
    notebook's standard-error output (warnings, library log lines) out of the report.

    Returns a copy of the notebook and the first line of each standard-error output
    (for the console).
    """
    import copy

    nb = copy.deepcopy(nb)
    section, stderr = "the report", []
    for cell in nb.cells:
        texts = (
            [cell.source]
            if cell.cell_type == "markdown"
            else [o.get("data", {}).get("text/markdown", "") for o in cell.get("outputs", [])]
        )
        for text in texts:
            for line in text.splitlines():
                if line.startswith("#"):
                    section = line.lstrip("#").strip()
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                first = next((x.strip() for x in out.get("text", "").splitlines() if x.strip()), "")
                if first:
                    stderr.append(first)
                continue
            if "image/png" in out.get("data", {}):
                meta = out.setdefault("metadata", {}).setdefault("image/png", {})
                meta.setdefault("alt", f"Figure: {section}")
            kept.append(out)
        cell.outputs = kept
    return nb, stderr


def _template_dirs() -> list[str]:
    """nbconvert's own template folder, found from where nbconvert is installed.

    nbconvert looks for its templates in the Jupyter data paths of the running
    interpreter; when the package and its dependencies live in different prefixes (a
    ``--user`` or ``--target`` install, layered environments) they are not there.
    """
    import nbconvert

    prefix = Path(nbconvert.__file__).resolve().parents[4]  # <prefix>/lib/pythonX.Y/...
    folder = prefix / "share" / "jupyter" / "nbconvert" / "templates"
    return [str(folder)] if folder.is_dir() else []


def _export_html(nb, show_code: bool) -> str:
    import jinja2
    from nbconvert import HTMLExporter

    folders = _template_dirs()
    exporter = HTMLExporter(
        extra_template_basedirs=folders,
        extra_template_paths=folders + [str(Path(f) / "compatibility") for f in folders],
        template_name="lab",
        extra_loaders=[jinja2.DictLoader({"clvmodels_report.html.j2": _TEMPLATE})],
        template_file="clvmodels_report.html.j2",
        exclude_input=not show_code,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    html, _ = exporter.from_notebook_node(nb)
    return sanitize(html)  # a guard: values from the user's file are escaped in the notebook


def _kernel_manager_class():
    """A kernel manager that starts the kernel with this interpreter (``sys.executable``)."""
    from jupyter_client.manager import KernelManager

    class ThisPythonKernelManager(KernelManager):
        def format_kernel_cmd(self, extra_arguments=None):
            # log level ERROR: no warning about unencrypted local TCP on every run
            return [
                sys.executable,
                "-m",
                "ipykernel_launcher",
                "-f",
                self.connection_file,
                "--IPKernelApp.log_level=ERROR",
                *(extra_arguments or []),
            ]

    return ThisPythonKernelManager


def run_report(
    transactions: str | Path | None = None,
    *,
    customer: str = "customer_id",
    date: str = "date",
    amount: str = "amount",
    segment: str | None = None,
    calibration_end: object = None,
    observation_end: object = None,
    out: str | Path = "report.html",
    draws: int | None = None,
    tune: int | None = None,
    chains: int | None = None,
    bayes: bool = True,
    hierarchical: bool | None = None,
    seed: int = 0,
    show_code: bool = False,
    progress: bool = True,
    keep_notebook: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    engine: str = "duckdb",
) -> dict:
    """Run the report notebook on a transaction log and write a self-contained HTML file.

    Parameters
    ----------
    transactions : path, optional
        CSV or Parquet transaction log; default: the CDNOW master (columns
        ``customer_id``, ``date``, ``amount``). The file is read through DuckDB
        (:func:`open_transactions`) and never loaded whole: the checks and every
        aggregate of the report run inside DuckDB, so a log larger than memory works.
    customer, date, amount : str
        Columns of the log (ignored for CDNOW).
    segment : str, optional
        Column with each customer's segment; default: the acquisition cohort.
    calibration_end : date-like, optional
        End of the calibration period; default :func:`default_calibration_end`.
    observation_end : date-like, optional
        End of the data; default: the last transaction day.
    out : path, default "report.html"
        The HTML file to write.
    draws, tune, chains : int, optional
        Posterior sampling settings of the Bayesian models (the notebook's defaults
        when None); small values give a quick, rough report.
    bayes : bool, default True
        Fit the Bayesian models (False: maximum likelihood only).
    hierarchical : bool, optional
        Fit the hierarchical (segment) model; default: when the calibration cohort has at
        most 30,000 customers (its sampling time grows with the data: about 70 s for the
        23,570 customers of the CDNOW master on 2 cores).
    seed : int
        Random seed of the notebook.
    show_code : bool, default False
        Keep the code cells in the HTML.
    progress : bool, default True
        Show a progress bar while the notebook runs.
    keep_notebook : path, optional
        Also save the executed notebook there.
    log : callable, optional
        Receives progress messages (default: print to standard error).
    engine : {"duckdb", "pandas"}, default "duckdb"
        How a `transactions` file is aggregated: inside DuckDB, never loaded (bounded
        memory, see :func:`open_transactions`), or loaded into pandas
        (:func:`read_transactions`; the same numbers, memory grows with the log).

    Returns
    -------
    dict
        The report's key numbers (see the notebook's last cell) plus ``"html"`` (path),
        ``"calibration_end"``, ``"calibration_end_chosen"`` and ``"seconds"``.

    Raises
    ------
    FileNotFoundError, DataError
        Missing file or bad input (checked before the notebook runs).
    RuntimeError
        The notebook failed (the message names the cell's error).
    """
    import papermill as pm

    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    if engine not in ENGINES:
        raise DataError(None, f"engine must be one of {list(ENGINES)}, got {engine!r}")
    if transactions is None:
        from .datasets import cdnow_transactions

        tx = cdnow_transactions()
        customer, date, amount = "customer_id", "date", "amount"
        source = "CDNOW master (23,570 customers, 1997-01-01 to 1998-06-30)"
    else:  # the notebook opens it the same way
        tx = ENGINES[engine](transactions, customer)
        source = str(transactions)
    say(f"[1/3] checking {source}")
    info = check_inputs(
        tx,
        customer=customer,
        date=date,
        amount=amount,
        segment=segment,
        calibration_end=calibration_end,
        observation_end=observation_end,
    )
    del tx  # the notebook reads the log itself
    cal_end = info["calibration_end"].strftime("%Y-%m-%d")
    how = "chosen: middle of the data, holdout at most a year" if info["chosen"] else "given"
    say(
        f"      calibration period ends {cal_end} ({how}); holdout "
        f"{info['holdout_weeks']:.1f} weeks; {info['customers']:,} customers"
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    params = {
        "transactions": None if transactions is None else str(Path(transactions).resolve()),
        "customer": customer,
        "date": date,
        "amount": amount,
        "segment": segment,
        # None: the notebook picks the same default and says so
        "calibration_end": None if info["chosen"] else cal_end,
        "observation_end": None if observation_end is None else str(observation_end),
        "bayes": bool(bayes),
        "hierarchical": hierarchical,
        "seed": int(seed),
        "engine": engine,
    }
    for name, value in (("draws", draws), ("tune", tune), ("chains", chains)):
        if value is not None:
            if int(value) < 1:
                raise DataError(None, f"{name} must be at least 1, got {value}")
            params[name] = int(value)
    with tempfile.TemporaryDirectory(prefix="clvmodels-report-") as tmp:
        summary_path = Path(tmp) / "summary.json"
        params["summary_path"] = str(summary_path)
        executed = Path(keep_notebook) if keep_notebook else Path(tmp) / "report.ipynb"
        say(f"[2/3] running the report notebook ({NOTEBOOK})")
        try:
            nb = pm.execute_notebook(
                str(notebook_path()),
                str(executed),
                parameters=params,
                kernel_name="python3",
                progress_bar=progress,
                cwd=tmp,
                kernel_manager_class=_kernel_manager_class(),
            )
        except pm.PapermillExecutionError as exc:
            raise RuntimeError(
                f"the report notebook failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
            ) from None
        say(f"[3/3] writing {out}")
        clean, stderr = _prepare_for_html(nb)
        for line in dict.fromkeys(stderr):  # each message once
            say(f"      notebook message (not in the report): {line}")
        try:
            html = _export_html(clean, show_code)
        except Exception as exc:  # noqa: BLE001 - not the user's input: exit code 1
            raise RuntimeError(f"exporting the HTML failed: {exc}") from None
        out.write_text(html, encoding="utf-8")
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    summary.update(
        {
            "html": str(out),
            "calibration_end": cal_end,
            "calibration_end_chosen": info["chosen"],
            "seconds": time.perf_counter() - t0,
        }
    )
    return summary
