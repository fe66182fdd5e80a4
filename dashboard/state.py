"""Shared state for every page: where runs live, the list of checkpoints (runs, demo, uploads),
cached models and scored data sets, uploads, and turning user errors into messages.

Nothing here trains or scores by itself: it calls the cmkt library and caches the results.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from cmkt.runs.checkpoint import BEST, load_checkpoint, read_checkpoint
from cmkt.data.source import is_sim
from cmkt.errors import CheckpointError, CmktError, DataError
from cmkt.runs.evaluate import Scored, eval_data_for
from cmkt.io import atomic_target
from cmkt.runs.jobs import RunInfo, list_runs, runs_dir_default
from cmkt.train.kinds import BASELINE_KINDS, MODEL_ORDER
from cmkt.runs import ACTIVE
from cmkt.analysis.scoring import score

log = logging.getLogger("cmkt.dashboard")

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / "assets" / "demo"
CHECKPOINT_TYPES = ("safetensors", "pt", "pth")
DATA_TYPES = ("csv", "txt", "tsv")
SPLITS = ("test", "valid", "train")
PAGES_DIR = REPO / "pages"


def page(name: str) -> str:
    """The script path of a page (for st.page_link / st.switch_page)."""
    return str(PAGES_DIR / f"{name}.py")


# ---- where things live ---------------------------------------------------------------

def runs_dir() -> Path:
    return Path(runs_dir_default())


def uploads_dir(kind: str) -> Path:
    """<runs_dir>/uploads/data or <runs_dir>/uploads/checkpoints."""
    return runs_dir() / "uploads" / kind


def shared_data_folders() -> list[Path]:
    """`../shared/data`-style folders (each with a train.csv) next to the project or the cwd."""
    seen, out = set(), []
    for base in (REPO.parent / "shared" / "data", Path.cwd().parent / "shared" / "data",
                 Path.cwd() / "data"):
        if not base.is_dir():
            continue
        for p in sorted(base.iterdir()):
            rp = p.resolve()
            if p.is_dir() and (p / "train.csv").exists() and rp not in seen:
                seen.add(rp)
                out.append(rp)
    return out


def uploaded_data_files() -> list[Path]:
    d = uploads_dir("data")
    if not d.is_dir():
        return []
    return sorted((p.resolve() for p in d.iterdir() if p.is_file() and not p.name.startswith(".")),
                  key=lambda p: p.stat().st_mtime, reverse=True)


# ---- the checkpoints a user can pick ----------------------------------------------------

@dataclass
class Entry:
    """One pickable checkpoint: a run under runs/, a demo run, or an uploaded checkpoint."""

    key: str                 # "runs/NAME", "demo/NAME" or "upload/FILE": used in URLs
    source: str              # runs | demo | upload
    name: str
    path: Path               # the run folder, or the checkpoint file of an upload
    info: RunInfo | None     # None for uploads
    mode: str | None
    data: str | None         # the data spec it was trained on ("sim", a path)
    data_name: str | None
    preset: str | None
    pair: str | None

    @property
    def ckpt(self) -> Path:
        return self.path / BEST if self.info is not None else self.path

    @property
    def has_checkpoint(self) -> bool:
        return self.ckpt.exists()

    @property
    def state(self) -> str:
        return self.info.state if self.info is not None else "checkpoint"

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def deletable(self) -> bool:
        return self.source in ("runs", "upload")

    @property
    def label(self) -> str:
        bits = [self.name, self.mode or "?", self.data_name or "?"]
        tag = {"demo": " (demo)", "upload": " (uploaded)"}.get(self.source, "")
        return " · ".join(bits) + tag


def _entry_from_run(info: RunInfo, source: str) -> Entry:
    cfg_data = None
    try:
        from cmkt.runs import read_config
        cfg = read_config(info.path)
        cfg_data = (cfg.get("train") or {}).get("data")
    except CmktError:
        pass
    return Entry(key=f"{source}/{info.name}", source=source, name=info.name, path=Path(info.path),
                 info=info, mode=info.mode, data=cfg_data or info.data, data_name=info.data,
                 preset=info.preset, pair=info.pair)


@st.cache_data(show_spinner=False, max_entries=256)
def _upload_meta(path: str, mtime: float) -> dict:
    _, cfg, meta = read_checkpoint(path)
    return {"mode": cfg.get("mode"), "data": meta.get("data"), "data_name": meta.get("data_name"),
            "preset": meta.get("preset"), "pair": meta.get("pair")}


def _upload_entries() -> list[Entry]:
    d = uploads_dir("checkpoints")
    if not d.is_dir():
        return []
    out = []
    files = [p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")
             and p.suffix.lstrip(".") in CHECKPOINT_TYPES]
    for p in sorted(files, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            m = _upload_meta(str(p), p.stat().st_mtime)
        except (CmktError, OSError):
            continue
        out.append(Entry(key=f"upload/{p.name}", source="upload", name=p.name, path=p, info=None,
                         mode=m["mode"], data=m["data"], data_name=m["data_name"],
                         preset=m["preset"], pair=m["pair"]))
    return out


def list_entries() -> list[Entry]:
    """Runs under runs/ (newest first), then the demo runs, then uploaded checkpoints."""
    out = [_entry_from_run(i, "runs") for i in list_runs(runs_dir())]
    demo = [_entry_from_run(i, "demo") for i in list_runs(DEMO_DIR)]
    out += sorted(demo, key=lambda e: e.mode in BASELINE_KINDS)   # the demo's GainAKT2 pair first
    out += _upload_entries()
    return out


def with_checkpoint(entries: list[Entry]) -> list[Entry]:
    return [e for e in entries if e.has_checkpoint]


def find_entry(entries: list[Entry], key: str | None) -> Entry | None:
    """By key ("runs/NAME", "demo/NAME", "upload/FILE") or by a bare run name."""
    if not key:
        return None
    for e in entries:
        if e.key == key:
            return e
    for e in entries:
        if e.name == key:
            return e
    return None


def pair_partner(entry: Entry, entries: list[Entry]) -> Entry | None:
    """The other half of a comparison pair (same pair id, preferably the other mode)."""
    if not entry.pair:
        return None
    mates = [e for e in entries if e.pair == entry.pair and e.key != entry.key and e.has_checkpoint
             and e.source == entry.source]
    mates = mates or [e for e in entries if e.pair == entry.pair and e.key != entry.key and e.has_checkpoint]
    mates.sort(key=lambda e: e.mode == entry.mode)
    return mates[0] if mates else None


def default_pair(entries: list[Entry]) -> list[Entry]:
    """The newest original/cumulative pair with checkpoints (runs first, then the demo)."""
    entries = with_checkpoint(entries)
    for e in entries:
        mate = pair_partner(e, entries)
        if mate is not None:
            pair = sorted([e, mate], key=lambda x: x.mode != "original")
            return pair
    return entries[:2]


def model_rank(e: Entry) -> int:
    """Display order of model kinds: original, cumulative, dkt, bkt, pfa, then anything else."""
    return MODEL_ORDER.index(e.mode) if e.mode in MODEL_ORDER else len(MODEL_ORDER)


def default_set(entries: list[Entry]) -> list[Entry]:
    """Every model kind's newest checkpoint trained on the data of the newest checkpoint
    (runs first, then the demo, then uploads), in the order original, cumulative, dkt, bkt, pfa."""
    entries = with_checkpoint(entries)
    if not entries:
        return []
    data = entries[0].data
    newest: dict[str, Entry] = {}
    for e in entries:
        if e.data == data and e.mode not in newest:
            newest[e.mode] = e
    return sorted(newest.values(), key=model_rank)


# ---- cached models and scored data ----------------------------------------------------

def ckpt_stamp(entry_or_path) -> tuple[str, float]:
    """(resolved checkpoint path, modification time): the cache key of a checkpoint."""
    p = entry_or_path.ckpt if isinstance(entry_or_path, Entry) else Path(entry_or_path)
    if p.is_dir():
        p = p / BEST
    try:
        return str(p.resolve()), p.stat().st_mtime
    except FileNotFoundError:
        raise CheckpointError(p, "this run has no checkpoint yet (no epoch has finished)") from None


@st.cache_resource(max_entries=16, show_spinner=False)
def _model(path: str, mtime: float):
    return load_checkpoint(path)


def load_model(entry: Entry):
    """(model, meta) of an entry's checkpoint; cached per (path, mtime)."""
    return _model(*ckpt_stamp(entry))


def norm_split(data: str, split: str | None) -> str | None:
    """A single file is scored whole: the split does not apply (and must not split the cache)."""
    if data is None:
        return split
    if is_sim(data) or Path(data).is_dir():
        return split or "test"
    return None


@st.cache_resource(max_entries=6, show_spinner=False)
def _eval_data(path: str, mtime: float, data: str, split: str | None):
    """The data set `data`/`split` in the skill space of the checkpoint (read once)."""
    return eval_data_for(_model(path, mtime)[1], data, split)


_MISSES: dict[tuple, float] = {}   # key -> seconds, written only when _scored really runs


@st.cache_resource(max_entries=6, show_spinner=False)
def _scored(path: str, mtime: float, data: str, split: str | None) -> Scored:
    t = time.perf_counter()
    model, meta = _model(path, mtime)
    ds = _eval_data(path, mtime, data, split)
    traj = score(model, ds)          # what score_checkpoint does, with the data read above
    out = Scored(traj, ds, meta, list(ds.skill_labels), list(ds.skill_names))
    secs = time.perf_counter() - t
    _MISSES[(path, mtime, data, split)] = secs
    log.info("scored %s on %s/%s in %.2fs", path, data, split, secs)
    return out


def scored_key(entry: Entry, data: str, split: str | None) -> tuple:
    path, mtime = ckpt_stamp(entry)
    return (path, mtime, data, norm_split(data, split))


def get_scored(entry: Entry, data: str, split: str | None) -> tuple[tuple, Scored]:
    """(cache key, Scored): the entry's model over `data`/`split`, scored once per
    (checkpoint path, mtime, data, split) and shared by every page and session.

    The first time (a cache miss can take many seconds on a large data set) a status box
    says what is being done: loading the model, reading the data, scoring N students; it
    stays, collapsed, with the time taken. A cache hit leaves nothing on the page."""
    key = scored_key(entry, data, split)
    where = f"{data if is_sim(data) else Path(data).name} ({key[3] or 'whole file'})"
    _MISSES.pop(key, None)
    box = st.empty()
    with box.status(f"Loading {entry.name} ...", expanded=False) as status:
        _model(*key[:2])
        status.update(label=f"Reading {where} ...")
        ds = _eval_data(*key)
        status.update(label=f"Scoring {len(ds):,} students ({ds.n_interactions:,} interactions) of "
                            f"{where} with {entry.name} ...")
        out = _scored(*key)
    secs = _MISSES.pop(key, None)
    if secs is None:
        box.empty()
    else:
        status.update(label=f"Scored {len(ds):,} students of {where} with {entry.name} in {secs:.1f} s "
                            "(cached from now on)", state="complete", expanded=False)
    return key, out


# ---- uploads --------------------------------------------------------------------------

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def sanitise_filename(name: str, default: str = "upload") -> str:
    """A plain file name: no folders, no leading dots, only [A-Za-z0-9._-], at most 100 chars."""
    base = Path(str(name).replace("\\", "/")).name
    base = _SAFE.sub("_", base).lstrip("._-")
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = stem[:80] or default
    return f"{stem}.{ext[:16]}" if ext else stem


def _unique_target(folder: Path, name: str, digest: str) -> tuple[Path, bool]:
    """A free path for `name` in folder; (path, True) when the same content is already there."""
    target = folder / name
    stem, suffix = target.stem, target.suffix
    n = 1
    while target.exists():
        if hashlib.sha256(target.read_bytes()).hexdigest() == digest:
            return target, True
        n += 1
        target = folder / f"{stem}-{n}{suffix}"
    return target, False


def upload_limit_mb() -> float | None:
    """The configured upload limit in MB (server.maxUploadSize), None when unset or unreadable."""
    try:
        v = st.get_option("server.maxUploadSize")
        return float(v) if v else None
    except Exception:  # noqa: BLE001 - no limit is better than a crash here
        return None


def save_upload(uploaded, kind: str, check=None) -> Path:
    """Save an uploaded file atomically under <runs_dir>/uploads/<kind>/ with a sanitised name.
    `check(path)` runs on the written temp file first; if it raises, nothing is kept.
    Errors name the uploaded file, not the temp file. Files over server.maxUploadSize are
    refused here too (the browser widget enforces it, a hand-made request need not)."""
    size = getattr(uploaded, "size", None)
    data = uploaded.getvalue()
    size = len(data) if size is None else max(size, len(data))
    limit_mb = upload_limit_mb()
    if limit_mb is not None and size > limit_mb * 2**20:
        raise CmktError(f"{uploaded.name}: the file is {size / 2**20:.1f} MB, over the "
                        f"{limit_mb:g} MB upload limit")
    if not data:
        raise DataError(uploaded.name, "the file is empty")
    folder = uploads_dir(kind)
    folder.mkdir(parents=True, exist_ok=True)
    name = sanitise_filename(uploaded.name)
    target, same = _unique_target(folder, name, hashlib.sha256(data).hexdigest())
    if same:
        return target
    try:
        with atomic_target(target) as tmp:
            Path(tmp).write_bytes(data)
            if check is not None:
                check(tmp)
    except DataError as e:
        raise DataError(uploaded.name, e.problem, e.line) from None
    except CheckpointError as e:
        raise CheckpointError(uploaded.name, e.problem) from None
    return target


def check_checkpoint_file(path) -> None:
    load_checkpoint(path)


def check_data_file(path):
    """Read a data file (raises DataError when it does not read); returns the KTDataset."""
    from cmkt.data.readers import read_data
    ds = read_data(path)
    if len(ds) < 1:
        raise DataError(path, "no students in this file")
    return ds


# ---- errors ---------------------------------------------------------------------------

@contextlib.contextmanager
def user_errors(stop: bool = True):
    """Show an error a user can cause as one clear message (never a traceback)."""
    try:
        yield
    except CmktError as e:
        st.error(str(e))
        if stop:
            st.stop()
    except KeyError as e:
        st.error(str(e.args[0]) if e.args else "not found")
        if stop:
            st.stop()
    except Exception as e:  # noqa: BLE001 - anything else still gets a message, not a traceback
        log.exception("dashboard error")
        st.error(f"Something went wrong: {type(e).__name__}: {e}")
        if stop:
            st.stop()


def fmt(v, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)
