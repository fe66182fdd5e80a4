"""The dashboard with imported reference models (gainakt2-ref): the Runs page's import upload, the
variant shown, and the Students, Consistency and Compare pages on an imported run."""
from __future__ import annotations

import io

import pytest
import torch

from cmkt.runs.importer import import_reference
from reference_fixtures import published_state, write_format_a, write_format_b, write_hostile


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def errors(at) -> list[str]:
    return [e.value for e in at.error]


def pth_bytes(tmp_path, seed=1) -> bytes:
    folder = write_format_b(tmp_path / f"b{seed}", published_state(seed))
    return (folder / "best_model.pth").read_bytes()


def test_runs_page_imports_an_uploaded_checkpoint_and_shows_its_variant(dash_app, dash_runs, tmp_path):
    at = dash_app("runs")
    at.file_uploader(key="ref_upload").set_value(("best_model.pth", pth_bytes(tmp_path), "application/octet-stream"))
    at.run()
    at.button(key="ref_import").click().run()
    no_exception(at)
    assert not errors(at), errors(at)
    runs = [p for p in dash_runs.iterdir() if p.is_dir() and (p / "config.json").exists()]
    assert len(runs) == 1 and runs[0].name.endswith("best_model-gainakt2-ref-cumulative")
    assert any(runs[0].name in s.value for s in at.success)
    df = at.dataframe[0].value
    row = df[df["run"] == runs[0].name].iloc[0]
    assert row["mode"] == "gainakt2-ref" and row["variant"] == "cumulative" and row["state"] == "finished"


def test_runs_page_import_refusals(dash_app, dash_runs, tmp_path):
    marker = tmp_path / "PWNED"
    evil = write_hostile(tmp_path / "evil" / "best_model.pth", marker).read_bytes()
    at = dash_app("runs")
    at.file_uploader(key="ref_upload").set_value(("best_model.pth", evil, "application/octet-stream"))
    at.run()
    at.button(key="ref_import").click().run()
    no_exception(at)
    msg = " ".join(errors(at))
    assert "best_model.pth" in msg and "nothing in it was run" in msg
    assert not marker.exists()
    # a pyKT .ckpt needs its config.json
    ckpt = io.BytesIO()
    torch.save(published_state(2), ckpt)
    at.file_uploader(key="ref_upload").set_value(("qid_model.ckpt", ckpt.getvalue(), "application/octet-stream"))
    at.run()
    at.button(key="ref_import").click().run()
    no_exception(at)
    assert any("qid_model.ckpt" in e and "config.json" in e for e in errors(at)), errors(at)
    assert not [p for p in dash_runs.iterdir() if p.name != "uploads"]            # nothing imported
    # with it, the .ckpt imports (format A: the original variant by default)
    cfg = (write_format_a(tmp_path / "a", published_state(2)) / "config.json").read_bytes()
    at.file_uploader(key="ref_config").set_value(("config.json", cfg, "application/json"))
    at.run()
    at.button(key="ref_import").click().run()
    no_exception(at)
    df = at.dataframe[0].value
    assert list(df.loc[df["mode"] == "gainakt2-ref", "variant"]) == ["original"]


def test_runs_page_import_size_limit(dash_app, dash_runs, monkeypatch):
    import dashboard.importing as imp
    monkeypatch.setattr(imp, "upload_limit_mb", lambda: 0.001)
    at = dash_app("runs")
    at.file_uploader(key="ref_upload").set_value(("model.pth", b"x" * 5000, "application/octet-stream"))
    at.run()
    at.button(key="ref_import").click().run()
    no_exception(at)
    assert any("model.pth" in e and "over the" in e and "limit" in e for e in errors(at)), errors(at)


@pytest.fixture
def imported(dash_runs, tmp_path):
    """An imported cumulative reference model in the runs folder (7 concepts: sim data uses 7 skills)."""
    folder = write_format_b(tmp_path / "gainakt2_cumulative_mastery_v1", published_state(3))
    return import_reference(folder, dash_runs, name="ref-cum")


def test_students_page_shows_an_imported_model(dash_app, imported):
    at = dash_app("students", query={"run": "runs/ref-cum"})
    no_exception(at)
    assert not errors(at), errors(at)
    assert "ref-cum" in at.subheader[0].value and "gainakt2-ref" in at.subheader[0].value
    mean_pred = [m for m in at.metric if m.label == "Mean predicted P(correct)"][0].value
    assert mean_pred not in ("nan", "—") and 0 < float(mean_pred) < 1


def test_consistency_and_compare_pages_show_an_imported_model(dash_app, imported):
    at = dash_app("consistency")
    at.multiselect(key="con_pick").set_value(["runs/ref-cum", "demo/demo-cumulative"]).run()
    no_exception(at)
    df = at.table[0].value
    col = "ref-cum (gainakt2-ref)"
    assert col in df.columns
    for k in ("monotonicity_violation_rate", "negative_gain_rate", "bounds_violation_rate"):
        assert float(df.loc[k, col]) == 0
    assert 0 <= float(df.loc["auc", col]) <= 1
    at = dash_app("compare")
    at.multiselect(key="cmp_pick").set_value(["demo/demo-cumulative", "runs/ref-cum"]).run()
    no_exception(at)
    assert "ref-cum (gainakt2-ref)" in at.dataframe[0].value.columns
    figs = at.get("plotly_chart")
    assert len(figs) >= 2
