"""One reader for transaction files: :func:`read_transactions` (Python, ``summary``, ``report``).

A file is read by DuckDB whatever the engine asked for, so every caller sees the same
values: ``engine="duckdb"`` keeps the result lazy (the file is never loaded; every
aggregate runs in DuckDB), ``engine="pandas"`` materialises the same parsed columns into
pandas. What the file holds is decided here, once:

* **Parquet or CSV by content**: a file that starts with the Parquet magic bytes
  ``PAR1`` is Parquet, whatever its name; anything else must be UTF-8 text (a byte-order
  mark is skipped).
* **CSV dialect**: the separator is the one of ``, ; TAB |`` that splits the header and
  the first lines into the same number (at least two) of fields, quotes are ``"``;
  ``sep=`` says it explicitly. Every column is read as text, then:
* **ids are text**: the customer (and segment) column is never parsed as a number:
  ``"00123"`` and ``"123"`` are two customers, and ids of any length are kept.
* **dates**: the one format of :func:`clvmodels.rules.detect_date_format` that reads every
  sampled value (an error when day and month could be swapped), or ``date_format=``;
  a UTC offset (``+02:00``, ``Z``) makes the value an instant, converted to `timezone`
  by the :class:`~clvmodels.TransactionLog`.
* **amounts**: numbers with the decimal mark of :func:`clvmodels.rules.detect_decimal`
  (or ``decimal=``); currency symbols and thousands separators are an error that says so.

Then the parsed columns become a :class:`~clvmodels.TransactionLog`, which applies the
remaining rules (duplicates, returns, future dates, ...).
"""

from __future__ import annotations

import csv
import io
import tempfile
import warnings
from pathlib import Path
from typing import Any

from . import rules
from .errors import DataError, option
from .log import TransactionLog

__all__ = ["CSV_MISSING", "read_transactions"]

# the CSV markers of a missing value: those of pandas.read_csv (its default na_values)
CSV_MISSING = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
               "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan",
               "null")  # fmt: skip
SEPARATORS = (",", ";", "\t", "|")
_HEAD_BYTES = 1 << 16
_SAMPLE = 1000
# a UTC offset after a time of day: group 1 (RE2 syntax, as DuckDB's regexp functions)
_OFFSET_SQL = r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s?(Z|[+-]\d{2}(?::?\d{2})?)$"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _connect(memory_limit: str | None, threads: int | None):
    import duckdb

    spill = Path(tempfile.gettempdir()) / "clvmodels-duckdb"
    config: dict[str, Any] = {"temp_directory": str(spill)}
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    if threads is not None:
        config["threads"] = int(threads)
    return duckdb.connect(config=config)


# --- what the file is ---------------------------------------------------------------------


def _sniff_csv(path: Path, sep: str | None) -> tuple[str, list[str]]:
    """The separator and the header of a CSV file; errors for files that are not one."""
    with open(path, "rb") as fh:
        head = fh.read(_HEAD_BYTES)
        complete = len(head) < _HEAD_BYTES
    if head.startswith(b"PK\x03\x04"):
        raise DataError(None, f"{path.name} is a zip file (an Excel workbook?), not CSV or "
                        "Parquet", hint="Export the sheet as CSV (UTF-8)")  # fmt: skip
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if complete or exc.start < len(head) - 4:  # not a character cut by the 64 KiB read
            raise DataError(
                None, f"{path.name} is neither Parquet nor UTF-8 text (byte {exc.start})",
                hint="Save the file as CSV UTF-8",
            ) from None
        text = head[: exc.start].decode("utf-8-sig")
    lines = text.splitlines()
    if not complete:
        lines = lines[:-1]  # possibly cut
    lines = [ln for ln in lines[:50] if ln.strip()]
    if not lines:
        raise rules.empty_error(f"the file {path.name}")
    candidates = [sep] if sep is not None else list(SEPARATORS)
    best = None
    for c in candidates:
        rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=c, quotechar='"'))
        widths = {len(r) for r in rows}
        width = len(rows[0])
        consistent = len(widths) == 1
        if sep is not None or (width >= 2 and consistent):
            if best is None or (width, consistent) > (best[1], best[2]):
                best = (c, width, consistent, rows[0], len(rows))
    if best is None or best[1] < 2:
        shown = lines[0][:60]
        raise DataError(
            None,
            f"cannot tell the column separator of {path.name} (header {shown!r})",
            hint=f"Pass {option('sep', ';')} (or the file's separator)",
        )
    c, _, _, header, n_lines = best
    if n_lines == 1:
        raise rules.empty_error(f"the file {path.name}", header_only=True)
    header = [h.strip() for h in header]
    for name in header:
        n = header.count(name)
        if n > 1:
            raise DataError(name, f"appears {n} times in the header of {path.name}; column "
                            "names must be unique")  # fmt: skip
    return c, header


def _open(path: Path, con, sep: str | None):
    """A DuckDB relation over the file (every CSV column as text) and its kind."""
    import duckdb

    with open(path, "rb") as fh:
        magic = fh.read(4)
    try:
        if magic == b"PAR1":
            return con.read_parquet(str(path)), "Parquet"
        sep, _ = _sniff_csv(path, sep)
        rel = con.read_csv(
            str(path), all_varchar=True, delimiter=sep, header=True, quotechar='"',
            na_values=list(CSV_MISSING),
        )  # fmt: skip
        return rel, "CSV"
    except duckdb.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        kind = "Parquet" if magic == b"PAR1" else "CSV"
        raise DataError(None, f"cannot read {path.name} as {kind}: {reason[:300]}") from None


# --- the columns --------------------------------------------------------------------------


def _sample(rel, column: str) -> list[str]:
    q = _q(column)
    rows = rel.query("t", f"SELECT DISTINCT {q} FROM t WHERE {q} IS NOT NULL LIMIT {_SAMPLE}")
    return [r[0] for r in rows.fetchall()]


def _examples(rel, condition: str, column: str) -> tuple[int, list[str]]:
    q = _q(column)
    n = rel.query("t", f"SELECT count(*) FROM t WHERE {condition}").fetchall()[0][0]
    shown = rel.query("t", f"SELECT DISTINCT {q} FROM t WHERE {condition} LIMIT 3").fetchall()
    return int(n), [r[0] for r in shown]


def _date_sql(rel, column: str, date_format: str | None) -> str:
    """SQL for the date column: a TIMESTAMP, or a TIMESTAMPTZ where values carry offsets."""
    q = _q(column)
    values = _sample(rel, column)
    offsets = [rules.split_offset(v.strip())[1] for v in values]
    n_with = sum(1 for o in offsets if o)
    if 0 < n_with < len(values):
        raise DataError(
            column,
            "some dates carry a UTC offset and some do not; the calendar day of those "
            "without one would be a guess",
            hint="Export all timestamps with their offset (or all without)",
        )
    if date_format is not None and "%z" in date_format:
        return f"try_strptime({q}, {_lit(date_format)})"
    local = q
    if n_with:
        off = f"regexp_extract(trim({q}), {_lit(_OFFSET_SQL)}, 1)"
        local = f"rtrim(left(trim({q}), length(trim({q})) - length({off})))"
    fmt = date_format or rules.detect_date_format(
        column, [rules.split_offset(v.strip())[0] for v in values]
    )
    parsed = f"try_strptime(trim({local}), {_lit(fmt)})"
    n_bad, shown = _examples(rel, f"{q} IS NOT NULL AND {parsed} IS NULL", column)
    if n_bad:
        raise DataError(
            column,
            f"could not be parsed as dates with format {fmt!r} (e.g. "
            f"{', '.join(repr(v) for v in shown)})",
            n_bad,
            hint=f"Pass {option('date_format', fmt)} with the file's format",
        )
    if not n_with:
        return parsed
    minutes = (
        f"CASE WHEN {off} IN ('Z', '') THEN 0 ELSE "
        f"(CASE WHEN left({off}, 1) = '-' THEN -1 ELSE 1 END) * "
        f"(CAST(substr({off}, 2, 2) AS INTEGER) * 60 + "
        f"COALESCE(TRY_CAST(right(replace({off}, ':', ''), 2) AS INTEGER) "
        f"* (length(replace({off}, ':', '')) > 3)::INTEGER, 0)) END"
    )
    # an instant from the epoch: a cast to TIMESTAMPTZ would read the machine's zone
    return f"to_timestamp(epoch_us({parsed} - to_minutes({minutes})) / 1000000.0)"


def _amount_sql(rel, column: str, decimal: str | None) -> str:
    q = _q(column)
    mark = decimal or rules.detect_decimal(_sample(rel, column))
    text = f"trim({q})" if mark == "." else f"replace(trim({q}), ',', '.')"
    if mark not in (".", ","):
        raise DataError(None, f"decimal must be '.' or ',', got {decimal!r}")
    parsed = f"TRY_CAST({text} AS DOUBLE)"
    n_bad, shown = _examples(rel, f"{q} IS NOT NULL AND {parsed} IS NULL", column)
    if n_bad:
        raise rules.non_numbers_error(column, shown, n_bad, mark)
    return parsed


def read_transactions(
    path: str | Path,
    customer: str = "customer_id",
    date: str = "date",
    amount: str | None = "amount",
    segment: str | None = None,
    *,
    sep: str | None = None,
    decimal: str | None = None,
    date_format: str | None = None,
    timezone: str = "UTC",
    duplicates: str = "warn",
    allow_returns: bool = False,
    observation_end: object = None,
    engine: str | None = None,
    memory_limit: str | None = "1GB",
    threads: int | None = None,
) -> TransactionLog:
    """Open a CSV or Parquet transaction file as a :class:`~clvmodels.TransactionLog`.

    Parameters
    ----------
    path : str or Path
        The file. Parquet or CSV is told by its content, not its name.
    customer, date, amount, segment : str
        Its columns (`amount` and `segment` may be None).
    sep : str, optional
        CSV column separator (default: detected among ``, ; TAB |``).
    decimal : {".", ","}, optional
        Decimal mark of text amounts (default: "," when every amount reads as a
        decimal comma number, else ".").
    date_format : str, optional
        strftime format of text dates (default: the one known format that reads every
        sampled date; an error when day and month order is ambiguous).
    timezone, duplicates, allow_returns, observation_end
        The rules of :class:`~clvmodels.TransactionLog`.
    engine : {"duckdb", "pandas"}, optional
        ``"duckdb"`` (default): the log stays a lazy DuckDB relation over the file,
        aggregated by DuckDB in bounded memory (`memory_limit`, spilling to disk);
        ``"pandas"``: the parsed columns are loaded into pandas (the numpy path).
        Both give the same numbers.
    memory_limit, threads
        DuckDB settings.

    Returns
    -------
    TransactionLog

    Raises
    ------
    FileNotFoundError
        No such file.
    DataError
        The file is empty or has only a header, is not CSV or Parquet, lacks a column,
        names a column twice, or breaks a data rule (the message names the column, the
        rule, the rows and the keyword to pass).
    """
    engine = "duckdb" if engine is None else engine
    if engine not in ("duckdb", "pandas"):
        raise DataError(None, f"engine must be 'duckdb' or 'pandas', got {engine!r}")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"transactions file not found: {path}")
    if p.stat().st_size == 0:
        raise rules.empty_error(f"the file {p.name}")
    roles = {"customer": customer, "date": date, "amount": amount, "segment": segment}
    rules.check_distinct_columns(**roles)
    con = _connect(memory_limit, threads)
    rel, kind = _open(p, con, sep)
    names = list(rel.columns)
    for role, name in roles.items():
        if name is not None and name not in names:
            shown = ", ".join(repr(c) for c in names[:12])
            raise DataError(
                name, f"not found in {p.name} (columns: {shown})",
                hint=f"Pass {option(role, names[0])} with the column to use",
            )
    if kind == "Parquet" and int(rel.aggregate("count(*)").fetchall()[0][0]) == 0:
        raise rules.empty_error(f"the file {p.name}", header_only=True)
    types = dict(zip(names, (str(t) for t in rel.types), strict=True))
    select = [f"CAST({_q(customer)} AS VARCHAR) AS {_q(customer)}"]
    if types[date] == "VARCHAR":
        select.append(f"{_date_sql(rel, date, date_format)} AS {_q(date)}")
    else:
        select.append(_q(date))
    if amount is not None:
        if types[amount] == "VARCHAR":
            select.append(f"{_amount_sql(rel, amount, decimal)} AS {_q(amount)}")
        else:
            select.append(f"CAST({_q(amount)} AS DOUBLE) AS {_q(amount)}")
    if segment is not None:
        select.append(f"CAST({_q(segment)} AS VARCHAR) AS {_q(segment)}")
    parsed = rel.query("raw", f"SELECT {', '.join(select)} FROM raw")
    data = parsed
    if engine == "pandas":
        with warnings.catch_warnings():  # DuckDB's own use of pandas, not the user's concern
            warnings.simplefilter("ignore")
            data = parsed.df()
    log = TransactionLog(
        data, customer, date, amount, segment, timezone=timezone, duplicates=duplicates,
        allow_returns=allow_returns, observation_end=observation_end,
    )  # fmt: skip
    log.source = str(path)
    return log
