"""Shared fixtures. Dashboard fixtures are prefixed `dash_`; none is autouse."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from serve_kit import stop_process

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard" / "app.py"
PAGES = ROOT / "pages"
DEMO = ROOT / "assets" / "demo"


# ---- AppTest ----------------------------------------------------------------------------

@pytest.fixture
def dash_runs(tmp_path, monkeypatch) -> Path:
    """An empty runs folder, used by the dashboard through CMKT_RUNS_DIR."""
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("CMKT_RUNS_DIR", str(runs))
    return runs


@pytest.fixture
def dash_app(dash_runs):
    """open(page, **query) -> an AppTest that has run the dashboard on that page."""
    from streamlit.testing.v1 import AppTest

    def open_page(page: str = "runs", query: dict | None = None, run: bool = True):
        at = AppTest.from_file(str(APP), default_timeout=180)
        for k, v in (query or {}).items():
            at.query_params[k] = v
        at.switch_page(str(PAGES / f"{page}.py"))
        if run:
            at.run()
        return at
    return open_page


def copy_demo_run(runs: Path, mode: str = "cumulative", name: str | None = None, **status) -> Path:
    """A copy of a demo run inside `runs` (optionally renamed, with status.json fields changed)."""
    dst = runs / (name or f"demo-{mode}")
    shutil.copytree(DEMO / f"demo-{mode}", dst)
    if status:
        st = json.loads((dst / "status.json").read_text())
        st.update(status)
        (dst / "status.json").write_text(json.dumps(st))
    return dst


@pytest.fixture
def dash_copy_run():
    return copy_demo_run


# ---- a real dashboard server for the browser tests -------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def dash_server(tmp_path_factory):
    """`streamlit run dashboard/app.py` on 127.0.0.1 and a free port, runs in a temp folder.
    Yields (base url, runs folder). Stopped by its pid at the end."""
    runs = tmp_path_factory.mktemp("dash_runs")
    port = free_port()
    log = open(runs.parent / f"streamlit-{port}.log", "wb")
    env = dict(os.environ, CMKT_RUNS_DIR=str(runs), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false"],
        cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start: see {log.name}")
            time.sleep(0.3)
        yield url, runs
    finally:
        stop_process(proc)
        log.close()
