"""backbone.init: every kind of source, offline, on tiny models; the report; every error.

No network: the files are written here (timm models saved with safetensors / torch.save,
transformers models with save_pretrained, a Hugging Face cache laid out by hand, an MLflow store
in a temp dir), and any hub access fails the test.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sslcore.builtins.backbones.hf_vision import HFVisionBackbone, HFVisionParams
from sslcore.builtins.backbones.mlp import MLPBackbone, MLPParams
from sslcore.builtins.backbones.timm_backbone import (
    ResNet18Params,
    TimmBackbone,
    TimmParams,
    resnet18,
)
from sslcore.errors import CheckpointError, ConfigError
from sslcore.init import (
    InitFileError,
    InitIncompleteError,
    InitMismatchError,
    InitSourceError,
    accepts_init,
)
from sslcore.init.export_format import write_export

pytestmark = pytest.mark.usefixtures("single_thread")  # see tests/core/conftest.py

VIT = TimmParams(model_name="vit_tiny_patch16_224", timm_kwargs={"depth": 2})
TINY_VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Weights files of tiny models, as users bring them: 3-channel, with classifiers."""
    import timm
    from safetensors.torch import save_file
    from transformers import ViTConfig, ViTForImageClassification

    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    r18 = timm.create_model("resnet18")  # ImageNet layout: 3 channels, 1000 classes
    save_file(r18.state_dict(), d / "resnet18.safetensors")
    torch.save({"state_dict": r18.state_dict(), "epoch": 3}, d / "resnet18.pt")
    save_file(timm.create_model("vit_tiny_patch16_224", depth=2).state_dict(),
              d / "vit.safetensors")
    ViTForImageClassification(ViTConfig(**TINY_VIT, image_size=64, patch_size=16,
                                        num_labels=5)).save_pretrained(d / "hf_vit")
    return {"resnet18": d / "resnet18.safetensors", "resnet18_pt": d / "resnet18.pt",
            "vit": d / "vit.safetensors", "hf_vit": d / "hf_vit", "dir": d}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any download attempt fails the test (hub files must come from disk)."""
    import huggingface_hub.file_download as fd

    def refuse(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(fd, "http_get", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _source_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


# ----------------------------------------------------------------------------- state dicts

@pytest.mark.parametrize("channels", [1, 13])
def test_state_dict_file_adapts_channels_and_drops_the_classifier(files, channels) -> None:
    from timm.models import adapt_input_conv

    enc = resnet18(ResNet18Params(), input_shape=(channels, 32, 32), init=str(files["resnet18"]))
    src = _source_tensors(files["resnet18"])
    report = enc.init_report
    assert report.kind == "state_dict" and report.scope == "model"
    assert report.fraction == 1.0 and not report.missing and not report.mismatched
    assert report.dropped == ["fc.bias", "fc.weight"]  # the ImageNet head, as the file names it
    assert report.adapted == [f"conv1.weight: (64, 3, 7, 7) -> (64, {channels}, 7, 7)"]
    torch.testing.assert_close(enc.model.conv1.weight,
                               adapt_input_conv(channels, src["conv1.weight"]))
    if channels == 1:  # timm's rule: the RGB filters summed
        torch.testing.assert_close(enc.model.conv1.weight[:, 0], src["conv1.weight"].sum(1))
    torch.testing.assert_close(enc.model.layer4[1].conv2.weight, src["layer4.1.conv2.weight"])
    digest = hashlib.sha256(files["resnet18"].read_bytes()).hexdigest()
    assert report.files[0]["sha256"] == digest
    as_json = json.loads(report.to_json())
    assert as_json["fraction"] == 1.0 and as_json["files"][0]["sha256"] == digest
    assert "100.0% of the model's" in report.summary()
    assert enc(torch.rand(2, channels, 32, 32)).shape == (2, 512)


def test_torch_file_in_a_checkpoint_container_loads_the_same(files) -> None:
    a = resnet18(ResNet18Params(), input_shape=(3, 32, 32), init=str(files["resnet18"]))
    b = resnet18(ResNet18Params(), input_shape=(3, 32, 32), init=str(files["resnet18_pt"]))
    for key, value in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[key], value)
    assert b.init_report.files[0]["path"].endswith("resnet18.pt")


def test_vit_position_and_patch_embeddings_are_resampled(files) -> None:
    """A 16 px / 224 px ViT into 8 px patches on 32 px single-band images."""
    enc = TimmBackbone(VIT, input_shape=(1, 32, 32), largest_patch=8, init=str(files["vit"]))
    report = enc.init_report
    assert report.fraction == 1.0
    assert sorted(report.adapted) == [
        "patch_embed.proj.weight: (192, 3, 16, 16) -> (192, 1, 8, 8)",
        "pos_embed: (1, 197, 192) -> (1, 17, 192)"]
    assert report.dropped == ["head.bias", "head.weight"]
    torch.testing.assert_close(enc.model.blocks[1].attn.qkv.weight,
                               _source_tensors(files["vit"])["blocks.1.attn.qkv.weight"])


# ----------------------------------------------------------------------------- timm names

def test_timm_name_with_a_local_file_equals_plain_timm(files) -> None:
    """timm:<name>.<tag> + file: what timm.create_model(pretrained=True,
    pretrained_cfg_overlay=dict(file=...)) builds, adapted to 1 channel."""
    import timm

    enc = resnet18(ResNet18Params(), input_shape=(1, 32, 32),
                   init={"source": "timm:resnet18.a1_in1k", "file": str(files["resnet18"])})
    assert enc.init_report.kind == "timm"
    ref = timm.create_model("resnet18", pretrained=True, num_classes=0, in_chans=1,
                            pretrained_cfg_overlay=dict(file=str(files["resnet18"])))
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(enc.model.state_dict()[key], value)
    x = torch.rand(2, 1, 32, 32)
    enc.eval(), ref.eval()
    torch.testing.assert_close(enc.model(x), ref(x))


def test_unknown_timm_names_fail_fast_offline(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_cache"))
    start = time.perf_counter()
    with pytest.raises(InitSourceError, match=r"no pretrained weights 'resnet18.nope'.*"
                       r"resnet18.a1_in1k"):
        resnet18(ResNet18Params(), input_shape=(1, 32, 32), init="timm:resnet18.nope")
    with pytest.raises(InitSourceError, match="'resnet181' .* is not a timm model.*resnet18"):
        resnet18(ResNet18Params(), input_shape=(1, 32, 32), init="timm:resnet181.a1_in1k")
    # A known tag that is not cached: how to provide the file, not a network timeout.
    with pytest.raises(InitSourceError, match=r"timm:resnet18.a1_in1k could not be downloaded "
                       r"\(offline.*pass the file.*HF_HOME"):
        resnet18(ResNet18Params(), input_shape=(1, 32, 32), init="timm:resnet18.a1_in1k")
    assert time.perf_counter() - start < 10


# ----------------------------------------------------------------------------- Hugging Face

@pytest.mark.parametrize("channels", [1, 13])
def test_hf_directory_initialises_hf_vision(files, channels) -> None:
    from transformers import AutoModel

    enc = HFVisionBackbone(HFVisionParams(), input_shape=(channels, 32, 32),
                           init=str(files["hf_vit"]))
    report = enc.init_report
    assert report.kind == "transformers" and report.fraction == 1.0
    assert report.dropped == ["classifier.bias", "classifier.weight"]
    assert report.adapted == [f"embeddings.patch_embeddings.projection.weight: (32, 3, 16, 16) "
                              f"-> (32, {channels}, 8, 8)"]  # 8 px patches: 16 tokens
    assert enc.embed_dim == 32 and enc.model.config.num_hidden_layers == 2
    src = AutoModel.from_pretrained(files["hf_vit"], add_pooling_layer=False)
    torch.testing.assert_close(enc.model.layers[1].mlp.fc1.weight, src.layers[1].mlp.fc1.weight)
    assert enc(torch.rand(2, channels, 32, 32)).shape == (2, 32)
    with pytest.raises(ConfigError, match="hidden_size .64 vs 32. contradict"):
        HFVisionBackbone(HFVisionParams(hidden_size=64), input_shape=(channels, 32, 32),
                         init=str(files["hf_vit"]))


def _fill_hf_cache(cache: Path, repo: str, model_dir: Path) -> None:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<rev>/}."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snap = root / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    for f in model_dir.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("0123abcd")


def test_hf_name_from_a_filled_cache_and_its_offline_error(files, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(InitSourceError, match=r"hf:acme/tiny-vit could not be found.*offline.*"
                       r"pass the directory.*HF_HOME"):
        HFVisionBackbone(HFVisionParams(), input_shape=(3, 32, 32), init="hf:acme/tiny-vit")
    _fill_hf_cache(tmp_path / "hf" / "hub", "acme/tiny-vit", files["hf_vit"])
    enc = HFVisionBackbone(HFVisionParams(), input_shape=(3, 32, 32), init="hf:acme/tiny-vit")
    assert enc.init_report.fraction == 1.0 and enc.init_report.source == "hf:acme/tiny-vit"
    digest = hashlib.sha256((files["hf_vit"] / "model.safetensors").read_bytes()).hexdigest()
    assert digest in {f["sha256"] for f in enc.init_report.files}


# ----------------------------------------------------------------------------- MLflow

def test_mlflow_uri_of_a_logged_export(tmp_path, make_store, monkeypatch) -> None:
    import mlflow

    uri = make_store(tmp_path / "store")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(1)
    enc = MLPBackbone(MLPParams(hidden_dims=[16], embed_dim=8), input_shape=(5,))
    enc.fit_normalizer(np.random.default_rng(0).normal(3, 2, size=(50, 5)))
    out = write_export(enc, tmp_path / "export", name="mlp",
                       params=MLPParams(hidden_dims=[16], embed_dim=8).model_dump(),
                       input_shape=(5,))
    client = mlflow.MlflowClient(uri)
    run = client.create_run(client.create_experiment("team-encoders"))
    client.log_artifacts(run.info.run_id, str(out), "encoder")
    client.log_text(run.info.run_id, "not an encoder", "notes/readme.txt")
    params = MLPParams(hidden_dims=[16], embed_dim=8)
    got = MLPBackbone(params, input_shape=(5,), init=f"runs:/{run.info.run_id}/encoder")
    assert got.init_report.kind == "sslcore" and got.init_report.fraction == 1.0
    x = torch.randn(4, 5)
    torch.testing.assert_close(got.eval()(x), enc.eval()(x))
    with pytest.raises(InitSourceError, match="holds no sslcore export"):
        MLPBackbone(params, input_shape=(5,), init=f"runs:/{run.info.run_id}/notes")
    with pytest.raises(InitSourceError, match="could not be read from the MLflow store"):
        MLPBackbone(params, input_shape=(5,), init="runs:/0123456789abcdef/encoder")


# ----------------------------------------------------------------------------- refusals

def test_below_min_loaded_is_an_error_never_a_silent_partial_load(tmp_path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    full = MLPBackbone(MLPParams(hidden_dims=[64, 64], embed_dim=8), input_shape=(5,))
    part = {k: v for k, v in full.state_dict().items() if not k.startswith("net.4.")}
    save_file(part, tmp_path / "partial.safetensors")  # the second hidden layer is missing
    with pytest.raises(InitIncompleteError, match=r"only \d+\.\d% of the MLPBackbone's "
                       r"parameters came from .*min_loaded 0.9") as caught:
        MLPBackbone(MLPParams(hidden_dims=[64, 64], embed_dim=8), input_shape=(5,),
                    init=str(tmp_path / "partial.safetensors"))
    assert "net.4.weight" in caught.value.report.missing
    ok = MLPBackbone(MLPParams(hidden_dims=[64, 64], embed_dim=8), input_shape=(5,),
                     init={"source": str(tmp_path / "partial.safetensors"), "min_loaded": 0.2})
    assert 0.2 < ok.init_report.fraction < 0.9
    torch.testing.assert_close(ok.net[0].weight, full.net[0].weight)


def test_corrupt_and_truncated_files_are_named(files, tmp_path) -> None:
    blob = files["resnet18"].read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(blob[: len(blob) // 3])
    (tmp_path / "cut.pt").write_bytes(files["resnet18_pt"].read_bytes()[:50_000])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    for name, match in (("cut.safetensors", "is truncated"),
                        ("cut.pt", "truncated, corrupt or not a torch state dict"),
                        ("junk.pt", "truncated, corrupt or not a torch state dict")):
        with pytest.raises(InitFileError, match=match) as caught:
            resnet18(ResNet18Params(), input_shape=(1, 32, 32), init=str(tmp_path / name))
        assert name in str(caught.value)
        assert isinstance(caught.value, CheckpointError)
    hf = tmp_path / "hf_cut"
    hf.mkdir()
    (hf / "config.json").write_bytes((files["hf_vit"] / "config.json").read_bytes())
    hf_blob = (files["hf_vit"] / "model.safetensors").read_bytes()
    (hf / "model.safetensors").write_bytes(hf_blob[: len(hf_blob) - 100])
    with pytest.raises(InitFileError, match="model.safetensors is truncated"):
        HFVisionBackbone(HFVisionParams(), input_shape=(3, 32, 32), init=str(hf))


def test_wrong_architectures_are_refused(files, tmp_path) -> None:
    with pytest.raises(InitMismatchError, match="'resnet50' model but the backbone is "
                       "'resnet18'"):  # before any file is looked for
        resnet18(ResNet18Params(), input_shape=(1, 32, 32), init="timm:resnet50.a1_in1k")
    with pytest.raises(InitIncompleteError, match="0.0% of the TimmBackbone's parameters"):
        TimmBackbone(VIT, input_shape=(1, 32, 32), init=str(files["resnet18"]))
    with pytest.raises(InitMismatchError, match="holds transformers weights .vit. but the "
                       "backbone is a timm TimmBackbone"):
        resnet18(ResNet18Params(), input_shape=(3, 32, 32), init=str(files["hf_vit"]))
    mlp = MLPBackbone(MLPParams(), input_shape=(5,))
    write_export(mlp, tmp_path / "mlp_export", name="mlp", params={}, input_shape=(5,))
    with pytest.raises(InitMismatchError, match="an export of backbone 'mlp'"):
        resnet18(ResNet18Params(), input_shape=(1, 32, 32), init=str(tmp_path / "mlp_export"))
    with pytest.raises(InitSourceError, match="is not an existing file or directory"):
        resnet18(ResNet18Params(), input_shape=(1, 32, 32), init=str(tmp_path / "nope.pt"))


# ----------------------------------------------------------------------------- config

def test_config_block_and_factories() -> None:
    from sslcore.config import BackboneRef, InitConfig

    ref = BackboneRef.model_validate({"name": "resnet18", "init": "timm:resnet18.a1_in1k"})
    assert ref.init == InitConfig(source="timm:resnet18.a1_in1k", min_loaded=0.9)
    assert "init" not in BackboneRef(name="mlp").model_dump()  # pretrain keys unchanged
    with pytest.raises(Exception, match="min_loaded"):
        BackboneRef.model_validate({"name": "mlp", "init": {"source": "x", "min_loaded": 2}})
    assert accepts_init(resnet18) and accepts_init(MLPBackbone) and accepts_init(TimmBackbone)
    assert not accepts_init(lambda params, *, input_shape: None)


def test_only_the_pretrained_encoder_gets_init_never_the_baselines(tmp_path) -> None:
    """build_pretraining hands init to the encoder pretraining starts from; make_backbone
    (the baseline arm's from-scratch copies) stays random."""
    from sslcore.data.user_data import from_user_data
    from sslcore.experiment import resolve_config
    from sslcore.plugins import load_registries
    from sslcore.train.build import build_pretraining

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 6)).astype(np.float32), np.arange(60) % 2
    data = from_user_data({"unlabeled": x, "labeled": (x, y), "test": (x, y)})
    registries = load_registries()
    params = resolve_config("tabular", registries).backbone.params  # the recipe's MLP
    torch.manual_seed(0)
    source = registries.backbones.get("mlp").build(params, input_shape=(6,))
    write_export(source, tmp_path / "enc", name="mlp", params=params, input_shape=(6,))
    cfg = resolve_config({"vertical": "tabular", "backbone": {"init": str(tmp_path / "enc")}},
                         registries)
    built = build_pretraining(cfg, registries, data)
    torch.testing.assert_close(built.task.backbone.net[0].weight, source.net[0].weight)
    assert built.task.backbone.init_report.fraction == 1.0
    fresh = built.make_backbone()
    assert not hasattr(fresh, "init_report")
    assert not torch.equal(fresh.net[0].weight, source.net[0].weight)


def test_a_second_load_of_the_same_weights_is_not_reported_again(tmp_path, capfd) -> None:
    """The transfer arm loads the init weights again; the run prints their report once."""
    from safetensors.torch import save_file

    from sslcore.init.load import quiet_reports

    params = MLPParams(hidden_dims=[16], embed_dim=4)
    save_file(MLPBackbone(params, input_shape=(5,)).state_dict(), tmp_path / "w.safetensors")
    MLPBackbone(params, input_shape=(5,), init=str(tmp_path / "w.safetensors"))
    assert "100.0% of the backbone's" in capfd.readouterr().err
    with quiet_reports():
        again = MLPBackbone(params, input_shape=(5,), init=str(tmp_path / "w.safetensors"))
    assert again.init_report.fraction == 1.0 and capfd.readouterr().err == ""
