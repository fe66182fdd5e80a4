"""Launching a run: where it trains (device_plan), the command that trains it (one process, or
torchrun with one process per GPU), and `cmkt train` under torchrun (rank 0 makes the run
folder and tells the other ranks its name)."""
from __future__ import annotations

import sys

import torch

from cmkt.errors import Cancelled, CmktError
from cmkt.runs.execute import execute_run
from cmkt.runs.folder import read_config
from cmkt.train.distributed import active, broadcast_object, init_from_env, is_main, shutdown


def gpu_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def device_plan(device: str = "auto", gpus: int | None = None) -> str:
    """In words, where a run with this device setting trains on this machine (what
    train_command launches)."""
    gpus = gpu_count() if gpus is None else gpus
    if device == "cpu":
        return "Trains on the CPU in one process" + (f" (this machine also has {gpus} GPU{'s' * (gpus != 1)})."
                                                     if gpus else ".")
    if gpus > 1:
        return (f"This machine has {gpus} GPUs: the run trains with one process per GPU ({gpus} processes, "
                "torchrun, NCCL); each batch is split between them and one process writes the run folder.")
    if gpus == 1:
        return "Trains on this machine's GPU in one process."
    if device == "cuda":
        return "No GPU is visible on this machine: a run that asks for cuda stops with an error."
    return "No GPU on this machine: trains on the CPU in one process."


def _is_ensemble(run_dir) -> bool:
    """Whether a prepared run folder holds an ensemble (members > 1), which trains in one process."""
    try:
        return int((read_config(run_dir).get("model") or {}).get("members", 1)) > 1
    except (CmktError, ValueError, TypeError, AttributeError):   # not a run folder yet: one model
        return False


def train_command(run_dir, device: str = "auto", python: str | None = None, gpus: int | None = None) -> list[str]:
    """The command that trains (or resumes) a prepared run folder: one process per GPU through
    torchrun when the run may use GPUs and there are several (and is not an ensemble), one plain
    process otherwise."""
    python = python or sys.executable
    gpus = gpu_count() if gpus is None else gpus
    if device in ("auto", "cuda") and gpus > 1 and not _is_ensemble(run_dir):
        return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
                "-m", "cmkt", "train", "--resume", str(run_dir)]
    return [python, "-m", "cmkt", "train", "--resume", str(run_dir)]


_shared = {"done": False}


def share_run_dir(run_dir) -> None:
    """Rank 0 tells the other ranks which run folder to train (no-op with one process)."""
    if active() and is_main() and not _shared["done"]:
        _shared["done"] = True
        broadcast_object(str(run_dir))


def train_distributed(a, cmd_train) -> int:
    """`cmkt train` under torchrun: rank 0 makes (or resumes) the run folder and runs the usual
    command; the others wait for the folder's name and train in step with it."""
    if a.background:
        raise CmktError("--background starts its own process: do not combine it with torchrun")
    device = a.device
    if a.resume:
        device = (read_config(a.resume).get("train") or {}).get("device", device)
    init_from_env(device)
    try:
        if is_main():
            try:
                return cmd_train(a)
            finally:
                if not _shared["done"]:          # failed before the run folder existed
                    _shared["done"] = True
                    broadcast_object(None)
        run_dir = broadcast_object(None)
        if run_dir is None:
            return 2                            # rank 0 has said why
        try:
            execute_run(run_dir)
        except Cancelled:
            return 130
        return 0
    finally:
        shutdown()
