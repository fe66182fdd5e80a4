"""Model configuration: everything needed to rebuild a GainAKT2 model."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

MODES = ("original", "cumulative")

# Auxiliary loss weight sets of the seed system, in the order
# non_negative, monotonicity, mastery_performance, gain_performance, sparsity, consistency.
LOSS_WEIGHT_SETS = {
    "plain": (0.1, 0.1, 0.3, 0.3, 0.1, 0.1),
    "enhanced": (0.0, 0.1, 0.8, 0.8, 0.2, 0.3),
}
LOSS_NAMES = ("non_negative", "monotonicity", "mastery_performance",
              "gain_performance", "sparsity", "consistency")


@dataclass
class ModelConfig:
    """GainAKT2 hyper-parameters. Saved into every run: Model(ModelConfig(**saved))."""

    num_skills: int
    max_len: int = 200
    d_model: int = 128
    n_heads: int = 4
    n_blocks: int = 2
    d_ff: int = 256
    dropout: float = 0.1
    mode: str = "cumulative"
    gain_scale: float = 0.1

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if int(self.num_skills) < 1:
            raise ValueError("num_skills must be at least 1")
        if self.d_model % self.n_heads:
            raise ValueError("d_model must be divisible by n_heads")
        if self.max_len < 2:
            raise ValueError("max_len must be at least 2")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**d)
