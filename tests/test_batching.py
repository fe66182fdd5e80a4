import numpy as np

from cmkt.data.batching import batch_plan, chained_windows, collate, make_windows, token_runs
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


def test_token_runs_take_more_short_windows_up_to_the_budget():
    lengths = np.sort(np.random.default_rng(3).integers(1, 101, 2000))
    bounds = token_runs(lengths, 16, 800)
    assert bounds[0] == 0 and bounds[-1] == len(lengths) and (np.diff(bounds) > 0).all()
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        count, longest = hi - lo, lengths[hi - 1]
        if hi < len(lengths):
            assert count >= 16                                  # never fewer than batch_size
            if count > 16:                                      # more only within the budget ...
                assert count * longest <= 800
            assert (count + 1) * lengths[hi] > 800              # ... and as many as fit
    sizes = np.diff(bounds)
    assert sizes[0] >= 50                                       # the shortest windows: dozens a batch
    assert sizes.max() > 16 and len(bounds) - 1 < len(lengths) / 16
    # no budget: batch_size each (the plan without batch_tokens)
    assert np.array_equal(token_runs(lengths, 16, 0), np.r_[np.arange(0, 2000, 16), 2000])


def test_a_token_budget_plan_keeps_every_window_once_and_the_chain_order():
    rng = np.random.default_rng(4)
    ds = dataset(np.r_[rng.integers(2, 12, 300), rng.integers(50, 260, 40)])
    cw = chained_windows(ds, 40)
    plain = cw.plan(8, shuffle=True, seed=2)
    tokens = cw.plan(8, shuffle=True, seed=2, max_tokens=320)
    order = np.concatenate(tokens)
    assert sorted(order.tolist()) == list(range(len(cw)))          # every window exactly once
    pos = np.empty(len(order), int)
    pos[order] = np.arange(len(order))
    cont = np.nonzero(cw.continues)[0]
    batch_of = np.repeat(np.arange(len(tokens)), [len(g) for g in tokens])[pos]
    assert (batch_of[cont] > batch_of[cont - 1]).all()            # after the batch it continues
    lengths = cw.windows.lengths
    assert all(len(g) <= 8 or len(g) * lengths[g].max() <= 320 for g in tokens)
    assert len(tokens) < 0.7 * len(plain)                          # short students: fewer steps
    assert max(len(g) for g in tokens) > 8
    # without short windows nothing changes: 40-step windows fill 8 x 40 = 320 already
    long_only = chained_windows(dataset(np.full(50, 40)), 40)
    assert [g.tolist() for g in long_only.plan(8, True, 5, max_tokens=320)] == \
        [g.tolist() for g in long_only.plan(8, True, 5)]
