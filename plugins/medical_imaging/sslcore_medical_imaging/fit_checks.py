"""Do the images fit the medical_imaging recipe? Its views (crops, 7-degree rotations, blur
sigmas), batch sizes and step budgets were tuned on 64 px radiographs, and the ResNet-18's
total stride is 32 px; images far from that size still run, and the warning gives the sizes
and what changes.

Example::

    VerticalRecipe(..., data_checks=medical_data_checks)
"""

from __future__ import annotations

from typing import Any

RECIPE_SIDE = 64  # px: the built-in radiographs the recipe was tuned on
FAR = 4.0  # a side more than this factor from RECIPE_SIDE is "far"
RESNET_STRIDE = 32  # px: smaller images are upsampled to it inside the backbone


def medical_data_checks(cfg: Any, data: Any) -> list[str]:
    """A warning when the images' sides are more than :data:`FAR` times smaller or larger
    than the recipe's :data:`RECIPE_SIDE`; none otherwise (or for inputs that are not images:
    the backbone refuses those with its own error)."""
    if len(data.input_shape) != 3:
        return []
    height, width = data.input_shape[1:]
    side = f"{RECIPE_SIDE}x{RECIPE_SIDE}"
    size = f"the images are {height}x{width} px, the recipe is tuned for {side}"
    if min(height, width) * FAR <= RECIPE_SIDE:
        return [f"{size} px ({FAR:g}x or more smaller): the ResNet-18 sees images under "
                f"{RESNET_STRIDE} px upsampled to {RESNET_STRIDE} px, so a step costs as "
                "much as at that size, and the views (random crops, small rotations and "
                "shifts, blur) act on a few pixels each, so SimCLR may learn little from them"]
    if max(height, width) >= RECIPE_SIDE * FAR:
        cost = height * width / RECIPE_SIDE ** 2
        return [f"{size} px ({FAR:g}x or more larger): the batch sizes (pretrain.batch_size, "
                "finetune.batch_size) and step budgets were sized at 64 px, so each step "
                f"costs about {cost:.0f}x the compute and memory; lower the batch sizes or "
                "resize the images (e.g. to 128-224 px) if a run is too slow or runs out of "
                "memory"]
    return []
