"""Labeled-only baseline: gradient boosting on per-band statistics and spectral indices.

The classical remote-sensing classifier: summarize each tile by the distribution of every
band (mean, std, 10th/50th/90th percentiles), by spectral indices that encode the physics of
land cover, and by a little texture (mean absolute gradient of the red and NIR bands: edge
density), then fit gradient-boosted trees. Indices (Sentinel-2 band names):

- NDVI  = (B08 - B04) / (B08 + B04): vegetation (Rouse et al., 1974);
- NDWI  = (B03 - B08) / (B03 + B08): open water (McFeeters, 1996);
- MNDWI = (B03 - B11) / (B03 + B11): water vs built-up (Xu, 2006);
- NDBI  = (B11 - B08) / (B11 + B08): built-up (Zha et al., 2003).

Any number of bands works; indices are computed only where the bands they need exist, which
``band_order`` says (``auto``, the default, decides from the band count):

- 13 bands (``sentinel2``, the EuroSAT MS layout): every statistic above, the four indices and
  the edge density of red and NIR;
- 3 bands (``rgb``: red, green, blue, as EuroSAT RGB and most photographs): per-band
  statistics, the excess green index (2G - R - B) / (R + G + B) and the first band's edge
  density; set ``band_order: none`` if your three channels are not RGB;
- any other count (``none``: 1-channel images, 4-band products): per-band statistics and the
  first band's edge density only, no index.

The boosting settings and few-label rules are the core ``hist_gbm`` baseline's
(:func:`sslcore.builtins.baselines.hist_gbm.fit_hist_gbm`).

Example::

    base = BandStatsGBM(BandStatsGBMParams())
    base.fit(ctx)
    proba = base.predict_scores(x_test)          # x: (N, 13, H, W) reflectance
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from sslcore.sdk import DataError, fit_hist_gbm, FitContext, HistGBMParams, proba_to_scores
from sslcore_satellite.bands import BAND, N_BANDS

_PERCENTILES = (10, 50, 90)
_INDICES = {"ndvi": ("B08", "B04"), "ndwi": ("B03", "B08"), "mndwi": ("B03", "B11"),
            "ndbi": ("B11", "B08")}


class BandStatsGBMParams(HistGBMParams):
    band_order: Literal["auto", "sentinel2", "rgb", "none"] = Field(
        "auto", description="which band is which, for indices: auto = sentinel2 for 13 bands, "
        "rgb for 3, none otherwise")


def resolve_band_order(band_order: str, n_bands: int) -> str:
    """``auto`` -> ``sentinel2`` for 13 bands, ``rgb`` for 3, else ``none``."""
    if band_order != "auto":
        return band_order
    return {N_BANDS: "sentinel2", 3: "rgb"}.get(n_bands, "none")


def _distribution(v: np.ndarray) -> list[np.ndarray]:
    """Per-row mean, std and percentiles of ``v`` ``(N, k, H, W)`` -> arrays ``(N, k)``.

    Percentiles are read on every other pixel of every other row (a quarter of the pixels:
    the estimate moves by well under a percent, the sort is four times cheaper)."""
    flat = v.reshape(*v.shape[:2], -1)
    sub = v[..., ::2, ::2].reshape(*v.shape[:2], -1)
    return [flat.mean(axis=-1), flat.std(axis=-1), *np.percentile(sub, _PERCENTILES, axis=-1)]


def band_features(x: np.ndarray, band_order: str = "sentinel2") -> np.ndarray:
    """Feature rows ``(N, F)`` of image tiles ``(N, C, H, W)``, any C and size (8 px and up).

    Per-band statistics always; Sentinel-2 indices only for ``sentinel2`` (13 bands), the
    excess green index only for ``rgb`` (3 bands); see the module docstring.

    Raises:
        DataError: ``x`` is not 4-D, or ``band_order`` does not fit its band count.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise DataError(f"band_stats_gbm expects tiles of shape (N, bands, H, W), got {x.shape}")
    c = x.shape[1]
    need = {"sentinel2": N_BANDS, "rgb": 3}.get(band_order)
    if need is not None and c != need:
        raise DataError(f"band_stats_gbm: band_order '{band_order}' needs {need} bands but the "
                        f"tiles have {c}; set band_order to match the data (or 'none')")
    feats = _distribution(x)
    for b in {"sentinel2": (BAND["B04"], BAND["B08"])}.get(band_order, (0,)):
        img = x[:, b]  # edge density: mean absolute gradient along rows and columns
        feats.append(np.stack([np.abs(np.diff(img, axis=1)).mean(axis=(1, 2)),
                               np.abs(np.diff(img, axis=2)).mean(axis=(1, 2))], axis=1))
    if band_order == "sentinel2":
        idx = np.stack([(x[:, BAND[a]] - x[:, BAND[b]]) / (x[:, BAND[a]] + x[:, BAND[b]] + 1e-6)
                        for a, b in _INDICES.values()], axis=1)
        feats += _distribution(idx)
    elif band_order == "rgb":  # excess green index (Woebbecke et al., 1995): all RGB offers
        r, g, b = x[:, 0], x[:, 1], x[:, 2]
        feats += _distribution(((2 * g - r - b) / (r + g + b + 1e-6))[:, None])
    return np.concatenate(feats, axis=1).astype(np.float32)


class BandStatsGBM:
    """Labeled-only gradient boosting on per-band statistics, spectral indices (13 Sentinel-2
    bands only; per-band statistics alone for other band counts) and edge density.

    Args:
        params: a :class:`BandStatsGBMParams`.
    """

    uses_labels = True

    def __init__(self, params: BandStatsGBMParams | None = None) -> None:
        self.params = params or BandStatsGBMParams()
        self.model: Any = None
        self.num_classes = 2
        self.order = "none"

    def fit(self, ctx: FitContext) -> None:
        self.num_classes = ctx.num_classes
        self.order = resolve_band_order(self.params.band_order,
                                        np.asarray(ctx.x_train).shape[1])
        # min_samples_leaf suits hundreds of rows; with a handful per class it forbids every
        # split (10 classes x 2 rows = 20 rows: no tree at all). Scale it down with the data.
        leaf = min(self.params.min_samples_leaf,
                   max(1, len(ctx.y_train) // (2 * max(ctx.num_classes, 2))))
        params = self.params.model_copy(update={"min_samples_leaf": leaf})
        self.model = fit_hist_gbm(band_features(ctx.x_train, self.order), ctx.y_train,
                                  band_features(ctx.x_val, self.order) if len(ctx.x_val)
                                  else np.empty((0, 1), np.float32), ctx.y_val,
                                  params, seed=ctx.seed)

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("band_stats_gbm: call fit() before predict_scores()")
        proba = self.model.predict_proba(band_features(x, self.order))
        return proba_to_scores(proba, self.model.classes_, self.num_classes)
