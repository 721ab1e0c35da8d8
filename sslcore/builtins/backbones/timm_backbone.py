"""Image encoders from timm, with a label-free per-channel normalizer.

Any timm model is built with ``pretrained=False`` (no hub, no network: it works under
``HF_HUB_OFFLINE=1``); ``init`` (``backbone.init``: ``timm:resnet18.a1_in1k``, a file, an
sslcore export, see :mod:`sslcore.init`) then loads pretrained weights through timm's own
``load_pretrained`` (input channels adapted, the classifier dropped, ViT position embeddings
resampled) and sets ``backbone.init_report``. Models get ``num_classes=0`` (the pooled
features are the embedding) and the number of input channels of the data (1 for X-rays, 13
for Sentinel-2). Fixed-size models (ViTs) also get ``img_size`` from the data, and by default
``dynamic_img_size`` so that smaller crops (DINO's local views) go through the same encoder
with interpolated position embeddings.

The geometry follows the data (:mod:`~sslcore.builtins.backbones.geometry`): a ViT's patch
size is chosen so an image gives at least 16 tokens (``patch_size: auto``, padding when it does
not divide the image), a CNN upsamples images smaller than its total stride
(``min_input_side: auto``), and images below 8 px are refused. ``backbone.geometry`` records
the decision; it is logged once per shape when the backbone is built.

Images arrive as raw intensities on a fixed scale; the normalizer (per-channel mean and std,
fitted on the unlabeled pool, no labels) is applied inside ``forward``. Its statistics are
buffers, so they travel in the ``state_dict`` and pickles with the model
(:mod:`~sslcore.builtins.backbones.channel_normalizer`, shared with ``hf_vision``).

Example::

    enc = TimmBackbone(TimmParams(model_name="resnet18"), input_shape=(1, 64, 64))
    enc.fit_normalizer(unlabeled)        # (N, 1, 64, 64) float32, once, on the unlabeled pool
    z = enc(x)                           # (B, 512)
    enc.model                            # the timm model itself (MAE, Grad-CAM use its parts)
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sslcore.builtins.backbones.channel_normalizer import ChannelNormalizer
from sslcore.builtins.backbones.geometry import (
    ImageGeometry,
    check_image_shape,
    cnn_geometry,
    log_geometry,
    upsampled_size,
    vit_geometry,
)
from sslcore.contracts import Backbone
from sslcore.errors import ConfigError
from sslcore.init import load_init

# timm arguments this wrapper sets itself; timm_kwargs may not override them.
_RESERVED = {"pretrained", "num_classes", "in_chans", "img_size", "patch_size", "drop_path_rate",
             "dynamic_img_size", "dynamic_img_pad", "checkpoint_path", "pretrained_cfg",
             "pretrained_cfg_overlay", "cache_dir", "features_only"}
_AUTO_PATCH = ("ViT patch side (ViTs only): auto = the largest of the architecture's, 16, 8, "
               "4, 2 px that cuts the image into at least 16 patches (padding it to a multiple "
               "when needed); an int forces it (it must divide the image); null keeps the "
               "architecture's")
_MIN_SIDE = ("CNNs only: images whose shorter side is below this are upsampled (bilinear, "
             "aspect kept) to it inside the backbone; auto = the network's total stride (32 "
             "px for resnet18), below which its last stage has no pixel left; null: never")


class TimmParams(BaseModel):
    """Params of :class:`TimmBackbone` (the generic ``timm`` backbone)."""

    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(description="a timm architecture name, e.g. resnet18, "
                            "convnext_atto, vit_small_patch16_224 (pretrained weights: "
                            "backbone.init)")
    drop_path_rate: float = Field(0.0, ge=0.0, lt=1.0, description="stochastic depth rate")
    patch_size: Annotated[int, Field(ge=1)] | Literal["auto"] | None = Field(
        "auto", description=_AUTO_PATCH)
    min_input_side: Annotated[int, Field(ge=1)] | Literal["auto"] | None = Field(
        "auto", description=_MIN_SIDE)
    dynamic_img_size: bool = Field(True, description="ViTs only: accept images of other sizes "
                                   "than input_shape (multi-crop) by interpolating the "
                                   "position embeddings")
    channels_last: bool = Field(True, description="channels-last memory format on CUDA "
                                "(ignored on CPU, where it is slower)")
    timm_kwargs: dict[str, bool | int | float | str] = Field(
        default_factory=dict, description="extra keyword arguments of timm.create_model; "
        "validated by building the model")


class ResNet18Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    drop_path_rate: float = Field(0.0, ge=0.0, lt=1.0)
    channels_last: bool = True
    min_input_side: Annotated[int, Field(ge=1)] | Literal["auto"] | None = Field(
        "auto", description=_MIN_SIDE)


class ViTTinyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    drop_path_rate: float = Field(0.0, ge=0.0, lt=1.0)
    patch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto", description="auto: 8 px patches (a 64 px image is 64 tokens), or 4 or 2 px "
        "when the image would give fewer than 16; an int forces it")
    dynamic_img_size: bool = True
    global_pool: Literal["token", "avg"] = Field(
        "token", description="embedding: the class token (DINO) or the mean of the patch "
        "tokens (avg; use it with MAE, whose class token gets no direct training signal)")


def _is_fixed_size(model_name: str) -> bool:
    """True for architectures built for one input size (ViTs): they need ``img_size``."""
    import timm

    cfg = timm.get_pretrained_cfg(model_name)
    return bool(getattr(cfg, "fixed_input_size", False)) if cfg is not None else False


def _arch_patch(model_name: str) -> int:
    """The architecture's own patch side, read from its name (``vit_tiny_patch16_224``: 16);
    16, timm's usual, when the name does not say."""
    import re

    found = re.search(r"patch(\d+)", model_name)
    return int(found.group(1)) if found else 16


def vit_patch_size(model: nn.Module) -> tuple[int, int] | None:
    """(height, width) of a timm ViT's patches; None for a model without patches."""
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    return None if patch is None else (int(patch[0]), int(patch[1]))


def create_timm_model(params: TimmParams, input_shape: tuple[int, int, int], *,
                      largest_patch: int | None = None) -> tuple[nn.Module, ImageGeometry]:
    """``timm.create_model`` with the data's channels (and size and patch, for ViTs), never
    pretrained, and the geometry the data goes through it with.

    Args:
        largest_patch: cap of the ``patch_size: auto`` rule (default: the architecture's).

    Raises:
        ConfigError: unknown architecture (with close names), a bad ``timm_kwargs`` key, a
            forced patch size that does not divide the image, ``patch_size`` on a non-ViT or
            ``min_input_side`` on a ViT.
    """
    import timm

    name = params.model_name
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"backbone.params.model_name: {name!r} is not a timm model.{hint} "
                          "List them with python -c 'import timm; print(timm.list_models())'.")
    reserved = sorted(set(params.timm_kwargs) & _RESERVED)
    if reserved:
        raise ConfigError(f"backbone.params.timm_kwargs: {', '.join(reserved)} are set by "
                          "sslcore (from the data, or as their own params); remove them")
    c, h, w = input_shape
    kwargs: dict[str, Any] = dict(params.timm_kwargs)
    if params.drop_path_rate > 0:
        kwargs["drop_path_rate"] = params.drop_path_rate
    fixed = _is_fixed_size(name)
    geometry = None
    if fixed:
        if isinstance(params.min_input_side, int):
            raise ConfigError(f"backbone.params.min_input_side is for CNNs; {name!r} is a "
                              "ViT, whose patch size follows the image (patch_size: auto)")
        if params.patch_size is not None:  # None: the architecture's, checked once built
            geometry = vit_geometry(params.patch_size, input_shape, _arch_patch(name),
                                    largest=largest_patch,
                                    dynamic_img_size=params.dynamic_img_size)
            kwargs["patch_size"] = geometry.patch
        kwargs["img_size"] = geometry.padded_to if geometry and geometry.padded_to else (h, w)
        if geometry is not None and geometry.padded_to is not None:
            kwargs["dynamic_img_pad"] = True  # timm pads each input to a multiple of the patch
        if params.dynamic_img_size:  # architectures without it (MLP-Mixer) need it off
            kwargs["dynamic_img_size"] = True
    elif isinstance(params.patch_size, int):
        raise ConfigError(f"backbone.params.patch_size is for ViTs; {name!r} has no patches")
    try:
        model = timm.create_model(name, pretrained=False, num_classes=0, in_chans=c, **kwargs)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(f"backbone {name!r}: timm rejected its arguments ({exc}); check "
                          "backbone.params (timm_kwargs, drop_path_rate, patch_size, "
                          "dynamic_img_size)") from exc
    patch = vit_patch_size(model)
    if patch is not None and geometry is None:
        geometry = vit_geometry(None, input_shape, patch[0]) if fixed else \
            ImageGeometry(c, h, w, patch[0], "architecture")
    if geometry is None:
        info = getattr(model, "feature_info", None)
        stride = int(info[-1].get("reduction", 0)) if info else 0
        geometry = cnn_geometry(params.min_input_side, input_shape, stride)
    return model, geometry


class TimmBackbone(ChannelNormalizer, Backbone):
    """Normalize per channel -> (upsample small images, CNNs) -> timm model with
    ``num_classes=0`` -> ``(N, embed_dim)``.

    Args:
        params: a :class:`TimmParams`.
        input_shape: per-sample shape ``(C, H, W)`` of the data.
        largest_patch: cap of the ``patch_size: auto`` rule (default: the architecture's).
        init: ``backbone.init`` (see :func:`sslcore.init.load_init`): pretrained weights.

    Raises:
        ConfigError: ``input_shape`` is not an image shape, or the timm model cannot be built.
        DataError: the images have no channel axis or are smaller than 8 px.
        InitError: ``init`` cannot be found, read, or matched to this model (subclasses of
            :class:`~sslcore.errors.CheckpointError`, see :mod:`sslcore.init.errors`).
    """

    native_library = "timm"  # sslcore.init: weights in timm's names load into self.model

    def __init__(self, params: TimmParams, *, input_shape: tuple[int, ...],
                 largest_patch: int | None = None, init: Any = None) -> None:
        super().__init__()
        shape = check_image_shape(input_shape, params.model_name)
        self.input_shape = shape
        self.model_name = params.model_name
        self.channels_last = bool(params.channels_last)
        self.model, self.geometry = create_timm_model(params, shape, largest_patch=largest_patch)
        log_geometry(self.geometry.describe(self.model_name), self.geometry.changed)
        self.embed_dim = int(getattr(self.model, "head_hidden_size", None)
                             or self.model.num_features)
        info = getattr(self.model, "feature_info", None)
        is_vit = hasattr(self.model, "patch_embed")
        self._cnn_stride = 0 if is_vit or not info else int(info[-1].get("reduction", 0))
        self._min_side = self.geometry.min_input_side
        self.init_normalizer(shape[0])
        if init is not None:  # backbone.init: pretrained weights, adapted by timm, reported
            load_init(self, init)

    @classmethod
    def describe_input(cls, params: TimmParams, input_shape: tuple[int, ...]) -> str:
        """How images of ``input_shape`` go through this backbone: one sentence, which
        ``sslcore.data_fit`` records in the data card (``data.input.backbone``) before any
        work. Raises the constructor's DataError / ConfigError."""
        backbone = cls(params, input_shape=input_shape)
        return backbone.geometry.describe(backbone.model_name)

    def _apply(self, fn: Any, recurse: bool = True) -> TimmBackbone:
        super()._apply(fn, recurse)
        if self.channels_last and self.channel_mean.is_cuda:  # after .to("cuda"), once per move
            self.model.to(memory_format=torch.channels_last)
        return self

    def _avoid_cpu_bf16_bug(self, x: torch.Tensor) -> bool:
        """True when this batch must run in float32 on CPU despite bf16 autocast.

        torch 2.14's CPU bf16 kernel for the weight gradient of a 3x3 stride-2 convolution on
        a 1 x 1 feature map reads uninitialized memory (nondeterministic gradients, at times
        NaN: a 16 px SimCLR run diverged at step 4). A CNN meets it in its last stage when
        the image side is at most half its total stride (16 px for resnet18; 28 px images are
        fine), where float32 costs little anyway.
        """
        return bool(self._cnn_stride) and x.device.type == "cpu" \
            and torch.is_autocast_enabled("cpu") and min(x.shape[-2:]) <= self._cnn_stride // 2

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        """Images whose shorter side is below the CNN's minimum input side, resized (bilinear,
        aspect kept) so that it is that side; others unchanged. See ``geometry``."""
        h, w = x.shape[-2:]
        if not self._min_side or min(h, w) >= self._min_side:
            return x
        return F.interpolate(x, size=upsampled_size(h, w, self._min_side), mode="bilinear",
                             align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.upsample(self.normalize(x))
        if self._avoid_cpu_bf16_bug(x):
            with torch.autocast(device_type="cpu", enabled=False):
                return self.model(x)
        if self.channels_last and x.is_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)


def resnet18(params: ResNet18Params, *, input_shape: tuple[int, ...],
             init: Any = None) -> TimmBackbone:
    """timm ``resnet18`` (512-d embedding), random unless ``init`` (``backbone.init``) names
    pretrained weights, e.g. ``timm:resnet18.a1_in1k``."""
    return TimmBackbone(TimmParams(model_name="resnet18", **params.model_dump()),
                        input_shape=input_shape, init=init)


def vit_tiny(params: ViTTinyParams, *, input_shape: tuple[int, ...],
             init: Any = None) -> TimmBackbone:
    """timm ``vit_tiny_patch16_224`` with 8 px patches at the data's size (smaller on small
    images, see ``patch_size``; 192-d embedding). Pretrained 16 px weights (``init``) are
    resampled to the patch and grid by timm."""
    kwargs = params.model_dump()
    pool = kwargs.pop("global_pool")
    return TimmBackbone(TimmParams(model_name="vit_tiny_patch16_224", **kwargs,
                                   timm_kwargs={"global_pool": pool}), input_shape=input_shape,
                        largest_patch=8, init=init)


def _describe_with(factory: Any) -> Any:
    """A ``describe_input`` for a factory function (see :meth:`TimmBackbone.describe_input`)."""
    def describe_input(params: BaseModel, input_shape: tuple[int, ...]) -> str:
        backbone = factory(params, input_shape=input_shape)
        return backbone.geometry.describe(backbone.model_name)

    return describe_input


resnet18.describe_input = _describe_with(resnet18)  # type: ignore[attr-defined]
vit_tiny.describe_input = _describe_with(vit_tiny)  # type: ignore[attr-defined]
