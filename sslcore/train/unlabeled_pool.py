"""The pretraining loop's unlabeled pool: in memory, memory-mapped, or a sharded Parquet pool."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sslcore.config import PretrainConfig
from sslcore.data.parquet_pool import ParquetPool
from sslcore.errors import DataError


class MemmapRows:
    """A memory-mapped pool (e.g. an image decode cache): each batch reads only its rows."""

    def __init__(self, arr: np.ndarray, index: np.ndarray | None = None) -> None:
        self.arr, self.index = arr, index
        n = len(arr) if index is None else len(index)
        self.shape = (n, *arr.shape[1:])

    def index_select(self, dim: int, idx: torch.Tensor) -> torch.Tensor:
        rows = idx.numpy() if self.index is None else self.index[idx.numpy()]
        return torch.from_numpy(np.asarray(self.arr[rows], dtype=np.float32))


def _subsample(n: int, cap: int | None, seed: int) -> torch.Tensor | None:
    """Sorted indices of ``cap`` random rows out of ``n``; None when all rows are kept."""
    if cap is None or n <= cap:
        return None
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:cap].sort().values


def prepare_pool(unlabeled: Any, cfg: PretrainConfig, world: int,
                 subsample_seed: int) -> torch.Tensor | MemmapRows | ParquetPool:
    """The unlabeled pool, subsampled and checked for size: a CPU tensor (float32 if floating),
    or rows read on demand (a memory-mapped array, a sharded Parquet pool).

    ``pretrain.max_unlabeled`` keeps a random subset drawn with ``subsample_seed``."""
    if isinstance(unlabeled, ParquetPool):
        if unlabeled.n_rows < cfg.batch_size:
            raise DataError(f"the Parquet pool has {unlabeled.n_rows} rows, fewer than one "
                            f"global batch (pretrain.batch_size={cfg.batch_size})")
        return unlabeled
    if isinstance(unlabeled, np.memmap):
        index = _subsample(len(unlabeled), cfg.max_unlabeled, subsample_seed)
        rows = MemmapRows(unlabeled, None if index is None else index.numpy())
        if rows.shape[0] < cfg.batch_size:
            raise DataError(f"the unlabeled pool has {rows.shape[0]} rows, fewer than one "
                            f"global batch (pretrain.batch_size={cfg.batch_size})")
        return rows
    if isinstance(unlabeled, torch.Tensor):
        data = unlabeled.detach().cpu()
    else:
        arr = np.asarray(unlabeled)
        if arr.dtype == object:
            raise DataError("the unlabeled pool is an object array; pass numeric features")
        if not arr.flags.writeable:  # torch.from_numpy warns on read-only arrays
            arr = arr.copy()
        data = torch.from_numpy(np.ascontiguousarray(arr))  # shares memory: no copy
    if data.ndim == 0 or data.shape[0] == 0:
        raise DataError("the unlabeled pool is empty: pretraining needs at least one global "
                        f"batch (pretrain.batch_size={cfg.batch_size}) of unlabeled rows")
    if data.is_floating_point() and data.dtype != torch.float32:
        data = data.float()  # models are float32; bf16 is autocast's job, not the data's
    n, cap = data.shape[0], cfg.max_unlabeled
    index = _subsample(n, cap, subsample_seed)
    if index is not None:
        data = data.index_select(0, index)
    if data.shape[0] < cfg.batch_size:
        unit = world * cfg.grad_accum_steps
        note = f" (after pretrain.max_unlabeled={cap})" if cap is not None and n > cap else ""
        raise DataError(
            f"the unlabeled pool has {data.shape[0]} rows{note}, fewer than one global batch "
            f"(pretrain.batch_size={cfg.batch_size}); lower pretrain.batch_size to at most "
            f"{max(unit, data.shape[0] // unit * unit)} (a multiple of {unit}) or add data")
    return data
