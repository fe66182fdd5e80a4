"""Runs side by side share the cores (cmkt.runs.threads)."""
import os

import torch

from cmkt.runs import threads
from cmkt.io import write_json_atomic
from cmkt.runs import create_run


def _running(run, pid):
    write_json_atomic(run / "status.json", {"state": "running", "pid": pid})


def test_fair_share_counts_live_runs_only(tmp_path):
    a = create_run(tmp_path, data="sim:students=20,skills=3", check_data=False, name="a")
    b = create_run(tmp_path, data="sim:students=20,skills=3", check_data=False, name="b")
    c = create_run(tmp_path, data="sim:students=20,skills=3", check_data=False, name="c")
    assert threads.active_runs(tmp_path, a) == 1                 # b, c only queued
    assert threads.fair_threads(tmp_path, a, n_cores=2) == 2
    _running(b, os.getpid())                                     # alive
    _running(c, 2 ** 22 + 12345)                                 # a dead pid does not count
    assert threads.active_runs(tmp_path, a) == 2
    assert threads.fair_threads(tmp_path, a, n_cores=2) == 1
    assert threads.fair_threads(tmp_path, a, n_cores=8) == 4
    _running(a, os.getpid())                                     # itself is counted once
    assert threads.active_runs(tmp_path, a) == 2


def test_share_cores_respects_explicit_settings(tmp_path, monkeypatch):
    a = create_run(tmp_path, data="sim:students=20,skills=3", check_data=False, name="a")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.share_cores(a) is None
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads.share_cores(a, num_threads=3) is None
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(threads, "cores", lambda: 2)
        b = create_run(tmp_path, data="sim:students=20,skills=3", check_data=False, name="b")
        _running(b, os.getpid())
        assert threads.share_cores(a) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
