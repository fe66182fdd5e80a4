"""Model kinds: kind -> (config class, model class, fit function). Checkpoint loading, run
folders, the trainer and the command line go through here, so every kind has the same run
folder, checkpoint, scoring and metrics. The kind is stored in the model config ("kind"; a
config without one is a GainAKT2 config, as written before the baselines existed)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from cmkt.baselines import BKT, DKT, PFA, BKTConfig, DKTConfig, PFAConfig, fit_bkt, fit_pfa
from cmkt.baselines import bkt as _bkt, dkt as _dkt, pfa as _pfa
from cmkt.model import GainAKT2, ModelConfig
from cmkt.model.config import MODES
from cmkt.model import reference as _ref


def _gainakt2_check(state: dict) -> None:
    return None


@dataclass(frozen=True)
class ModelKind:
    name: str
    config_cls: type
    model_cls: type
    fit: Callable | None          # None: trained by the Trainer over epochs; else fit(model, train_ds, ...)
    aux_losses: bool              # the six interpretability losses apply (GainAKT2 only)
    check_state: Callable         # raises ValueError on weights no model of this kind can hold
    guarantees: str               # what its knowledge state promises, in one line
    trainable: bool = True        # False: made by `cmkt import`, never trained here
    ids_as_is: bool = False       # a data file's skill ids are the model's indices, never re-indexed


KINDS: dict[str, ModelKind] = {
    "gainakt2": ModelKind("gainakt2", ModelConfig, GainAKT2, None, True, _gainakt2_check,
                          "cumulative: bounded and monotone by construction; original: neither"),
    "dkt": ModelKind("dkt", DKTConfig, DKT, None, False, _dkt.check_state,
                     "in [0, 1] (a sigmoid) but not monotone: the LSTM output wobbles, even after a right answer"),
    "bkt": ModelKind("bkt", BKTConfig, BKT, fit_bkt, False, _bkt.check_state,
                     "bounded (a probability) but not monotone: a wrong answer lowers P(learned)"),
    "pfa": ModelKind("pfa", PFAConfig, PFA, fit_pfa, False, _pfa.check_state,
                     "bounded (a probability) but not monotone: a failure count can lower it"),
    _ref.KIND: ModelKind(_ref.KIND, _ref.RefConfig, _ref.RefModel, None, False, _ref.check_state,
                         "the reference's cumulative variant: bounded and monotone within a window (each "
                         "window of seq_len steps starts afresh, as in pyKT); original variant: neither",
                         trainable=False, ids_as_is=True),   # windowing: RefModel.windowing = "fresh"
}
BASELINE_KINDS = ("dkt", "bkt", "pfa")
MODEL_CHOICES = (*MODES, *BASELINE_KINDS, _ref.KIND)   # what --model accepts (gainakt2-ref: refused)
MODEL_ORDER = ("original", "cumulative", *BASELINE_KINDS, _ref.KIND)
GUARANTEES = {
    "cumulative": "bounded and monotone (by construction)",
    "original": "neither bounded nor monotone",
    "dkt": "not monotone: its per-skill output wobbles, even on skills not practised and after right "
           "answers (it stays in [0, 1] only because it is a sigmoid; nothing makes it a level)",
    "bkt": "bounded but not monotone (a wrong answer lowers P(learned))",
    "pfa": "bounded but not monotone (a failure lowers the predicted probability)",
    _ref.KIND: "imported reference model: its cumulative variant is bounded and monotone within each window "
               "of seq_len steps (every window starts afresh, as in pyKT); its original variant is neither",
}


def kind_of_mode(mode: str) -> str:
    """--model value -> kind: original / cumulative are GainAKT2 modes."""
    if mode in MODES:
        return "gainakt2"
    if mode in KINDS:
        if not KINDS[mode].trainable:
            raise ValueError(f"--model {mode}: imported reference models are never trained here; "
                             "make one from a reference checkpoint with: cmkt import PATH --out runs/")
        return mode
    raise ValueError(f"unknown model {mode!r}; choose one of {', '.join(MODEL_CHOICES)}")


def kind_of(cfg) -> str:
    """The kind of a config object or a config dict (no 'kind' key: gainakt2)."""
    if isinstance(cfg, dict):
        kind = cfg.get("kind") or "gainakt2"
    else:
        kind = getattr(cfg, "kind", "gainakt2")
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r} (known: {', '.join(KINDS)})")
    return kind


def spec_of(cfg) -> ModelKind:
    return KINDS[kind_of(cfg)]


def config_from_dict(d: dict):
    """Rebuild any kind's config from its dict (config.json's "model", a checkpoint's header)."""
    spec = spec_of(d)
    if spec.name == "gainakt2":
        return ModelConfig.from_dict({k: v for k, v in d.items() if k != "kind"})
    return spec.config_cls.from_dict(d)


def config_to_dict(cfg) -> dict:
    d = cfg.to_dict()
    if kind_of(cfg) != "gainakt2":
        d["kind"] = cfg.kind
    return d


def build_model(cfg) -> nn.Module:
    return spec_of(cfg).model_cls(cfg)


def config_fields(kind: str) -> dict:
    """name -> default of the settable fields of a kind's config (not num_skills / kind / mode)."""
    from dataclasses import MISSING, fields
    spec = KINDS[kind]
    return {f.name: f.default for f in fields(spec.config_cls)
            if f.name not in ("num_skills", "mode", "kind") and f.default is not MISSING}
