"""An unlabeled pool in Parquet files that no process reads whole: sharded by row group.

At scale the unlabeled pool does not fit in one process's memory, and under torchrun it must
not be read N times. :class:`ParquetPool` reads only metadata up front (row counts per row
group, via pyarrow); pretraining then gives every rank a fixed, balanced set of row groups
(its shard) and each rank reads only those, through polars, a few row groups at a time.

Order within an epoch: each rank visits its row groups in a new seeded order every epoch and
shuffles rows within windows of ``window`` consecutive row groups (a shuffle buffer). Every
rank takes the same number of local batches, ``min over ranks of shard_rows // local_batch``,
so each row is seen at most once per epoch, and exactly once when the shards divide evenly
(row groups of equal size whose count is a multiple of the world size). Unlike in-memory
pools, the order depends on the world size: use in-memory arrays when a run must reproduce a
single-process trajectory exactly.

Example::

    pool = ParquetPool(sorted(Path("events/").glob("*.parquet")), columns=["amount", "hour"])
    shard = pool.shard(rank=0, world=2)
    batch = shard.batch(epoch=0, pos=0, batch_size=256, seed=0)   # float32 (256, 2)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sslcore.errors import DataError


@dataclass(frozen=True)
class RowGroup:
    path: Path
    index: int
    offset: int  # first row of the group within its file
    rows: int


class ParquetPool:
    """Numeric ``columns`` of one or more Parquet files, as rows of float32 features.

    Raises:
        DataError: a file is missing or unreadable, has no row groups, or lacks a column.
    """

    def __init__(self, paths: Sequence[str | Path], columns: Sequence[str], *,
                 window: int = 4) -> None:
        import pyarrow.parquet as pq

        if not paths:
            raise DataError("the Parquet pool has no files: give at least one .parquet path")
        if not columns:
            raise DataError("the Parquet pool needs at least one feature column")
        self.paths = [Path(p) for p in paths]
        self.columns = list(columns)
        self.window = max(1, int(window))
        self.groups: list[RowGroup] = []
        for path in self.paths:
            try:
                meta = pq.ParquetFile(path).metadata
            except (OSError, ValueError) as exc:
                raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
            names = set(meta.schema.names)
            missing = [c for c in self.columns if c not in names]
            if missing:
                raise DataError(f"{path}: missing column(s) {missing}; it has "
                                f"{sorted(names)[:20]}")
            offset = 0
            for i in range(meta.num_row_groups):
                n = meta.row_group(i).num_rows
                self.groups.append(RowGroup(path, i, offset, n))
                offset += n
        if not self.groups or self.n_rows == 0:
            raise DataError(f"the Parquet pool ({len(self.paths)} file(s)) has no rows")

    @property
    def n_rows(self) -> int:
        return sum(g.rows for g in self.groups)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n_rows, len(self.columns))

    def __len__(self) -> int:
        return self.n_rows

    def fingerprint(self) -> str:
        """Identifies the files' contents cheaply: paths, sizes, mtimes and row groups."""
        digest = hashlib.sha256(repr(self.columns).encode())
        for path in self.paths:
            stat = os.stat(path)
            digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        digest.update(repr([(g.index, g.rows) for g in self.groups]).encode())
        return digest.hexdigest()

    def read_group(self, group: RowGroup) -> np.ndarray:
        """One row group's feature columns as float32 (N, C), checked for NaN/inf."""
        import polars as pl

        frame = (pl.scan_parquet(group.path).select(self.columns)
                 .slice(group.offset, group.rows).collect())
        values = frame.to_numpy().astype(np.float32, copy=False)
        bad = ~np.isfinite(values)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise DataError(f"{group.path}: row {group.offset + row}, column "
                            f"{self.columns[col]!r} is NaN/inf/null; impute or drop it")
        return values

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """Up to ``n`` rows from a seeded choice of row groups: for label-free statistics
        (normalizers, detectors) that need an in-memory sample, not the whole pool."""
        order = np.random.default_rng(seed).permutation(len(self.groups))
        parts, total = [], 0
        for i in order:
            parts.append(self.read_group(self.groups[i]))
            total += len(parts[-1])
            if total >= n:
                break
        rows = np.concatenate(parts)
        keep = np.random.default_rng(seed).permutation(len(rows))[:n]
        return rows[np.sort(keep)]

    def shard_groups(self, rank: int, world: int) -> list[RowGroup]:
        """Rank ``rank``'s row groups: largest first to the least-loaded rank (balanced)."""
        loads, owned = [0] * world, [[] for _ in range(world)]
        for i in sorted(range(len(self.groups)), key=lambda i: (-self.groups[i].rows, i)):
            r = min(range(world), key=lambda r: (loads[r], r))
            loads[r] += self.groups[i].rows
            owned[r].append(self.groups[i])
        return owned[rank]

    def steps_per_epoch(self, world: int, local_batch: int) -> int:
        return min(sum(g.rows for g in self.shard_groups(r, world)) // local_batch
                   for r in range(world))

    def shard(self, rank: int, world: int) -> Shard:
        return Shard(self, self.shard_groups(rank, world), rank)


class Shard:
    """One rank's row groups, served as local batches; reads a window of groups at a time."""

    def __init__(self, pool: ParquetPool, groups: list[RowGroup], rank: int) -> None:
        self.pool, self.groups, self.rank = pool, groups, rank
        self._cache: dict[tuple[int, int], torch.Tensor] = {}

    def _windows(self, epoch: int, seed: int) -> list[list[RowGroup]]:
        rng = np.random.default_rng([seed & 0xFFFF_FFFF, epoch, self.rank, 11])
        order = [self.groups[i] for i in rng.permutation(len(self.groups))]
        w = self.pool.window
        return [order[i:i + w] for i in range(0, len(order), w)]

    def _window_rows(self, epoch: int, seed: int, k: int,
                     windows: list[list[RowGroup]]) -> torch.Tensor:
        key = (epoch, k)
        if key not in self._cache:
            rows = np.concatenate([self.pool.read_group(g) for g in windows[k]])
            rng = np.random.default_rng([seed & 0xFFFF_FFFF, epoch, self.rank, k, 12])
            self._cache = {kk: v for kk, v in self._cache.items() if kk[0] == epoch and kk[1] >= k - 1}
            self._cache[key] = torch.from_numpy(rows[rng.permutation(len(rows))])
        return self._cache[key]

    def batch(self, epoch: int, pos: int, batch_size: int, seed: int) -> torch.Tensor:
        """Local batch ``pos`` of ``epoch``: rows ``[pos*B, (pos+1)*B)`` of this rank's stream."""
        windows = self._windows(epoch, seed)
        sizes = np.array([sum(g.rows for g in w) for w in windows])
        starts = np.concatenate([[0], np.cumsum(sizes)])
        lo, hi = pos * batch_size, (pos + 1) * batch_size
        if hi > starts[-1]:
            raise DataError(f"rank {self.rank}: batch {pos} of epoch {epoch} lies past the end "
                            f"of its shard ({starts[-1]} rows)")
        parts = []
        k = int(np.searchsorted(starts, lo, side="right") - 1)
        while lo < hi:
            rows = self._window_rows(epoch, seed, k, windows)
            take = min(hi, starts[k + 1]) - lo
            parts.append(rows[lo - starts[k]:lo - starts[k] + take])
            lo += take
            k += 1
        return torch.cat(parts) if len(parts) > 1 else parts[0]
