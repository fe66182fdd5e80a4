"""Large data: Parquet long logs, the pyarrow.csv fast path (same result as the pandas reader),
the vectorised simulator writer, streaming export to Parquet."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cmkt.data import columnar
from cmkt.data.longlog import _parse_long, read_long
from cmkt.data.readers import detect_format, read_data
from cmkt.errors import DataError
from cmkt.data.sim import SimConfig, simulate, write_long_csv, write_simulated

REPO = Path(__file__).resolve().parents[1]


def same(a, b):
    assert a.student_ids == b.student_ids and a.skill_labels == b.skill_labels
    assert a.skill_names == b.skill_names and a.num_skills == b.num_skills
    assert all(np.array_equal(x, y) for x, y in zip(a.skills, b.skills))
    assert all(np.array_equal(x, y) for x, y in zip(a.responses, b.responses))


def test_vectorised_writer_writes_what_the_dataset_holds(tmp_path):
    cfg = SimConfig(students=40, skills=5, seed=3)
    path, n = write_simulated(cfg, "test", tmp_path / "a.csv")
    write_long_csv(simulate(cfg, split="test"), tmp_path / "b.csv")
    assert path.read_bytes() == (tmp_path / "b.csv").read_bytes()
    ds = read_data(path)
    ref = simulate(cfg, split="test")
    assert n == ref.n_interactions
    same(ds, read_long(tmp_path / "b.csv"))
    assert [ds.skill_labels[s] for s in ds.skills[0]] == [ref.skill_labels[s] for s in ref.skills[0]]


def test_parquet_reads_like_the_csv(tmp_path):
    cfg = SimConfig(students=50, skills=6, seed=1)
    write_simulated(cfg, "train", tmp_path / "s.parquet")
    write_simulated(cfg, "train", tmp_path / "s.csv")
    assert detect_format(tmp_path / "s.parquet") == "parquet"
    same(read_data(tmp_path / "s.parquet"), read_data(tmp_path / "s.csv"))


def test_parquet_with_other_names_types_and_unsorted_rows(tmp_path):
    t = pa.table({"user_id": [2, 1, 2, 1, 2], "skill_name": ["b", "a", "a", None, "b"],
                  "correct": [True, False, True, True, False], "order_id": [3, 1, 1, 2, 2]})
    pq.write_table(t, tmp_path / "x.parquet")
    ds = read_data(tmp_path / "x.parquet")
    assert ds.student_ids == ["2", "1"] and ds.skill_labels == ["a", "b"]
    assert [list(s) for s in ds.skills] == [[0, 1, 1], [0]]
    assert [list(r) for r in ds.responses] == [[1, 0, 1], [0]]
    assert any("dropped 1 rows with no skill" in n for n in ds.notes)
    assert any("sorted" in n for n in ds.notes)


@pytest.mark.parametrize("table, message", [
    (pa.table({"user_id": [1], "skill_id": [3]}), "no correct/response column"),
    (pa.table({"user_id": [1, 1], "skill_id": [3, 4], "correct": [1, 2]}), "is not 0 or 1"),
    (pa.table({"user_id": ["", "a"], "skill_id": [3, 4], "correct": [1, 0]}), "empty student id"),
])
def test_bad_parquet_names_the_file(tmp_path, table, message):
    pq.write_table(table, tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=message) as e:
        read_data(tmp_path / "bad.parquet")
    assert "bad.parquet" in str(e.value)


def test_truncated_parquet_is_a_data_error(tmp_path):
    write_simulated(SimConfig(students=20, skills=3), "train", tmp_path / "s.parquet")
    raw = (tmp_path / "s.parquet").read_bytes()
    (tmp_path / "t.parquet").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="t.parquet"):
        read_data(tmp_path / "t.parquet")


@pytest.mark.parametrize("text", [
    "student_id,order,skill_id,correct\nb,2,7,1\na,1,7.0,0\nb,1,3,true\na,2,,1\n",
    "user_id\tskill_name\tcorrect\ttimestamp\nu1\tadd\t1\t5\nu2\tsub\t0\t1\nu1\tsub\tNo\t2\n",
    "user_id,skill_id,skill_name,correct\n1,10,Ten,1\n1,11,,0\n2,10,,1\n2,11,Eleven,1\n",
])
def test_fast_csv_path_equals_the_pandas_reader(tmp_path, monkeypatch, text):
    p = tmp_path / "log.csv"
    p.write_text(text)
    fast = columnar.parse_long_csv_fast(p, min_bytes=0)
    assert fast is not None
    monkeypatch.setattr(columnar, "parse_long_csv_fast", lambda *a, **k: None)
    slow = _parse_long(p)
    assert fast.student_ids == slow.student_ids and fast.names == slow.names and fast.notes == slow.notes
    assert np.array_equal(fast.bounds, slow.bounds) and np.array_equal(fast.responses, slow.responses)
    assert list(fast.row_labels) == list(slow.row_labels) and fast.numeric == slow.numeric
    assert np.array_equal(fast.row_lines, slow.row_lines)


@pytest.mark.parametrize("text", [
    'user_id,skill_id,correct\n"a,b",1,1\n',            # quotes: the pandas reader
    "user_id,skill_id,correct\na,1,2\n",                 # a bad response: the pandas reader's message
    "user_id,skill_id,correct\na,1,1\n\nb,1,0\n",        # blank line
    "user_id,skill_id,correct,timestamp\na,1,1,2024-01-02\n",  # dates
])
def test_fast_csv_path_leaves_the_rest_to_pandas(tmp_path, text):
    p = tmp_path / "log.csv"
    p.write_text(text)
    assert columnar.parse_long_csv_fast(p, min_bytes=0) is None


def test_big_long_csv_goes_through_pyarrow(tmp_path, monkeypatch):
    path, _ = write_simulated(SimConfig(students=3000, skills=8), "train", tmp_path / "big.csv")
    assert path.stat().st_size > columnar.FAST_CSV_MIN_BYTES
    calls = []
    real = columnar._parsed_from_table
    monkeypatch.setattr(columnar, "_parsed_from_table", lambda *a, **k: calls.append(1) or real(*a, **k))
    ds = read_data(path)
    assert calls and len(ds) == 3000


def test_simulate_command_writes_parquet(tmp_path):
    out = tmp_path / "s.parquet"
    proc = subprocess.run([sys.executable, "-m", "cmkt", "simulate", "--students", "30", "--skills", "4",
                           "--out", out], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:4] == b"PAR1"
    assert pq.read_table(out).column_names == ["student_id", "order", "skill_id", "skill_name", "correct",
                                                "true_mastery"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from cmkt.runs import create_run, execute_run
    tmp = tmp_path_factory.mktemp("exp")
    run = create_run(tmp, data="sim:students=40,skills=4", epochs=1,
                     overrides={"d_model": "16", "n_heads": "2", "d_ff": "32", "max_len": "20"}, device="cpu")
    execute_run(run)
    return run


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_streaming_export_equals_the_whole_export(tmp_path, tiny_run, suffix):
    import pandas as pd
    whole = tmp_path / "whole.csv"
    out = tmp_path / f"all{suffix}"
    for args in (["--out", whole], ["--all", "--chunk", "7", "--out", out]):
        proc = subprocess.run([sys.executable, "-m", "cmkt", "export", tiny_run, "--data", "sim:students=40,skills=4",
                               *args], capture_output=True, text=True, cwd=REPO)
        assert proc.returncode == 0, proc.stderr
    a = pd.read_csv(whole)
    b = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for c in a.columns:
        if a[c].dtype.kind == "f":
            assert np.allclose(a[c].to_numpy(), b[c].to_numpy(), atol=1e-5, equal_nan=True), c
        else:
            assert (a[c].astype(str).to_numpy() == b[c].astype(str).to_numpy()).all(), c
    assert "6 chunks" in proc.stderr or "chunks" in proc.stderr
    assert not list(tmp_path.glob(".*.tmp"))


def test_streaming_export_memory_is_bounded_by_the_chunk(tmp_path, tiny_run, monkeypatch):
    """Each chunk is scored on its own: score never sees more than `chunk` students."""
    from cmkt.runs import export
    from cmkt.analysis import scoring
    seen = []
    real = scoring.score
    monkeypatch.setattr(scoring, "score", lambda model, ds, *a, **k: seen.append(len(ds)) or real(model, ds, *a, **k))
    done = export.export_all(tiny_run, "sim:students=40,skills=4", None, tmp_path / "x.parquet", chunk_students=16)
    assert max(seen) <= 16 and done["chunks"] == len(seen) and done["students"] == sum(seen)
