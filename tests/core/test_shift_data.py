"""Shifted domains as data: parsing, checks against the source, leakage, the target pool."""

from __future__ import annotations

import copy

import numpy as np
import polars as pl
import pytest

from sslcore.data.shift import check_names, pretraining_data
from sslcore.data.user_data import from_user_data
from sslcore.errors import ConfigError, DataError

RNG = np.random.default_rng(0)
X = RNG.normal(size=(100, 4)).astype(np.float32)
Y = np.array([0, 1] * 50)
XS = (RNG.normal(size=(40, 4)) + 1).astype(np.float32)  # the shifted site: moved features
YS = np.array([0, 1] * 20)


def _data() -> dict:
    return {"unlabeled": X[:50], "labeled": (X[50:80], Y[50:80]), "test": (X[80:], Y[80:]),
            "shifted": {"site_b": {"test": (XS[:20], YS[:20]), "unlabeled": XS[20:]}}}


def test_shifted_domains_parse_and_enter_the_data_card():
    data = from_user_data(_data())
    dom = data.shifted["site_b"]
    assert dom.test_x.dtype == np.float32 and dom.test_y.dtype == np.int64
    card = data.card()
    assert card.rows["shift.site_b.test"] == 20 and card.rows["shift.site_b.unlabeled"] == 20
    assert card.class_balance["shift.site_b.test"] == {"0": 10, "1": 10}
    plain = {k: v for k, v in _data().items() if k != "shifted"}
    assert from_user_data(plain).card().content_hash != card.content_hash
    other = _data()
    other["shifted"]["site_b"]["test"] = (XS[:20] + 1, YS[:20])
    assert from_user_data(other).card().content_hash != card.content_hash


def _set_test(x, y):
    return lambda d: d["shifted"]["site_b"].update(test=(x, y))


@pytest.mark.parametrize("mutate, error, match", [
    (_set_test(XS[:20, :3], YS[:20]), DataError,
     r"data\['shifted'\]\['site_b'\] test features have shape \(3,\) per sample but unlabeled "
     r"has \(4,\)"),
    (_set_test(XS[:20], YS[:20] + 1), DataError,
     r"label set \[1, 2\] differs from the source's \[0, 1\] \(extra \[2\], missing \[0\]\)"),
    (_set_test(XS[:20], np.zeros(20, dtype=int)), DataError, r"missing \[1\]"),
    (_set_test(XS[:0], YS[:0]), DataError, r"\['site_b'\] test set is empty"),
    (_set_test(X[80:], Y[80:]), DataError, "its test set is the in-domain test set"),
    (_set_test(np.full((20, 4), np.nan), YS[:20]), DataError, "NaN/inf"),
    (lambda d: d["shifted"]["site_b"].update(unlabeled=XS[20:, :2]), DataError,
     r"\['site_b'\] unlabeled features have shape \(2,\)"),
    (lambda d: d["shifted"].update({"site.b": {"test": (XS[:20], YS[:20])}}), ConfigError,
     "name 'site.b': use letters, digits"),
    (lambda d: d["shifted"]["site_b"].update(labels=YS), DataError, r"unknown keys \['labels'\]"),
    (lambda d: d["shifted"].update(site_c=(XS[:20], YS[:20])), DataError, "must be a mapping"),
])
def test_bad_shifted_domain_is_named(mutate, error, match):
    d = copy.deepcopy(_data())
    mutate(d)
    with pytest.raises(error, match=match):
        from_user_data(d)


def test_columns_and_channels_must_match_the_source():
    d = _data()
    d["unlabeled"] = pl.DataFrame(X[:50], schema=list("abcd"))
    d["shifted"]["site_b"]["test"] = (pl.DataFrame(XS[:20], schema=list("abdc")), YS[:20])
    with pytest.raises(DataError, match=r"columns differ from the source's \(first: "
                                        r"\[\('d', 'c'\), \('c', 'd'\)\]"):
        from_user_data(d)
    images = RNG.normal(size=(24, 3, 8, 8)).astype(np.float32)
    y = np.array([0, 1] * 12)
    d = {"unlabeled": images[:8], "labeled": (images[8:16], y[8:16]),
         "test": (images[16:], y[16:]),
         "shifted": {"grey": {"test": (images[16:, :1], y[16:])}}}
    with pytest.raises(DataError, match=r"\['grey'\] test images have 1 channel\(s\) but "
                                        r"unlabeled has 3"):
        from_user_data(d)


def test_overlap_with_the_in_domain_test_warns():
    d = _data()
    d["shifted"]["site_b"]["test"] = (np.concatenate([XS[:18], X[80:82]]), YS[:20])
    with pytest.warns(UserWarning, match="2 test row"):
        from_user_data(d)


def test_names_that_collide_with_metric_keys_are_refused():
    shifted = from_user_data(_data()).shifted
    dom = shifted["site_b"]
    with pytest.raises(ConfigError, match="named like the metric 'auroc'"):
        check_names({"auroc": dom}, ["auprc"], ["auprc", "auroc"], {})
    # shift_site + _macro_f1 == shift_site_macro + _f1
    with pytest.raises(ConfigError, match="metric key 'shift_site_macro_f1' would be both"):
        check_names({"site": dom, "site_macro": dom}, ["auprc"], ["f1", "macro_f1"], {})
    with pytest.raises(DataError, match=r"metric 'lead' reads test_meta \['t'\]"):
        check_names(shifted, ["lead"], ["lead"], {"lead": ("t",)})
    check_names(shifted, ["auprc", "macro_f1"], ["auprc", "macro_f1", "f1"], {})


@pytest.mark.parametrize("plant, targets, match", [
    (lambda d: d.update(unlabeled=np.concatenate([X[:50], XS[3:4]])), [],
     r"test row 3 of shifted domain 'site_b' is also in the unlabeled pool \(row 50\)"),
    (lambda d: d.update(labeled=(np.concatenate([X[50:80], XS[7:8]]), Y[50:81])), [],
     r"test row 7 of shifted domain 'site_b' is also in the labeled pool \(row 30\)"),
    (lambda d: d["shifted"]["site_b"].update(unlabeled=np.concatenate([XS[20:], XS[5:6]])),
     ["site_b"], r"test row 5 of shifted domain 'site_b' is also in the unlabeled pool of "
                 r"shifted domain 'site_b' \(pretrain.target_unlabeled\) \(row 20\)"),
    (lambda d: d["shifted"]["site_b"].update(unlabeled=np.concatenate([XS[20:], X[85:86]])),
     ["site_b"], r"in-domain test row 5 is also in the unlabeled pool of shifted domain"),
])
def test_leakage_of_test_rows_into_a_pool_is_an_error(plant, targets, match):
    d = copy.deepcopy(_data())
    plant(d)
    with pytest.raises(DataError, match="leakage: " + match):
        pretraining_data(from_user_data(d), targets)


def test_an_unused_target_pool_is_not_scanned():
    d = _data()
    d["shifted"]["site_b"]["unlabeled"] = np.concatenate([XS[20:], XS[5:6]])
    data = from_user_data(d)
    assert pretraining_data(data, []) is data  # its pool never reaches pretraining


def test_target_unlabeled_joins_the_pool_and_changes_the_hash():
    data = from_user_data(_data())
    pooled = pretraining_data(data, ["site_b"])
    assert len(pooled.unlabeled) == 70
    np.testing.assert_array_equal(pooled.unlabeled[50:], XS[20:])
    assert pooled.notes["pretrain_pool"] == "source (50 rows) + site_b (20 rows)"
    assert pooled.card().content_hash != data.card().content_hash
    assert len(data.unlabeled) == 50  # the input is left as it was
    with pytest.raises(ConfigError, match=r"target_unlabeled: \['site_c'\] are not shifted "
                                          r"domains of this run \(it has \['site_b'\]\)"):
        pretraining_data(data, ["site_c"])
    d = _data()
    del d["shifted"]["site_b"]["unlabeled"]
    with pytest.raises(DataError, match="no unlabeled rows, but pretrain.target_unlabeled"):
        pretraining_data(from_user_data(d), ["site_b"])


def test_a_parquet_source_pool_cannot_be_joined(tmp_path):
    from sslcore.data.parquet_pool import ParquetPool

    pl.DataFrame(X[:50], schema=list("abcd")).write_parquet(tmp_path / "pool.parquet")
    data = from_user_data(_data())
    data.unlabeled = ParquetPool([tmp_path / "pool.parquet"], list("abcd"))
    pretraining_data(data, [])  # scanned by row group for leakage, no error
    with pytest.raises(DataError, match="a Parquet pool .* cannot be joined"):
        pretraining_data(data, ["site_b"])
    pl.DataFrame(np.concatenate([X[:50], XS[2:3]]), schema=list("abcd")).write_parquet(
        tmp_path / "leaky.parquet")
    data.unlabeled = ParquetPool([tmp_path / "leaky.parquet"], list("abcd"))
    with pytest.raises(DataError, match=r"test row 2 of shifted domain 'site_b' is also in the "
                                        r"unlabeled pool \(.*leaky.parquet, row 50\)"):
        pretraining_data(data, [])
