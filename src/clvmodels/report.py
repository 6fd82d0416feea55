"""The HTML report: the ``04-report`` notebook run with papermill, exported with nbconvert.

:func:`run_report` opens the log (:func:`clvmodels.analysis.open_log`: the one reader,
:func:`clvmodels.read_transactions`, so bad input gives one clear
:class:`~clvmodels.errors.DataError` in this process, not a failed notebook), chooses the
split (:func:`clvmodels.analysis.choose_split`, the first step of the analysis), then
executes the notebook shipped with the package, which runs
:func:`clvmodels.analysis.analyze` and displays its result, and writes one
self-contained HTML file: figures are embedded as PNG data, CSS is inline, and no script,
style sheet or image is loaded from anywhere else (the report opens offline). Code cells
are hidden unless ``show_code=True``.

A transaction file is read by DuckDB and, with ``engine="duckdb"`` (the default), never
loaded into pandas: every aggregate of the report runs in DuckDB in bounded memory; only
results of one row per customer at most reach pandas. CDNOW (the default) is a pandas
frame and takes the numpy path; both paths give the same numbers.

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

import pandas as pd

from .analysis import (
    MIN_CUSTOMERS,
    MIN_REPEAT_BUYERS,
    acquisition_costs,
    channel_segment,
    check_costs,
    choose_split,
    default_calibration_end,
    segment_labels,
)
from .analysis import open_log as _open_log
from .errors import DataError
from .escaping import sanitize

__all__ = [
    "MIN_CUSTOMERS",
    "MIN_REPEAT_BUYERS",
    "default_calibration_end",
    "notebook_path",
    "render_notebook",
    "run_report",
    "sampling_params",
]

NOTEBOOK = "04-report.ipynb"
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
/* row labels on one line where there is room ("1997-01" broke at its hyphen) */
@media (min-width: 700px) { .jp-RenderedHTMLCommon tbody th { white-space: nowrap; } }
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


def sampling_params(**settings: int | None) -> dict[str, int]:
    """The sampling settings given (draws, tune, chains: None = the notebook's default),
    checked to be at least 1."""
    out = {}
    for name, value in settings.items():
        if value is not None:
            if int(value) < 1:
                raise DataError(None, f"{name} must be at least 1, got {value}")
            out[name] = int(value)
    return out


def render_notebook(
    name: str,
    params: dict,
    out: Path,
    *,
    show_code: bool = False,
    progress: bool = True,
    keep_notebook: str | Path | None = None,
    say: Callable[[str], None] = print,
) -> dict:
    """Run the packaged notebook ``name`` with papermill and write it as one HTML file.

    The notebook gets ``params`` plus ``summary_path``, where it writes its key numbers as
    JSON; they are returned (empty when it wrote none). Shared by :func:`run_report` and
    :func:`clvmodels.contractual.run_contractual_report`.
    """
    import papermill as pm

    with tempfile.TemporaryDirectory(prefix="clvmodels-report-") as tmp:
        summary_path = Path(tmp) / "summary.json"
        params = {**params, "summary_path": str(summary_path)}
        executed = Path(keep_notebook) if keep_notebook else Path(tmp) / "report.ipynb"
        say(f"[2/3] running the report notebook ({name})")
        try:
            nb = pm.execute_notebook(
                str(notebook_path(name)),
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
        return json.loads(summary_path.read_text()) if summary_path.is_file() else {}


def _plain_number(x: float) -> int | float:
    """52.0 -> 52 (the notebook writes "the next 52 weeks")."""
    return int(x) if float(x).is_integer() else float(x)


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
    check_only: bool = False,
    acquisition_cost: object = None,
    channel: str | None = None,
    caller: str = "python",
    horizon_weeks: float = 52.0,
    pareto_ggg: bool | None = None,
    **read_kw,
) -> dict:
    """Run the report notebook on a transaction log and write a self-contained HTML file.

    Parameters
    ----------
    transactions : path, optional
        CSV or Parquet transaction log; default: the CDNOW master (columns
        ``customer_id``, ``date``, ``amount``). The file is read through DuckDB
        (:func:`clvmodels.read_transactions`) and, with the default engine, never loaded
        whole, so a log larger than memory works.
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
        memory), or loaded into pandas (the same numbers, memory grows with the log).
    acquisition_cost : float, str or mapping, optional
        Cost of acquiring a customer, one number or per segment or channel (a CSV with a
        column ``segment`` or ``channel`` and one of ``cost``, ``cost_per_customer`` or
        ``spend``, see :func:`clvmodels.analysis.acquisition_costs`): the report
        compares each segment's (and channel's) value with it (CLV:CAC).
    channel : str, optional
        Acquisition channel column, one value per customer; it is read as the segment
        column (`segment` must be None or the same). The report adds the value of a new
        customer per channel from the covariate models, against its CAC.
    horizon_weeks : float, default 52
        The forecast's horizon in weeks.
    pareto_ggg : bool, optional
        Fit the regular-buyer model Pareto/GGG (True) or not (False); default: when the
        Bayesian models are fitted and purchase timing is regular (see
        :func:`clvmodels.analysis.analyze`).
    caller : {"python", "cli"}
        Language of the convergence advice (keywords or ``clvmodels report`` flags).
    check_only : bool, default False
        Read and check the log and choose the split, run no notebook and write nothing;
        the returned dict has ``"source"``, ``"data"`` and the split.
    **read_kw
        How the file is read and the data rules: `sep`, `decimal`, `date_format`,
        `timezone`, `duplicates`, `allow_returns` of :func:`clvmodels.read_transactions`.

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
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    read_kw = {**read_kw, "engine": engine}
    where = "CDNOW master" if transactions is None else str(transactions)
    say(f"[1/3] reading and checking {where}")
    segment = channel_segment(channel, segment)
    tx = _open_log(transactions, customer=customer, date=date, amount=amount, segment=segment,
                   observation_end=observation_end, **read_kw)  # fmt: skip
    if segment is not None:
        tx.segments()  # one segment per customer, none missing
    split = choose_split(tx, calibration_end, observation_end)
    if acquisition_cost is not None:  # bad costs stop here, before the notebook runs
        cost = acquisition_costs(acquisition_cost)
        check_costs(cost, segment_labels(tx, split, segment))
        if isinstance(acquisition_cost, str | Path) and isinstance(cost, pd.Series):
            acquisition_cost = str(Path(acquisition_cost).resolve())  # the notebook reads it
        elif isinstance(cost, pd.Series):
            acquisition_cost = {str(k): float(v) for k, v in cost.items()}
        else:
            acquisition_cost = cost
    quality, where = tx.quality, getattr(tx, "source", where)
    data = {"customers": quality.customers, "transactions": quality.transactions,
            "revenue": quality.revenue, "quality": quality.lines()}  # fmt: skip
    del tx  # the notebook reads the log itself
    cal_end = split.calibration_end.strftime("%Y-%m-%d")
    how = "chosen: middle of the data, holdout at most a year" if split.chosen else "given"
    for line in quality.lines():
        say(f"      {line}")
    say(
        f"      calibration period ends {cal_end} ({how}); holdout "
        f"{split.holdout_weeks:.1f} weeks; {split.customers:,} customers"
    )
    if check_only:
        return {"source": where, "data": data, "calibration_end": cal_end,
                "calibration_end_chosen": split.chosen, "customers": split.customers,
                "seconds": time.perf_counter() - t0}  # fmt: skip
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    params = {
        "transactions": None if transactions is None else str(Path(transactions).resolve()),
        "customer": customer,
        "date": date,
        "amount": amount,
        "segment": segment,
        # None: the notebook picks the same default and says so
        "calibration_end": None if split.chosen else cal_end,
        "observation_end": None if observation_end is None else str(observation_end),
        "bayes": bool(bayes),
        "hierarchical": hierarchical,
        "seed": int(seed),
        "read_options": read_kw,
        "acquisition_cost": acquisition_cost,
        "channel": channel,
        "caller": caller,
        "horizon_weeks": _plain_number(horizon_weeks),
        "pareto_ggg": None if pareto_ggg is None else bool(pareto_ggg),
    }
    params.update(sampling_params(draws=draws, tune=tune, chains=chains))
    summary = render_notebook(NOTEBOOK, params, out, show_code=show_code, progress=progress,
                              keep_notebook=keep_notebook, say=say)
    summary.update(
        {
            "html": str(out),
            "calibration_end": cal_end,
            "calibration_end_chosen": split.chosen,
            "data": data,
            "seconds": time.perf_counter() - t0,
        }
    )
    return summary
