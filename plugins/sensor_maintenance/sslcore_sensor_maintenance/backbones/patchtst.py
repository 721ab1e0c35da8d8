"""PatchTST from Hugging Face transformers, as a sequence backbone that loads pretrained weights.

Nie, Nguyen, Sinthong, Kalagnanam, "A Time Series is Worth 64 Words: Long-term Forecasting
with Transformers", ICLR 2023, as implemented by transformers' ``PatchTSTModel``: each sensor
is cut into non-overlapping patches of ``patch_len`` steps and read by a shared Transformer
(channel independence), so a model pretrained elsewhere, on other sensors and another number
of channels, loads here (``backbone.init``: a ``save_pretrained`` directory, ``hf:<org>/<model>``,
an sslcore export; its position table is interpolated to this window's number of patches).
Unlike ``patch_transformer`` (one token per patch of all sensors), the sensors meet only in the
pooling head, which reads every sensor's token of a patch.

The token interface of :class:`~sslcore_sensor_maintenance.backbones.base.SequenceBackbone`:
a token is one patch, its features the concatenated per-sensor outputs
(``token_dim = channels x d_model``); ``reconstruct`` is PatchTST's pretraining head (a linear
read-out per sensor and patch), so the ``masked_patches`` pretext trains it as PatchTST's
masked pretraining does. Use ``mask_unit: patch`` or ``channel_patch`` with
``sensor_mask_prob: 0``: a sensor hidden for the whole window cannot be predicted from the
others by a channel-independent encoder.

Inputs are standardized by the backbone's per-channel normalizer (fitted on the unlabeled
pool); ``scaling: std`` adds PatchTST's own per-window scaling. A window shorter than the one the
backbone was built for (TS2Vec's crops) has its start replicate-padded, and only its own
patches' tokens are returned.

Example::

    enc = PatchTSTBackbone(PatchTSTParams(), input_shape=(5, 64), init="/models/patchtst")
    enc.fit_normalizer(unlabeled)
    z = enc(torch.as_tensor(x))              # (N, embed_dim)
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sslcore.sdk import (
    ConfigError,
    DataError,
    InitMismatchError,
    config_overrides,
    load_init,
    resolve_init,
)
from sslcore_sensor_maintenance.backbones.base import (
    MeanLastPool,
    SequenceBackbone,
    check_input_shape,
    pad_start,
    plan_length,
)

# params field -> (PatchTSTConfig field, default without an init)
_ARCH = {"patch_len": ("patch_length", 8), "d_model": ("d_model", 64),
         "num_layers": ("num_hidden_layers", 2), "heads": ("num_attention_heads", 4),
         "ffn_dim": ("ffn_dim", 128)}


class PatchTSTParams(BaseModel):
    """Params of :class:`PatchTSTBackbone`. Architecture fields left unset (None) come from
    ``backbone.init``'s config, else from the defaults; set with an init, they must agree."""

    model_config = ConfigDict(extra="forbid")

    patch_len: int | None = Field(None, ge=1, description="time steps per patch (default 8)")
    d_model: int | None = Field(None, ge=8, description="token width (default 64)")
    num_layers: int | None = Field(None, ge=1, description="encoder layers (default 2)")
    heads: int | None = Field(None, ge=1, description="attention heads (default 4)")
    ffn_dim: int | None = Field(None, ge=8, description="feed-forward width (default 128)")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    embed_dim: int = Field(128, ge=1, description="size of the embedding (output)")
    scaling: Literal["none", "std", "mean"] = Field(
        "none", description="PatchTST's own per-window scaling on top of the per-channel "
        "normalizer (std: RevIN-like instance normalization)")
    clip: float = Field(10.0, gt=0)
    config: dict[str, bool | int | float | str] = Field(
        default_factory=dict, description="other PatchTSTConfig fields (e.g. norm_type: "
        "layernorm, pre_norm), validated by building the model")


def _config(params: PatchTSTParams, n_channels: int, length: int, source: Any) -> Any:
    from transformers import PatchTSTConfig

    base = source.transformers_config() if source is not None else None
    if base is not None and base.model_type != "patchtst":
        raise InitMismatchError(f"backbone.init: {source.text} is a {base.model_type!r} "
                                "model; the patchtst backbone takes PatchTST models")
    arch = {}
    for field, (name, default) in _ARCH.items():
        mine = getattr(params, field)
        theirs = getattr(base, name, None) if base is not None else None
        if mine is not None and theirs is not None and mine != theirs:
            raise ConfigError(f"backbone.params.{field}: {mine} contradicts {name}={theirs} of "
                              f"backbone.init {source.text}; remove it")
        arch[name] = mine if mine is not None else theirs if theirs is not None else default
    config = base if base is not None else PatchTSTConfig()
    p = arch["patch_length"]
    n_patches = math.ceil(length / p)
    updates = arch | {"num_input_channels": n_channels, "context_length": n_patches * p,
                      "patch_stride": p, "do_mask_input": False, "dropout": params.dropout,
                      "scaling": None if params.scaling == "none" else params.scaling}
    for key, value in {**params.config, **updates}.items():
        if key not in updates and not hasattr(config, key):
            raise ConfigError(f"backbone.params.config: {key!r} is not a PatchTSTConfig field")
        try:
            setattr(config, key, value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"backbone.params.config: {key}={value!r} is refused by "
                              f"PatchTSTConfig ({exc})") from None
    if config.d_model % config.num_attention_heads:
        raise DataError(f"patchtst: d_model {config.d_model} must be divisible by heads "
                        f"{config.num_attention_heads}")
    return config


class PatchTSTBackbone(SequenceBackbone):
    """Per-channel normalizer -> transformers ``PatchTSTModel`` -> per-patch tokens of all
    sensors -> [mean, last] pooling.

    Args:
        params: a :class:`PatchTSTParams`.
        input_shape: ``(channels, length)``, ``length`` at least 2 patches.
        init: ``backbone.init`` (see ``sslcore.sdk.load_init``): a PatchTST model.

    Raises:
        DataError: bad input shape, a series shorter than 2 patches.
        ConfigError: params that contradict the init's architecture, bad config keys.
        InitError: ``init`` cannot be found or read, or is not a PatchTST model
            (InitMismatchError).
    """

    native_library = "transformers"  # sslcore.init: weights in transformers' names

    @classmethod
    def describe_input(cls, params: PatchTSTParams, input_shape: tuple[int, ...]) -> str:
        """How series of this shape are read (padding, patches); DataError if too short."""
        _, length = check_input_shape("patchtst", input_shape)
        patch = params.patch_len or _ARCH["patch_len"][1]
        return plan_length("patchtst", length, patch, "backbone.params.patch_len",
                           what="patches")[1]

    def __init__(self, params: PatchTSTParams, *, input_shape: tuple[int, ...],
                 init: Any = None) -> None:
        from transformers import PatchTSTModel

        n_channels, length = check_input_shape("patchtst", input_shape)
        source = resolve_init(init, (n_channels, length)) if init is not None else None
        config = _config(params, n_channels, length, source)
        p, d = int(config.patch_length), int(config.d_model)
        _, rule = plan_length("patchtst", length, p, "backbone.params.patch_len",
                              what="patches")
        super().__init__(n_channels, length, token_len=p, token_dim=n_channels * d,
                         clip=params.clip, length_rule=rule)
        self.d_model, self.context = d, int(config.context_length)
        self.cls_token = bool(getattr(config, "use_cls_token", False))
        self.reconstruction = nn.Linear(d, p)  # per sensor and patch, PatchTST's pretrain head
        self.model = PatchTSTModel(config)
        self.embed_dim = params.embed_dim
        self.head = MeanLastPool(self.token_dim, params.embed_dim)
        self._params = params
        if init is not None:
            load_init(self, init, source=source)

    def export_params(self) -> dict[str, Any]:
        """Params that rebuild this architecture without ``init`` (an export's, a spec's)."""
        config = self.model.config
        out = self._params.model_dump(mode="json")
        out |= {field: getattr(config, name) for field, (name, _) in _ARCH.items()}
        skip = {name for name, _ in _ARCH.values()} | {
            "num_input_channels", "context_length", "patch_stride", "do_mask_input", "dropout",
            "scaling"}
        out["config"] = config_overrides(config, skip) | dict(self._params.config)
        return out

    def tokens(self, z: torch.Tensor) -> torch.Tensor:
        z = pad_start(z, self.token_len)
        n, c, t = z.shape
        if t > self.context:
            raise DataError(f"patchtst: input length {t} is longer than the {self.context} "
                            "steps it was built for (input_shape)")
        if t < self.context:  # a shorter crop: read at the end of the window it was built for
            z = torch.cat([z[..., :1].expand(n, c, self.context - t), z], dim=-1)
        h = self.model(past_values=z.transpose(1, 2)).last_hidden_state  # (N, C, P, d)
        if self.cls_token:
            h = h[:, :, 1:]
        h = h[:, :, h.shape[2] - t // self.token_len:]
        return h.permute(0, 2, 1, 3).reshape(n, t // self.token_len, c * self.d_model)

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h)

    def reconstruct(self, h: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Tokens (N, L, C x d_model) -> standardized values (N, C, length): each sensor's
        patch from its own token (PatchTST's pretraining head)."""
        n, n_tok, _ = h.shape
        per_sensor = h.float().reshape(n, n_tok, self.n_channels, self.d_model)
        out = self.reconstruction(per_sensor).permute(0, 2, 1, 3)  # (N, C, L, patch)
        out = out.reshape(n, self.n_channels, n_tok * self.token_len)
        return out if length is None else out[..., out.shape[-1] - length:]
