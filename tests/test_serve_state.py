"""The service's parts in-process: answer-by-answer scoring equals export's scoring for every model
kind, ensembles and stacked models, across window boundaries and after a rebuild; key files; the
store (WAL mode, a database tied to its skill space, nothing stored by a failed add)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from cmkt.analysis.scoring import score
from cmkt.data.dataset import KTDataset
from cmkt.errors import CmktError
from cmkt.model import GainAKT2, ModelConfig
from cmkt.runs.checkpoint import load_checkpoint
from cmkt.serve.keys import load_keys, parse_keys
from cmkt.serve.state import Scorer
from cmkt.serve.store import Store

DEMO = Path(__file__).resolve().parent.parent / "assets" / "demo"
SMALL = dict(d_model=8, n_heads=2, d_ff=16, n_blocks=1, dropout=0.0)


@pytest.fixture(autouse=True)
def one_thread():
    """As the service runs (tiny passes are slow with many threads on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def one(skills, responses, C):
    labels = [str(i) for i in range(C)]
    return KTDataset([np.asarray(skills)], [np.asarray(responses)], ["x"], C, labels, labels)


def check_exact(model, n=None, checks=(1, 2, 5), seed=0):
    """Answer by answer from a rebuilt prefix; at several lengths compare with export's scoring."""
    torch.manual_seed(seed)
    sc = Scorer(model)
    C, L = sc.C, min(sc.max_len, 60)
    n = n or 2 * L + L // 2 + 3
    rng = np.random.default_rng(seed)
    s, r = rng.integers(0, C, n), rng.integers(0, 2, n)
    st = sc.rebuild(s[:checks[-1]], r[:checks[-1]])
    at = set(np.linspace(checks[-1] + 1, n, 9).astype(int)) | {L, L + 1, L + L // 2, L + L // 2 + 1, n}
    for t in range(checks[-1], n):
        got = sc.append(st, int(s[t]), int(r[t]))
        if t + 1 not in at:
            continue
        traj = score(model, one(s[:t + 1], r[:t + 1], C))
        assert abs(got.prediction - traj.probs[-1]) <= 1e-6
        assert abs(got.mastery - traj.mastery[-1, s[t]]) <= 1e-6
        assert abs(got.gain - traj.gains[-1, s[t]]) <= 1e-6
        assert got.mastery_before is None or abs(got.mastery_before - traj.mastery[-2, s[t]]) <= 1e-6
        if traj.parts is not None:
            assert np.abs(np.array(got.parts) - traj.parts[-1]).max() <= 1e-6
        np.testing.assert_allclose(st.last, traj.mastery[-1], atol=1e-6)
        ref = sc.rebuild(s[:t + 1], r[:t + 1])                      # what a restart would rebuild
        np.testing.assert_allclose(st.before, ref.before, atol=1e-6)
        assert sorted(st.pending) == sorted(ref.pending) and st.phase == ref.phase and st.keep == ref.keep
        assert (st.carry is None) == (ref.carry is None)
        if st.carry is not None:
            assert torch.allclose(st.carry, ref.carry, atol=1e-6)
        view = st.trajectory_view()
        first = [int(np.nonzero(s[:t + 1] == k)[0][0]) for k in np.unique(s[:t + 1])]
        for k, t0 in zip(np.unique(s[:t + 1]), first):
            assert abs(view["mastery"][max(t0 - 1, 0), k] - traj.mastery[max(t0 - 1, 0), k]) <= 1e-6
    sc.self_check()


@pytest.mark.parametrize("kind", ["cumulative", "original", "dkt", "bkt", "pfa"])
def test_every_demo_kind_is_scored_exactly(kind):
    model, _ = load_checkpoint(DEMO / f"demo-{kind}")
    check_exact(model, n=140 if kind != "pfa" else 40)


@pytest.mark.parametrize("kw", [dict(mode="cumulative", base="prior", predictor="mastery", members=3),
                                dict(mode="cumulative", base="context", predictor="mlp"),
                                dict(mode="cumulative", base="prior", predictor="mastery", stack="pairwise"),
                                dict(mode="cumulative", base="prior", predictor="mastery", members=2, stack="pairwise",
                                     accumulation="gap", gain_encoder="recurrent", gain_hidden=4, recurrent=4),
                                dict(mode="original", predictor="mastery", members=2)],
                         ids=["ensemble", "mlp-context", "stacked", "stacked-ensemble", "original-ensemble"])
def test_ensembles_and_stacked_models_are_scored_exactly(kw):
    torch.manual_seed(0)
    model = GainAKT2(ModelConfig(num_skills=5, max_len=10, **{**SMALL, **kw})).eval()
    if getattr(model, "stack", None) is not None:             # an active, non-trivial stack
        model.stack.weight.normal_(0, 0.5)
        model.stack.bias.normal_(0, 0.5)
        model.stack.blend.fill_(0.4)
        assert model.stack.active
    check_exact(model)


def test_concurrent_answers_batched_together_are_scored_as_one_at_a_time():
    """Many students answering at once: their windows share padded batches (first and continuing
    windows apart), and every result equals the one-at-a-time result (and so export's)."""
    import threading
    torch.manual_seed(0)
    model = GainAKT2(ModelConfig(num_skills=5, max_len=10, members=2, predictor="mastery", base="prior",
                                 **SMALL)).eval()
    alone, together = Scorer(model), Scorer(model, batched=True)
    rng = np.random.default_rng(0)
    students = [(rng.integers(0, 5, n), rng.integers(0, 2, n)) for n in rng.integers(1, 40, 16)]
    want = [[alone.append(st, int(a), int(b)) for st in [alone.rebuild([], [])] for a, b in zip(s, r)]
            for s, r in students]
    got = [None] * len(students)
    go = threading.Barrier(len(students))

    def answer(i):
        st = together.rebuild([], [])
        go.wait()
        got[i] = [together.append(st, int(a), int(b)) for a, b in zip(*students[i])]
    threads = [threading.Thread(target=answer, args=(i,)) for i in range(len(students))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together.batcher.largest > 1
    for w, g in zip(want, got):
        for a, b in zip(w, g):
            assert a.step == b.step and abs(a.prediction - b.prediction) <= 1e-6 and abs(a.mastery - b.mastery) <= 1e-6
            assert np.abs(np.array(a.parts) - np.array(b.parts)).max() <= 1e-6


def test_a_model_that_cannot_be_served_incrementally_is_refused():
    model = GainAKT2(ModelConfig(num_skills=4, max_len=8, **SMALL)).eval()
    sc = Scorer(model)
    real = sc._pass
    sc._pass = lambda s, r, k, c: real(s, r, k, None)       # drops the carry: not what export does
    with pytest.raises(CmktError, match="cannot be served"):
        sc.self_check()
    sc._pass = lambda s, r, k, c: 1 / 0                         # a model that fails: refused, no traceback
    with pytest.raises(CmktError, match="cannot be served.*ZeroDivisionError"):
        sc.self_check()


def test_models_that_score_windows_afresh_are_refused():
    """Imported reference models (pyKT's protocol: every window starts afresh) are not served."""
    model = GainAKT2(ModelConfig(num_skills=4, max_len=8, **SMALL)).eval()
    model.windowing = "fresh"
    with pytest.raises(CmktError, match="afresh.*not served"):
        Scorer(model)


def test_key_files_prefixes_and_errors(tmp_path):
    ring = parse_keys("# comment\nk-admin-0001\n\nk-north-0001 north- n2-   # two schools\n", "keys.txt")
    assert len(ring) == 2 and "k-admin" not in repr(ring) and "k-north" not in repr(ring.keys[1])
    admin, north = ring.find("k-admin-0001"), ring.find("k-north-0001")
    assert admin.allows("anyone") and north.allows("north-1") and north.allows("n2-x")
    assert not north.allows("south-1") and not north.allows("xnorth-1")
    assert ring.find("k-admin-000") is None and ring.find("") is None and ring.find(None) is None
    env = load_keys(None, {"CMKT_API_KEYS": "k-env-00001 a-;k-env-00002"})
    assert env.find("k-env-00001").prefixes == ("a-",) and env.find("k-env-00002").prefixes == ()
    f = tmp_path / "k.txt"
    f.write_text("k-file-00001\n")
    assert load_keys(str(f), {"CMKT_API_KEYS": "k-env-00001"}).find("k-env-00001") is None   # the file wins
    for text, words in (("short\n", "at least 8"), ("k-dup-00001\nk-dup-00001 a-\n", "twice"), ("# none\n", "no API keys")):
        with pytest.raises(CmktError, match=words):
            parse_keys(text, "k.txt")
    with pytest.raises(CmktError, match="no API keys"):
        load_keys(None, {})


def test_store_is_sqlite_in_wal_mode_tied_to_a_skill_space(tmp_path):
    db = tmp_path / "e.sqlite"
    st = Store(str(db))
    st.claim({"skill_labels": ["a", "b"]})
    st.add("u1", [{"skill": "b", "skill_index": 1, "correct": 1, "timestamp": None},
                  {"skill": "a", "skill_index": 0, "correct": 0, "timestamp": None}])
    with pytest.raises(Exception):                               # a failed add stores nothing
        st.add("u1", [{"skill": "a", "skill_index": 0, "correct": 1, "timestamp": None},
                      {"skill": None, "skill_index": 0, "correct": 1, "timestamp": None}])
    assert st.history("u1") == ([1, 0], [1, 0]) and st.count() == 2 and st.count("u2") == 0
    st.claim({"skill_labels": ["a", "b"]})                       # the same run again: fine
    with pytest.raises(CmktError, match="another skill space"):
        st.claim({"skill_labels": ["a", "b", "c"]})
    st.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(CmktError, match="--db"):
        Store("mysql://x/y")
    with pytest.raises(CmktError, match="does not exist"):
        Store(str(tmp_path / "no" / "such" / "e.sqlite"))
