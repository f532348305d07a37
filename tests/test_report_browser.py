"""The HTML report as users see it: rendered by a real Chromium (Debian's ``chromium``, driven by Playwright;
``scripts/test.sh`` installs it) for the report of ``monitor demo`` and of a ``monitor replay`` of the
``mixed`` scenario. No console errors, every plot loaded and displayed, the per-feature drift tables and the
alerts timeline present and readable; a full-page screenshot is kept in the test's tmp directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from monitor.cli import app

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (scripts/test.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)  # no browser download: Debian's
        yield b
        b.close()


def _replay_report(out: Path) -> Path:
    runner = CliRunner()
    r = runner.invoke(app, ["simulate", "mixed", "--out", str(out / "events.jsonl"), "--reference-dir",
                            str(out / "refs"), "--rate", "10"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["reference", "build", "--model", "fraud", "--data", str(out / "refs/fraud.reference.csv"),
                            "--out", str(out / "fraud.json")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["replay", str(out / "events.jsonl"), "--reference", str(out / "fraud.json"), "--out",
                            str(out / "replay"), "--window", "5m"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["report", str(out / "replay"), "--title", "replay of mixed"])
    assert r.exit_code == 0, r.output
    return out / "replay" / "report.html"


def _demo_report(out: Path) -> Path:
    from monitor.demo import run_demo

    return run_demo(out / "demo", "mixed", windows=12, window_s=5.0, rate=60.0, speed=4.0, seed=2)


@pytest.mark.parametrize("make", [_replay_report, _demo_report], ids=["replay", "demo"])
def test_report_renders_in_chromium(browser: Any, make: Any, tmp_path: Path) -> None:
    report = make(tmp_path)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url[:80]}"))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    shot = tmp_path / f"{report.parent.name}-report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert problems == []

    images = page.eval_on_selector_all("img", "els => els.map(e => ({src: e.src.slice(0, 22), done: e.complete, "
                                              "w: e.naturalWidth, h: e.naturalHeight, "
                                              "shown: e.getBoundingClientRect().width}))")
    assert len(images) == 1, images  # one model (fraud), one figure
    for img in images:
        assert img["src"] == "data:image/png;base64," and img["done"], img
        assert img["w"] > 600 and img["h"] > 600 and img["shown"] > 600, img  # loaded and displayed

    drift = page.locator("table[id^='drift-'] tbody tr")
    features = drift.all_inner_texts()
    assert any(row.startswith("amount\t") for row in features), features
    assert any(row.startswith("score (model output)\t") for row in features), features
    amount = next(row for row in features if row.startswith("amount\t")).split("\t")
    assert int(amount[1].split(" / ")[0]) >= 3, amount  # the planted +1 sd shift is flagged window after window

    alerts = page.locator("#alerts-table tbody tr").all_inner_texts()
    assert any("FeatureDrift" in row and "firing" in row for row in alerts), alerts
    for row in alerts:
        cells = row.split("\t")
        assert cells[3] == "fraud" and cells[4] == "v3", cells  # model and version in their own columns
        assert "__" not in row, row  # pseudo-features by name, not as underscored tags
    assert page.locator("h2#alerts").is_visible() and page.locator("h2#retraining").is_visible()
    assert shot.stat().st_size > 100_000
    page.close()


def test_segment_report_renders_in_chromium(browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay of ``segment_shift`` with segments on: the segments table lists every segment with country=PL
    first and highlighted, PL's figure is displayed, and its alerts name the segment."""
    runner = CliRunner()
    r = runner.invoke(app, ["simulate", "segment_shift", "--out", str(tmp_path / "events.jsonl"), "--reference-dir",
                            str(tmp_path / "refs"), "--rate", "3.4", "--windows", "8"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["reference", "build", "--model", "fraud", "--data", str(tmp_path / "refs/fraud.reference.csv"),
                            "--out", str(tmp_path / "fraud.json"), "--segments", "country,device"])
    assert r.exit_code == 0, r.output
    monkeypatch.setenv("MONITOR_SEGMENTS", "country,device")
    r = runner.invoke(app, ["replay", str(tmp_path / "events.jsonl"), "--reference", str(tmp_path / "fraud.json"),
                            "--out", str(tmp_path / "replay"), "--window", "5m"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["report", str(tmp_path / "replay"), "--title", "replay of segment_shift"])
    assert r.exit_code == 0, r.output
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto((tmp_path / "replay" / "report.html").as_uri())
    page.wait_for_load_state("load")
    page.screenshot(path=str(tmp_path / "segments-report.png"), full_page=True)
    assert problems == []
    rows = page.locator("table#segments-fraud tbody tr").all_inner_texts()
    assert [row.split("\t")[0] for row in rows][:1] == ["country=PL"], rows
    assert {row.split("\t")[0] for row in rows} == {"country=US", "country=DE", "country=FR", "country=GB", "country=IN",
                                                    "country=PL", "device=mobile", "device=desktop", "device=tablet"}
    pl = rows[0].split("\t")
    assert pl[2].startswith("4 / 8") and "amount" in pl[3], pl  # moved from window 4 on: flagged in all four
    assert all(row.split("\t")[2].startswith("0 /") for row in rows[1:]), rows
    assert page.locator("table#segments-fraud tbody tr.drifted").count() == 1
    figure = page.locator("img[alt='plots for fraud [country=PL] (version v3)'], img[alt='plots for fraud [country=PL]']")
    assert figure.count() == 1 and figure.evaluate("e => e.complete && e.naturalWidth > 600")
    assert figure.bounding_box()["width"] > 600  # type: ignore[index]
    alerts = page.locator("#alerts-table tbody tr").all_inner_texts()
    assert alerts and all(row.split("\t")[6] == "country=PL" for row in alerts), alerts
    page.close()
