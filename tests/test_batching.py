import numpy as np

from cmkt.data.batching import batch_plan, collate, make_windows
from cmkt.data.dataset import KTDataset, train_valid_split
from cmkt.data.sim import simulate


def dataset(lengths, num_skills=5):
    rng = np.random.default_rng(0)
    return KTDataset([rng.integers(0, num_skills, n) for n in lengths], [rng.integers(0, 2, n) for n in lengths],
                     [str(i) for i in range(len(lengths))], num_skills, list("12345"), list("abcde"))


def test_long_sequences_are_cut_never_dropped():
    ds = dataset([1, 7, 200, 201, 1033, 35])
    w = make_windows(ds, max_len=200)
    assert w.lengths.max() <= 200
    for i, n in enumerate(ds.lengths):
        mine = np.nonzero(w.row == i)[0]
        covered = np.concatenate([np.arange(w.start[k], w.end[k]) for k in mine])
        assert np.array_equal(covered, np.arange(n))      # every step exactly once, in order
    assert (w.row == 4).sum() == 6                          # 1033 steps -> 5 x 200 + 33


def test_batches_group_similar_lengths():
    rng = np.random.default_rng(1)
    lengths = rng.integers(2, 200, 1000)
    ds = dataset(lengths)
    w = make_windows(ds, 200)
    groups = batch_plan(w, 32, shuffle=True, seed=0)
    assert sorted(np.concatenate(groups).tolist()) == list(range(len(w)))
    real = sum(w.lengths[g].sum() for g in groups)
    padded = sum(len(g) * w.lengths[g].max() for g in groups)
    assert padded / real < 1.1            # a 35-step student is not padded to 200 steps
    # shuffling is seeded
    again = batch_plan(w, 32, shuffle=True, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(groups, again))


def test_collate_pads_and_masks():
    ds = dataset([3, 5])
    w = make_windows(ds, 4)
    s, r, m = collate(ds, w, np.arange(len(w)))
    assert s.shape == (3, 4) and m.sum().item() == 8
    assert m.tolist()[0] == [True, True, True, False]


def test_train_valid_split_by_student():
    ds = simulate(students=50, skills=4, seed=0)
    tr, va = train_valid_split(ds, 0.2, seed=7)
    assert len(va) == 10 and len(tr) == 40
    assert set(tr.student_ids).isdisjoint(va.student_ids)
    assert va.true_mastery is not None and len(va.true_mastery) == 10
