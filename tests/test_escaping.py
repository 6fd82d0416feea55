"""Values from an untrusted file in the HTML report: escaped where shown, and the page
sanitised (issue 18, item 10)."""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from clvmodels import escaping

SCRIPT = '<script>alert("x")</script>'
IMG = "<img src=x onerror=alert(1)>"
# SCRIPT as text (the quote as &quot; or &#34;, or plain in element text)
SCRIPT_TEXT = re.compile(r'&lt;script&gt;alert\((&quot;|&#34;|")x(&quot;|&#34;|")\)&lt;/script&gt;')


class _Elements(HTMLParser):
    """Every element and attribute of a page."""

    def __init__(self):
        super().__init__()
        self.tags, self.attrs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, name, value) for name, value in attrs]

    handle_startendtag = handle_starttag


def elements(page: str) -> _Elements:
    parser = _Elements()
    parser.feed(page)
    return parser


def assert_inert(page: str) -> None:
    """No script element, no event-handler attribute, no script URL."""
    found = elements(page)
    assert "script" not in found.tags and "iframe" not in found.tags
    assert [a for a in found.attrs if a[1].startswith("on")] == []
    assert not [a for a in found.attrs if (a[2] or "").strip().lower().startswith("javascript:")]


def test_text_escapes_html_and_markdown():
    out = escaping.text(SCRIPT + " *bold* [x](javascript:alert(1))")
    assert "<" not in out and ">" not in out
    assert "&lt;script&gt;" in out
    assert r"\*bold\*" in out and r"\[x\]\(javascript:alert\(1\)\)" in out
    assert escaping.text("a<b", markdown=False) == "a&lt;b"
    # an apostrophe renders as one in Markdown (the report's conclusions: "customer's");
    # mistune is nbconvert's Markdown renderer
    import mistune

    shown = mistune.html(escaping.text("the customer's <b>x</b> #1"))
    assert shown == "<p>the customer's &lt;b&gt;x&lt;/b&gt; #1</p>\n"


def test_escaped_styler_escapes_index_columns_names_and_text_cells():
    frame = pd.DataFrame(
        {"segment": [SCRIPT, "Nord"], IMG: [1.5, 2.5]},
        index=pd.Index([IMG, "K-2"], name="<b onmouseover=x()>id</b>"),
    )
    page = escaping.escaped(frame.style.format({IMG: "{:.1f}"})).to_html()
    assert_inert(page)
    assert SCRIPT_TEXT.search(page)
    assert page.count("&lt;img src=x onerror=alert(1)&gt;") == 2  # a row label, a column
    assert "&lt;b onmouseover=x()&gt;id&lt;/b&gt;" in page
    assert ">1.5<" in page  # the number format is kept


def test_sanitize_removes_scripts_handlers_and_script_urls_keeps_the_rest():
    page = (
        "<!DOCTYPE html><html><head><style>td > b { color: red }</style>"
        "<script>alert(1)</script><meta http-equiv='refresh' content='0;url=x'></head><body>"
        "<p onclick='x()'>a &amp; b</p>" + IMG
        + "<a href=' JaVa&#115;cript:alert(1)'>link</a><a href='#top'>top</a>"
        "<img src='data:image/png;base64,AAAA' alt='figure'><img src='data:text/html,<b>'>"
        "<svg><script>bad()</script><animate onbegin='alert(1)'/></svg>"
        "<iframe srcdoc='<script>x</script>'></iframe><table><tr><td>1</td></tr></table>"
        "</body></html>"
    )
    clean = escaping.sanitize(page)
    assert_inert(clean)
    assert "alert" not in clean and "refresh" not in clean and "text/html" not in clean
    assert "<style>td > b { color: red }</style>" in clean
    assert "<p>a &amp; b</p>" in clean and '<a href="#top">top</a>' in clean
    assert '<img src="data:image/png;base64,AAAA" alt="figure">' in clean
    assert "<table><tr><td>1</td></tr></table>" in clean
    assert escaping.sanitize(clean) == clean  # idempotent


def hostile_log(n_customers: int = 240, seed: int = 3) -> pd.DataFrame:
    """Transactions whose ids, segment names and column names carry markup."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2022-01-03")
    rows = []
    for c in range(n_customers):
        segment = [SCRIPT, "<b>bold</b>", "plain"][c % 3]
        cid = IMG.replace("(1)", f"({c})")
        t = rng.uniform(0, 100)
        rate = rng.gamma(1.0, 1 / 20)
        while t < 400:
            rows.append((cid, (start + pd.Timedelta(days=float(t))).strftime("%Y-%m-%d"),
                         round(float(rng.gamma(4.0, 8.0)), 2), segment))
            t += rng.exponential(1 / rate) if rng.random() > 0.02 else 1e9
    return pd.DataFrame(rows, columns=["<u>id</u>", "date", "amount", "seg<svg onload=x()>"])


@pytest.mark.slow
def test_hostile_file_through_clvmodels_report(tmp_path):
    """The whole page: no script element, no event handler, and the file's markup shown
    as text where the values appear (segments, which are the channels here, ids, column
    and file names, the conclusions)."""
    import subprocess

    path = tmp_path / "<svg onload=alert(3)>.csv"
    hostile_log().to_csv(path, index=False)
    out = tmp_path / "report.html"
    result = subprocess.run(
        [sys.executable, "-m", "clvmodels.cli", "report", "--transactions", str(path),
         "--customer", "<u>id</u>", "--channel", "seg<svg onload=x()>", "--no-bayes",
         "--acquisition-cost", "10",
         "--no-progress", "--out", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    assert_inert(page)
    body = re.sub(r"<style.*?</style>", "", page, flags=re.S)
    for raw in (SCRIPT, "<img src=x", "<svg onload", "<b>bold</b>", "<u>id</u>"):
        assert raw not in body, raw
    assert SCRIPT_TEXT.search(body)  # segment names
    assert "&lt;img src=x onerror=alert(" in body  # the most valuable customers' ids
    assert "&lt;svg onload=alert(3)&gt;" in body  # the file name
    assert "seg&lt;svg onload=x()&gt;" in body  # the segment column's name
    # the conclusions show a channel as the tables do: the escaped literal text
    bullet = re.search(r"<li>A new customer from channel (.*?) is worth", body)
    assert bullet is not None
    assert "&lt;" in bullet.group(1) and "<" not in bullet.group(1)
