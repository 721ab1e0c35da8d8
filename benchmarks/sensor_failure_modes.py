"""Which failure modes each method catches 72 h ahead, on the built-in synthetic fleet.

    python benchmarks/sensor_failure_modes.py [CONFIG.yaml] [--fractions 0.05 0.1]
        [--methods rul_with_residuals rul_regression_scratch ...]

The share of failures caught at least one horizon ahead (at a 1% false-alarm rate,
``failures_caught_ahead_at_1pct_far``) is one number over every failure mode; this breaks it
down by the mode the generator recorded for each test failure (``test_meta["failure_mode"]``
of ``sensor_synthetic``), to show where early catches come from and where no method gets
them. For each label fraction and seed of the config (the same nested subsets as the sweep),
it fits the named heads on the pretrained encoder and the named baselines from scratch, with
the config's budget (and the config's params for methods it names), and scores the test set
with the sweep's own per-mode metrics (``<metric>.<mode>``, which every run also logs). The
encoder is the config's pretrained checkpoint: run ``sslcore pretrain CONFIG`` (or the
label-efficiency benchmark) first.
Without a config: the sensor_maintenance recipe. Prints a markdown table (mean over seeds).

Then, whether a gap in the share caught is more than luck: for the first SSL method named
against each baseline, per seed and test failure, caught by the SSL method minus caught by the
baseline (paired: both see the same labeled histories and the same failures), with the mean
and two 95% bootstrap intervals: over the failures (which failures the test fleet holds; the
seeds averaged), and over the seeds and the failures together (also which histories the seed
labeled: with a few labeled failures the larger source of spread; coarse with 3 seeds).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys

import numpy as np

CAUGHT = "failures_caught_ahead_at_1pct_far"
DEFAULT_METHODS = ["rul_with_residuals", "rul_regression_scratch", "rul_with_levels_scratch"]
BOOTSTRAP_DRAWS = 10_000


def paired_interval(diff: np.ndarray, draws: int = BOOTSTRAP_DRAWS,
                    seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of ``diff.mean()``, resampling the failures."""
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (draws, len(diff)))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def two_way_interval(diff: np.ndarray, draws: int = BOOTSTRAP_DRAWS,
                     seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of ``diff`` (seeds x failures), resampling
    the seeds and the failures independently (each draw's mean weighs rows and columns by how
    often they were drawn)."""
    rng = np.random.default_rng(seed)
    n_seeds, n_failures = diff.shape
    w_seeds = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), draws)
    w_failures = rng.multinomial(n_failures, np.full(n_failures, 1 / n_failures), draws)
    means = np.einsum("ds,sf,df->d", w_seeds, diff, w_failures) / (n_seeds * n_failures)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="sensor_maintenance")
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS,
                        help="heads (fitted on the pretrained encoder) and baselines")
    parser.add_argument("--fractions", type=float, nargs="+", default=None,
                        help="label fractions (default: the config's)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from sslcore import api
    from sslcore.data.sampling import labeled_subsets
    from sslcore.distributed import pick_device
    from sslcore.evaluate.metrics import compute
    from sslcore.experiment import checkpoint_dir
    from sslcore.sweep import fit_context
    from sslcore.train.build import build_pretraining
    from sslcore.train.checkpoint import latest_checkpoint, load_checkpoint
    from sslcore_sensor_maintenance.event_metrics import caught_ahead, first_alerts, window_phases

    cfg, registries, data = api._prepare(args.config, None, quick=False, tracking_uri=None)
    if "failure_mode" not in data.test_meta:
        sys.exit(f"{args.config}: the dataset records no failure modes (sensor_synthetic does)")
    ckpt = latest_checkpoint(checkpoint_dir(cfg, data.card().content_hash))
    if ckpt is None:
        sys.exit(f"no pretrained encoder for {args.config}: run `sslcore pretrain "
                 f"{args.config}` first")
    built = build_pretraining(cfg, registries, data)
    built.task.load_state_dict(load_checkpoint(ckpt)["model"])
    device = pick_device()
    encoder = built.task.backbone.to(device).eval()
    params = {ref.name: ref.params for ref in cfg.heads + cfg.baselines}  # the config's own
    entries = {}
    for name in args.methods:
        arm = "ssl" if name in registries.heads else "baseline"
        registry = registries.heads if arm == "ssl" else registries.baselines
        entries[name] = (arm, registry.get(name))

    y = np.asarray(data.test_y)
    ev = cfg.evaluation
    fractions = args.fractions or ev.label_fractions
    # the sweep's own metric: <CAUGHT> over all failures and <CAUGHT>.<mode> per mode
    caught: dict[tuple[str, float], list[dict[str, float]]] = {}
    per_failure: dict[tuple[str, float], list[np.ndarray]] = {}  # caught or not, by event id
    cache: dict = {}
    for seed in ev.seeds:
        for subset in labeled_subsets(data, ev, sorted(fractions), seed):
            ctx = fit_context(data, subset, cfg, device=device, make_backbone=built.make_backbone,
                              augment=built.finetune_augment, cache=cache)
            for name, (arm, entry) in entries.items():
                method = entry.build(params.get(name, {}))
                torch.manual_seed(seed)
                fit_ctx = copy.copy(ctx)
                fit_ctx.encoder = encoder if arm == "ssl" else None
                method.fit(fit_ctx)
                scores = method.predict_scores(data.test_x)
                caught.setdefault((name, subset.fraction), []).append(
                    compute([CAUGHT], y, scores, metrics=registries.metrics,
                            meta=data.test_meta))
                _, lead, horizon = first_alerts(y, scores, data.test_meta)
                per_failure.setdefault((name, subset.fraction), []).append(
                    caught_ahead(lead, horizon))
                print(f"{name} @ {subset.fraction:g}, seed {seed}", file=sys.stderr, flush=True)
    mode = np.asarray(data.test_meta["failure_mode"])
    event = np.asarray(data.test_meta["event_id"])
    runup, _, _ = window_phases(data.test_meta)  # the events the metric counts
    names = sorted(set(mode[runup]))
    print("Test failures with a run-up, by mode: " + ", ".join(
        f"{m} {len(np.unique(event[runup & (mode == m)]))}" for m in names) + "\n")
    print("| method | fraction | all | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for (name, fraction), runs in caught.items():
        cells = [np.mean([r[key] for r in runs])
                 for key in [CAUGHT] + [f"{CAUGHT}.{m}" for m in names]]
        print(f"| {entries[name][0]} / {name} | {fraction:g} | "
              + " | ".join(f"{c:.3f}" for c in cells) + " |")
    ssl = next((n for n, (arm, _) in entries.items() if arm == "ssl"), None)
    baselines = [n for n, (arm, _) in entries.items() if arm == "baseline"]
    if ssl is None or not baselines:
        return
    print(f"\nShare caught, {ssl} minus each baseline, per seed and failure; 95% bootstrap "
          f"intervals ({BOOTSTRAP_DRAWS} draws) over the failures and over seeds and failures:\n")
    print("| baseline | fraction | difference | over failures | over seeds and failures | "
          "seeds ahead / behind | failures |")
    print("|---|---|---|---|---|---|---|")
    for name in baselines:
        for fraction in sorted(fractions):
            diff = (np.asarray(per_failure[(ssl, fraction)], float)
                    - np.asarray(per_failure[(name, fraction)], float))  # seeds x failures
            low, high = paired_interval(diff.mean(axis=0))
            low2, high2 = two_way_interval(diff)
            by_seed = diff.mean(axis=1)
            print(f"| {name} | {fraction:g} | {diff.mean():+.3f} | [{low:+.3f}, {high:+.3f}] | "
                  f"[{low2:+.3f}, {high2:+.3f}] | {(by_seed > 0).sum()} / {(by_seed < 0).sum()}"
                  f" of {len(by_seed)} | {diff.shape[1]} |")


if __name__ == "__main__":
    main()
