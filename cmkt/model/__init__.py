from cmkt.model.config import LOSS_NAMES, LOSS_WEIGHT_SETS, MODES, ModelConfig
from cmkt.model.gainakt2 import GainAKT2, GainAKT2Output, count_parameters
from cmkt.model.gap import cumulative_mastery
from cmkt.model.losses import compute_losses

__all__ = ["GainAKT2", "GainAKT2Output", "ModelConfig", "MODES", "LOSS_NAMES",
           "LOSS_WEIGHT_SETS", "compute_losses", "count_parameters", "cumulative_mastery"]
