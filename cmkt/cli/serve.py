"""`cmkt serve`: a trained run's mastery over HTTP."""
from __future__ import annotations


def add_parsers(sub) -> None:
    """Not yet built."""


COMMANDS: dict = {}
