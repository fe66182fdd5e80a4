"""Command line: every dashboard action can also be done headless (python -m cmkt ...)."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from .errors import CmktError

EPILOG = """examples:
  python -m cmkt simulate --students 500 --skills 12 --seed 0 --out sim.csv
  python -m cmkt train --data sim --model cumulative --preset quick
  python -m cmkt train --data ../shared/data/assist2015 --model original --preset quick --epochs 3
  python -m cmkt train --data ../shared/data/assist2009 --model dkt --preset standard   # or bkt, pfa
  python -m cmkt validate runs/RUN --json                  # on the run's own data (test split)
  python -m cmkt validate runs/RUN --data ../shared/data/assist2015 --json
  python -m cmkt compare runs/RUN_A runs/RUN_B --data sim
  python -m cmkt export runs/RUN --data sim --student T0001 --out student.csv
  python -m cmkt report runs/RUN --data sim --student T0005 --out T0005.html
"""


def build_parser() -> argparse.ArgumentParser:
    from .models import MODEL_CHOICES
    from .presets import PRESET_HELP, PRESETS
    p = argparse.ArgumentParser(prog="cmkt", description="Cumulative Mastery Knowledge Tracing: train "
                                "knowledge-tracing transformers whose per-skill mastery never falls after "
                                "practice, and check that it does not.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_help = ("'sim' (built-in simulated students), a data file (three-line, pyKT or long CSV), "
                 "or a folder with train.csv / test.csv")

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

    v = sub.add_parser("validate", help="score a run or checkpoint on a data set")
    v.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT")
    v.add_argument("--data", default=None, help=data_help + " (default: the data the run was trained on)")
    v.add_argument("--split", choices=("test", "valid", "train"), default=None,
                   help="on a folder or sim: which split (default test); a file is scored whole")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")

    c = sub.add_parser("compare", help="score two (or more) runs on the same data, side by side")
    c.add_argument("checkpoints", nargs="+", metavar="RUN")
    c.add_argument("--data", required=True, help=data_help)
    c.add_argument("--split", choices=("test", "valid", "train"), default=None)
    c.add_argument("--json", action="store_true")
    c.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")

    e = sub.add_parser("export", help="write per-step mastery, gain, prediction and response as CSV")
    e.add_argument("checkpoint", metavar="RUN")
    e.add_argument("--data", required=True, help=data_help)
    e.add_argument("--split", choices=("test", "valid", "train"), default=None)
    who_e = e.add_mutually_exclusive_group()
    who_e.add_argument("--student", default=None, help="only this student id")
    who_e.add_argument("--all", action="store_true", help="every student, scored and written in chunks "
                       "(memory bounded by the chunk; .parquet or .csv)")
    e.add_argument("--chunk", type=int, default=2048, help="students per chunk with --all (default 2048)")
    e.add_argument("--out", required=True, help="file to write (CSV; with --all also .parquet)")

    r = sub.add_parser("report", help="write a self-contained HTML report of one student (or the class)")
    r.add_argument("checkpoint", metavar="RUN")
    r.add_argument("--data", required=True, help=data_help)
    r.add_argument("--split", choices=("test", "valid", "train"), default=None)
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--student", help="the student id")
    who.add_argument("--class", dest="whole_class", action="store_true", help="the whole class instead")
    r.add_argument("--out", required=True, help="HTML file to write")
    return p


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

    from .config import MODEL_KEYS, TrainConfig, _coerce
    from .model.config import ModelConfig
    from .presets import PRESETS
    if a.epochs is not None and a.epochs < 1:
        raise CmktError(f"--epochs {a.epochs}: a run needs at least 1 epoch")
    from .baselines import BASELINE_PRESETS
    from .models import config_fields, kind_of_mode
    kind = kind_of_mode(a.model)
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


def _fmt(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:.4f}" if math.isfinite(v) else str(v)
    return str(v)


def _table(columns: dict[str, dict]) -> str:
    from .metrics import METRIC_EXPLANATIONS
    keys = [k for k in METRIC_EXPLANATIONS if any(k in c for c in columns.values())]
    w = max(len(k) for k in keys)
    names = list(columns)
    cw = [max(12, len(n)) for n in names]
    lines = [" " * w + "  " + "  ".join(n.rjust(c) for n, c in zip(names, cw))]
    for k in keys:
        lines.append(k.ljust(w) + "  " + "  ".join(_fmt(columns[n].get(k)).rjust(c) for n, c in zip(names, cw)))
    return "\n".join(lines)


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
        print(f"epoch {rec['epoch']}/{self.epochs}{phase}: loss {_fmt(rec.get('train_total'))} val_auc {_fmt(rec.get('val_auc'))} "
              f"val_acc {_fmt(rec.get('val_accuracy'))} mono {_fmt(rec.get('monotonicity_violation_rate'))} "
              f"neg {_fmt(rec.get('negative_gain_rate'))} bounds {_fmt(rec.get('bounds_violation_rate'))} "
              f"m-perf r {_fmt(rec.get('mastery_performance_corr'))} m-AUC {_fmt(rec.get('mastery_auc'))} "
              f"{rec['seconds']:.1f}s"
              + (" *best" if is_best else ""), file=sys.stderr, flush=True)


def cmd_simulate(a):
    from .sim import SimConfig, write_simulated
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
    from . import distributed
    if distributed.world_size() > 1:                   # under torchrun
        return distributed.train_distributed(a, _cmd_train)
    return _cmd_train(a)


def _cmd_train(a):
    from . import distributed
    from .jobs import launch, runs_dir_default
    from .runs import create_run, execute_run, read_config
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
    distributed.share_run_dir(run_dir)              # torchrun: the other ranks train this folder
    if a.background:
        launch(run_dir)
        print(run_dir)
        return 0
    print(f"run folder: {run_dir}", file=sys.stderr)
    from .trainer import Cancelled
    echo = ConsoleProgress(epochs)
    wb = _wandb_echo(run_dir, echo) if (a.wandb or read_config(run_dir)["train"].get("wandb")) else echo
    try:
        results = execute_run(run_dir, echo=wb)
    except Cancelled:
        print(f"{run_dir}: cancelled", file=sys.stderr)
        return 130
    test = results.get("test") or {}
    print(f"best epoch {results['best_epoch']}: val auc {_fmt(results['valid'].get('val_auc'))}"
          + (f", test auc {_fmt(test.get('auc'))}" if test else "")
          + f", {results['train_seconds']:.0f}s training", file=sys.stderr)
    print(run_dir)
    return 0


def _wandb_echo(run_dir, echo):
    try:
        import wandb
    except ImportError:
        raise CmktError("--wandb needs the wandb package (pip install wandb)") from None
    from .runs import read_config

    class WandbEcho:
        def __init__(self):
            self.run = wandb.init(project="cmkt", name=Path(run_dir).name, config=read_config(run_dir))

        def on_batch(self, *args):
            echo.on_batch(*args)

        def on_epoch(self, rec, is_best):
            echo.on_epoch(rec, is_best)
            self.run.log({k: v for k, v in rec.items() if isinstance(v, (int, float))}, step=rec["epoch"])
    return WandbEcho()


def _run_data(checkpoint, meta: dict) -> str:
    """The data a run or checkpoint was trained on (its config.json, else the checkpoint's meta)."""
    from .runs import read_config
    spec = (meta.get("train_config") or {}).get("data")
    p = Path(checkpoint)
    if p.is_file():
        p = p.parent
    try:
        spec = (read_config(p).get("train") or {}).get("data") or spec
    except CmktError:
        pass
    if not spec:
        raise CmktError(f"{checkpoint}: it does not say what data it was trained on; give --data")
    return str(spec)


def _split_used(data: str, split: str | None) -> str | None:
    """The split scored: on sim or a folder the one asked for (default test); a file is scored whole."""
    from .datasource import is_sim
    return (split or "test") if (is_sim(data) or Path(data).is_dir()) else None


def cmd_validate(a):
    from .checkpoint import load_checkpoint
    from .evaluate import score_checkpoint
    from .trainer import pick_device
    device = pick_device(a.device)
    model_and_meta = load_checkpoint(a.checkpoint, device)
    data = a.data if a.data is not None else _run_data(a.checkpoint, model_and_meta[1])
    scored = score_checkpoint(a.checkpoint, data, a.split, device, model_and_meta=model_and_meta)
    m = scored.metrics
    if a.json:
        print(json.dumps({"run": str(Path(a.checkpoint).resolve()), "data": data,
                          "split": _split_used(data, a.split), **m}))
    else:
        print(_table({Path(a.checkpoint).name or a.checkpoint: m}))
    return 0


def cmd_compare(a):
    from .evaluate import score_checkpoint
    from .trainer import pick_device
    if len(a.checkpoints) < 2:
        raise CmktError("compare needs at least two runs or checkpoints")
    cols = {}
    for ck in a.checkpoints:
        name = Path(ck).name
        while name in cols:
            name += "'"
        cols[name] = score_checkpoint(ck, a.data, a.split, pick_device(a.device)).metrics
    print(json.dumps(cols) if a.json else _table(cols))
    return 0


def cmd_export(a):
    if a.all:
        from .export import export_all
        if a.chunk < 1:
            raise CmktError(f"--chunk {a.chunk}: needs at least 1 student")
        done = export_all(a.checkpoint, a.data, a.split, a.out, a.chunk)
        print(a.out)
        print(f"{done['rows']} rows, {done['students']} students, {done['chunks']} chunks", file=sys.stderr)
        return 0
    from .evaluate import score_checkpoint, trajectory_frame
    from .io import atomic_target
    scored = score_checkpoint(a.checkpoint, a.data, a.split)
    try:
        df = trajectory_frame(scored, a.student)
    except KeyError as e:
        split = _split_used(a.data, a.split)
        ids = scored.data.student_ids
        where = f"the {split} split of {a.data}" if split else a.data
        raise CmktError(f"{e.args[0]} in {where} ({len(ids):,} students, e.g. "
                        f"{', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})") from None
    with atomic_target(a.out) as tmp:
        df.to_csv(tmp, index=False)
    print(a.out)
    print(f"{len(df)} rows", file=sys.stderr)
    return 0


def cmd_report(a):
    from .evaluate import score_checkpoint
    from .io import write_text_atomic
    from .report import class_report, student_report
    scored = score_checkpoint(a.checkpoint, a.data, a.split)
    try:
        html = class_report(scored) if a.whole_class else student_report(scored, a.student)
    except KeyError as e:
        raise CmktError(f"{a.data}: {e.args[0]}") from None
    write_text_atomic(a.out, html)
    print(a.out)
    return 0


COMMANDS = {"simulate": cmd_simulate, "train": cmd_train, "validate": cmd_validate,
            "compare": cmd_compare, "export": cmd_export, "report": cmd_report}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CmktError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
