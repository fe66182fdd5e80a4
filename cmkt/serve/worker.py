"""The model in a process of its own, so that its forward passes do not share a GIL with the requests.

A forward pass is a few hundred small tensor operations; each gives the GIL up and must take it
back. In the service's process the request threads (HTTP, validation, the database) hold it in
between: a batch took 10-13 ms there against 5-6 ms here (benchmarks/serve.py reports the model's
milliseconds per batch; docs/RESULTS.md, "Serving mastery"). The parent sends each padded batch
through a socket pair and waits for the outputs (numpy arrays); the child (`python -m
cmkt.serve.worker`, so nothing of the parent's main module is run again) loads the same checkpoint,
weights only, and exits when the pipe closes (also when the service is killed).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection

import numpy as np
import torch

from cmkt.errors import CmktError

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # where cmkt is


def _child(conn, path: str, threads: int) -> None:
    """The model process: load the run, then answer batches until the pipe closes."""
    torch.set_num_threads(max(1, threads))
    try:
        from cmkt.runs.checkpoint import load_checkpoint
        model = load_checkpoint(path, "cpu")[0].eval()
    except Exception as e:  # noqa: BLE001 - reported to the parent, which refuses to start
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):               # the service is gone
            return
        if msg is None:
            return
        skills, responses, keep, start = msg
        try:
            with torch.inference_mode():
                out = model(torch.from_numpy(skills), torch.from_numpy(responses),
                            start=None if start is None else torch.from_numpy(start),
                            keep_from=torch.from_numpy(keep))
                parts = getattr(out, "parts", None)
                reply = ("ok", out.logits.float().numpy(), out.mastery.float().numpy(), out.gains.float().numpy(),
                         None if parts is None else parts.float().numpy())
        except Exception as e:  # noqa: BLE001 - handed to the waiting requests
            reply = ("error", f"{type(e).__name__}: {e}")
        conn.send(reply)


class ModelUnavailable(CmktError):
    """The model process stopped and could not be started again."""


class ModelProcess:
    """A child process that runs the model of the run at `path` on padded batches (one at a time).
    If it dies (killed, out of memory), the next batch starts a new one and is run there."""

    def __init__(self, path: str, threads: int = 1, start_timeout: float = 300.0):
        self.path, self.threads, self.start_timeout = str(path), threads, start_timeout
        self.restarts = 0
        self._lock = threading.Lock()
        self.proc = self._conn = None
        self._start()

    def _start(self) -> None:
        mine, theirs = socket.socketpair()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [_ROOT, os.environ.get("PYTHONPATH")] if p))
        self.proc = subprocess.Popen([sys.executable, "-m", "cmkt.serve.worker", str(theirs.fileno()), self.path,
                                      str(self.threads)], pass_fds=[theirs.fileno()], env=env,
                                     stdin=subprocess.DEVNULL)
        theirs.close()
        self._conn = Connection(mine.detach())
        try:
            ready = self._conn.poll(self.start_timeout)
            status, detail = self._conn.recv() if ready else ("error", f"not ready within {self.start_timeout:.0f} s")
        except (EOFError, OSError):
            status, detail = "error", f"it exited with code {self.proc.wait(10)}"
        if status != "ready":
            self.close()
            raise ModelUnavailable(f"{self.path}: the model process could not load the run ({detail})")

    def forward(self, skills: np.ndarray, responses: np.ndarray, keep: np.ndarray, start: np.ndarray | None):
        """skills, responses (B, T) int64; keep (B,) int64; start (B, C) float32 or None ->
        (logits (B, T), mastery (B, T, C), gains (B, T, C), parts (B, T, 3) or None) as tensors."""
        msg = (skills, responses, keep, start)
        with self._lock:
            try:
                reply = self._ask(msg)
            except (EOFError, OSError, ValueError):      # the process died: a new one runs the batch
                self.close()
                self.restarts += 1
                self._start()
                reply = self._ask(msg)
        if reply[0] != "ok":
            raise RuntimeError(f"the model process failed: {reply[1]}")
        return tuple(None if a is None else torch.from_numpy(a) for a in reply[1:])

    def _ask(self, msg):
        self._conn.send(msg)
        return self._conn.recv()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            self._conn.send(None)
        except (OSError, ValueError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._conn.close()


if __name__ == "__main__":
    _child(Connection(int(sys.argv[1])), sys.argv[2], int(sys.argv[3]))
