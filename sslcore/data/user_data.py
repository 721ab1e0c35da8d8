"""Turn the user's own data (arrays, tensors, polars/pandas frames) into SSLData.

``data = {"unlabeled": X_u, "labeled": (X_l, y_l), "test": (X_t, y_t)}``; frames keep their
column names as feature names. Features must already be in the shape the vertical's modality
expects (rows x columns; N x C x H x W; N x C x T).

Optionally ``data["shifted"] = {"site_b": {"test": (X, y), "unlabeled": X_u}}``: named shifted
domains (:mod:`sslcore.data.shift`), each with a test set and, optionally, an unlabeled pool,
checked like the main arrays and against them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from sslcore.data.shift import ShiftedDomain
from sslcore.data.ssl_data import SSLData
from sslcore.errors import DataError

_KEYS = ("unlabeled", "labeled", "test")
_OPTIONAL = ("shifted",)
_DOMAIN_KEYS = ("test", "unlabeled")


def _to_numpy(obj: Any, where: str) -> tuple[np.ndarray, list[str] | None]:
    names = None
    if hasattr(obj, "columns") and hasattr(obj, "to_numpy"):  # polars or pandas frame
        names = [str(c) for c in obj.columns]
        non_numeric = [n for n, dt in zip(names, _dtypes(obj), strict=True) if not dt]
        if non_numeric:
            raise DataError(f"{where}: columns {non_numeric} are not numeric; encode or drop them")
        obj = obj.to_numpy()
    elif hasattr(obj, "detach") and hasattr(obj, "cpu"):  # torch tensor
        obj = obj.detach().cpu().numpy()
    try:
        arr = np.asarray(obj)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: cannot convert {type(obj).__name__} to an array: {exc}") from exc
    return arr, names


def _dtypes(frame: Any) -> list[bool]:
    if hasattr(frame, "schema") and hasattr(frame.schema, "items"):  # polars
        return [dt.is_numeric() or str(dt) == "Boolean" for _, dt in frame.schema.items()]
    return [np.issubdtype(dt, np.number) or dt == bool for dt in frame.dtypes]  # pandas


def _labels(obj: Any, where: str) -> np.ndarray:
    y, _ = _to_numpy(obj, where)
    y = y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataError(f"{where}: labels must be whole class numbers without NaN")
        y = y.astype(np.int64)
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise DataError(f"{where}: labels must be integers 0..C-1, got dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise DataError(f"{where}: labels must be integers 0..C-1, found {int(y.min())}")
    return y


def from_user_data(data: Mapping[str, Any], class_names: list[str] | None = None) -> SSLData:
    """Validate and convert a user data mapping; raise DataError naming the bad key."""
    if not isinstance(data, Mapping):
        raise DataError(f"data must be a mapping with keys {_KEYS}, got {type(data).__name__}")
    missing = [k for k in _KEYS if k not in data]
    extra = [k for k in data if k not in _KEYS + _OPTIONAL]
    if missing or extra:
        raise DataError(f"data: missing keys {missing}, unknown keys {extra}; expected {_KEYS}"
                        f" and optionally {_OPTIONAL}")
    unlabeled, names = _to_numpy(data["unlabeled"], "data['unlabeled']")
    pairs = {key: _pair(data[key], f"data[{key!r}]") for key in ("labeled", "test")}
    return SSLData(
        unlabeled=unlabeled, labeled_x=pairs["labeled"][0], labeled_y=pairs["labeled"][1],
        test_x=pairs["test"][0], test_y=pairs["test"][1], sources=["user data (Python API)"],
        feature_names=names, class_names=class_names,
        shifted=_shifted(data.get("shifted", {}), class_names),
    ).validate()


def _pair(value: Any, where: str) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """(features, labels, column names of a frame) of a ``(X, y)`` pair."""
    if not (isinstance(value, tuple | list) and len(value) == 2):
        raise DataError(f"{where} must be a (features, labels) pair")
    x, names = _to_numpy(value[0], f"{where}[0]")
    return x, _labels(value[1], f"{where}[1]"), names


def _shifted(domains: Any, class_names: list[str] | None) -> dict[str, ShiftedDomain]:
    """``data["shifted"]`` -> ShiftedDomains (checked against the source by SSLData.validate)."""
    if not isinstance(domains, Mapping):
        raise DataError("data['shifted'] must map domain names to {'test': (X, y), "
                        f"'unlabeled': X}}, got {type(domains).__name__}")
    out = {}
    for name, domain in domains.items():
        where = f"data['shifted'][{name!r}]"
        if not isinstance(name, str):
            raise DataError(f"{where}: domain names are strings (e.g. 'site_b')")
        if not isinstance(domain, Mapping) or "test" not in domain:
            raise DataError(f"{where} must be a mapping with 'test': (X, y) and optionally "
                            "'unlabeled': X")
        extra = [k for k in domain if k not in _DOMAIN_KEYS]
        if extra:
            raise DataError(f"{where}: unknown keys {extra}; expected {_DOMAIN_KEYS}")
        test_x, test_y, columns = _pair(domain["test"], f"{where}['test']")
        unlabeled = None
        if domain.get("unlabeled") is not None:
            unlabeled, _ = _to_numpy(domain["unlabeled"], f"{where}['unlabeled']")
        out[name] = ShiftedDomain(test_x=test_x, test_y=test_y, unlabeled=unlabeled,
                                  sources=["user data (Python API)"], feature_names=columns,
                                  class_names=class_names, where=where)
    return out
