"""Vision transformers from Hugging Face transformers (ViT, DINOv2), with the image normalizer.

The model is ``AutoModel.from_config`` of a ``ViTConfig`` or ``Dinov2Config``: by default a
ViT-Tiny shape (192-d, 12 layers, 3 heads), or, with ``init`` (``backbone.init``:
``hf:facebook/dinov2-small``, a ``save_pretrained`` directory, an sslcore export), the
architecture of the pretrained model, whose weights are then loaded with a report
(:mod:`sslcore.init`). Either way the data set the input: ``num_channels`` (the patch
embedding is adapted from the checkpoint's 3 channels as timm does), ``image_size`` (position
embeddings resampled) and, with ``patch_size: auto``, the largest patch up to the
architecture's that cuts the image into at least 16 patches (the patch embedding resampled;
see :mod:`~sslcore.builtins.backbones.geometry`). Inputs of another size go through with
interpolated position embeddings (DINO's local crops; a non-square image interpolates the square
grid of its longer side); a size the patch does not divide is zero-padded at the bottom and
right after normalization.

The embedding is the final layer-normed class token (``pool: cls``) or the mean of the patch
tokens (``pool: mean``).

Example::

    enc = HFVisionBackbone(HFVisionParams(), input_shape=(3, 32, 32),
                           init="hf:facebook/dinov2-small")   # needs the model in HF_HOME
    enc.fit_normalizer(unlabeled)
    z = enc(x)                                                   # (B, 384)
    enc.init_report.summary()
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from sslcore.builtins.backbones.channel_normalizer import ChannelNormalizer
from sslcore.builtins.backbones.geometry import check_image_shape, log_geometry, vit_geometry
from sslcore.contracts import Backbone
from sslcore.errors import ConfigError
from sslcore.init import InitMismatchError, load_init, resolve_init

MODEL_TYPES = ("vit", "dinov2")
# The architecture fields: from init's config when it has one, else these (ViT-Tiny).
_DEFAULTS = {"hidden_size": 192, "num_hidden_layers": 12, "num_attention_heads": 3,
             "intermediate_size": 768}


class HFVisionParams(BaseModel):
    """Params of :class:`HFVisionBackbone`. Architecture fields left unset (None) come from
    ``backbone.init``'s config, else from ViT-Tiny; set with an init, they must agree with it."""

    model_config = ConfigDict(extra="forbid")

    model_type: Literal["vit", "dinov2"] | None = Field(
        None, description="vit or dinov2; None: init's, else vit")
    hidden_size: int | None = Field(None, ge=8, description="token width (default 192)")
    num_hidden_layers: int | None = Field(None, ge=1, description="blocks (default 12)")
    num_attention_heads: int | None = Field(None, ge=1, description="heads (default 3)")
    intermediate_size: int | None = Field(None, ge=8, description="MLP width (default 768; "
                                          "dinov2 uses mlp_ratio instead)")
    patch_size: Annotated[int, Field(ge=1)] | Literal["auto"] | None = Field(
        "auto", description="auto: the largest of the architecture's, 16, 8, 4, 2 px that "
        "gives at least 16 patches; an int forces it; null keeps the architecture's")
    pool: Literal["cls", "mean"] = Field("cls", description="embedding: the class token or "
                                         "the mean of the patch tokens")
    config: dict[str, bool | int | float | str] = Field(
        default_factory=dict, description="other config fields of the transformers model "
        "(e.g. hidden_dropout_prob, drop_path_rate), validated by building it")


def _arch_patch(config: Any) -> int:
    patch = config.patch_size
    return int(patch if isinstance(patch, int) else patch[0])


def build_config(params: HFVisionParams, shape: tuple[int, int, int], source: Any = None
                 ) -> tuple[Any, Any]:
    """The transformers config for ``shape`` images and the geometry it reads them with.

    Raises:
        ConfigError: an architecture field that contradicts the init's config, a patch that
            does not divide the image, a bad ``config`` key.
        InitMismatchError: the init is not a ViT or DINOv2 model.
    """
    from transformers import AutoConfig

    from sslcore.init.hf import source_config

    base = source_config(source) if source is not None else None
    if base is not None:
        if base.model_type not in MODEL_TYPES:
            raise InitMismatchError(f"backbone.init: {source.text} is a {base.model_type!r} "
                                    f"model; hf_vision takes {' or '.join(MODEL_TYPES)} models")
        fields = {"model_type": base.model_type} | {k: getattr(base, k, None)
                                                    for k in _DEFAULTS}
        clash = [f"{k} ({getattr(params, k)} vs {fields[k]})" for k in params.model_fields_set
                 if k in fields and getattr(params, k) is not None
                 and getattr(params, k) != fields[k]]
        if clash:
            raise ConfigError(f"backbone.params: {', '.join(clash)} contradict the "
                              f"architecture of backbone.init {source.text}; remove them")
        config = base
    else:
        kind = params.model_type or "vit"
        arch = {k: getattr(params, k) if getattr(params, k) is not None else v
                for k, v in _DEFAULTS.items()}
        if kind == "dinov2":
            arch["mlp_ratio"] = max(1, round(arch.pop("intermediate_size") / arch["hidden_size"]))
        config = AutoConfig.for_model(kind, **arch)
    for key, value in params.config.items():  # before the geometry: it may set patch_size
        if not hasattr(config, key):
            raise ConfigError(f"backbone.params.config: {key!r} is not a field of "
                              f"{type(config).__name__}")
        _set(config, key, value)
    c, h, w = shape
    geometry = vit_geometry(params.patch_size, shape, _arch_patch(config))
    # A square grid of the longer side: transformers interpolates square position grids
    # only; a non-square image reads its own part of it, interpolated.
    size = max(geometry.padded_to or (h, w))
    for key, value in {"num_channels": c, "image_size": size,
                       "patch_size": geometry.patch}.items():
        _set(config, key, value)
    return config, geometry


def _set(config: Any, key: str, value: Any) -> None:
    try:
        setattr(config, key, value)
    except (TypeError, ValueError) as exc:  # transformers' configs check their types
        raise ConfigError(f"backbone.params.config: {key}={value!r} is refused by "
                          f"{type(config).__name__} ({exc})") from None


class HFVisionBackbone(ChannelNormalizer, Backbone):
    """Normalize per channel -> (pad to the patch) -> transformers ViT / DINOv2 -> class token
    or mean patch token -> ``(N, hidden_size)``.

    Args:
        params: an :class:`HFVisionParams`.
        input_shape: per-sample ``(C, H, W)``.
        init: ``backbone.init`` (see :func:`sslcore.init.load_init`).

    Raises:
        ConfigError: see :func:`build_config`.
        DataError: the images have no channel axis or are smaller than 8 px.
        InitError: ``init`` cannot be found, read, or matched to this model.
    """

    native_library = "transformers"  # sslcore.init: weights in transformers' names

    def __init__(self, params: HFVisionParams, *, input_shape: tuple[int, ...],
                 init: Any = None) -> None:
        super().__init__()
        from transformers import AutoModel

        shape = check_image_shape(input_shape, "hf_vision")
        source = resolve_init(init, shape) if init is not None else None
        config, self.geometry = build_config(params, shape, source)
        arch_patch = _arch_patch(source.transformers_config()) if source is not None and \
            source.library == "transformers" else None
        self.input_shape = shape
        self.model_name = f"hf_vision ({config.model_type})"
        self.pool = params.pool
        kwargs = {"add_pooling_layer": False} if config.model_type == "vit" else {}
        try:
            self.model = AutoModel.from_config(config, **kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"backbone hf_vision: transformers rejected the config ({exc}); "
                              "check backbone.params") from exc
        mask_token = getattr(self.model.embeddings, "mask_token", None)
        if mask_token is not None:  # only for masked inputs: never trained here (DDP)
            mask_token.requires_grad_(False)
        self.patch = int(self.geometry.patch)
        self._params, self._arch_patch = params, arch_patch
        self.embed_dim = int(config.hidden_size)
        log_geometry(self.geometry.describe(self.model_name), self.geometry.changed)
        self.init_normalizer(shape[0])
        if init is not None:
            load_init(self, init, source=source)

    def export_params(self) -> dict[str, Any]:
        """Params that rebuild this architecture without ``init`` (an export's, a spec's)."""
        from sslcore.init.hf import config_overrides

        config = self.model.config
        out = self._params.model_dump(mode="json")
        out |= {"model_type": config.model_type} | {
            k: getattr(config, k) for k in _DEFAULTS if hasattr(config, k)}
        if config.model_type != "vit":
            out["intermediate_size"] = None
        extra = config_overrides(config, skip={"num_channels", "image_size", "patch_size",
                                               *_DEFAULTS})
        if self._arch_patch is not None:  # the init's own patch: the auto rule's ceiling
            extra["patch_size"] = self._arch_patch
        out["config"] = extra | dict(self._params.config)
        return out

    @classmethod
    def describe_input(cls, params: HFVisionParams, input_shape: tuple[int, ...]) -> str:
        """How images of ``input_shape`` go through (``sslcore.data_fit``'s data card)."""
        shape = check_image_shape(input_shape, "hf_vision")
        _, geometry = build_config(params, shape)
        return geometry.describe(f"hf_vision ({params.model_type or 'vit'})")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        pad_h, pad_w = (-x.shape[-2]) % self.patch, (-x.shape[-1]) % self.patch
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        kwargs = {"interpolate_pos_encoding": True} if self.model.config.model_type == "vit" \
            else {}
        h = self.model(pixel_values=x, **kwargs).last_hidden_state
        return h[:, 0] if self.pool == "cls" else h[:, 1:].mean(dim=1)
