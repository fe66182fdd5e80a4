"""`cmkt import`: a reference-system model folder or checkpoint into a run folder."""
from __future__ import annotations


def add_parsers(sub) -> None:
    """Not yet built."""


COMMANDS: dict = {}
