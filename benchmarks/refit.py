#!/usr/bin/env python
"""How much would training on every training student give? A probe, not a protocol.

    python benchmarks/refit.py --dataset assist2015 --mode dkt
    python benchmarks/refit.py --dataset assist2009 --mode cumulative --set ema=0.99

The results table selects the best epoch on 20% of train.csv's students and so trains on the
other 80%. This probe trains as the table does (the library's Trainer, validation, early
stopping, the learning-rate plateaus), then trains a fresh model with the same seed on all of
train.csv for the chosen number of epochs, at the learning rate each of those epochs had, and
scores test.csv with both. Prints one JSON object (and writes it with --out). A cumulative
model is trained without the mastery phase here (mastery_epochs=0).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATA, command_line, machine_info, write_json  # noqa: E402

EPOCHS = {"assist2015": 16}        # the results table's cap (benchmarks/results.py)
KEYS = ("auc", "mastery_auc", "mastery_saturation_rate", "monotonicity_violation_rate")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="assist2015", help="a folder of --data-root, or sim (default assist2015)")
    p.add_argument("--mode", default="cumulative", help="original, cumulative or dkt")
    p.add_argument("--preset", default="standard")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--data-root", default=str(SHARED_DATA))
    p.add_argument("--out", default=None, help="also write the JSON here")
    a = p.parse_args(argv)

    from cmkt.train.config import build_configs
    from cmkt.data.dataset import KTDataset
    from cmkt.data.source import DataSplits, load_training_data
    from cmkt.train.trainer import Trainer
    overrides = dict(item.split("=", 1) for item in a.set)
    if a.mode == "cumulative":
        # the refit replays the main phase's epochs only: the mastery phase (on by default in the
        # standard cumulative model) freezes all but mastery, which this probe does not replay
        if overrides.setdefault("mastery_epochs", "0").strip() not in ("0", ""):
            p.error("refit.py replays the main phase only: leave mastery_epochs at 0")
        # nor the pairwise stack fitted after it (it would be the best "epoch", with no lr)
        if overrides.setdefault("stack", "none").strip() != "none":
            p.error("refit.py replays the main phase only: leave stack at none")
    spec = a.dataset if a.dataset.startswith("sim") else str(Path(a.data_root) / a.dataset)
    data = load_training_data(spec, 0.2, a.seed)
    mcfg, tcfg = build_configs(data.num_skills, a.mode, a.preset, overrides, seed=a.seed,
                               data=a.dataset, epochs=EPOCHS.get(a.dataset))
    t0 = time.perf_counter()
    selected = Trainer(mcfg, tcfg, data)
    result = selected.fit()
    test_selected = selected.evaluate(selected.best_model(), data.test)
    lrs = [r["lr"] for r in result.history][: result.best_epoch]

    tr, va = data.train, data.valid
    everyone = KTDataset(tr.skills + va.skills, tr.responses + va.responses,      # train + valid students
                         tr.student_ids + va.student_ids, tr.num_skills, tr.skill_labels, tr.skill_names)
    all_data = DataSplits(data.name, everyone, data.valid, data.test, data.num_skills,
                          data.skill_labels, data.skill_names)
    refit = Trainer(mcfg, tcfg, all_data)
    scales = [g["lr"] / tcfg.lr for g in refit.opt.param_groups]   # mastery_lr_scale keeps its ratio
    for epoch, lr in enumerate(lrs, 1):                   # lrs: the first group's, as recorded
        for group, scale in zip(refit.opt.param_groups, scales):
            group["lr"] = lr * scale
        refit.train_epoch(epoch)                              # (and the moving average, with ema)
    test_refit = refit.evaluate(refit.eval_model.eval(), data.test)
    out = {"command": command_line(), "machine": machine_info(), "dataset": a.dataset, "mode": a.mode,
           "seed": a.seed, "overrides": overrides, "best_epoch": result.best_epoch, "lrs": lrs,
           "train_students": [len(data.train), len(everyone)],
           "selected": {k: test_selected.get(k) for k in KEYS},
           "refit": {k: test_refit.get(k) for k in KEYS},
           "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out, indent=2))
    if a.out:
        write_json(Path(a.out), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
