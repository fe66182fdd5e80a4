"""Training presets (the seed system's names), sized for this project's machines.

quick: trains ASSIST2015 (484k interactions) in minutes on a 2-core CPU (cumulative, up to 10
       epochs: 67 s on a 2-core AMD EPYC, stopped early after 9, test AUC 0.7186; docs/RESULTS.md).
Every preset but correlation_focused uses the `anchored` loss weights (less saturation); the cumulative
standard and intensive models the `anchored_strong` ones (the mastery hinge at 1.2), the cumulative quick
model `anchored_quick` (1.4), gains read from the value stream (no LSTM of their own: faster) and
short windows many to a batch (batch_tokens: fewer steps an epoch).
standard / intensive: larger models and more epochs; use a GPU when there is one. Their
       cumulative model is an ensemble of three with a mastery phase (PRESET_MODE_DEFAULTS):
       about three times the training time of one model.
correlation_focused: standard with the enhanced auxiliary loss weights.
Every value can be overridden with --epochs / --set key=value.
"""
from __future__ import annotations

# Choices every preset shares (measured: docs/MODEL.md): no dropout inside attention (the fused
# attention kernel), cmkt's fast CPU dropout masks.
_SHARED = dict(attn_dropout=0.0, dropout_kernel="fast")

PRESETS: dict[str, dict] = {
    "quick": dict(_SHARED, d_model=64, n_heads=4, n_blocks=1, d_ff=128, max_len=100, dropout=0.1,
                  epochs=10, batch_size=64, lr=2e-3, weight_decay=1e-5, patience=3, loss_weights="anchored"),
    "standard": dict(_SHARED, d_model=128, n_heads=4, n_blocks=2, d_ff=256, max_len=200, dropout=0.2,
                     epochs=20, batch_size=64, lr=1e-3, weight_decay=1e-5, patience=4, loss_weights="anchored",
                     readout="attention", recurrent=200, recurrent_head="skill"),
    "intensive": dict(_SHARED, d_model=256, n_heads=8, n_blocks=4, d_ff=768, max_len=200, dropout=0.2,
                      epochs=50, batch_size=64, lr=5e-4, weight_decay=1e-5, patience=6, loss_weights="anchored",
                      readout="attention", recurrent=200, recurrent_head="skill"),
    "correlation_focused": dict(_SHARED, d_model=128, n_heads=4, n_blocks=2, d_ff=256, max_len=200, dropout=0.2,
                                epochs=20, batch_size=64, lr=1e-3, weight_decay=1e-5, patience=4,
                                loss_weights="enhanced", readout="attention", recurrent=200, recurrent_head="skill"),
}

# Model choices every preset makes per mode (after measuring them: docs/MODEL.md, docs/RESULTS.md).
# A cumulative model predicts from its mastery (mastery + difficulty + momentary), starts from a
# per-skill prior, accumulates gains on the gap to full mastery, reads its gains from an LSTM of
# their own (so the mastery losses do not shape the transformer the prediction reads; the quick
# preset reads them from the value stream, PRESET_MODE_DEFAULTS), is trained
# to make mastery by itself a good estimate (mastery_loss), and its best epoch is chosen for the prediction and for
# mastery alone (select_on: validation AUC + mastery AUC). The original model predicts the same way
# (like for like) and keeps the accuracy reference's selection on validation AUC. Both validate, select
# and save a moving average of their weights (ema; ASSIST2015 test AUC +0.004 and every saturation
# under 2% over three seeds: docs/RESULTS.md, "A moving average of the weights"), spanning at most
# about 4 epochs (ema_epochs: on the real data sets the decay stays 0.99; on a few hundred students,
# a few steps per epoch, a 0.99 average would still hold the untrained weights after 20 epochs).
MODE_DEFAULTS: dict[str, dict] = {
    "cumulative": dict(predictor="mastery", base="prior", accumulation="gap", momentary_bound=None,
                       gain_encoder="recurrent", mastery_loss=1.5, select_on="auc+mastery_auc", ema=0.99,
                       ema_epochs=4),
    "original": dict(predictor="mastery", momentary_bound=None, mastery_loss=1.0, ema=0.99, ema_epochs=4),
}

# Choices of the accuracy presets (standard, intensive) for the cumulative model, on top of
# MODE_DEFAULTS: an ensemble of three (members: the means of three models trained side by side),
# each selected on validation AUC, then a mastery phase (mastery_epochs) with the mastery hinge at
# 1.2. Measured: docs/RESULTS.md, "An ensemble of three". The quick preset stays one model, so it
# still trains in minutes on a laptop.
# The ensemble then gets a pairwise logistic model stacked on it (stack: fitted after training,
# blended at a weight chosen on validation; docs/RESULTS.md, "Stacking a pairwise logistic model").
ACCURACY_CUMULATIVE = dict(members=3, select_on="auc", mastery_epochs=6, loss_weights="anchored_strong",
                           stack="pairwise")
# The quick cumulative model takes the mastery hinge at 1.4 (it has no mastery phase to keep
# saturation down): ASSIST2009 (seed 1) saturation 4.25% (0.8) -> 2.23% (1.2) -> 1.49% (1.4)
# (docs/experiments/2026-12-06-wave-3-serving-gil-optimizer-quick-trade-offs.md). Its gains read the
# value stream (gain_encoder="value"), not an LSTM of their own: epochs about 1.6x faster
# (ASSIST2015 training part 11.5 -> 6.7 s in two runs of benchmarks/speed.py), ASSIST2009 mastery
# AUC over 0.69 on both seeds measured; the price is ASSIST2015 test AUC -0.003 and mastery AUC -0.003 (seeds 1-2:
# docs/experiments/2026-12-06-wave-3-quick-gain-encoder-machine-state.md).
# Its short windows go many to a batch (batch_tokens: at least 64 windows, more while the batch
# holds at most 3,200 padded steps): ASSIST2015 takes 116 steps an epoch instead of 202, the
# epoch is ~18% shorter (alternating epochs in one process), and test AUC +0.004 (ASSIST2015) /
# +0.0015 (ASSIST2009), mastery AUC +0.001 / +0.002 over seeds 1-2; Synthetic-5 (50-step windows)
# is batched as before (docs/experiments/2026-12-06-wave-3-token-batches.md).
QUICK_CUMULATIVE = dict(loss_weights="anchored_quick", gain_encoder="value", batch_tokens=3200)
PRESET_MODE_DEFAULTS: dict[tuple[str, str], dict] = {
    ("quick", "cumulative"): QUICK_CUMULATIVE,
    ("standard", "cumulative"): ACCURACY_CUMULATIVE,
    ("intensive", "cumulative"): ACCURACY_CUMULATIVE,
}


def defaults_for(preset: str, mode: str) -> dict:
    """Every value a preset sets for a mode: the preset's, the mode's, then the pair's own."""
    return {**PRESETS.get(preset, {}), **MODE_DEFAULTS.get(mode, {}), **PRESET_MODE_DEFAULTS.get((preset, mode), {})}


PRESET_HELP = {
    "quick": "small model, up to 10 epochs: minutes on a laptop CPU",
    "standard": "2 blocks of 128, target-skill readout and an LSTM (with a per-skill output) for the predictor, "
                "up to 20 epochs; the cumulative model is an ensemble of 3 with a mastery phase (3x the training time) "
                "and a pairwise logistic model stacked on it",
    "intensive": "4 blocks of 256, readout and LSTM, up to 50 epochs; cumulative: an ensemble of 3 with a stacked "
                 "pairwise model (GPU recommended)",
    "correlation_focused": "standard with the enhanced interpretability loss weights",
}
