"""``clvmodels report``: input checks (one line, exit code 2), the self-contained HTML
export, the packaged notebook, and the command end to end (slow: it runs the notebook)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

import clvmodels as cm
from clvmodels import report

ROOT = Path(__file__).resolve().parents[1]
ODD = {
    "customer": "Kunden-Nr.",
    "date": "Zeitpunkt (UTC)",
    "amount": "Betrag €",
    "segment": "Region / Segment",
}


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600):
    return subprocess.run(
        [sys.executable, "-m", "clvmodels.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


def odd_log(n_customers: int = 300, seed: int = 1) -> pd.DataFrame:
    """A generated log: odd column names, times of day, unsorted rows, a segment column."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2022-03-01")
    rows = []
    for c in range(n_customers):
        region = ["Nord", "Süd", "West"][c % 3]
        lam = rng.gamma(0.8, 1 / 8) * (1.5 if region == "Süd" else 1.0)  # per day
        p = rng.beta(1.0, 4.0)
        t = rng.uniform(0, 120)
        spend = rng.gamma(4.0, 10.0)
        while t < 540:
            rows.append(
                (
                    f"K-{c:04d}",
                    start + pd.Timedelta(days=float(t)),
                    round(float(rng.gamma(6.0, spend / 6.0)), 2),
                    region,
                )
            )
            if rng.uniform() < p:
                break
            t += rng.exponential(1 / lam)
    out = pd.DataFrame(rows, columns=[ODD["customer"], ODD["date"], ODD["amount"], ODD["segment"]])
    out[ODD["date"]] = out[ODD["date"]].dt.strftime("%Y-%m-%d %H:%M:%S")
    return out.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="module")
def odd_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("odd") / "meine transaktionen.csv"
    odd_log().to_csv(path, index=False)
    return path


def odd_args(path) -> list[str]:
    return [
        "report",
        "--transactions",
        str(path),
        "--customer",
        ODD["customer"],
        "--date",
        ODD["date"],
        "--amount",
        ODD["amount"],
    ]


# ---- bad input: one line, exit code 2 ------------------------------------------------------
def _bad(tmp_path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return path


def _with_flags(flags: list[str], expected: str):
    """A bad-input case: a valid 60-customer log with these flags."""
    return (lambda tmp: odd_args(_bad(tmp, odd_log(60))) + flags, expected)


BAD_CASES = {
    "missing file": (
        lambda tmp: ["report", "--transactions", str(tmp / "nope.csv")],
        "transactions file not found",
    ),
    "unknown column": (
        lambda tmp: [
            "report",
            "--transactions",
            str(_bad(tmp, odd_log(60))),
            "--customer",
            "kunde",
            "--date",
            ODD["date"],
            "--amount",
            ODD["amount"],
        ],
        "'kunde': not found in bad.csv",
    ),
    "unparseable dates": (
        lambda tmp: odd_args(_bad(tmp, odd_log(60).assign(**{ODD["date"]: "gestern"}))),
        "Zeitpunkt (UTC)",
    ),
    "too little data": (lambda tmp: odd_args(_bad(tmp, odd_log(12))), "too little data"),
    "segment per customer": (
        lambda tmp: (
            odd_args(
                _bad(
                    tmp,
                    odd_log(60).assign(
                        **{ODD["segment"]: lambda d: np.where(np.arange(len(d)) % 2, "A", "B")}
                    ),
                )
            )
            + ["--segment", ODD["segment"]]
        ),
        "more than one segment",
    ),
    "unknown segment column": _with_flags(["--segment", "Region"], "'Region': not found"),
    "calibration end after the data": _with_flags(["--calibration-end", "2030-01-01"],
                                                  "calibration_end"),
    "bad amounts": (
        lambda tmp: odd_args(_bad(tmp, odd_log(60).assign(**{ODD["amount"]: "zwölf"}))),
        "Betrag €",
    ),
    "negative acquisition cost": _with_flags(
        ["--acquisition-cost", "-5"],
        "--acquisition-cost: an acquisition cost must be a finite number >= 0"),
    "channel and segment differ": _with_flags(
        ["--channel", ODD["segment"], "--segment", ODD["customer"]],
        "--channel and --segment name different columns"),
    "cost file with unknown columns": (
        lambda tmp: odd_args(_bad(tmp, odd_log(60))) + [
            "--channel", ODD["segment"], "--acquisition-cost",
            _table_csv(tmp, {"channel": ["Nord"], "budget": [10.0]})],
        "--acquisition-cost: the CSV costs.csv needs one column segment or channel and one "
        "of cost, cost_per_customer or spend",
    ),
    "negative channel spend": (
        lambda tmp: odd_args(_bad(tmp, odd_log(60))) + [
            "--channel", ODD["segment"], "--acquisition-cost",
            _table_csv(tmp, {"channel": ["Nord", "Süd", "West"], "spend": [10.0, -1.0, 0.0]})],
        "--acquisition-cost: an acquisition cost must be a finite number >= 0 (0: no "
        "acquisition cost); 1 of 3 values break the rule",
    ),
    "horizon of 0 weeks": _with_flags(["--horizon", "0"],
                                      "--horizon: a number of weeks from 1 to 520"),
    "acquisition cost file missing a segment": (
        lambda tmp: odd_args(_bad(tmp, odd_log(60)))
        + ["--acquisition-cost", _cost_csv(tmp, {"1997-01": 10.0})],
        "--acquisition-cost: no cost for",
    ),
}


def _table_csv(tmp: Path, columns: dict) -> str:
    path = tmp / "costs.csv"
    pd.DataFrame(columns).to_csv(path, index=False)
    return str(path)


def _cost_csv(tmp: Path, costs: dict) -> str:
    path = tmp / "costs.csv"
    pd.DataFrame({"segment": list(costs), "cost": list(costs.values())}).to_csv(path, index=False)
    return str(path)


def _check_one_line(code: int, stderr: str, expected: str, tmp_path: Path) -> None:
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("clvmodels: error: ")
    assert expected in lines[-1]
    assert "Traceback" not in stderr
    # the one-line message is the only line apart from step 1's progress and data lines
    assert all(line.startswith(("[1/3]", "      ")) for line in lines[:-1])
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys, case):
    from clvmodels import cli

    make_args, expected = BAD_CASES[case]
    monkeypatch.chdir(tmp_path)
    code = cli.main(make_args(tmp_path))
    _check_one_line(code, capsys.readouterr().err, expected, tmp_path)


@pytest.mark.slow  # a fresh interpreter per case
@pytest.mark.parametrize("case", ["missing file", "unparseable dates"])
def test_bad_input_from_the_command_line(tmp_path, case):
    make_args, expected = BAD_CASES[case]
    result = run_cli(*make_args(tmp_path), cwd=tmp_path, timeout=120)
    _check_one_line(result.returncode, result.stderr, expected, tmp_path)


def test_summary_prints_no_infinite_clv_to_cac(odd_csv, capsys):
    """`clvmodels summary` takes no acquisition cost: no CLV:CAC column (it printed inf)."""
    from clvmodels import cli

    assert cli.main(["summary", *odd_args(odd_csv)[1:]]) == 0
    out = capsys.readouterr().out
    formula = out.split("The formula:")[1].split("BG/NBD")[0]
    assert "clv_to_cac" not in formula and "inf" not in formula and "clv" in formula


# ---- pieces --------------------------------------------------------------------------------
def test_default_calibration_end_is_the_papers_split_on_cdnow():
    tx = cm.datasets.cdnow_transactions(sample=True)
    end = report.default_calibration_end(tx, customer="customer_id", date="date")
    assert end == pd.Timestamp("1997-09-30")
    # a 3-year log: the holdout is capped at one year
    long = pd.DataFrame({"c": [1, 2], "d": ["2020-01-01", "2022-12-31"]})
    assert report.default_calibration_end(long, customer="c", date="d") == pd.Timestamp(
        "2021-12-31"
    )


def test_split_of_the_odd_log(odd_csv):
    from clvmodels import analysis

    log = cm.read_transactions(odd_csv, **{k: ODD[k] for k in ("customer", "date", "amount")})
    split = analysis.choose_split(log)
    assert split.chosen and split.customers >= 200 and split.repeat_buyers >= 10
    assert split.calibration_end == report.default_calibration_end(log)


def test_read_transactions_keeps_ids_as_text(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("id,day,usd\n007,2020-01-01,1\n7,2020-01-02,2\n")
    for engine in ("duckdb", "pandas"):
        log = cm.read_transactions(path, "id", "day", "usd", engine=engine)
        assert cm.rfm_summary(log).index.tolist() == ["007", "7"]
    with pytest.raises(FileNotFoundError):
        cm.read_transactions(tmp_path / "missing.parquet")


def test_notebook_is_shipped_with_the_package():
    path = report.notebook_path()
    assert path.name == "04-report.ipynb" and path.is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert include["notebooks/04-report.ipynb"] == "clvmodels/_notebooks/04-report.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in (
        "transactions",
        "customer",
        "date",
        "amount",
        "segment",
        "calibration_end",
        "draws",
        "tune",
        "chains",
        "bayes",
        "seed",
        "summary_path",
    ):
        assert re.search(rf"^{name} = ", tagged[0].source, re.M), name


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.images, self.scripts = [], [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.scripts += tag == "script"
        for key in ("src", "href", "data", "srcset", "poster"):
            if a.get(key):
                self.refs.append(a[key])
        if tag == "img":
            self.images.append(a.get("src", ""))


def check_self_contained(html: str) -> _Refs:
    parser = _Refs()
    parser.feed(html)
    external = [r for r in parser.refs if not r.startswith(("data:", "#"))]
    assert external == []
    assert parser.scripts == 0
    assert not [
        u for u in re.findall(r"url\(([^)]*)\)", html) if not u.strip("'\" ").startswith("data:")
    ]
    assert "@import" not in html
    assert all(src.startswith("data:image/png;base64,") for src in parser.images)
    return parser


def test_html_export_is_self_contained_and_hides_code():
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    cell = nbformat.v4.new_code_cell("secret_code_marker = 1")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={"image/png": base64.b64encode(buf.getvalue()).decode(), "text/plain": "<Figure>"},
        )
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title $x^2$"), cell])
    html = report._export_html(nb, show_code=False)
    parsed = check_self_contained(html)
    assert len(parsed.images) == 1
    assert "secret_code_marker" not in html
    assert "secret_code_marker" in report._export_html(nb, show_code=True)


# ---- end to end (runs the notebook) -------------------------------------------------------
def _check_report(result, out: Path, min_images: int, progress: bool = False) -> str:
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "[2/3] running the report notebook" in result.stderr
    if progress:
        assert "Executing" in result.stderr  # papermill's progress bar
    html = out.read_text(encoding="utf-8")
    parsed = check_self_contained(html)
    assert len(parsed.images) >= min_images
    body = re.sub(r"<style.*?</style>", "", html, flags=re.S)
    # no error output, warning or traceback reaches the reader
    assert "Traceback" not in body and "application/vnd.jupyter.stderr" not in body
    assert "Report written to" in result.stdout
    assert "formula (overall)" in result.stdout and "BG/NBD" in result.stdout
    return html


@pytest.mark.slow
def test_report_on_cdnow_fast(tmp_path):
    out = tmp_path / "cdnow report.html"
    result = run_cli(
        "report",
        "--fast",
        "--draws",  # too few to converge even after the automatic second fit (40 draws)
        "20",
        "--out",
        str(out),
        "--keep-notebook",
        str(tmp_path / "executed.ipynb"),
        cwd=tmp_path,
    )
    html = _check_report(result, out, min_images=6, progress=True)
    assert "calibration period ends 1997-09-30 (chosen" in result.stderr
    assert "Bayesian BG/NBD" in result.stdout
    # 23,570 customers (the default fits it up to 30,000): the hierarchical model is in the
    # summary table; with 20 draws it does not converge: marked, named with the
    # flags to change, not recommended and no number shown for it
    assert re.search(r"^\s+hierarchical BG/NBD \(did not converge\)\s+not a result",
                     result.stdout, re.M)
    assert "did not converge, not used: hierarchical BG/NBD" in result.stdout
    assert "--draws 1000" in result.stdout and "draws=1000" not in result.stdout
    recommended = re.search(r"^Recommended model: (.+?) \(rule:", result.stdout, re.M)
    assert recommended and "converge" not in recommended.group(1)
    assert f"Next 52 weeks: {recommended.group(1)}" in result.stdout
    assert "hierarchical BG/NBD was not fitted" not in result.stdout
    assert "did not converge" in html and "Recommended model" in html
    assert (
        "Holdout 1997-10-01 to 1998-06-30 (39.0 weeks), 23,570 customers: actual "
        "19,684 purchases" in result.stdout
    )
    assert "Customer lifetime value report" in html
    # CDNOW's purchase timing is random: k = 1, said in the section and on the terminal
    assert "Is purchase timing regular?" in html and "MBG/CNBD-k (k = 1)" in html
    assert re.search(r"^Purchase timing: Wheat & Morrison k = 0\.9\d, Poisson-like", result.stdout,
                     re.M)
    executed = nbformat.read(str(tmp_path / "executed.ipynb"), as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "draws = 20" in injected[0].source


SHARED = ROOT.parent / "shared" / "data"


@pytest.mark.slow
def test_report_on_grocery_finds_regular_buyers(tmp_path):
    """BTYDplus' grocery log (seeded spends added: it has none): Wheat & Morrison k near 2,
    MBG/CNBD-k chooses k = 2, forecasts the 2007 holdout better than Pareto/NBD and is
    recommended by the stated rule."""
    from test_analysis import grocery_with_amounts

    path = tmp_path / "grocery.csv"
    grocery_with_amounts().to_csv(path, index=False)
    out = tmp_path / "grocery.html"
    result = run_cli("report", "--transactions", str(path), "--customer", "cust", "--no-bayes",
                     "--no-progress", "--out", str(out), cwd=tmp_path)
    html = _check_report(result, out, min_images=6)
    assert "Holdout 2007-01-01 to 2007-12-30 (52.0 weeks), 1,525 customers: actual 3,389" in (
        result.stdout)
    rows = {m.group(1).strip(): (float(m.group(2).replace(",", "")), float(m.group(3)))
            for m in re.finditer(r"^  (\S.*?)\s{2,}([\d,]+)\s+([+-][\d.]+)%", result.stdout,
                                 re.M)}  # fmt: skip
    regular, pareto = rows["MBG/CNBD-k (k = 2)"], rows["Pareto/NBD"]
    assert regular[0] == pytest.approx(3811.5, abs=1.0)
    assert abs(regular[1]) < abs(pareto[1])
    assert "Purchase timing: Wheat & Morrison k = 1.83, regular" in result.stdout
    assert "Recommended model: MBG/CNBD-k (k = 2)" in result.stdout
    assert "Is purchase timing regular?" in html and "chose k = 2 by likelihood" in html


@pytest.mark.slow
def test_report_on_apparel_by_channel(tmp_path):
    """CLVTools' apparel log with its Channel: --channel and a spend CSV give the value of a
    new customer per channel against CAC = spend / customers acquired."""
    from test_analysis import apparel_with_channel

    path = tmp_path / "apparel.csv"
    apparel_with_channel().to_csv(path, index=False)
    costs = _table_csv(tmp_path, {"channel": ["online", "offline"], "spend": [6000.0, 9000.0]})
    out = tmp_path / "apparel.html"
    result = run_cli("report", "--transactions", str(path), "--customer", "Id", "--date", "Date",
                     "--amount", "Price", "--channel", "Channel", "--acquisition-cost", costs,
                     "--no-bayes", "--no-progress", "--out", str(out), cwd=tmp_path)
    html = _check_report(result, out, min_images=6)
    assert "CAC = marketing and sales spend / customers acquired" in result.stdout
    cac = dict(re.findall(r"^  (online|offline): value [\d,]+, CAC (\d[\d,]*\d|\d)", result.stdout,
                          re.M))
    assert cac == {"online": f"{6000 / 372:,.0f}", "offline": f"{9000 / 228:,.0f}"}
    assert "A new customer per acquisition channel" in html and "Channel" in html


@pytest.mark.slow
def test_report_on_generated_csv_with_odd_columns(tmp_path, odd_csv):
    out = tmp_path / "odd.html"
    result = run_cli(
        *odd_args(odd_csv),
        "--segment",
        ODD["segment"],
        "--fast",
        "--out",
        str(out),
        "--no-progress",
        cwd=tmp_path,
    )
    html = _check_report(result, out, min_images=6)
    assert "(chosen: middle of the data" in result.stderr
    assert "hierarchical BG/NBD" in result.stdout and "Bayesian BG/NBD" in result.stdout
    assert "Region / Segment" in html and "Süd" in html
    assert "meine transaktionen.csv" in html


@pytest.mark.slow
def test_report_summary_json_and_code(tmp_path, odd_csv):
    out = tmp_path / "with code.html"
    summary = report.run_report(
        odd_csv,
        customer=ODD["customer"],
        date=ODD["date"],
        amount=ODD["amount"],
        calibration_end="2023-01-31",
        out=out,
        bayes=False,
        show_code=True,
        progress=False,
        log=lambda msg: None,
    )
    assert summary["calibration_end"] == "2023-01-31" and not summary["calibration_end_chosen"]
    assert summary["holdout_start"] == "2023-02-01"
    assert set(summary["holdout"]) >= {"formula (overall)", "BG/NBD", "Pareto/NBD"}
    assert "Bayesian BG/NBD" not in summary["holdout"]
    assert summary["actual"]["purchases"] > 0 and summary["forecast"]["model"] > 0
    html = out.read_text(encoding="utf-8")
    assert ">formula_clv<" in html  # code shown on request (syntax-highlighted)
    assert 'alt="Figure: ' in html
    json.dumps(summary)


@pytest.mark.slow
def test_report_from_installed_wheel(tmp_path, odd_csv, installed_wheel):
    """The installed command finds the notebook inside the wheel (not the checkout); the
    wheel is installed without dependencies into a fresh venv (see ``installed_wheel``)."""
    venv, python = installed_wheel.venv, installed_wheel.python
    purelib, env = installed_wheel.purelib, installed_wheel.env
    where = subprocess.run(
        [python, "-c", "from clvmodels import report; print(report.notebook_path())"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(purelib) and where.endswith("_notebooks/04-report.ipynb")
    out = tmp_path / "wheel.html"
    result = subprocess.run(
        [
            venv / "bin" / "clvmodels",
            *odd_args(odd_csv),
            "--no-bayes",
            "--no-progress",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    _check_report(result, out, min_images=6)
