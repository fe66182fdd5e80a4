"""Run configuration: the model config plus everything the trainer needs."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from cmkt.model.config import (LOSS_NAMES, LOSS_WEIGHT_SETS, REMOVED_LOSS_SETS, ModelConfig, _check_choice,
                               _check_number)
from cmkt.train.presets import PRESETS, defaults_for

MODEL_KEYS = {f.name for f in fields(ModelConfig)} - {"num_skills", "mode"}

# Training options removed in 0.2 (docs/MODEL.md, "Options"): the value under which an old run
# trained as every run now does. A saved config with that value loads; another is refused.
REMOVED_TRAIN_OPTIONS = {
    "mastery_hinge": "level",       # "gap" (relative to the other answers): measured, never a default
    "mastery_lr_scale": 1.0,        # a faster rate for mastery's own parameters: measured, never a default
}


@dataclass
class TrainConfig:
    """Trainer settings, saved into config.json beside the model config."""

    data: str = "sim"
    preset: str = "quick"
    epochs: int = 6
    batch_size: int = 64
    # > 0: a training batch holds windows of similar length up to this many padded steps in all
    # (count x the longest), in place of batch_size windows: short windows go many to a batch,
    # so an epoch takes fewer steps (0: batch_size windows a batch)
    batch_tokens: int = 0
    lr: float = 2e-3
    weight_decay: float = 1e-5
    patience: int = 3
    grad_clip: float = 1.0
    loss_weights: str | list = "plain"
    mastery_loss: float = 0.0         # weight of the mastery part's own cross-entropy (mastery predictor)
    # decay of an exponential moving average of the weights, updated after every step; validation,
    # model selection and the saved model use the averaged weights (0: off, the last weights)
    ema: float = 0.0
    # with ema: the average spans at most about this many epochs (0: no cap). The decay is lowered
    # to 1 - 1 / (ema_epochs * steps per epoch) where that is smaller, so on a small data set (a few
    # steps per epoch) the average does not lean on the first, untrained weights
    ema_epochs: float = 0.0
    # after the main phase stops (early stopping or the epoch cap): up to this many more epochs that
    # train only the parameters that make mastery (the gains' encoder and head, the prior; cumulative
    # GainAKT2), everything else frozen at the best epoch's weights. A mastery epoch is kept where
    # validation AUC + mastery AUC beats that best epoch's (whatever select_on picked it; 0: no phase)
    mastery_epochs: int = 0
    # what picks the best epoch (and drives early stopping and the learning-rate plateaus):
    # validation "auc", or "auc+mastery_auc" (the prediction's AUC plus mastery's own AUC)
    select_on: str = "auc"
    valid_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    num_threads: int = 0              # 0: all cores
    amp: str = "auto"                 # bfloat16 autocast: auto (CUDA; CPUs with native bf16, models >= 128 wide), bf16, off (cmkt/train/accel.py)
    sim_students: int = 300
    sim_skills: int = 12
    eval_batch_size: int = 128
    wandb: bool = False

    def weights(self) -> tuple:
        """The six auxiliary loss weights."""
        if isinstance(self.loss_weights, str):
            if self.loss_weights not in LOSS_WEIGHT_SETS:
                raise ValueError(f"loss_weights must be one of {sorted(LOSS_WEIGHT_SETS)} or six numbers")
            return LOSS_WEIGHT_SETS[self.loss_weights]
        w = tuple(float(x) for x in self.loss_weights)
        if len(w) != 6:
            raise ValueError("loss_weights needs six numbers")
        for name, x in zip(LOSS_NAMES, w):
            _check_number(f"loss weight {name}", x, lo=0, hi=1000)
        return w

    def __post_init__(self):
        _check_choice("device", self.device, ("auto", "cpu", "cuda"))
        _check_choice("amp", self.amp, ("auto", "bf16", "off"))
        _check_choice("select_on", self.select_on, ("auc", "auc+mastery_auc"))
        _check_number("epochs", self.epochs, lo=1, hi=100_000, integer=True)
        _check_number("batch_size", self.batch_size, lo=1, hi=1_000_000, integer=True)
        _check_number("batch_tokens", self.batch_tokens, lo=0, hi=100_000_000, integer=True)
        _check_number("eval_batch_size", self.eval_batch_size, lo=1, hi=1_000_000, integer=True)
        _check_number("patience", self.patience, lo=1, hi=100_000, integer=True)
        _check_number("lr", self.lr, lo=0, hi=10, lo_open=True)
        _check_number("weight_decay", self.weight_decay, lo=0, hi=10)
        _check_number("grad_clip", self.grad_clip, lo=0, lo_open=True)
        _check_number("mastery_loss", self.mastery_loss, lo=0, hi=1000)
        _check_number("mastery_epochs", self.mastery_epochs, lo=0, hi=100_000, integer=True)
        _check_number("ema", self.ema, lo=0, hi=0.9999)
        _check_number("ema_epochs", self.ema_epochs, lo=0, hi=100_000)
        _check_number("valid_fraction", self.valid_fraction, lo=0, hi=0.9, lo_open=True)
        _check_number("seed", self.seed, lo=0, integer=True)
        _check_number("num_threads", self.num_threads, lo=0, hi=1024, integer=True)
        _check_number("sim_students", self.sim_students, lo=2, hi=10_000_000, integer=True)
        _check_number("sim_skills", self.sim_skills, lo=1, hi=100_000, integer=True)
        self.weights()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """A saved train config, also one written before an option was removed."""
        d = dict(d)
        for key, same in REMOVED_TRAIN_OPTIONS.items():
            if key in d:
                value = d.pop(key)
                if value != same:
                    raise ValueError(f"{key}={value!r} was removed in cmkt 0.2 (measured, never a default: "
                                     f"docs/MODEL.md); this run cannot be resumed, start a new one")
        if isinstance(d.get("loss_weights"), str) and d["loss_weights"] in REMOVED_LOSS_SETS:
            d["loss_weights"] = list(REMOVED_LOSS_SETS[d["loss_weights"]])
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown train config keys: {unknown}")
        return cls(**d)


def _coerce(value: str, like):
    """Parse a --set value into the type of the default it replaces."""
    if isinstance(like, bool):
        v = value.strip().lower()
        if v in ("1", "true", "yes", "on"):
            return True
        if v in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true/false, got {value!r}")
    if isinstance(like, (int, float)) and value.strip().lower() == "none":
        return None     # optional values (attn_dropout, momentary_bound): the config checks the rest
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float):
        return float(value)
    if isinstance(like, list) or (isinstance(like, str) and "," in value):
        return [float(x) for x in value.split(",")]
    return value


def build_configs(num_skills: int, mode: str, preset: str, overrides: dict | None = None,
                  **train_fields) -> tuple[object, TrainConfig]:
    """Preset values, then explicit fields, then --set overrides (strings are parsed).
    mode: a GainAKT2 mode (original / cumulative) or a baseline kind (dkt / bkt / pfa), whose own
    preset values (cmkt.baselines.BASELINE_PRESETS) replace the shared ones."""
    from cmkt.baselines import BASELINE_PRESETS
    from cmkt.train.kinds import KINDS, config_fields, kind_of_mode
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    kind = kind_of_mode(mode)
    values = defaults_for(preset, mode)
    if kind == "gainakt2":
        model_defaults = {f.name: f.default for f in fields(ModelConfig) if f.name in MODEL_KEYS}
    else:
        values.update(BASELINE_PRESETS[kind][preset])
        model_defaults = config_fields(kind)
    values.update({k: v for k, v in train_fields.items() if v is not None})
    train_defaults = {f.name: f.default for f in fields(TrainConfig)}
    for key, raw in (overrides or {}).items():
        if key in model_defaults:
            like = values.get(key, model_defaults[key])
        elif key in train_defaults:
            like = values.get(key, train_defaults[key])
        else:
            raise ValueError(f"unknown setting {key!r}; known: {', '.join(sorted(set(model_defaults) | set(train_defaults)))}")
        values[key] = _coerce(raw, like) if isinstance(raw, str) else raw
    model_values = {k: v for k, v in values.items() if k in model_defaults}
    if kind == "gainakt2":
        model_cfg = ModelConfig(num_skills=num_skills, mode=mode, **model_values)
    else:
        model_cfg = KINDS[kind].config_cls(num_skills=num_skills, **model_values)
    train_cfg = TrainConfig(preset=preset, **{k: v for k, v in values.items() if k in train_defaults and k != "preset"})
    train_cfg.weights()  # validate early
    if train_cfg.mastery_epochs and (kind != "gainakt2" or mode != "cumulative"):
        raise ValueError("mastery_epochs needs the cumulative model (its phase trains the parameters "
                         "that make mastery alone)")
    return model_cfg, train_cfg
