"""`cmkt simulate` and `cmkt train`: simulated students, and training a model into a run folder."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cmkt.cli.common import DATA_HELP, fmt
from cmkt.errors import CmktError


def add_parsers(sub) -> None:
    from cmkt.train.kinds import MODEL_CHOICES
    from cmkt.train.presets import PRESET_HELP, PRESETS
    data_help = DATA_HELP
    s = sub.add_parser("simulate", help="write simulated students (with their true mastery) as a long CSV or Parquet file")
    s.add_argument("--students", type=int, default=300, help="number of students (default 300)")
    s.add_argument("--skills", type=int, default=12, help="number of skills (default 12)")
    s.add_argument("--seed", type=int, default=0, help="random seed: same seed, same data")
    s.add_argument("--split", choices=("train", "test"), default="train", help="which cohort of students")
    s.add_argument("--out", required=True, help="file to write: .parquet for Parquet, CSV otherwise")


    t = sub.add_parser("train", help="train a model; prints the run folder",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="presets:\n" + "\n".join(f"  {k:20s} {v}" for k, v in PRESET_HELP.items()))
    t.add_argument("--data", default="sim", help=data_help + " (default sim)")
    t.add_argument("--model", choices=MODEL_CHOICES, default="cumulative", help="cumulative (GainAKT2, mastery "
                   "guaranteed monotone and bounded), original (GainAKT2, raw heads), or a classic baseline in the "
                   "same harness: dkt (LSTM), bkt (Bayesian Knowledge Tracing, fitted by EM), pfa (Performance "
                   "Factors Analysis)")
    t.add_argument("--preset", choices=list(PRESETS), default="quick", help="size and schedule (default quick)")
    t.add_argument("--epochs", type=int, help="override the preset's epoch count")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any preset or model value, e.g. --set lr=0.001 --set d_model=96")
    t.add_argument("--out", default=None, help="runs folder (default runs/ or $CMKT_RUNS_DIR)")
    t.add_argument("--name", default=None, help="run folder name (default: time-data-model-preset)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto uses a GPU when present")
    t.add_argument("--resume", metavar="RUN", help="continue an interrupted run from its last finished epoch")
    t.add_argument("--background", action="store_true", help="start the run as a detached process and return")
    t.add_argument("--wandb", action="store_true", help="also log to Weights & Biases (needs wandb installed)")


def _parse_sets(items) -> dict:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise CmktError(f"--set {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def _set_kind(like) -> str:
    """What a --set value must look like, from the default it replaces."""
    if isinstance(like, bool):
        return "true or false"
    if isinstance(like, int):
        return "an integer"
    if isinstance(like, float):
        return "a number"
    if isinstance(like, (list, tuple, str)):
        return "a name or comma-separated numbers"
    return "a value"  # pragma: no cover


def _check_train_options(a, sets: dict) -> None:
    """Refuse what would make a useless or broken run, before any run folder exists."""
    from dataclasses import fields

    from cmkt.train.config import MODEL_KEYS, TrainConfig, _coerce
    from cmkt.model.config import ModelConfig
    from cmkt.train.presets import PRESETS
    if a.epochs is not None and a.epochs < 1:
        raise CmktError(f"--epochs {a.epochs}: a run needs at least 1 epoch")
    from cmkt.baselines import BASELINE_PRESETS
    from cmkt.train.kinds import config_fields, kind_of_mode
    try:
        kind = kind_of_mode(a.model)          # gainakt2-ref: imported, never trained here
    except ValueError as e:
        raise CmktError(str(e)) from None
    if kind == "gainakt2":
        defaults = {f.name: f.default for f in fields(ModelConfig) if f.name in MODEL_KEYS}
    else:
        defaults = config_fields(kind)
    defaults.update({f.name: f.default for f in fields(TrainConfig)})
    defaults.update(PRESETS.get(a.preset, {}))
    if kind != "gainakt2":
        defaults.update(BASELINE_PRESETS[kind].get(a.preset, {}))
    for key, raw in sets.items():
        if key not in defaults:
            continue                      # build_configs names the unknown key and lists the known ones
        like = defaults[key]
        try:
            value = _coerce(raw, like)
        except ValueError:
            raise CmktError(f"--set {key}={raw}: {key} must be {_set_kind(like)}, not {raw!r}") from None
        if key == "epochs" and value < 1:
            raise CmktError(f"--set epochs={raw}: a run needs at least 1 epoch")
    if a.wandb:
        import importlib.util
        if importlib.util.find_spec("wandb") is None:
            raise CmktError("--wandb needs the wandb package (pip install wandb); no run was started")


class ConsoleProgress:
    """A tqdm bar on a terminal, one plain line per epoch otherwise."""

    def __init__(self, epochs: int):
        self.tty = sys.stderr.isatty()
        self.epochs, self.bar = epochs, None

    def on_batch(self, epoch, batch, n_batches, loss):
        if not self.tty:
            return
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{self.epochs}", leave=False, file=sys.stderr)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4f}")

    def on_epoch(self, rec, is_best):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        phase = {"mastery": " (mastery phase)", "stack": f" (stack, blend {rec.get('stack_blend')})"}.get(rec.get("phase"), "")
        print(f"epoch {rec['epoch']}/{self.epochs}{phase}: loss {fmt(rec.get('train_total'))} val_auc {fmt(rec.get('val_auc'))} "
              f"val_acc {fmt(rec.get('val_accuracy'))} mono {fmt(rec.get('monotonicity_violation_rate'))} "
              f"neg {fmt(rec.get('negative_gain_rate'))} bounds {fmt(rec.get('bounds_violation_rate'))} "
              f"m-perf r {fmt(rec.get('mastery_performance_corr'))} m-AUC {fmt(rec.get('mastery_auc'))} "
              f"{rec['seconds']:.1f}s"
              + (" *best" if is_best else ""), file=sys.stderr, flush=True)


def cmd_simulate(a):
    from cmkt.data.sim import SimConfig, write_simulated
    try:
        cfg = SimConfig(students=a.students, skills=a.skills, seed=a.seed)
        if cfg.students < 1 or cfg.skills < 1:
            raise ValueError("simulate needs students >= 1, skills >= 1 and 1 <= min_len <= max_len")
        _, n = write_simulated(cfg, a.split, a.out)       # .parquet: Parquet, else CSV
    except ValueError as e:
        raise CmktError(str(e)) from None
    print(a.out)
    print(f"{a.students} students, {n} interactions, {a.skills} skills", file=sys.stderr)
    return 0


def cmd_train(a):
    from cmkt.train import distributed
    if distributed.world_size() > 1:                   # under torchrun
        from cmkt.runs.torchrun import train_distributed
        return train_distributed(a, _cmd_train)
    return _cmd_train(a)


def _cmd_train(a):
    from cmkt.runs.torchrun import share_run_dir
    from cmkt.runs.jobs import launch, runs_dir_default
    from cmkt.runs.folder import create_run, read_config
    from cmkt.runs.execute import execute_run
    if a.resume:
        run_dir = Path(a.resume)
    else:
        sets = _parse_sets(a.set)
        _check_train_options(a, sets)
        if a.data != "sim" and not a.data.startswith("sim:") and not Path(a.data).exists():
            raise CmktError(f"{a.data}: no such file or folder (use 'sim' for the built-in simulated students)")
        try:
            run_dir = create_run(a.out or runs_dir_default(), data=a.data, mode=a.model, preset=a.preset,
                                 epochs=a.epochs, overrides=sets, seed=a.seed, device=a.device,
                                 name=a.name, wandb=a.wandb)
        except ValueError as e:
            raise CmktError(str(e)) from None
    train = read_config(run_dir)["train"]
    epochs = train["epochs"] + (train.get("mastery_epochs") or 0)       # at most, with the mastery phase
    share_run_dir(run_dir)              # torchrun: the other ranks train this folder
    if a.background:
        launch(run_dir)
        print(run_dir)
        return 0
    print(f"run folder: {run_dir}", file=sys.stderr)
    from cmkt.errors import Cancelled
    echo = ConsoleProgress(epochs)
    wb = _wandb_echo(run_dir, echo) if (a.wandb or read_config(run_dir)["train"].get("wandb")) else echo
    try:
        results = execute_run(run_dir, echo=wb)
    except Cancelled:
        print(f"{run_dir}: cancelled", file=sys.stderr)
        return 130
    test = results.get("test") or {}
    print(f"best epoch {results['best_epoch']}: val auc {fmt(results['valid'].get('val_auc'))}"
          + (f", test auc {fmt(test.get('auc'))}" if test else "")
          + f", {results['train_seconds']:.0f}s training", file=sys.stderr)
    print(run_dir)
    return 0


def _wandb_echo(run_dir, echo):
    try:
        import wandb
    except ImportError:
        raise CmktError("--wandb needs the wandb package (pip install wandb)") from None
    from cmkt.runs.folder import read_config

    class WandbEcho:
        def __init__(self):
            self.run = wandb.init(project="cmkt", name=Path(run_dir).name, config=read_config(run_dir))

        def on_batch(self, *args):
            echo.on_batch(*args)

        def on_epoch(self, rec, is_best):
            echo.on_epoch(rec, is_best)
            self.run.log({k: v for k, v in rec.items() if isinstance(v, (int, float))}, step=rec["epoch"])
    return WandbEcho()


COMMANDS = {"simulate": cmd_simulate, "train": cmd_train}
