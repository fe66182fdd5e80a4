"""The model process of `cmkt serve` (cmkt/serve/worker.py): it computes what the model in this
process computes, a killed one is replaced on the next batch with no answer lost or changed, and it
does not outlive a service killed with kill -9."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from cmkt.runs.checkpoint import load_checkpoint
from cmkt.serve.service import Service, Settings
from cmkt.serve.worker import ModelProcess, ModelUnavailable
from serve_kit import ROOT, train_tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("worker_runs"))


def batch(C, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, C, (3, 12)).astype(np.int64)
    r = rng.integers(0, 2, (3, 12)).astype(np.int64)
    keep = np.array([0, 6, 6], np.int64)                               # a cold window and two continuing
    start = rng.random((3, C)).astype(np.float32)
    return s, r, keep, start


def gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:                                                           # a zombie (not reaped yet) is gone
            if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


def test_the_model_process_computes_what_the_model_computes_and_replaces_itself(run):
    model = load_checkpoint(run, "cpu")[0].eval()
    s, r, keep, start = batch(model.cfg.num_skills)
    with torch.inference_mode():
        want = model(torch.from_numpy(s), torch.from_numpy(r), start=torch.from_numpy(start),
                     keep_from=torch.from_numpy(keep))
    proc = ModelProcess(run)
    try:
        for _ in range(2):
            logits, mastery, gains, parts = proc.forward(s, r, keep, start)
            assert torch.allclose(logits, want.logits, atol=1e-6)
            assert torch.allclose(mastery, want.mastery, atol=1e-6)
            assert torch.allclose(gains, want.gains, atol=1e-6)
            assert (parts is None) == (want.parts is None)
            first = proc.pid
            os.kill(first, signal.SIGKILL)                             # killed: the next batch starts a new one
            proc.proc.wait(10)
        assert proc.restarts == 1 and not proc.alive()                 # killed twice, replaced once so far
        logits, mastery, _, _ = proc.forward(s, r, keep, start)
        assert proc.restarts == 2 and proc.alive() and proc.pid != first
        assert torch.allclose(mastery, want.mastery, atol=1e-6)
    finally:
        proc.close()
    assert not proc.alive()


def test_a_run_the_model_process_cannot_load_is_refused_in_one_line(tmp_path):
    with pytest.raises(ModelUnavailable, match="could not load the run"):
        ModelProcess(tmp_path / "no-such-run", start_timeout=120)


def test_the_model_process_does_not_outlive_a_service_killed_with_kill_9(run, tmp_path):
    script = ("import sys, time\nfrom cmkt.serve.worker import ModelProcess\n"
              f"p = ModelProcess({str(run)!r})\nprint(p.pid, flush=True)\ntime.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=str(ROOT), stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        os.kill(child, 0)                                              # running
        parent.kill()                                                  # kill -9 of the service
        parent.wait(10)
        assert gone(child, 15), "the model process outlived the service"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_service_whose_model_process_died_answers_from_a_new_one(run, tmp_path):
    """Answers posted before and after the model process is killed are scored as by a service that
    never lost it (the in-process model); health says how often it was replaced."""
    svc = Service(Settings(run=str(run), db=str(tmp_path / "a.sqlite")))
    ref = Service(Settings(run=str(run), db=str(tmp_path / "b.sqlite"), model_process=False))
    try:
        labels = svc.labels
        rng = np.random.default_rng(3)
        stream = [{"skill": labels[int(rng.integers(len(labels)))], "correct": int(rng.integers(2))} for _ in range(30)]
        for i, a in enumerate(stream):
            if i == 17:
                os.kill(svc.process.pid, signal.SIGKILL)
            got = svc.post("s1", [a])["results"][0]
            want = ref.post("s1", [a])["results"][0]
            assert abs(got["prediction"] - want["prediction"]) <= 1e-6
            assert abs(got["mastery"] - want["mastery"]) <= 1e-6
        assert svc.store.count("s1") == 30
        assert svc.health()["model_restarts"] == 1 and svc.health()["model"] == "ok"
    finally:
        svc.close()
        ref.close()
