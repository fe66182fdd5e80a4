"""Error types shown to users: one clear line naming the file and the problem."""
from __future__ import annotations


class CmktError(Exception):
    """Base class for every error a user can cause (bad files, bad options)."""


class DataError(CmktError):
    """A data file cannot be read: names the file, the line (when known) and the problem."""

    def __init__(self, path, problem: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class CheckpointError(CmktError):
    """A checkpoint or run folder cannot be loaded (corrupt, foreign, mismatched)."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class RunError(CmktError):
    """A run folder problem the user can fix (bad name, missing run, run still active)."""


class Diverged(CmktError):
    """Raised when the loss or the validation predictions stop being finite numbers."""


class Cancelled(Exception):
    """Raised inside training when a callback (cancel file, SIGTERM, the dashboard) asks it to stop."""
