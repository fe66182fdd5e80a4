"""Seeded simulated students whose true per-skill mastery is known at every step.

A BKT-style continuous model: each skill has a prior, a learn rate, a guess and a slip
probability; each student has an ability that shifts their priors and learn rates.
Practising skill k moves its mastery toward 1 by learn * (1 - m) (a little more after a
correct answer); P(correct) = guess + (1 - guess - slip) * m. Skills are practised in
blocks, following a curriculum order, with occasional review of an earlier skill.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmkt.data.dataset import KTDataset

SKILL_NAMES = [
    "Counting", "Addition", "Subtraction", "Multiplication", "Division", "Fractions",
    "Decimals", "Percentages", "Ratios", "Negative numbers", "Exponents",
    "Order of operations", "Linear equations", "Inequalities", "Linear functions",
    "Area", "Perimeter", "Angles", "Pythagorean theorem", "Probability",
    "Mean and median", "Reading graphs", "Scientific notation", "Square roots",
]


@dataclass
class SimConfig:
    """Simulator settings: the same config and seed give the same data on any machine."""

    students: int = 300
    skills: int = 12
    min_len: int = 20
    max_len: int = 120
    seed: int = 0


def skill_names(k: int) -> list[str]:
    return [SKILL_NAMES[i] if i < len(SKILL_NAMES) else f"Skill {i + 1}" for i in range(k)]


def simulate(cfg: SimConfig | None = None, split: str = "train", **kwargs) -> KTDataset:
    """Simulated students as a KTDataset with true_mastery (after each step) filled in.
    The skills (and their parameters) depend on the seed only; `split` draws a different,
    disjoint-by-construction cohort of students over the same skills ("train", "test")."""
    cfg = cfg or SimConfig(**kwargs)
    S, K = cfg.students, cfg.skills
    skills, responses, lengths, true = _simulate_arrays(cfg, split, practised_only=False)
    return KTDataset(
        skills=[skills[i, :lengths[i]].copy() for i in range(S)],
        responses=[responses[i, :lengths[i]].copy() for i in range(S)],
        student_ids=_student_ids(S, split),
        num_skills=K,
        skill_labels=[str(i + 1) for i in range(K)],
        skill_names=skill_names(K),
        source=f"sim(students={S}, skills={K}, seed={cfg.seed}, split={split})",
        true_mastery=[true[i, :lengths[i]].copy() for i in range(S)],
    )


def _student_ids(S: int, split: str) -> list[str]:
    return [f"{'S' if split == 'train' else 'T'}{i + 1:04d}" for i in range(S)]


def write_simulated(cfg: SimConfig, split: str, path) -> tuple[Path, int]:
    """simulate(cfg, split) written as a long log (CSV, or Parquet by extension) without building
    the per-student arrays or the full (steps x skills) true mastery: the same rows as
    write_long_csv(simulate(cfg, split), path), at a fraction of the time and memory
    (10M interactions in seconds). Returns (path, number of interactions)."""
    from cmkt.data.columnar import long_table, write_table
    skills, responses, lengths, true = _simulate_arrays(cfg, split, practised_only=True)
    keep = np.arange(skills.shape[1])[None, :] < lengths[:, None]           # row-major: student by student
    table = long_table(_student_ids(cfg.students, split), lengths, skills[keep], responses[keep],
                       [str(i + 1) for i in range(cfg.skills)], skill_names(cfg.skills), true[keep])
    del skills, responses, true, keep
    return write_table(table, path), int(lengths.sum())


def _simulate_arrays(cfg: SimConfig, split: str, practised_only: bool):
    """(skills (S, T), responses (S, T), lengths (S,), true mastery after each step: (S, T, K),
    or (S, T) of the practised skill only when practised_only)."""
    if cfg.students < 1 or cfg.skills < 1 or not (1 <= cfg.min_len <= cfg.max_len):
        raise ValueError("simulate needs students >= 1, skills >= 1 and 1 <= min_len <= max_len")
    rng = np.random.default_rng(cfg.seed)
    S, K, T = cfg.students, cfg.skills, cfg.max_len
    # per skill (from the seed alone)
    difficulty = np.linspace(-1.0, 1.0, K) + rng.normal(0, 0.3, K)      # later skills harder
    prior = 1 / (1 + np.exp(1.2 * difficulty + 0.8))                     # (K,)
    learn = rng.uniform(0.08, 0.25, K)
    guess = rng.uniform(0.1, 0.3, K)
    slip = rng.uniform(0.05, 0.15, K)
    # per student (from the seed and the split)
    rng = np.random.default_rng([cfg.seed, {"train": 0, "test": 1}.get(split, 2)])
    ability = rng.normal(0, 1, S)                                        # (S,)
    m = 1 / (1 + np.exp(-(np.log(prior / (1 - prior))[None, :] + 0.8 * ability[:, None])))  # (S, K)
    rate = np.clip(learn[None, :] * np.exp(0.3 * ability[:, None]), 0.01, 0.6)              # (S, K)
    lengths = rng.integers(cfg.min_len, cfg.max_len + 1, S)

    # curriculum: each student walks the skills in order, blocks of 3..8 steps, 15% review
    skills = np.zeros((S, T), dtype=np.int64)
    current = rng.integers(0, max(1, K // 4), S)
    left = rng.integers(3, 9, S)
    for t in range(T):
        review = rng.random(S) < 0.15
        earlier = (rng.random(S) * (current + 1)).astype(np.int64)
        skills[:, t] = np.where(review, earlier, current)
        left -= 1
        move = left <= 0
        current = np.where(move, np.minimum(current + 1, K - 1), current)
        current = np.where(move & (current == K - 1) & (rng.random(S) < 0.5),
                           rng.integers(0, K, S), current)
        left = np.where(move, rng.integers(3, 9, S), left)

    responses = np.zeros((S, T), dtype=np.int64)
    true = np.zeros((S, T) if practised_only else (S, T, K), dtype=np.float32)
    rows = np.arange(S)
    for t in range(T):
        k = skills[:, t]
        mk = m[rows, k]
        p = guess[k] + (1 - guess[k] - slip[k]) * mk
        r = (rng.random(S) < p).astype(np.int64)
        responses[:, t] = r
        m[rows, k] = mk + rate[rows, k] * (1 - mk) * (0.7 + 0.6 * r)
        true[:, t] = m[rows, k] if practised_only else m
    return skills, responses, lengths, true


def write_long_csv(ds: KTDataset, path) -> Path:
    """Write the long interaction format (student_id, order, skill_id, skill_name, correct
    and, for simulated data, true_mastery of the practised skill after the step), atomically,
    vectorised; Parquet when path ends in .parquet, CSV otherwise."""
    from cmkt.data.columnar import long_table, write_table
    lengths = ds.lengths
    cat = (lambda a: np.concatenate(a) if len(a) else np.zeros(0))
    skills = cat(ds.skills).astype(np.int64)
    tm = None
    if ds.true_mastery is not None:
        tm = cat([m[np.arange(len(s)), s] for m, s in zip(ds.true_mastery, ds.skills)])
    return write_table(long_table(ds.student_ids, lengths, skills, cat(ds.responses), ds.skill_labels,
                                  ds.skill_names, tm), path)
