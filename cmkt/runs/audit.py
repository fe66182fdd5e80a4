"""Audit-ready predictions: a run's predictions in the data contract of the `kt-audit` package.

    python -m cmkt export RUN --data D --all --format kt-audit --out F.csv
    kt-audit run F.csv --out audit/

Columns: user_id, timestamp, split, kc_ids, y_true, y_pred, one row per scored step.

- Which steps: every step t >= 2 of every student. cmkt makes no prediction for a student's first
  step (DESIGN.md: predictions are scored from t = 2), so that step is not written (nor, for an
  imported pyKT model that scores windows afresh, the first step of each window); the test rows
  are then exactly the steps `cmkt validate` scores, and kt-audit's test AUC is cmkt's.
- Splits: on sim or a folder with train.csv / test.csv, the training students are written as
  `train`, the validation students the run held out of them (its seed and valid_fraction) as
  `valid`, and the test students as `test` (a folder without test.csv has no test rows). A single
  file is scored whole, as `validate` scores it, and written as one split, `test`; kt-audit then
  has no training rows and skips its cheap baseline (it says so in its report).
- timestamp: the step number within the student, counted on across the splits (train, then
  valid, then test), so a student's timestamps are strictly increasing, no (user, timestamp)
  repeats, and every training step comes before the student's evaluation steps.
- kc_ids: the skill label as a string; a label that reads as a number is prefixed `kc` (kt-audit
  refuses a column of bare integers), and a `|` inside a label (kt-audit's separator) becomes `/`.
- y_true is the response (0/1), y_pred the predicted P(correct) (9 significant digits, which
  round-trips float32 exactly), every row including train.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from cmkt.errors import CmktError

COLUMNS = ("user_id", "timestamp", "split", "kc_ids", "y_true", "y_pred")
CHUNK_STUDENTS = 2048


def kc_id(label) -> str:
    """A skill label kt-audit reads as a string (never a bare number) and as one KC."""
    s = str(label).strip().replace("|", "/") or "?"
    try:
        float(s)
    except ValueError:
        return s
    return f"kc{s}"


def audit_splits(data: str) -> list[str | None]:
    """The splits written for data: sim and folders train/valid(/test), a file itself (None)."""
    from cmkt.data.source import is_sim
    if is_sim(data):
        return ["train", "valid", "test"]
    p = Path(data)
    if p.is_dir():
        out = ["train", "valid"] if (p / "train.csv").exists() else []
        if (p / "test.csv").exists():
            out.append("test")
        if not out:
            raise CmktError(f"{data}: no train.csv or test.csv in this folder")
        return out
    return [None]


def audit_frame(traj, skill_labels, split: str, base: dict) -> pd.DataFrame:
    """The kt-audit rows of one scored chunk (steps t >= 2). base: user -> steps already written
    for that user in earlier splits; updated."""
    lengths = np.diff(traj.offsets)
    keep = np.maximum(lengths - 1, 0)
    start = np.array([base.get(u, 0) for u in traj.student_ids], dtype=np.int64)
    for u, n, b in zip(traj.student_ids, lengths, start):
        base[u] = int(b + n)
    rows = np.repeat(traj.offsets[:-1] + 1, keep) + np.arange(keep.sum()) - np.repeat(np.cumsum(keep) - keep, keep)
    step = rows - np.repeat(traj.offsets[:-1], keep) + 1                    # 2..T
    users = np.repeat(np.array(traj.student_ids, dtype=object), keep)
    ts = np.repeat(start, keep) + step
    if traj.starts is not None:              # a window scored afresh starts without a prediction
        scored = ~traj.starts[rows]
        rows, users, ts = rows[scored], users[scored], ts[scored]
    kc = np.array([kc_id(x) for x in skill_labels], dtype=object)
    return pd.DataFrame({
        "user_id": users,
        "timestamp": ts,
        "split": split,
        "kc_ids": kc[traj.skills[rows]],
        "y_true": traj.responses[rows].astype(np.int64),
        "y_pred": traj.probs[rows].astype(np.float64),
    }, columns=list(COLUMNS))


def export_kt_audit(checkpoint, data: str, out, split: str | None = None,
                    chunk_students: int = CHUNK_STUDENTS, device="cpu", progress=None) -> dict:
    """Score every split of data (or only `split`) and write the kt-audit CSV atomically.
    Returns {"rows", "students", "splits": {split: rows}}."""
    from cmkt.analysis.scoring import score
    from cmkt.runs.checkpoint import load_checkpoint
    from cmkt.runs.evaluate import eval_data_for
    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise CmktError(f"{out}: the kt-audit format is written as CSV; name the file *.csv")
    splits = audit_splits(data)
    if split is not None:
        if split not in splits:
            raise CmktError(f"{data}: has no {split} split to export (it has: "
                            f"{', '.join(s or 'the whole file' for s in splits)})")
        splits = [split]
    model, meta = load_checkpoint(checkpoint, device)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    base: dict = {}
    counts, students = {}, 0
    try:
        header = True
        for sp in splits:
            ds = eval_data_for(meta, data, sp)
            name = sp or "test"
            counts[name] = 0
            students += len(ds)
            step = max(1, int(chunk_students))
            for lo in range(0, len(ds), step):
                sub = ds.subset(range(lo, min(lo + step, len(ds))))
                frame = audit_frame(score(model, sub, device), ds.skill_labels, name, base)
                frame.to_csv(tmp, mode="w" if header else "a", header=header, index=False, float_format="%.9g")
                header = False
                counts[name] += len(frame)
                if progress:
                    progress(name, min(lo + step, len(ds)), len(ds))
        if header:                                   # nothing scored: the header alone
            pd.DataFrame(columns=list(COLUMNS)).to_csv(tmp, index=False)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return {"rows": sum(counts.values()), "students": students, "splits": counts}
