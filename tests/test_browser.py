"""A real browser opens generated reports: Debian's Chromium, driven by Playwright for Python.

Needs ``/usr/bin/chromium`` (``make test`` installs Debian's ``chromium`` when run as
root) and the ``playwright`` package (the ``test`` extra); no browser download. Without
them the test is skipped with the reason. Screenshots and the reports themselves are
saved to ``build/test-artifacts/`` (or ``$COLLAPSELAB_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from collapselab.experiment.config import load_config
from collapselab.experiment.runner import run
from collapselab.report.html import write_report, write_report_safely

# test_report.py sits beside this file; pytest puts this folder on sys.path.
from test_report import PAYLOAD, SMALL, make_text_run

CHROMIUM = Path("/usr/bin/chromium")
# The network is closed: without these Chromium tries to phone home and logs errors.
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
ARTIFACTS = Path(
    os.environ.get(
        "COLLAPSELAB_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "build/test-artifacts"
    )
)


def _sync_playwright():
    """Playwright's sync API, or a skip saying what is missing."""
    reason = None
    if not CHROMIUM.is_file():
        reason = (
            f"Chromium is not installed at {CHROMIUM}: the browser test needs Debian's "
            "'chromium' package ('make test' installs it when run as root with apt-get)"
        )
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            reason = 'Playwright for Python is not installed: pip install -e ".[test]"'
    if reason is not None:
        pytest.skip(reason)
    return sync_playwright


def _inspect(browser, path: Path, screenshot: Path) -> dict:
    """Open ``path`` and collect what the assertions need; save a full-page screenshot."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    seen = {
        "title": page.title(),
        "images": page.eval_on_selector_all(
            "img", "els => els.map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])"
        ),
        "tables": page.eval_on_selector_all(
            "table.summary",
            "els => els.map(t => [t.dataset.arm, t.querySelectorAll('tbody tr').length])",
        ),
        "text": page.inner_text("body"),
    }
    page.screenshot(path=str(screenshot), full_page=True)
    seen["errors"], seen["requests"] = errors, requests
    page.close()
    return seen


def test_missing_chromium_skips_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "chromium")
    with pytest.raises(pytest.skip.Exception, match=r"Chromium is not installed at .*'chromium'"):
        _sync_playwright()


@pytest.mark.slow
def test_reports_render_in_chromium(tmp_path):
    sync_playwright = _sync_playwright()
    # the run writes its own report, as at the end of `collapselab run`
    result = run(load_config(SMALL), tmp_path / "run", reporter=write_report_safely)
    text_report = write_report([make_text_run(tmp_path / "text")], tmp_path / "text.html")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    cases = [
        # report, title, figures, summary rows per arm (metrics x 3 generations)
        (
            result.report,
            "collapselab report: small",
            5,
            [["replace", 12], ["accumulate", 12], ["plane", 6]],
        ),
        (text_report, "collapselab report: fake", 2, [["fake", 6]]),
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            for report, title, figures, tables in cases:
                name = f"report-{report.stem if report.stem != 'report' else 'run'}"
                shutil.copyfile(report, ARTIFACTS / f"{name}.html")
                seen = _inspect(browser, report, ARTIFACTS / f"{name}.png")
                assert seen["errors"] == []
                assert seen["title"] == title  # the <script> in the config did not run
                assert len(seen["images"]) == figures
                for complete, width, height, alt in seen["images"]:
                    assert complete and width > 0 and height > 0, alt
                assert seen["tables"] == tables
                assert PAYLOAD in seen["text"]  # shown as text
                assert all(url.startswith(("file:", "data:")) for url in seen["requests"])
        finally:
            browser.close()
    assert (ARTIFACTS / "report-run.png").stat().st_size > 10_000
    print(f"screenshots: {ARTIFACTS}")
