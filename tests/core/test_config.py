import pytest

from sslcore.config import ExperimentConfig, deep_merge, load_yaml, validate_config
from sslcore.errors import ConfigError

BASE = {
    "vertical": "v", "dataset": {"name": "d"}, "backbone": {"name": "b"},
    "pretext": {"name": "p"}, "heads": [{"name": "h"}],
}


def test_minimal_config_gets_defaults():
    cfg = validate_config(BASE)
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.evaluation.label_fractions == [0.01, 0.05, 0.1, 0.25, 1.0]
    assert cfg.evaluation.seeds == [0, 1, 2]


@pytest.mark.parametrize("patch, path", [
    ({"pretrain": {"epocs": 3}}, "pretrain.epocs: unknown key"),
    ({"heads": [{"name": "h", "parms": {}}]}, r"heads\[0\]\.parms: unknown key"),
    ({"evaluation": {"label_fractions": [0.0]}}, "evaluation.label_fractions"),
    ({"pretrain": {"batch_size": 1}}, "pretrain.batch_size"),
    ({"colour": "red"}, "colour: unknown key"),
])
def test_bad_fields_name_the_dotted_path(patch, path):
    with pytest.raises(ConfigError, match=path):
        validate_config(deep_merge(BASE, patch), source="my.yaml")


def test_deep_merge_replaces_params_when_component_changes():
    base = {"dataset": {"name": "synthetic", "params": {"n_rows": 10}}}
    same = deep_merge(base, {"dataset": {"params": {"seed": 1}}})
    assert same["dataset"]["params"] == {"n_rows": 10, "seed": 1}
    other = deep_merge(base, {"dataset": {"name": "csv", "params": {"path": "x.csv"}}})
    assert other["dataset"] == {"name": "csv", "params": {"path": "x.csv"}}


def test_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(bad)
    seq = tmp_path / "seq.yaml"
    seq.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(seq)


def test_learning_rate_scales_with_the_global_batch():
    from sslcore.config import PretrainConfig

    assert PretrainConfig(lr=1e-3, batch_size=1024).effective_lr == 1e-3  # default: as given
    linear = PretrainConfig(lr=1e-3, batch_size=1024, lr_scaling="linear", base_batch_size=256)
    assert linear.effective_lr == pytest.approx(4e-3)
    sqrt = PretrainConfig(lr=1e-3, batch_size=1024, lr_scaling="sqrt", base_batch_size=256)
    assert sqrt.effective_lr == pytest.approx(2e-3)


def test_finetune_augmentations_default_to_the_pretraining_ones_and_can_differ():
    import numpy as np

    from sslcore.data.ssl_data import SSLData
    from sslcore.experiment import resolve_config
    from sslcore.plugins import load_registries
    from sslcore.train.build import build_pretraining

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    data = SSLData(unlabeled=x, labeled_x=x[:20], labeled_y=np.arange(20) % 2,
                   test_x=x[20:], test_y=np.arange(20) % 2)
    reg = load_registries()
    noise = {"name": "gaussian_noise", "params": {"std": 0.5}}
    same = build_pretraining(resolve_config("tabular", reg, overrides={
        "augmentations": [noise]}), reg, data)
    assert same.finetune_augment is same.augment is not None
    other = build_pretraining(resolve_config("tabular", reg, overrides={
        "augmentations": [noise], "finetune_augmentations": []}), reg, data)
    assert other.augment is not None and other.finetune_augment is None
    with pytest.raises(ConfigError, match=r"finetune_augmentations\[0\]\.name"):
        resolve_config("tabular", reg, overrides={"finetune_augmentations": [{"name": "nope"}]})
