"""Turn a --data spec (sim, a file, a folder with train.csv/test.csv) into data sets."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cmkt.data.dataset import KTDataset, check_compatible, train_valid_split
from cmkt.errors import DataError


@dataclass
class DataSplits:
    """train/valid carved from the training data; test when the source has one."""

    name: str
    train: KTDataset
    valid: KTDataset
    test: KTDataset | None
    num_skills: int
    skill_labels: list
    skill_names: list


def parse_sim_spec(spec: str, students: int = 300, skills: int = 12, seed: int = 0) -> dict:
    """'sim' or 'sim:students=500,skills=20,seed=3'."""
    opts = {"students": students, "skills": skills, "seed": seed}
    if ":" in spec:
        for part in spec.split(":", 1)[1].split(","):
            if not part.strip():
                continue
            key, _, value = part.partition("=")
            key = key.strip()
            if key not in ("students", "skills", "seed", "min_len", "max_len"):
                raise DataError(spec, f"unknown sim option {key!r} (students, skills, seed, min_len, max_len)")
            try:
                opts[key] = int(value)
            except ValueError:
                raise DataError(spec, f"sim option {key} needs a whole number, got {value!r}") from None
    return opts


def is_sim(spec: str) -> bool:
    return spec == "sim" or spec.startswith("sim:")


def data_name(spec: str) -> str:
    if is_sim(spec):
        return "sim"
    p = Path(spec)
    return (p.name if p.is_dir() else p.stem) or "data"


def _sim(spec: str, split: str, students: int, skills: int, seed: int) -> KTDataset:
    from cmkt.data.sim import SimConfig, simulate
    opts = parse_sim_spec(spec, students, skills, seed)
    try:
        return simulate(SimConfig(**opts), split=split)
    except ValueError as e:
        raise DataError(spec, str(e)) from None


def _unify(*sets: KTDataset | None) -> list[KTDataset | None]:
    """Put data sets into one skill space (the largest)."""
    present = [d for d in sets if d is not None]
    top = max(present, key=lambda d: d.num_skills)
    return [None if d is None else (d if d.num_skills == top.num_skills else
            d.with_num_skills(top.num_skills, top.skill_labels, top.skill_names)) for d in sets]


# the last data read, with what it was read from (spec, options, and every file's size and time):
# `cmkt train` reads its data to check it before it makes the run folder, then trains on it; the
# second read (about 1 s of ASSIST2015's 26 s quick one-epoch command) is this copy
_LAST: list = [None, None]


def _signature(spec: str, *options) -> tuple | None:
    """What a read of spec depends on; None if it cannot be told (then nothing is reused)."""
    if is_sim(spec):
        return (spec, *options)
    path = Path(spec)
    try:
        files = sorted(path.iterdir()) if path.is_dir() else [path]
        stats = [(f.name, f.stat()) for f in files if f.is_file()]
        return (data_name(spec), str(path.resolve()), *options,
                tuple((name, st.st_size, st.st_mtime_ns) for name, st in stats))
    except OSError:
        return None


def load_training_data(spec: str, valid_fraction: float = 0.2, seed: int = 0,
                       sim_students: int = 300, sim_skills: int = 12) -> DataSplits:
    """The data a training run uses: train (minus a seeded validation split), valid, test.
    A second read of unchanged files with the same options returns the same splits (read-only)."""
    sig = _signature(spec, valid_fraction, seed, sim_students, sim_skills)
    if sig is not None and _LAST[0] == sig:
        return _LAST[1]
    splits = _read_training_data(spec, valid_fraction, seed, sim_students, sim_skills)
    _LAST[:] = [sig, splits] if sig is not None else [None, None]
    return splits


def _read_training_data(spec: str, valid_fraction: float, seed: int, sim_students: int,
                        sim_skills: int) -> DataSplits:
    from cmkt.data.readers import load_folder, read_data
    if is_sim(spec):
        full = _sim(spec, "train", sim_students, sim_skills, seed)
        test = _sim(spec, "test", sim_students, sim_skills, seed)
    else:
        path = Path(spec)
        if path.is_dir():
            parts = load_folder(path)
            if "train" not in parts:
                raise DataError(path, "training needs a train.csv in the folder")
            full, test = parts["train"], parts.get("test")
        elif path.exists():
            full, test = read_data(path), None
        else:
            raise DataError(path, "no such file or folder (use 'sim' for the built-in simulated students)")
    if len(full) < 2:
        raise DataError(spec, f"training needs at least 2 students, found {len(full)}")
    full, test = _unify(full, test)
    train, valid = train_valid_split(full, valid_fraction, seed)
    return DataSplits(data_name(spec), train, valid, test, full.num_skills,
                      list(full.skill_labels), list(full.skill_names))


def load_eval_data(spec: str, split: str | None = None, skill_labels: list | None = None,
                   num_skills: int | None = None, valid_fraction: float = 0.2, seed: int = 0,
                   sim_students: int = 300, sim_skills: int = 12) -> KTDataset:
    """The data to score a trained model on. On a folder (or sim), `split` picks
    test (default), valid or train; on a file the whole file is scored.
    skill_labels (the model's) keep skill ids consistent with training."""
    from cmkt.data.readers import load_folder, read_data
    split = split or "test"
    if split not in ("test", "valid", "train"):
        raise DataError(spec, f"unknown split {split!r} (test, valid or train)")
    if is_sim(spec):
        if split == "test":
            ds = _sim(spec, "test", sim_students, sim_skills, seed)
        else:
            tr, va = train_valid_split(_sim(spec, "train", sim_students, sim_skills, seed), valid_fraction, seed)
            ds = tr if split == "train" else va
    else:
        path = Path(spec)
        if path.is_dir():
            parts = load_folder(path, skill_vocab=skill_labels)
            if split == "test":
                if "test" not in parts:
                    raise DataError(path, "no test.csv in this folder (use --split train or valid)")
                ds = parts["test"]
            else:
                if "train" not in parts:
                    raise DataError(path, "no train.csv in this folder")
                tr, va = train_valid_split(parts["train"], valid_fraction, seed)
                ds = tr if split == "train" else va
        elif path.exists():
            ds = read_data(path, skill_vocab=skill_labels)
        else:
            raise DataError(path, "no such file or folder (use 'sim' for the built-in simulated students)")
    if num_skills is not None:
        check_compatible(ds, num_skills, spec)
        if ds.num_skills < num_skills:
            ds = ds.with_num_skills(num_skills, skill_labels, None)
    return ds
