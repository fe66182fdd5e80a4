"""Reading a reference-system checkpoint (the pyKT fork's GainAKT2 / GainAKT2Monitored) safely, as
it is really saved, into our RefModel. Nothing in a file is ever run: weights-only loading only.

Format A, pyKT's standard training: `saved_model/<name>/<emb_type>_model.ckpt` (e.g. qid_model.ckpt),
a bare state_dict, beside `config.json` (train_config, model_config, data_config with num_c, params).
Format B, the cumulative scripts: `best_model.pth` (or `model.pth`), one dict with model_state_dict,
model_config, optimizer_state_dict, epoch, best_val_auc, consistency_metrics, train_history; its
metrics are numpy float64 scalars, so only numpy's scalar and dtype (float64) are allowed besides
tensors (torch.serialization.safe_globals), never weights_only=False.
"""
from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cmkt.errors import CheckpointError
from cmkt.model.reference import RefConfig, RefModel, check_state
from cmkt.runs.checkpoint import MAX_CHECKPOINT_BYTES

B_NAMES = ("best_model.pth", "model.pth")
FORMAT_NAMES = {"A": "pyKT standard training (<emb_type>_model.ckpt beside config.json)",
                "B": "cumulative scripts (best_model.pth / model.pth)"}
DEFAULT_VARIANT = {"A": "original", "B": "cumulative"}
INT_KEYS = ("num_c", "seq_len", "d_model", "n_heads", "num_encoder_blocks", "d_ff")


@dataclass
class Found:
    format: str               # "A" or "B"
    checkpoint: Path
    config: Path | None       # config.json (format A; used by format B when present)


@dataclass
class Loaded:
    found: Found
    state: dict               # the state_dict, "module." prefixes stripped
    settings: dict            # the reference's own model settings (model_config, data_config, params)
    extras: dict              # epoch, best_val_auc, consistency_metrics, train_history ... (JSON-ready)


def detect(path) -> Found:
    """Which format PATH is: a model folder of format A or B, or the checkpoint file itself."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(p, "no such file or folder")
    if p.is_dir():
        for name in B_NAMES:
            if (p / name).is_file():
                return Found("B", p / name, _config_beside(p / name))
        ckpts = sorted(p.glob("*_model.ckpt"), key=lambda f: (f.name != "qid_model.ckpt", f.name))
        if ckpts:
            return _format_a(ckpts[0])
        raise CheckpointError(p, "no reference checkpoint in this folder: expected best_model.pth or "
                                 "model.pth (cumulative scripts), or <emb_type>_model.ckpt (e.g. "
                                 "qid_model.ckpt) beside config.json (pyKT training)")
    if p.suffix == ".ckpt":
        return _format_a(p)
    if p.suffix in (".pth", ".pt"):
        return Found("B", p, _config_beside(p))
    raise CheckpointError(p, "not a reference checkpoint: expected a pyKT <emb_type>_model.ckpt, a "
                             "best_model.pth / model.pth, or the folder holding one")


def _config_beside(ckpt: Path) -> Path | None:
    c = ckpt.parent / "config.json"
    return c if c.is_file() else None


def _format_a(ckpt: Path) -> Found:
    config = _config_beside(ckpt)
    if config is None:
        raise CheckpointError(ckpt, "a pyKT checkpoint needs the config.json pyKT writes beside it "
                                    "(num_c and n_heads are not in the weights)")
    return Found("A", ckpt, config)


def _numpy_globals() -> list:
    """Exactly what numpy float64 scalars need: numpy's scalar (under its numpy 2 and numpy 1
    names), numpy.dtype and the float64 dtype class."""
    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    allowed = [scalar, (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"),
               np.dtype]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed.append(dtypes.Float64DType)
    return allowed


def _torch_load(path: Path, numpy_scalars: bool):
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(path, "the file is empty")
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(path, f"the file is {size / 2**20:.0f} MB, over the "
                                    f"{MAX_CHECKPOINT_BYTES // 2**20} MB limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if numpy_scalars:
                with torch.serialization.safe_globals(_numpy_globals()):
                    return torch.load(str(path), map_location="cpu", weights_only=True)
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - every refusal of the safe unpickler is a refusal here
        raise CheckpointError(path, "refused: it holds more than weights and numbers, and nothing in it "
                                    "was run" + _reason(e)) from None


def _reason(e: Exception) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    found = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"Unsupported global: ([\w.]+)", text) \
        or re.search(r"got <class '([\w.]+)'>", text)
    if found:
        return f" (it asks for {found.group(1)}, which could run code)"
    if "Unsupported operand" in text:
        return " (a pickle using instructions that plain weights never need)"
    return " (not a readable PyTorch file: corrupt, truncated or another format)"


def load_reference(found: Found) -> Loaded:
    """Read the checkpoint (and its config.json) of a detected reference model."""
    obj = _torch_load(found.checkpoint, numpy_scalars=found.format == "B")
    config_json = _read_config_json(found.config) if found.config else {}
    settings: dict = {}
    for part in ("params", "data_config", "model_config"):      # later ones win
        section = config_json.get(part)
        if isinstance(section, dict):
            settings.update(section)
    extras: dict = {k: config_json[k] for k in ("train_config", "data_config", "params") if k in config_json}
    if isinstance(obj, dict) and "model_state_dict" in obj:
        state = obj["model_state_dict"]
        if isinstance(obj.get("model_config"), dict):
            settings.update(obj["model_config"])
        for k in ("epoch", "best_val_auc", "test_auc", "consistency_metrics", "train_history"):
            if k in obj:
                extras[k] = obj[k]
    elif found.format == "B":
        raise CheckpointError(found.checkpoint, "a .pth of the cumulative scripts holds a dict with "
                                                "model_state_dict; this file has none")
    else:
        state = obj
    return Loaded(found, _clean_state(found.checkpoint, state), plain(settings), plain(extras))


def _read_config_json(path: Path) -> dict:
    try:
        cfg = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(path, f"not a readable config.json ({type(e).__name__})") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(path, "config.json does not hold a JSON object")
    return cfg


def _clean_state(path: Path, state) -> dict:
    if not isinstance(state, dict) or not state:
        raise CheckpointError(path, "no state_dict of weights in it")
    out = {}
    for k, v in state.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise CheckpointError(path, f"the state_dict entry {k!r} is not a tensor")
        out[k[len("module."):] if k.startswith("module.") else k] = v      # DataParallel's prefix
    return out


def plain(obj):
    """JSON-ready copy: numpy scalars to numbers, tensors and other objects dropped or named."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items() if not isinstance(v, torch.Tensor)}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def make_config(loaded: Loaded, variant: str) -> RefConfig:
    """RefConfig from the reference's settings; the sizes it does not state are read off the weights.
    n_heads must be stated (it is not in the weights)."""
    s, state = loaded.settings, loaded.state
    where = loaded.found.config if (loaded.found.format == "A" and loaded.found.config) else loaded.found.checkpoint
    if s.get("n_heads") is None:
        raise CheckpointError(where, "the model config has no n_heads, and it cannot be read from the weights: "
                                     "add \"n_heads\" to its model_config")
    inferred = _from_weights(state)
    values = {}
    for key in INT_KEYS:
        v = s.get(key, inferred.get(key))
        if v is None:
            raise CheckpointError(where, f"the model config has no {key}, and the weights do not show it")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
            raise CheckpointError(where, f"the model config's {key} is {v!r}, not a whole number")
        values[key] = int(v)
    dropout = s.get("dropout", 0.0)
    try:
        return RefConfig(**values, dropout=float(dropout), variant=variant)
    except (TypeError, ValueError) as e:
        raise CheckpointError(where, f"the model config is not valid: {e}") from None


def _from_weights(state: dict) -> dict:
    out = {}
    if "concept_embedding.weight" in state and state["concept_embedding.weight"].dim() == 2:
        out["num_c"], out["d_model"] = (int(x) for x in state["concept_embedding.weight"].shape)
    if "pos_embedding.weight" in state and state["pos_embedding.weight"].dim() == 2:
        out["seq_len"] = int(state["pos_embedding.weight"].shape[0])
    if "prediction_head.0.weight" in state and state["prediction_head.0.weight"].dim() == 2:
        out["d_ff"] = int(state["prediction_head.0.weight"].shape[0])
    blocks = {int(m.group(1)) for k in state for m in [re.match(r"encoder_blocks\.(\d+)\.", k)] if m}
    out["num_encoder_blocks"] = max(blocks) + 1 if blocks else 0
    return out


def build_reference(loaded: Loaded, variant: str) -> RefModel:
    """Our RefModel holding the checkpoint's weights, key by key, in eval mode; a mismatch is refused
    naming the first missing or unexpected key."""
    cfg = make_config(loaded, variant)
    model = RefModel(cfg)
    expected, given, path = model.state_dict(), loaded.state, loaded.found.checkpoint
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    if missing:
        hint = ""
        if missing[0].split(".")[0] in ("mastery_head", "gain_head"):
            hint = (" (the model was trained without that head, use_mastery_head / use_gain_head = 0: "
                    "it has no mastery to show)")
        extra = f"; unexpected key {unexpected[0]!r}" if unexpected else ""
        raise CheckpointError(path, f"key {missing[0]!r} is missing{hint}{extra}: not the published "
                                    "GainAKT2 of this config")
    if unexpected:
        raise CheckpointError(path, f"unexpected key {unexpected[0]!r}: not a key of the published GainAKT2")
    for k, v in expected.items():
        if tuple(given[k].shape) != tuple(v.shape):
            raise CheckpointError(path, f"key {k!r} has shape {tuple(given[k].shape)}, but the config "
                                        f"(num_c {cfg.num_c}, d_model {cfg.d_model}, d_ff {cfg.d_ff}, seq_len "
                                        f"{cfg.seq_len}) needs {tuple(v.shape)}")
    try:
        check_state(given)
    except ValueError as e:
        raise CheckpointError(path, f"refused: {e}") from None
    model.load_state_dict({k: v.float() for k, v in given.items()})
    return model.eval()
