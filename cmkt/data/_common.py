"""Helpers shared by the readers of every format: decoding, tokens, integers, skill ids.

Every problem raises :class:`cmkt.errors.DataError` naming the file and, where there is
one, the line.
"""
from __future__ import annotations

import codecs
import re
from pathlib import Path

import numpy as np

from cmkt.errors import DataError

MAX_SKILL_ID = 1_000_000

# A comma-separated list of plain ASCII integers (no "1_000", no "1.0", no unicode digits).
_INT_LIST = re.compile(r"\s*[+-]?[0-9]+\s*(?:,\s*[+-]?[0-9]+\s*)*", re.ASCII)
_INT = re.compile(r"\s*[+-]?[0-9]+\s*", re.ASCII)
_COUNT_LINE = re.compile(r"[+-]?[0-9]+\s*,?", re.ASCII)


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


def _empty_error(path):
    return DataError(path, "the file holds no interactions")
