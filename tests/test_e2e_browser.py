"""End to end in headless Debian Chromium: open the dashboard, visit every page, change the
student and see the chart change, train a tiny run from the Train page until it finishes.

Screenshots go to $CMKT_SCREENSHOTS (default: a pytest temp folder, printed at the end)."""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (/usr/bin/chromium)"),
]


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = Path(os.environ.get("CMKT_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    yield d
    print(f"\nscreenshots: {d}")


@pytest.fixture(scope="module")
def browser_page(dash_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            browser.close()


def settle(page, timeout: float = 60_000):
    """Let a rerun start, then wait until the script is idle."""
    page.wait_for_timeout(250)
    page.wait_for_selector(IDLE, timeout=timeout)


def snap(page, path: Path):
    """A screenshot of the whole page (Streamlit scrolls inside its main block)."""
    h = page.evaluate("() => { const e = document.querySelector('[data-testid=\"stMainBlockContainer\"]');"
                      " return e ? e.scrollHeight : 1000; }")
    page.set_viewport_size({"width": 1400, "height": min(int(h) + 150, 8000)})
    page.wait_for_timeout(600)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})


def nav(page, title: str):
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title, exact=True).click()
    page.wait_for_selector(f'h1:has-text("{title}")')
    settle(page)


def assert_no_exception(page):
    assert page.locator('[data-testid="stException"]').count() == 0


def test_every_page_student_change_and_training(dash_server, browser_page, shots):
    url, runs = dash_server
    page = browser_page

    # Runs (the default page): the demo pair is there on first start
    page.goto(url + "/")
    page.wait_for_selector('h1:has-text("Runs")')
    settle(page)
    page.wait_for_selector('[data-testid="stDataFrame"]')
    assert_no_exception(page)
    snap(page, shots / "1-runs.png")

    # Students: pick another student, the mastery chart changes
    nav(page, "Students")
    page.wait_for_selector('[data-testid="stPlotlyChart"] .scatterlayer .trace', state="attached")
    assert_no_exception(page)
    first_chart = page.locator('[data-testid="stPlotlyChart"]').first
    before = first_chart.locator(".scatterlayer").inner_html()
    page.wait_for_selector('h3:has-text("Mastery of T0001")')
    snap(page, shots / "3-students.png")
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Student (")
    box.click()
    page.keyboard.type("T0007")
    t0 = time.perf_counter()
    page.keyboard.press("Enter")
    page.wait_for_selector('h3:has-text("Mastery of T0007")')
    settle(page)
    page.wait_for_function(
        "(before) => { const e = document.querySelector('[data-testid=\"stPlotlyChart\"] .scatterlayer');"
        " return e && e.innerHTML !== before; }", arg=before)
    redraw = time.perf_counter() - t0
    assert "student=T0007" in page.url
    assert_no_exception(page)
    snap(page, shots / "3-students-T0007.png")
    print(f"\nStudents redraw after a student change (demo data): {redraw:.2f}s")

    # a shared link survives a reload
    page.reload()
    page.wait_for_selector('h3:has-text("Mastery of T0007")')
    settle(page)

    # Class: links to the Students page carry run and student
    nav(page, "Class")
    page.wait_for_selector('[data-testid="stPlotlyChart"]')
    assert_no_exception(page)
    link = page.locator('[data-testid="stPageLink"] a[href*="student="]').first
    href = link.get_attribute("href")
    assert "run=demo%2Fdemo-cumulative" in href or "run=demo/demo-cumulative" in href
    snap(page, shots / "4-class.png")
    student = re.search(r"student=([^&]+)", href).group(1)
    link.click()
    page.wait_for_selector(f'h3:has-text("Mastery of {student}")')
    settle(page)
    assert f"student={student}" in page.url

    # Consistency: one column per checkpoint, the violations highlighted
    nav(page, "Consistency")
    table = page.locator('[data-testid="stTable"]')
    table.wait_for()
    assert "demo-original (original)" in table.inner_text()
    assert "demo-cumulative (cumulative)" in table.inner_text()
    assert_no_exception(page)
    snap(page, shots / "5-consistency.png")

    # Compare
    nav(page, "Compare")
    page.wait_for_selector('[data-testid="stPlotlyChart"]')
    assert_no_exception(page)
    snap(page, shots / "6-compare.png")

    # Train: a tiny run from the page, watched until it finishes
    nav(page, "Train")
    assert_no_exception(page)
    snap(page, shots / "2-train.png")
    for label, value in (("Students", "40"), ("Skills", "5"), ("Epochs", "1")):
        box = page.locator(f'input[aria-label="{label}"]')
        box.fill(value)
        box.press("Enter")
        settle(page)
    page.locator('[data-testid="stRadio"]').filter(has_text="Model").get_by_text(
        "both, as a pair for comparison").click()
    settle(page)
    page.get_by_role("button", name="Start training").click()
    page.wait_for_selector("text=/Started .*sim-original-quick.*sim-cumulative-quick/")
    settle(page)
    snap(page, shots / "2-train-started.png")
    # a reload loses nothing: the runs are read back from their folders
    page.reload()
    page.wait_for_selector('h1:has-text("Train")')
    settle(page)
    for p in runs.iterdir():
        if (p / "status.json").exists():
            page.wait_for_selector(f"text={p.name}", state="attached")
    # both runs train at once in their own processes; the page follows them by itself
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        made = [p for p in runs.iterdir() if (p / "status.json").exists()]
        states = [json.loads((p / "status.json").read_text()).get("state") for p in made]
        if len(made) == 2 and all(s in ("finished", "failed", "cancelled") for s in states):
            break
        time.sleep(0.5)
    assert sorted(states) == ["finished", "finished"], states
    page.wait_for_selector("text=No run in progress", timeout=30_000)
    page.wait_for_selector("text=/finished: 1 epoch/", timeout=30_000)
    settle(page)
    assert_no_exception(page)
    snap(page, shots / "2-train-finished.png")
    done = sorted(made, key=lambda p: p.name)
    cfgs = [json.loads((p / "config.json").read_text()) for p in done]
    assert {c["model"]["mode"] for c in cfgs} == {"original", "cumulative"}
    assert cfgs[0]["pair"] and cfgs[0]["pair"] == cfgs[1]["pair"]
    for c in cfgs:
        assert c["train"]["data"] == "sim:students=40,skills=5" and c["train"]["epochs"] == 1
    # the new run shows up on the Runs page
    nav(page, "Runs")
    for p in done:
        page.wait_for_selector(f"text={p.name}", state="attached")
    snap(page, shots / "1-runs-after-training.png")


def test_runs_url_opens_the_runs_page(dash_server, browser_page):
    """/runs (the name in the sidebar) opens the Runs page: no 'Page not found' dialog."""
    url, _ = dash_server
    page = browser_page
    for path in ("/runs", "/"):
        page.goto(url + path)
        page.wait_for_selector('h1:has-text("Runs")')
        settle(page)
        page.wait_for_timeout(500)
        assert page.get_by_text("Page not found").count() == 0, path
        assert_no_exception(page)
