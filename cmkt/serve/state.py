"""Per-student incremental state: an answer costs one forward pass over at most max_len steps.

`cmkt export` scores a student in chained windows (cmkt.data.batching.ChainedWindows): window 0
holds the first max_len steps; each later window keeps max_len // 2 new steps, re-reads the
steps before them as context and starts from the mastery the previous window ended with (its
carry). The values export reports for a student of n steps are those of the window that keeps
each step, as cut for n steps. So after the n-th answer only the student's last window (as cut
for n steps) has to be run, from the carry it starts with; every earlier window is final.

A StudentState holds that carry, the steps of the history (the window re-reads up to max_len of
them), the mastery after the last step, per-skill counts and each practised skill's mastery just
before its first attempt (what "practise next" measures gains from). `Scorer.rebuild` makes it
from a stored history with cmkt.analysis.scoring.score (the export itself); `Scorer.append` adds
one answer with one pass. The model's own forward is called exactly as forward_windows calls it,
so ensembles, stacked models and every model kind are scored as export scores them;
`Scorer.self_check` proves it on a synthetic student at start-up (a model for which it fails
is refused). PFA reads a student whole (its max_len is unbounded), so its one pass grows with the
history: exact, but not flat. Models that score every window afresh (imported reference models,
pyKT's protocol) are refused. With batched=True concurrent passes share padded batches
(cmkt/serve/batcher.py), as export batches windows.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from cmkt.analysis.scoring import score
from cmkt.data.batching import chained_windows
from cmkt.data.dataset import KTDataset
from cmkt.errors import CmktError
from cmkt.serve.batcher import Batcher


class _Lengths:
    """What chained_windows reads of a data set: the students' lengths."""

    def __init__(self, lengths):
        self.lengths = np.asarray(lengths, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.lengths)


def last_window(n: int, max_len: int) -> tuple[int, int, int]:
    """(lo, keep, phase) of the last chained window of a student with n >= 1 steps: it feeds
    steps [lo, n), keeps [keep, n) and is its student's window number `phase`."""
    cw = chained_windows(_Lengths([n]), max_len)
    return int(cw.windows.start[-1]), int(cw.keep_from[-1]), int(cw.phase[-1])


@dataclass
class StudentState:
    num_skills: int
    skills: np.ndarray = field(default_factory=lambda: np.zeros(64, np.int64))     # (capacity,)
    responses: np.ndarray = field(default_factory=lambda: np.zeros(64, np.int64))  # (capacity,)
    n: int = 0                         # answers so far
    phase: int = -1                    # window number of the last window (-1: no answers)
    keep: int = 0                      # its first kept step
    carry: torch.Tensor | None = None  # (C,) float32: mastery it starts from (phase > 0)
    last: np.ndarray | None = None     # (C,) float32: mastery after the last step
    attempts: np.ndarray = None        # (C,) int64
    correct: np.ndarray = None         # (C,) int64
    first_at: np.ndarray = None        # (C,) int64: step of the first attempt (-1: never)
    before: np.ndarray = None          # (C,) float64: mastery just before the first attempt
    pending: list = field(default_factory=list)  # skills whose `before` is in the last window

    def __post_init__(self):
        C = self.num_skills
        if self.attempts is None:
            self.attempts = np.zeros(C, np.int64)
            self.correct = np.zeros(C, np.int64)
            self.first_at = np.full(C, -1, np.int64)
            self.before = np.full(C, np.nan)

    def push(self, skill: int, response: int) -> None:
        if self.n == len(self.skills):
            self.skills = np.concatenate([self.skills, np.zeros_like(self.skills)])
            self.responses = np.concatenate([self.responses, np.zeros_like(self.responses)])
        self.skills[self.n] = skill
        self.responses[self.n] = response
        self.n += 1

    def history(self) -> tuple[np.ndarray, np.ndarray]:
        return self.skills[:self.n].copy(), self.responses[:self.n].copy()

    def trajectory_view(self) -> dict:
        """The arrays cmkt.educator.practice reads (Trajectories.student): skills, responses and a
        mastery (n, C) that holds what practice reads of it, the last row and each practised
        skill's mastery just before its first attempt (other cells are 0 and never read)."""
        s, r = self.history()
        m = np.zeros((self.n, self.num_skills), np.float64)
        done = np.nonzero(self.first_at >= 0)[0]
        m[np.maximum(self.first_at[done] - 1, 0), done] = self.before[done]
        m[-1] = self.last
        return {"skills": s, "responses": r, "mastery": m}


@dataclass
class Scored:
    """What the model said about one (new or hypothetical) step."""

    step: int                    # 1-based
    skill: int
    prediction: float            # P(correct) made before the answer
    parts: list | None           # its logit's parts (mastery, difficulty, momentary)
    mastery_before: float | None
    mastery: float | None        # of the practised skill after the answer (None: hypothetical)
    gain: float | None


def check_servable(model) -> None:
    """CmktError, in one line, for a model that cannot be served answer by answer."""
    windowing = getattr(model, "windowing", "chained")
    if windowing != "chained":
        kind = getattr(model.cfg, "kind", type(model).__name__)
        raise CmktError(f"this run's model ({kind}) scores each window afresh (windowing {windowing!r}, as "
                        "imported reference models do) and is not served: use `cmkt export` for it")


class Scorer:
    """A loaded model that scores students one answer at a time, as export scores them."""

    def __init__(self, model, device="cpu", batched: bool = False, process=None):
        check_servable(model)
        self.model = model.eval()
        self.device = device
        self.cfg = model.cfg
        self.C = int(self.cfg.num_skills)
        self.max_len = int(self.cfg.max_len)
        self.has_parts = getattr(self.cfg, "predictor", None) == "mastery"
        # one forward pass at a time: tiny passes from many threads only fight over the GIL
        self._model_lock = threading.Lock()
        # batched: concurrent requests' windows go through the model together (cmkt/serve/batcher.py)
        # process: the batches run in a model process of its own (cmkt/serve/worker.py)
        self.batcher = Batcher(self.model, device, process=process) if batched or process is not None else None

    # ---- building and extending a state ---------------------------------------------------
    @torch.inference_mode()
    def rebuild(self, skills, responses) -> StudentState:
        """The state of a student with this history, scored by export's own code path."""
        skills = np.asarray(skills, np.int64)
        responses = np.asarray(responses, np.int64)
        st = StudentState(self.C)
        n = len(skills)
        if n == 0:
            return st
        cap = max(64, 1 << int(np.ceil(np.log2(n + 1))))
        st.skills = np.zeros(cap, np.int64)
        st.responses = np.zeros(cap, np.int64)
        st.skills[:n], st.responses[:n], st.n = skills, responses, n
        ds = KTDataset([skills], [responses], ["_"], self.C, [str(i) for i in range(self.C)],
                       [str(i) for i in range(self.C)])
        with self._model_lock:
            m = score(self.model, ds, self.device).mastery               # (n, C) float32
        _, st.keep, st.phase = last_window(n, self.max_len)
        st.carry = torch.from_numpy(m[st.keep - 1].copy()) if st.phase > 0 else None
        st.last = m[-1].copy()
        st.attempts = np.bincount(skills, minlength=self.C).astype(np.int64)
        st.correct = np.bincount(skills, weights=responses, minlength=self.C).astype(np.int64)
        uniq, first = np.unique(skills, return_index=True)
        st.first_at[uniq] = first
        at = np.maximum(first - 1, 0)
        st.before[uniq] = m[at, uniq]
        st.pending = [int(k) for k, a in zip(uniq, at) if a >= st.keep]
        return st

    @torch.inference_mode()
    def append(self, st: StudentState, skill: int, response: int) -> Scored:
        """Add one answer to st (in place) and return what the model said about it."""
        prev_last = st.last
        lo, keep, phase = last_window(st.n + 1, self.max_len)
        if phase != st.phase:                    # a new window: the previous one is final
            if phase > 0:
                st.carry = torch.from_numpy(prev_last.copy())
            st.pending = []
        st.push(skill, response)
        st.phase, st.keep = phase, keep
        out = self._pass(st.skills[lo:st.n], st.responses[lo:st.n], keep - lo, st.carry if phase > 0 else None)
        m = out.mastery[0].float().cpu().numpy()                          # (T, C)
        j, t = st.n - 1 - lo, st.n - 1
        if st.attempts[skill] == 0:
            st.first_at[skill] = t
            at = max(t - 1, 0)
            if at >= keep:
                st.pending.append(int(skill))
            else:                                # the step before, in a finished window
                st.before[skill] = prev_last[skill] if t > 0 else m[0, skill]
        st.attempts[skill] += 1
        st.correct[skill] += int(response)
        for k in st.pending:                     # export's values: this window's, as cut now
            st.before[k] = m[max(st.first_at[k] - 1, 0) - lo, k]
        st.last = m[j].copy()
        if t == 0:
            before = None
        elif t - 1 >= keep:
            before = float(m[j - 1, skill])
        else:
            before = float(prev_last[skill])
        pred, parts = self._prediction(out, j)
        return Scored(st.n, int(skill), pred, parts, before, float(m[j, skill]),
                      float(out.gains[0, j, skill].float()))

    @torch.inference_mode()
    def predict_next(self, st: StudentState, skill: int) -> Scored:
        """P(correct) of a next attempt on skill, as it would be made if it were answered now
        (the prediction never reads the answer itself). st is not changed."""
        n = st.n + 1
        lo, keep, phase = last_window(n, self.max_len)
        carry = (torch.from_numpy(st.last.copy()) if phase != st.phase else st.carry) if phase > 0 else None
        s = np.append(st.skills[lo:st.n], skill)
        r = np.append(st.responses[lo:st.n], 0)
        out = self._pass(s, r, keep - lo, carry)
        pred, parts = self._prediction(out, n - 1 - lo)
        before = None if st.n == 0 else float(st.last[skill])
        return Scored(n, int(skill), pred, parts, before, None, None)

    def _pass(self, skills: np.ndarray, responses: np.ndarray, keep_at: int, carry):
        """One window through the model, called as cmkt.analysis.scoring.forward_windows calls it."""
        if self.batcher is not None:
            return self.batcher.run(skills, responses, keep_at, carry)
        s = torch.from_numpy(np.ascontiguousarray(skills))[None].to(self.device)      # (1, T)
        r = torch.from_numpy(np.ascontiguousarray(responses))[None].to(self.device)   # (1, T)
        k0 = torch.as_tensor([keep_at], device=self.device)
        start = None if carry is None else carry[None].to(self.device)               # (1, C)
        with self._model_lock:
            return self.model(s, r, start=start, keep_from=k0)

    def _prediction(self, out, j: int) -> tuple[float, list | None]:
        pred = float(torch.sigmoid(out.logits).float()[0, j])
        parts = None
        if self.has_parts and getattr(out, "parts", None) is not None:
            parts = [float(v) for v in out.parts[0, j].float().cpu()]
        return pred, parts

    # ---- proof at start-up ---------------------------------------------------------------
    def self_check(self, seed: int = 0, tol: float = 1e-5) -> None:
        """Score a synthetic student answer by answer across its first two window boundaries and
        compare with export's scoring of the same history; CmktError if they differ."""
        stride = max(1, self.max_len // 2)
        ends = (self.max_len, self.max_len + stride) if self.max_len <= 2048 else (40,)
        rng = np.random.default_rng(seed)
        skills = rng.integers(0, self.C, ends[-1] + 2)
        responses = rng.integers(0, 2, ends[-1] + 2)
        worst = 0.0
        for end in ends:
            n0, n = max(1, end - 2), end + 2
            try:
                st = self.rebuild(skills[:n0], responses[:n0])
                for t in range(n0, n):
                    got = self.append(st, int(skills[t]), int(responses[t]))
                ref = self.rebuild(skills[:n], responses[:n])
                ds = KTDataset([skills[:n]], [responses[:n]], ["_"], self.C, [str(i) for i in range(self.C)],
                               [str(i) for i in range(self.C)])
                traj = score(self.model, ds, self.device)
            except Exception as e:  # noqa: BLE001 - any failure means it cannot be served
                raise CmktError(f"this run's model ({getattr(self.cfg, 'kind', 'gainakt2')}) cannot be served: "
                                f"scoring a synthetic student failed ({type(e).__name__}: {str(e)[:200]})") from None
            worst = max(worst, float(np.abs(st.last - traj.mastery[-1]).max()),
                        abs(got.prediction - float(traj.probs[-1])),
                        float(np.nanmax(np.abs(st.before - ref.before), initial=0.0)))
            if st.carry is not None:
                worst = max(worst, float((st.carry - ref.carry).abs().max()))
        if not np.isfinite(worst) or worst > tol:
            kind = getattr(self.cfg, "kind", "gainakt2")
            raise CmktError(f"this run's model ({kind}) cannot be served: scoring it one answer at a time "
                            f"differs from `cmkt export` by {worst:.2g} on a synthetic student")
