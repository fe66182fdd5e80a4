"""A long interaction log, parsed: the column names every reader looks for, the parsed rows of one
file (LongParsed), and the data set built from them. Shared by the pandas reader (longlog.py)
and the columnar one (columnar.py)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cmkt.data._common import _show
from cmkt.data.dataset import KTDataset
from cmkt.errors import DataError

STUDENT_COLS = ("user_id", "student_id", "student", "uid", "studentid", "anon_student_id", "userid")
SKILL_ID_COLS = ("skill_id", "concept_id", "kc_id", "skill", "concept", "kc", "kc(default)",
                  "skill_name", "concept_name", "kc_name")
SKILL_NAME_COLS = ("skill_name", "concept_name", "kc_name")
CORRECT_COLS = ("correct", "response", "responses", "is_correct", "answer", "correct_first_attempt")
ORDER_COLS = ("order_id", "order", "timestamp", "time", "start_time", "ms_first_response", "step",
               "first_transaction_time", "log_id")

TRUE_WORDS = {"1", "1.0", "true", "t", "yes"}
FALSE_WORDS = {"0", "0.0", "false", "f", "no"}


def norm_col(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def find_col(norm: dict[str, str], candidates) -> str | None:
    for c in candidates:
        if c in norm:
            return norm[c]
    return None


@dataclass
class LongParsed:
    path: Path
    student_ids: list[str]
    bounds: np.ndarray          # student k owns rows bounds[k]:bounds[k+1] (in sorted order)
    row_labels: np.ndarray      # object array of normalised skill labels, sorted order
    row_lines: np.ndarray       # file line of each row, sorted order
    responses: np.ndarray       # int64, sorted order
    numeric: bool               # all skill labels are integers
    names: dict[str, str]       # label -> display name (from a skill-name column)
    notes: list[str] = field(default_factory=list)


def long_labels(parsed: list[LongParsed]) -> list[str]:
    labels = set()
    for lp in parsed:
        labels.update(pd.unique(lp.row_labels).tolist())
    if all(lp.numeric for lp in parsed):
        return [str(v) for v in sorted(int(x) for x in labels)]
    return sorted(str(x) for x in labels)


def build_long(lp: LongParsed, labels: list[str], from_model: bool) -> KTDataset:
    index = pd.Index(labels, dtype=object)
    if not index.is_unique:
        dup = index[index.duplicated()][0]
        raise ValueError(f"skill_vocab lists {dup!r} more than once")
    codes = index.get_indexer(lp.row_labels).astype(np.int64)
    unknown = codes < 0
    if unknown.any():
        k = int(np.flatnonzero(unknown)[0])
        if from_model:
            raise DataError(lp.path, f"skill {_show(lp.row_labels[k])} is not one the model knows "
                                     f"(it has {len(labels)} skills)", int(lp.row_lines[k]))
        raise DataError(lp.path, f"skill {_show(lp.row_labels[k])} is not in the skill list",
                        int(lp.row_lines[k]))  # pragma: no cover - labels come from the data
    b = lp.bounds
    skills = [codes[b[k]:b[k + 1]] for k in range(len(b) - 1)]
    responses = [lp.responses[b[k]:b[k + 1]] for k in range(len(b) - 1)]
    names = [lp.names.get(lab, lab) for lab in labels]
    return KTDataset(skills, responses, list(lp.student_ids), len(labels), list(labels), names,
                     source=str(lp.path), notes=list(lp.notes))
