"""Classic baselines in the same contract as GainAKT2 (DESIGN.md, "Baselines"): DKT, BKT, PFA.
Each has a config dataclass (kind and mode = its name) and an nn.Module whose forward returns
GainAKT2Output (logits, mastery = the knowledge state, gains = its differences, start = prior)."""
from cmkt.baselines.bkt import BKT, BKTConfig, fit_bkt
from cmkt.baselines.dkt import DKT, DKTConfig
from cmkt.baselines.pfa import PFA, PFAConfig, fit_pfa

# per kind and preset: the values that replace the shared preset's (cmkt/train/presets.py)
BASELINE_PRESETS = {
    "dkt": {
        "quick": dict(hidden=100, emb=100, max_len=100, dropout=0.2, epochs=10, lr=2e-3, batch_size=64, patience=3),
        "standard": dict(hidden=200, emb=200, max_len=200, dropout=0.2, epochs=20, lr=1e-3, batch_size=64, patience=4),
        "intensive": dict(hidden=200, emb=200, max_len=200, dropout=0.3, epochs=50, lr=5e-4, batch_size=32, patience=6),
        "correlation_focused": dict(hidden=200, emb=200, max_len=200, dropout=0.2, epochs=20, lr=1e-3, batch_size=64, patience=4),
    },
    # fitted once (one metrics line): the presets do not size them
    "bkt": {p: dict(epochs=1) for p in ("quick", "standard", "intensive", "correlation_focused")},
    "pfa": {p: dict(epochs=1) for p in ("quick", "standard", "intensive", "correlation_focused")},
}

__all__ = ["DKT", "DKTConfig", "BKT", "BKTConfig", "fit_bkt", "PFA", "PFAConfig", "fit_pfa", "BASELINE_PRESETS"]
