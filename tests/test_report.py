"""HTML reports: content, the `cmkt report` command, and the demo student's report opened from
disk in headless Chromium with no network (charts render, prints on 1-2 A4 pages)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from cmkt.cli import main
from cmkt.runs.evaluate import score_checkpoint
from cmkt.educator.practice import LEVEL_LEGEND, practise_next
from cmkt.educator.report import class_report, student_report

DEMO = Path(__file__).resolve().parent.parent / "assets" / "demo" / "demo-cumulative"
CHROMIUM = "/usr/bin/chromium"
REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", re.I)


@pytest.fixture(scope="module")
def scored():
    return score_checkpoint(DEMO, "sim", "test")


@pytest.fixture(scope="module")
def report_file(scored, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "T0005.html"
    path.write_text(student_report(scored, "T0005"))
    return path


def test_student_report_content(scored, report_file):
    html = report_file.read_text()
    assert "Student report: T0005" in html and "demo-cumulative" in html and "sim(" in html
    assert "Strongest: " in html and "weakest practised: " in html
    arr = scored.traj.student(scored.data.index_of("T0005"))
    nxt = practise_next(arr, scored.skill_names, scored.skill_labels)
    assert len(nxt) == 3
    for s in nxt:
        assert f"<b>{s.skill}</b>" in html and s.reason in html
    assert LEVEL_LEGEND in html
    assert html.count('class="plotly-graph-div"') == 1
    assert "plotly.js v" in html or "Plotly=" in html or "window.Plotly" in html   # the library, inline
    assert not REMOTE_SCRIPT.search(html)
    assert "@page { size: A4" in html


def test_student_report_unknown_student(scored):
    with pytest.raises(KeyError, match="ghost"):
        student_report(scored, "ghost")


def test_class_report_content(scored):
    html = class_report(scored)
    assert "Class report" in html and "Skills, needs attention first" in html
    assert "Ratios" in html and "300 students" in html and LEVEL_LEGEND in html
    assert html.count('class="plotly-graph-div"') == 1 and not REMOTE_SCRIPT.search(html)


def test_cli_report(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(DEMO), "--data", "sim", "--student", "T0005", "--out", str(out)]) == 0
    assert "Student report: T0005" in out.read_text()
    out2 = tmp_path / "c.html"
    assert main(["report", str(DEMO), "--data", "sim", "--class", "--out", str(out2)]) == 0
    assert "Class report" in out2.read_text()
    capsys.readouterr()
    bad = tmp_path / "bad.html"
    assert main(["report", str(DEMO), "--data", "sim", "--student", "ghost", "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ghost" in err[0] and "sim" in err[0]
    assert not bad.exists()
    with pytest.raises(SystemExit) as e:                      # neither --student nor --class
        main(["report", str(DEMO), "--data", "sim", "--out", str(bad)])
    assert e.value.code == 2


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (/usr/bin/chromium)")
def test_report_opens_offline_and_prints_on_a4(report_file, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    shots = Path(os.environ.get("CMKT_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    requested = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1200})
            page.route(re.compile(r"^https?://"), lambda route: (requested.append(route.request.url), route.abort()))
            page.goto(report_file.as_uri())
            page.wait_for_selector(".plotly .main-svg", timeout=30_000)
            assert page.locator(".main-svg .scatterlayer .trace").count() >= 3
            page.screenshot(path=str(shots / "report-T0005.png"), full_page=True)
            pdf = page.pdf(format="A4")
        finally:
            browser.close()
    assert requested == []
    (shots / "report-T0005.pdf").write_bytes(pdf)
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
    assert 1 <= pages <= 2, pages
