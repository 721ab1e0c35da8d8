"""Shifted domains: the same task measured elsewhere (another site, scanner, season, fleet).

A run may carry any number of named shifted domains (:attr:`SSLData.shifted`): every model of
every arm is also scored on each domain's test set, with the threshold and model choices made
on the in-domain validation split, so a shifted set never influences a choice. A domain's
unlabeled pool joins the run's unlabeled pool only when ``pretrain.target_unlabeled`` names it
(unsupervised domain adaptation: pretraining, and every label-free use of the pool, in every
arm, sees the target's unlabeled rows; never its labels or test rows).

Two routes end in the same :class:`ShiftedDomain`:

- config: ``dataset.shifted: {site_b: {...params override...}}``; :func:`domains_from_loader`
  calls the dataset loader again with the params deep-merged with the override and another
  seed; of what it returns, the test split is the shifted test set, the unlabeled pool the
  target pool, and the labeled pool is discarded;
- Python API: ``data["shifted"] = {"site_b": {"test": (X, y), "unlabeled": X_u}}``
  (:func:`sslcore.data.user_data.from_user_data`).

Checks (each a :class:`~sslcore.errors.DataError` or ConfigError naming the domain, before any
work): same per-sample shape, channels, columns and label set as the source
(:func:`check_domains`, from ``SSLData.validate``); names that cannot collide in metric keys
(:func:`check_names`); and the leakage check (:func:`pretraining_data`): no shifted test row,
compared by the BLAKE2b digest of its bytes as the image loaders compare test images, is in the
labeled pool or in any unlabeled pool the run uses, and no in-domain test row is in a target
pool.

Example::

    data = pretraining_data(data, cfg.pretrain.target_unlabeled)  # checked, pools joined
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import warnings
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sslcore.config import SHIFT_NAME_PATTERN, deep_merge
from sslcore.data.parquet_pool import ParquetPool
from sslcore.errors import ConfigError, DataError

if TYPE_CHECKING:
    from sslcore.data.ssl_data import SSLData


@dataclass
class ShiftedDomain:
    """One shifted domain: its test set and, optionally, its unlabeled pool.

    ``where`` says where it was given (``dataset.shifted.site_b``, ``data['shifted']['site_b']``)
    for error messages."""

    test_x: np.ndarray
    test_y: np.ndarray
    test_meta: dict[str, np.ndarray] = field(default_factory=dict)
    unlabeled: np.ndarray | ParquetPool | None = None
    sources: list[str] = field(default_factory=list)
    feature_names: list[str] | None = None
    class_names: list[str] | None = None
    where: str = ""


def domains_from_loader(entry: Any, params: dict[str, Any],
                        overrides: Mapping[str, dict[str, Any]], seed: int,
                        keep_unlabeled: Collection[str] = ()) -> dict[str, ShiftedDomain]:
    """Build each ``dataset.shifted`` domain with the dataset loader ``entry``: the params
    deep-merged with its override, seed ``seed + 1 + index`` (rows differ from the in-domain
    draw). The labeled pool of what the loader returns is discarded, and so is the unlabeled
    pool of a domain not in ``keep_unlabeled`` (``pretrain.target_unlabeled``): never used,
    never held in memory or hashed."""
    out = {}
    for index, (name, override) in enumerate(overrides.items()):
        where = f"dataset.shifted.{name}"
        try:
            loaded = entry.build(deep_merge(params, override), seed=seed + 1 + index).validate()
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
        out[name] = ShiftedDomain(
            test_x=loaded.test_x, test_y=loaded.test_y, test_meta=dict(loaded.test_meta),
            unlabeled=loaded.unlabeled if name in keep_unlabeled else None,
            sources=list(loaded.sources),
            feature_names=loaded.feature_names, class_names=loaded.class_names, where=where)
    return out


def check_domains(data: SSLData) -> None:
    """Each domain against the (validated) source: shape, channels, columns, labels, meta,
    values; casts features to float32 and labels to int64. A test set identical to the
    in-domain one is an error; one sharing some rows with it, a warning."""
    from sslcore.data.ssl_data import _check_channels_first, _check_finite, _mismatch

    source_labels = set(np.unique(np.concatenate([data.labeled_y, data.test_y])).tolist())
    test_digests = set(row_digests(data.test_x)) if data.shifted else set()
    for name, dom in data.shifted.items():
        where = dom.where or f"shifted domain {name!r}"
        if not re.match(SHIFT_NAME_PATTERN, name):
            raise ConfigError(f"{where}: name {name!r}: use letters, digits, _ and - (starting "
                              "with a letter); it becomes part of metric names")
        arrays = {"test": dom.test_x}
        if isinstance(dom.unlabeled, np.ndarray):
            arrays["unlabeled"] = dom.unlabeled
        elif dom.unlabeled is not None and not isinstance(dom.unlabeled, ParquetPool):
            raise DataError(f"{where}: unlabeled must be an array, got "
                            f"{type(dom.unlabeled).__name__}")
        for split, x in arrays.items():
            label = f"{where} {split}"
            if not isinstance(x, np.ndarray) or x.ndim < 2:
                raise DataError(f"{label} features must be an array of shape (n_samples, ...), "
                                f"got {type(x).__name__} {getattr(x, 'shape', '')}")
            if len(x) == 0:
                raise DataError(f"{label} set is empty: give at least one sample, or drop the "
                                "domain")
            if x.ndim == 4:
                _check_channels_first(label, tuple(x.shape[1:]))
            if x.shape[1:] != data.input_shape:
                raise DataError(_mismatch(label, tuple(x.shape[1:]), data.input_shape))
            if not np.issubdtype(x.dtype, np.number):
                raise DataError(f"{label} features have dtype {x.dtype}; numeric expected")
            _check_finite(label, x, data.feature_names)
        if dom.feature_names and data.feature_names and dom.feature_names != data.feature_names:
            diff = [(a, b) for a, b in zip(dom.feature_names, data.feature_names) if a != b]
            raise DataError(f"{where}: columns differ from the source's (first: {diff[:3]} as "
                            "(shifted, source)); give the same columns in the same order")
        if dom.class_names and data.class_names and dom.class_names != data.class_names:
            raise DataError(f"{where}: class names {dom.class_names} differ from the source's "
                            f"{data.class_names}; the shifted test set must label the same "
                            "classes the same way")
        _check_labels(where, dom, source_labels)
        for key, values in dom.test_meta.items():
            if len(values) != len(dom.test_x):
                raise DataError(f"{where} test_meta[{key!r}] has {len(values)} entries for "
                                f"{len(dom.test_x)} rows; give one value per row")
        dom.test_x = dom.test_x.astype(np.float32, copy=False)
        dom.test_y = dom.test_y.astype(np.int64, copy=False)
        if isinstance(dom.unlabeled, np.ndarray):
            dom.unlabeled = dom.unlabeled.astype(np.float32, copy=False)
        digests = set(row_digests(dom.test_x))
        shared = digests & test_digests
        if digests == test_digests:
            raise DataError(f"{where}: its test set is the in-domain test set (the same rows); "
                            "a shifted domain needs rows measured elsewhere (for a loader: an "
                            "override that changes what the test split reads)")
        if shared:
            warnings.warn(f"{where}: {len(shared)} test row(s) also in the in-domain test set",
                          UserWarning, stacklevel=3)


def _check_labels(where: str, dom: ShiftedDomain, source_labels: set[int]) -> None:
    y = dom.test_y
    if not isinstance(y, np.ndarray) or y.ndim != 1 or len(y) != len(dom.test_x):
        raise DataError(f"{where} test labels have shape {getattr(y, 'shape', None)}; expected "
                        f"({len(dom.test_x)},), one label per row")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where} test labels have dtype {y.dtype}; integer classes expected")
    labels = set(np.unique(y).tolist())
    extra, missing = sorted(labels - source_labels), sorted(source_labels - labels)
    if extra or missing:
        raise DataError(f"{where}: the test set's label set {sorted(labels)} differs from the "
                        f"source's {sorted(source_labels)} (extra {extra}, missing {missing}); "
                        "the shifted test set must hold the source's classes")


def check_names(shifted: Mapping[str, ShiftedDomain], metrics: Iterable[str],
                registered: Iterable[str], needs_meta: Mapping[str, tuple[str, ...]]) -> None:
    """Names that make unambiguous metric keys (``shift_<name>_<metric>``) and domains that
    carry the test metadata the ``metrics`` read (``needs_meta``: metric -> keys).

    Raises:
        ConfigError: a domain named like a metric, or two (domain, metric) pairs giving one key.
        DataError: a domain's test set lacks metadata a metric of the run reads.
    """
    registered = sorted(set(registered) | set(metrics))
    keys: dict[str, tuple[str, str]] = {}
    for name, dom in shifted.items():
        where = dom.where or f"shifted domain {name!r}"
        if name in registered:
            raise ConfigError(f"{where}: the domain is named like the metric {name!r}; rename "
                              "it (e.g. site_b): its metrics are logged as shift_<name>_<metric>")
        for metric in registered:
            key = f"shift_{name}_{metric}"
            if key in keys and keys[key][0] != name:
                other = keys[key]
                raise ConfigError(f"{where}: metric key {key!r} would be both metric "
                                  f"{metric!r} of domain {name!r} and metric {other[1]!r} of "
                                  f"domain {other[0]!r}; rename one of the domains")
            keys[key] = (name, metric)
        for metric in metrics:
            lacking = [k for k in needs_meta.get(metric, ()) if k not in dom.test_meta]
            if lacking:
                raise DataError(f"{where}: metric {metric!r} reads test_meta {lacking}, which "
                                "this domain's test set does not carry")


def row_digests(x: np.ndarray) -> list[bytes]:
    """One BLAKE2b digest per row (sample) of ``x``: equal rows, equal digests."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in x]


def _scan(what: str, x: np.ndarray | ParquetPool, tests: dict[bytes, str]) -> None:
    """Raise DataError at the first row of ``x`` that is a protected test row."""
    if isinstance(x, ParquetPool):  # read once, by row group: never whole
        for group in x.groups:
            values = x.read_group(group)
            for row, digest in enumerate(row_digests(values)):
                if digest in tests:
                    _leak(f"{what} ({group.path}, row {group.offset + row})", tests[digest])
        return
    for row, digest in enumerate(row_digests(x)):
        if digest in tests:
            _leak(f"{what} (row {row})", tests[digest])


def _leak(where: str, test_row: str) -> None:
    raise DataError(f"leakage: {test_row} is also in {where}; a test row never reaches "
                    "pretraining or training: remove it from that pool")


def prepare_shift(cfg: Any, registries: Any, data: SSLData) -> SSLData:
    """What ``run_experiment`` calls before any work: :func:`check_names` against the
    config's metrics (``cfg``: an ExperimentConfig), then :func:`pretraining_data`."""
    if data.shifted:
        metrics, names = registries.metrics, cfg.evaluation.metrics
        check_names(data.shifted, names, metrics.names(),
                    {m: metrics.get(m).build().needs_meta for m in names})
    return pretraining_data(data, cfg.pretrain.target_unlabeled)


def pretraining_data(data: SSLData, target_unlabeled: Iterable[str]) -> SSLData:
    """``data`` checked for leakage, with the named domains' unlabeled rows appended to its
    unlabeled pool (``pretrain.target_unlabeled``); ``data`` itself when it names none.

    The data card of the result hashes the joined pool: the pretraining checkpoint key
    follows the pool actually used.

    Raises:
        ConfigError: ``target_unlabeled`` names a domain the run lacks, or one twice.
        DataError: a domain named has no unlabeled pool, a pool is a Parquet pool (read
            lazily: cannot be joined), or a test row leaks (see the module docstring).
    """
    targets = list(target_unlabeled)
    unknown = [t for t in targets if t not in data.shifted]
    if unknown:
        raise ConfigError(f"pretrain.target_unlabeled: {unknown} are not shifted domains of "
                          f"this run (it has {sorted(data.shifted)}); name them in "
                          "dataset.shifted, or in data['shifted'] with the Python API")
    if len(set(targets)) != len(targets):
        raise ConfigError(f"pretrain.target_unlabeled: {targets} names a domain twice")
    for t in targets:
        dom = data.shifted[t]
        if dom.unlabeled is None or len(dom.unlabeled) == 0:
            raise DataError(f"{dom.where or t}: no unlabeled rows, but pretrain."
                            f"target_unlabeled names {t!r}; give its unlabeled pool")
        if isinstance(dom.unlabeled, ParquetPool) or isinstance(data.unlabeled, ParquetPool):
            raise DataError(f"pretrain.target_unlabeled: {t!r}: a Parquet pool (read lazily) "
                            "cannot be joined with another pool; give in-memory arrays, or "
                            "leave target_unlabeled empty")
    if not data.shifted:
        return data
    _check_leakage(data, targets)
    if not targets:
        return data
    pools = [data.shifted[t].unlabeled for t in targets]
    joined = np.concatenate([data.unlabeled, *pools]).astype(np.float32, copy=False)
    setting = " + ".join([f"source ({len(data.unlabeled)} rows)"]
                         + [f"{t} ({len(p)} rows)" for t, p in zip(targets, pools)])
    return dataclasses.replace(data, unlabeled=joined, _sample=None,
                               notes={**data.notes, "pretrain_pool": setting})


def _check_leakage(data: SSLData, targets: list[str]) -> None:
    shifted_tests: dict[bytes, str] = {}
    for name, dom in data.shifted.items():
        for row, digest in enumerate(row_digests(dom.test_x)):
            shifted_tests.setdefault(digest, f"test row {row} of shifted domain {name!r}")
    _scan("the labeled pool", data.labeled_x, shifted_tests)
    if data.unlabeled is not data.labeled_x:
        _scan("the unlabeled pool", data.unlabeled, shifted_tests)
    in_domain = {d: f"in-domain test row {row}" for row, d in
                 enumerate(row_digests(data.test_x))} if targets else {}
    for t in targets:
        what = f"the unlabeled pool of shifted domain {t!r} (pretrain.target_unlabeled)"
        _scan(what, data.shifted[t].unlabeled, shifted_tests | in_domain)
