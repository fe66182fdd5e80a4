"""benchmarks/synthetic_ceiling.py: reference predictors that know Synthetic-5's structure."""
import json

import numpy as np

from test_benchmarks import run_script


def irt_students(rng, n, concepts, slope, difficulty, guess=0.25):
    """(n, T) answers of students with one N(0, 1) ability per concept, items in a fixed order."""
    ability = rng.standard_normal((n, concepts.max() + 1))                  # (S, K)
    logit = slope[None, :] * ability[:, concepts] - difficulty[None, :]     # (S, T)
    p = guess + (1 - guess) / (1 + np.exp(-logit))
    return (rng.random(p.shape) < p).astype(int)


def write_three_line(path, answers, order):
    with open(path, "w") as f:
        for row in answers:
            f.write(f"{len(row)}\n{','.join(str(int(x) + 1) for x in order)},\n{','.join(map(str, row))},\n")


def make_folder(tmp_path, seed=0):
    rng = np.random.default_rng(seed)
    concepts = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0])              # 12 exercises, 2 concepts
    slope, difficulty = rng.uniform(1.5, 2.5, 12), rng.normal(0, 0.7, 12)
    folder = tmp_path / "fixed"
    folder.mkdir()
    order = np.arange(12)
    write_three_line(folder / "train.csv", irt_students(rng, 1500, concepts, slope, difficulty), order)
    write_three_line(folder / "test.csv", irt_students(rng, 600, concepts, slope, difficulty), order)
    return folder, concepts


def test_finds_the_hidden_concepts_and_its_posterior_beats_chance_and_the_per_step_regression(tmp_path):
    folder, truth = make_folder(tmp_path)
    out = tmp_path / "out"
    run_script("synthetic_ceiling.py", "--data", folder, "--concepts", "2", "--out", out, timeout=300)
    res = json.loads((out / "ceiling.json").read_text())
    found = np.array(res["concepts"])
    assert (found == truth).all() or (found == 1 - truth).all()             # the same partition
    rows = {r["predictor"].split(" ")[0]: r for r in res["rows"]}
    irt, lr = rows["concept_irt"], rows["position_lr"]
    assert irt["auc"] > 0.65 and lr["auc"] > 0.6                            # chance is 0.5
    assert irt["auc"] >= lr["auc"] - 0.005        # the true model family, fitted by Bayes' rule
    # later steps have more evidence about each concept: the posterior ranks them better
    early, middle, late = [k for k in irt if k.startswith("auc_steps")]
    assert (early, late) == ("auc_steps_2_5", "auc_steps_9_12")  # 1-based steps, in thirds
    assert irt[late] > irt[early]
    assert lr["with_concept_irt"] is not None and irt["with_concept_irt"] is None
    assert "| concept_irt |" in (out / "ceiling.md").read_text()


def test_scores_a_trained_run_on_the_same_steps_and_refuses_one_of_other_data(tmp_path):
    from cmkt.runs import create_run, execute_run
    folder, _ = make_folder(tmp_path)
    tiny = {"d_model": "8", "n_heads": "2", "d_ff": "16", "max_len": "20", "gain_hidden": "4", "recurrent": "4"}
    run = create_run(tmp_path, data=str(folder), mode="cumulative", preset="quick", epochs=1, seed=0,
                     overrides=tiny, name="tiny")
    execute_run(run)
    out = tmp_path / "out"
    run_script("synthetic_ceiling.py", "--data", folder, "--concepts", "2", "--runs", run, "--out", out, timeout=300)
    rows = json.loads((out / "ceiling.json").read_text())["rows"]
    assert len(rows) == 3 and rows[2]["predictor"] == str(run)
    assert 0.3 < rows[2]["auc"] < 1 and 0.3 < rows[2]["with_concept_irt"] < 1

    other = create_run(tmp_path, data="sim:students=40,skills=5", mode="cumulative", preset="quick", epochs=1,
                       overrides=tiny, name="other")
    execute_run(other)
    proc = run_script("synthetic_ceiling.py", "--data", folder, "--concepts", "2", "--runs", other,
                      "--out", tmp_path / "o2", check=False, timeout=300)
    assert proc.returncode == 2 and "error:" in proc.stderr          # 12 exercises, a 5-skill model


def test_refuses_students_that_do_not_share_one_sequence(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "train.csv").write_text("3\n1,2,3\n1,0,1\n3\n2,1,3\n0,0,1\n")
    (folder / "test.csv").write_text("3\n1,2,3\n1,1,1\n")
    proc = run_script("synthetic_ceiling.py", "--data", folder, "--out", tmp_path / "out", check=False)
    assert proc.returncode == 2
    assert "train.csv" in proc.stderr and "same order" in proc.stderr
    assert not (tmp_path / "out").exists()                       # nothing half-written
