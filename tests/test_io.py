"""Atomic writes honour the umask like a plain open() (mkstemp alone would make every file 0600)."""
from __future__ import annotations

import os
import stat

import pytest

from cmkt.io import atomic_target, write_json_atomic, write_text_atomic


@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)

    def set_umask(mask):
        os.umask(mask)
    yield set_umask
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600), (0o027, 0o640)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    paths = [write_text_atomic(tmp_path / "a.txt", "x"), write_json_atomic(tmp_path / "b.json", {"a": 1})]
    with atomic_target(tmp_path / "c.csv") as tmp:
        tmp.write_text("x")
    paths.append(tmp_path / "c.csv")
    write_text_atomic(tmp_path / "a.txt", "rewritten")                    # replacing keeps the mode too
    for p in paths + [plain]:
        assert stat.S_IMODE(p.stat().st_mode) == mode, (p.name, oct(p.stat().st_mode))
