"""Tests for cmkt.data readers: real data sets, the three formats, and every bad input."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from cmkt.data import (
    KTDataset,
    detect_format,
    load_folder,
    read_data,
    read_long,
    read_pykt,
    read_skill_names,
    read_three_line,
    train_valid_split,
)
from cmkt.errors import DataError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

REAL = {
    # folder: (skills, train students, test students, train interactions, test interactions)
    "assist2009": (110, 2921, 1230, 224_218, 101_419),
    "assist2015": (100, 13_935, 5_905, 484_040, 199_761),
    "synthetic": (50, 2_000, 2_000, 100_000, 100_000),
}


def _write(tmp_path: Path, name: str, content) -> Path:
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_bytes(content.encode("utf-8"))
    return p


def _check_arrays(ds: KTDataset):
    for s, r in zip(ds.skills, ds.responses):
        assert s.dtype == np.int64 and r.dtype == np.int64
        assert len(s) == len(r) > 0
        assert s.min() >= 0 and s.max() < ds.num_skills
        assert set(np.unique(r).tolist()) <= {0, 1}


# --------------------------------------------------------------------------- real data

@pytest.mark.parametrize("name", sorted(REAL))
def test_real_folder_counts(name):
    folder = DATA / name
    if not folder.is_dir():
        pytest.skip(f"{folder} not available")
    skills, n_tr, n_te, i_tr, i_te = REAL[name]
    t0 = time.perf_counter()
    data = load_folder(folder)
    elapsed = time.perf_counter() - t0
    assert set(data) == {"train", "test"}
    tr, te = data["train"], data["test"]
    assert (len(tr), len(te)) == (n_tr, n_te)
    assert (tr.n_interactions, te.n_interactions) == (i_tr, i_te)
    assert tr.num_skills == te.num_skills == skills
    assert tr.skill_labels == [str(k) for k in range(1, skills + 1)]
    assert tr.student_ids[:3] == ["1", "2", "3"]
    _check_arrays(tr)
    _check_arrays(te)
    assert elapsed < 5.0
    assert detect_format(folder / "train.csv") == "three_line"


def test_real_assist2009_skill_names():
    folder = DATA / "assist2009"
    if not folder.is_dir():
        pytest.skip(f"{folder} not available")
    data = load_folder(folder)
    mapping = read_skill_names(folder / "skill_mapping.txt")
    assert len(mapping) == 110
    assert mapping["31"] == "Circumference"  # written with a trailing space
    for ds in data.values():
        assert ds.skill_names[30] == "Circumference"
        assert all(n == n.strip() for n in ds.skill_names)
        assert ds.skill_names[0] != "1"
    # test.csv never uses skill 108 but shares the train skill space
    assert data["test"].num_skills == 110
    # read_data with an explicit names file gives the same names
    ds = read_data(folder / "test.csv", skill_names_path=folder / "skill_mapping.txt")
    assert ds.num_skills == 110 and ds.skill_names == data["test"].skill_names


def test_real_assist2015_speed():
    path = DATA / "assist2015" / "train.csv"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    t0 = time.perf_counter()
    ds = read_data(path)
    assert time.perf_counter() - t0 < 5.0
    assert ds.n_interactions == 484_040


def test_real_synthetic_trailing_commas():
    path = DATA / "synthetic" / "test.csv"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    ds = read_three_line(path)
    assert len(ds) == 2000 and ds.lengths.tolist() == [50] * 2000
    assert ds.skills[0].tolist() == list(range(50))


# --------------------------------------------------------------------------- three-line

def test_three_line_basic_and_messy(tmp_path):
    text = ("\ufeff 3 \r\n1, 2,3,\r\n0,1,1,\r\n\r\n\r\n2\r\n5,5\r\n1,0\r\n"
            "0\r\n\r\n\r\n1\r\n2\r\n1\r\n")
    p = _write(tmp_path, "messy.csv", text)
    assert detect_format(p) == "three_line"
    ds = read_three_line(p)
    assert ds.student_ids == ["1", "2", "4"]  # block 3 had no interactions
    assert [s.tolist() for s in ds.skills] == [[0, 1, 2], [4, 4], [1]]
    assert [r.tolist() for r in ds.responses] == [[0, 1, 1], [1, 0], [1]]
    assert ds.num_skills == 5 and ds.skill_labels == ["1", "2", "3", "4", "5"]
    assert ds.skill_names == ds.skill_labels
    _check_arrays(ds)


def test_three_line_enormous_line(tmp_path):
    n = 200_000
    ids = ",".join(str(1 + k % 7) for k in range(n))
    resp = ",".join(str(k % 2) for k in range(n))
    p = _write(tmp_path, "long_line.csv", f"{n}\n{ids}\n{resp}\n")
    ds = read_data(p)
    assert ds.n_interactions == n and ds.num_skills == 7


def test_three_line_no_final_newline(tmp_path):
    p = _write(tmp_path, "nonl.csv", "2\n1,2\n1,1")
    assert read_data(p).n_interactions == 2


# --------------------------------------------------------------------------- pyKT

PYKT = (
    "fold,uid,questions,concepts,responses,timestamps,selectmasks\n"
    '0,u7,"1,2,3","4,0,2","1,0,1","1,2,3","1,1,1"\n'
    '0,u3,"5,6,-1,-1","1,1,-1,-1","0,1,-1,-1","4,5,-1,-1","1,1,-1,-1"\n'
    '0,u7,"7,8,-1","3,4,-1","1,1,-1","9,10,-1","1,1,-1"\n'
)


def test_pykt_reader(tmp_path):
    p = _write(tmp_path, "train_valid_sequences.csv", PYKT)
    assert detect_format(p) == "pykt"
    ds = read_data(p)
    assert ds.student_ids == ["u7", "u3"]
    assert ds.skills[0].tolist() == [4, 0, 2, 3, 4]
    assert ds.responses[0].tolist() == [1, 0, 1, 1, 1]
    assert ds.skills[1].tolist() == [1, 1] and ds.responses[1].tolist() == [0, 1]
    assert ds.num_skills == 5 and ds.skill_labels == ["0", "1", "2", "3", "4"]
    _check_arrays(ds)


def test_pykt_folder_shared_space(tmp_path):
    _write(tmp_path, "train_valid_sequences.csv", PYKT)
    _write(tmp_path, "test_sequences.csv",
           'uid,concepts,responses\n9,"0,6",\"1,0\"\n')
    data = load_folder(tmp_path)
    assert data["train"].num_skills == data["test"].num_skills == 7
    assert data["train"].skill_labels == [str(k) for k in range(7)]


def test_pykt_vocab(tmp_path):
    p = _write(tmp_path, "s.csv", PYKT)
    ds = read_pykt(p, skill_vocab=[f"k{i}" for i in range(8)])
    assert ds.num_skills == 8 and ds.skill_labels[0] == "k0"
    with pytest.raises(DataError, match=r"skill id 4 at position 1 is not one the model knows \(it has 4 skills\)"):
        read_pykt(p, skill_vocab=["0", "1", "2", "3"])


@pytest.mark.parametrize("row, line_problem", [
    ('0,u1,"1,2","1,2","1"', "same length"),
    ('0,u1,"1,2","1,x","1,0"', "not an integer"),
    ('0,u1,"1,2","1,-3","1,0"', "invalid"),
    ('0,u1,"1,2","1,2000000","1,0"', "too large"),
    ('0,u1,"1,2","1,2","1,2"', "not 0 or 1"),
    ('0,u1,"1,2,3","1,2,3","1,,0"', "not 0 or 1"),
    ('0,u1,"1,2","1,-1","1,0"', "padding"),
    ('0,u1,"1,2","1_2,3","1,0"', "several skills"),
    ('0,,"1,2","1,2","1,0"', "empty uid"),
    ('0,u1,"1,2","1,2"', "fields"),
])
def test_pykt_bad_rows(tmp_path, row, line_problem):
    p = _write(tmp_path, "bad_pykt.csv",
               'fold,uid,questions,concepts,responses\n0,u0,"1","1","1"\n' + row + "\n")
    with pytest.raises(DataError) as ei:
        read_data(p)
    msg = str(ei.value)
    assert "bad_pykt.csv" in msg and "line 3" in msg and line_problem in msg, msg


def test_pykt_missing_column(tmp_path):
    p = _write(tmp_path, "nocol.csv", 'uid,concepts,answers\n1,"1","1"\n')
    assert detect_format(p) == "long"  # no 'responses' header: not pyKT
    with pytest.raises(DataError, match=r"nocol\.csv, line 1: missing column\(s\) responses"):
        read_pykt(p)


# --------------------------------------------------------------------------- long log

LONG = (
    "order_id,user_id,skill_id,skill_name,correct,original\n"
    "10,A,7,Addition,1,1\n"
    "11,B,3,Fractions,0,1\n"
    "13,A,3,Fractions,0,1\n"
    "12,B,7,Addition,1,1\n"
    "9,A,12,,1,1\n"
    "14,C,,,1,1\n"
    "15,B,12,Decimals,1,1\n"
)


def test_long_reader(tmp_path):
    p = _write(tmp_path, "log.csv", LONG)
    assert detect_format(p) == "long"
    ds = read_data(p)
    assert ds.student_ids == ["A", "B"]  # C only had a row without a skill
    assert ds.skill_labels == ["3", "7", "12"]  # numeric sort, not "12" < "3"
    assert ds.skill_names == ["Fractions", "Addition", "Decimals"]
    # A sorted by order_id: 9 (12), 10 (7), 13 (3); B already in order: 11 (3), 12 (7), 15 (12)
    assert ds.skills[0].tolist() == [2, 1, 0] and ds.responses[0].tolist() == [1, 1, 0]
    assert ds.skills[1].tolist() == [0, 1, 2] and ds.responses[1].tolist() == [0, 1, 1]
    assert any("sorted 1 students by order_id" in n for n in ds.notes), ds.notes
    assert any("dropped 1 rows with no skill" in n for n in ds.notes), ds.notes
    _check_arrays(ds)


def test_long_already_sorted_no_note_and_string_skills(tmp_path):
    text = ("Student_ID,KC,Response,Timestamp\n"
            "s1,fractions,1,2020-01-01 10:00:00\n"
            "s2,algebra,0,2020-01-01 09:00:00\n"
            "s1,algebra,0,2020-01-02 10:00:00\n")
    ds = read_long(_write(tmp_path, "kc.csv", text))
    assert ds.skill_labels == ["algebra", "fractions"]
    assert ds.skill_names == ds.skill_labels
    assert ds.student_ids == ["s1", "s2"]
    assert ds.skills[0].tolist() == [1, 0]
    assert not any("sorted" in n for n in ds.notes)


def test_long_timestamps_sorted(tmp_path):
    text = ("user_id,skill,correct,start_time\n"
            "u,1,1,2020-01-02 10:00:00\n"
            "u,2,0,2020-01-01 10:00:00\n"
            "v,3,1,2020-01-01 10:00:00\n")
    ds = read_long(_write(tmp_path, "ts.csv", text))
    assert ds.skills[0].tolist() == [1, 0]
    assert "sorted 1 students by start_time" in ds.notes


def test_long_no_order_keeps_file_order(tmp_path):
    text = "user_id,skill_id,correct\nb,5,1\na,5,0\nb,6,0\nb,5,1.0\n"
    ds = read_long(_write(tmp_path, "noorder.csv", text))
    assert ds.student_ids == ["b", "a"]
    assert ds.skills[0].tolist() == [0, 1, 0] and ds.responses[0].tolist() == [1, 0, 1]
    assert ds.notes == []


def test_long_vocab(tmp_path):
    p = _write(tmp_path, "log.csv", LONG)
    ds = read_long(p, skill_vocab=["12", "7", "3", "99"])
    assert ds.num_skills == 4 and ds.skill_labels == ["12", "7", "3", "99"]
    assert ds.skills[0].tolist() == [0, 1, 2]
    with pytest.raises(DataError) as ei:
        read_long(p, skill_vocab=["3", "7"])
    msg = str(ei.value)
    assert "log.csv" in msg and "'12'" in msg and "not one the model knows" in msg and "line 6" in msg


def test_long_folder_shared_vocab_and_names(tmp_path):
    _write(tmp_path, "train.csv", "user_id,skill_id,correct\na,10,1\na,2,0\n")
    _write(tmp_path, "test.csv", "user_id,skill_id,correct\nb,5,1\nb,10,1\n")
    _write(tmp_path, "skill_mapping.txt", "2\tTwo  \n5\tFive\n\n10\tTen\r\n")
    data = load_folder(tmp_path)
    tr, te = data["train"], data["test"]
    assert tr.skill_labels == te.skill_labels == ["2", "5", "10"]
    assert tr.skill_names == ["Two", "Five", "Ten"]
    assert te.skills[0].tolist() == [1, 2]


@pytest.mark.parametrize("text, problem, line", [
    ("user_id,skill_id,correct\na,1,2\n", "not 0 or 1", 2),
    ("user_id,skill_id,correct\na,1,1\na,1,\n", "not 0 or 1", 3),
    ("user_id,skill_id,correct\na,1,1\na,1,NaN\n", "not 0 or 1", 3),
    ("user_id,skill_id,correct\n,1,1\n", "empty student", 2),
    ("user_id,skill_id,score\na,1,1\n", "correct", 1),
    ("name,skill_id,correct\na,1,1\n", "student", 1),
    ("user_id,problem,correct\na,1,1\n", "skill", 1),
    ("user_id,skill_id,correct\n", "no data rows", 1),
    ("user_id,skill_id,correct\na,1,1\nb,\"2,1\nc,1,1\n", "never closed", 3),
])
def test_long_bad_inputs(tmp_path, text, problem, line):
    p = _write(tmp_path, "bad_long.csv", text)
    with pytest.raises(DataError) as ei:
        read_data(p)
    msg = str(ei.value)
    assert "bad_long.csv" in msg and problem in msg and f"line {line}" in msg, msg


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("content, problem, line", [
    ("1,2\n1,0\n", "cannot tell the format", 1),
    ("x\n1,2\n1,0\n", "no student column", 1),
    ("2\n1,2\n1,0\nabc\n1\n1\n", "expected the number of interactions", 4),
    ("2.5\n1,2\n1,0\n", "cannot tell the format", 1),
    ("3\n1,2\n1,0\n", "count says 3", 1),
    ("2\n1,2,3\n1,0\n", "same length", 3),
    ("2\n1,x\n1,0\n", "not an integer", 2),
    ("2\n1,2.0\n1,0\n", "not an integer", 2),
    ("2\n1,\n1,0\n", "same length", 3),
    ("3\n1,,2\n1,0,1\n", "empty skill id", 2),
    ("2\n1,-4\n1,0\n", "invalid", 2),
    ("2\n1,0\n1,0\n", "start at 1", 2),
    ("2\n1,1000001\n1,0\n", "too large", 2),
    ("2\n1,99999999999999999999999\n1,0\n", "too large", 2),
    ("2\n1,2\n1,2\n", "not 0 or 1", 3),
    ("2\n1,2\n1,NaN\n", "not 0 or 1", 3),
    ("2\n1,2\n ,1\n", "response an empty value at position 1 is not 0 or 1", 3),
    ("2\n1,2\n1,0\n2\n1,2\n", "truncated", 4),
    ("2\n1,2\n1,0\n2\n", "truncated", 4),
    ("2\n1,2\n1,0\n2\n\n1,2\n1,0\n", "empty line", 5),
    ("-2\n1,2\n1,0\n", "negative", 1),
    ("0\n1,2\n1,0\n", "count on line 1 is 0", 2),
    ("0\n\n\n", "no interactions", None),
])
def test_three_line_bad_inputs(tmp_path, content, problem, line):
    p = _write(tmp_path, "bad3.csv", content)
    with pytest.raises(DataError) as ei:
        read_data(p)
    msg = str(ei.value)
    assert "bad3.csv" in msg and problem in msg, msg
    if line is not None:
        assert f"line {line}:" in msg, msg
        assert ei.value.line == line


@pytest.mark.parametrize("content, problem, line", [
    (b"", "empty", None),
    (b"  \n\n \r\n", "empty", None),
    (b"\xef\xbb\xbf\n", "empty", None),
    (b"2\n1,2\n\x00\x01\x02\n", "NUL", 3),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "", None),
    (b"2\n1,2\n1,\xff\xfe\n", "UTF-8", 3),
    (b"\xff\xfe\xfa garbage", "UTF-8", 1),
])
def test_garbage_and_empty(tmp_path, content, problem, line):
    p = _write(tmp_path, "junk.csv", content)
    for fn in (read_data, read_three_line, read_pykt, read_long, detect_format, read_skill_names):
        with pytest.raises(DataError) as ei:
            fn(p)
        msg = str(ei.value)
        assert "junk.csv" in msg and problem in msg, (fn.__name__, msg)
        if line is not None and fn is not detect_format:
            assert f"line {line}" in msg, (fn.__name__, msg)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataError, match="nope.csv: file not found"):
        read_data(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="folder not found"):
        load_folder(tmp_path / "nofolder")
    with pytest.raises(DataError, match="no train.csv or test.csv"):
        load_folder(tmp_path)
    with pytest.raises(DataError, match="folder, not a data file"):
        read_data(tmp_path)


def test_folder_only_test(tmp_path):
    _write(tmp_path, "test.csv", "2\n1,4\n1,0\n")
    data = load_folder(tmp_path)
    assert list(data) == ["test"] and data["test"].num_skills == 4


def test_folder_shared_space_three_line(tmp_path):
    _write(tmp_path, "train.csv", "2\n1,4\n1,0\n")
    _write(tmp_path, "test.csv", "1\n9\n1\n")
    data = load_folder(tmp_path)
    assert data["train"].num_skills == data["test"].num_skills == 9
    assert data["train"].skill_labels == [str(k) for k in range(1, 10)]


def test_folder_mixed_formats(tmp_path):
    _write(tmp_path, "train.csv", "2\n1,4\n1,0\n")
    _write(tmp_path, "test.csv", "user_id,skill_id,correct\na,1,1\n")
    with pytest.raises(DataError, match="different formats"):
        load_folder(tmp_path)


# --------------------------------------------------------------------------- skill names

def test_skill_names_file(tmp_path):
    p = _write(tmp_path, "names.txt", "\ufeff1\tAddition  \r\n\r\n2\tSubtraction\t \n")
    assert read_skill_names(p) == {"1": "Addition", "2": "Subtraction"}
    bad = _write(tmp_path, "badnames.txt", "1\tAddition\n\n2 Subtraction\n")
    with pytest.raises(DataError) as ei:
        read_skill_names(bad)
    assert "badnames.txt, line 3:" in str(ei.value)
    dup = _write(tmp_path, "dup.txt", "1\tA\n1\tB\n")
    with pytest.raises(DataError, match=r"dup\.txt, line 2: .*named twice"):
        read_skill_names(dup)


def test_read_data_applies_names(tmp_path):
    data = _write(tmp_path, "d.csv", "2\n1,2\n1,0\n")
    names = _write(tmp_path, "n.txt", "2\tTwo\n7\tSeven\n")
    ds = read_data(data, skill_names_path=names)
    assert ds.skill_names == ["1", "Two"]
    other = _write(tmp_path, "other.txt", "x\tEx\n")
    with pytest.raises(DataError, match="other.txt: none of its skill ids"):
        read_data(data, skill_names_path=other)


# --------------------------------------------------------------------------- vocab

def test_three_line_vocab(tmp_path):
    p = _write(tmp_path, "v.csv", "2\n1,3\n1,0\n1\n5\n1\n")
    ds = read_three_line(p, skill_vocab=[str(k) for k in range(1, 11)])
    assert ds.num_skills == 10 and ds.skill_labels[-1] == "10"
    assert ds.skills[1].tolist() == [4]
    with pytest.raises(DataError) as ei:
        read_data(p, skill_vocab=["1", "2", "3", "4"])
    msg = str(ei.value)
    assert "v.csv, line 5:" in msg and "skill id 5 at position 1 is not one the model knows (it has 4 skills)" in msg
    data_dir = tmp_path / "f"
    data_dir.mkdir()
    _write(data_dir, "train.csv", "2\n1,3\n1,0\n")
    out = load_folder(data_dir, skill_vocab=[str(k) for k in range(1, 6)])
    assert out["train"].num_skills == 5


# --------------------------------------------------------------------------- split

def _toy(n=50):
    rng = np.random.default_rng(1)
    skills = [rng.integers(0, 5, size=rng.integers(1, 9)).astype(np.int64) for _ in range(n)]
    resp = [rng.integers(0, 2, size=len(s)).astype(np.int64) for s in skills]
    labels = [str(k) for k in range(1, 6)]
    return KTDataset(skills, resp, [str(k) for k in range(n)], 5, labels, list(labels))


def test_train_valid_split_seeded():
    ds = _toy()
    a_tr, a_va = train_valid_split(ds, 0.2, seed=3)
    b_tr, b_va = train_valid_split(ds, 0.2, seed=3)
    c_tr, c_va = train_valid_split(ds, 0.2, seed=4)
    assert a_tr.student_ids == b_tr.student_ids and a_va.student_ids == b_va.student_ids
    assert a_va.student_ids != c_va.student_ids
    assert not set(a_tr.student_ids) & set(a_va.student_ids)
    assert sorted(a_tr.student_ids + a_va.student_ids, key=int) == ds.student_ids
    assert len(a_va) == 10
    assert a_tr.num_skills == a_va.num_skills == 5


# --------------------------------------------------------------------------- round trips

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    _students = st.lists(
        st.lists(st.tuples(st.integers(1, 40), st.integers(0, 1)), min_size=1, max_size=30),
        min_size=1, max_size=8)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(students=_students, trailing=st.booleans(), crlf=st.booleans())
    def test_three_line_round_trip(tmp_path, students, trailing, crlf):
        nl = "\r\n" if crlf else "\n"
        end = "," if trailing else ""
        parts = []
        for seq in students:
            parts += [str(len(seq)), ",".join(str(s) for s, _ in seq) + end,
                      ",".join(str(r) for _, r in seq) + end]
        p = _write(tmp_path, "rt.csv", nl.join(parts) + nl)
        ds = read_data(p)
        assert ds.num_skills == max(s for seq in students for s, _ in seq)
        for k, seq in enumerate(students):
            assert ds.skills[k].tolist() == [s - 1 for s, _ in seq]
            assert ds.responses[k].tolist() == [r for _, r in seq]

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(students=_students, seed=st.integers(0, 10_000))
    def test_long_round_trip_shuffled(tmp_path, students, seed):
        rows = []
        t = 0
        for k, seq in enumerate(students):
            for s, r in seq:
                t += 1
                rows.append((f"stu{k}", s, r, t))
        rng = np.random.default_rng(seed)
        shuffled = [rows[i] for i in rng.permutation(len(rows))]
        text = "user_id,skill_id,correct,timestamp\n" + "".join(
            f"{u},{s},{r},{t}\n" for u, s, r, t in shuffled)
        ds = read_data(_write(tmp_path, "rt_long.csv", text))
        labels = sorted({s for seq in students for s, _ in seq})
        assert ds.skill_labels == [str(v) for v in labels]
        for k, seq in enumerate(students):
            row = ds.index_of(f"stu{k}")
            assert [labels[i] for i in ds.skills[row]] == [s for s, _ in seq]
            assert ds.responses[row].tolist() == [r for _, r in seq]


def test_one_module_per_format_and_old_imports_still_work():
    import cmkt.data.readers as readers
    from cmkt.data import longlog, pykt, threeline

    assert readers.read_three_line is threeline.read_three_line
    assert readers.read_pykt is pykt.read_pykt
    assert readers.read_long is longlog.read_long
    for name in readers.__all__:
        assert hasattr(readers, name), name
    root = Path(readers.__file__).parent
    for f in ("readers.py", "threeline.py", "pykt.py", "longlog.py", "_common.py"):
        assert len((root / f).read_text().splitlines()) < 350, f


def test_pykt_questions_with_several_concepts_are_one_step(tmp_path):
    """pyKT expands a question with several concepts into consecutive rows sharing one response
    (is_repeat 0, then 1 for the copies): each question is one step, with its first concept, so
    the first copy's response never feeds the prediction of the next copy."""
    text = (
        "fold,uid,questions,concepts,responses,selectmasks,is_repeat\n"
        # q7 has concepts 3,4 (answered 1); q8 has 0 (answered 0); q9 has 1,2,5 (answered 0)
        '0,u1,"7,7,8,9,9,9,-1,-1","3,4,0,1,2,5,-1,-1","1,1,0,0,0,0,-1,-1","1,1,1,1,1,1,-1,-1",'
        '"0,1,0,0,1,1,-1,-1"\n'
        '0,u2,"8,7,7","0,3,4","1,0,0","1,1,1","0,0,1"\n'
    )
    ds = read_pykt(_write(tmp_path, "train_valid_sequences.csv", text))
    i, j = ds.index_of("u1"), ds.index_of("u2")
    assert ds.skills[i].tolist() == [3, 0, 1] and ds.responses[i].tolist() == [1, 0, 0]
    assert ds.skills[j].tolist() == [0, 3] and ds.responses[j].tolist() == [1, 0]
    assert ds.num_skills == 6                         # every concept keeps its index
    assert any("is_repeat" in n and "4 repeated rows" in n for n in ds.notes), ds.notes
    assert detect_format(tmp_path / "train_valid_sequences.csv") == "pykt"
    # without the column, rows are steps as before
    plain = read_pykt(_write(tmp_path, "plain.csv", "uid,concepts,responses\nu1,\"3,4\",\"1,1\"\n"))
    assert plain.skills[0].tolist() == [3, 4] and not plain.notes


@pytest.mark.parametrize("rep, problem", [
    ('"0,2"', "is_repeat 2 at position 2 should be 0 or 1"),
    ('"0"', "1 is_repeat values but 2 concepts"),
    ('"0,x"', "is not an integer"),
])
def test_pykt_bad_is_repeat_names_file_and_line(tmp_path, rep, problem):
    f = _write(tmp_path, "bad.csv", f'uid,concepts,responses,is_repeat\n\nu1,"3,4","1,1",{rep}\n')
    with pytest.raises(DataError) as e:
        read_pykt(f)
    assert e.value.line == 3 and problem in str(e.value) and "bad.csv" in str(e.value)
