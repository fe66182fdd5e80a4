"""Mixed precision for training.

`amp` (a TrainConfig value, `--set amp=...`): `auto` trains in bfloat16 autocast on CUDA, and on
a CPU with native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16) when the model is at least
CPU_BF16_MIN_WIDTH wide (where it helps: docs/RESULTS.md, speed sections), else in float32;
`bf16` asks for bfloat16 autocast on either device; `off` is float32 everywhere.
Only the training forward pass runs under autocast, and inside it the cumulative mastery and
(on the CPU) the attention stay in float32. The model's outputs are cast back to float32 before
the losses (masked means and hinges are sums), and scoring (validation, test, validate/export)
always runs in float32, so what is reported, the mastery trajectories and the cumulative
guarantees checked on them, is computed exactly as without autocast. bfloat16 needs no loss
scaling (it has float32's exponent range).
"""
from __future__ import annotations

import contextlib
import dataclasses

import torch

AMP_CHOICES = ("auto", "bf16", "off")
# narrowest model (d_model) that `auto` trains in bfloat16 on a CPU. Measured by
# benchmarks/precision.py (retired; docs/experiments, "Where bfloat16 helps") on a 2-core AMD EPYC: the standard
# model (128 wide) 3.33 s per epoch in float32, 2.47 s in bfloat16; the quick model (64 wide)
# 0.89 s against 0.80 s at best and 0.91 s against 0.89 s at the median (too little to count on).
CPU_BF16_MIN_WIDTH = 128


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX-BF16)."""
    get = getattr(torch.cpu, "get_capabilities", None)
    try:
        caps = get() if get is not None else {}
    except Exception:                                     # an unknown CPU: assume not
        caps = {}
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def amp_dtype(device: torch.device, amp: str = "auto", width: int | None = None) -> torch.dtype | None:
    """The autocast dtype a run uses on device (None: float32). width: the model's d_model
    (None for models without one, which `auto` keeps in float32 on the CPU)."""
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.bfloat16
    if kind == "cpu" and width is not None and width >= CPU_BF16_MIN_WIDTH and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def precision_name(dtype: torch.dtype | None) -> str:
    """What a run's status and results say it trained in."""
    return "bfloat16 autocast" if dtype == torch.bfloat16 else "float32"


def precision_plan(device_type: str, width: int | None, amp: str = "auto") -> str:
    """In words, the precision a model `width` wide trains in on this machine's `device_type`."""
    dtype = amp_dtype(torch.device(device_type), amp, width)
    if dtype is None:
        return "in float32"
    if device_type == "cpu" and amp == "auto":
        return "in bfloat16 autocast (this CPU multiplies bfloat16 natively)"
    return "in bfloat16 autocast"


def autocast(device: torch.device, dtype: torch.dtype | None):
    """The context the training forward pass runs in (dtype from amp_dtype; None: float32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def float_output(out):
    """A model output (a dataclass of tensors) with its floating tensors in float32 (the same
    object when they already are)."""
    if not dataclasses.is_dataclass(out):
        return out
    changes = {f.name: getattr(out, f.name).float() for f in dataclasses.fields(out)
               if isinstance(getattr(out, f.name), torch.Tensor) and getattr(out, f.name).is_floating_point()
               and getattr(out, f.name).dtype != torch.float32}
    members = getattr(out, "members", None)
    if members:                                         # an ensemble's members are trained on their own
        floats = [float_output(m) for m in members]
        if any(f is not m for f, m in zip(floats, members)):
            changes["members"] = floats
    return dataclasses.replace(out, **changes) if changes else out


def float_outputs(batch):
    """The batch with the model's output tensors in float32 (a no-op when they already are)."""
    out = float_output(batch.out)
    return batch if out is batch.out else dataclasses.replace(batch, out=out)


def make_optimizer(params, lr: float, weight_decay: float, device) -> torch.optim.AdamW:
    """AdamW, with the fused kernel (one pass over all the weights per step instead of about ten
    small operations per tensor) on the CPU and CUDA: a quick ASSIST2015 epoch spends 4.5% of its
    time in the per-tensor step, 1.5% fused (benchmarks/speed.py; docs/RESULTS.md, speed)."""
    params = list(params)
    fused = torch.device(device).type in ("cpu", "cuda") and all(p.is_floating_point() for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


def clip_gradients(params, max_norm: float) -> torch.Tensor:
    """Gradient-norm clipping over all the tensors at once (the foreach kernels, on any device)."""
    return torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
