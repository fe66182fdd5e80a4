"""The dashboard's helpers without a page: file names, uploads, figures, derived tables."""
from __future__ import annotations

import numpy as np
import pytest

from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "assets" / "demo"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class FakeUpload:
    def __init__(self, name: str, data: bytes):
        self.name, self._data = name, data

    def getvalue(self) -> bytes:
        return self._data


@pytest.mark.parametrize("raw, want", [
    ("data.csv", "data.csv"),
    ("../../etc/passwd", "passwd"),
    ("..\\..\\evil.csv", "evil.csv"),
    ("my data (1).csv", "my_data_1_.csv"),
    (".hidden.csv", "hidden.csv"),
    ("...", "upload"),
    ("x" * 300 + ".csv", "x" * 80 + ".csv"),
])
def test_sanitise_filename(raw, want):
    from dashboard.state import sanitise_filename
    assert sanitise_filename(raw) == want


def test_save_upload_checks_before_keeping(dash_runs):
    from cmkt.errors import DataError
    from dashboard.state import check_data_file, save_upload
    folder = dash_runs / "uploads" / "data"
    with pytest.raises(DataError) as e:
        save_upload(FakeUpload("bad.csv", b"3\n1,2,x\n0,1,1\n"), "data", check=check_data_file)
    assert str(e.value).startswith("bad.csv")          # names the upload, not the temp file
    assert list(folder.iterdir()) == []                # nothing kept, no temp file left
    good = b"3\n1,2,2\n0,1,1\n2\n1,3\n1,1\n"
    p1 = save_upload(FakeUpload("good.csv", good), "data", check=check_data_file)
    p2 = save_upload(FakeUpload("good.csv", good), "data", check=check_data_file)
    p3 = save_upload(FakeUpload("good.csv", good + b"1\n2\n0\n"), "data", check=check_data_file)
    assert p1 == p2 and p1.name == "good.csv" and p3.name == "good-2.csv"
    assert sorted(p.name for p in folder.iterdir()) == ["good-2.csv", "good.csv"]


def test_entries_and_pairs(dash_runs, dash_copy_run):
    from dashboard.state import default_pair, find_entry, list_entries, pair_partner
    dash_copy_run(dash_runs, "original", name="r-original")
    entries = list_entries()
    keys = [e.key for e in entries]
    assert keys[0] == "runs/r-original"
    assert {"demo/demo-original", "demo/demo-cumulative"} <= set(keys)
    demo_c = find_entry(entries, "demo/demo-cumulative")
    assert demo_c.data == "sim" and demo_c.mode == "cumulative" and not demo_c.deletable
    # the partner of a demo run is the other demo run, not the copy under runs/
    assert pair_partner(demo_c, entries).key == "demo/demo-original"
    assert [e.mode for e in default_pair(entries)] == ["original", "cumulative"]
    assert find_entry(entries, "nope") is None


def _student():
    rng = np.random.default_rng(0)
    skills = np.array([2, 2, 0, 5, 2, 0, 7])
    T, C = len(skills), 8
    return {"skills": skills, "responses": np.array([1, 0, 1, 1, 0, 1, 1]),
            "probs": rng.random(T).astype(np.float32),
            "mastery": np.cumsum(rng.random((T, C)), axis=0).astype(np.float32) / T,
            "gains": rng.normal(size=(T, C)).astype(np.float32)}


def test_figures_and_summary():
    from dashboard.charts import gain_heatmap, mastery_figure, practised_skills, skill_summary
    st = _student()
    names = [f"n{k}" for k in range(8)]
    labels = [str(k + 1) for k in range(8)]
    assert practised_skills(st["skills"]) == [2, 0, 5, 7]
    assert practised_skills(st["skills"], top=2) == [2, 0]
    fig = mastery_figure(st, names, labels)
    lines = [t for t in fig.data if t.meta == "mastery"]
    assert [t.name for t in lines] == ["n2 (3)", "n0 (1)", "n5 (6)", "n7 (8)"]
    answers = [t for t in fig.data if t.meta == "answers"]
    assert sum(len(t.x) for t in answers) == 7
    fig2 = mastery_figure(st, names, labels, skills_shown=[2])
    assert len([t for t in fig2.data if t.meta == "mastery"]) == 1
    assert sum(len(t.x) for t in fig2.data if t.meta == "answers") == 3
    heat = gain_heatmap(st, names, labels).data[0]
    assert np.asarray(heat.z).shape == (4, 7)
    df = skill_summary(st, names, labels)
    assert list(df["skill"]) == ["3", "1", "6", "8"]
    assert list(df["attempts"]) == [3, 2, 1, 1]
    assert df.loc[0, "accuracy"] == pytest.approx(1 / 3)
    assert df.loc[0, "total gain"] == pytest.approx(float(st["gains"][:, 2].sum()), rel=1e-5)
    assert df.loc[0, "first mastery"] == pytest.approx(float(st["mastery"][0, 2]))


def test_derived_class_tables():
    from cmkt.runs.evaluate import score_checkpoint
    from dashboard import derived
    sc = score_checkpoint(DEMO / "demo-original", "sim", "test")
    key = ("demo-original-test",)
    cm = derived.class_matrices(key, sc)
    S, C = len(sc.data), sc.traj.num_skills
    assert cm["final"].shape == (S, C) and cm["attempts"].sum() == sc.data.n_interactions
    i = 3
    rows = sc.traj.rows(i)
    assert np.allclose(cm["final"][i], sc.traj.mastery[rows][-1])
    weak = derived.weakest(key, sc, 4, 5)
    assert len(weak) == 5 and list(weak["final mastery"]) == sorted(weak["final mastery"])
    practised_4 = {sid for sid, s in zip(sc.data.student_ids, sc.data.skills) if 4 in s}
    assert set(weak["student"]) <= practised_4
    v = derived.student_violations(derived.student_arrays(key, sc, "T0001"))
    assert v["mastery drops"] > 0                       # the original model's mastery falls


def test_small_nonzero_rate_never_reads_as_zero():
    import pandas as pd

    from dashboard.tables import _fmt_cell, styled

    assert _fmt_cell(5.6e-5) == "5.6e-05"
    assert _fmt_cell(-2e-7) == "-2e-07"
    assert _fmt_cell(0.0) == "0.0000" and _fmt_cell(0.71234) == "0.7123" and _fmt_cell(1234) == "1,234"
    df = pd.DataFrame({"run (cumulative)": [5.6e-5, 0.0]}, index=["monotonicity_violation_rate",
                                                                  "negative_gain_rate"], dtype=object)
    html = styled(df).to_html()
    assert "5.6e-05" in html and "0.0000" in html     # the zero rate still reads as zero
