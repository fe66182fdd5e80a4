"""API keys: `--keys FILE` or the CMKT_API_KEYS environment variable.

One key per line, optionally followed by the student-id prefixes it may read and write:

    k-admin                 # every student
    k-north north- n2-      # only students whose id starts with north- or n2-

Blank lines and # comments are skipped; in CMKT_API_KEYS, `;` also separates lines. A request
without a known key gets 401, one with a key for a student outside its prefixes 403. Keys are
compared in constant time and never logged or shown: a Key's repr hides it.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

from cmkt.errors import CmktError

ENV = "CMKT_API_KEYS"
MIN_KEY_CHARS = 8


@dataclass(frozen=True)
class Key:
    secret: str = field(repr=False)
    prefixes: tuple[str, ...] = ()
    line: int = 0

    def allows(self, student: str) -> bool:
        return not self.prefixes or any(student.startswith(p) for p in self.prefixes)

    @property
    def fingerprint(self) -> str:
        """A short, non-reversible name of the key, safe to show."""
        return hashlib.sha256(self.secret.encode()).hexdigest()[:8]


class KeyRing:
    def __init__(self, keys: list[Key], source: str):
        self.keys = keys
        self.source = source

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return f"KeyRing({len(self.keys)} keys from {self.source})"

    def find(self, token: str | None) -> Key | None:
        """The key matching a bearer token (every key compared, in constant time)."""
        if not token:
            return None
        given = token.encode()
        found = None
        for k in self.keys:
            if hmac.compare_digest(k.secret.encode(), given):
                found = k
        return found


def parse_keys(text: str, source: str) -> KeyRing:
    keys, seen = [], set()
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        secret, *prefixes = line.split()
        if len(secret) < MIN_KEY_CHARS:
            raise CmktError(f"{source}, line {no}: a key needs at least {MIN_KEY_CHARS} characters")
        if secret in seen:
            raise CmktError(f"{source}, line {no}: the same key is given twice")
        seen.add(secret)
        keys.append(Key(secret, tuple(prefixes), no))
    if not keys:
        raise CmktError(f"{source}: no API keys in it (one key per line, optionally followed by "
                        "student-id prefixes)")
    return KeyRing(keys, source)


def load_keys(path: str | None = None, environ=None) -> KeyRing:
    """The keys of --keys FILE, else of $CMKT_API_KEYS; CmktError when there are none."""
    environ = os.environ if environ is None else environ
    if path:
        p = Path(path)
        if not p.is_file():
            raise CmktError(f"--keys {path}: no such file")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise CmktError(f"--keys {path}: cannot read it ({type(e).__name__})") from None
        return parse_keys(text, f"--keys {path}")
    env = environ.get(ENV)
    if env:
        return parse_keys(env.replace(";", "\n"), ENV)
    raise CmktError(f"no API keys: give --keys FILE or set {ENV} (one key per line, optionally followed by "
                    "the student-id prefixes it may read and write)")
