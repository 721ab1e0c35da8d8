"""Does the pretrained embedding add anything to the band statistics? Weighting the two blocks.

    python benchmarks/satellite_feature_blocks.py CONFIG.yaml [--scales 1 0.3 0.1]

``band_stats_embedding_logreg`` gives one L2 logistic regression the standardized band
statistics next to the standardized frozen embedding. This diagnostic asks whether any weight
of the embedding block helps: for each label fraction and seed of the config (the same nested
subsets as the sweep), it fits ``band_stats_logreg``'s class-balanced logistic regression
(:func:`~sslcore_satellite.band_stats_logreg.fit_logreg_on_val`: ``C`` chosen on the
subset's validation split) on

- ``stats``: the band statistics alone (the ``band_stats_logreg`` baseline);
- ``embedding``: the embedding alone (a linear probe);
- ``stats + a x embedding`` for each scale ``a`` in ``--scales`` (``a = 1``: the head as it
  is; a smaller ``a`` is a stronger penalty on the embedding block);
- ``product``: the two single-block models' class probabilities multiplied.

Accuracy is measured on the labeled-pool rows outside the subset: the test set is not read.
The encoder is the config's pretrained checkpoint (run ``sslcore pretrain CONFIG`` first); with
none it is the random initialisation. Prints a markdown table (mean ± std over seeds).
"""

from __future__ import annotations

import argparse
import os

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.3, 0.1])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sklearn.preprocessing import StandardScaler

    from sslcore import api
    from sslcore.data.sampling import nested_subsets
    from sslcore.distributed import pick_device
    from sslcore.experiment import checkpoint_dir
    from sslcore.train.build import build_pretraining
    from sslcore.train.checkpoint import latest_checkpoint, load_checkpoint
    from sslcore.train.supervised import embed
    from sslcore_satellite.band_stats import band_features, resolve_band_order
    from sslcore_satellite.band_stats_logreg import BandStatsLogRegParams, fit_logreg_on_val

    cfg, registries, data = api._prepare(args.config, None, quick=False, tracking_uri=None)
    built = build_pretraining(cfg, registries, data)
    ckpt = latest_checkpoint(checkpoint_dir(cfg, data.card().content_hash))
    if ckpt is not None:
        built.task.load_state_dict(load_checkpoint(ckpt)["model"])
    print(f"encoder: {ckpt or 'random initialisation (no checkpoint)'}")
    x, y = data.labeled_x, np.asarray(data.labeled_y)
    device = pick_device()
    emb = embed(built.task.backbone.to(device), x, device, 256)
    stats = band_features(x, resolve_band_order("auto", x.shape[1]))
    ev, lr_params = cfg.evaluation, BandStatsLogRegParams()
    results: dict[tuple[str, float], list[float]] = {}
    for seed in ev.seeds:
        for sub in nested_subsets(y, ev.label_fractions, seed,
                                  min_per_class=ev.min_labeled_per_class,
                                  val_fraction=ev.val_fraction):
            held = np.setdiff1d(np.arange(len(y)), np.concatenate([sub.train, sub.val]))
            s_sc, e_sc = StandardScaler().fit(stats[sub.train]), StandardScaler().fit(emb[sub.train])

            def blocks(idx, a):
                s = s_sc.transform(stats[idx])
                return s if a == 0 else np.concatenate([s, a * e_sc.transform(emb[idx])], 1)

            def score(name, fn):
                model = fit_logreg_on_val(fn(sub.train), y[sub.train], fn(sub.val),
                                          y[sub.val], lr_params, data.num_classes)
                results.setdefault((name, sub.fraction), []).append(model.score(fn(held), y[held]))
                return model.predict_log_proba(fn(held))

            log_s = score("stats", lambda i: blocks(i, 0))
            log_e = score("embedding", lambda i: e_sc.transform(emb[i]))
            for a in args.scales:
                score(f"stats + {a:g} x embedding", lambda i, a=a: blocks(i, a))
            results.setdefault(("product", sub.fraction), []).append(
                float(((log_s + log_e).argmax(1) == y[held]).mean()))
    names = list(dict.fromkeys(k[0] for k in results))
    print("\n| features | " + " | ".join(f"{f:g}" for f in ev.label_fractions) + " |")
    print("|---|" + "---|" * len(ev.label_fractions))
    for name in names:
        cells = [f"{np.mean(results[name, f]):.3f} ± {np.std(results[name, f]):.3f}"
                 for f in ev.label_fractions]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
