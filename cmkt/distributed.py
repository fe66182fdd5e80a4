"""Several training processes (torchrun): data-parallel training of one run.

    torchrun --nproc_per_node N [--nnodes M ...] -m cmkt train ...

gloo on CPU, NCCL on CUDA (one GPU per process, cuda:LOCAL_RANK). Every process holds the whole
data set and the same batch plan (it is seeded); each planned batch's windows are shared out by
position (rank r takes windows r, r + N, ...), so the global batch is exactly the one-process
batch. After its forward pass each rank all-gathers the batch's outputs (prediction, mastery,
gains, logit parts) with the steps they belong to, so that

* every rank computes the losses over the whole batch, exactly as one process would (the
  auxiliary losses have batch-level means and hinges that do not split into per-rank sums);
  the backward pass keeps the gradient of the rank's own rows and one all-reduce of the
  flattened parameter gradients (what DistributedDataParallel does) sums them, so the update
  equals the one-process update;
* every rank holds the carried mastery of every window of the batch: a window that continues
  a long student starts from its previous window's last mastery whichever rank ran that window.

Rank 0 alone writes the run folder, scores the validation split and broadcasts the record; the
stop flag (cancel file, SIGTERM) is all-reduced before every batch, so every rank stops at the
same batch. With one process (no torchrun) everything here is a no-op.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import torch


# ---- process group ------------------------------------------------------------------------

def world_size() -> int:
    if _initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    if _initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0") or 0)


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_main() -> bool:
    return rank() == 0


def _initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def active() -> bool:
    """True inside a process group of more than one process."""
    return _initialized() and torch.distributed.get_world_size() > 1


def backend_for(device: str) -> str:
    """NCCL when the run trains on GPUs, gloo otherwise."""
    return "nccl" if device != "cpu" and torch.cuda.is_available() else "gloo"


def init_from_env(device: str = "auto") -> bool:
    """Join the process group torchrun describes (WORLD_SIZE > 1). Returns whether one was joined."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1 or _initialized():
        return _initialized()
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    torch.distributed.init_process_group(backend)
    return True


def shutdown() -> None:
    """Leave the process group together: a rank that tears gloo down while another still talks
    to it (rank 0 scores the test split after training) can abort the whole job."""
    if _initialized():
        try:
            if torch.distributed.get_world_size() > 1:
                torch.distributed.barrier()
        finally:
            torch.distributed.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """With several processes on CUDA, each takes the GPU of its local rank."""
    if device.type == "cuda" and active():
        return torch.device("cuda", local_rank())
    return device


def _comm_device() -> torch.device:
    if _initialized() and torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ---- small collectives ----------------------------------------------------------------------

def any_flag(flag: bool) -> bool:
    """True on every rank when it is True on any (the stop flag)."""
    if not active():
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=_comm_device())
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast_object(obj=None, src: int = 0):
    """rank src's obj on every rank (picklable plain data)."""
    if not active():
        return obj
    box = [obj if rank() == src else None]
    torch.distributed.broadcast_object_list(box, src=src, device=_comm_device())
    return box[0]


def on_main(fn):
    """Run fn on rank 0 only and give its (plain-data) result to every rank."""
    if not active():
        return fn()
    return broadcast_object(fn() if is_main() else None)


def sync_grads(model: torch.nn.Module) -> None:
    """Sum every parameter's gradient over the ranks (one flat all-reduce). Parameters a rank
    did not use count as zero there."""
    if not active():
        return
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    at = 0
    for p in params:
        n = p.numel()
        p.grad = flat[at:at + n].view_as(p).clone()
        at += n


# ---- sharded forward pass --------------------------------------------------------------------

def shard(idx: np.ndarray, n: int, r: int) -> np.ndarray:
    """Rank r's share of a planned batch: its windows at positions r, r + n, ..."""
    return idx[r::n]


class _GatherRows(torch.autograd.Function):
    """All-gather equal-shaped blocks; backward keeps the gradient of this rank's own block
    (every rank computes the same loss from the gathered batch, so that is its whole share)."""

    @staticmethod
    def forward(ctx, block):
        n = torch.distributed.get_world_size()
        ctx.rank, ctx.rows = torch.distributed.get_rank(), block.shape[0]
        parts = [torch.empty_like(block) for _ in range(n)]
        torch.distributed.all_gather(parts, block.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad):
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


@dataclasses.dataclass
class GlobalBatch:
    """The whole planned batch as seen by every rank (what compute_losses takes)."""

    out: object
    skills: torch.Tensor
    responses: torch.Tensor
    kept: torch.Tensor


def forward_batch(model, ds, cw, idx: np.ndarray, carry: torch.Tensor, device) -> GlobalBatch:
    """forward_windows over this rank's share of the planned batch idx, then the whole batch's
    outputs gathered from every rank (rows: rank 0's windows, then rank 1's, ...), and the
    carried mastery of every window of the batch updated on every rank."""
    from .scoring import forward_windows
    if not active():
        wb = forward_windows(model, ds, cw, idx, carry, device)
        return GlobalBatch(wb.out, wb.skills, wb.responses, wb.kept)
    n, r = world_size(), rank()
    shares = [shard(idx, n, q) for q in range(n)]
    rows = max(1, max(len(s) for s in shares))
    T = int(cw.windows.lengths[idx].max())
    own = shares[r]
    wb = forward_windows(model, ds, cw, own if len(own) else idx[:1], carry, device)
    out = wb.out
    kept = wb.kept if len(own) else torch.zeros_like(wb.kept)       # a stand-in window counts for nothing
    cols = [out.logits.float().unsqueeze(-1), wb.skills.float().unsqueeze(-1),
            wb.responses.float().unsqueeze(-1), kept.float().unsqueeze(-1),
            out.mastery.float(), out.gains.float()]
    has_parts = getattr(out, "parts", None) is not None
    if has_parts:
        cols.append(out.parts.float())
    block = torch.cat(cols, dim=-1)                                   # (b, t, 4 + 2C [+ 3])
    block = torch.nn.functional.pad(block, (0, 0, 0, T - block.shape[1], 0, rows - block.shape[0]))
    full = _GatherRows.apply(block)                                   # (n * rows, T, F)
    C = out.mastery.shape[-1]
    logits, skills, responses, kept_all = (full[..., i] for i in range(4))
    mastery, gains = full[..., 4:4 + C], full[..., 4 + C:4 + 2 * C]
    parts = full[..., 4 + 2 * C:] if has_parts else None
    # carry: every window of the batch that has a next window hands it its last mastery
    has_next = cw.has_next
    for q, s in enumerate(shares):
        nxt = np.nonzero(has_next[s])[0]
        if len(nxt):
            last = torch.as_tensor(cw.windows.lengths[s[nxt]] - 1, device=full.device)
            at = torch.as_tensor(q * rows + nxt, device=full.device)
            carry[torch.as_tensor(s[nxt] + 1, device=carry.device)] = \
                mastery[at, last].detach().to(device=carry.device, dtype=carry.dtype)
    fields = {"logits": logits, "mastery": mastery, "gains": gains}
    if has_parts:
        fields["parts"] = parts
    if hasattr(out, "start"):
        fields["start"] = None
    new_out = dataclasses.replace(out, **fields) if dataclasses.is_dataclass(out) else type(out)(**fields)
    return GlobalBatch(new_out, skills.long(), responses.long(), kept_all > 0.5)


# ---- launching ---------------------------------------------------------------------------------

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
    from .errors import CmktError
    from .runs import read_config
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


# ---- the other ranks' part of a run --------------------------------------------------------

def execute_worker(run_dir) -> None:
    """What a rank other than 0 does with a run folder: read it, train in step with rank 0,
    write nothing."""
    import signal

    from .config import TrainConfig
    from .datasource import load_training_data
    from .model import ModelConfig
    from .runs import RESUME, read_config
    from .trainer import TrainCallbacks, Trainer

    class WorkerCallbacks(TrainCallbacks):
        stop = False

        def should_stop(self) -> bool:
            return self.stop

    callbacks = WorkerCallbacks()

    def on_term(signum, frame):
        callbacks.stop = True
    signal.signal(signal.SIGTERM, on_term)
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    train_cfg = TrainConfig(**dict(cfg["train"]))
    data = load_training_data(train_cfg.data, train_cfg.valid_fraction, train_cfg.seed,
                              train_cfg.sim_students, train_cfg.sim_skills)
    model_cfg = ModelConfig.from_dict(dict(cfg["model"], num_skills=data.num_skills))
    trainer = Trainer(model_cfg, train_cfg, data, callbacks)
    if (run_dir / RESUME).exists():
        trainer.load_state_dict(torch.load(str(run_dir / RESUME), map_location="cpu", weights_only=True))
    trainer.fit()


# ---- the command line under torchrun -----------------------------------------------------------

_shared = {"done": False}


def share_run_dir(run_dir) -> None:
    """Rank 0 tells the other ranks which run folder to train (no-op with one process)."""
    if active() and is_main() and not _shared["done"]:
        _shared["done"] = True
        broadcast_object(str(run_dir))


def train_distributed(a, cmd_train) -> int:
    """`cmkt train` under torchrun: rank 0 makes (or resumes) the run folder and runs the usual
    command; the others wait for the folder's name and train in step with it."""
    from .errors import CmktError
    from .runs import execute_run, read_config
    from .trainer import Cancelled
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
