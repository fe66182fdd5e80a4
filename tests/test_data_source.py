"""--data specs into splits (cmkt/data/source.py): a repeated read of unchanged data is reused, a
changed file is read again, and `cmkt train` reads its data once."""
from __future__ import annotations

import os

import numpy as np

from cmkt.data import source
from cmkt.data.source import load_training_data
from cmkt.runs import create_run, execute_run

TINY_SET = {"d_model": "16", "n_heads": "2", "d_ff": "32", "max_len": "50"}


def write_log(path, n_students: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    rows = ["user_id,skill_id,correct"]
    for u in range(n_students):
        rows += [f"u{u},{int(rng.integers(1, 5))},{int(rng.integers(2))}" for _ in range(int(rng.integers(3, 12)))]
    path.write_text("\n".join(rows) + "\n")


def counting(monkeypatch) -> list:
    reads = []
    real = source._read_training_data

    def read(*args):
        reads.append(args[0])
        return real(*args)
    monkeypatch.setattr(source, "_read_training_data", read)
    return reads


def test_a_second_read_of_unchanged_data_is_reused_and_a_changed_file_is_read_again(tmp_path, monkeypatch):
    reads = counting(monkeypatch)
    folder = tmp_path / "d"
    folder.mkdir()
    write_log(folder / "train.csv", 20)
    a = load_training_data(str(folder), seed=1)
    assert load_training_data(str(folder), seed=1) is a and len(reads) == 1
    assert load_training_data(str(folder), seed=2) is not a                   # other options: read
    assert len(reads) == 2
    write_log(folder / "train.csv", 30, seed=5)                              # the file changed
    st = (folder / "train.csv").stat()
    os.utime(folder / "train.csv", ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    b = load_training_data(str(folder), seed=1)
    assert len(reads) == 3 and len(b.train) + len(b.valid) == 30
    write_log(folder / "test.csv", 5)                                        # a file added to the folder
    assert load_training_data(str(folder), seed=1).test is not None and len(reads) == 4


def test_cmkt_train_reads_its_data_once(tmp_path, monkeypatch):
    reads = counting(monkeypatch)
    source._LAST[:] = [None, None]
    write_log(tmp_path / "log.csv", 30)
    run = create_run(tmp_path / "runs", data=str(tmp_path / "log.csv"), epochs=1, overrides=TINY_SET)
    execute_run(run)
    assert len(reads) == 1
    assert (run / "results.json").exists()
