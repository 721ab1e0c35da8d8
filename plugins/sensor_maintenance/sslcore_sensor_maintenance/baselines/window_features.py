"""Hand-crafted statistics of each sensor over a window: the features maintenance teams build.

Per sensor (channel): mean, standard deviation, minimum, maximum, last value, least-squares
slope per step, the 10th/50th/90th percentiles, the change between the last and the first
quarter of the window, and the mean absolute step-to-step change (roughness). 11 features per
sensor; computed in chunks, float32. Used by the gradient-boosting and pyod baselines and by
the SSL arm's ``gbm_on_stats_and_embeddings`` head.

Example::

    f = window_stats(x)            # (N, C, T) -> (N, 11 * C)
"""

from __future__ import annotations

import numpy as np

from sslcore.sdk import DataError

STATS = ["mean", "std", "min", "max", "last", "slope", "q10", "q50", "q90",
         "last_minus_first_quarter", "roughness"]
_CHUNK = 4096


def window_stats(x: np.ndarray) -> np.ndarray:
    """(N, C, T) windows -> (N, C * len(STATS)) features, sensor-major (all stats of sensor 0
    first).

    Raises:
        DataError: ``x`` is not three-dimensional or has fewer than 4 time steps.
    """
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] < 4:
        raise DataError(f"window statistics need windows (N, channels, length >= 4), got "
                        f"{x.shape}")
    n, c, t = x.shape
    out = np.empty((n, c, len(STATS)), dtype=np.float32)
    steps = np.arange(t, dtype=np.float64) - (t - 1) / 2
    quarter = max(1, t // 4)
    for i in range(0, n, _CHUNK):
        w = x[i:i + _CHUNK].astype(np.float64)
        q10, q50, q90 = np.quantile(w, [0.1, 0.5, 0.9], axis=2)
        out[i:i + _CHUNK] = np.stack([
            w.mean(axis=2), w.std(axis=2), w.min(axis=2), w.max(axis=2), w[:, :, -1],
            (w * steps).sum(axis=2) / (steps ** 2).sum(), q10, q50, q90,
            w[:, :, -quarter:].mean(axis=2) - w[:, :, :quarter].mean(axis=2),
            np.abs(np.diff(w, axis=2)).mean(axis=2)], axis=2)
    return out.reshape(n, c * len(STATS))
