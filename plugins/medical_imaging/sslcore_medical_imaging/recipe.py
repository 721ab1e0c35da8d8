"""The medical_imaging vertical's default experiment: pneumonia on chest radiographs.

SimCLR pretrains a ResNet-18 (1 input channel, never hub weights) on the unlabeled
radiographs; the SSL arm then trains a linear probe and a fine-tuned network on the few labeled
images, the baseline arm the same ResNet-18 from scratch, with the same augmentations, labeled
rows, budget and early stopping. Metrics: AUROC (primary), accuracy, and sensitivity and
specificity at the threshold chosen on each labeled subset's validation split.

Augmentations suit radiographs: a random resized crop keeping most of the chest with small
rotations and shifts (positioning), noise (quantum noise) and blur (detector sharpness). No
colour and no intensity operations: in a radiograph, density is the finding (pneumonia is
fluid where air should be), and SimCLR learns to ignore whatever its views vary. With
brightness / contrast / gamma jitter in the views, the quick recipe's linear probe scored test
AUROC 0.51 at 10% labels; without it, 0.68. Horizontal flips
are off by default because anatomy is lateralized (heart on the patient's left, right
hemidiaphragm higher): a flipped chest is not a plausible patient. Turn them on with
``{name: random_flip, params: {horizontal: true, p: 0.5}}`` if your task does not care.
"""

from __future__ import annotations

from typing import Any

from sslcore.sdk import VerticalRecipe

METRICS = ["auroc", "accuracy", "sensitivity", "specificity"]

AUGMENTATIONS: list[dict[str, Any]] = [
    {"name": "random_resized_crop",
     "params": {"scale": [0.35, 1.0], "ratio": [0.8, 1.25], "degrees": 7, "translate": 0.05}},
    {"name": "image_noise", "params": {"std": 0.03, "p": 0.5}},
    {"name": "gaussian_blur", "params": {"sigma": [0.1, 1.2], "p": 0.4}},
]

# A second hospital (sslcore_medical_imaging.sites): an older, lower-dose installation (more
# quantum noise), blurrier detectors on a 48 px matrix resized to 64, a darker LUT with less
# contrast, collimation borders on half the images, more of the noisy scanner profiles, and a
# lower pneumonia prevalence. Every model is also scored on its test images; its unlabeled
# images serve adaptation only when pretrain.target_unlabeled names it.
SITE_B: dict[str, Any] = {
    "n_unlabeled": 1000, "n_labeled": 64, "n_test": 1000, "prevalence": 0.15,
    "site": {"dose": 0.6, "extra_blur": 0.3, "gamma": 1.2, "contrast": 0.9, "brightness": 0.03,
             "native_size": 48, "collimation": 0.5, "collimation_width": [0.04, 0.14],
             "scanner_shares": [0.2, 0.3, 0.1, 0.4]},
}

DEFAULT_CONFIG: dict[str, Any] = {
    "dataset": {"name": "medical_synthetic",
                "params": {"n_unlabeled": 8000, "n_labeled": 2000, "n_test": 2000, "size": 64},
                "shifted": {"site_b": SITE_B}},
    # Any image size: below 32 px (the ResNet's total stride) images are upsampled to 32 px
    # inside the backbone (min_input_side: auto), 8 px digits included; crops, shifts and blur
    # sigmas (quoted at 64 px) follow the image's side.
    "backbone": {"name": "resnet18"},
    "pretext": {"name": "simclr", "params": {"temperature": 0.2}},
    "augmentations": AUGMENTATIONS,
    "heads": [{"name": "linear_probe"}, {"name": "finetune"}],
    "baselines": [{"name": "scratch"}, {"name": "logreg_raw"}],
    # collapse_std_threshold: a ResNet's pooled ReLU features fill a narrow cone, so healthy
    # SimCLR runs here sit near embedding_std 0.01 (effective rank ~14); the rank check
    # still catches a real collapse.
    # At least 1000 SimCLR steps: 25 epochs of ~1,200 images are 100 steps and learn nothing,
    # a few hundred epochs converged; the built-in 8000 images give 775, so the floor binds.
    # At most 4000 (about 25 epochs of 40k images).
    "pretrain": {"epochs": 25, "batch_size": 256, "lr": 2e-3, "weight_decay": 1e-4,
                 "warmup_steps": 50, "checkpoint_every": 200, "collapse_std_threshold": 0.003,
                 "min_steps": 1000, "max_steps": 4000},
    # At least 300 steps for a few dozen labels (30 epochs of 10 steps, as before step
    # budgets); at most 3000, above the 750 all 1,600 built-in training images give.
    "finetune": {"epochs": 30, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4,
                 "patience": 6, "min_steps": 300, "max_steps": 3000},
    "evaluation": {"label_fractions": [0.01, 0.05, 0.1, 1.0], "seeds": [0, 1, 2],
                   "metrics": METRICS, "primary_metric": "auroc"},
}

# --quick: fewer images, ~140 pretraining steps (about 2.5 minutes on 2 CPU cores), one seed,
# the few-label fractions only (fine-tuning both arms on all 1000 labeled images pushed the
# demo past 8 minutes from a fresh clone) and a shorter fine-tuning budget, applied to both
# arms alike; the demo shows the pipeline, the full recipe the label-efficiency result.
QUICK_OVERRIDES: dict[str, Any] = {
    "dataset": {"name": "medical_synthetic",
                "params": {"n_unlabeled": 3000, "n_labeled": 1000, "n_test": 1000}},
    "budget": "quick",  # 0.25x floors and caps
    # Floor 500 x 0.25 = 125 stays under the 138 steps the 6 epochs give: the demo's time.
    "pretrain": {"epochs": 6, "batch_size": 128, "warmup_steps": 20, "checkpoint_every": 100,
                 "min_steps": 500},
    "finetune": {"epochs": 12, "patience": 4},
    "evaluation": {"label_fractions": [0.01, 0.05, 0.1], "seeds": [0]},
}


def medical_imaging_recipe(params: Any) -> VerticalRecipe:
    from sslcore_medical_imaging.saliency import write_artifacts

    from sslcore_medical_imaging.fit_checks import medical_data_checks

    return VerticalRecipe(
        data_checks=medical_data_checks,  # warnings where the data do not fit
        description=__doc__.strip().splitlines()[0],
        default_config=DEFAULT_CONFIG,
        quick_overrides=QUICK_OVERRIDES,
        modality="image",
        artifacts=write_artifacts,
    )
