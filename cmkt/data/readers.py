"""Readers for the three supported data formats, with format detection: the public entry points.

Formats (see DESIGN.md, "Data"), one module each:

* ``three_line`` (:mod:`cmkt.data.threeline`): per student a count line, a line of
  comma-separated 1-based skill ids and a line of comma-separated 0/1 responses;
* ``pykt`` (:mod:`cmkt.data.pykt`): pyKT ``train_valid_sequences.csv`` /
  ``test_sequences.csv`` (0-based concepts, ``-1`` padding, long students split over rows);
* ``long`` (:mod:`cmkt.data.longlog`): one row per interaction (ASSISTments-style exports).

Every bad input raises :class:`cmkt.errors.DataError` naming the file, the line (when
one is meaningful) and the problem.
"""
from __future__ import annotations

import re
from pathlib import Path

from cmkt.data._common import _COUNT_LINE, MAX_SKILL_ID, _check_file, _decode, _read_text, _show
from cmkt.data.dataset import KTDataset
from cmkt.data.columnar import is_parquet, read_parquet
from cmkt.data.longlog import _parse_long, read_long
from cmkt.data.longparsed import build_long, long_labels
from cmkt.data.pykt import read_pykt
from cmkt.data.threeline import read_three_line
from cmkt.errors import DataError

__all__ = [
    "read_three_line",
    "read_pykt",
    "read_long",
    "read_skill_names",
    "detect_format",
    "read_data",
    "load_folder",
    "MAX_SKILL_ID",
]

FORMATS = ("three_line", "pykt", "long", "parquet")


# --------------------------------------------------------------------------- skill names

def read_skill_names(path) -> dict[str, str]:
    """A skill-name file: ``id<TAB>name`` per line (blank lines skipped, trailing spaces dropped)."""
    p = _check_file(path)
    text = _read_text(p)
    out: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for ln, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip()
        if not line.strip():
            continue
        if "\t" not in line:
            raise DataError(p, f"expected 'skill id<TAB>skill name', found {_show(line)}", ln)
        sid, name = line.split("\t", 1)
        sid, name = sid.strip(), name.strip()
        if not sid:
            raise DataError(p, "empty skill id before the TAB", ln)
        if not name:
            raise DataError(p, f"empty skill name for skill id {_show(sid)}", ln)
        if sid in out and out[sid] != name:
            raise DataError(p, f"skill id {_show(sid)} is named twice (first on line {first_line[sid]})", ln)
        out.setdefault(sid, name)
        first_line.setdefault(sid, ln)
    return out


def _apply_names(ds: KTDataset, names: dict[str, str], names_path, strict: bool = True) -> bool:
    """Replace display names of skills whose label is in ``names``; True when any matched."""
    matched = [i for i, lab in enumerate(ds.skill_labels) if lab in names]
    if not matched:
        if strict:
            example = ", ".join(list(names)[:3])
            raise DataError(names_path, f"none of its skill ids ({example}, ...) match the data's "
                                        f"skill ids ({', '.join(ds.skill_labels[:3])}, ...)")
        return False
    for i in matched:
        ds.skill_names[i] = names[ds.skill_labels[i]]
    return True


# --------------------------------------------------------------------------- detection

def detect_format(path) -> str:
    """'parquet' by its magic bytes, else sniff the first non-blank line: 'three_line', 'pykt' or 'long'."""
    p = _check_file(path)
    if is_parquet(p):
        return "parquet"
    chunks = []
    try:
        with open(p, "rb") as f:
            while True:
                chunk = f.read(1 << 16)
                if chunk:
                    chunks.append(chunk)
                raw = b"".join(chunks)
                stripped = raw.lstrip(b"\xef\xbb\xbf").lstrip()
                if not chunk or (stripped and b"\n" in stripped) or len(raw) > (1 << 24):
                    eof = not chunk
                    break
    except OSError as e:
        raise DataError(p, f"cannot read the file ({e.strerror or e})") from None
    text = _decode(p, raw, final=eof)
    lineno, first = 0, ""
    for k, ln in enumerate(text.split("\n"), start=1):
        if ln.strip():
            lineno, first = k, ln.strip()
            break
    if not first:
        raise DataError(p, "file is empty")
    if _COUNT_LINE.fullmatch(first):
        return "three_line"
    if re.search(r"[A-Za-z]", first):
        fields = {f.strip().strip("\"'").strip().lower() for f in re.split(r"[,\t;]", first)}
        if "concepts" in fields and "responses" in fields:
            return "pykt"
        return "long"
    raise DataError(p, f"cannot tell the format: {_show(first)} is neither a count of interactions "
                       "(three-line format) nor a CSV header", lineno)


_READERS = {"three_line": read_three_line, "pykt": read_pykt, "long": read_long, "parquet": read_parquet}


def read_data(path, skill_vocab=None, skill_names_path=None) -> KTDataset:
    """Detect the format of ``path``, read it and apply an optional skill-name file."""
    fmt = detect_format(path)
    ds = _READERS[fmt](path, skill_vocab=skill_vocab)
    if skill_names_path is not None:
        _apply_names(ds, read_skill_names(skill_names_path), skill_names_path, strict=True)
    return ds


# --------------------------------------------------------------------------- folders

_TRAIN_NAMES = ("train.csv", "train_valid_sequences.csv")
_TEST_NAMES = ("test.csv", "test_sequences.csv")


def _first_existing(folder: Path, names) -> Path | None:
    for n in names:
        if (folder / n).is_file():
            return folder / n
    return None


def load_folder(folder, skill_vocab=None) -> dict[str, KTDataset]:
    """Read ``train.csv`` and/or ``test.csv`` of a folder into one shared skill space.

    Returns ``{"train": ..., "test": ...}`` with the keys of the files present. pyKT
    names (``train_valid_sequences.csv``, ``test_sequences.csv``) are accepted too. A
    ``*.txt`` file of ``id<TAB>name`` lines in the folder supplies skill names.
    """
    d = Path(folder)
    if not d.exists():
        raise DataError(d, "folder not found")
    if not d.is_dir():
        raise DataError(d, "is a file, not a folder with train.csv / test.csv")
    files = {}
    for key, names in (("train", _TRAIN_NAMES), ("test", _TEST_NAMES)):
        f = _first_existing(d, names)
        if f is not None:
            files[key] = f
    if not files:
        raise DataError(d, "no train.csv or test.csv in this folder")
    formats = {key: detect_format(f) for key, f in files.items()}
    if len(set(formats.values())) > 1:
        desc = ", ".join(f"{files[k].name} is {v}" for k, v in formats.items())
        raise DataError(d, f"train and test files have different formats ({desc})")
    fmt = next(iter(formats.values()))

    out: dict[str, KTDataset] = {}
    if fmt == "long":
        parsed = {key: _parse_long(f) for key, f in files.items()}
        if skill_vocab is not None:
            labels, from_model = [str(v) for v in skill_vocab], True
        else:
            labels, from_model = long_labels(list(parsed.values())), False
        merged_names: dict[str, str] = {}
        for lp in parsed.values():
            for k, v in lp.names.items():
                merged_names.setdefault(k, v)
        for key, lp in parsed.items():
            lp.names = merged_names
            out[key] = build_long(lp, labels, from_model)
    else:
        for key, f in files.items():
            out[key] = _READERS[fmt](f, skill_vocab=skill_vocab)
        c = max(ds.num_skills for ds in out.values())
        base = 1 if fmt == "three_line" else 0
        labels = [str(v) for v in skill_vocab] if skill_vocab is not None else \
            [str(k + base) for k in range(c)]
        for key, ds in list(out.items()):
            if ds.num_skills < c:
                ds = ds.with_num_skills(c, labels, list(labels))
            out[key] = ds

    # a skill-name file in the folder (any *.txt of id<TAB>name lines)
    for txt in sorted(d.glob("*.txt")):
        try:
            names = read_skill_names(txt)
        except DataError:
            continue
        if not names:
            continue
        applied = [_apply_names(ds, names, txt, strict=False) for ds in out.values()]
        if any(applied):
            for ds in out.values():
                ds.notes.append(f"skill names from {txt.name}")
            break
    return out
