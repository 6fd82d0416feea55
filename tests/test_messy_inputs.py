"""Messy exports, the way shops, tills and spreadsheets write them, through every door.

Each case is a small file and how a user would pass it. Every case goes through
``clvmodels summary``, ``clvmodels report --check-only`` (the report's reading, checks
and split; the notebook itself runs in tests/test_report.py) and the Python API
(:func:`clvmodels.read_transactions` with both engines). For every case: the exit codes,
one line naming the CLI flag (or the Python keyword) for a rejected file, no traceback and
no Python warning, and the file unchanged (its hash). For every accepted file: the same
RFM frame from the pandas and the DuckDB paths under two machine time zones, and the same
customers, transactions and revenue from ``summary`` and ``report``.
"""

from __future__ import annotations

import hashlib
import io
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import clvmodels as cm
from clvmodels import cli

COLS = ["Kunde", "Zeit", "Betrag", "Region"]
KW = dict(customer="Kunde", date="Zeit", amount="Betrag")
FLAGS = ["--customer", "Kunde", "--date", "Zeit", "--amount", "Betrag"]


def base_log(n_customers: int = 90, seed: int = 3) -> pd.DataFrame:
    """Customers with text ids (leading zeros), times of day, 2021-01 to 2022-06."""
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2021-01-01 08:00")
    for c in range(n_customers):
        t = rng.uniform(0, 200)
        rate = rng.gamma(1.0, 1 / 30)
        while t < 545:
            rows.append((f"{c:05d}", start + pd.Timedelta(days=float(t)),
                         round(float(rng.gamma(3.0, 12.0)), 2), ["Nord", "Süd", "West"][c % 3]))
            if rng.uniform() < 0.15:
                break
            t += rng.exponential(1 / rate) + 0.5
    return pd.DataFrame(rows, columns=COLS)


def text(df: pd.DataFrame, fmt: str = "%Y-%m-%d %H:%M:%S") -> pd.DataFrame:
    return df.assign(Zeit=df["Zeit"].dt.strftime(fmt))


def csv(df: pd.DataFrame, **kw) -> bytes:
    buf = io.StringIO()
    df.to_csv(buf, index=False, **kw)
    return buf.getvalue().encode("utf-8")


def parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


BASE = base_log()


def with_rows(rows: list[tuple]) -> pd.DataFrame:
    return pd.concat([BASE, pd.DataFrame(rows, columns=COLS)], ignore_index=True)


@dataclass
class Case:
    content: bytes
    flags: list[str] = field(default_factory=list)  # besides the column flags
    keywords: dict = field(default_factory=dict)  # the same, as Python keywords
    error: tuple[str, str] | None = None  # (CLI fragment, Python fragment) when rejected
    columns: list[str] | None = None  # the column flags (default FLAGS)
    quality: dict = field(default_factory=dict)  # expected counts of log.quality
    report_error: str | None = None  # only the report rejects it (too little data)
    name: str = "transactions.csv"


def offsets(values) -> pd.DataFrame:
    out = text(BASE, "%Y-%m-%dT%H:%M:%S")
    return out.assign(Zeit=[t + values[i % len(values)] for i, t in enumerate(out["Zeit"])])


DUP = BASE.iloc[[0, 1, 2]]
CASES = {
    # ---- accepted --------------------------------------------------------------------
    "clean comma file": Case(csv(text(BASE))),
    "semicolon, decimal comma": Case(csv(text(BASE), sep=";", decimal=",")),
    "tab separated": Case(csv(text(BASE), sep="\t")),
    "pipe separated": Case(csv(text(BASE), sep="|")),
    "byte-order mark": Case(b"\xef\xbb\xbf" + csv(text(BASE))),
    "CRLF line ends": Case(csv(text(BASE), lineterminator="\r\n")),
    "quoted fields with separators": Case(
        csv(text(BASE).assign(Region=lambda d: d["Region"] + ", Filiale \"A\""))),
    "Parquet named .csv": Case(parquet(BASE)),
    "Parquet with text dates": Case(parquet(text(BASE)), name="log.parquet"),
    "ids 00123 and 123 differ": Case(
        csv(text(with_rows([("123", pd.Timestamp("2021-05-01 10:00"), 5.0, "Nord")]))),
        quality={"customers": BASE["Kunde"].nunique() + 1}),
    "20-digit ids": Case(csv(text(BASE.assign(Kunde="98765432109876543210" + BASE["Kunde"])))),
    "mixed UTC offsets": Case(csv(offsets(["+02:00", "-05:00", "Z"])),
                              quality={"offsets_converted": len(BASE)}),
    "offsets in a named zone": Case(csv(offsets(["+0100", "-0700"])),
                                    flags=["--timezone", "America/New_York"],
                                    keywords={"timezone": "America/New_York"}),
    "day first dates": Case(csv(text(BASE, "%d/%m/%Y %H:%M"))),
    "ambiguous dates with a format": Case(
        csv(text(BASE[BASE["Zeit"].dt.day <= 12], "%d/%m/%Y")),
        flags=["--date-format", "%d/%m/%Y"], keywords={"date_format": "%d/%m/%Y"}),
    "date only": Case(csv(text(BASE, "%Y-%m-%d"))),
    "exact duplicates kept": Case(csv(text(pd.concat([BASE, DUP]))), quality={"duplicates": 3}),
    "exact duplicates dropped": Case(
        csv(text(pd.concat([BASE, DUP]))), flags=["--duplicates", "drop"],
        keywords={"duplicates": "drop"}, quality={"transactions": len(BASE)}),
    "returns allowed": Case(
        csv(text(with_rows([(BASE["Kunde"][0], BASE["Zeit"][0], -5.0, "Nord")]))),
        flags=["--allow-returns"], keywords={"allow_returns": True}, quality={"returns": 1}),
    "zero amounts": Case(csv(text(BASE.assign(Betrag=BASE["Betrag"].where(BASE.index % 9 > 0,
                                                                         0.0)))),
                         quality={"zero_amounts": int((BASE.index % 9 == 0).sum())}),
    "typo year with an observation end": Case(
        csv(text(with_rows([("00001", pd.Timestamp("2204-03-01"), 9.0, "Nord")]))),
        flags=["--observation-end", "2022-06-30"], keywords={"observation_end": "2022-06-30"},
        quality={"transactions": len(BASE)}),
    "extra columns and padding": Case(
        csv(text(BASE).assign(Betrag=lambda d: " " + d["Betrag"].astype(str) + " ",
                              Kasse="K1", Notiz="NA"))),
    "one-valued segment": Case(csv(text(BASE.assign(Region="alle"))),
                               flags=["--segment", "Region"], keywords={"segment": "Region"}),
    "too little data for the report": Case(csv(text(base_log(20, seed=5))),
                                          report_error="too little data"),
    # ---- rejected --------------------------------------------------------------------
    "empty file": Case(b"", error=("is empty", "is empty")),
    "header only": Case(b"Kunde,Zeit,Betrag\n", error=("header but no rows",) * 2),
    "column twice in the header": Case(b"Kunde,Zeit,Betrag,Zeit\n1,2021-01-01,3,x\n",
                                       error=("appears 2 times",) * 2),
    "one column for two roles": Case(csv(text(BASE)), columns=["--customer", "Kunde", "--date",
                                     "Kunde", "--amount", "Betrag"],
                                     error=("--customer and --date", "customer and date")),
    "missing column": Case(csv(text(BASE)), columns=["--customer", "Kundennummer", "--date",
                           "Zeit", "--amount", "Betrag"],
                           error=("--customer Kunde", "customer='Kunde'")),
    "duplicates refused": Case(csv(text(pd.concat([BASE, DUP]))), flags=["--duplicates", "error"],
                               keywords={"duplicates": "error"},
                               error=("--duplicates drop", "duplicates='drop'")),
    "negative amounts": Case(
        csv(text(with_rows([(BASE["Kunde"][0], BASE["Zeit"][0], -5.0, "Nord")]))),
        error=("--allow-returns", "allow_returns=True")),
    "typo year 2204": Case(csv(text(with_rows([("00001", pd.Timestamp("2204-03-01"), 9.0,
                                                 "Nord")]))),
                           error=("--observation-end", "observation_end=")),
    "ambiguous day and month": Case(csv(text(BASE[BASE["Zeit"].dt.day <= 12], "%d/%m/%Y")),
                                    error=("--date-format", "date_format=")),
    "unparseable dates": Case(csv(text(BASE).assign(Zeit="gestern")),
                              error=("--date-format", "date_format=")),
    "a bad date far down": Case(csv(pd.concat([text(BASE), text(BASE.iloc[:1]).assign(
        Zeit="31.02.2021")])), error=("(1 row)", "(1 row)")),
    "currency symbols": Case(csv(text(BASE).assign(Betrag="$" + BASE["Betrag"].astype(str))),
                             error=("currency symbols", "currency symbols")),
    "thousands separators": Case(csv(text(BASE).assign(Betrag="1.234,50"), sep=";"),
                                 error=("--decimal", "decimal=")),
    "missing customer ids": Case(csv(text(BASE.assign(Kunde=BASE["Kunde"].where(
        BASE.index > 1)))), error=("must not be missing (null, NaN or NaT) (2 rows)",) * 2),
    "offsets on some dates only": Case(csv(text(BASE, "%Y-%m-%dT%H:%M:%S").assign(
        Zeit=lambda d: d["Zeit"].where(d.index % 2 == 0, d["Zeit"] + "+01:00"))),
        error=("some dates carry a UTC offset",) * 2),
    "an Excel file named .csv": Case(b"PK\x03\x04" + bytes(200), error=("zip file",) * 2),
    "not text": Case(bytes(range(256)) * 4, error=("neither Parquet nor UTF-8",) * 2),
    "wrong separator given": Case(csv(text(BASE)), flags=["--sep", ";"], keywords={"sep": ";"},
                                  error=("--sep", "sep=")),
    "unknown time zone": Case(csv(text(BASE)), flags=["--timezone", "Europe/Bonn"],
                              keywords={"timezone": "Europe/Bonn"},
                              error=("--timezone", "timezone=")),
}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(tmp_path: Path, case: Case) -> Path:
    path = tmp_path / case.name
    path.write_bytes(case.content)
    return path


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = cli.main(argv)
    out = capsys.readouterr()
    assert not caught, [str(w.message) for w in caught]  # no Python warning reaches the user
    return code, out.out, out.err


def check_rejected(code: int, err: str, fragment: str, python_fragment: str) -> None:
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if not ln.startswith(("[1/3]", "      "))]
    assert len(lines) == 1 and lines[0].startswith("clvmodels: error: "), err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err
    if "=" in python_fragment and "=" not in fragment:  # CLI users see flags, not keywords
        assert python_fragment not in lines[0], lines[0]


def data_numbers(text_: str) -> tuple[int, int, str]:
    """Customers, transactions and revenue from the data-quality line of either command."""
    m = re.search(r"([\d,]+) transactions of ([\d,]+) customers .*?, revenue ([-\d,.]+)", text_)
    assert m, text_
    return int(m[2].replace(",", "")), int(m[1].replace(",", "")), m[3]


@pytest.mark.parametrize("name", list(CASES))
def test_messy_input(name, tmp_path, capsys, monkeypatch):
    case = CASES[name]
    path = write(tmp_path, case)
    before = digest(path)
    monkeypatch.chdir(tmp_path)
    argv = ["--transactions", str(path), *(case.columns or FLAGS), *case.flags]
    code_s, out_s, err_s = run(["summary", *argv], capsys)
    code_r, out_r, err_r = run(["report", "--check-only", *argv], capsys)
    assert not (tmp_path / "report.html").exists()
    kw = dict(KW)
    if case.columns:
        kw = dict(zip(("customer", "date", "amount"), case.columns[1::2], strict=True))
    kw |= case.keywords
    if case.error is not None:
        check_rejected(code_s, err_s, case.error[0], case.error[1])
        check_rejected(code_r, err_r, case.error[0], case.error[1])
        for engine in ("duckdb", "pandas"):
            with pytest.raises((ValueError, FileNotFoundError)) as info:
                cm.read_transactions(path, **kw, engine=engine)
            assert case.error[1] in str(info.value), str(info.value)
    else:
        assert code_s == 0, err_s
        assert err_s == ""
        numbers = data_numbers(out_s)
        if case.report_error:
            check_rejected(code_r, err_r, case.report_error, case.report_error)
        else:
            assert code_r == 0, err_r
            assert data_numbers(out_r) == numbers  # summary and report agree
        frames = {}
        for tz in ("UTC", "Pacific/Kiritimati"):  # the machine's zone must not matter
            monkeypatch.setenv("TZ", tz)
            time.tzset()
            for engine in ("duckdb", "pandas"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", cm.DataWarning)
                    log = cm.read_transactions(path, **kw, engine=engine)
                frames[tz, engine] = cm.rfm_summary(log, unit="D")
                for key, value in case.quality.items():
                    assert getattr(log.quality, key) == value, (key, log.quality)
                q = log.quality
                assert (q.customers, q.transactions) == numbers[:2]
                assert f"{q.revenue:,.2f}" == numbers[2]
        monkeypatch.delenv("TZ")
        time.tzset()
        ref = frames["UTC", "pandas"]
        assert len(ref) == numbers[0]
        for frame in frames.values():
            pd.testing.assert_frame_equal(frame, ref, check_exact=False, rtol=1e-12, atol=0)
    assert digest(path) == before  # the caller's file is never modified


def test_the_table_is_large_enough():
    accepted = [c for c in CASES.values() if c.error is None]
    assert len(CASES) >= 30 and len(accepted) >= 15


def test_ids_are_text_and_keep_leading_zeros(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("id,day,usd\n00123,2021-01-01,1\n123,2021-01-02,2\n"
                    "123456789012345678901234,2021-01-03,3\n")
    for engine in ("duckdb", "pandas"):
        rfm = cm.rfm_summary(cm.read_transactions(path, "id", "day", "usd", engine=engine))
        assert rfm.index.tolist() == ["00123", "123", "123456789012345678901234"]


def test_offsets_are_converted_to_the_named_zone_before_the_day(tmp_path):
    """23:30 at +05:00 is 18:30 UTC and 13:30 in New York: the same day; 01:30 at +00:00
    on Mar 2 is Mar 1 (20:30 EST) in New York."""
    path = tmp_path / "tz.csv"
    path.write_text("c,t\na,2021-03-01T23:30:00+05:00\na,2021-03-02T01:30:00Z\n"
                    "a,2021-07-01T03:00:00+00:00\n")
    for engine in ("duckdb", "pandas"):
        utc = cm.rfm_summary(cm.read_transactions(path, "c", "t", None, engine=engine), unit="D")
        ny = cm.rfm_summary(cm.read_transactions(path, "c", "t", None, engine=engine,
                                                 timezone="America/New_York"), unit="D")
        assert utc.loc["a"].tolist() == [2, 122.0, 122.0]  # Mar 1, Mar 2, Jul 1
        assert ny.loc["a"].tolist() == [1, 121.0, 121.0]  # Mar 1 (twice), Jun 30 (EDT)


def test_python_messages_name_keywords_and_cli_messages_name_flags(tmp_path, capsys):
    path = write(tmp_path, CASES["negative amounts"])
    with pytest.raises(cm.DataError, match=r"allow_returns=True"):
        cm.read_transactions(path, **KW)
    code, _, err = run(["summary", "--transactions", str(path), *FLAGS], capsys)
    assert code == 2 and "--allow-returns" in err and "allow_returns" not in err


def test_duplicates_warn_in_python_and_show_in_the_quality(tmp_path):
    path = write(tmp_path, CASES["exact duplicates kept"])
    with pytest.warns(cm.DataWarning, match="3 exact duplicate rows"):
        log = cm.read_transactions(path, **KW)
    assert "3 exact duplicate rows (same customer, timestamp and amount) kept" in str(log.quality)
    assert log.quality.to_frame().loc["exact duplicate rows (warn)", "value"] == "3"


@pytest.mark.slow  # fresh interpreters: what a terminal shows, import-time warnings included
@pytest.mark.parametrize("name", ["negative amounts", "ambiguous day and month", "header only"])
def test_a_terminal_sees_one_line(name, tmp_path):
    import subprocess
    import sys

    path = write(tmp_path, CASES[name])
    for command in ("summary", "report"):
        result = subprocess.run(
            [sys.executable, "-m", "clvmodels.cli", command, "--transactions", str(path), *FLAGS],
            capture_output=True, text=True, cwd=tmp_path, timeout=300,
        )  # fmt: skip
        check_rejected(result.returncode, result.stderr, *CASES[name].error)
        assert "Warning" not in result.stderr and result.stdout == ""
