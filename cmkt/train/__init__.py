"""Training: the registry of model kinds, configs and presets, the trainer (callbacks, no UI),
the stacked model, precision and the torchrun process group."""
