"""benchmarks/calibration.py: predicted P(correct) against the observed share, per bin."""
import importlib.util
import json

import numpy as np
import pytest

from cmkt.analysis.scoring import Trajectories
from test_benchmarks import REPO, run_script

spec = importlib.util.spec_from_file_location("calibration", REPO / "benchmarks" / "calibration.py")
calibration = importlib.util.module_from_spec(spec)
spec.loader.exec_module(calibration)


def trajectories(skills, responses, probs, offsets, momentary=None):
    n = len(skills)
    parts = None if momentary is None else np.stack([np.zeros(n), np.zeros(n), np.asarray(momentary, float)], 1)
    return Trajectories(student_ids=[str(i) for i in range(len(offsets) - 1)], offsets=np.asarray(offsets),
                        skills=np.asarray(skills), responses=np.asarray(responses), probs=np.asarray(probs, float),
                        mastery=np.zeros((n, 3)), gains=np.zeros((n, 3)), mode="cumulative", parts=parts)


def test_bins_skip_each_students_first_step_and_measure_the_gap_and_the_repeats():
    # student 0: steps 0..3, student 1: steps 4..6; steps 0 and 4 are never scored
    traj = trajectories(skills=[0, 1, 1, 2, 0, 2, 2], responses=[1, 1, 0, 0, 0, 0, 1],
                        probs=[0.5, 0.995, 0.3, 0.3, 0.9, 0.005, 0.7], offsets=[0, 4, 7],
                        momentary=[0, 7.0, -1.5, -1.5, 0, -7.0, 0.5])
    res = calibration.calibration(traj)
    assert res["steps"] == 5
    by_p = {r["bin"]: r for r in res["by_probability"]}
    assert set(by_p) == {"0–0.01", "0.2–0.4", "0.6–0.8", "0.99–1"}
    assert by_p["0.2–0.4"]["steps"] == 2 and by_p["0.2–0.4"]["observed"] == 0.0
    assert by_p["0.2–0.4"]["mean_p"] == pytest.approx(0.3)
    # repeats: another skill than the step before and the same answer: steps 1 (skill 0 -> 1,
    # answer 1 -> 1), 3 (1 -> 2, 0 -> 0) and 5 (0 -> 2, 0 -> 0); steps 2 and 6 repeat the skill
    assert by_p["0.99–1"]["repeat"] == 1.0 and by_p["0–0.01"]["repeat"] == 1.0
    assert res["repeat_share"] == pytest.approx(3 / 5)
    # ECE: per bin |mean p - observed| weighted by its steps (1, 2, 1, 1 steps)
    assert res["ece"] == pytest.approx((1 * 0.005 + 2 * 0.3 + 1 * 0.3 + 1 * 0.005) / 5)
    by_m = {r["bin"]: r["steps"] for r in res["by_momentary"]}
    assert by_m == {"4 to inf": 1, "-2 to -1": 2, "-inf to -6": 1, "0 to 1": 1}
    assert res["brier"] == pytest.approx(np.mean([0.005 ** 2, 0.3 ** 2, 0.3 ** 2, 0.005 ** 2, 0.3 ** 2]))


def test_an_mlp_run_has_no_momentary_table_and_nothing_to_score_is_an_error():
    traj = trajectories(skills=[0, 1], responses=[1, 0], probs=[0.5, 0.4], offsets=[0, 2])
    assert "by_momentary" not in calibration.calibration(traj)
    with pytest.raises(ValueError, match="no steps"):
        calibration.calibration(trajectories(skills=[0], responses=[1], probs=[0.5], offsets=[0, 1]))


def test_cli_scores_a_trained_run_and_names_a_missing_one(tmp_path):
    from cmkt.runs import create_run, execute_run
    tiny = {"d_model": "8", "n_heads": "2", "d_ff": "16", "max_len": "20", "gain_hidden": "4", "recurrent": "4"}
    run = create_run(tmp_path, data="sim:students=40,skills=4", mode="cumulative", preset="quick", epochs=1,
                     seed=0, overrides=tiny, name="tiny")
    execute_run(run)
    out = tmp_path / "out"
    run_script("calibration.py", run, "--data", "sim:students=40,skills=4", "--out", out)
    res = json.loads((out / "calibration.json").read_text())
    assert sum(r["steps"] for r in res["by_probability"]) == res["steps"] > 0
    assert sum(r["steps"] for r in res["by_momentary"]) == res["steps"]
    assert 0 <= res["ece"] <= 1 and "| P(correct) bin |" in (out / "calibration.md").read_text()
    proc = run_script("calibration.py", tmp_path / "nope", "--data", "sim", "--out", tmp_path / "o2", check=False)
    assert proc.returncode == 2 and "nope" in proc.stderr and not (tmp_path / "o2").exists()
