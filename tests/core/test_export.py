"""sslcore export: a pretraining checkpoint -> model.safetensors + config.json that backbone.init,
plain timm and plain transformers load with the same embeddings; from a checkpoint directory, a
file, and an MLflow run (as sslcore.pretraining logs it: checkpoint/last.pt)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sslcore.cli import main
from sslcore.errors import CheckpointError, ConfigError
from sslcore.export import CHECKPOINT_ARTIFACT, SPEC_FILE, backbone_spec, export
from sslcore.plugins import load_registries
from sslcore.train.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/core/conftest.py

REGISTRIES = load_registries()
CASES = {  # name, params, per-sample shape: tiny models
    "resnet18": ("resnet18", {}, (1, 32, 32)),
    "vit": ("timm", {"model_name": "vit_tiny_patch16_224", "timm_kwargs": {"depth": 2}},
            (3, 32, 32)),
    "hf_vision": ("hf_vision", {"num_hidden_layers": 2, "hidden_size": 32,
                                "num_attention_heads": 2, "intermediate_size": 64}, (2, 32, 32)),
    "mlp": ("mlp", {"hidden_dims": [16], "embed_dim": 8}, (7,)),
    # the sensor plugin's encoders (another fleet's export is their generic model)
    "tcn": ("tcn", {"channels": 8, "stem_stride": 4, "embed_dim": 8}, (3, 32)),
    "patch_transformer": ("patch_transformer", {"d_model": 16, "heads": 2, "depth": 1,
                                                "patch_len": 8, "embed_dim": 8}, (3, 32)),
}


def _pretrained(case: str, ckpt_dir: Path, with_spec: bool = True) -> tuple[torch.nn.Module,
                                                                                torch.Tensor]:
    """A "pretrained" encoder saved as the training loop does: the pretext task's state dict
    (backbone.* and the task's own head) in checkpoints/last.pt, and the data it saw."""
    name, params, shape = CASES[case]
    torch.manual_seed(0)
    backbone = REGISTRIES.backbones.get(name).build(params, input_shape=shape)
    x = torch.randn(32, *shape) * 3 + 1
    backbone.fit_normalizer(x.numpy())
    task_state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    save_checkpoint(ckpt_dir / "last.pt", {"format": 1, "step": 7, "model": task_state
                                           | {"projector.weight": torch.zeros(4, 4)}})
    if with_spec:
        (ckpt_dir / SPEC_FILE).write_text(json.dumps(backbone_spec(name, params, shape)))
    return backbone.eval(), x[:4]


@pytest.mark.parametrize("case", sorted(CASES))
def test_export_then_init_gives_the_same_embeddings(case, tmp_path) -> None:
    backbone, x = _pretrained(case, tmp_path / "checkpoints")
    out = export(tmp_path / "checkpoints", tmp_path / "export")
    name, params, shape = CASES[case]
    config = json.loads((out / "config.json").read_text())
    meta = config["sslcore"]
    assert (meta["backbone"], meta["input_shape"], meta["provenance"]["step"]) == \
        (name, list(shape), 7)
    assert (out / "model.safetensors").is_file()
    again = REGISTRIES.backbones.get(name).build(params, input_shape=shape, init=str(out))
    assert again.init_report.kind == "sslcore" and again.init_report.fraction == 1.0
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), backbone(x))
    # The checkpoint directory itself is a source too (its backbone.* tensors).
    direct = REGISTRIES.backbones.get(name).build(params, input_shape=shape,
                                                  init=str(tmp_path / "checkpoints"))
    assert direct.init_report.dropped == ["projector.weight"]
    with torch.no_grad():
        torch.testing.assert_close(direct.eval()(x), backbone(x))


@pytest.mark.parametrize("case", ["resnet18", "vit"])
def test_plain_timm_loads_the_export(case, tmp_path) -> None:
    import timm

    backbone, x = _pretrained(case, tmp_path / "checkpoints")
    out = export(tmp_path / "checkpoints", tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    model = timm.create_model(config["architecture"], pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(out / "model.safetensors")),
                              **config["model_args"]).eval()
    by_dir = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    z = backbone.normalize(x)  # sslcore's normalizer lives outside the timm model
    with torch.no_grad():
        torch.testing.assert_close(model(z), backbone.model(z))
        torch.testing.assert_close(by_dir(z), backbone.model(z))
    assert config["pretrained_cfg"]["mean"] == pytest.approx(backbone.channel_mean.tolist())


def test_plain_transformers_loads_the_export(tmp_path) -> None:
    from transformers import AutoModel

    backbone, x = _pretrained("hf_vision", tmp_path / "checkpoints")
    out = export(tmp_path / "checkpoints", tmp_path / "export")
    model = AutoModel.from_pretrained(out, add_pooling_layer=False).eval()
    with torch.no_grad():
        cls = model(pixel_values=backbone.normalize(x)).last_hidden_state[:, 0]
        torch.testing.assert_close(cls, backbone(x))


def test_missing_spec_and_bad_sources_are_named(tmp_path) -> None:
    _pretrained("mlp", tmp_path / "checkpoints", with_spec=False)
    with pytest.raises(ConfigError, match="has no backbone.json beside its checkpoint"):
        export(tmp_path / "checkpoints", tmp_path / "out")
    name, params, shape = CASES["mlp"]
    out = export(tmp_path / "checkpoints" / "last.pt", tmp_path / "out",
                 spec=backbone_spec(name, params, shape))
    assert (out / "model.safetensors").is_file()
    with pytest.raises(CheckpointError, match="does not fit backbone 'mlp'"):
        export(tmp_path / "checkpoints", tmp_path / "out2",
               spec=backbone_spec("mlp", {"hidden_dims": [32]}, shape))
    with pytest.raises(CheckpointError, match="is not a checkpoint file or a directory"):
        export(tmp_path / "nowhere", tmp_path / "out3")


def test_cli_export(tmp_path, capsys) -> None:
    _pretrained("resnet18", tmp_path / "checkpoints")
    assert main(["export", str(tmp_path / "checkpoints"), str(tmp_path / "enc")]) == 0
    said = capsys.readouterr().out
    assert "exported the resnet18 encoder" in said and "local-dir:" in said
    assert main(["export", str(tmp_path / "nowhere"), str(tmp_path / "enc2")]) == 2
    assert "is not a checkpoint file" in capsys.readouterr().err


def test_cli_init_sets_backbone_init(tmp_path) -> None:
    from sslcore.cli import _target, build_parser

    args = build_parser().parse_args(["run", "tabular", "--init", "runs:/abc"])
    assert _target(args) == {"vertical": "tabular", "backbone": {"init": "runs:/abc"}}
    cfg = tmp_path / "c.yaml"
    cfg.write_text("backbone:\n  init: {source: a.pt, min_loaded: 0.5}\n")
    args = build_parser().parse_args(["pretrain", "tabular", "--config", str(cfg), "--init",
                                      "b.pt"])
    assert _target(args)["backbone"]["init"] == {"source": "b.pt", "min_loaded": 0.5}


def test_export_from_an_mlflow_run_then_init_from_the_run(tracking_uri, tmp_path) -> None:
    """A real (tiny) experiment: its pretrain child run logged checkpoint/last.pt; export finds
    it from the parent run, with the backbone from the logged config; init takes the run."""
    import sslcore

    cfg = {"vertical": "tabular", "output_dir": str(tmp_path / "runs"),
           "dataset": {"name": "synthetic_tabular", "params": {"n_rows": 400, "n_features": 6}},
           "heads": [{"name": "linear_probe", "params": {"Cs": [1.0]}}], "baselines": [],
           "pretrain": {"epochs": 1, "batch_size": 64, "min_steps": 0},
           "finetune": {"epochs": 1, "patience": 1, "min_steps": 5}}
    report = sslcore.compare(cfg, label_fractions=[1.0], seeds=[0], progress=False)
    # The pretrain run logged checkpoint/backbone.json beside last.pt: no --input-shape needed.
    out = export(f"runs:/{report.run_id}", tmp_path / "enc")
    meta = json.loads((out / "config.json").read_text())["sslcore"]
    assert meta["provenance"]["artifact"] == CHECKPOINT_ARTIFACT
    assert meta["params"]["hidden_dims"] == report.config.backbone.params["hidden_dims"]
    params, x = report.config.backbone.params, np.zeros((3, 6), dtype=np.float32)
    mlp = REGISTRIES.backbones.get("mlp")
    from_export = mlp.build(params, input_shape=(6,), init=str(out)).eval()
    from_run = mlp.build(params, input_shape=(6,), init=f"runs:/{report.run_id}").eval()
    assert from_run.init_report.fraction == 1.0
    with torch.no_grad():
        torch.testing.assert_close(from_run(torch.as_tensor(x)), from_export(torch.as_tensor(x)))

    # A second team starts from the first one's encoder: the run records what it loaded.
    adapted = sslcore.compare(cfg, init=f"runs:/{report.run_id}", label_fractions=[1.0],
                              seeds=[0], progress=False)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    pretrain = client.search_runs(
        [adapted.experiment_id], f"tags.mlflow.parentRunId = '{adapted.run_id}' and "
        "tags.`sslcore.kind` = 'pretrain'")[0]
    assert pretrain.data.tags["sslcore.init"].startswith(f"runs:/{report.run_id} (sha256 ")
    logged = json.loads(Path(client.download_artifacts(pretrain.info.run_id, "init_report.json",
                                                       str(tmp_path))).read_text())
    assert logged["source"] == f"runs:/{report.run_id}" and not logged["missing"]


def test_an_architecture_from_init_is_exported_and_rebuilt_without_it(tmp_path) -> None:
    """hf_vision built from a DINOv2 directory (its width, depth and 14 px patches): the
    checkpoint's spec records that architecture, so export rebuilds it with no init."""
    from transformers import Dinov2Config, Dinov2Model

    from sslcore.builtins.backbones.hf_vision import HFVisionBackbone, HFVisionParams

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             mlp_ratio=2, image_size=56, patch_size=14)).save_pretrained(
        tmp_path / "dinov2")
    enc = HFVisionBackbone(HFVisionParams(), input_shape=(3, 28, 28), init=str(tmp_path / "dinov2"))
    assert enc.model.config.model_type == "dinov2" and enc.geometry.patch == 4
    ckpt = tmp_path / "checkpoints"
    save_checkpoint(ckpt / "last.pt", {"model": {f"backbone.{k}": v
                                                 for k, v in enc.state_dict().items()}})
    spec = backbone_spec("hf_vision", {}, (3, 28, 28), enc)
    assert spec["params"]["model_type"] == "dinov2" and spec["params"]["hidden_size"] == 32
    (ckpt / SPEC_FILE).write_text(json.dumps(spec))
    out = export(ckpt, tmp_path / "export")
    x = torch.rand(2, 3, 28, 28)
    again = HFVisionBackbone(HFVisionParams(), input_shape=(3, 28, 28), init=str(out))
    rebuilt = HFVisionBackbone(HFVisionParams.model_validate(spec["params"]),
                               input_shape=(3, 28, 28))
    rebuilt.load_state_dict(enc.state_dict())  # the same architecture, strictly
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), enc.eval()(x))
        torch.testing.assert_close(rebuilt.eval()(x), enc(x))
