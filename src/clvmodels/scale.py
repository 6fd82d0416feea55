"""Scale: transaction logs larger than memory, millions of customers, Dask clusters.

Four tools, each a thin layer over the rest of the package (no formula is repeated here):

* :func:`read_transactions` and :func:`rfm_from_file` summarise a Parquet or CSV log
  through DuckDB, which streams the file and spills to disk past its memory limit: the
  log is never loaded into pandas, only the per-customer RFM frame is.
  :func:`~clvmodels.rfm_summary` and :func:`~clvmodels.calibration_holdout` also accept
  polars, DuckDB, Dask and pyarrow frames directly (the aggregation runs in their engine).
* :func:`compress` turns an RFM frame of any engine (pandas, polars, DuckDB, Dask) into its
  distinct rows with a ``weight`` column: the input a model's ``fit(..., weights=...)``
  needs, computed where the data live. Fitting on it gives exactly the likelihood of the
  full data. (``fit`` compresses pandas frames itself, in about a second for 10M rows.)
* :func:`score` predicts for any number of customers: once per distinct RFM row, in
  chunks of bounded memory, then spread back to every customer.
* :func:`score_dask` does the same on each partition of a Dask DataFrame, on the workers of
  a ``dask.distributed`` cluster. The models travel as their JSON description
  (:meth:`~clvmodels.models._base.MLEModel.to_dict`), not as pickled objects.

Examples
--------
>>> import clvmodels as cm
>>> from clvmodels import scale
>>> bg = cm.BGNBD.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426)
>>> rfm = bg.simulate(1000, T=38.0, random_state=1)
>>> scale.score(bg, rfm, t=39.0).columns.tolist()
['probability_alive', 'expected_purchases']
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from typing import Any

import narwhals as nw
import numpy as np
import pandas as pd

from ._validate import check_columns, to_narwhals, validate_rfm
from .clv import customer_lifetime_value
from .errors import DataError
from .models._base import compress_rows, unique_rows
from .reader import CSV_MISSING
from .rfm import calibration_holdout, rfm_summary

__all__ = ["compress", "read_transactions", "rfm_from_file", "score", "score_dask"]

CHUNK_ROWS = 500_000
_PARQUET = {".parquet", ".pq", ".parq"}


# --- files through DuckDB -----------------------------------------------------------------


def read_transactions(
    path: str | Path,
    *,
    connection: Any = None,
    memory_limit: str | None = "2GB",
    threads: int | None = None,
    temp_directory: str | Path | None = None,
    text_columns: tuple[str, ...] | list[str] = (),
):
    """A lazy DuckDB relation over a Parquet or CSV transaction log (nothing is read yet).

    The raw columns as DuckDB types them, for :func:`rfm_from_file` and directories or
    globs of Parquet files; :func:`clvmodels.read_transactions` is the checked reader
    (content sniffing, dialect, ids as text, the data rules) that the commands use.

    Parameters
    ----------
    path : str or Path
        A Parquet file (``.parquet``, ``.pq``), a CSV file (``.csv``, ``.tsv``, optionally
        compressed), a directory of Parquet files, or a glob such as ``"logs/*.parquet"``.
        CSV column types are detected by DuckDB from the whole file (one extra pass), so
        that a value far down the file cannot break the type guessed from its first rows
        in the middle of a query; the values pandas reads as missing (:data:`CSV_MISSING`:
        empty, ``NA``, ``NULL``, ``nan``, ...) are missing here too.
    connection : duckdb.DuckDBPyConnection, optional
        Use this connection (its settings are left alone). By default a new in-memory
        connection with the settings below.
    memory_limit : str, default "2GB"
        DuckDB's memory limit; aggregations larger than that spill to `temp_directory`.
    threads : int, optional
        DuckDB worker threads (default: DuckDB's, one per core).
    temp_directory : str or Path, optional
        Where DuckDB spills (default: ``clvmodels-duckdb`` in the system's temporary
        folder, not DuckDB's own default, a ``.tmp`` folder in the working directory).
    text_columns : sequence of str
        CSV columns to read as text whatever they look like (customer ids such as
        ``"007"`` keep their leading zeros); names the file lacks are ignored.

    Returns
    -------
    duckdb.DuckDBPyRelation
        Pass it to :func:`~clvmodels.rfm_summary` or :func:`~clvmodels.calibration_holdout`.

    Raises
    ------
    FileNotFoundError
        No such file or directory.
    DataError
        DuckDB cannot read the file as Parquet or CSV.
    """
    import duckdb

    p = Path(path)
    text = str(path)
    is_glob = any(ch in text for ch in "*?[")
    if not is_glob and not p.exists():
        raise FileNotFoundError(f"transactions file not found: {path}")
    if connection is None:
        config: dict[str, Any] = {}
        if memory_limit is not None:
            config["memory_limit"] = memory_limit
        if threads is not None:
            config["threads"] = int(threads)
        if temp_directory is None:
            temp_directory = Path(tempfile.gettempdir()) / "clvmodels-duckdb"
        config["temp_directory"] = str(temp_directory)
        connection = duckdb.connect(config=config)
    suffixes = [s.lower() for s in p.suffixes]
    kind = "Parquet" if p.is_dir() or any(s in _PARQUET for s in suffixes) else "CSV"
    try:
        if p.is_dir():
            return connection.read_parquet(str(p / "**" / "*.parquet"))
        if kind == "Parquet":
            return connection.read_parquet(text)
        header = connection.read_csv(text).columns  # sniffs the first rows only
        dtype = {c: "VARCHAR" for c in text_columns if c in header}
        return connection.read_csv(
            text, sample_size=-1, dtype=dtype or None, na_values=list(CSV_MISSING)
        )
    except duckdb.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(None, f"cannot read {path} as {kind}: {reason}") from None


def rfm_from_file(
    path: str | Path,
    customer: str,
    date: str,
    amount: str | None = None,
    *,
    observation_end: object = None,
    calibration_end: object = None,
    unit: str | float = "W",
    allow_returns: bool = False,
    date_format: str | None = None,
    memory_limit: str | None = "2GB",
    threads: int | None = None,
    temp_directory: str | Path | None = None,
) -> pd.DataFrame:
    """RFM frame (or calibration/holdout frame) of a Parquet or CSV log, through DuckDB.

    The log is scanned by DuckDB in bounded memory (`memory_limit`, spilling beyond it);
    only the per-customer result reaches pandas. The numbers are those of
    :func:`~clvmodels.rfm_summary` on the same log loaded into pandas (same conventions,
    same validation, the same messages for bad rows, counted by DuckDB).

    Parameters
    ----------
    path
        See :func:`read_transactions`.
    customer, date, amount, observation_end, unit, allow_returns, date_format
        As in :func:`~clvmodels.rfm_summary`.
    calibration_end : date-like, optional
        If given, the result is :func:`~clvmodels.calibration_holdout`'s frame.
    memory_limit, threads, temp_directory
        DuckDB settings, see :func:`read_transactions`.

    Returns
    -------
    pandas.DataFrame
        Indexed by customer id, as :func:`~clvmodels.rfm_summary` or
        :func:`~clvmodels.calibration_holdout`.
    """
    rel = read_transactions(
        path, memory_limit=memory_limit, threads=threads, temp_directory=temp_directory
    )
    kwargs = dict(
        customer=customer, date=date, amount=amount, observation_end=observation_end,
        unit=unit, allow_returns=allow_returns, date_format=date_format,
    )  # fmt: skip
    if calibration_end is None:
        return rfm_summary(rel, **kwargs)
    return calibration_holdout(rel, calibration_end=calibration_end, **kwargs)


# --- compression for fitting -------------------------------------------------------------


def compress(
    rfm: object,
    columns: tuple[str, ...] | list[str] = ("frequency", "recency", "T"),
    *,
    weight: str = "weight",
) -> pd.DataFrame:
    """Distinct rows of `columns` with their count, computed by the frame's own engine.

    ``model.fit(compress(rfm), weights="weight")`` gives the fit of ``model.fit(rfm)``
    (exactly the same likelihood) without moving the full frame: pass a Dask, DuckDB or
    polars frame of RFM rows and only the distinct rows (thousands to a few million, however
    many customers) reach pandas. For a Gamma-Gamma fit use
    ``columns=("frequency", "monetary_value")``.

    Parameters
    ----------
    rfm : DataFrame of any engine narwhals supports
        RFM rows, one per customer.
    columns : sequence of str
        The columns the model reads.
    weight : str, default "weight"
        Name of the count column.

    Returns
    -------
    pandas.DataFrame
        `columns` (float64) and `weight` (float64), sorted by `columns`.
    """
    columns = list(columns)
    if isinstance(rfm, pd.DataFrame):
        check_columns(rfm, columns, what="RFM frame")
        unique, counts = compress_rows([rfm[c].to_numpy(dtype=float) for c in columns])
        return pd.DataFrame({**dict(zip(columns, unique, strict=True)), weight: counts})
    lf = to_narwhals(rfm)
    check_columns(list(lf.collect_schema().names()), columns, what="RFM frame")
    out = lf.group_by(*columns).agg(nw.len().alias(weight)).collect()
    frame = pd.DataFrame(
        {c: np.asarray(out.get_column(c).to_numpy(), dtype=float) for c in [*columns, weight]}
    )
    return frame.sort_values(columns, ignore_index=True)


# --- scoring -------------------------------------------------------------------------------


def _model_columns(model) -> list[str]:
    return list(getattr(model, "columns", ("frequency", "recency", "T")))


def score(
    model,
    rfm: pd.DataFrame,
    *,
    t: float,
    spend_model=None,
    horizon: float | None = None,
    period: float | None = None,
    discount_rate: float = 0.01,
    margin: float = 1.0,
    chunk_size: int = CHUNK_ROWS,
) -> pd.DataFrame:
    """Predictions for every customer, computed once per distinct RFM row, in chunks.

    Customers with identical histories get identical predictions, so the model is
    evaluated on the distinct rows only (a few hundred thousand for ten million customers
    whose ages are whole days) and in chunks of `chunk_size` rows, which bounds the memory
    of the intermediate arrays; the results are then spread back to every customer.

    Parameters
    ----------
    model : fitted transaction model (BGNBD, MBGNBD, ParetoNBD, BGBB)
    rfm : pandas.DataFrame
        RFM frame (with ``monetary_value`` when `spend_model` is given).
    t : float
        Horizon of ``expected_purchases``, in the frame's time unit.
    spend_model : fitted GammaGamma, optional
        Adds ``expected_spend``, and ``clv`` when `horizon` is given.
    horizon, period, discount_rate, margin
        As in :func:`~clvmodels.customer_lifetime_value` (``period`` defaults to `horizon`).
    chunk_size : int
        Distinct rows evaluated at once.

    Returns
    -------
    pandas.DataFrame
        Indexed like `rfm`: ``probability_alive``, ``expected_purchases`` and, with a
        spend model, ``expected_spend`` and ``clv``; the values the model's own methods
        give on the full frame.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of rows, got {chunk_size}")
    if horizon is not None and spend_model is None:
        raise ValueError("horizon needs a spend_model (the CLV is purchases x spend)")
    columns = _model_columns(model)
    checked = validate_rfm(rfm, require_monetary=spend_model is not None)
    if spend_model is not None:
        columns.append("monetary_value")
    unique, inverse, _, _ = unique_rows([checked[c].to_numpy(dtype=float) for c in columns])
    distinct = pd.DataFrame(dict(zip(columns, unique, strict=True)))
    names = ["probability_alive", "expected_purchases"]
    if spend_model is not None:
        names.append("expected_spend")
        if horizon is not None:
            names.append("clv")
    values = {name: np.empty(len(distinct)) for name in names}
    for start in range(0, len(distinct), chunk_size):
        part = distinct.iloc[start : start + chunk_size]
        rows = slice(start, start + len(part))
        values["probability_alive"][rows] = model.probability_alive(part).to_numpy()
        values["expected_purchases"][rows] = model.expected_purchases(t, part).to_numpy()
        if spend_model is not None:
            values["expected_spend"][rows] = spend_model.expected_spend(part).to_numpy()
        if "clv" in values:
            values["clv"][rows] = customer_lifetime_value(
                model, spend_model, part, horizon=horizon,
                period=horizon if period is None else period,
                discount_rate=discount_rate, margin=margin,
            ).to_numpy()  # fmt: skip
    return pd.DataFrame({name: v[inverse] for name, v in values.items()}, index=rfm.index)


def _spec(model) -> dict[str, Any] | None:
    """What a worker needs to rebuild a fitted model: its class name and parameters."""
    if model is None:
        return None
    spec = model.to_dict()
    return {"model": spec["model"], "params": spec["params"]}


def _from_spec(spec: dict[str, Any] | None):
    if spec is None:
        return None
    models = importlib.import_module("clvmodels.models")
    return getattr(models, spec["model"]).from_params(**spec["params"])


def _score_partition(part: pd.DataFrame, model_spec, spend_spec, kwargs) -> pd.DataFrame:
    if len(part) == 0:
        names = ["probability_alive", "expected_purchases"]
        if spend_spec is not None:
            names += ["expected_spend"] + (["clv"] if kwargs.get("horizon") else [])
        return pd.DataFrame({n: np.zeros(0) for n in names}, index=part.index)
    return score(_from_spec(model_spec), part, spend_model=_from_spec(spend_spec), **kwargs)


def score_dask(
    model,
    ddf,
    *,
    t: float,
    spend_model=None,
    horizon: float | None = None,
    period: float | None = None,
    discount_rate: float = 0.01,
    margin: float = 1.0,
    chunk_size: int = CHUNK_ROWS,
):
    """:func:`score` on every partition of a Dask DataFrame of RFM rows (lazy).

    Each partition is scored by whichever worker holds it (``map_partitions``); the models
    are sent to the workers as their class name and parameters, which are rebuilt there
    with ``from_params`` (no pickled model objects). Nothing is computed until the result
    is: call ``.compute()``, ``.to_parquet(...)`` or ``.persist()``. With a
    ``dask.distributed`` client, the work runs on its cluster.

    Parameters
    ----------
    model, t, spend_model, horizon, period, discount_rate, margin, chunk_size
        As in :func:`score`; the models must be fitted (or built with ``from_params``).
    ddf : dask.dataframe.DataFrame
        RFM rows (one per customer), e.g. read from Parquet with ``dd.read_parquet``.

    Returns
    -------
    dask.dataframe.DataFrame
        Same index and partitions as `ddf`; columns as in :func:`score`.

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> import clvmodels as cm
    >>> bg = cm.BGNBD.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426)
    >>> rfm = bg.simulate(1000, T=38.0, random_state=1)
    >>> scores = score_dask(bg, dd.from_pandas(rfm, npartitions=4), t=39.0)
    >>> bool((scores.compute() == score(bg, rfm, t=39.0)).all().all())
    True
    """
    if horizon is not None and spend_model is None:
        raise ValueError("horizon needs a spend_model (the CLV is purchases x spend)")
    model._check_fitted()
    if spend_model is not None:
        spend_model._check_fitted()
    kwargs = dict(t=t, horizon=horizon, period=period, discount_rate=discount_rate,
                  margin=margin, chunk_size=chunk_size)  # fmt: skip
    names = ["probability_alive", "expected_purchases"]
    if spend_model is not None:
        names += ["expected_spend"] + (["clv"] if horizon is not None else [])
    meta = pd.DataFrame({n: pd.Series(dtype=np.float64) for n in names},
                        index=ddf._meta.index)  # fmt: skip
    return ddf.map_partitions(_score_partition, _spec(model), _spec(spend_model), kwargs, meta=meta)
