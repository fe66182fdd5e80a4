import numpy as np

from cmkt.data import read_data
from cmkt.data.sim import SimConfig, simulate, write_long_csv


def test_same_seed_same_data_other_seed_other_data():
    a, b = simulate(students=30, skills=5, seed=4), simulate(students=30, skills=5, seed=4)
    c = simulate(students=30, skills=5, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a.skills, b.skills))
    assert all(np.array_equal(x, y) for x, y in zip(a.responses, b.responses))
    assert all(np.array_equal(x, y) for x, y in zip(a.true_mastery, b.true_mastery))
    assert any(not np.array_equal(x, y) for x, y in zip(a.responses, c.responses))


def test_true_mastery_is_known_monotone_and_drives_answers():
    ds = simulate(SimConfig(students=400, skills=6, seed=0))
    assert ds.num_skills == 6 and len(ds.skill_names) == 6 and ds.skill_names[0] == "Counting"
    tm = ds.true_mastery
    assert all(m.shape == (len(s), 6) for m, s in zip(tm, ds.skills))
    assert all((np.diff(m, axis=0) >= 0).all() and m.min() >= 0 and m.max() <= 1 for m in tm)
    # mastery before an answer predicts it
    before = np.concatenate([m[np.arange(len(s) - 1), s[1:]] for m, s in zip(tm, ds.skills)])
    r = np.concatenate([r[1:] for r in ds.responses])
    assert before[r == 1].mean() > before[r == 0].mean() + 0.1


def test_test_split_shares_skills_not_students():
    tr, te = simulate(students=20, skills=4, seed=1), simulate(students=20, skills=4, seed=1, split="test")
    assert tr.skill_names == te.skill_names
    assert set(tr.student_ids).isdisjoint(te.student_ids)


def test_long_csv_roundtrip(tmp_path):
    ds = simulate(students=15, skills=4, seed=3)
    path = write_long_csv(ds, tmp_path / "sim.csv")
    back = read_data(path)
    assert back.student_ids == ds.student_ids
    assert back.skill_names == ds.skill_names
    for a, b, c, d in zip(ds.skills, back.skills, ds.responses, back.responses):
        assert np.array_equal(a, b) and np.array_equal(c, d)
    assert not list(tmp_path.glob("*.tmp"))
