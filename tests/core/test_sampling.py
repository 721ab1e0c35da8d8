import numpy as np
import pytest

from sslcore.data.sampling import nested_subsets
from sslcore.errors import DataError

FRACTIONS = [0.01, 0.05, 0.1, 0.25, 1.0]


@pytest.fixture
def rare_labels():
    y = np.zeros(20_000, dtype=np.int64)
    y[np.random.default_rng(0).choice(len(y), 100, replace=False)] = 1  # 0.5% positives
    return y


def test_nested_across_fractions(rare_labels):
    subsets = nested_subsets(rare_labels, FRACTIONS, seed=3)
    for small, big in zip(subsets, subsets[1:]):
        assert set(small.all) <= set(big.all)
    assert len(subsets[-1].all) == len(rare_labels)


def test_stratified_with_positives_at_one_percent(rare_labels):
    subsets = nested_subsets(rare_labels, FRACTIONS, seed=0)
    one = subsets[0]
    pos = int(rare_labels[one.all].sum())
    assert pos >= 1 and abs(pos - 1) <= 1  # ceil(1% of 100)
    for s in subsets:
        share = rare_labels[s.all].mean()
        assert abs(share - 0.005) < 0.005
        assert rare_labels[s.train].sum() >= 1 and rare_labels[s.val].sum() >= 1
        assert not set(s.train) & set(s.val)


def test_min_per_class_floor(rare_labels):
    tiny = nested_subsets(rare_labels, [0.001], seed=0, min_per_class=4)[0]
    assert rare_labels[tiny.all].sum() == 4


def test_seeds_give_different_subsets_and_same_seed_same(rare_labels):
    a = nested_subsets(rare_labels, [0.05], seed=0)[0].all
    b = nested_subsets(rare_labels, [0.05], seed=1)[0].all
    c = nested_subsets(rare_labels, [0.05], seed=0)[0].all
    assert not np.array_equal(a, b) and np.array_equal(a, c)


def test_too_few_positives_is_a_clear_error():
    y = np.zeros(1000, dtype=np.int64)
    y[0] = 1
    with pytest.raises(DataError, match=r"only 1 row\(s\) of class 1.*min_labeled_per_class"):
        nested_subsets(y, FRACTIONS, seed=0, min_per_class=2)


def _histories():
    # 40 groups of 10 rows: 8 groups hold positives (a failure history's last rows).
    groups = np.repeat(np.arange(40), 10)
    y = np.zeros(400, dtype=np.int64)
    for g in range(8):
        y[g * 10 + 7:(g + 1) * 10] = 1
    return y, groups


def test_groups_are_sampled_whole_and_nested():
    y, groups = _histories()
    subsets = nested_subsets(y, [0.25, 0.5, 1.0], seed=3, min_per_class=2, groups=groups)
    previous = set()
    for s in subsets:
        chosen = set(groups[s.all].tolist())
        for g in chosen:  # every row of a chosen group, never part of one
            assert set(np.flatnonzero(groups == g)) <= set(s.all.tolist())
        assert not set(groups[s.train]) & set(groups[s.val])  # val split by group
        assert previous <= chosen
        previous = chosen
    positive_groups = {g for g in set(groups[subsets[0].all]) if y[groups == g].any()}
    assert len(positive_groups) == 2  # 25% of the 8 failure histories
    assert len(set(groups[subsets[-1].all])) == 40


def test_groups_need_enough_positive_histories():
    y, groups = _histories()
    with pytest.raises(DataError, match=r"only 8 group\(s\).*class 1"):
        nested_subsets(y, [0.1], seed=0, min_per_class=9, groups=groups)


def test_run_to_failure_groups_count_for_both_classes():
    # Every group ends in a failure (C-MAPSS train units): no group is healthy-only, yet each
    # holds healthy rows, so the fraction still samples them and both classes are present.
    groups = np.repeat(np.arange(20), 10)
    y = np.zeros(200, dtype=np.int64)
    y[np.arange(200) % 10 >= 7] = 1
    (subset,) = nested_subsets(y, [0.25], seed=0, min_per_class=2, groups=groups)
    assert len(set(groups[subset.all])) == 5
    assert set(y[subset.train]) == {0, 1} and set(y[subset.val]) == {0, 1}
