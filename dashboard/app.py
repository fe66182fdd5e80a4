"""cmkt dashboard: `streamlit run dashboard/app.py` (or `./run.sh app`).

Pages live in pages/, shared state, charts and pickers in dashboard/. Runs are read from
$CMKT_RUNS_DIR (default runs/) and the demo pair in assets/demo/.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard.state import list_entries, runs_dir  # noqa: E402

PAGES = ROOT / "pages"

st.set_page_config(page_title="cmkt dashboard", page_icon=":material/school:", layout="wide")

pages = [
    # The default page is served at /, so its own url_path would answer "Page not found":
    # the same script is also registered, hidden from the menu, at /runs.
    st.Page(PAGES / "runs.py", title="Runs", icon=":material/folder_open:", url_path="home", default=True),
    st.Page(PAGES / "runs.py", title="Runs", icon=":material/folder_open:", url_path="runs",
            visibility="hidden"),
    st.Page(PAGES / "train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page(PAGES / "students.py", title="Students", icon=":material/person:", url_path="students"),
    st.Page(PAGES / "class.py", title="Class", icon=":material/groups:", url_path="class"),
    st.Page(PAGES / "consistency.py", title="Consistency", icon=":material/rule:", url_path="consistency"),
    st.Page(PAGES / "compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
]
nav = st.navigation(pages)

with st.sidebar:
    st.markdown("**cmkt** · Cumulative Mastery Knowledge Tracing")
    active = [e for e in list_entries() if e.active]
    if active:
        st.info(f"{len(active)} run(s) training: " + ", ".join(e.name for e in active),
                icon=":material/model_training:")
    st.caption(f"Runs folder: `{runs_dir().resolve()}`")

nav.run()
