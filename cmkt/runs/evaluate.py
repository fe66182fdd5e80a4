"""Score a checkpoint on a data set: the library calls behind validate / compare / export
and the dashboard."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cmkt.runs.checkpoint import load_checkpoint
from cmkt.train.kinds import KINDS
from cmkt.data.dataset import KTDataset
from cmkt.data.source import is_sim, load_eval_data
from cmkt.data.rawids import ids_as_indices
from cmkt.analysis.explain import part_columns
from cmkt.analysis.metrics import compute_metrics
from cmkt.analysis.reference_metrics import reference_metrics
from cmkt.analysis.scoring import Trajectories, score


@dataclass
class Scored:
    """A model's trajectories over a data set, with the names needed to show them."""

    traj: Trajectories
    data: KTDataset
    meta: dict
    skill_labels: list
    skill_names: list

    @property
    def metrics(self) -> dict:
        """compute_metrics, plus the variant of an imported reference model (gainakt2-ref)."""
        out = compute_metrics(self.traj)
        variant = (self.meta.get("model_config") or {}).get("variant")
        return {**out, "variant": variant} if variant else out

    @property
    def reference(self) -> dict:
        """The reference system's own consistency numbers (cmkt.analysis.reference_metrics)."""
        return reference_metrics(self.traj)


def eval_data_for(meta: dict, data: str, split: str | None = None) -> KTDataset:
    """The data set `data` in the skill space of the checkpoint described by meta."""
    cfg = meta.get("model_config", {})
    tc = meta.get("train_config", {}) or {}
    labels = meta.get("skill_labels")
    kwargs = dict(valid_fraction=tc.get("valid_fraction", 0.2), seed=tc.get("seed", 0))
    if is_sim(data):
        kwargs.update(sim_students=tc.get("sim_students", 300), sim_skills=tc.get("sim_skills", cfg.get("num_skills", 12)))
    elif KINDS.get(cfg.get("kind") or "gainakt2", KINDS["gainakt2"]).ids_as_is:
        # an imported reference model: the file's concept ids are its indices, never re-indexed
        return ids_as_indices(load_eval_data(data, split, **kwargs), int(cfg["num_skills"]))
    ds = load_eval_data(data, split, skill_labels=labels, num_skills=cfg.get("num_skills"), **kwargs)
    names = meta.get("skill_names")
    if names and len(names) == ds.num_skills:
        ds.skill_names = list(names)
    return ds


def score_checkpoint(checkpoint, data: str, split: str | None = None, device="cpu",
                     model_and_meta=None) -> Scored:
    model, meta = model_and_meta or load_checkpoint(checkpoint, device)
    ds = eval_data_for(meta, data, split)
    traj = score(model, ds, device)
    return Scored(traj, ds, meta, list(ds.skill_labels), list(ds.skill_names))


def trajectory_frame(scored: Scored, student: str | None = None) -> pd.DataFrame:
    """One row per (student, step): the practised skill, the response, the prediction,
    the mastery of that skill before and after the step and the gain credited to it."""
    traj = scored.traj
    if student is not None:
        i = scored.data.index_of(student)
        sl = traj.rows(i)
        rows = np.arange(sl.start, sl.stop)
        sids = np.repeat(np.array([traj.student_ids[i]], dtype=object), len(rows))
        step = np.arange(1, len(rows) + 1)
        first = np.zeros(len(rows), bool)
        if len(rows):
            first[0] = True
    else:
        rows = np.arange(len(traj.skills))
        lengths = np.diff(traj.offsets)
        sids = np.repeat(np.array(traj.student_ids, dtype=object), lengths)
        step = rows - np.repeat(traj.offsets[:-1], lengths) + 1
        first = step == 1
    if traj.starts is not None:            # a window that starts afresh: no mastery before it
        first = first | traj.starts[rows]
    s = traj.skills[rows]
    labels = np.array(scored.skill_labels, dtype=object)
    names = np.array(scored.skill_names, dtype=object)
    before = np.where(first, np.nan, traj.mastery[np.maximum(rows - 1, 0), s])
    df = pd.DataFrame({
        "student_id": sids, "step": step, "skill_id": labels[s], "skill_name": names[s],
        "response": traj.responses[rows], "prediction": traj.probs[rows],
        "mastery_before": before, "mastery": traj.mastery[rows, s], "gain": traj.gains[rows, s],
    })
    if traj.true_mastery is not None:
        df["true_mastery"] = traj.true_mastery[rows, s]
    for name, col in part_columns(traj.parts[rows] if traj.parts is not None else None).items():
        df[name] = col                      # the prediction's logit = the sum of these parts
    return df
