"""Continued pretraining from ``backbone.init``: what the knobs do to a pretrained encoder.

    python benchmarks/continued_pretraining_knobs.py [--seeds 0 1 2] [--steps 300] [--out DIR]

A tiny synthetic case. A make_classification table (18k rows x 16 features, 10% positive)
is cut into a source (12k rows) and a target (6k rows, each feature rescaled by 0.7-1.4 and
given noise of sd 0.3). Two MLP encoders are trained on the source and saved as state dicts
(what ``backbone.init`` loads): a good init (supervised, 1500 steps) and a weak init (SCARF,
1000 steps). SCARF then continues on 800 unlabeled target rows (``--steps`` steps, batch 128)
from each init, for each setting of ``pretrain.init_lr_scale``, ``init_warmup_fraction`` and
``head_only_steps``, and from a random encoder. The score is the run's online linear probe
(``probe_auprc``: 2000 labeled target rows, half fit and half scored, every 10 steps; never
the test rows), read from MLflow, plus the same probe on the encoder before the first step.

Prints one table per init (probe AUPRC at the start, its minimum and its final value, mean
of seeds, and the final value of each seed) and writes
benchmarks/results/continued_pretraining_knobs.md with the command, machine, date and wall
time. MLflow store and runs go to a temporary directory unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROBE = {"probe_rows": 2000, "probe_every": 10}
KNOBS_OFF = {"init_lr_scale": 1.0, "init_warmup_fraction": 0.0, "head_only_steps": 0}
INITS = {"supervised": "Good init: an MLP encoder trained supervised on the source (1500 steps)",
         "scarf": "Weak init: an MLP encoder pretrained with SCARF on the source (1000 steps)"}


def init_variants(steps: int) -> list[tuple[str, dict[str, Any]]]:
    """(row label, pretrain knobs) of every run that starts from the init."""
    return [
        ("init, knobs off (lr x1, no warm-up, no heads-only)", KNOBS_OFF),
        ("init, lr x0.1 only", KNOBS_OFF | {"init_lr_scale": 0.1}),
        ("init, heads-only 5% only (lr x1)", {"init_lr_scale": 1.0, "init_warmup_fraction": 0.0}),
        ("init, lr x0.3 + 5% warm-up + 5% heads-only", {"init_lr_scale": 0.3}),
        ("init, defaults (lr x0.1, 5% warm-up, 5% heads-only)", {}),
        ("init, defaults + heads-only 20%", {"head_only_steps": steps // 5}),
    ]


def tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(source x, source y, target x, target y): the target is the source's shifted cousin."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=18000, n_features=16, n_informative=8, n_redundant=4,
                               weights=[0.9], flip_y=0.01, class_sep=0.8, random_state=0)
    x, y = x.astype(np.float32), y.astype(np.int64)
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.7, 1.4, 16).astype(np.float32)
    target = x[12000:] * scale + 0.3 * rng.standard_normal((6000, 16)).astype(np.float32)
    return x[:12000], y[:12000], target, y[12000:]


def source_encoder(kind: str, x: np.ndarray, y: np.ndarray, registries: Any, out: Path) -> str:
    """Train the ``kind`` encoder on the source; save its state dict; return the path."""
    import torch

    from sslcore.config import FinetuneConfig
    from sslcore.data.ssl_data import SSLData
    from sslcore.distributed import pick_device
    from sslcore.experiment import resolve_config
    from sslcore.train.build import build_pretraining
    from sslcore.train.pretrain import pretrain_encoder
    from sslcore.train.supervised import train_classifier

    cfg = resolve_config({"vertical": "tabular",
                          "pretrain": {"steps": 1000, "probe_every": 0}}, registries)
    # Nothing is scored on the source: labeled/test are the supervised train/val rows.
    data = SSLData(unlabeled=x, labeled_x=x[:10000], labeled_y=y[:10000],
                   test_x=x[10000:], test_y=y[10000:]).validate()
    built = build_pretraining(cfg, registries, data)
    if kind == "supervised":
        train_classifier(built.task.backbone, 2, data.labeled_x, data.labeled_y, data.test_x,
                         data.test_y, FinetuneConfig(steps=1500, batch_size=256), seed=0,
                         device=pick_device())
    else:
        pretrain_encoder(built.task, data.unlabeled, cfg.pretrain,
                         checkpoint_dir=out / f"{kind}-ckpt", device=pick_device(),
                         progress=False)
    path = out / f"source-{kind}.pt"
    torch.save(built.task.backbone.state_dict(), path)
    return str(path)


@dataclass
class Target:
    """The continued-pretraining runs on the target table, all under ``out``."""

    data: dict[str, Any]
    registries: Any
    out: Path
    steps: int

    def run(self, init: str | None, knobs: dict[str, Any], seed: int,
            name: str) -> dict[str, float]:
        """SCARF from ``init`` (None: random): probe AUPRC at the start, minimum and final."""
        import sslcore
        from mlflow import MlflowClient

        from sslcore.experiment import load_data, resolve_config
        from sslcore.train.build import build_pretraining
        from sslcore.train.probe import OnlineProbe

        uri = f"sqlite:///{self.out}/mlflow.db"
        pretrain = {"steps": self.steps, "seed": seed, "batch_size": 128} | PROBE | knobs
        config = {"vertical": "tabular", "output_dir": str(self.out / "runs"),
                  "evaluation": {"primary_metric": "auprc"},
                  "tracking": {"uri": uri, "experiment": name}, "pretrain": pretrain}
        if init is not None:
            config["backbone"] = {"name": "mlp", "init": init}
        # The loop probes only after steps, so the start is read here: the encoder built as
        # the run builds it (same seed), probed with the run's arguments (same rows). The
        # run's own probe factory, sslcore.pretraining._make_probe, is private.
        cfg = resolve_config(config, self.registries)
        ssl_data = load_data(cfg, self.registries, self.data)
        built = build_pretraining(cfg, self.registries, ssl_data)
        probe = OnlineProbe(ssl_data.labeled_x, ssl_data.labeled_y, metric="auprc",
                            metrics=built.metrics, num_classes=ssl_data.num_classes,
                            rows=cfg.pretrain.probe_rows, seed=seed,
                            groups=ssl_data.labeled_groups, meta=ssl_data.labeled_meta)
        start = probe(built.task.backbone, 0)["probe_auprc"]

        sslcore.pretrain(config, self.data, progress=False)
        client = MlflowClient(uri)
        run = client.search_runs([client.get_experiment_by_name(name).experiment_id],
                                 "attributes.run_name = 'pretrain'",
                                 order_by=["attributes.start_time DESC"], max_results=1)[0]
        same_rows = f"{len(probe.rows_fit)} fit + {len(probe.rows_val)} val"
        if run.data.params["probe_rows"] != same_rows:
            raise RuntimeError(f"{name}: the run probed {run.data.params['probe_rows']} rows, "
                               f"the start probe {same_rows}")
        history = client.get_metric_history(run.info.run_id, "probe_auprc")
        curve = [m.value for m in sorted(history, key=lambda m: m.step)]
        return {"start": start, "min": min(curve), "final": curve[-1]}


def table(title: str, rows: dict[str, list[dict[str, Any]]]) -> str:
    lines = [f"### {title}", "", "| variant | start | min | final | final per seed |",
             "|---|---|---|---|---|"]
    for label, runs in rows.items():
        means = [np.mean([r[k] for r in runs]) for k in ("start", "min", "final")]
        seeds = " / ".join(f"{r['final']:.3f}" for r in runs)
        lines.append(f"| {label} | " + " | ".join(f"{m:.3f}" for m in means) + f" | {seeds} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300, help="continued-pretraining steps")
    parser.add_argument("--out", default=None, help="keep MLflow store and runs here")
    args = parser.parse_args()

    from sslcore.plugins import load_registries

    started = time.perf_counter()
    registries = load_registries()
    x_src, y_src, x_tgt, y_tgt = tables()
    # 800 unlabeled rows for SSL, 2000 labeled for the probe; the rest is test, never used.
    data = {"unlabeled": x_tgt[:800], "labeled": (x_tgt[800:2800], y_tgt[800:2800]),
            "test": (x_tgt[2800:], y_tgt[2800:])}
    with tempfile.TemporaryDirectory(prefix="sslcore-knobs-") as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        target = Target(data, registries, out, args.steps)

        def runs(init: str | None, knobs: dict[str, Any], name: str) -> list[dict[str, float]]:
            return [target.run(init, knobs, seed, f"knobs-{name}-seed{seed}")
                    for seed in args.seeds]

        random = runs(None, {}, "random")  # the same runs in both tables
        sections = []
        for kind, title in INITS.items():
            init = source_encoder(kind, x_src, y_src, registries, out)
            rows = {"no init (random encoder)": random}
            for i, (label, knobs) in enumerate(init_variants(args.steps)):
                rows[label] = runs(init, knobs, f"{kind}-{i}")
            sections.append(table(title, rows))
    minutes = (time.perf_counter() - started) / 60
    body = ("## Continued pretraining from backbone.init: online probe AUPRC on the target\n\n"
            f"SCARF on 800 unlabeled target rows, {args.steps} steps, batch 128; probe on 2000 "
            f"labeled target rows every 10 steps; mean of seeds {args.seeds}. Start: the "
            "encoder before the first step; min and final: over the probes during the run.\n\n"
            + "\n".join(sections))
    header = (f"<!-- command: python benchmarks/continued_pretraining_knobs.py"
              f"{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}"
              f" | machine: {platform.machine()}, {os.cpu_count()} cores, "
              f"{platform.python_version()} | date: {date.today()} | wall: {minutes:.1f} min -->\n")
    path = Path(__file__).parent / "results" / "continued_pretraining_knobs.md"
    path.parent.mkdir(exist_ok=True)
    path.write_text(header + body)
    print(header + body)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
