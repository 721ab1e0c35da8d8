"""Checkpoints: round trip, corrupt files, atomic writes, latest checkpoint."""

from __future__ import annotations

import os
import time

import pytest
import torch

from sslcore.errors import CheckpointError
from sslcore.train import checkpoint as ckpt_mod
from sslcore.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint


def _state() -> dict:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 7,
            "config": {"lr": 1e-3, "seed": None, "name": "x"}, "rng": torch.get_rng_state(),
            "losses": torch.tensor([1.0, 0.5], dtype=torch.float64), "hist": [{"step": 1.0}]}


def test_round_trip(tmp_path):
    state = _state()
    path = save_checkpoint(tmp_path / "sub" / "last.pt", state)
    assert path == tmp_path / "sub" / "last.pt"
    loaded = load_checkpoint(path)
    assert loaded["step"] == 7 and loaded["config"] == state["config"]
    assert loaded["hist"] == [{"step": 1.0}]
    for key, value in state["model"].items():
        assert torch.equal(loaded["model"][key], value)
    assert torch.equal(loaded["rng"], state["rng"])
    opt = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    opt.load_state_dict(loaded["optimizer"])  # weights_only keeps optimizer state usable
    assert sorted(os.listdir(path.parent)) == ["last.pt"]  # no temp file left behind


def test_truncated_file_raises_naming_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", _state())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "--resume" in str(info.value)


def test_garbage_file_raises(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"this is not a checkpoint\x00\x01" * 10)
    with pytest.raises(CheckpointError, match=str(path)) as info:
        load_checkpoint(path)
    assert "weights_only" not in str(info.value)  # never advise unsafe loading


def test_missing_file_raises(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


class _NotAllowed:
    pass


def test_arbitrary_objects_are_refused(tmp_path):
    # weights_only=True: loading never unpickles arbitrary classes (no code from the file runs).
    path = tmp_path / "evil.pt"
    torch.save({"obj": _NotAllowed()}, path)
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


def test_non_dict_checkpoint_raises(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2], path)
    with pytest.raises(CheckpointError, match="not a checkpoint dict"):
        load_checkpoint(path)


def test_failed_write_leaves_previous_checkpoint_and_no_partial_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", {"step": 1})

    def broken_save(obj, fh, *args, **kwargs):
        fh.write(b"partial bytes")  # something reached the temp file before the failure
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with pytest.raises(CheckpointError, match="could not write checkpoint") as info:
        save_checkpoint(path, {"step": 2})
    assert "No space left" in str(info.value)
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1


def test_interrupted_write_cleans_up_and_propagates(tmp_path, monkeypatch):
    def interrupted(obj, fh, *args, **kwargs):
        fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "last.pt", {"step": 1})
    assert os.listdir(tmp_path) == []


def test_latest_checkpoint(tmp_path):
    assert latest_checkpoint(tmp_path / "missing") is None
    assert latest_checkpoint(tmp_path) is None
    (tmp_path / ".last-abc.pt.tmp").write_bytes(b"partial")
    assert latest_checkpoint(tmp_path) is None
    old = save_checkpoint(tmp_path / "step1.pt", {"step": 1})
    new = save_checkpoint(tmp_path / "step2.pt", {"step": 2})
    past = time.time_ns() - 10**9
    os.utime(old, ns=(past, past))
    assert latest_checkpoint(tmp_path) == new
    last = save_checkpoint(tmp_path / "last.pt", {"step": 3})
    os.utime(last, ns=(past, past))
    assert latest_checkpoint(tmp_path) == last  # last.pt wins: it is what training writes
