"""Long interaction logs: one row per interaction (ASSISTments-style exports), read with pandas."""
from __future__ import annotations

import csv
import io
import re

import numpy as np
import pandas as pd

from cmkt.data._common import _check_file, _read_text, _show
import cmkt.data.columnar as columnar
from cmkt.data.dataset import KTDataset
from cmkt.data.longparsed import (CORRECT_COLS, FALSE_WORDS, ORDER_COLS, SKILL_ID_COLS, SKILL_NAME_COLS,
                                  STUDENT_COLS, TRUE_WORDS, LongParsed, build_long, find_col, long_labels, norm_col)
from cmkt.errors import DataError

__all__ = ["read_long"]


def _record_lines(text: str, header_line: int, n_records: int, sep: str) -> np.ndarray:
    """The file line each data record starts on. One record per line after the header, unless
    a quoted field holds a line break: then the records are counted with the csv module."""
    n_lines = text.count("\n") + (0 if text.endswith("\n") else 1) - header_line
    if n_lines == n_records or '"' not in text:
        return np.arange(n_records, dtype=np.int64) + header_line + 1
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    starts = []
    start = 1
    for k, _ in enumerate(reader):
        if k >= header_line:      # the lines before the header and the header itself are one record each
            starts.append(start)
        start = reader.line_num + 1
    if len(starts) < n_records:  # pragma: no cover - pandas and csv disagree; best effort
        starts += [starts[-1] if starts else header_line + 1] * (n_records - len(starts))
    return np.asarray(starts[:n_records], dtype=np.int64)


def _parse_long(path) -> LongParsed:
    p = _check_file(path)
    fast = columnar.parse_long_csv_fast(p)           # large clean files: pyarrow.csv, columnar
    if fast is not None:
        return fast
    text = _read_text(p)
    header_line, first = next(((k + 1, ln) for k, ln in enumerate(text.split("\n", 1000)[:1000])
                               if ln.strip()), (1, ""))
    sep = "\t" if ("\t" in first and "," not in first) else ","
    opts = dict(sep=sep, skiprows=header_line - 1)
    try:
        head = pd.read_csv(io.StringIO(text), nrows=0, **opts)
        norm = {}
        for c in head.columns:
            norm.setdefault(norm_col(c), c)
        found = ", ".join(str(c) for c in head.columns)
        scol = find_col(norm, STUDENT_COLS)
        kcol = find_col(norm, SKILL_ID_COLS)
        ccol = find_col(norm, CORRECT_COLS)
        for col, role, cands in ((scol, "student", STUDENT_COLS), (kcol, "skill", SKILL_ID_COLS),
                                 (ccol, "correct/response", CORRECT_COLS)):
            if col is None:
                raise DataError(p, f"no {role} column: expected one of {', '.join(cands)} "
                                   f"(found: {found})", header_line)
        ncol = find_col(norm, SKILL_NAME_COLS)
        if ncol == kcol:
            ncol = None
        ocol = find_col(norm, ORDER_COLS)
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
        if m:  # pandas counts rows from the first line of the file, 0-based
            line = int(m.group(1)) + 1
            msg = f"a quoted field is never closed (it starts on line {line})"
        raise DataError(p, f"malformed CSV: {msg}", line) from None

    lines = _record_lines(text, header_line, len(df), sep)
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

    is_true = pd.Series(correct).isin(TRUE_WORDS).to_numpy()
    is_false = pd.Series(correct).isin(FALSE_WORDS).to_numpy()
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
    return LongParsed(p, [str(u) for u in uniques], bounds, labels_row[perm], lines[perm],
                       resp[perm], numeric, names, notes)


def read_long(path, skill_vocab=None) -> KTDataset:
    """Read a long interaction log (one row per interaction) with pandas."""
    lp = _parse_long(path)
    if skill_vocab is not None:
        return build_long(lp, [str(v) for v in skill_vocab], True)
    return build_long(lp, long_labels([lp]), False)
