"""Long interaction logs, columnar: Parquet files and a pyarrow.csv fast path for long CSVs.

* ``read_parquet``: a Parquet file with the long-log columns (any of the names the CSV reader
  accepts: ``user_id``/``student_id``, ``skill_id``/``skill_name``, ``correct``, optional
  ``order_id``/``timestamp``...), detected by its magic bytes (``PAR1``).
* ``parse_long_csv_fast``: a clean long CSV (no quotes, no blank lines) parsed by pyarrow.csv
  in C, every check done on whole columns. Anything it does not handle, or any problem found
  (a bad response, an empty student id, ...), returns None and the pandas reader runs instead,
  so every error message (with its file line) is the pandas reader's.
* ``write_long_table``: the long log of a data set, vectorised, as CSV or Parquet (by extension).

Every problem raises :class:`cmkt.errors.DataError` naming the file.
"""
from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cmkt.data.longparsed import (CORRECT_COLS, FALSE_WORDS, ORDER_COLS, SKILL_ID_COLS, SKILL_NAME_COLS,
                                  STUDENT_COLS, TRUE_WORDS, LongParsed, build_long, find_col, long_labels,
                                  norm_col)
from cmkt.errors import DataError

PARQUET_MAGIC = b"PAR1"
FAST_CSV_MIN_BYTES = 1 << 20          # smaller files: the pandas reader is as quick


def is_parquet(path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == PARQUET_MAGIC
    except OSError:
        return False


class _Fallback(Exception):
    """The columnar path does not handle this input: use the pandas reader."""


def _columns(path: Path, names) -> dict:
    norm = {}
    for c in names:
        norm.setdefault(norm_col(c), c)
    found = ", ".join(str(c) for c in names)
    cols = {}
    for key, role, cands in (("student", "student", STUDENT_COLS), ("skill", "skill", SKILL_ID_COLS),
                             ("correct", "correct/response", CORRECT_COLS)):
        cols[key] = find_col(norm, cands)
        if cols[key] is None:
            raise DataError(path, f"no {role} column: expected one of {', '.join(cands)} (found: {found})")
    cols["name"] = find_col(norm, SKILL_NAME_COLS)
    if cols["name"] == cols["skill"]:
        cols["name"] = None
    cols["order"] = find_col(norm, ORDER_COLS)
    return cols


def _strings(col) -> pa.ChunkedArray:
    col = col if isinstance(col, pa.ChunkedArray) else pa.chunked_array([col])
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
        if pa.types.is_floating(col.type):
            # 7.0 -> "7" like the CSV reader's integer labels; other floats keep their digits
            arr = col.to_numpy(zero_copy_only=False)
            if np.isfinite(arr).all() and (arr == np.round(arr)).all():
                col = pa.chunked_array([pa.array(arr.astype(np.int64))])
        col = col.cast(pa.string())
    return pc.utf8_trim_whitespace(col.fill_null(""))


def _parsed_from_table(path: Path, table: pa.Table, cols: dict, lines: np.ndarray | None,
                       strict: bool) -> LongParsed:
    """LongParsed from columns. strict: raise DataError on bad values (Parquet: there is no
    other reader to ask); otherwise _Fallback, and the pandas reader says what is wrong."""
    def fail(msg, k=None):
        if not strict:
            raise _Fallback()
        raise DataError(path, msg, None if lines is None or k is None else int(lines[k]))

    n = table.num_rows
    if n == 0:
        fail("no data rows")
    student = _strings(table[cols["student"]])
    skill = _strings(table[cols["skill"]])
    ccol = table[cols["correct"]]
    if pa.types.is_boolean(ccol.type) or pa.types.is_integer(ccol.type) or pa.types.is_floating(ccol.type):
        vals = ccol.cast(pa.float64()).fill_null(np.nan).to_numpy()
        bad = ~np.isin(vals, (0.0, 1.0))
        resp = (vals == 1.0).astype(np.int64)
        shown = lambda k: repr(str(vals[k]))          # noqa: E731
    else:
        corr = pc.utf8_lower(_strings(ccol))
        is_true = pc.is_in(corr, pa.array(sorted(TRUE_WORDS))).to_numpy(zero_copy_only=False)
        is_false = pc.is_in(corr, pa.array(sorted(FALSE_WORDS))).to_numpy(zero_copy_only=False)
        bad = ~(is_true | is_false)
        resp = is_true.astype(np.int64)
        shown = lambda k: repr(corr[k].as_py()) if corr[k].as_py() else "an empty value"  # noqa: E731
    empty_student = pc.equal(student, "").to_numpy(zero_copy_only=False)
    if empty_student.any():
        fail(f"empty student id (column {cols['student']})", int(np.flatnonzero(empty_student)[0]))
    notes: list[str] = []
    no_skill = pc.equal(skill, "").to_numpy(zero_copy_only=False)
    keep = None
    if no_skill.any():
        notes.append(f"dropped {int(no_skill.sum())} rows with no skill (column {cols['skill']})")
        keep = ~no_skill
        if not keep.any():
            fail(f"no row has a skill (column {cols['skill']})")
    bad_kept = bad & keep if keep is not None else bad
    if bad_kept.any():
        k = int(np.flatnonzero(bad_kept)[0])
        fail(f"response {shown(k)} (column {cols['correct']}) is not 0 or 1", k)
    if keep is not None:
        mask = pa.array(keep)
        student, skill = student.filter(mask), skill.filter(mask)
        resp = resp[keep]
        lines = lines[keep] if lines is not None else None
        table = table.filter(mask)
        n = table.num_rows
    if lines is None:
        lines = np.arange(n, dtype=np.int64) + 2

    # skill labels: integers when every value is one (so "7" and "7.0" agree), else strings
    sk_dict = skill.combine_chunks().dictionary_encode()
    sk_codes = sk_dict.indices.to_numpy(zero_copy_only=False)
    sk_uniques = sk_dict.dictionary.to_numpy(zero_copy_only=False).astype(object)
    try:
        num = pc.cast(sk_dict.dictionary, pa.float64()).to_numpy(zero_copy_only=False)
        numeric = bool(len(num) and np.isfinite(num).all() and (num == np.round(num)).all()
                       and np.abs(num).max() < 2 ** 53)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        numeric = False
    if numeric:
        sk_uniques = np.array([str(v) for v in num.astype(np.int64)], dtype=object)
    labels_row = sk_uniques[sk_codes]

    names: dict[str, str] = {}
    if cols["name"] is not None:
        nm = _strings(table[cols["name"]]).to_numpy(zero_copy_only=False)
        has = nm != ""
        if has.any():
            first = {}
            # first non-empty name of each label, in row order
            idx = np.flatnonzero(has)
            codes_h = sk_codes[idx]
            _, first_pos = np.unique(codes_h, return_index=True)
            for p in first_pos:
                first.setdefault(sk_uniques[codes_h[p]], nm[idx[p]])
            names = {str(k): str(v) for k, v in first.items()}

    st_dict = student.combine_chunks().dictionary_encode()
    codes = st_dict.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    uniques = st_dict.dictionary.to_pylist()
    if cols["order"] is not None:
        ocol = table[cols["order"]]
        if pa.types.is_timestamp(ocol.type) or pa.types.is_date(ocol.type):
            okey = ocol.cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
            okey[~pc.is_valid(ocol).to_numpy(zero_copy_only=False)] = np.nan
        elif pa.types.is_integer(ocol.type) or pa.types.is_floating(ocol.type):
            okey = ocol.cast(pa.float64()).fill_null(np.nan).to_numpy()
        else:
            o = _strings(ocol)
            try:
                okey = pc.cast(pc.if_else(pc.equal(o, ""), pa.scalar(None, pa.string()), o),
                               pa.float64()).fill_null(np.nan).to_numpy()
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                if not strict:
                    raise _Fallback() from None     # dates or names: the pandas reader's rules
                okey = None
        if okey is None:
            o = _strings(ocol).to_numpy(zero_copy_only=False).astype(object)
            import pandas as pd
            perm = pd.DataFrame({"s": codes, "o": np.where(o == "", None, o)}).sort_values(
                ["s", "o"], kind="stable", na_position="last").index.to_numpy()
        else:
            okey = np.where(np.isnan(okey), np.inf, okey)       # missing order last, like pandas
            perm = np.lexsort((okey, codes))
    else:
        perm = np.argsort(codes, kind="stable")
    s_sorted = codes[perm]
    same = s_sorted[1:] == s_sorted[:-1]
    moved = same & (np.diff(perm) < 0)
    if cols["order"] is not None and moved.any():
        notes.append(f"sorted {len(np.unique(s_sorted[1:][moved]))} students by {cols['order']}")
    bounds = np.concatenate([[0], np.flatnonzero(~same) + 1, [len(perm)]])
    return LongParsed(path, [str(u) for u in uniques], bounds, labels_row[perm], lines[perm],
                       resp[perm], numeric, names, notes)


# ---- Parquet -------------------------------------------------------------------------------------

def parse_parquet(path) -> LongParsed:
    import pyarrow.parquet as pq
    p = Path(path)
    if not p.exists():
        raise DataError(p, "file not found")
    try:
        pf = pq.ParquetFile(p)
        cols = _columns(p, pf.schema_arrow.names)
        use = [c for c in dict.fromkeys(cols[k] for k in ("student", "skill", "correct", "name", "order"))
               if c is not None]
        table = pf.read(columns=use)
    except DataError:
        raise
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DataError(p, f"not a readable Parquet file ({str(e).splitlines()[0][:200]})") from None
    # a Parquet row has no file line: messages name the row (1-based) instead
    return _parsed_from_table(p, table, cols, None, strict=True)


def read_parquet(path, skill_vocab=None):
    """Read a long interaction log stored as Parquet."""
    lp = parse_parquet(path)
    if skill_vocab is not None:
        return build_long(lp, [str(v) for v in skill_vocab], True)
    return build_long(lp, long_labels([lp]), False)


# ---- the pyarrow.csv fast path ---------------------------------------------------------------------

def parse_long_csv_fast(path, min_bytes: int | None = None) -> LongParsed | None:
    """A clean long CSV parsed by pyarrow.csv, or None where the pandas reader must run."""
    import pyarrow.csv as pcsv
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError:
        return None
    if size < (FAST_CSV_MIN_BYTES if min_bytes is None else min_bytes):
        return None
    try:
        with open(p, "rb") as f:
            first = f.readline()
            if not first.strip() or first.startswith(b"\xef\xbb\xbf"):
                return None
            sample = first + f.read(1 << 16)
    except OSError:
        return None
    text0 = first.decode("utf-8", errors="strict") if first.isascii() else None
    if text0 is None:
        return None
    sep = "\t" if ("\t" in text0 and "," not in text0) else ","
    names = next(csv.reader(io.StringIO(text0.rstrip("\r\n")), delimiter=sep))
    if len(set(names)) != len(names):
        return None
    try:
        cols = _columns(p, names)
    except DataError:
        return None                               # the pandas reader names the missing column
    if b'"' in sample or b"\r" in sample:
        return None
    use = [c for c in dict.fromkeys(cols[k] for k in ("student", "skill", "correct", "name", "order"))
           if c is not None]
    try:
        table = pcsv.read_csv(
            p, read_options=pcsv.ReadOptions(block_size=1 << 24),
            parse_options=pcsv.ParseOptions(delimiter=sep, quote_char=False, newlines_in_values=False,
                                            ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(include_columns=use, column_types={c: pa.string() for c in use},
                                                strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowException, OSError, UnicodeDecodeError):
        return None
    try:
        return _parsed_from_table(p, table, cols, np.arange(table.num_rows, dtype=np.int64) + 2, strict=False)
    except _Fallback:
        return None


# ---- writing ------------------------------------------------------------------------------------

def long_table(student_ids, lengths, skills, responses, skill_labels, skill_names, true_practised=None) -> pa.Table:
    """The long log as an Arrow table. skills/responses/true_practised: flat arrays, student by
    student (lengths[i] steps each)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    n = int(lengths.sum())
    sid = pa.DictionaryArray.from_arrays(pa.array(np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)),
                                         pa.array([str(s) for s in student_ids]))
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    order = np.arange(n, dtype=np.int64) - starts + 1
    skills = np.asarray(skills, dtype=np.int64)
    labels = list(skill_labels)
    try:
        lab = np.array([int(x) for x in labels], dtype=np.int64)
        skill_col = pa.array(lab[skills])
    except ValueError:
        skill_col = pa.DictionaryArray.from_arrays(pa.array(skills.astype(np.int32)), pa.array(labels))
    name_col = pa.DictionaryArray.from_arrays(pa.array(skills.astype(np.int32)), pa.array(list(skill_names)))
    cols = {"student_id": sid, "order": pa.array(order), "skill_id": skill_col, "skill_name": name_col,
            "correct": pa.array(np.asarray(responses, dtype=np.int64))}
    if true_practised is not None:
        cols["true_mastery"] = pa.array(np.round(np.asarray(true_practised, dtype=np.float64), 6))
    return pa.table(cols)


def write_table(table: pa.Table, path) -> Path:
    """Write an Arrow table as Parquet (.parquet / .pq) or CSV (anything else), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if is_parquet_name(path):
            import pyarrow.parquet as pq
            pq.write_table(table, tmp, compression="zstd")
        else:
            import pyarrow.csv as pcsv
            plain = pa.table({k: (c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c)
                              for k, c in zip(table.column_names, table.columns)})
            for style in ("none", "needed"):       # like csv.writer: quotes only where a value needs them
                try:
                    with open(tmp, "wb") as f:
                        f.write((",".join(plain.column_names) + "\n").encode())
                        pcsv.write_csv(plain, f, pcsv.WriteOptions(include_header=False, quoting_style=style))
                    break
                except pa.ArrowInvalid:
                    continue
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def is_parquet_name(path) -> bool:
    return Path(path).suffix.lower() in (".parquet", ".pq")


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m
