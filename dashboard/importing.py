"""The Runs page's import of a reference-system model (cmkt.runs.importer), from uploaded files:
a .pth / .ckpt checkpoint and, optionally, the config.json beside it. Also the variant shown for
gainakt2-ref runs."""
from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

import streamlit as st

from cmkt.errors import CheckpointError, CmktError
from cmkt.io import read_json
from cmkt.model.reference import KIND
from cmkt.runs.checkpoint import MAX_CHECKPOINT_BYTES, read_checkpoint
from cmkt.runs.importer import import_reference

from .state import Entry, runs_dir, sanitise_filename, upload_limit_mb

IMPORT_TYPES = ("pth", "pt", "ckpt")
VARIANT_CHOICES = ("default", "cumulative", "original")


def _check_size(uploaded) -> bytes:
    """The uploaded bytes, refused over the upload limit (server.maxUploadSize) or the checkpoint limit."""
    data = uploaded.getvalue()
    size = max(getattr(uploaded, "size", 0) or 0, len(data))
    limit_mb = upload_limit_mb()
    limit = min(MAX_CHECKPOINT_BYTES, limit_mb * 2**20 if limit_mb else MAX_CHECKPOINT_BYTES)
    if size > limit:
        raise CmktError(f"{uploaded.name}: the file is {size / 2**20:.1f} MB, over the "
                        f"{limit / 2**20:g} MB limit for an import")
    if not data:
        raise CmktError(f"{uploaded.name}: the file is empty")
    return data


def import_uploads(checkpoint, config=None, variant: str = "default") -> Path:
    """Import an uploaded checkpoint (and its config.json) into the runs folder; returns the run.
    The files are written to a private temporary folder, read weights-only, and removed."""
    ckpt_bytes = _check_size(checkpoint)
    cfg_bytes = _check_size(config) if config is not None else None
    name = sanitise_filename(checkpoint.name, "model.pth")
    if Path(name).suffix.lstrip(".") not in IMPORT_TYPES:
        raise CmktError(f"{checkpoint.name}: expected a .pth (cumulative scripts) or a .ckpt (pyKT training)")
    stem = Path(name).stem
    tmp = Path(tempfile.mkdtemp(prefix="cmkt-import-"))
    try:
        folder = tmp / stem                   # the default run name reads the folder's name
        folder.mkdir()
        (folder / name).write_bytes(ckpt_bytes)
        if cfg_bytes is not None:
            (folder / "config.json").write_bytes(cfg_bytes)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        chosen = None if variant == "default" else variant
        try:
            return import_reference(folder / name, runs_dir(), variant=chosen, source_label=f"upload: {checkpoint.name}"
                                    + (f" + {config.name}" if config is not None else ""),
                                    name_hint=f"{stamp}-{stem}")
        except CheckpointError as e:                 # name the uploaded file, not the temp copy
            shown = config.name if (config is not None and e.path.endswith("config.json")) else checkpoint.name
            raise CheckpointError(shown, e.problem) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@st.cache_data(show_spinner=False, max_entries=256)
def _variant(path: str, mtime: float, is_run: bool) -> str | None:
    if is_run:
        return ((read_json(Path(path) / "config.json", {}) or {}).get("model") or {}).get("variant")
    return read_checkpoint(path)[1].get("variant")


def variant_of(e: Entry) -> str | None:
    """The variant (cumulative / original) of a gainakt2-ref entry; None for any other kind."""
    if e.mode != KIND:
        return None
    target = e.path / "config.json" if e.info is not None else e.path
    try:
        return _variant(str(e.path), target.stat().st_mtime, e.info is not None)
    except (OSError, CmktError):
        return None
