"""What the commands share: the --data help, number formatting, the metric table, the data a run
was trained on and the split a command scores."""
from __future__ import annotations

import math
from pathlib import Path

from cmkt.errors import CmktError

DATA_HELP = ("'sim' (built-in simulated students), a data file (three-line, pyKT or long CSV), "
             "or a folder with train.csv / test.csv")


def fmt(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:.4f}" if math.isfinite(v) else str(v)
    return str(v)


def metric_table(columns: dict[str, dict]) -> str:
    from cmkt.analysis.metrics import METRIC_EXPLANATIONS
    keys = [k for k in METRIC_EXPLANATIONS if any(k in c for c in columns.values())]
    w = max(len(k) for k in keys)
    names = list(columns)
    cw = [max(12, len(n)) for n in names]
    lines = [" " * w + "  " + "  ".join(n.rjust(c) for n, c in zip(names, cw))]
    for k in keys:
        lines.append(k.ljust(w) + "  " + "  ".join(fmt(columns[n].get(k)).rjust(c) for n, c in zip(names, cw)))
    return "\n".join(lines)


def run_data(checkpoint, meta: dict) -> str:
    """The data a run or checkpoint was trained on (its config.json, else the checkpoint's meta)."""
    from cmkt.runs.folder import read_config
    spec = (meta.get("train_config") or {}).get("data")
    p = Path(checkpoint)
    if p.is_file():
        p = p.parent
    try:
        spec = (read_config(p).get("train") or {}).get("data") or spec
    except CmktError:
        pass
    if not spec:
        raise CmktError(f"{checkpoint}: it does not say what data it was trained on; give --data")
    return str(spec)


def split_used(data: str, split: str | None) -> str | None:
    """The split scored: on sim or a folder the one asked for (default test); a file is scored whole."""
    from cmkt.data.source import is_sim
    return (split or "test") if (is_sim(data) or Path(data).is_dir()) else None
