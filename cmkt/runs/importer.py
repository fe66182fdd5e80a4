"""`cmkt import`: a reference-system model (format A or B, cmkt.runs.refload) into a normal run
folder of kind `gainakt2-ref`, so that validate, export, report, compare and every page work on it.

The folder is written whole in a hidden folder beside the others, then renamed into place: a failed
import leaves nothing behind.

    config.json    kind gainakt2-ref, the variant, the source path and its format
    status.json    finished
    best.safetensors  the weights (cmkt's own checkpoint format)
    results.json   what the reference recorded (best validation AUC, its consistency metrics)
    metrics.jsonl  the reference's per-epoch history (format B), else empty
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from cmkt.io import write_json_atomic, write_text_atomic
from cmkt.model.reference import KIND, VARIANTS
from cmkt.runs.checkpoint import BEST, save_checkpoint
from cmkt.runs.folder import CONFIG, METRICS, RESULTS, STATUS, check_run_name, now_iso, run_path
from cmkt.runs.refload import DEFAULT_VARIANT, FORMAT_NAMES, Loaded, build_reference, detect, load_reference
from cmkt.errors import CmktError

STAGING = ".importing"          # hidden: list_runs only looks one level down for config.json


def import_reference(path, out, variant: str | None = None, name: str | None = None,
                     source_label: str | None = None, name_hint: str | None = None) -> Path:
    """Import the reference model at `path` into a new run folder under `out`; returns the folder.
    variant: "cumulative" or "original" (default: original for format A, cumulative for format B).
    source_label: what config.json records as the source (default: the checkpoint's path);
    name_hint: the start of the default run name (default: time stamp and source folder name)."""
    if variant is not None and variant not in VARIANTS:
        raise CmktError(f"--variant {variant}: choose one of {', '.join(VARIANTS)}")
    if name is not None:
        check_run_name(name)
    found = detect(path)
    loaded = load_reference(found)
    variant = variant or DEFAULT_VARIANT[found.format]
    model = build_reference(loaded, variant)
    out = Path(out)
    staging = out / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=staging, prefix="run-"))
    try:
        _write_folder(tmp, model, loaded, variant, source_label)
        return _move_into_place(tmp, out, name or default_name(loaded, variant, name_hint))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        try:
            staging.rmdir()
        except OSError:
            pass                    # another import is under way


def default_name(loaded: Loaded, variant: str, hint: str | None = None) -> str:
    if hint is None:
        src = loaded.found.checkpoint.parent.name or loaded.found.checkpoint.stem
        hint = f"{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{src}"
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{hint}-{KIND}-{variant}").strip("-.")
    return base[:120]


def _move_into_place(tmp: Path, out: Path, name: str) -> Path:
    """rename() the finished folder to out/name (name-2, name-3, ... when taken)."""
    target, n = run_path(out, name), 1
    while True:
        if not target.exists():
            try:
                os.rename(tmp, target)
                return target
            except OSError:
                if not target.exists():
                    raise
        n += 1
        target = run_path(out, f"{name}-{n}")


def _write_folder(folder: Path, model, loaded: Loaded, variant: str, source_label: str | None) -> None:
    found, extras, now = loaded.found, loaded.extras, now_iso()
    source = {"source": source_label or str(found.checkpoint.resolve()), "format": found.format,
              "format_name": FORMAT_NAMES[found.format], "variant": variant,
              "default_variant": DEFAULT_VARIANT[found.format],
              "config_json": (found.config.name if source_label else str(found.config.resolve()))
              if found.config else None,
              "reference_config": loaded.settings, "imported": now}
    epoch = extras.get("epoch") if isinstance(extras.get("epoch"), int) else None
    write_json_atomic(folder / CONFIG, {
        "model": model.cfg.to_dict(), "train": {"data": None, "preset": "imported"}, "overrides": {},
        "pair": None, "created": now, "imported": source})
    save_checkpoint(model, folder / BEST, {"imported": source, "data_name": "imported"})
    history = _history(extras.get("train_history"))
    write_text_atomic(folder / METRICS, "".join(_json_line(rec) for rec in history))
    best_auc = extras.get("best_val_auc")
    write_json_atomic(folder / RESULTS, {
        "run": folder.name, "mode": KIND, "kind": KIND, "variant": variant, "imported": source,
        "best_epoch": epoch, "valid": {"val_auc": best_auc} if isinstance(best_auc, (int, float)) else {},
        "test": None, "reference": {k: extras[k] for k in ("epoch", "best_val_auc", "test_auc",
                                                           "consistency_metrics") if k in extras}})
    write_json_atomic(folder / STATUS, {"state": "finished", "epoch": epoch or 0, "best_epoch": epoch,
                                        "best_val_auc": best_auc if isinstance(best_auc, (int, float)) else None,
                                        "created": now, "finished": now, "imported": True})


def _history(h) -> list[dict]:
    """train_history {train_loss: [...], train_auc: [...], val_auc: [...]} -> one record per epoch."""
    if not isinstance(h, dict):
        return []
    keys = [k for k in ("train_loss", "train_auc", "val_auc") if isinstance(h.get(k), list)]
    n = max((len(h[k]) for k in keys), default=0)
    return [{"epoch": i + 1, **{k: h[k][i] for k in keys if i < len(h[k]) and isinstance(h[k][i], (int, float))}}
            for i in range(n)]


def _json_line(rec: dict) -> str:
    return json.dumps(rec) + "\n"
