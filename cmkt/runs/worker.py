"""What a torchrun rank other than 0 does with a run folder: read it, train in step with rank 0,
write nothing (cmkt.train.distributed)."""
from __future__ import annotations

import signal
from pathlib import Path

import torch

from cmkt.data.source import load_training_data
from cmkt.model import ModelConfig
from cmkt.runs.folder import RESUME, read_config
from cmkt.train.config import TrainConfig
from cmkt.train.trainer import TrainCallbacks, Trainer


def execute_worker(run_dir) -> None:
    """What a rank other than 0 does with a run folder: read it, train in step with rank 0,
    write nothing."""
    class WorkerCallbacks(TrainCallbacks):
        stop = False

        def should_stop(self) -> bool:
            return self.stop

    callbacks = WorkerCallbacks()

    def on_term(signum, frame):
        callbacks.stop = True
    signal.signal(signal.SIGTERM, on_term)
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    train_cfg = TrainConfig.from_dict(cfg["train"])
    data = load_training_data(train_cfg.data, train_cfg.valid_fraction, train_cfg.seed,
                              train_cfg.sim_students, train_cfg.sim_skills)
    model_cfg = ModelConfig.from_dict(dict(cfg["model"], num_skills=data.num_skills))
    trainer = Trainer(model_cfg, train_cfg, data, callbacks)
    if (run_dir / RESUME).exists():
        trainer.load_state_dict(torch.load(str(run_dir / RESUME), map_location="cpu", weights_only=True))
    trainer.fit()
