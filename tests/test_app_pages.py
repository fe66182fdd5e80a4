"""AppTest for every dashboard page on the demo assets (no browser, no training)."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from cmkt.runs.evaluate import score_checkpoint
from cmkt.analysis.metrics import VIOLATION_KEYS

from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "assets" / "demo"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def figures(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def arr(v) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array {"dtype", "bdata", "shape"}."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        if v.get("shape"):
            a = a.reshape([int(n) for n in str(v["shape"]).split(",")])
        return a
    return np.asarray(v)


def mastery_traces(fig: dict) -> list[dict]:
    return [t for t in fig["data"] if t.get("meta") == "mastery"]


def errors(at) -> list[str]:
    return [e.value for e in at.error]


@pytest.fixture(scope="module")
def demo_scored():
    return score_checkpoint(DEMO / "demo-cumulative", "sim", "test")


# ---- Runs -------------------------------------------------------------------------------

def test_runs_lists_demo_and_runs(dash_app, dash_runs, dash_copy_run):
    dash_copy_run(dash_runs, "original", name="mine-original")
    at = dash_app("runs")
    no_exception(at)
    df = at.dataframe[0].value
    assert {"demo-original", "demo-cumulative", "mine-original"} <= set(df["run"])
    row = df.set_index("run").loc["demo-cumulative"]
    assert row["state"] == "finished" and row["mode"] == "cumulative" and row["data"] == "sim"
    assert row["best val AUC"] > 0.5
    assert row["students with violation"] == 0
    assert df.set_index("run").loc["demo-original", "students with violation"] > 0
    for col in ("state", "data", "mode", "preset", "best val AUC", "started", "finished"):
        assert col in df.columns
    # demo runs are read-only: only the run under runs/ can be deleted
    assert [o for o in at.selectbox(key="delete_pick").options] == ["mine-original · original · sim"]


def test_runs_delete_needs_confirmation(dash_app, dash_runs, dash_copy_run):
    dash_copy_run(dash_runs, "original", name="doomed")
    at = dash_app("runs")
    at.button(key="delete_btn").click().run()
    no_exception(at)
    assert (dash_runs / "doomed").exists()
    assert any("cannot be undone" in w.value for w in at.warning)
    at.button(key="delete_no").click().run()
    assert (dash_runs / "doomed").exists()
    at.button(key="delete_btn").click().run()
    at.button(key="delete_yes").click().run()
    no_exception(at)
    assert not (dash_runs / "doomed").exists()
    assert "doomed" not in set(at.dataframe[0].value["run"])


def test_runs_delete_active_run_refused(dash_app, dash_runs, dash_copy_run):
    import os
    dash_copy_run(dash_runs, "original", name="busy", state="running", pid=os.getpid(), proc_start=None)
    at = dash_app("runs")
    at.button(key="delete_btn").click().run()
    at.button(key="delete_yes").click().run()
    no_exception(at)
    assert (dash_runs / "busy").exists()
    assert any("still running" in e for e in errors(at))


def test_runs_upload_bad_and_good_checkpoint(dash_app, dash_runs):
    at = dash_app("runs")
    at.file_uploader(key="ckpt_upload").set_value(("broken.safetensors", b"\x00" * 64 + b"junk", "application/octet-stream"))
    at.run()
    no_exception(at)
    msg = " ".join(errors(at))
    assert "broken.safetensors" in msg and "not a readable checkpoint" in msg
    assert not list((dash_runs / "uploads" / "checkpoints").glob("*"))   # nothing kept
    good = (DEMO / "demo-cumulative" / "best.safetensors").read_bytes()
    at.file_uploader(key="ckpt_upload").set_value(("../my model.safetensors", good, "application/octet-stream"))
    at.run()
    no_exception(at)
    kept = [p.name for p in (dash_runs / "uploads" / "checkpoints").iterdir()]
    assert kept == ["my_model.safetensors"]
    assert "my_model.safetensors" in set(at.dataframe[0].value["run"])


def test_runs_shows_failed_run_error(dash_app, dash_runs, dash_copy_run):
    dash_copy_run(dash_runs, "original", name="broken-run", state="failed",
                  error="data.csv, line 3: skill id 'x' is not a number")
    at = dash_app("runs")
    no_exception(at)
    assert any("broken-run failed" in e and "line 3" in e for e in errors(at))


# ---- Students ---------------------------------------------------------------------------

def test_students_one_trace_per_practised_skill(dash_app, demo_scored):
    at = dash_app("students", {"run": "demo/demo-cumulative", "student": "T0005"})
    no_exception(at)
    assert not errors(at)
    assert at.selectbox(key="stu_student").value == "T0005"
    fig = figures(at)[0]
    i = demo_scored.data.index_of("T0005")
    practised = np.unique(demo_scored.data.skills[i])
    traces = mastery_traces(fig)
    assert len(traces) == len(practised)
    names = {demo_scored.skill_names[k] for k in practised}
    assert {t["name"].split(" (")[0] for t in traces} == names
    T = len(demo_scored.data.skills[i])
    assert all(len(arr(t["x"])) == T for t in traces)
    # every answer is a marker on the answered skill's line: green correct, red wrong
    answers = [t for t in fig["data"] if t.get("meta") == "answers"]
    assert sum(len(arr(t["x"])) for t in answers) == T
    correct = next(t for t in answers if t["name"] == "correct answer")
    assert len(arr(correct["x"])) == int(demo_scored.data.responses[i].sum())
    # gain heatmap: practised skills x steps
    heat = next(t for f in figures(at) for t in f["data"] if t["type"] == "heatmap")
    assert arr(heat["z"]).shape == (len(practised), T)
    # per-skill summary
    summary = at.dataframe[0].value
    assert len(summary) == len(practised)
    assert {"first mastery", "last mastery", "total gain", "attempts", "accuracy"} <= set(summary.columns)
    assert summary["attempts"].sum() == T
    assert at.get("download_button")
    # the URL names the run and student (shareable)
    assert at.query_params["student"] in ("T0005", ["T0005"])
    assert at.query_params["run"] in ("demo/demo-cumulative", ["demo/demo-cumulative"])


def test_students_pair_side_by_side(dash_app):
    at = dash_app("students", {"run": "demo/demo-original", "student": "T0002"})
    no_exception(at)
    figs = figures(at)
    assert len(figs) == 5                      # mastery, why this prediction, gains, original | cumulative
    assert len(mastery_traces(figs[3])) == len(mastery_traces(figs[4])) == len(mastery_traces(figs[0]))
    text = " ".join(m.value for m in at.markdown)
    assert "demo-original" in text and "demo-cumulative" in text
    # the cumulative side has no violation, the original one does
    assert "mastery drops: 0, negative gains: 0, out of [0,1]: 0" in text


def test_students_change_student_redraws(dash_app):
    at = dash_app("students")
    no_exception(at)
    first = figures(at)[0]
    at.selectbox(key="stu_student").set_value("T0003").run()
    no_exception(at)
    second = figures(at)[0]
    assert not np.array_equal(arr(first["data"][0]["y"]), arr(second["data"][0]["y"]))
    assert at.query_params["student"] in ("T0003", ["T0003"])


def test_students_unknown_student_and_run(dash_app):
    at = dash_app("students", {"run": "demo/nope", "student": "ghost"})
    no_exception(at)
    msg = " ".join(errors(at))
    assert "Unknown run 'demo/nope'" in msg and "Unknown student 'ghost'" in msg
    assert figures(at)          # falls back to a real student


def test_students_data_with_unknown_skills(dash_app, dash_runs):
    up = dash_runs / "uploads" / "data"
    up.mkdir(parents=True)
    bad = up / "many_skills.csv"
    bad.write_text("3\n1,40,41\n1,0,1\n2\n2,3\n0,1\n")
    at = dash_app("students", {"run": "demo/demo-cumulative", "data": str(bad.resolve())})
    no_exception(at)
    msg = " ".join(errors(at))
    assert "many_skills.csv" in msg and "not one the model knows" in msg
    assert not figures(at)


# ---- Class ------------------------------------------------------------------------------

def test_class_heatmap_distribution_and_links(dash_app, demo_scored):
    at = dash_app("class")
    no_exception(at)
    figs = figures(at)
    heat = figs[0]["data"][0]
    assert heat["type"] == "heatmap"
    z = arr(heat["z"]).astype(float)
    assert z.shape == (demo_scored.traj.num_skills, 200)        # skills x students shown
    assert all(t["type"] == "box" for t in figs[1]["data"]) and len(figs[1]["data"]) == 12
    links = at.get("page_link")
    weak = [l for l in links if l.proto.page == "students"][-10:]    # the last section's links
    assert len(weak) == 10 and at.number_input(key="cls_nweak").value == 10
    q = weak[0].proto.query_string
    assert "run=demo%2Fdemo-cumulative" in q and "student=" in q
    # the linked students are the weakest on the chosen skill, weakest first
    k = at.selectbox(key="cls_skill").value
    fin = []
    for l in weak:  # noqa: E741
        sid = l.proto.label
        i = demo_scored.data.index_of(sid)
        assert k in demo_scored.data.skills[i]
        fin.append(demo_scored.traj.mastery[demo_scored.traj.rows(i)][-1, k])
    assert fin == sorted(fin)


# ---- Consistency ------------------------------------------------------------------------

def test_consistency_table(dash_app):
    at = dash_app("consistency")
    no_exception(at)
    df = at.table[0].value
    cols = [c for c in df.columns if c != "what it measures"]
    # by default every model kind's newest run on the same data: the pair, then the baselines
    assert cols == ["demo-original (original)", "demo-cumulative (cumulative)", "demo-dkt (dkt)",
                    "demo-bkt (bkt)", "demo-pfa (pfa)"]
    for k in VIOLATION_KEYS:
        assert df.loc[k, "demo-cumulative (cumulative)"] == 0
    assert df.loc["students_with_violation", "demo-original (original)"] > 0
    for k in ("mastery_performance_corr", "gain_performance_corr", "auc", "n_students", "n_interactions"):
        assert k in df.index
    assert df["what it measures"].str.len().min() > 5


def test_consistency_one_column_per_checkpoint(dash_app, dash_runs, dash_copy_run):
    dash_copy_run(dash_runs, "cumulative", name="third")
    at = dash_app("consistency")
    at.multiselect(key="con_pick").set_value(["demo/demo-original", "demo/demo-cumulative", "runs/third"]).run()
    no_exception(at)
    df = at.table[0].value
    assert len([c for c in df.columns if c != "what it measures"]) == 3


# ---- Compare ----------------------------------------------------------------------------

def test_compare_page(dash_app):
    at = dash_app("compare")
    no_exception(at)
    df = at.dataframe[0].value
    assert list(df.columns) == ["demo-original (original)", "demo-cumulative (cumulative)"]
    figs = figures(at)
    curves = figs[0]
    assert {t["legendgroup"] for t in curves["data"]} == {"demo-original", "demo-cumulative"}
    assert len(figs) == 3
    assert len(mastery_traces(figs[1])) == len(mastery_traces(figs[2])) > 0
    at.selectbox(key="cmp_student").set_value("T0010").run()
    no_exception(at)


# ---- Train ------------------------------------------------------------------------------

def test_train_page_says_what_precision_the_preset_trains_in(dash_app, dash_runs, monkeypatch):
    """amp=auto: bfloat16 for the standard model on a CPU with native bfloat16, float32 for quick."""
    from cmkt.runs import torchrun
    from cmkt.train import accel
    monkeypatch.setattr(torchrun, "gpu_count", lambda: 0)
    monkeypatch.setattr(accel, "cpu_has_native_bf16", lambda: True)
    at = dash_app("train")
    no_exception(at)
    assert any("The `quick` model trains in float32" in c.value for c in at.caption)
    at.selectbox(key="tr_preset").set_value("standard").run()
    assert any("The `standard` model trains in bfloat16 autocast" in c.value for c in at.caption)
    monkeypatch.setattr(accel, "cpu_has_native_bf16", lambda: False)
    at.run()
    assert any("The `standard` model trains in float32" in c.value for c in at.caption)


def test_train_form_errors(dash_app, dash_runs):
    at = dash_app("train")
    no_exception(at)
    assert at.button(key="tr_start")
    at.text_area(key="tr_overrides").set_value("not_a_setting=3")
    at.button(key="tr_start").click().run()
    no_exception(at)
    assert any("unknown setting 'not_a_setting'" in e for e in errors(at))
    at.text_area(key="tr_overrides").set_value("lr 0.1")
    at.button(key="tr_start").click().run()
    assert any("expected KEY=VALUE" in e for e in errors(at))
    at.text_area(key="tr_overrides").set_value("")
    at.radio(key="tr_source").set_value("path").run()
    at.selectbox(key="tr_folder").set_value("other").run()
    at.text_input(key="tr_path").set_value("/no/such/data")
    at.button(key="tr_start").click().run()
    no_exception(at)
    assert any("/no/such/data: no such file or folder" in e for e in errors(at))
    assert not [p for p in dash_runs.iterdir() if p.name != "uploads"]      # nothing started


def test_train_page_says_it_uses_every_gpu(dash_app, dash_runs, monkeypatch):
    """With device auto on a machine with several GPUs the page says the run takes one process per
    GPU (what cmkt.runs.jobs launches); with device cpu it says one CPU process."""
    from cmkt.runs import torchrun
    monkeypatch.setattr(torchrun, "gpu_count", lambda: 4)
    at = dash_app("train")
    no_exception(at)
    captions = " ".join(c.value for c in at.caption)
    assert "This machine has 4 GPUs" in captions and "4 processes" in captions
    at.selectbox(key="tr_device").set_value("cpu").run()
    captions = " ".join(c.value for c in at.caption)
    assert "4 processes" not in captions and "Trains on the CPU in one process" in captions


def test_train_bad_upload(dash_app, dash_runs):
    at = dash_app("train")
    at.radio(key="tr_source").set_value("upload").run()
    at.file_uploader(key="tr_upload").set_value(("scores.csv", b"3\n1,2,x\n1,0,1\n", "text/csv"))
    at.run()
    at.button(key="tr_start").click().run()
    no_exception(at)
    msg = " ".join(errors(at))
    assert "scores.csv" in msg
    assert not list((dash_runs / "uploads" / "data").glob("*"))


def test_train_live_view_of_finished_and_failed_runs(dash_app, dash_runs, dash_copy_run):
    dash_copy_run(dash_runs, "cumulative", name="done")
    at = dash_app("train")
    no_exception(at)
    assert at.selectbox(key="tr_watch").value == "done"
    table = at.dataframe[0].value
    hist = (DEMO / "demo-cumulative" / "metrics.jsonl").read_text().splitlines()
    assert len(table) == len(hist)
    assert {"val_auc", "monotonicity_violation_rate", "mastery_performance_corr"} <= set(table.columns)
    assert figures(at)
    assert any("finished" in p.proto.text for p in at.get("progress"))
    dash_copy_run(dash_runs, "cumulative", name="bf", device="cpu", precision="bfloat16 autocast")
    at = dash_app("train")
    at.selectbox(key="tr_watch").set_value("bf").run()
    assert any("trained on cpu in bfloat16 autocast" in c.value for c in at.caption)   # what it trained in
    dash_copy_run(dash_runs, "original", name="zz-failed", state="failed", error="boom: bad data")
    at = dash_app("train")
    at.selectbox(key="tr_watch").set_value("zz-failed").run()
    no_exception(at)
    assert any("boom: bad data" in e for e in errors(at))


def test_train_from_uploaded_long_csv(dash_app, dash_runs):
    """A good upload is kept under <runs>/uploads/data and trained on in the background."""
    from cmkt.runs.jobs import cancel_run, wait_for
    from cmkt.data.sim import simulate, write_long_csv
    src = dash_runs.parent / "log.csv"
    write_long_csv(simulate(students=30, skills=4, seed=1, min_len=5, max_len=15), src)
    at = dash_app("train")
    at.radio(key="tr_source").set_value("upload").run()
    at.file_uploader(key="tr_upload").set_value(("class log.csv", src.read_bytes(), "text/csv"))
    at.run()
    at.number_input(key="tr_epochs_quick").set_value(1)
    at.text_input(key="tr_name").set_value("from-upload")
    at.button(key="tr_start").click().run()
    no_exception(at)
    assert not errors(at)
    kept = dash_runs / "uploads" / "data" / "class_log.csv"
    assert kept.exists()
    run = dash_runs / "from-upload"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["data"] == str(kept.resolve()) and cfg["train"]["epochs"] == 1
    try:
        status = wait_for(run, timeout=150)
    finally:
        cancel_run(run, wait=5)          # never leave a process behind when the wait fails
    assert status["state"] == "finished", status
    at = dash_app("train")
    no_exception(at)
    assert at.selectbox(key="tr_watch").value == "from-upload"
    assert len(at.dataframe[0].value) == 1


def test_first_scoring_shows_progress_then_cache_hits_show_nothing(dash_app, dash_runs, dash_copy_run):
    """A cache miss (a run never scored before: its own path) shows a status box saying what
    was scored and how long it took; the next open of the page is a cache hit and shows none."""
    dash_copy_run(dash_runs, "cumulative", name="fresh-cumulative")
    at = dash_app("students", {"run": "runs/fresh-cumulative", "student": "T0005"})
    no_exception(at)
    labels = [s.label for s in at.status]
    assert any(lab.startswith("Scored ") and "fresh-cumulative" in lab and " s (cached" in lab
               for lab in labels), labels
    at.run()
    no_exception(at)
    assert not [s for s in at.status if "fresh-cumulative" in s.label]


def test_runs_table_shows_blanks_not_none(dash_app, dash_runs):
    """An uploaded checkpoint has no state times, epochs or errors: those cells are blank."""
    up = dash_runs / "uploads" / "checkpoints"
    up.mkdir(parents=True)
    (up / "mine.safetensors").write_bytes((DEMO / "demo-cumulative" / "best.safetensors").read_bytes())
    at = dash_app("runs")
    no_exception(at)
    table = at.dataframe[0]
    row = table.value.set_index("run").loc["mine.safetensors"]
    assert row.isna().any()                          # there are missing values to show ...
    assert table.proto.HasField("placeholder") and table.proto.placeholder == ""   # ... as blanks
