"""The served page in a real headless browser (Chromium via Playwright)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from _monitor_server import free_port, post, start, stop
from _monitor_sim import stream

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "",
                             shutil.which("chromium-browser") or "") if p and Path(p).exists()),
                None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt install chromium)")
def test_page_in_headless_chromium_shows_group_series_and_the_alert(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright's python package is not installed")
    config = tmp_path / "monitor.yaml"
    config.write_text(
        "windows: {size: 1000}\nbootstrap: 20\nsimulations: 20\nalerts:\n"
        "  - {name: auc_drop, metric: auc, attribute: grp, op: '<', threshold: 0.75,\n"
        "     bound: ci, min_n: 200, consecutive: 2}\n")
    port = free_port()
    proc = start(tmp_path / "m.db", port, "--label", "E", "--attribute", "grp", "--config",
                 str(config), "--evaluate-every", "0")
    try:
        preds, labels = stream(windows=5, size=1000, seed=4, shift_group="B", shift_from=3)
        post(port, "predictions", preds)
        post(port, "labels", labels)
        post(port, "evaluate", [])
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            assert page.title() == "fairfoundry monitor"
            charts = page.locator('div.chart[data-metric="auc"][data-attribute="grp"]')
            assert charts.count() == 1
            groups = charts.locator("polyline.series")
            assert sorted(groups.evaluate_all("els => els.map(e => e.dataset.group)")) == ["A", "B"]
            # one point per window in each group's line, inside the drawing area
            pts = groups.first.get_attribute("points").split()
            assert len(pts) == 5
            assert charts.locator("line.alert-mark").count() >= 1
            rows = page.locator("#alert-table tbody tr")
            assert rows.count() >= 1
            assert set(page.locator("#alert-table td.group").all_inner_texts()) == {"B"}
            assert page.locator("#latest tbody tr").count() == 3  # all, A, B
            browser.close()
    finally:
        stop(proc)
