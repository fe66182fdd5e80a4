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
    def __init__(self, model, device="cpu", max_batch: int = MAX_BATCH):
        self.model = model
        self.device = device
        self.max_batch = max_batch
        self.largest = 0                      # the largest batch run so far
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
            for group in ([j for j in jobs if j.carry is None], [j for j in jobs if j.carry is not None]):
                if group:
                    self._run(group)

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
            s = torch.from_numpy(skills).to(self.device)                         # (B, T)
            r = torch.from_numpy(responses).to(self.device)                      # (B, T)
            k0 = torch.as_tensor([j.keep_at for j in jobs], device=self.device)  # (B,)
            start = None
            if jobs[0].carry is not None:
                start = torch.stack([j.carry for j in jobs]).to(self.device)     # (B, C)
            out = self.model(s, r, start=start, keep_from=k0)
            parts = getattr(out, "parts", None)
            for b, j in enumerate(jobs):
                n = len(j.skills)
                j.out = SimpleNamespace(logits=out.logits[b:b + 1, :n], mastery=out.mastery[b:b + 1, :n],
                                        gains=out.gains[b:b + 1, :n],
                                        parts=None if parts is None else parts[b:b + 1, :n])
        except Exception as e:  # noqa: BLE001 - handed to the waiting requests
            for j in jobs:
                j.error = e
        finally:
            for j in jobs:
                j.done.set()
