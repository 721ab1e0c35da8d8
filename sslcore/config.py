"""Experiment configs: pydantic models that forbid unknown keys, plus YAML loading.

A user config names a vertical and overrides parts of its recipe; it is deep-merged onto the
recipe's defaults, validated, and every component name and params block is checked against the
registries before any work starts. Configs only name registered components: nothing is imported
from a dotted path and nothing is evaluated.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from sslcore.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Budget = Literal["quick", "standard", "thorough"]


class _StepBudget(_Strict):
    """A budget in optimizer steps (sslcore.train.budget plans it): ``steps`` exactly, else
    ``epochs`` x steps per epoch raised to ``min_steps`` and lowered to ``max_steps``, both
    scaled by ``ExperimentConfig.budget``."""

    steps: int | None = Field(None, ge=1, description="exactly this many optimizer steps "
                              "(bypasses epochs, min_steps, max_steps and the preset)")
    # Set from ExperimentConfig.budget; a config block on its own plans as "standard".
    _preset: str = PrivateAttr("standard")

    @property
    def preset(self) -> str:
        """The budget preset this block is planned with (ExperimentConfig.budget)."""
        return self._preset


class ComponentRef(_Strict):
    """A registered component by name, with its params; ``alias`` names it in reports."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    alias: str | None = None

    @property
    def label(self) -> str:
        return self.alias or self.name


class InitConfig(_Strict):
    """Where the backbone's initial weights come from (``backbone.init``); see
    :mod:`sslcore.init`. A bare string is read as ``{"source": <string>}``."""

    source: str = Field(min_length=1, description=(
        "a local .safetensors / .pt state dict, a Hugging Face model directory or an sslcore "
        "export (`sslcore export`); timm:<name>.<tag> (e.g. timm:resnet18.a1_in1k); "
        "hf:<org>/<model>; or an MLflow URI of an earlier run or model (runs:/<id>[/path], "
        "models:/<name>/<version>)"))
    file: str | None = Field(None, description="the weights file of a timm: source, "
                             "downloaded where there is network (timm loads it through its "
                             "pretrained_cfg_overlay); a local directory for an hf: source")
    min_loaded: float = Field(0.9, ge=0.0, le=1.0, description="fail unless at least this "
                              "fraction of the backbone's parameters comes from the source")


class BackboneRef(ComponentRef):
    """The backbone block: a registered backbone, its params, and optionally ``init``."""

    init: InitConfig | None = Field(None, description="initial weights from a pretrained "
                                    "model (default: random initialisation)")

    @field_validator("init", mode="before")
    @classmethod
    def _source_string(cls, v: Any) -> Any:
        return {"source": v} if isinstance(v, str) else v

    @model_serializer(mode="wrap")
    def _omit_unset_init(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Without init, the block dumps as before: pretraining keys (checkpoint directories)
        # of existing configs stay the same.
        out = handler(self)
        if out.get("init", 0) is None:
            del out["init"]
        return out


# A shifted domain's name becomes part of MLflow metric keys (shift_<name>_<metric>).
SHIFT_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"


class DatasetRef(ComponentRef):
    """The dataset block; ``shifted`` names other domains of the same loader for evaluation
    under shift (:mod:`sslcore.data.shift`)."""

    shifted: dict[str, dict[str, Any]] = Field(default_factory=dict, description=(
        "shifted domains: name -> params override, deep-merged onto params; the loader builds "
        "each with another seed, its test split is scored by every model, its unlabeled pool "
        "feeds pretraining only when named in pretrain.target_unlabeled"))

    @field_validator("shifted")
    @classmethod
    def _metric_safe_names(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        import re

        for name in v:
            if not re.match(SHIFT_NAME_PATTERN, name):
                raise ValueError(f"shifted domain name {name!r}: use letters, digits, _ and - "
                                 "(starting with a letter); it becomes part of metric names")
        return v

    @model_serializer(mode="wrap")
    def _omit_unset_shifted(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out = handler(self)  # without shifted domains, the block dumps as before (run keys)
        if not out.get("shifted", 0):
            out.pop("shifted", None)
        return out


class PretrainConfig(_StepBudget):
    epochs: int = Field(10, ge=0)
    min_steps: int = Field(0, ge=0, description="floor on optimizer steps (x the budget "
                           "preset), so a small pool still trains")
    max_steps: int | None = Field(None, ge=1, description="cap on optimizer steps (x the "
                                  "budget preset)")
    batch_size: int = Field(256, ge=2, description="global batch, split across ranks")
    lr: float = Field(1e-3, gt=0, description="peak learning rate at base_batch_size when "
                      "lr_scaling is set, else at any batch size")
    lr_scaling: Literal["none", "linear", "sqrt"] = Field(
        "none", description="scale lr with the global batch: lr * (batch_size / "
        "base_batch_size) (linear: Goyal et al. 2017, SimCLR, DINO) or its square root "
        "(sqrt: LAMB/Adam-style); none keeps lr as given")
    base_batch_size: int = Field(256, ge=1, description="the batch size lr is quoted for")
    weight_decay: float = Field(1e-5, ge=0)
    warmup_steps: int = Field(0, ge=0)
    grad_accum_steps: int = Field(1, ge=1)
    bf16: bool = True
    max_unlabeled: int | None = Field(None, ge=1, description="subsample the unlabeled pool")
    checkpoint_every: int = Field(100, ge=1, description="optimizer steps between checkpoints")
    log_every: int = Field(10, ge=1)
    collapse_std_threshold: float = Field(0.01, ge=0)
    # Continued pretraining (backbone.init set): REMEDIS, Hierarchical Pretraining, DAPT.
    init_lr_scale: float = Field(0.1, gt=0, le=1, description="with backbone.init: the "
                                 "backbone trains at lr x this (the pretext's fresh heads "
                                 "and projectors at lr), so SSL adapts the pretrained "
                                 "features instead of overwriting them; ignored without init")
    init_warmup_fraction: float = Field(0.05, ge=0, lt=1, description="with backbone.init "
                                        "and warmup_steps 0: linear warm-up over this "
                                        "fraction of the planned steps")
    head_only_steps: int | None = Field(None, ge=0, description="with backbone.init: the "
                                        "backbone's lr is 0 (and it stays in eval mode, "
                                        "BatchNorm statistics kept) for the first N steps, "
                                        "so the randomly initialised pretext heads stop "
                                        "sending large random gradients into the pretrained "
                                        "features before those train; None: 5% of the "
                                        "planned steps; ignored without init")
    probe_every: int | None = Field(None, ge=0, description="online linear probe (monitoring "
                                    "only, never selects a checkpoint) every N steps: "
                                    "logistic regression on the encoder's embeddings of a "
                                    "labeled slice, logged as probe_<primary metric>; None: "
                                    "about 10 probes per run; 0: off")
    probe_rows: int = Field(512, ge=4, description="labeled rows the probe uses (from the "
                            "labeled pool, never the test set), half to fit, half to score")
    seed: int = 0
    target_unlabeled: list[str] = Field(default_factory=list, description=(
        "shifted domains (dataset.shifted, or data['shifted'] in the API) whose unlabeled "
        "pool joins the run's unlabeled pool: unsupervised domain adaptation"))

    @property
    def effective_lr(self) -> float:
        """The learning rate the optimizer uses for this global batch size."""
        ratio = self.batch_size / self.base_batch_size
        return self.lr * {"none": 1.0, "linear": ratio, "sqrt": ratio ** 0.5}[self.lr_scaling]


class FinetuneConfig(_StepBudget):
    """The budget shared by every trained method of both arms."""

    epochs: int = Field(30, ge=1)
    # 300: what 30 epochs of at least 10 steps gave a few dozen labels before step budgets.
    min_steps: int = Field(300, ge=0, description="floor on optimizer steps (x the budget "
                           "preset); early stopping never stops before it")
    max_steps: int | None = Field(3000, ge=1, description="cap on optimizer steps (x the "
                                  "budget preset)")
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    eval_every: int | None = Field(None, ge=1, description="optimizer steps between "
                                   "validation checks; None: an epoch, at least 10 steps")
    patience: int = Field(5, ge=1, description="early stopping: validation checks without "
                          "improvement (only after min_steps)")
    layer_decay: float | None = Field(None, gt=0, le=1, description="layer-wise lr decay "
                                      "when fine-tuning a pretrained encoder (the finetune "
                                      "head; from-scratch baselines are random throughout): "
                                      "the head trains at lr, the encoder's top layer at lr x "
                                      "this, each layer below at one more factor (BEiT); "
                                      "None or 1: off")


class EvaluationConfig(_Strict):
    label_fractions: list[float] = Field(default_factory=lambda: [0.01, 0.05, 0.1, 0.25, 1.0])
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    metrics: list[str] = Field(default_factory=lambda: ["auprc", "auroc"])
    primary_metric: str = "auprc"
    min_labeled_per_class: int = Field(2, ge=1, description="floor per class in every subset")
    val_fraction: float = Field(0.2, gt=0, lt=1)

    @field_validator("label_fractions")
    @classmethod
    def _fractions_in_range(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("give at least one label fraction")
        for f in v:
            if not 0 < f <= 1:
                raise ValueError(f"label fraction {f} is outside (0, 1]")
        return sorted(set(v))

    @field_validator("seeds")
    @classmethod
    def _seeds_nonempty(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one seed")
        return v


class TrackingConfig(_Strict):
    uri: str | None = Field(None, description="MLflow tracking URI; default: sqlite:///mlflow.db")
    experiment: str | None = Field(None, description="MLflow experiment; default: sslcore-<vertical>")
    artifact_root: str | None = Field(None, description="where a new experiment keeps its "
                                      "artifacts (a directory or URI); default: mlartifacts/ "
                                      "beside a sqlite store's file, the server's own otherwise")
    # ``register`` in YAML; the Python name avoids BaseModel's (ABC's) ``register`` method.
    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)
    register_: bool = Field(True, alias="register", description="register the logged best "
                            "model in the MLflow Model Registry (alias candidate)")
    registered_model: str | None = Field(None, description="Model Registry name; default: "
                                         "sslcore-<vertical>")


class ExperimentConfig(_Strict):
    vertical: str
    budget: Budget = Field("standard", description="preset scaling every min_steps and "
                           "max_steps: quick 0.25x, standard 1x, thorough 4x "
                           "(sslcore.train.budget.BUDGET_SCALE)")
    dataset: DatasetRef
    augmentations: list[ComponentRef] = Field(default_factory=list)
    finetune_augmentations: list[ComponentRef] | None = Field(
        None, description="augmentations for supervised training in both arms (fine-tuning, "
        "from-scratch baselines); None: the pretraining augmentations. Pretraining "
        "augmentations set what the encoder learns to ignore; supervised training may need "
        "other ones")
    backbone: BackboneRef
    pretext: ComponentRef
    heads: list[ComponentRef]
    baselines: list[ComponentRef] = Field(default_factory=list)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    output_dir: str = "sslcore_runs"

    @model_validator(mode="after")
    def _share_budget(self) -> ExperimentConfig:
        # Copies: a block passed in by the caller must not take this config's preset.
        self.pretrain, self.finetune = self.pretrain.model_copy(), self.finetune.model_copy()
        self.pretrain._preset = self.finetune._preset = self.budget
        return self


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` onto a copy of ``base``.

    Lists are replaced, and so is a component block whose ``name`` changes: the params of the
    recipe's component mean nothing to another component.
    """
    out = copy.deepcopy(base)
    for key, value in override.items():
        old = out.get(key)
        if (isinstance(value, dict) and isinstance(old, dict)
                and value.get("name", old.get("name")) == old.get("name")):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def format_validation_error(exc: ValidationError, prefix: str = "", source: str = "") -> str:
    where = f" in {source}" if source else ""
    lines = []
    for err in exc.errors():
        path = _dotted(((prefix,) if prefix else ()) + tuple(err["loc"]))
        msg = "unknown key (check the spelling)" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"  {path}: {msg}")
    return f"invalid config{where}:\n" + "\n".join(lines)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def validate_config(raw: dict[str, Any], source: str = "") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source=source)) from None
