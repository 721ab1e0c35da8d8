import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch

from sslcore.data.user_data import from_user_data
from sslcore.errors import DataError


def _data(x_u, x_l, y_l, x_t, y_t):
    return {"unlabeled": x_u, "labeled": (x_l, y_l), "test": (x_t, y_t)}


def test_numpy_polars_pandas_and_torch_inputs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3)).astype(np.float32)
    y = np.array([0, 1] * 10)
    frame = pl.DataFrame(x, schema=["a", "b", "c"])
    labeled = pd.DataFrame(x, columns=["a", "b", "c"])
    data = from_user_data(_data(frame, labeled, pl.Series(y), torch.from_numpy(x), y.astype(float)))
    assert data.feature_names == ["a", "b", "c"]
    assert data.labeled_y.dtype == np.int64 and data.test_x.dtype == np.float32


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.pop("test"), "missing keys"),
    (lambda d: d.update(labeled=np.zeros((4, 3))), "pair"),
    (lambda d: d.update(test=(np.full((4, 3), np.nan), np.array([0, 1, 0, 1]))),
     "test features contain 12 NaN/inf values .*row 0, column 0"),
    (lambda d: d.update(labeled=(np.zeros((4, 3)), np.array([1, 1, 1, 1]))), "single class"),
    (lambda d: d.update(labeled=(np.zeros((4, 2)), np.array([0, 1, 0, 1]))), "shape"),
    (lambda d: d.update(unlabeled=pl.DataFrame({"a": ["x", "y"]})), r"columns \['a'\] are not numeric"),
])
def test_bad_user_data(mutate, match):
    d = _data(np.zeros((4, 3)), np.zeros((4, 3)), np.array([0, 1, 0, 1]), np.zeros((4, 3)),
              np.array([0, 1, 0, 1]))
    mutate(d)
    with pytest.raises(DataError, match=match):
        from_user_data(d)
