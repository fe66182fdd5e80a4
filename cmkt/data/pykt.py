"""pyKT sequence files: ``train_valid_sequences.csv`` / ``test_sequences.csv`` (uid,
concepts, responses; 0-based concepts, ``-1`` padding, long students split over rows)."""
from __future__ import annotations

import csv
import io

import numpy as np

from cmkt.data._common import _check_file, _check_ids, _empty_error, _parse_ints, _read_text, _show, _tokens
from cmkt.data.dataset import KTDataset
from cmkt.errors import DataError

__all__ = ["read_pykt"]


def _parse_pykt_responses(tokens: list[str], path, line: int) -> np.ndarray:
    """0/1 responses with -1 padding."""
    try:
        return _parse_ints(tokens, path, line, "response")
    except DataError:
        for k, tok in enumerate(tokens):
            t = tok.strip()
            if t not in ("0", "1", "-1"):
                shown = "an empty value" if not t else _show(t)
                raise DataError(path, f"response {shown} at position {k + 1} is not 0 or 1", line) from None
        raise


_PYKT_REQUIRED = ("uid", "concepts", "responses")


def _repeat_mask(tokens: list[str], pad: np.ndarray, path, line: int) -> np.ndarray:
    """The rows to drop from pyKT's ``is_repeat`` column (aligned with concepts).

    pyKT expands a question with several concepts into consecutive rows that share one
    response: is_repeat 0 for the first copy, 1 for the others. Read as independent steps,
    the first copy's response would leak into the prediction of the next copy, so each
    question is merged into one step: its first copy (the others are dropped)."""
    if len(tokens) != len(pad):
        raise DataError(path, f"{len(tokens)} is_repeat values but {len(pad)} concepts "
                              "(they must have the same length)", line)
    rep = _parse_ints(tokens, path, line, "is_repeat value")
    ok = np.where(pad, (rep == -1) | (rep == 0), (rep == 0) | (rep == 1))
    if not ok.all():
        k = int(np.flatnonzero(~ok)[0])
        what = "padding (-1)" if pad[k] else "0 or 1"
        raise DataError(path, f"is_repeat {int(rep[k])} at position {k + 1} should be {what}", line)
    return ~pad & (rep == 1)


def read_pykt(path, skill_vocab=None) -> KTDataset:
    """Read a pyKT sequence CSV (uid, concepts, responses; -1 padding; 0-based concepts)."""
    p = _check_file(path)
    text = _read_text(p)
    reader = csv.reader(io.StringIO(text))
    header = None
    header_line = 1
    for row in reader:
        if any(c.strip() for c in row):
            header = [c.strip().lower() for c in row]
            header_line = reader.line_num
            break
    if header is None:  # pragma: no cover - _read_text already rejects empty files
        raise DataError(p, "file is empty")
    missing = [c for c in _PYKT_REQUIRED if c not in header]
    if missing:
        raise DataError(p, f"missing column(s) {', '.join(missing)}: a pyKT sequence file needs "
                           f"columns uid, concepts, responses (found: {', '.join(header)})", header_line)
    iu, ic, ir = (header.index(c) for c in _PYKT_REQUIRED)
    irep = header.index("is_repeat") if "is_repeat" in header else None
    width = len(header)
    repeats = 0

    per_student: dict[str, tuple[list, list]] = {}
    max_id = -1
    nrows = 0
    try:
        for row in reader:
            ln = reader.line_num
            if not any(c.strip() for c in row):
                continue
            if len(row) != width:
                raise DataError(p, f"{len(row)} fields but the header has {width}", ln)
            nrows += 1
            uid = row[iu].strip()
            if not uid:
                raise DataError(p, "empty uid", ln)
            c_tok = _tokens(row[ic])
            r_tok = _tokens(row[ir])
            if len(c_tok) != len(r_tok):
                raise DataError(p, f"{len(c_tok)} concepts but {len(r_tok)} responses "
                                   "(they must have the same length)", ln)
            c = _parse_ints(c_tok, p, ln, "skill id")
            r = _parse_pykt_responses(r_tok, p, ln)
            pad_c, pad_r = c == -1, r == -1
            if (pad_c != pad_r).any():
                k = int(np.flatnonzero(pad_c != pad_r)[0])
                raise DataError(p, f"position {k + 1} is padding (-1) in one of concepts/responses "
                                   "but not in the other", ln)
            keep = ~pad_c
            if irep is not None:
                keep &= ~_repeat_mask(_tokens(row[irep]), pad_c, p, ln)
            if not (~pad_c).any():
                continue
            _check_ids(c[~pad_c], p, ln, 0, skill_vocab)
            max_id = max(max_id, int(c[~pad_c].max()))   # the skill space counts every concept
            bad = ~pad_r & (r != 0) & (r != 1)
            if bad.any():
                raise DataError(p, f"response {int(r[np.flatnonzero(bad)[0]])} is not 0 or 1", ln)
            repeats += int((~pad_c).sum() - keep.sum())
            c, r = c[keep], r[keep]
            if c.size == 0:
                continue
            entry = per_student.setdefault(uid, ([], []))
            entry[0].append(c)
            entry[1].append(r)
    except csv.Error as e:
        raise DataError(p, f"malformed CSV ({e})", reader.line_num) from None
    if nrows == 0:
        raise DataError(p, "no data rows after the header", header_line)
    if not per_student:
        raise _empty_error(p)

    skills, responses, student_ids = [], [], []
    for uid, (cs, rs) in per_student.items():
        skills.append(cs[0] if len(cs) == 1 else np.concatenate(cs))
        responses.append(rs[0] if len(rs) == 1 else np.concatenate(rs))
        student_ids.append(uid)
    if skill_vocab is not None:
        labels = [str(v) for v in skill_vocab]
    else:
        labels = [str(k) for k in range(max_id + 1)]
    notes = []
    if repeats:
        notes.append(f"merged questions with several concepts: dropped {repeats:,} repeated rows "
                     "(is_repeat=1), each question is one step with its first concept")
    return KTDataset(skills, responses, student_ids, len(labels), labels, list(labels), source=str(p),
                     notes=notes)
