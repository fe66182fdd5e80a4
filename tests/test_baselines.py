"""Classic baselines in the same harness (DESIGN.md, "Baselines"): DKT, BKT and PFA.
Causality, BKT against a hand-worked reference and known parameters, PFA against scikit-learn,
checkpoints (round trip, refusals), chained windows, and the CLI on tiny simulated data."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from cmkt.baselines import BKT, DKT, PFA, BKTConfig, DKTConfig, PFAConfig, fit_bkt, fit_pfa
from cmkt.runs.checkpoint import load_checkpoint, save_checkpoint
from cmkt.train.config import build_configs
from cmkt.data.dataset import KTDataset
from cmkt.errors import CheckpointError
from cmkt.analysis.metrics import compute_metrics
from cmkt.analysis.scoring import score
from cmkt.data.sim import simulate
from test_training import cli

SIM = "sim:students=80,skills=5"


def dataset(skills, responses, C):
    n = len(skills)
    return KTDataset(skills=[np.asarray(s, np.int64) for s in skills],
                     responses=[np.asarray(r, np.int64) for r in responses], num_skills=C,
                     student_ids=[f"s{i}" for i in range(n)], skill_labels=[str(k) for k in range(C)],
                     skill_names=[f"skill {k}" for k in range(C)])


def make(kind, C=4, seed=0):
    """A model of each kind with non-trivial parameters (eval mode)."""
    torch.manual_seed(seed)
    if kind == "dkt":
        return DKT(DKTConfig(num_skills=C, hidden=16, emb=8, max_len=50)).eval()
    if kind == "bkt":
        m = BKT(BKTConfig(num_skills=C, max_len=50))
        g = torch.Generator().manual_seed(seed)
        m.set_params({"prior": torch.rand(C, generator=g) * 0.6 + 0.1, "learn": torch.rand(C, generator=g) * 0.3,
                      "guess": torch.rand(C, generator=g) * 0.3, "slip": torch.rand(C, generator=g) * 0.2,
                      "forget": torch.rand(C, generator=g) * 0.05})
        return m.eval()
    m = PFA(PFAConfig(num_skills=C))
    with torch.no_grad():
        m.bias.fill_(-0.2)
        m.skill.copy_(torch.randn(C))
        m.w_ok.copy_(torch.rand(C))
        m.w_bad.copy_(-torch.rand(C))
    return m.eval()


KINDS = ("dkt", "bkt", "pfa")


# ---- causality --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_changing_r_t_or_later_never_changes_predictions_up_to_t_or_mastery_before_t(kind):
    model = make(kind)
    g = torch.Generator().manual_seed(1)
    B, T, C = 3, 30, 4
    skills = torch.randint(0, C, (B, T), generator=g)
    responses = torch.randint(0, 2, (B, T), generator=g)
    with torch.no_grad():
        base = model(skills, responses)
        for t in (0, 7, 29):
            changed = responses.clone()
            changed[:, t:] = 1 - changed[:, t:]            # r_t and every later answer flipped
            out = model(skills, changed)
            # the prediction for step t is made from steps < t: predictions <= t unchanged
            assert torch.allclose(out.logits[:, :t + 1], base.logits[:, :t + 1], atol=1e-6)
            assert torch.allclose(out.mastery[:, :t], base.mastery[:, :t], atol=1e-6)
            assert torch.allclose(out.gains[:, :t], base.gains[:, :t], atol=1e-6)
            assert not torch.allclose(out.mastery[:, t], base.mastery[:, t])   # r_t does move m_t
    # the prediction for step t is the knowledge state after t-1 read at s_t (first step: the prior)
    if kind != "bkt":                                      # BKT reads it through guess and slip
        m_prev = torch.cat([base.start.unsqueeze(1), base.mastery[:, :-1]], dim=1)
        read = m_prev.gather(-1, skills.unsqueeze(-1)).squeeze(-1)
        assert torch.allclose(torch.sigmoid(base.logits), read, atol=1e-5)
    # gains are the differences of the state, g_1 = m_1 - the prior
    assert torch.allclose(base.gains[:, 0], base.mastery[:, 0] - base.start, atol=1e-6)
    assert torch.allclose(base.gains[:, 1:], base.mastery[:, 1:] - base.mastery[:, :-1], atol=1e-6)


# ---- BKT against numbers worked by hand --------------------------------------------------

def test_bkt_matches_the_hand_worked_reference():
    # One skill, prior 0.3, learn 0.2, guess 0.25, slip 0.1, no forgetting; answers 1, 0, 1.
    # step 1: P(r=1) = 0.3*0.9 + 0.7*0.25 = 0.27 + 0.175 = 0.445
    #         posterior after a right answer = 0.27 / 0.445 = 0.6067416
    #         m_1 = 0.6067416 + (1 - 0.6067416) * 0.2 = 0.6853933
    # step 2: P(r=1) = 0.6853933*0.9 + 0.3146067*0.25 = 0.6168539 + 0.0786517 = 0.6955056
    #         posterior after a wrong answer = 0.6853933*0.1 / (1 - 0.6955056) = 0.0685393 / 0.3044944 = 0.2250923
    #         m_2 = 0.2250923 + 0.7749077 * 0.2 = 0.3800738       (a wrong answer lowered P(learned))
    # step 3: P(r=1) = 0.3800738*0.9 + 0.6199262*0.25 = 0.3420664 + 0.1549815 = 0.4970480
    #         posterior = 0.3420664 / 0.4970480 = 0.6881959
    #         m_3 = 0.6881959 + 0.3118041 * 0.2 = 0.7505567
    # A second skill (prior 0.6) is never practised: it keeps its prior, 0.6, throughout.
    m = BKT(BKTConfig(num_skills=2))
    m.set_params({"prior": [0.3, 0.6], "learn": [0.2, 0.1], "guess": [0.25, 0.2], "slip": [0.1, 0.1],
                  "forget": [0.0, 0.0]})
    out = m(torch.tensor([[0, 0, 0]]), torch.tensor([[1, 0, 1]]))
    p = torch.sigmoid(out.logits)[0]
    assert p.tolist() == pytest.approx([0.445, 0.6955056, 0.4970480], abs=1e-6)
    assert out.mastery[0, :, 0].tolist() == pytest.approx([0.6853933, 0.3800738, 0.7505567], abs=1e-6)
    assert out.mastery[0, :, 1].tolist() == pytest.approx([0.6, 0.6, 0.6], abs=1e-6)
    assert out.gains[0, :, 0].tolist() == pytest.approx([0.6853933 - 0.3, 0.3800738 - 0.6853933,
                                                         0.7505567 - 0.3800738], abs=1e-6)


def test_bkt_state_stays_a_probability_near_one():
    """Found on ASSIST2009 (skill 25 of a fitted model, one test student's answers on it): after a
    run of right answers float32 rounded P(learned) to 1.0000001, and with P(wrong) computed as
    1 - P(right) the following wrong answers amplified it to 1.0001 (a bounds violation).
    P(wrong) is now computed from its own terms and the posterior clamped to [0, 1]."""
    m = BKT(BKTConfig(num_skills=1))
    m.set_params({"prior": [0.6517904996871948], "learn": [0.026545671746134758], "guess": [0.310046911239624],
                  "slip": [0.2379288226366043], "forget": [0.0]})
    responses = torch.tensor([[int(c) for c in "11101111111111111111011111000000111110101111110111111101111111011111111"]])
    out = m(torch.zeros_like(responses), responses)
    assert torch.isfinite(out.mastery).all() and torch.isfinite(out.logits).all()
    assert out.mastery.min() >= 0 and out.mastery.max() <= 1


def _bkt_students(seed, truth, n=200, T=50):
    """n students per skill answering T times, drawn from BKT with the given parameters."""
    rng = np.random.default_rng(seed)
    K = len(truth["prior"])
    L = rng.random((K, n)) < np.array(truth["prior"])[:, None]
    started_learned = L.mean(axis=1)
    R = np.zeros((K, n, T), np.int64)
    for t in range(T):
        p = np.where(L, 1 - np.array(truth["slip"])[:, None], np.array(truth["guess"])[:, None])
        R[:, :, t] = rng.random((K, n)) < p
        L = L | (rng.random((K, n)) < np.array(truth["learn"])[:, None])
    ds = dataset([np.full(T, k) for k in range(K) for _ in range(n)], [R[k, i] for k in range(K) for i in range(n)], K)
    return ds, started_learned


@pytest.mark.parametrize("seed", range(5))
def test_bkt_recovers_known_parameters(seed):
    truth = {"prior": [0.2, 0.4, 0.1], "learn": [0.15, 0.1, 0.2], "guess": [0.15, 0.2, 0.1],
             "slip": [0.08, 0.1, 0.05]}
    ds, started_learned = _bkt_students(seed, truth)
    m = BKT(BKTConfig(num_skills=3))
    info = fit_bkt(m, ds)
    assert info["fit_iterations"] < 200
    for name in ("learn", "guess", "slip"):
        assert getattr(m, name).tolist() == pytest.approx(truth[name], abs=0.05), name
    # the prior is the share of students who start learned: with 200 students its sampling error
    # alone is about 0.035, so it is held to what this sample drew (within 0.05)
    assert m.prior.tolist() == pytest.approx(started_learned.tolist(), abs=0.05)
    assert m.forget.tolist() == [0.0, 0.0, 0.0]


def test_bkt_em_never_lowers_the_likelihood():
    ds, _ = _bkt_students(0, {"prior": [0.3], "learn": [0.1], "guess": [0.2], "slip": [0.1]}, n=100, T=20)
    nll = []
    fit_bkt(BKT(BKTConfig(num_skills=1, tol=0, em_iters=40, forgets=True)), ds,
            progress=lambda i, n, v: nll.append(v))
    assert all(b <= a + 1e-9 for a, b in zip(nll, nll[1:]))


def test_bkt_fit_and_forward_agree_on_the_likelihood():
    ds, _ = _bkt_students(3, {"prior": [0.3, 0.5], "learn": [0.1, 0.2], "guess": [0.2, 0.1], "slip": [0.1, 0.1]},
                          n=30, T=15)
    m = BKT(BKTConfig(num_skills=2))
    info = fit_bkt(m, ds)
    traj = score(m, ds)
    p = traj.probs.astype(np.float64)
    nll = -np.mean(traj.responses * np.log(p) + (1 - traj.responses) * np.log(1 - p))
    assert nll == pytest.approx(info["train_total"], rel=1e-4)


# ---- PFA against scikit-learn ---------------------------------------------------------------

def test_pfa_predictions_are_the_logistic_regression_of_cmkt_counting():
    from cmkt.analysis.counting import features, fit_counting, prior_counts
    train, test = simulate(students=60, skills=5, seed=2), simulate(students=40, skills=5, seed=2, split="test")
    m = PFA(PFAConfig(num_skills=5))
    fit_pfa(m, train)
    lr = fit_counting(train, "pfa", 5)
    want = lr.predict_proba(features(prior_counts(test), 5, "pfa"))[:, 1]
    assert score(m, test).probs == pytest.approx(want, abs=1e-5)


# ---- windows ------------------------------------------------------------------------------

def test_bkt_chains_windows_exactly_and_dkt_gains_are_differences_of_scored_mastery():
    ds = simulate(students=20, skills=4, seed=5)
    long = BKT(BKTConfig(num_skills=4, max_len=1000))
    long.load_state_dict(make("bkt").state_dict())
    short = BKT(BKTConfig(num_skills=4, max_len=10))          # students of 30..80 steps: many windows
    short.load_state_dict(long.state_dict())
    a, b = score(long, ds), score(short, ds)
    assert np.allclose(a.probs, b.probs, atol=1e-5) and np.allclose(a.mastery, b.mastery, atol=1e-5)
    assert np.allclose(a.gains, b.gains, atol=1e-5)
    dkt = DKT(DKTConfig(num_skills=4, hidden=8, emb=8, max_len=10)).eval()
    t = score(dkt, ds)
    for i in range(len(ds)):
        st = t.student(i)
        assert np.allclose(st["gains"][1:], np.diff(st["mastery"], axis=0), atol=1e-5)
        assert np.allclose(st["gains"][0], st["mastery"][0] - t.prior, atol=1e-5)


# ---- checkpoints ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_round_trip_gives_the_same_predictions(kind, tmp_path):
    model = make(kind, C=5)
    ds = simulate(students=20, skills=5, seed=1)
    path = save_checkpoint(model, tmp_path / f"{kind}.safetensors", {"data": "sim"})
    loaded, meta = load_checkpoint(path)
    assert type(loaded) is type(model) and meta["kind"] == kind and meta["model_config"]["kind"] == kind
    a, b = score(model, ds), score(loaded, ds)
    assert np.array_equal(a.probs, b.probs) and np.array_equal(a.mastery, b.mastery)
    assert compute_metrics(a) == compute_metrics(b)


def _tamper(src, dst, fn):
    from safetensors import safe_open
    with safe_open(str(src), framework="pt") as f:
        header = f.metadata()
    state = load_file(str(src))
    header = fn(state, header) or header
    save_file(state, str(dst), metadata=header)
    return dst


BAD = {
    "dkt": [(lambda s, h: s.__setitem__("out.bias", s["out.bias"] * float("nan")), "not finite"),
            (lambda s, h: s.__setitem__("lstm.weight_hh_l0", torch.zeros(3, 3)), "wrong shape")],
    "bkt": [(lambda s, h: s.__setitem__("slip", s["slip"] + 1.5), "probabilities in [0, 1]"),
            (lambda s, h: [s.pop("learn"), None][1], "missing")],
    "pfa": [(lambda s, h: s.__setitem__("w_ok", s["w_ok"] * float("inf")), "not finite"),
            (lambda s, h: s.__setitem__("skill", torch.zeros(9)), "wrong shape")],
}


@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_checkpoint_of_each_kind_is_refused_with_one_line(kind, tmp_path):
    good = save_checkpoint(make(kind), tmp_path / "good.safetensors")
    for i, (fn, needle) in enumerate(BAD[kind]):
        bad = _tamper(good, tmp_path / f"bad{i}.safetensors", fn)
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(bad)
        msg = str(e.value)
        assert needle in msg and "\n" not in msg and str(bad) in msg, msg


@pytest.mark.parametrize("first", [b"\x80", b"PK"])
def test_a_safetensors_header_that_starts_like_a_pickle_or_zip_still_reads(first, tmp_path):
    """The 8-byte header length of a safetensors file can begin with 0x80 (a pickle's first byte)
    or 'PK' (a zip's): it is still read as safetensors, not refused as a foreign PyTorch file."""
    model = make("bkt")
    path = save_checkpoint(model, tmp_path / "c.safetensors", {"pad": ""})
    n0 = int.from_bytes(path.read_bytes()[:8], "little")            # header length without padding
    want, mod = (0x80, 256) if first == b"\x80" else (0x4B50, 65536)
    target = n0 + (want - n0) % mod
    for pad in range(max(0, target - n0 - 8), target - n0 + 8):      # the header is padded to 8 bytes
        path = save_checkpoint(model, tmp_path / "c.safetensors", {"pad": "x" * pad})
        if path.read_bytes()[:len(first)] == first:
            break
    else:
        pytest.fail("no padding gave the wanted first bytes")
    loaded, meta = load_checkpoint(path)
    assert meta["kind"] == "bkt" and torch.equal(loaded.prior, model.prior)


def test_unknown_kind_and_kind_disagreeing_with_the_run_are_refused(tmp_path):
    good = save_checkpoint(make("bkt"), tmp_path / "good.safetensors")

    def other_kind(s, h):
        cfg = json.loads(h["model_config"])
        cfg["kind"] = cfg["mode"] = "hmm"
        return dict(h, model_config=json.dumps(cfg))
    bad = _tamper(good, tmp_path / "bad.safetensors", other_kind)
    with pytest.raises(CheckpointError, match="unknown model kind 'hmm'"):
        load_checkpoint(bad)
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(make("pfa"), run / "best.safetensors")
    (run / "config.json").write_text(json.dumps({"model": {"kind": "bkt", "mode": "bkt", "num_skills": 4}}))
    with pytest.raises(CheckpointError, match="pfa model but the run's config.json says 'bkt'"):
        load_checkpoint(run)


# ---- configs ------------------------------------------------------------------------------

def test_presets_size_each_kind_and_refuse_foreign_settings():
    dkt, train = build_configs(10, "dkt", "standard")
    assert (dkt.hidden, dkt.max_len, train.epochs) == (200, 200, 20) and dkt.to_dict()["kind"] == "dkt"
    bkt, train = build_configs(10, "bkt", "intensive", {"forgets": "true"})
    assert bkt.forgets is True and train.epochs == 1
    with pytest.raises(ValueError, match="unknown setting 'd_model'"):
        build_configs(10, "dkt", "quick", {"d_model": "16"})
    with pytest.raises(ValueError, match="unknown model 'hmm'"):
        build_configs(10, "hmm", "quick")


# ---- command line ---------------------------------------------------------------------------

EXTRA = {"dkt": ["--epochs", "2", "--set", "hidden=16", "--set", "emb=8", "--set", "max_len=40"],
         "bkt": ["--set", "max_len=40"], "pfa": []}


@pytest.mark.parametrize("kind", KINDS)
def test_cli_train_and_validate_each_kind(kind, tmp_path):
    proc = cli("train", "--data", SIM, "--model", kind, "--preset", "quick", "--out", tmp_path / "runs", *EXTRA[kind])
    run = Path(proc.stdout.strip().splitlines()[-1])
    for f in ("config.json", "status.json", "metrics.jsonl", "best.safetensors", "results.json"):
        assert (run / f).exists(), f
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["kind"] == kind and cfg["model"]["mode"] == kind and cfg["model"]["num_skills"] == 5
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == (2 if kind == "dkt" else 1)
    results = json.loads((run / "results.json").read_text())
    assert results["kind"] == kind and results["test"]["auc"] is not None
    if kind != "dkt":                                               # two tiny epochs teach DKT little
        assert results["test"]["auc"] > 0.6 and results["valid"]["val_auc"] > 0.6
    assert results["test"]["bounds_violation_rate"] == 0            # every kind's state is a probability
    if kind != "dkt":
        assert results["test"]["monotonicity_violation_rate"] > 0   # a wrong answer lowers it
    out = json.loads(cli("validate", run, "--json").stdout)
    for k, v in results["test"].items():
        assert out[k] == pytest.approx(v, abs=1e-6) if v is not None else out[k] is None, k
    bad = cli("train", "--data", SIM, "--model", kind, "--out", tmp_path / "runs", "--set", "d_model=8", check=False)
    assert bad.returncode == 2 and "unknown setting 'd_model'" in bad.stderr and "Traceback" not in bad.stderr
