"""The one in-memory dataset type every reader returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cmkt.errors import DataError


@dataclass
class KTDataset:
    """Students with their (skill, response) sequences.

    skills[i]   : int64 array (T_i,), 0-based skill index in [0, num_skills)
    responses[i]: int64 array (T_i,), 0/1
    skill_labels: the external id of each skill index as written in the source files
                  (e.g. "1".."110" for the 1-based three-line files, or a skill name
                  for long logs that only have names)
    skill_names : display name per skill index (from a skill-name file, else the label)
    true_mastery: simulated data only, per student float32 (T_i, num_skills): the
                  simulator's true mastery *after* step t
    """

    skills: list[np.ndarray]
    responses: list[np.ndarray]
    student_ids: list[str]
    num_skills: int
    skill_labels: list[str]
    skill_names: list[str]
    source: str = ""
    true_mastery: list[np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        n = len(self.skills)
        if not (len(self.responses) == len(self.student_ids) == n):
            raise ValueError("skills, responses and student_ids must have the same length")
        if len(self.skill_labels) != self.num_skills or len(self.skill_names) != self.num_skills:
            raise ValueError("skill_labels and skill_names need one entry per skill")
        if self.true_mastery is not None and len(self.true_mastery) != n:
            raise ValueError("true_mastery needs one array per student")

    def __len__(self) -> int:
        return len(self.skills)

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.skills))

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.skills], dtype=np.int64)

    def index_of(self, student_id: str) -> int:
        """Row of a student id; KeyError with a clear message if unknown."""
        try:
            return self.student_ids.index(str(student_id))
        except ValueError:
            raise KeyError(f"unknown student {student_id!r}") from None

    def subset(self, rows) -> "KTDataset":
        """A dataset holding only the given student rows (same skill space)."""
        rows = [int(r) for r in rows]
        return KTDataset(
            skills=[self.skills[r] for r in rows],
            responses=[self.responses[r] for r in rows],
            student_ids=[self.student_ids[r] for r in rows],
            num_skills=self.num_skills,
            skill_labels=list(self.skill_labels),
            skill_names=list(self.skill_names),
            source=self.source,
            true_mastery=None if self.true_mastery is None else [self.true_mastery[r] for r in rows],
            notes=list(self.notes),
        )

    def with_num_skills(self, num_skills: int, skill_labels=None, skill_names=None) -> "KTDataset":
        """The same students in a larger skill space (e.g. the model's)."""
        if num_skills < self.num_skills:
            raise ValueError("cannot shrink the skill space")
        labels = list(skill_labels) if skill_labels is not None else (
            self.skill_labels + [str(i + 1) for i in range(self.num_skills, num_skills)])
        names = list(skill_names) if skill_names is not None else (
            self.skill_names + labels[self.num_skills:])
        tm = None
        if self.true_mastery is not None:
            tm = [np.pad(m, ((0, 0), (0, num_skills - self.num_skills))) for m in self.true_mastery]
        return KTDataset(self.skills, self.responses, self.student_ids, num_skills, labels, names,
                         self.source, tm, list(self.notes))


def train_valid_split(ds: KTDataset, valid_fraction: float = 0.2, seed: int = 0):
    """Seeded split by student: returns (train, valid)."""
    n = len(ds)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_valid = int(round(n * valid_fraction))
    if n >= 2:
        n_valid = min(max(n_valid, 1), n - 1)
    else:
        n_valid = 0
    valid_rows = np.sort(order[:n_valid])
    train_rows = np.sort(order[n_valid:])
    return ds.subset(train_rows), ds.subset(valid_rows)


def check_compatible(ds: KTDataset, num_skills: int, source: str = "") -> None:
    """A data set can be scored by a model only if every skill index is one it knows."""
    top = max((int(s.max()) for s in ds.skills if len(s)), default=-1)
    if top >= num_skills:
        raise DataError(source or ds.source or "data",
                        f"skill index {top} is not one the model knows (it has {num_skills} skills)")
