"""Readers, fuzzed: random bytes and random mutations of valid files of each format either
read into a valid data set or raise the project's own DataError naming the file (and a line
within the file, when it gives one) -- never another exception, never a hang."""
from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cmkt.data import read_data, read_long, read_pykt, read_three_line
from cmkt.errors import CmktError, DataError

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 500))   # CI: 500 per format; FUZZ_RANDOM=1 for new seeds
SECONDS_PER_EXAMPLE = 10      # a reader that takes longer than this on a small file hangs

THREE_LINE = (b"3\n1,2,3\n0,1,1\n"
              b"2,\n4,1,\n1,0,\n"
              b"\n1\n2\n1\n")
PYKT = (b"fold,uid,questions,concepts,responses,selectmasks,is_repeat\n"
        b'0,u1,"7,7,8,-1","3,4,0,-1","1,1,0,-1","1,1,1,-1","0,1,0,-1"\n'
        b'1,u2,"8,9","0,2","1,0","1,1","0,0"\n'
        b'0,u1,"9","1","1","1","0"\n')
LONG = (b"user_id,skill_id,skill_name,correct,order_id\n"
        b"s1,3,fractions,1,10\n"
        b"s2,5,decimals,0,11\n"
        b"s1,5,decimals,0,9\n"
        b"s2,3,fractions,1,12\n"
        b"s1,,,1,13\n")
SEEDS = {"three_line": (THREE_LINE, read_three_line), "pykt": (PYKT, read_pykt), "long": (LONG, read_long)}

# bytes that matter to the parsers: separators, quotes, signs, digits, line ends, BOM/UTF-8 parts
_SPECIAL = st.sampled_from([b",", b"\n", b"\r", b"\r\n", b"\t", b'"', b"'", b"-", b"+", b"-1", b"0", b"1",
                            b"9" * 25, b" ", b".", b"e", b"_", b"nan", b"\xef\xbb\xbf", b"\xc3", b"\x00",
                            b"\xff", b"\xe2\x80\xa8", b"\xd9\xa3", b"1e400", b"is_repeat", b"user_id",
                            b"concepts", b"responses", b"uid", b"correct", b"timestamp"])


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "truncate", "swap"]))
        n = len(data)
        at = draw(st.integers(0, n))
        if op == "insert":
            piece = draw(st.one_of(_SPECIAL, st.binary(min_size=1, max_size=8)))
            data[at:at] = piece
        elif op == "delete" and n:
            end = draw(st.integers(at, min(n, at + 12)))
            del data[at:end]
        elif op == "replace" and at < n:
            piece = draw(st.one_of(_SPECIAL, st.binary(min_size=1, max_size=3)))
            data[at:at + len(piece)] = piece
        elif op == "duplicate" and n:
            end = draw(st.integers(at, min(n, at + 40)))
            data[at:at] = data[at:end]
        elif op == "truncate":
            del data[at:]
        elif op == "swap" and n > 1:
            b = draw(st.integers(0, n - 1))
            a = min(at, n - 1)
            data[a], data[b] = data[b], data[a]
    return bytes(data)


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang(f"a reader ran for over {SECONDS_PER_EXAMPLE} s")


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory(prefix="cmkt-fuzz-") as d:
        yield Path(d)


def check_reads_or_refuses(path: Path, raw: bytes, reader) -> None:
    path.write_bytes(raw)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(SECONDS_PER_EXAMPLE)
    try:
        for read in (read_data, reader):
            try:
                ds = read(path)
            except DataError as e:
                assert e.path == str(path), str(e)
                assert str(e).startswith(str(path)), str(e)
                if e.line is not None:
                    n_lines = raw.count(b"\n") + raw.count(b"\r") + 1
                    assert 1 <= e.line <= n_lines, (e.line, n_lines, str(e))
            except CmktError as e:  # pragma: no cover - a reader must raise DataError
                pytest.fail(f"{type(e).__name__} instead of DataError: {e}")
            else:
                check_valid(ds)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def check_valid(ds) -> None:
    assert len(ds.skills) == len(ds.responses) == len(ds.student_ids) > 0
    assert len(set(ds.student_ids)) == len(ds.student_ids)
    assert len(ds.skill_labels) == len(ds.skill_names) == ds.num_skills > 0
    for s, r in zip(ds.skills, ds.responses):
        assert len(s) == len(r) > 0
        assert s.dtype == np.int64 and r.dtype == np.int64
        assert s.min() >= 0 and s.max() < ds.num_skills
        assert set(np.unique(r).tolist()) <= {0, 1}


_SETTINGS = dict(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("FUZZ_RANDOM"), database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                        HealthCheck.data_too_large])


@pytest.mark.parametrize("fmt", list(SEEDS))
def test_seed_files_read(folder, fmt):
    seed, reader = SEEDS[fmt]
    path = folder / f"seed-{fmt}.csv"
    path.write_bytes(seed)
    check_valid(read_data(path))
    check_valid(reader(path))


@settings(**_SETTINGS)
@given(raw=st.binary(max_size=300))
def test_random_bytes(folder, raw):
    check_reads_or_refuses(folder / "random.csv", raw, read_three_line)


@settings(**_SETTINGS)
@given(raw=mutated(THREE_LINE))
def test_mutated_three_line(folder, raw):
    check_reads_or_refuses(folder / "three.csv", raw, read_three_line)


@settings(**_SETTINGS)
@given(raw=mutated(PYKT))
def test_mutated_pykt(folder, raw):
    check_reads_or_refuses(folder / "train_valid_sequences.csv", raw, read_pykt)


@settings(**_SETTINGS)
@given(raw=mutated(LONG))
def test_mutated_long(folder, raw):
    check_reads_or_refuses(folder / "log.csv", raw, read_long)


_TOKENS = ["user_id", "skill_id", "skill_name", "correct", "order_id", "timestamp", "uid", "concepts",
           "responses", "is_repeat", ",", ",", ",", "\n", "\n", "\r", "\t", '"', "'", "-1", "0", "1", "2",
           " ", "1.0", "nan", "a", "2020-01-01", "9" * 20, "\ufeff", "\u00e9", ";", "\x1c", "\u2028"]


@settings(**_SETTINGS)
@given(parts=st.lists(st.sampled_from(_TOKENS), max_size=60))
@example(parts=["\n", '"', ","])      # found by this test: an unclosed quote named line 3 of 2
def test_random_text_from_the_formats_tokens(folder, parts):
    """Headers, separators, quotes and values of every format, in random order."""
    check_reads_or_refuses(folder / "tokens.csv", "".join(parts).encode(), read_long)


# ---- what the fuzzer found (kept as plain tests) -----------------------------------------

@pytest.mark.parametrize("text, line, problem", [
    # an unclosed quote is reported on its own line, not shifted by the lines before the header
    ('\n\nuser_id,skill_id,correct\ns1,1,1\n"s2,1,1\n', 5, "a quoted field is never closed"),
    ('\n",', 2, "a quoted field is never closed"),
    # a quoted field with a line break in it does not shift the lines of the rows after it
    ('user_id,skill_id,correct\n"s\n1",1,1\ns2,1,x\n', 4, "response 'x'"),
    ('user_id,skill_name,correct\ns1,"add,\nsubtract",1\n\ns2,"mult\n\niply",maybe\n', 5, "response 'maybe'"),
])
def test_long_log_errors_name_the_right_line(folder, text, line, problem):
    path = folder / "lines.csv"
    path.write_text(text)
    with pytest.raises(DataError) as e:
        read_long(path)
    assert e.value.line == line and problem in str(e.value), str(e.value)
