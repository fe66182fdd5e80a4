"""Mixed precision for training on GPUs.

`amp` (a TrainConfig value, `--set amp=...`): `auto` trains in bfloat16 autocast on CUDA and in
float32 on the CPU; `bf16` asks for bfloat16 autocast on either; `off` is float32 everywhere.
Only the training forward pass runs under autocast. The model's outputs are cast back to
float32 before the losses (masked means and hinges are sums), and scoring (validation, test,
validate/export) always runs in float32, so what is reported, the mastery trajectories and the
cumulative guarantees checked on them, is computed exactly as without autocast. bfloat16 needs
no loss scaling (it has float32's exponent range).
"""
from __future__ import annotations

import contextlib
import dataclasses

import torch

AMP_CHOICES = ("auto", "bf16", "off")


def amp_dtype(device: torch.device, amp: str = "auto") -> torch.dtype | None:
    """The autocast dtype a run uses on device (None: float32)."""
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if torch.device(device).type == "cuda" else None


def autocast(device: torch.device, amp: str = "auto"):
    """The context the training forward pass runs in."""
    dtype = amp_dtype(device, amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def float_outputs(batch):
    """The batch with the model's output tensors in float32 (a no-op when they already are)."""
    out = batch.out
    if not dataclasses.is_dataclass(out):
        return batch
    changes = {f.name: getattr(out, f.name).float() for f in dataclasses.fields(out)
               if isinstance(getattr(out, f.name), torch.Tensor) and getattr(out, f.name).is_floating_point()
               and getattr(out, f.name).dtype != torch.float32}
    if not changes:
        return batch
    return dataclasses.replace(batch, out=dataclasses.replace(out, **changes))
