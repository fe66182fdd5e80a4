"""Reference-system checkpoints as the reference writes them (clabra/pykt-toolkit), made here
without cmkt's model: the published state-dict names and shapes are listed by hand.

Format A: pyKT's standard training, <emb_type>_model.ckpt (a bare state_dict) + config.json.
Format B: the cumulative scripts' best_model.pth, one dict with an Adam optimizer_state_dict from a
real optimizer step and numpy float64 metrics.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

SMALL = dict(num_c=7, seq_len=12, d_model=16, n_heads=2, num_encoder_blocks=2, d_ff=24, dropout=0.2)


def published_shapes(num_c, seq_len, d_model, num_encoder_blocks, d_ff, **_) -> dict:
    """name -> shape, in the published registration order."""
    C, d, F = num_c, d_model, d_ff
    out = {"context_embedding.weight": (2 * C, d), "value_embedding.weight": (2 * C, d),
           "concept_embedding.weight": (C, d), "pos_embedding.weight": (seq_len, d)}
    for i in range(num_encoder_blocks):
        b = f"encoder_blocks.{i}."
        for proj in ("query_proj", "key_proj", "value_proj", "output_proj"):
            out[b + f"attn.{proj}.weight"], out[b + f"attn.{proj}.bias"] = (d, d), (d,)
        out[b + "ffn.0.weight"], out[b + "ffn.0.bias"] = (F, d), (F,)
        out[b + "ffn.3.weight"], out[b + "ffn.3.bias"] = (d, F), (d,)
        for norm in ("norm1_ctx", "norm1_val", "norm2_ctx"):
            out[b + f"{norm}.weight"], out[b + f"{norm}.bias"] = (d,), (d,)
    out["prediction_head.0.weight"], out["prediction_head.0.bias"] = (F, 3 * d), (F,)
    out["prediction_head.3.weight"], out["prediction_head.3.bias"] = (1, F), (1,)
    out["mastery_head.weight"], out["mastery_head.bias"] = (C, d), (C,)
    out["gain_head.weight"], out["gain_head.bias"] = (C, d), (C,)
    return out


def published_state(seed: int = 0, **cfg) -> dict:
    """Random weights of the published shapes (LayerNorm weights near 1, like trained ones)."""
    cfg = {**SMALL, **cfg}
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in published_shapes(**cfg).items():
        t = torch.randn(shape, generator=g) * (0.3 if len(shape) == 2 else 0.1)
        if "norm" in name and name.endswith("weight"):
            t = 1.0 + t
        state[name] = t
    return state


def write_format_a(folder, state: dict, cfg: dict | None = None, emb_type: str = "qid") -> Path:
    """saved_model/<name>/qid_model.ckpt + config.json, as examples/wandb_train.py writes them."""
    cfg = {**SMALL, **(cfg or {})}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / f"{emb_type}_model.ckpt")
    params = {"dataset_name": "assist2015", "model_name": "gainakt2", "emb_type": emb_type, "save_dir": "saved_model",
              "seed": 42, "fold": 0, "d_model": cfg["d_model"], "learning_rate": 2e-4, "n_heads": cfg["n_heads"],
              "num_encoder_blocks": cfg["num_encoder_blocks"], "d_ff": cfg["d_ff"], "dropout": cfg["dropout"],
              "seq_len": cfg["seq_len"], "num_epochs": 200, "use_gain_head": 1, "use_mastery_head": 1,
              "non_negative_loss_weight": 0.0, "consistency_loss_weight": 0.0, "use_wandb": 0, "add_uuid": 0}
    drop = {"model_name", "dataset_name", "emb_type", "save_dir", "fold", "seed", "use_wandb", "learning_rate",
            "add_uuid", "l2", "batch_size", "num_epochs"}
    model_config = {k: v for k, v in params.items() if k not in drop}
    data_config = {"dpath": "/workspaces/pykt-toolkit/data/assist2015", "num_q": 0, "num_c": cfg["num_c"],
                   "input_type": ["concepts"], "max_concepts": 1, "min_seq_len": 3, "maxlen": cfg["seq_len"],
                   "emb_path": "", "train_valid_file": "train_valid.csv", "folds": [0, 1, 2, 3, 4]}
    train_config = {"batch_size": 32, "num_epochs": 200, "optimizer": "adam", "seq_len": cfg["seq_len"]}
    (folder / "config.json").write_text(json.dumps({"train_config": train_config, "model_config": model_config,
                                                    "data_config": data_config, "params": params}))
    return folder


def adam_state(state: dict) -> dict:
    """optimizer.state_dict() of a real torch.optim.Adam step over parameters shaped like state."""
    params = [torch.nn.Parameter(v.clone()) for v in state.values()]
    opt = torch.optim.Adam(params, lr=3e-4, weight_decay=5.9e-5)
    sum((p ** 2).sum() for p in params).backward()
    opt.step()
    return opt.state_dict()


def write_format_b(folder, state: dict, cfg: dict | None = None, name: str = "best_model.pth") -> Path:
    """saved_model/gainakt2_cumulative_mastery_<suffix>/best_model.pth, as
    train_cumulative_mastery_full.py writes it (numpy float64 metrics inside)."""
    cfg = {**SMALL, **(cfg or {})}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model_config = {"num_c": cfg["num_c"], "seq_len": cfg["seq_len"], "d_model": cfg["d_model"],
                    "n_heads": cfg["n_heads"], "num_encoder_blocks": cfg["num_encoder_blocks"], "d_ff": cfg["d_ff"],
                    "dropout": cfg["dropout"], "emb_type": "qid", "monitor_frequency": 50,
                    "non_negative_loss_weight": 0.0, "monotonicity_loss_weight": 0.1,
                    "mastery_performance_loss_weight": 0.8, "gain_performance_loss_weight": 0.8,
                    "sparsity_loss_weight": 0.2, "consistency_loss_weight": 0.3}
    consistency = {"monotonicity_violation_rate": 0.0, "negative_gain_rate": 0.0, "bounds_violation_rate": 0.0,
                   "mastery_correlation": np.float64(0.31), "gain_correlation": np.float64(0.12)}
    history = {"train_loss": [0.61, 0.55], "train_auc": [np.float64(0.70), np.float64(0.74)],
               "val_auc": [np.float64(0.69), np.float64(0.72)], "consistency_metrics": [consistency, consistency]}
    torch.save({"epoch": 2, "model_state_dict": state, "model_config": model_config,
                "optimizer_state_dict": adam_state(state), "best_val_auc": np.float64(0.72),
                "consistency_metrics": consistency, "train_history": history}, folder / name)
    return folder


class Hostile:
    """A pickle whose loading would run a shell command (writing `marker`)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def write_hostile(path, marker) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state_dict": {"x": torch.zeros(1)}, "payload": Hostile(marker)}, path)
    return path


def write_pykt_data(path, num_c: int = SMALL["num_c"], students: int = 6, seed: int = 0,
                    lengths=(5, 9, 13, 17, 30, 4)) -> Path:
    """A pyKT sequence file (uid, concepts, responses; 0-based concepts)."""
    rng = np.random.default_rng(seed)
    rows = ["fold,uid,questions,concepts,responses,timestamps,selectmasks,is_repeat"]
    for s in range(students):
        T = lengths[s % len(lengths)]
        c = rng.integers(0, num_c, T)
        r = rng.integers(0, 2, T)
        rows.append(f'0,u{s},NA,"{",".join(map(str, c))}","{",".join(map(str, r))}",NA,'
                    f'"{",".join(["1"] * T)}","{",".join(["0"] * T)}"')
    Path(path).write_text("\n".join(rows) + "\n")
    return Path(path)
