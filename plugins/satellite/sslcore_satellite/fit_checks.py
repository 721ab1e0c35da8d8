"""Do the tiles fit the satellite recipe? Its ViT's patches (``patch_size: auto``), DINO's
crops and the step budgets were tuned on 64 px tiles (EuroSAT's size); tiles far from that
size still run, and the warning gives the sizes and what changes.

Example::

    VerticalRecipe(..., data_checks=satellite_data_checks)
"""

from __future__ import annotations

from typing import Any

RECIPE_SIDE = 64  # px: the built-in (and EuroSAT) tiles the recipe was tuned on
FAR = 4.0  # a side more than this factor from RECIPE_SIDE is "far"


def satellite_data_checks(cfg: Any, data: Any) -> list[str]:
    """A warning when the tiles' sides are more than :data:`FAR` times smaller or larger than
    the recipe's :data:`RECIPE_SIDE`; none otherwise (or for inputs that are not images)."""
    if len(data.input_shape) != 3:
        return []
    height, width = data.input_shape[1:]
    size = f"the tiles are {height}x{width} px, the recipe is tuned for {RECIPE_SIDE}x{RECIPE_SIDE}"
    if min(height, width) * FAR <= RECIPE_SIDE:
        return [f"{size} px ({FAR:g}x or more smaller): the ViT cuts them into patches of a few "
                "pixels to keep 16 tokens, each token sees little texture, and DINO's local "
                "crops shrink to a handful of pixels, so the SSL arm may learn little"]
    if max(height, width) >= RECIPE_SIDE * FAR:
        tokens = (height // 16) * (width // 16)
        return [f"{size} px ({FAR:g}x or more larger): with 16 px patches the ViT reads about "
                f"{tokens} tokens per tile instead of 16, attention costs grow with their "
                "square, and the batch sizes and step budgets were sized at 64 px; lower "
                "pretrain.batch_size or cut the tiles to 64-128 px if a run is too slow or "
                "runs out of memory"]
    return []
