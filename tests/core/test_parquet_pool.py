"""The sharded Parquet pool: each rank reads only its row groups; an epoch covers each row once."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from sslcore.config import PretrainConfig
from sslcore.data.parquet_pool import ParquetPool
from sslcore.data.ssl_data import SSLData
from sslcore.errors import DataError


def _write(dir_, n_files=3, rows_per_file=96, group=16):
    import pyarrow.parquet as pq

    paths = []
    for f in range(n_files):
        ids = np.arange(f * rows_per_file, (f + 1) * rows_per_file)
        frame = pl.DataFrame({"id": ids.astype(np.float64), "x": np.sin(ids), "note": ["a"] * len(ids)})
        path = dir_ / f"part{f}.parquet"
        pq.write_table(frame.to_arrow(), path, row_group_size=group)
        paths.append(path)
    return paths


def test_ranks_read_disjoint_groups_and_cover_every_row_once(tmp_path, monkeypatch):
    pool = ParquetPool(_write(tmp_path), ["id", "x"], window=2)
    assert pool.shape == (288, 2) and len(pool.groups) == 18
    read: dict[int, set] = {0: set(), 1: set()}
    original = ParquetPool.read_group
    current = {"rank": 0}

    def spy(self, group):
        read[current["rank"]].add((group.path.name, group.index))
        return original(self, group)

    monkeypatch.setattr(ParquetPool, "read_group", spy)
    per_epoch = pool.steps_per_epoch(world=2, local_batch=24)
    assert per_epoch == 6  # 144 rows per rank / 24
    seen_by_epoch = []
    for epoch in range(2):
        seen = []
        for rank in (0, 1):
            current["rank"] = rank
            shard = pool.shard(rank, 2)
            seen += [shard.batch(epoch, pos, 24, seed=7)[:, 0] for pos in range(per_epoch)]
        ids = torch.cat(seen).long().tolist()
        assert sorted(ids) == list(range(288))  # each row exactly once across the ranks
        seen_by_epoch.append(ids)
    assert seen_by_epoch[0] != seen_by_epoch[1]  # reshuffled every epoch
    assert read[0] and read[1] and not read[0] & read[1]  # no row group read by both ranks


def test_batches_are_deterministic_for_resume(tmp_path):
    pool = ParquetPool(_write(tmp_path), ["id", "x"])
    a = pool.shard(1, 2).batch(epoch=3, pos=4, batch_size=16, seed=0)
    b = pool.shard(1, 2).batch(epoch=3, pos=4, batch_size=16, seed=0)  # a fresh process
    assert torch.equal(a, b)


def test_bad_files_are_named(tmp_path):
    paths = _write(tmp_path, n_files=1)
    with pytest.raises(DataError, match=r"part0.parquet: missing column\(s\) \['amount'\]"):
        ParquetPool(paths, ["amount"])
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="junk.parquet: not a readable Parquet file"):
        ParquetPool([tmp_path / "junk.parquet"], ["id"])
    frame = pl.DataFrame({"id": [1.0, float("nan"), 3.0]})
    frame.write_parquet(tmp_path / "nan.parquet")
    pool = ParquetPool([tmp_path / "nan.parquet"], ["id"])
    with pytest.raises(DataError, match=r"nan.parquet: row 1, column 'id' is NaN"):
        pool.read_group(pool.groups[0])


def test_pretraining_streams_a_parquet_pool(tmp_path):
    from sslcore.builtins.backbones.mlp import MLPBackbone, MLPParams
    from sslcore.builtins.pretext.scarf import Scarf, ScarfParams
    from sslcore.train.pretrain import pretrain_encoder

    pool = ParquetPool(_write(tmp_path), ["id", "x"])
    data = SSLData(unlabeled=pool, labeled_x=np.zeros((4, 2)), labeled_y=np.array([0, 1, 0, 1]),
                   test_x=np.zeros((4, 2)), test_y=np.array([0, 1, 0, 1])).validate()
    assert data.input_shape == (2,) and data.unlabeled_array().shape == (288, 2)
    assert data.card().content_hash == data.card().content_hash
    backbone = MLPBackbone(MLPParams(hidden_dims=[8], embed_dim=4), input_shape=(2,))
    backbone.fit_normalizer(data.unlabeled_array())
    task = Scarf(ScarfParams(), backbone=backbone)
    result = pretrain_encoder(task, pool, PretrainConfig(epochs=2, batch_size=32, bf16=False),
                              checkpoint_dir=tmp_path / "ckpt", progress=False)
    assert result.steps == 2 * (288 // 32) and all(np.isfinite(result.losses))
