#!/usr/bin/env python
"""The Class page at scale: time the per-skill class views and the page render on a synthetic
class (no model: random trajectories built directly as a cmkt.analysis.scoring.Trajectories).

    OMP_NUM_THREADS=1 python benchmarks/class_page.py                      # 100k students, 100 skills, 10M steps
    OMP_NUM_THREADS=1 python benchmarks/class_page.py --students 2000 --steps 10 --skills 12   # a quick run

Prints seconds per step and the process's memory: the resident set once the synthetic data is
built (the trajectories alone: mastery is steps x skills float32) and the peak at the end.

Steps timed:
  - class_matrices: final mastery, attempts and correct answers per student and skill;
  - skills_table: the "needs attention" table (per skill, vectorised);
  - student_order, skill_spread, skill_quartiles: the heatmap's order of students, the per-skill
    spread and box-plot figures (cmkt.educator.classview);
  - class_report: the downloadable HTML class report (its heatmap samples 300 students);
  - page, first run: the Class page through Streamlit's AppTest, scored data injected (cold caches);
  - page, threshold change: a full rerun after picking the other threshold (warm caches; in the
    browser only the section's fragment reruns, which is less work still);
  - page, threshold (fragment only): only the "needs attention" fragment, as a browser click runs it;
  - page, 2000 students (fragment): the heatmap fragment alone, slider at its maximum.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402


def rss_gib(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def fake_scored(students: int, skills: int, steps: int, seed: int = 0, practised: int | None = None):
    """A Scored-like object: `students` students with about `steps` steps each (between half and
    1.5 times), each practising about `practised` of the `skills` skills (default a quarter),
    random responses and random mastery in [0, 1] (float32). No model involved."""
    from cmkt.analysis.scoring import Trajectories
    rng = np.random.default_rng(seed)
    practised = practised or max(1, skills // 4)
    lengths = rng.integers(max(1, steps // 2), steps + steps // 2 + 1, students)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    N = int(offsets[-1])
    row = np.repeat(np.arange(students), lengths)
    base = rng.integers(0, skills, students)
    sk = ((base[row] + rng.integers(0, practised, N)) % skills).astype(np.int64)
    del row
    resp = (rng.random(N, dtype=np.float32) < 0.6).astype(np.int64)
    mastery = rng.random((N, skills), dtype=np.float32)
    ids = [f"S{i:06d}" for i in range(students)]
    gains = np.broadcast_to(np.zeros(skills, np.float32), (N, skills))     # unused here: no memory
    traj = Trajectories(ids, offsets, sk, resp, np.full(N, 0.5, np.float32), mastery, gains, "cumulative")
    labels = [str(k) for k in range(skills)]
    names = [f"skill {k}" for k in range(skills)]
    index = {s: i for i, s in enumerate(ids)}
    data = SimpleNamespace(notes=[], source=f"synthetic: {students} students, {skills} skills, {N} steps",
                           index_of=index.__getitem__, student_ids=ids)
    from cmkt.runs.evaluate import Scored
    return Scored(traj, data, {"run": "synthetic", "model_config": {"mode": "cumulative"}}, labels, names)


def timed(label: str, fn, rows: list):
    t = time.perf_counter()
    out = fn()
    secs = time.perf_counter() - t
    rows.append((label, secs))
    print(f"{label:<34} {secs:8.2f} s   (RSS {rss_gib():.2f} GiB)", flush=True)
    return out


def page_app(scored, key=("synthetic-class",)):
    """An AppTest of the dashboard on the Class page, with `scored` injected as the data shown."""
    import dashboard.state as state
    from streamlit.testing.v1 import AppTest
    state.get_scored = lambda entry, data, split: (key, scored)
    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=600)
    at.switch_page(str(REPO / "pages" / "class.py"))
    return at


def fragment_rerun(at, name: str):
    """Rerun only the fragment registered under `name`, as a browser click inside it does
    (AppTest itself always reruns the whole script). A real session keeps its pages between
    runs; AppTest makes a new PagesManager per run, so the pages of the last full run are
    handed to it (st.page_link needs them)."""
    from unittest import mock

    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner_utils.script_requests import RerunData
    from streamlit.testing.v1 import app_test, local_script_runner
    ids = at._fragment_storage.resolve_target(name)
    pages = dict(at._registered_pages)

    class KeptPages(PagesManager):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._set_pages(dict(pages))

    with mock.patch.object(local_script_runner, "RerunData",
                           lambda **kw: RerunData(**kw, fragment_id_queue=list(ids))), \
            mock.patch.object(app_test, "PagesManager", KeptPages):
        at.run()
    return at


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--students", type=int, default=100_000)
    ap.add_argument("--skills", type=int, default=100)
    ap.add_argument("--steps", type=int, default=100, help="mean steps per student")
    ap.add_argument("--no-page", action="store_true", help="skip the AppTest page render")
    args = ap.parse_args(argv)
    os.environ.setdefault("CMKT_RUNS_DIR", tempfile.mkdtemp(prefix="cmkt-class-bench-"))

    from cmkt.educator import classview
    from cmkt.educator.practice import SECURE
    from cmkt.educator.report import class_report

    print(f"load average at the start: {os.getloadavg()[0]:.2f}", flush=True)
    rows: list = []
    scored = timed("build synthetic data", lambda: fake_scored(args.students, args.skills, args.steps), rows)
    traj = scored.traj
    print(f"{len(traj.student_ids):,} students, {traj.num_skills} skills, {len(traj.skills):,} steps; "
          f"RSS with the data: {rss_gib():.2f} GiB", flush=True)
    cm = timed("class_matrices", lambda: classview.class_matrices(traj), rows)
    timed("skills_table", lambda: classview.skills_table(traj, scored.skill_names, scored.skill_labels,
                                                         cm=cm), rows)
    if hasattr(classview, "skill_quartiles"):          # absent before issue 11 (the page looped per skill)
        timed("student_order (heatmap)", lambda: classview.student_order(cm), rows)
        timed("skill_spread", lambda: classview.skill_spread(cm), rows)
        timed("skill_quartiles (distribution)", lambda: classview.skill_quartiles(cm), rows)
    html = timed("class_report (HTML)", lambda: class_report(scored), rows)
    print(f"class report: {len(html) / 2**20:.1f} MiB", flush=True)
    del cm, html
    if not args.no_page:
        at = page_app(scored)
        timed("page, first run", at.run, rows)
        assert not at.exception, [e.value for e in at.exception]
        at.radio(key="cls_thr").set_value(SECURE)
        timed("page, threshold change (full)", at.run, rows)
        assert not at.exception, [e.value for e in at.exception]
        at.radio(key="cls_thr").set_value(0.4)
        if at._fragment_storage._ids_by_target_key.get("cls_attention"):
            timed("page, threshold (fragment only)", lambda: fragment_rerun(at, "cls_attention"), rows)
            assert not at.exception, [e.value for e in at.exception]
            at.run()
            at.slider(key="cls_n").set_value(2000)
            timed("page, 2000 students (fragment)", lambda: fragment_rerun(at, "cls_heatmap"), rows)
            assert not at.exception, [e.value for e in at.exception]
    print(f"peak RSS: {rss_gib('VmHWM'):.2f} GiB; load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
