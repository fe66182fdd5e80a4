"""Checkpoints: weights in safetensors plus plain JSON metadata. Loading never executes code."""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cmkt.errors import CheckpointError
from cmkt.io import atomic_target
from cmkt.train.kinds import build_model, config_from_dict, config_to_dict, spec_of

FORMAT = "cmkt-checkpoint-v1"
BEST = "best.safetensors"
MAX_CHECKPOINT_BYTES = 512 * 1024 * 1024


def save_checkpoint(model, path, meta: dict | None = None) -> Path:
    """Write model weights and metadata (model config with its kind, skills, data, metrics)
    atomically. Any model kind of cmkt.train.kinds; its config's "kind" says which."""
    path = Path(path)
    header = {"format": FORMAT, "model_config": json.dumps(config_to_dict(model.cfg)),
              "meta": json.dumps(meta or {}, default=str)}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_target(path) as tmp:
        save_file(state, str(tmp), metadata=header)
    return path


def resolve_checkpoint_path(path) -> Path:
    """A run folder means its best checkpoint."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST
        if not path.exists():
            raise CheckpointError(path.parent, "this run has no checkpoint yet (no epoch has finished)")
    if not path.exists():
        raise CheckpointError(path, "no such checkpoint file or run folder")
    return path


def read_checkpoint(path) -> tuple[dict, dict, dict]:
    """(state_dict, model_config dict, meta) from a checkpoint, validated, without running code.
    Accepts cmkt .safetensors files, and .pt/.pth files holding a plain dict
    {"model_config": {...}, "state_dict": {...}} (read with weights_only=True)."""
    path = resolve_checkpoint_path(path)
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(path, "the file is empty")
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(path, f"the file is {size / 2**20:.0f} MB, over the {MAX_CHECKPOINT_BYTES // 2**20} MB limit")
    with open(path, "rb") as f:
        head = f.read(16)
    if (head[:2] == b"PK" or head[:1] == b"\x80") and not _looks_like_safetensors(head, size):
        return _read_torch(path)
    try:
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(path, f"not a readable checkpoint (corrupt, truncated or another format): {_short(e)}") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(path, "a safetensors file, but not a cmkt checkpoint (no cmkt model config inside)")
    try:
        cfg = json.loads(header["model_config"])
        meta = json.loads(header.get("meta", "{}"))
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(path, "the checkpoint's model config is damaged") from None
    return state, cfg, meta


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then a JSON header. Its first
    byte can be 0x80 or its first two 'PK' (a header of 128 + 256k bytes, ...), so the torch
    (pickle / zip) signatures are only trusted when this does not hold."""
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def _read_torch(path: Path):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling refusal is a bad checkpoint
        raise CheckpointError(path, "refused: not a plain-weights checkpoint; nothing in it was run"
                              + _refusal_reason(e)) from None
    if not isinstance(obj, dict) or "state_dict" not in obj or "model_config" not in obj:
        raise CheckpointError(path, "a PyTorch file, but not a cmkt checkpoint (expected model_config and state_dict)")
    return obj["state_dict"], dict(obj["model_config"]), dict(obj.get("meta", {}))


def _refusal_reason(e: Exception) -> str:
    """Our own short reason for torch's weights_only refusal (never torch's advice to turn it off)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    found = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"Unsupported global: ([\w.]+)", text)
    if found:
        return f" (it asks to load {found.group(1)}, which could run code)"
    if "Unsupported operand" in text:
        return " (a pickle using instructions that plain weights never need)"
    if "weights_only" in text or "Unpickl" in text:
        return " (it holds objects other than plain tensors)"
    return " (unreadable: corrupt, truncated or another format)"


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def load_checkpoint(path, device="cpu") -> tuple[object, dict]:
    """Rebuild the model from a checkpoint (file or run folder): (model in eval mode, meta).
    The model config's "kind" picks the model class (no kind: GainAKT2)."""
    rpath = resolve_checkpoint_path(path)
    state, cfg_dict, meta = read_checkpoint(rpath)
    try:
        if not isinstance(cfg_dict, dict):
            raise ValueError("it is not a mapping")
        cfg = config_from_dict(cfg_dict)
        model = build_model(cfg)
    except (TypeError, ValueError) as e:
        raise CheckpointError(rpath, f"the model config is not valid: {_short(e)}") from None
    missing, unexpected, mismatched = _diff_state(model.state_dict(), state)
    if missing or unexpected or mismatched:
        what = []
        if mismatched:
            what.append(f"{len(mismatched)} weights of the wrong shape (e.g. {mismatched[0]})")
        if missing:
            what.append(f"{len(missing)} weights missing (e.g. {missing[0]})")
        if unexpected:
            what.append(f"{len(unexpected)} unknown weights (e.g. {unexpected[0]})")
        raise CheckpointError(rpath, "the weights do not fit the saved config "
                              f"({cfg.mode}, {cfg.num_skills} skills): " + "; ".join(what))
    try:
        spec_of(cfg).check_state(state)
    except ValueError as e:
        raise CheckpointError(rpath, f"refused: the {cfg.mode} weights are not valid: {_short(e)}") from None
    _check_against_run(rpath, cfg)
    model.load_state_dict(state)
    model.to(device).eval()
    meta = dict(meta)
    meta.setdefault("model_config", config_to_dict(cfg))
    meta.setdefault("kind", spec_of(cfg).name)
    meta["path"] = str(rpath)
    return model, meta


def _diff_state(expected: dict, given: dict):
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    mismatched = [f"{k} {tuple(given[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if k in given and (not isinstance(given[k], torch.Tensor) or given[k].shape != v.shape)]
    return missing, unexpected, mismatched


def _check_against_run(path: Path, cfg: ModelConfig) -> None:
    """Inside a run folder, the checkpoint must be the model its config.json describes."""
    run_cfg_path = path.parent / "config.json"
    if not run_cfg_path.exists():
        return
    try:
        run_model = json.loads(run_cfg_path.read_text()).get("model") or {}
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise CheckpointError(run_cfg_path, "the run's config.json is damaged") from None
    if (run_model.get("kind") or "gainakt2") != spec_of(cfg).name:
        raise CheckpointError(path, f"the checkpoint is a {spec_of(cfg).name} model but the run's config.json "
                              f"says {run_model.get('kind') or 'gainakt2'!r}: it belongs to another model")
    for key in ("mode", "num_skills"):
        want = run_model.get(key)
        if want is not None and want != getattr(cfg, key):
            raise CheckpointError(path, f"the checkpoint's {key} is {getattr(cfg, key)!r} but the run's "
                                  f"config.json says {want!r}: it belongs to another model")
