"""Readers for the three supported data formats, with format detection.

Formats (see DESIGN.md, "Data"):

* ``three_line``: per student a count line, a line of comma-separated 1-based skill ids
  and a line of comma-separated 0/1 responses (the DKVMN/DKT files in ``shared/data``);
* ``pykt``: pyKT ``train_valid_sequences.csv`` / ``test_sequences.csv`` (0-based
  concepts, ``-1`` padding, long students split over several rows);
* ``long``: one row per interaction (ASSISTments-style exports).

Every bad input raises :class:`cmkt.errors.DataError` naming the file, the line (when
one is meaningful) and the problem.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cmkt.data.dataset import KTDataset
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

MAX_SKILL_ID = 1_000_000
FORMATS = ("three_line", "pykt", "long")

# A comma-separated list of plain ASCII integers (no "1_000", no "1.0", no unicode digits).
_INT_LIST = re.compile(r"\s*[+-]?[0-9]+\s*(?:,\s*[+-]?[0-9]+\s*)*", re.ASCII)
_INT = re.compile(r"\s*[+-]?[0-9]+\s*", re.ASCII)
_COUNT_LINE = re.compile(r"[+-]?[0-9]+\s*,?", re.ASCII)


# --------------------------------------------------------------------------- helpers

def _show(text: str, limit: int = 60) -> str:
    """A value quoted for an error message, shortened when long."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


def _check_file(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(p, "file not found")
    if p.is_dir():
        raise DataError(p, "is a folder, not a data file")
    return p


def _line_of_offset(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def _decode(path, raw: bytes, final: bool = True) -> str:
    """Bytes to text: rejects NUL bytes and invalid UTF-8; drops a BOM; normalises newlines."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(path, "binary data (NUL bytes), not a text data file", _line_of_offset(raw, nul))
    try:
        text = raw.decode("utf-8-sig") if final else _decode_prefix(raw)
    except UnicodeDecodeError as e:
        raise DataError(
            path,
            f"not UTF-8 text (byte 0x{raw[e.start]:02x}); binary file, or an export in another "
            "encoding that needs re-saving as UTF-8",
            _line_of_offset(raw, e.start),
        ) from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _decode_prefix(raw: bytes) -> str:
    import codecs

    dec = codecs.getincrementaldecoder("utf-8-sig")("strict")
    return dec.decode(raw, final=False)


def _read_text(path) -> str:
    p = _check_file(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise DataError(p, f"cannot read the file ({e.strerror or e})") from None
    text = _decode(p, raw)
    if not text.strip():
        raise DataError(p, "file is empty")
    return text


def _tokens(line: str) -> list[str]:
    """Comma-separated tokens of a line; one trailing comma is allowed."""
    s = line.strip()
    if s.endswith(","):
        s = s[:-1].rstrip()
    if not s:
        return []
    return s.split(",")


def _parse_ints(tokens: list[str], path, line: int, what: str) -> np.ndarray:
    """Integers from string tokens, with an error naming the first bad token."""
    if not tokens:
        return np.zeros(0, dtype=np.int64)
    joined = ",".join(tokens)
    if _INT_LIST.fullmatch(joined):
        try:
            return np.array(tokens, dtype=np.int64)
        except (ValueError, OverflowError):
            pass
    for k, tok in enumerate(tokens):
        t = tok.strip()
        if not t:
            raise DataError(path, f"empty {what} at position {k + 1}", line)
        if not _INT.fullmatch(t):
            if "_" in t and what.startswith("skill"):
                raise DataError(path, f"{what} {_show(t)} at position {k + 1} lists several skills; "
                                      "one skill per interaction is supported", line)
            raise DataError(path, f"{what} {_show(t)} at position {k + 1} is not an integer", line)
        v = int(t)
        if abs(v) >= 2 ** 63:
            raise DataError(path, f"{what} {_show(t)} at position {k + 1} is too large", line)
    raise DataError(path, f"cannot read the {what}s", line)  # pragma: no cover - defensive


def _check_ids(ids: np.ndarray, path, line: int, low: int, skill_vocab) -> None:
    if ids.size == 0:
        return
    lo, hi = int(ids.min()), int(ids.max())
    if lo < low:
        k = int(np.flatnonzero(ids < low)[0])
        extra = " (ids in this format start at 1)" if low == 1 else ""
        raise DataError(path, f"skill id {int(ids[k])} at position {k + 1} is invalid{extra}", line)
    if hi > MAX_SKILL_ID:
        k = int(np.flatnonzero(ids > MAX_SKILL_ID)[0])
        raise DataError(path, f"skill id {int(ids[k])} at position {k + 1} is too large "
                              f"(over {MAX_SKILL_ID:,})", line)
    if skill_vocab is not None:
        n = len(skill_vocab)
        limit = n if low == 1 else n - 1  # largest id the model knows
        if hi > limit:
            k = int(np.flatnonzero(ids > limit)[0])
            raise DataError(path, f"skill id {int(ids[k])} at position {k + 1} is not one the model knows "
                                  f"(it has {n} skills)", line)


def _parse_responses(tokens: list[str], path, line: int) -> np.ndarray:
    try:
        r = _parse_ints(tokens, path, line, "response")
    except DataError:
        for k, tok in enumerate(tokens):
            t = tok.strip()
            if t not in ("0", "1"):
                shown = "an empty value" if not t else _show(t)
                raise DataError(path, f"response {shown} at position {k + 1} is not 0 or 1", line) from None
        raise
    bad = (r != 0) & (r != 1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataError(path, f"response {int(r[k])} at position {k + 1} is not 0 or 1", line)
    return r


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


def _empty_error(path):
    return DataError(path, "the file holds no interactions")


# --------------------------------------------------------------------------- three-line

def read_three_line(path, skill_vocab=None) -> KTDataset:
    """Read the three-line format (count / 1-based skill ids / 0-1 responses per student)."""
    p = _check_file(path)
    text = _read_text(p)
    lines = text.split("\n")
    n = len(lines)

    def truncated(count_line: int, missing: str):
        return DataError(p, f"the file ends inside the student block that starts here: the {missing} "
                            "line is missing (truncated file?)", count_line)

    def rest_is_blank(k: int) -> bool:
        return all(not lines[j].strip() for j in range(k, n))

    skills: list[np.ndarray] = []
    responses: list[np.ndarray] = []
    student_ids: list[str] = []
    max_id = 0
    block = 0
    i = 0
    while i < n:
        line = lines[i].strip()
        if not line:
            i += 1
            continue
        count_ln = i + 1
        if not _COUNT_LINE.fullmatch(line):
            raise DataError(p, "expected the number of interactions (an integer) at the start of a "
                               f"student's block, found {_show(line)}", count_ln)
        count = int(line.rstrip(",").strip())
        if count < 0:
            raise DataError(p, f"the number of interactions cannot be negative ({count})", count_ln)
        block += 1
        if count == 0:
            # A student with no interactions: skip the (empty) id and response lines if present.
            j = i + 1
            for _ in range(2):
                if j < n and not lines[j].strip().strip(",").strip():
                    j += 1
                elif j < n and "," in lines[j]:
                    raise DataError(p, f"the count on line {count_ln} is 0 but this line holds values", j + 1)
                else:
                    break
            i = j
            continue
        # skill-id line and response line follow directly
        if i + 1 >= n or (not lines[i + 1].strip() and rest_is_blank(i + 1)):
            raise truncated(count_ln, "skill-id")
        if i + 2 >= n or (not lines[i + 2].strip() and rest_is_blank(i + 2)):
            raise truncated(count_ln, "response")
        id_ln, resp_ln = i + 2, i + 3
        id_tokens = _tokens(lines[i + 1])
        resp_tokens = _tokens(lines[i + 2])
        if not id_tokens:
            raise DataError(p, f"expected {count} skill ids (the count on line {count_ln}), "
                               "found an empty line", id_ln)
        if not resp_tokens:
            raise DataError(p, f"expected {count} responses (the count on line {count_ln}), "
                               "found an empty line", resp_ln)
        if len(id_tokens) != len(resp_tokens):
            raise DataError(p, f"{len(resp_tokens)} responses but line {id_ln} has {len(id_tokens)} "
                               "skill ids (they must have the same length)", resp_ln)
        if len(id_tokens) != count:
            raise DataError(p, f"the count says {count} interactions but lines {id_ln}-{resp_ln} "
                               f"hold {len(id_tokens)}", count_ln)
        ids = _parse_ints(id_tokens, p, id_ln, "skill id")
        _check_ids(ids, p, id_ln, 1, skill_vocab)
        r = _parse_responses(resp_tokens, p, resp_ln)
        max_id = max(max_id, int(ids.max()))
        skills.append(ids - 1)
        responses.append(r)
        student_ids.append(str(block))
        i += 3

    if not skills:
        raise _empty_error(p)
    if skill_vocab is not None:
        labels = [str(v) for v in skill_vocab]
    else:
        labels = [str(k) for k in range(1, max_id + 1)]
    return KTDataset(skills, responses, student_ids, len(labels), labels, list(labels), source=str(p))


# --------------------------------------------------------------------------- pyKT

_PYKT_REQUIRED = ("uid", "concepts", "responses")


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
    width = len(header)

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
            c, r = c[keep], r[keep]
            if c.size == 0:
                continue
            _check_ids(c, p, ln, 0, skill_vocab)
            bad = (r != 0) & (r != 1)
            if bad.any():
                raise DataError(p, f"response {int(r[np.flatnonzero(bad)[0]])} is not 0 or 1", ln)
            max_id = max(max_id, int(c.max()))
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
    return KTDataset(skills, responses, student_ids, len(labels), labels, list(labels), source=str(p))


# --------------------------------------------------------------------------- long log

_STUDENT_COLS = ("user_id", "student_id", "student", "uid", "studentid", "anon_student_id", "userid")
_SKILL_ID_COLS = ("skill_id", "concept_id", "kc_id", "skill", "concept", "kc", "kc(default)",
                  "skill_name", "concept_name", "kc_name")
_SKILL_NAME_COLS = ("skill_name", "concept_name", "kc_name")
_CORRECT_COLS = ("correct", "response", "responses", "is_correct", "answer", "correct_first_attempt")
_ORDER_COLS = ("order_id", "order", "timestamp", "time", "start_time", "ms_first_response", "step",
               "first_transaction_time", "log_id")

_TRUE = {"1", "1.0", "true", "t", "yes"}
_FALSE = {"0", "0.0", "false", "f", "no"}


def _norm_col(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def _find_col(norm: dict[str, str], candidates) -> str | None:
    for c in candidates:
        if c in norm:
            return norm[c]
    return None


@dataclass
class _LongParsed:
    path: Path
    student_ids: list[str]
    bounds: np.ndarray          # student k owns rows bounds[k]:bounds[k+1] (in sorted order)
    row_labels: np.ndarray      # object array of normalised skill labels, sorted order
    row_lines: np.ndarray       # file line of each row, sorted order
    responses: np.ndarray       # int64, sorted order
    numeric: bool               # all skill labels are integers
    names: dict[str, str]       # label -> display name (from a skill-name column)
    notes: list[str] = field(default_factory=list)


def _parse_long(path) -> _LongParsed:
    p = _check_file(path)
    text = _read_text(p)
    header_line, first = next(((k + 1, ln) for k, ln in enumerate(text.split("\n", 1000)[:1000])
                               if ln.strip()), (1, ""))
    sep = "\t" if ("\t" in first and "," not in first) else ","
    opts = dict(sep=sep, skiprows=header_line - 1)
    try:
        head = pd.read_csv(io.StringIO(text), nrows=0, **opts)
        norm = {}
        for c in head.columns:
            norm.setdefault(_norm_col(c), c)
        found = ", ".join(str(c) for c in head.columns)
        scol = _find_col(norm, _STUDENT_COLS)
        kcol = _find_col(norm, _SKILL_ID_COLS)
        ccol = _find_col(norm, _CORRECT_COLS)
        for col, role, cands in ((scol, "student", _STUDENT_COLS), (kcol, "skill", _SKILL_ID_COLS),
                                 (ccol, "correct/response", _CORRECT_COLS)):
            if col is None:
                raise DataError(p, f"no {role} column: expected one of {', '.join(cands)} "
                                   f"(found: {found})", header_line)
        ncol = _find_col(norm, _SKILL_NAME_COLS)
        if ncol == kcol:
            ncol = None
        ocol = _find_col(norm, _ORDER_COLS)
        usecols = [c for c in dict.fromkeys((scol, kcol, ccol, ncol, ocol)) if c is not None]
        df = pd.read_csv(io.StringIO(text), usecols=usecols, dtype=str, keep_default_na=False,
                         skip_blank_lines=False, **opts)
    except pd.errors.EmptyDataError:
        raise DataError(p, "file is empty") from None
    except pd.errors.ParserError as e:
        msg = re.sub(r"^Error tokenizing data\. C error: ", "", str(e)).strip()
        m = re.search(r"line (\d+)", msg)
        line = int(m.group(1)) if m else None
        m = re.search(r"string starting at row (\d+)", msg)
        if m:  # row 0 is the header
            line = int(m.group(1)) + header_line
            msg = f"a quoted field is never closed (it starts on line {line})"
        raise DataError(p, f"malformed CSV: {msg}", line) from None

    lines = np.arange(len(df), dtype=np.int64) + header_line + 1
    # drop blank rows (skip_blank_lines=False keeps them so that line numbers stay right)
    nonblank = np.zeros(len(df), dtype=bool)
    for c in usecols:
        nonblank |= df[c].str.strip().ne("").to_numpy()
    df = df.loc[nonblank].reset_index(drop=True)
    lines = lines[nonblank]
    if len(df) == 0:
        raise DataError(p, "no data rows after the header", header_line)

    notes: list[str] = []
    student = df[scol].astype(str).str.strip().to_numpy(dtype=object)
    skill = df[kcol].astype(str).str.strip().to_numpy(dtype=object)
    correct = df[ccol].astype(str).str.strip().str.lower().to_numpy(dtype=object)

    empty_student = student == ""
    if empty_student.any():
        k = int(np.flatnonzero(empty_student)[0])
        raise DataError(p, f"empty student id (column {scol})", int(lines[k]))

    no_skill = skill == ""
    if no_skill.any():
        notes.append(f"dropped {int(no_skill.sum())} rows with no skill (column {kcol})")
        keep = ~no_skill
        df = df.loc[keep].reset_index(drop=True)
        student, skill, correct, lines = student[keep], skill[keep], correct[keep], lines[keep]
        if len(df) == 0:
            raise DataError(p, f"no row has a skill (column {kcol})")

    is_true = pd.Series(correct).isin(_TRUE).to_numpy()
    is_false = pd.Series(correct).isin(_FALSE).to_numpy()
    bad = ~(is_true | is_false)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        v = df[ccol].iloc[k]
        shown = "an empty value" if not str(v).strip() else _show(v)
        raise DataError(p, f"response {shown} (column {ccol}) is not 0 or 1", int(lines[k]))
    resp = is_true.astype(np.int64)

    # skill labels: integers when every value is one (so "7" and "7.0" agree), else strings
    num = pd.to_numeric(pd.Series(skill), errors="coerce").to_numpy(dtype=float)
    numeric = bool(np.isfinite(num).all() and (num == np.round(num)).all() and np.abs(num).max() < 2 ** 53)
    if numeric:
        labels_row = pd.Series(num.astype(np.int64)).astype(str).to_numpy(dtype=object)
    else:
        labels_row = skill

    names: dict[str, str] = {}
    if ncol is not None:
        nm = df[ncol].astype(str).str.strip()
        tmp = pd.DataFrame({"k": labels_row, "n": nm.to_numpy(dtype=object)})
        tmp = tmp[tmp["n"] != ""]
        if len(tmp):
            names = tmp.groupby("k", sort=False)["n"].first().to_dict()

    codes, uniques = pd.factorize(pd.Series(student), sort=False)
    rows = np.arange(len(codes), dtype=np.int64)
    if ocol is not None:
        order_raw = df[ocol].astype(str).str.strip()
        okey = pd.to_numeric(order_raw.replace("", np.nan), errors="coerce")
        nonempty = order_raw.ne("").to_numpy()
        if okey.isna().to_numpy()[nonempty].any():
            dt = pd.to_datetime(order_raw.replace("", np.nan), errors="coerce", format="mixed")
            if dt.isna().to_numpy()[nonempty].any():
                okey = order_raw.replace("", np.nan)  # plain string order
            else:
                okey = dt
        tmp = pd.DataFrame({"s": codes, "o": okey.to_numpy(), "r": rows})
        perm = tmp.sort_values(["s", "o"], kind="stable", na_position="last")["r"].to_numpy()
    else:
        perm = np.argsort(codes, kind="stable")
    s_sorted = codes[perm]
    same = s_sorted[1:] == s_sorted[:-1]
    moved = same & (np.diff(perm) < 0)
    if ocol is not None and moved.any():
        notes.append(f"sorted {len(np.unique(s_sorted[1:][moved]))} students by {ocol}")
    bounds = np.concatenate([[0], np.flatnonzero(~same) + 1, [len(perm)]])
    return _LongParsed(p, [str(u) for u in uniques], bounds, labels_row[perm], lines[perm],
                       resp[perm], numeric, names, notes)


def _long_labels(parsed: list[_LongParsed]) -> list[str]:
    labels = set()
    for lp in parsed:
        labels.update(pd.unique(lp.row_labels).tolist())
    if all(lp.numeric for lp in parsed):
        return [str(v) for v in sorted(int(x) for x in labels)]
    return sorted(str(x) for x in labels)


def _build_long(lp: _LongParsed, labels: list[str], from_model: bool) -> KTDataset:
    index = pd.Index(labels, dtype=object)
    if not index.is_unique:
        dup = index[index.duplicated()][0]
        raise ValueError(f"skill_vocab lists {dup!r} more than once")
    codes = index.get_indexer(lp.row_labels).astype(np.int64)
    unknown = codes < 0
    if unknown.any():
        k = int(np.flatnonzero(unknown)[0])
        if from_model:
            raise DataError(lp.path, f"skill {_show(lp.row_labels[k])} is not one the model knows "
                                     f"(it has {len(labels)} skills)", int(lp.row_lines[k]))
        raise DataError(lp.path, f"skill {_show(lp.row_labels[k])} is not in the skill list",
                        int(lp.row_lines[k]))  # pragma: no cover - labels come from the data
    b = lp.bounds
    skills = [codes[b[k]:b[k + 1]] for k in range(len(b) - 1)]
    responses = [lp.responses[b[k]:b[k + 1]] for k in range(len(b) - 1)]
    names = [lp.names.get(lab, lab) for lab in labels]
    return KTDataset(skills, responses, list(lp.student_ids), len(labels), list(labels), names,
                     source=str(lp.path), notes=list(lp.notes))


def read_long(path, skill_vocab=None) -> KTDataset:
    """Read a long interaction log (one row per interaction) with pandas."""
    lp = _parse_long(path)
    if skill_vocab is not None:
        return _build_long(lp, [str(v) for v in skill_vocab], True)
    return _build_long(lp, _long_labels([lp]), False)


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
    """Sniff the first non-blank line: 'three_line', 'pykt' or 'long'."""
    p = _check_file(path)
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


_READERS = {"three_line": read_three_line, "pykt": read_pykt, "long": read_long}


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
            labels, from_model = _long_labels(list(parsed.values())), False
        merged_names: dict[str, str] = {}
        for lp in parsed.values():
            for k, v in lp.names.items():
                merged_names.setdefault(k, v)
        for key, lp in parsed.items():
            lp.names = merged_names
            out[key] = _build_long(lp, labels, from_model)
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
