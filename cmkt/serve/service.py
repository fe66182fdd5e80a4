"""What the service does, without HTTP: a loaded run, its database and the students' states.

An answer is stored (committed) first, then scored; a student's requests are handled one at a
time (striped locks), different students' in parallel. A student's state is built from the
database the first time it is needed (after a restart, or once evicted from the cache), so the
state after a restart equals the state before.
"""
from __future__ import annotations

import datetime as dt
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from cmkt.educator.practice import level, practise_next, skill_rows, summary_text
from cmkt.errors import CmktError
from cmkt.runs.checkpoint import load_checkpoint
from cmkt.serve.state import Scored, Scorer, StudentState, check_servable
from cmkt.serve.store import Store
from cmkt.serve.worker import ModelProcess, ModelUnavailable
from cmkt.train.kinds import GUARANTEES

PART_NAMES = ("mastery", "difficulty", "momentary")
LOCKS = 256


class ServiceError(Exception):
    """A request the service refuses: HTTP status and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Settings:
    run: str
    db: str = "events.sqlite"
    max_batch: int = 1000
    max_body: int = 1 << 20            # bytes
    cache_students: int = 20_000
    sqlite_sync: str = "normal"
    threads: int = 1                   # torch threads of the model (requests run in parallel)
    model_process: bool = True         # run the model in a process of its own (cmkt/serve/worker.py)


class Service:
    def __init__(self, settings: Settings):
        self.settings = settings
        if settings.threads > 0:
            torch.set_num_threads(settings.threads)
        path = Path(settings.run)
        if not path.exists():
            raise CmktError(f"{settings.run}: no such run folder or checkpoint")
        model, meta = load_checkpoint(path, "cpu")
        self.meta = meta
        self.process = self.store = None
        try:
            self._open(path, model, meta)
        except BaseException:
            self.close()                     # no model process or database left open
            raise

    def _open(self, path: Path, model, meta: dict) -> None:
        settings = self.settings
        check_servable(model)                # refused before a process starts
        self.process = ModelProcess(path, settings.threads) if settings.model_process else None
        self.scorer = Scorer(model, batched=True, process=self.process)
        self.scorer.self_check()             # through the model process: what serves is what is checked
        C = self.scorer.C
        self.labels = [str(x) for x in (meta.get("skill_labels") or range(1, C + 1))]
        names = meta.get("skill_names")
        self.names = [str(x) for x in names] if names and len(names) == C else list(self.labels)
        if len(self.labels) != C:
            raise CmktError(f"{settings.run}: the run names {len(self.labels)} skills but its model has {C}")
        self.index = {lab: i for i, lab in enumerate(self.labels)}
        self.run_name = meta.get("run") or (path.name if path.is_dir() else path.parent.name)
        self.store = Store(settings.db, settings.sqlite_sync)
        self.store.claim({"skill_labels": self.labels})
        self._locks = [threading.Lock() for _ in range(LOCKS)]
        self._cache: OrderedDict[str, StudentState] = OrderedDict()
        self._cache_lock = threading.Lock()

    # ---- the endpoints' work ----------------------------------------------------------------
    def skill_index(self, skill) -> int:
        label = str(skill)
        if label not in self.index:
            few = ", ".join(self.labels[:8]) + (", ..." if len(self.labels) > 8 else "")
            raise ServiceError(422, f"unknown skill {label!r}: this run knows {len(self.labels)} skills "
                               f"({few}); see GET /v1/model")
        return self.index[label]

    def post(self, student: str, answers: list[dict]) -> dict:
        """answers: [{skill, correct, timestamp}] already validated. Stored, then scored."""
        if not answers:
            raise ServiceError(422, "no answers given")
        if len(answers) > self.settings.max_batch:
            raise ServiceError(413, f"{len(answers)} answers in one request: at most {self.settings.max_batch}")
        rows = [{"skill": str(a["skill"]), "skill_index": self.skill_index(a["skill"]),
                 "correct": int(a["correct"]), "timestamp": _utc(a.get("timestamp"))} for a in answers]
        with self._lock(student):
            st = self._state(student)
            try:
                self.store.add(student, rows)
            except Exception as e:  # noqa: BLE001 - nothing was committed
                raise ServiceError(503, f"the answers could not be stored ({type(e).__name__}); "
                                   "nothing was stored") from None
            try:
                results = [self.scorer.append(st, r["skill_index"], r["correct"]) for r in rows]
            except ModelUnavailable as e:
                self._forget(student)            # stored: the next request rebuilds it from the database
                raise ServiceError(503, f"the answers were stored but not scored: {e}") from None
            except Exception:
                self._forget(student)
                raise
        return {"student": student, "stored": len(rows), "attempts": st.n,
                "results": [self._scored(s, r["correct"]) for s, r in zip(results, rows)]}

    def student(self, student: str) -> dict:
        with self._lock(student):
            st = self._state(student)
            if st.n == 0:
                raise ServiceError(404, f"no answers stored for student {student!r}")
            view = st.trajectory_view()
            last = st.last.copy()
            attempts, correct = st.attempts.copy(), st.correct.copy()
        rows = skill_rows(view, self.names, self.labels)
        gain = dict(zip(rows["skill_index"].tolist(), rows["gain"].tolist()))
        skills = [{"skill": self.labels[k], "name": self.names[k], "mastery": float(last[k]),
                   "level": level(float(last[k])), "attempts": int(attempts[k]), "correct": int(correct[k]),
                   "accuracy": float(correct[k] / attempts[k]) if attempts[k] else None,
                   "gain": gain.get(k)} for k in range(len(self.labels))]
        nxt = [{"skill": self.labels[s.skill_index], "name": self.names[s.skill_index], "mastery": s.mastery,
                "level": s.level, "attempts": s.attempts, "correct": s.correct, "gain": s.gain, "reason": s.reason}
               for s in practise_next(view, self.names, self.labels)]
        return {"student": student, "attempts": int(view["skills"].size), "skills": skills,
                "practise_next": nxt, "summary": summary_text(rows)}

    def next(self, student: str, skill) -> dict:
        k = self.skill_index(skill)
        with self._lock(student):
            st = self._state(student)
            try:
                s = self.scorer.predict_next(st, k)
            except ModelUnavailable as e:
                raise ServiceError(503, str(e)) from None
        out = self._scored(s, None)
        for key in ("correct", "mastery", "gain", "level"):
            out.pop(key)
        return {"student": student, **out}

    def model_info(self) -> dict:
        cfg = self.scorer.cfg
        mode = getattr(cfg, "mode", None)
        path = Path(self.meta.get("path") or self.settings.run).resolve()
        return {"run": self.run_name, "path": str(path), "kind": self.meta.get("kind"),
                "mode": mode, "guarantees": GUARANTEES.get(mode), "data": self.meta.get("data"),
                "data_name": self.meta.get("data_name"), "num_skills": self.scorer.C,
                "skills": [{"skill": lab, "name": nm} for lab, nm in zip(self.labels, self.names)],
                "max_len": self.scorer.max_len, "members": getattr(cfg, "members", 1),
                "stack": getattr(cfg, "stack", "none"), "predictor": getattr(cfg, "predictor", None),
                "parts": list(PART_NAMES) if self.scorer.has_parts else None,
                "limits": {"max_batch": self.settings.max_batch, "max_body_bytes": self.settings.max_body}}

    def health(self) -> dict:
        ok = self.store.ping()
        model_ok = self.process is None or self.process.alive()
        return {"status": "ok" if ok else "unavailable", "database": "ok" if ok else "unreachable",
                "model": "ok" if model_ok else "stopped (a new model process starts with the next request)",
                "model_process": self.process is not None,
                "model_restarts": 0 if self.process is None else self.process.restarts,
                "batches": self.scorer.batcher.stats()}

    def close(self) -> None:
        if self.process is not None:
            self.process.close()
        if self.store is not None:
            self.store.close()

    # ---- students' states ---------------------------------------------------------------------
    def _lock(self, student: str) -> threading.Lock:
        return self._locks[zlib.crc32(student.encode()) % LOCKS]

    def _state(self, student: str) -> StudentState:
        """The student's state (the caller holds the student's lock)."""
        with self._cache_lock:
            st = self._cache.get(student)
            if st is not None:
                self._cache.move_to_end(student)
                return st
        skills, responses = self.store.history(student)
        st = self.scorer.rebuild(skills, responses)
        with self._cache_lock:
            self._cache[student] = st
            while len(self._cache) > max(1, self.settings.cache_students):
                self._cache.popitem(last=False)
        return st

    def _forget(self, student: str) -> None:
        with self._cache_lock:
            self._cache.pop(student, None)

    def _scored(self, s: Scored, correct) -> dict:
        out = {"step": s.step, "skill": self.labels[s.skill], "name": self.names[s.skill], "correct": correct,
               "prediction": s.prediction,
               "parts": None if s.parts is None else dict(zip(PART_NAMES, s.parts)),
               "mastery_before": s.mastery_before, "mastery": s.mastery, "gain": s.gain,
               "level": None if s.mastery is None else level(s.mastery)}
        return out


def _utc(t):
    """A timestamp without a time zone is taken as UTC."""
    if t is not None and t.tzinfo is None:
        return t.replace(tzinfo=dt.timezone.utc)
    return t
