"""Skill ids used as they are: for models whose skill index is the id written in the data file
(an imported pyKT model: pyKT's concept ids are already its 0-based model indices)."""
from __future__ import annotations

import numpy as np

from cmkt.data.dataset import KTDataset
from cmkt.errors import DataError


def ids_as_indices(ds: KTDataset, num_ids: int, source: str = "") -> KTDataset:
    """The same students with skill index = the integer id of the file (its skill label), in a skill
    space of num_ids. A pyKT file (0-based) is unchanged; a three-line file's id 5 is index 5 (not 4).
    An id that is not a whole number in [0, num_ids) is refused, naming the file."""
    where = source or ds.source or "data"
    ids = np.empty(ds.num_skills, dtype=np.int64)
    for i, label in enumerate(ds.skill_labels):
        try:
            ids[i] = int(str(label).strip())
        except ValueError:
            raise DataError(where, f"skill {label!r} is not a concept id: an imported reference model "
                                   "reads concept ids (whole numbers) as they are") from None
    used = np.unique(np.concatenate([s for s in ds.skills if len(s)])) if ds.n_interactions else ids[:0]
    bad = [int(ids[i]) for i in used if not 0 <= ids[i] < num_ids]
    if bad:
        raise DataError(where, f"concept id {max(bad, key=abs)} is not one the model knows: it has "
                               f"num_c = {num_ids} (ids 0 to {num_ids - 1}, used as they are, never re-indexed)")
    if np.array_equal(ids, np.arange(ds.num_skills)) and ds.num_skills == num_ids:
        return ds
    names = [str(k) for k in range(num_ids)]
    for i, name in enumerate(ds.skill_names):
        if 0 <= ids[i] < num_ids:
            names[int(ids[i])] = name
    tm = None
    if ds.true_mastery is not None:
        tm = []
        for m in ds.true_mastery:
            out = np.zeros((m.shape[0], num_ids), dtype=m.dtype)
            ok = (ids >= 0) & (ids < num_ids)
            out[:, ids[ok]] = m[:, np.nonzero(ok)[0]]
            tm.append(out)
    return KTDataset([ids[s] for s in ds.skills], list(ds.responses), list(ds.student_ids), num_ids,
                     [str(k) for k in range(num_ids)], names, ds.source, tm,
                     list(ds.notes) + ["concept ids used as they are (an imported reference model)"])
