"""The HTML report of ``clvmodels report`` in a real browser (headless Chromium through
playwright): it loads from the file alone, without any other request, every figure decodes
and is shown, the page does not scroll sideways and no script error is logged.

Needs a Chromium executable (Debian: ``apt-get install chromium``; ``.ci/run`` installs it);
playwright's own browser download (``playwright install``) is not used. Without Chromium the
test is skipped, or fails when the environment variable ``CI`` is set.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from test_report import _check_report, check_self_contained, run_cli

# headless, and no network traffic of the browser's own (updates, sync, field trials)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    found = shutil.which("chromium")
    if found is None and Path("/usr/bin/chromium").is_file():
        found = "/usr/bin/chromium"
    if found is None:
        message = "Chromium not found (apt-get install chromium): the report is not browser-tested"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, and CI installs Chromium (.ci/run)")
        pytest.skip(message)
    return found


@pytest.mark.slow
def test_report_renders_in_chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    chromium = chromium_path()
    out = tmp_path / "cdnow report.html"
    result = run_cli("report", "--fast", "--no-progress", "--out", str(out), cwd=tmp_path)
    html = _check_report(result, out, min_images=6)
    n_images = len(check_self_contained(html).images)

    requests, failed, errors = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            tmp_path / "profile",  # a fresh user data dir
            executable_path=chromium,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("requestfailed", lambda r: failed.append(f"{r.url[:200]}: {r.failure}"))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            response = page.goto(out.as_uri(), wait_until="load")
            assert response is not None and response.ok
            assert page.title() == "Customer lifetime value report"
            images = page.evaluate(
                """() => Array.from(document.images, i => ({
                    alt: i.alt, complete: i.complete, width: i.naturalWidth,
                    height: i.naturalHeight, shown: i.getBoundingClientRect().width}))"""
            )
            scroll = page.evaluate(
                "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            # row labels (segments such as "1997-01", method names) on one line each
            wrapped = page.evaluate(
                """() => Array.from(document.querySelectorAll('tbody th'), th => {
                    const r = document.createRange(); r.selectNodeContents(th);
                    return [th.innerText, new Set(Array.from(r.getClientRects(),
                        c => Math.round(c.top))).size];
                }).filter(([text, lines]) => lines > 1).map(([text]) => text)"""
            )
            page.screenshot(path=str(tmp_path / "desktop.png"), full_page=True)
            # a phone-sized window: wide tables scroll inside their box, not the page
            narrow = browser.new_page()
            narrow.set_viewport_size({"width": 420, "height": 900})
            narrow.goto(out.as_uri(), wait_until="load")
            narrow_scroll = narrow.evaluate(
                "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            narrow.screenshot(path=str(tmp_path / "narrow.png"), full_page=True)
        finally:
            browser.close()

    # the file itself, nothing else (figures are data: URIs, which make no request)
    assert requests == [out.as_uri()]
    assert failed == []
    assert errors == []
    assert len(images) == n_images >= 6
    broken = [i for i in images if not (i["complete"] and i["width"] > 0 and i["height"] > 0)]
    assert broken == []
    assert all(i["shown"] > 100 for i in images), images
    assert scroll[0] <= scroll[1], f"the page scrolls sideways: {scroll}"
    assert wrapped == [], f"row labels wrap at 1280 px: {wrapped}"
    assert narrow_scroll[0] <= narrow_scroll[1], f"420 px wide: scrolls sideways {narrow_scroll}"
    assert (tmp_path / "desktop.png").stat().st_size > 0 < (tmp_path / "narrow.png").stat().st_size
