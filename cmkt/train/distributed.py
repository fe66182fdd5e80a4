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
    from cmkt.analysis.scoring import forward_windows
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
