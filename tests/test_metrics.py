"""Each metric of DESIGN.md on a small hand-computed example."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from cmkt.analysis.metrics import compute_metrics, pearson
from cmkt.model import GainAKT2, ModelConfig
from cmkt.analysis.scoring import Trajectories, score
from cmkt.data.sim import simulate


def hand_example(**change):
    # student A: 3 steps, student B: 2 steps, 2 skills
    mastery = np.array([[0.2, 0.5], [0.1, 0.6], [0.3, 1.2],      # A: skill 0 falls at t2, skill 1 > 1 at t3
                        [0.7, 0.4], [0.8, 0.4]], dtype=np.float32)
    gains = np.array([[0.0, 0.1], [-0.2, 0.0], [0.1, 0.3],       # A: one negative gain
                      [0.1, 0.1], [0.1, 0.1]], dtype=np.float32)
    d = dict(student_ids=["A", "B"], offsets=np.array([0, 3, 5]),
             skills=np.array([0, 1, 1, 1, 0]), responses=np.array([1, 0, 1, 0, 1]),
             probs=np.array([0.99, 0.3, 0.8, 0.01, 0.2], dtype=np.float32),
             mastery=mastery, gains=gains, mode="original")
    d.update(change)
    return Trajectories(**d)


def test_hand_computed_metrics():
    m = compute_metrics(hand_example())
    assert m["monotonicity_violation_rate"] == pytest.approx(1 / 6)   # 1 fall among 3 later rows x 2 skills
    assert m["negative_gain_rate"] == pytest.approx(1 / 10)
    assert m["bounds_violation_rate"] == pytest.approx(1 / 10)
    assert m["students_with_violation"] == pytest.approx(1 / 2)
    # m_{t-1}[s_t] vs r_t for t >= 2: x = [0.5, 0.6, 0.7], y = [0, 1, 1] -> sqrt(3)/2
    assert m["mastery_performance_corr"] == pytest.approx(math.sqrt(3) / 2, abs=1e-6)
    # g_t[s_t] vs r_t: x = [0, 0, .3, .1, .1], y = [1, 0, 1, 0, 1] -> 0.1 / sqrt(0.06 * 1.2)
    assert m["gain_performance_corr"] == pytest.approx(0.1 / math.sqrt(0.072), abs=1e-6)
    # predictions for t >= 2 only (the 0.99 / 0.01 first steps must not count)
    assert m["auc"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert (m["n_students"], m["n_interactions"], m["n_predictions"]) == (2, 5, 3)
    assert "mastery_recovery_corr" not in m


def test_first_step_never_counts_as_a_fall():
    """A student's first row is compared with nobody, not with the previous student's last row."""
    mastery = np.array([[0.9, 0.9], [0.9, 0.9], [0.1, 0.1], [0.2, 0.2]], dtype=np.float32)
    t = hand_example(student_ids=["A", "B"], offsets=np.array([0, 2, 4]), skills=np.array([0, 1, 0, 1]),
                     responses=np.array([1, 0, 1, 0]), probs=np.full(4, 0.5, np.float32), mastery=mastery,
                     gains=np.zeros((4, 2), np.float32))
    m = compute_metrics(t)
    assert m["monotonicity_violation_rate"] == 0
    assert m["students_with_violation"] == 0


def test_tolerance_of_one_millionth():
    mastery = np.array([[0.5, 1.0 + 5e-7], [0.5 - 5e-7, 0.2]], dtype=np.float64)
    t = hand_example(student_ids=["A"], offsets=np.array([0, 2]), skills=np.array([0, 0]),
                     responses=np.array([1, 0]), probs=np.array([0.5, 0.5]), mastery=mastery,
                     gains=np.array([[-5e-7, 0], [0, 0]]))
    m = compute_metrics(t)
    assert m["bounds_violation_rate"] == 0 and m["negative_gain_rate"] == 0
    assert m["monotonicity_violation_rate"] == pytest.approx(1 / 2)   # only 1.0 -> 0.2 counts


def test_constant_input_gives_none_not_zero_or_nan():
    assert pearson([1, 1, 1], [0, 1, 0]) is None
    assert pearson([0.2], [1]) is None
    t = hand_example(responses=np.ones(5, dtype=np.int64))
    m = compute_metrics(t)
    assert m["mastery_performance_corr"] is None
    assert m["gain_performance_corr"] is None
    assert m["auc"] is None
    assert m["accuracy"] == pytest.approx(1 / 3)     # probs 0.3, 0.8, 0.2 against all-correct


def test_mastery_recovery_uses_practised_skill():
    t = hand_example(true_mastery=np.array([[0.1, 9], [9, 0.2], [9, 0.3], [9, 0.4], [0.5, 9]], dtype=np.float32))
    m = compute_metrics(t)
    # model m_t[s_t] = [0.2, 0.6, 1.2, 0.4, 0.8] vs true [0.1, 0.2, 0.3, 0.4, 0.5]
    assert m["mastery_recovery_corr"] == pytest.approx(pearson([0.2, 0.6, 1.2, 0.4, 0.8], [.1, .2, .3, .4, .5]))


@pytest.mark.parametrize("mode", ["original", "cumulative"])
def test_padding_and_batching_never_change_metrics(mode):
    """Batch size (and so padding) changes no scored value beyond float rounding, and the
    metrics depend only on the scored values.

    Not asserted: equal AUC across batchings. An untrained model gives near-tied
    probabilities, and batch-1 and batch-25 matmuls round differently on different CPUs
    (AVX2, AVX-512, ATEN_CPU_CAPABILITY=default), so ties flip and the AUC moves by more
    than any fixed tolerance while every prediction agrees to 1e-6."""
    ds = simulate(students=25, skills=6, min_len=3, max_len=60, seed=2)
    torch.manual_seed(0)
    model = GainAKT2(ModelConfig(num_skills=6, max_len=64, d_model=16, n_heads=2, n_blocks=1, d_ff=16, mode=mode))
    a = score(model, ds, batch_size=1)      # no padding at all
    b = score(model, ds, batch_size=25)     # heavy padding
    assert a.student_ids == b.student_ids
    for name in ("offsets", "skills", "responses"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("probs", "mastery", "gains", "true_mastery"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=0, atol=1e-5, err_msg=name)
    # the same scored values in b's layout give exactly a's metrics: nothing else (padding,
    # batch order) reaches the metrics
    same = dataclasses.replace(b, probs=a.probs.copy(), mastery=a.mastery.copy(), gains=a.gains.copy())
    assert compute_metrics(same) == compute_metrics(a)


def test_no_label_leakage_in_auc():
    """Scores that copy r_t would give AUC 1; the model cannot see r_t, so a model trained on
    nothing stays near chance on random answers."""
    rng = np.random.default_rng(0)
    ds = simulate(students=40, skills=5, seed=1)
    for i in range(len(ds)):
        ds.responses[i] = rng.integers(0, 2, len(ds.responses[i]))
    torch.manual_seed(0)
    model = GainAKT2(ModelConfig(num_skills=5, max_len=128, d_model=16, n_heads=2, n_blocks=1, d_ff=16))
    m = compute_metrics(score(model, ds))
    assert abs(m["auc"] - 0.5) < 0.06
