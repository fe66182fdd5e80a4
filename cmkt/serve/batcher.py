"""Micro-batching: the windows of concurrent requests go through the model together.

Many small forward passes from many threads only fight over the GIL; one thread that runs every
window waiting at that moment as one padded batch (as export batches windows: padding comes after
a window's end, so it changes nothing before it) serves N concurrent clients for little more than
the cost of one. A lone request runs alone, with no wait. Windows that continue a student (they
start from a carry) and first windows are run as separate batches, as export runs them.
"""
from __future__ import annotations

import queue
import threading
import time
from types import SimpleNamespace

import numpy as np
import torch

MAX_BATCH = 64


class _Job:
    __slots__ = ("skills", "responses", "keep_at", "carry", "done", "out", "error")

    def __init__(self, skills, responses, keep_at, carry):
        self.skills, self.responses, self.keep_at, self.carry = skills, responses, keep_at, carry
        self.done = threading.Event()
        self.out = self.error = None


class Batcher:
    """model: run in this process's batching thread; process (cmkt/serve/worker.py ModelProcess):
    run in a process of its own (the service's way: no GIL shared with the requests)."""

    def __init__(self, model, device="cpu", max_batch: int = MAX_BATCH, process=None):
        self.model = model
        self.process = process
        self.device = device
        self.max_batch = max_batch
        self.largest = 0                      # the largest batch run so far
        self.batches = self.windows = 0       # batches run, windows in them
        self.busy = 0.0                       # seconds spent running them
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="cmkt-serve-model", daemon=True)
        self.thread.start()

    def run(self, skills: np.ndarray, responses: np.ndarray, keep_at: int, carry: torch.Tensor | None):
        """One window (T,) through the model with others waiting now; an output whose tensors have a
        batch dimension of 1 (logits (1, T), mastery and gains (1, T, C), parts (1, T, 3) or None)."""
        job = _Job(skills, responses, keep_at, carry)
        self.jobs.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.out

    def _loop(self) -> None:
        while True:
            jobs = [self.jobs.get()]
            while len(jobs) < self.max_batch:
                try:
                    jobs.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            t0 = time.perf_counter()
            for group in ([j for j in jobs if j.carry is None], [j for j in jobs if j.carry is not None]):
                if group:
                    self._run(group)
            self.busy += time.perf_counter() - t0
            self.batches += 1
            self.windows += len(jobs)

    def stats(self) -> dict:
        """How the batches went so far: the totals, and windows and milliseconds per batch."""
        n = max(self.batches, 1)
        return {"batches": self.batches, "windows": self.windows, "busy_s": round(self.busy, 4),
                "windows_per_batch": round(self.windows / n, 2), "ms_per_batch": round(1000 * self.busy / n, 2),
                "largest_batch": self.largest}

    @torch.inference_mode()
    def _run(self, jobs: list[_Job]) -> None:
        try:
            B, T = len(jobs), max(len(j.skills) for j in jobs)
            self.largest = max(self.largest, B)
            skills = np.zeros((B, T), np.int64)
            responses = np.zeros((B, T), np.int64)
            for b, j in enumerate(jobs):
                skills[b, :len(j.skills)] = j.skills
                responses[b, :len(j.responses)] = j.responses
            keep = np.array([j.keep_at for j in jobs], np.int64)                 # (B,)
            start = None
            if jobs[0].carry is not None:
                start = torch.stack([j.carry for j in jobs]).float()             # (B, C)
            if self.process is not None:
                logits, mastery, gains, parts = self.process.forward(
                    skills, responses, keep, None if start is None else start.numpy())
            else:
                out = self.model(torch.from_numpy(skills).to(self.device), torch.from_numpy(responses).to(self.device),
                                 start=None if start is None else start.to(self.device),
                                 keep_from=torch.from_numpy(keep).to(self.device))
                logits, mastery, gains, parts = out.logits, out.mastery, out.gains, getattr(out, "parts", None)
            for b, j in enumerate(jobs):
                n = len(j.skills)
                j.out = SimpleNamespace(logits=logits[b:b + 1, :n], mastery=mastery[b:b + 1, :n],
                                        gains=gains[b:b + 1, :n],
                                        parts=None if parts is None else parts[b:b + 1, :n])
        except Exception as e:  # noqa: BLE001 - handed to the waiting requests
            for j in jobs:
                j.error = e
        finally:
            for j in jobs:
                j.done.set()
