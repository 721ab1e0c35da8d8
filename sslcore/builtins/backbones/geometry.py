"""Image geometry from the data: the minimum image size, a ViT's patch size, a CNN's input side.

Recipes are tuned at one size (64 px radiographs and tiles); users bring 8 px digits, 25 px
faces, 32 px patches. The image backbone decides, when it is built (before any training), how
the data's images go through it, and logs the decision once per shape (a warning when it
changes what the config or the data said):

- **Minimum size**: image backbones need images of at least :data:`MIN_IMAGE_SIDE` (8) px per
  side; smaller ones are a :class:`~sslcore.errors.DataError` naming the size that works.
- **ViT patches** (``patch_size: auto``): the largest side among the architecture's own
  patch and 16, 8, 4, 2 px (never above the architecture's) that cuts the image into at least
  :data:`MIN_TOKENS` (16) whole patches, ``floor(H/p) * floor(W/p) >= 16``: 16 px at 64 px,
  8 px at 32 px, 4 px at 25 px, 2 px at 8 px. A patch that does not divide the image is
  reached by zero padding at the bottom and right (after normalization, so with the channel
  mean; less than one patch; timm's ``dynamic_img_pad``).
- **CNN input side** (``min_input_side: auto``): a CNN halves its maps at every stage; an
  image whose shorter side is below its total stride (32 px for a ResNet-18) leaves its last
  stage less than one pixel, so it is upsampled (bilinear, aspect kept) inside the backbone
  until its shorter side is that stride: 8 px digits go through a ResNet-18 at 32 px.

Example::

    choose_patch_size(32, 32)                  # 8: 16 tokens
    enc = TimmBackbone(TimmParams(model_name="resnet18"), input_shape=(1, 8, 8))
    enc.geometry.as_tags()                     # {'sslcore.geometry.upsampled_to': '32x32', ...}
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Any

from sslcore.errors import ConfigError, DataError

logger = logging.getLogger("sslcore.geometry")

MIN_IMAGE_SIDE = 8
MIN_TOKENS = 16
PATCH_CANDIDATES = (16, 8, 4, 2)


def check_image_shape(input_shape: Any, model_name: str) -> tuple[int, int, int]:
    """``(C, H, W)`` of an image backbone's input, or an error that says how to fix the data.

    Raises:
        DataError: the samples have no channel axis (``H x W``), or a side below 8 px.
        ConfigError: the samples are not images at all (rows of a table).
    """
    shape = tuple(int(d) for d in input_shape) if input_shape is not None else ()
    if len(shape) == 2:
        h, w = shape
        raise DataError(f"backbone {model_name!r} takes images N x C x H x W, but the data's "
                        f"arrays (unlabeled, labeled, test) are N x {h} x {w}, with no channel "
                        f"axis: add one to each, e.g. x[:, None] for single-channel images "
                        f"(shape (N, 1, {h}, {w}))")
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(
            f"backbone {model_name!r} (timm) is for images: input_shape must be (C, H, W), got "
            f"{shape or input_shape}. Use the 'mlp' backbone for tables.")
    c, h, w = shape
    if min(h, w) < MIN_IMAGE_SIDE:
        hint = ""
        if w <= 4 < c:
            hint = (f" (the samples look like H x W x C, channels last: transpose them with "
                    f"x.transpose(0, 3, 1, 2) to (N, {w}, {c}, {h}))")
        side = max(MIN_IMAGE_SIDE, h, w)
        raise DataError(
            f"backbone {model_name!r}: the data's images (unlabeled, labeled, test) are {h} x "
            f"{w} px with {c} channel(s), too small; image backbones need at least "
            f"{MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE} px{hint}. Upsample every split, e.g. "
            f"torch.nn.functional.interpolate(torch.as_tensor(x), size=({side}, {side}), "
            "mode='bilinear')")
    return c, h, w


def choose_patch_size(h: int, w: int, largest: int = 16) -> int:
    """The largest patch side in (``largest``, 16, 8, 4, 2), at most ``largest``, that cuts an
    ``h x w`` image into at least 16 whole patches; 2 when none does (images of 8 px and more
    always get 16)."""
    for p in sorted({largest, *(c for c in PATCH_CANDIDATES if c < largest)}, reverse=True):
        if (h // p) * (w // p) >= MIN_TOKENS:
            return p
    return min(largest, PATCH_CANDIDATES[-1])


@dataclass(frozen=True)
class ImageGeometry:
    """How the data's images go through an image backbone (``TimmBackbone.geometry``).

    ``patch``: a ViT's patch side (None for CNNs) and ``patch_rule`` how it was set ("auto",
    "config" or "architecture"); ``padded_to``: the padded size when the patch does not divide
    the image; ``upsampled_to``: the size a CNN resizes these images to; ``min_input_side``:
    a CNN's shorter side below which any input (a smaller crop too) is upsampled (0: never).
    """

    channels: int
    height: int
    width: int
    patch: int | None = None
    patch_rule: str = ""
    padded_to: tuple[int, int] | None = None
    upsampled_to: tuple[int, int] | None = None
    min_input_side: int = 0

    @property
    def tokens(self) -> int | None:
        """Patch tokens of one image (ViTs), padding included."""
        if self.patch is None:
            return None
        return math.ceil(self.height / self.patch) * math.ceil(self.width / self.patch)

    def as_tags(self) -> dict[str, str]:
        """MLflow tags ``sslcore.geometry.*`` (what a vertical's artifacts function logs)."""
        def size(hw: tuple[int, int] | None) -> str:
            return "none" if hw is None else f"{hw[0]}x{hw[1]}"

        tags = {"image": f"{self.channels}x{self.height}x{self.width}",
                "upsampled_to": size(self.upsampled_to)}
        if self.patch is not None:
            tags |= {"patch_size": str(self.patch), "patch_rule": self.patch_rule,
                     "tokens": str(self.tokens), "padded_to": size(self.padded_to)}
        return {f"sslcore.geometry.{k}": v for k, v in tags.items()}

    def describe(self, model_name: str) -> str:
        """One sentence for the log."""
        text = f"backbone {model_name!r}: {self.channels} x {self.height} x {self.width} images"
        if self.patch is not None:
            text += (f", {self.patch} px patches ({self.patch_rule}): {self.tokens} tokens")
        if self.padded_to is not None:
            text += f", zero-padded to {self.padded_to[0]} x {self.padded_to[1]}"
        if self.upsampled_to is not None:
            text += (f", upsampled to {self.upsampled_to[0]} x {self.upsampled_to[1]} inside "
                     "the backbone (its total stride; backbone.params.min_input_side)")
        return text

    @property
    def changed(self) -> bool:
        """True when the data does not go through as given (padding, resizing) or a ViT
        sees fewer than 16 tokens: worth a warning, not just a note."""
        few = self.tokens is not None and self.tokens < MIN_TOKENS
        return self.padded_to is not None or self.upsampled_to is not None or few


def vit_geometry(patch_size: int | str | None, shape: tuple[int, int, int], arch_patch: int,
                 *, largest: int | None = None,
                 dynamic_img_size: bool = True) -> ImageGeometry:
    """The patch side, token count and padding of a ViT on ``shape`` images.

    Args:
        patch_size: an int (forced), ``"auto"`` or None (the architecture's own).
        arch_patch: the architecture's own patch side (16 for ``vit_tiny_patch16_224``).
        largest: cap of the auto rule (default ``arch_patch``).

    Raises:
        ConfigError: a forced patch does not divide the image, or padding is needed while
            ``dynamic_img_size`` is off.
    """
    c, h, w = shape
    if patch_size == "auto":
        patch, rule = choose_patch_size(h, w, largest or arch_patch), "auto"
    else:
        patch = arch_patch if patch_size is None else int(patch_size)
        rule = "architecture" if patch_size is None else "config"
        if h % patch or w % patch:
            raise ConfigError(f"backbone.params.patch_size: {patch} px patches do not divide "
                              f"the {h} x {w} px images; set it to a divisor, or to 'auto' "
                              f"({choose_patch_size(h, w, largest or arch_patch)} px here, "
                              "padding the image)")
    padded = None
    if h % patch or w % patch:
        padded = (math.ceil(h / patch) * patch, math.ceil(w / patch) * patch)
        if not dynamic_img_size:
            raise ConfigError(f"backbone.params.dynamic_img_size: {patch} px patches need the "
                              f"{h} x {w} images padded to {padded[0]} x {padded[1]}, which "
                              "needs dynamic_img_size: true; or set patch_size to a divisor "
                              "of the image size")
    return ImageGeometry(c, h, w, patch, rule, padded)


def cnn_geometry(min_input_side: int | str | None, shape: tuple[int, int, int],
                 stride: int) -> ImageGeometry:
    """A CNN's input size on ``shape`` images: upsampled when the shorter side is below
    ``min_input_side`` (``"auto"``: the network's total ``stride``; None: never)."""
    c, h, w = shape
    side = int((stride if min_input_side == "auto" else min_input_side) or 0)
    up = upsampled_size(h, w, side) if side and min(h, w) < side else None
    return ImageGeometry(c, h, w, upsampled_to=up, min_input_side=side)


def upsampled_size(h: int, w: int, side: int) -> tuple[int, int]:
    """``(h, w)`` scaled so the shorter side is ``side`` (aspect kept, rounded)."""
    scale = side / min(h, w)
    return max(side, round(h * scale)), max(side, round(w * scale))


@functools.lru_cache(maxsize=256)
def log_geometry(message: str, warn: bool) -> None:
    """Log a geometry note once per process (backbones are rebuilt for every fit)."""
    (logger.warning if warn else logger.info)(message)
