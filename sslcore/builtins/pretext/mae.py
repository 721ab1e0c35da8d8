"""MAE: masked autoencoding of image patches with a ViT encoder and a small decoder.

A random 75% of each image's patches are hidden; the encoder (the backbone's own timm ViT:
patch embedding, position embedding, blocks and final norm) sees only the visible patches; a
light decoder gets the encoded patches plus a shared learned mask token at every hidden
position and reconstructs the pixels of the hidden patches. The loss is the mean squared error
on hidden patches only, against per-patch normalized pixels (the paper's ``norm_pix_loss``).
The masking itself is the corruption, so configured augmentations are optional (the paper uses
only crops and flips). Downstream, the plain backbone encodes the whole image, unmasked.

Prefer an average-pooling ViT (``vit_tiny`` with ``global_pool: avg``, the paper's choice for
fine-tuning): MAE never trains the class token directly. Expect the collapse monitor to flag
MAE encoders early on: after 40 steps on 32 px images the embedding std of L2-normalised
embeddings was 0.0007 (class token) and 0.003 (average pooling), while the reconstruction loss
fell; MAE features are strongly anisotropic and are meant to be fine-tuned (He et al., Sec. 4:
MAE linear probes lag, fine-tuning does not).

References:
    He, Chen, Xie, Li, Dollár, Girshick. "Masked Autoencoders Are Scalable Vision Learners."
    CVPR 2022. https://arxiv.org/abs/2111.06377

Example::

    enc = vit_tiny(ViTTinyParams(global_pool="avg"), input_shape=(1, 64, 64))  # 64 tokens
    task = MAE(MAEParams(mask_ratio=0.75), backbone=enc, augment=None, input_shape=(1, 64, 64))
    loss = task.loss(batch, generator)
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sslcore.contracts import Augmentation, Backbone, PretextTask
from sslcore.errors import ConfigError, DataError

__all__ = ["MAE", "MAEParams", "patchify", "random_masking"]

_VIT_PARTS = ("patch_embed", "_pos_embed", "norm_pre", "blocks", "norm", "num_prefix_tokens")


def patchify(x: torch.Tensor, patch: tuple[int, int]) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, L, ph * pw * C)``, patches in row-major order."""
    n, c, h, w = x.shape
    ph, pw = patch
    x = x.reshape(n, c, h // ph, ph, w // pw, pw)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(n, (h // ph) * (w // pw), ph * pw * c)


def random_masking(n: int, length: int, mask_ratio: float, generator: torch.Generator,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample random masking by argsort of uniform noise (as in the MAE reference code).

    Returns:
        ``ids_keep`` ``(N, n_keep)`` indices of visible patches, ``mask`` ``(N, L)`` with 1 on
        hidden patches, and ``ids_restore`` ``(N, L)`` undoing the shuffle. Exactly
        ``L - n_keep`` patches per sample are hidden, ``n_keep = max(1, int(L * (1 - ratio)))``.
    """
    noise = torch.rand((n, length), generator=generator, device=generator.device).to(device)
    n_keep = max(1, int(length * (1.0 - mask_ratio)))
    ids_shuffle = noise.argsort(dim=1)
    ids_restore = ids_shuffle.argsort(dim=1)
    mask = torch.ones(n, length, device=device)
    mask[:, :n_keep] = 0.0
    return ids_shuffle[:, :n_keep], mask.gather(1, ids_restore), ids_restore


class MAEParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mask_ratio: float = Field(0.75, gt=0.0, lt=1.0, description="fraction of patches hidden")
    decoder_dim: int = Field(128, ge=8, description="decoder width")
    decoder_depth: int = Field(2, ge=1, description="decoder transformer blocks")
    decoder_heads: int = Field(4, ge=1, description="decoder attention heads")
    norm_pix_loss: bool = Field(True, description="normalize each target patch by its own "
                                "mean and std (the paper's better-representation setting)")


def _check_whole_patches(input_shape: tuple[int, ...] | None, patch: tuple[int, ...]) -> None:
    """MAE hides and rebuilds whole patches, so it cannot use a ViT that pads the image to a
    multiple of its patch (``patch_size: auto`` on a size the patch does not divide)."""
    if input_shape is None or len(input_shape) != 3:
        return
    h, w = int(input_shape[1]), int(input_shape[2])
    if h % patch[0] or w % patch[1]:
        divisors = [p for p in range(2, min(h, w) + 1) if h % p == 0 and w % p == 0]
        enough = [p for p in divisors if (h // p) * (w // p) >= 16]  # at least 16 tokens
        hint = f"e.g. {max(enough or divisors)}" if divisors else "none exists: resize them"
        raise ConfigError(f"pretext 'mae' rebuilds whole patches: the {h} x {w} px images do "
                          f"not split into {patch[0]} x {patch[1]} px patches; set "
                          f"backbone.params.patch_size to a divisor of both sides ({hint})")


class MAE(PretextTask):
    """MAE pretext task on a timm ViT backbone.

    Args:
        params: a :class:`MAEParams`.
        backbone: a :class:`~sslcore.builtins.backbones.timm_backbone.TimmBackbone` holding a
            timm VisionTransformer (e.g. ``vit_tiny``).
        augment: optional view maker applied before masking; it must keep the image size.
        input_shape: per-sample ``(C, H, W)``; fixes the patch grid of the decoder.

    Raises:
        ConfigError: the backbone is not a timm ViT, the decoder width and heads disagree, or
            the images do not split into whole patches (MAE reconstructs whole patches).
    """

    def __init__(self, params: MAEParams, *, backbone: Backbone,
                 augment: Augmentation | None = None,
                 input_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        from timm.layers import build_sincos2d_pos_embed
        from timm.models.vision_transformer import Block

        vit = getattr(backbone, "model", None)
        if vit is None or not all(hasattr(vit, part) for part in _VIT_PARTS) \
                or not callable(getattr(backbone, "normalize", None)):
            raise ConfigError(
                f"pretext 'mae' needs a timm Vision Transformer backbone (patch embedding + "
                f"blocks), got {type(getattr(backbone, 'model', backbone)).__name__}; set "
                "backbone.name to vit_tiny (or timm with a vit_* model_name)")
        if params.decoder_dim % params.decoder_heads:
            raise ConfigError(f"pretext.params.decoder_dim ({params.decoder_dim}) must be a "
                              f"multiple of decoder_heads ({params.decoder_heads})")
        self.backbone = backbone
        self.augment = augment
        self.mask_ratio = float(params.mask_ratio)
        self.norm_pix_loss = bool(params.norm_pix_loss)
        self.patch = tuple(int(p) for p in vit.patch_embed.patch_size)
        self.grid = tuple(int(g) for g in vit.patch_embed.grid_size)
        _check_whole_patches(input_shape, self.patch)
        channels = int(backbone.input_shape[0]) if hasattr(backbone, "input_shape") else \
            int(vit.patch_embed.proj.in_channels)
        dim = params.decoder_dim
        self.decoder_embed = nn.Linear(vit.embed_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.mask_token, std=0.02)
        pos = build_sincos2d_pos_embed(list(self.grid), dim=dim)
        self.register_buffer("decoder_pos_embed", pos.unsqueeze(0), persistent=False)
        self.decoder_blocks = nn.Sequential(*[
            Block(dim, params.decoder_heads, mlp_ratio=4.0, qkv_bias=True)
            for _ in range(params.decoder_depth)])
        self.decoder_norm = nn.LayerNorm(dim)
        self.decoder_pred = nn.Linear(dim, self.patch[0] * self.patch[1] * channels)

    def encode_visible(self, x: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """The ViT on the visible patches: ``(N, prefix + n_keep, embed_dim)``."""
        vit = self.backbone.model
        tokens = vit._pos_embed(vit.patch_embed(x))  # prefix tokens + every patch, with positions
        prefix = vit.num_prefix_tokens
        patches = tokens[:, prefix:]
        visible = patches.gather(1, ids_keep.unsqueeze(-1).expand(-1, -1, patches.shape[-1]))
        seq = torch.cat([tokens[:, :prefix], visible], dim=1)
        seq = vit.norm(vit.blocks(vit.norm_pre(seq)))
        # Average-pooling ViTs norm after pooling (fc_norm) instead: apply it per token here,
        # as MAE's encoder ends in a norm, so every encoder parameter takes part (DDP).
        fc_norm = getattr(vit, "fc_norm", None)
        return fc_norm(seq) if isinstance(vit.norm, nn.Identity) and fc_norm is not None \
            else seq

    def decode(self, encoded: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Encoded visible tokens + mask tokens -> pixel predictions ``(N, L, ph*pw*C)``."""
        prefix = self.backbone.model.num_prefix_tokens
        y = self.decoder_embed(encoded)
        n, length = ids_restore.shape
        visible = y[:, prefix:]
        hidden = self.mask_token.to(y.dtype).expand(n, length - visible.shape[1], -1)
        full = torch.cat([visible, hidden], dim=1)
        full = full.gather(1, ids_restore.unsqueeze(-1).expand(-1, -1, full.shape[-1]))
        y = torch.cat([y[:, :prefix], full + self.decoder_pos_embed.to(full.dtype)], dim=1)
        y = self.decoder_norm(self.decoder_blocks(y))
        return self.decoder_pred(y[:, prefix:])

    def loss(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = self.augment(batch, generator) if self.augment is not None else batch
        h, w = x.shape[-2:]
        if (h // self.patch[0], w // self.patch[1]) != self.grid or h % self.patch[0] \
                or w % self.patch[1]:
            raise DataError(f"mae: images of {h} x {w} do not match the decoder's patch grid "
                            f"{self.grid} of {self.patch} px patches; the augmentations must "
                            "keep the input size (random_resized_crop with size: null)")
        x = self.backbone.normalize(x)
        ids_keep, mask, ids_restore = random_masking(
            x.shape[0], self.grid[0] * self.grid[1], self.mask_ratio, generator, x.device)
        pred = self.decode(self.encode_visible(x, ids_keep), ids_restore)
        with torch.autocast(device_type=x.device.type, enabled=False):
            target = patchify(x.float(), self.patch)
            if self.norm_pix_loss:
                mean = target.mean(dim=-1, keepdim=True)
                var = target.var(dim=-1, keepdim=True)
                target = (target - mean) / (var + 1e-6).sqrt()
            per_patch = (pred.float() - target).square().mean(dim=-1)
            return (per_patch * mask).sum() / mask.sum()
