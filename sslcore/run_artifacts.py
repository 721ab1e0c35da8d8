"""The parent run's artifacts: comparison tables and plots, the vertical's figures, geometry,
file lists, and the run page's description; written to a temporary folder, then logged."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from sslcore.config import ExperimentConfig
from sslcore.contracts import ArtifactContext, Method
from sslcore.data.ssl_data import SSLData

logger = logging.getLogger(__name__)


def write_parent_artifacts(cfg: ExperimentConfig, registries: Any, data: SSLData, sweep: Any,
                           parent_id: str, *, encoder: Any, device: Any, best: tuple[str, str],
                           tables: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame | None],
                           reference: str | None, lower: frozenset[str],
                           dropped: dict[str, str]) -> Method:
    """Write and log every parent-run artifact; return the fitted model of ``best``.

    ``tables``: the test, validation and shifted summaries (``summarize``/``summarize_shift``).
    """
    from sslcore import tracking
    from sslcore.data_fit import fit_check_markdown
    from sslcore.evaluate.plots import confusion_matrix_plot, label_efficiency_plot
    from sslcore.evaluate.report import to_markdown
    from sslcore.evaluate.shift_report import write_shift_artifacts

    table, val_table, shift_table = tables
    ev = cfg.evaluation
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        table.write_csv(out / "comparison.csv")
        sweep.results.write_csv(out / "results_per_seed.csv")
        n = len(ev.seeds)
        title = f"{cfg.vertical}: SSL vs baselines ({n} seed{'' if n == 1 else 's'})"
        (out / "comparison.md").write_text(
            to_markdown(table, ev.primary_metric, sweep.labeled_counts, title, val_table,
                        reference=reference, lower_is_better=lower)
            + _dropped_markdown(dropped) + fit_check_markdown(data.notes)
            + write_shift_artifacts(cfg, data.notes, table, val_table, shift_table,
                                    lower, out))
        label_efficiency_plot(table, ev.primary_metric, out / "label_efficiency.png", title,
                              lower_is_better=lower)
        best_model = sweep.fitted_at_top[best]
        if data.num_classes > 2:
            top = max(ev.label_fractions)
            confusion_matrix_plot(
                data.test_y, best_model.predict_scores(data.test_x).argmax(axis=1),
                data.class_names or [str(i) for i in range(data.num_classes)],
                out / "confusion_matrix.png",
                f"{best[0]}/{best[1]} at {top:g} labels, seed {ev.seeds[0]} (test set)")
        _vertical_artifacts(cfg, registries, ArtifactContext(
            cfg, data, sweep.fitted_at_top, encoder, device, out), parent_id)
        _record_geometry(encoder, out, parent_id)
        _write_file_lists(data, out)
        tracking.log_artifacts(parent_id, out)
        tracking.set_description(parent_id, (out / "comparison.md").read_text(),
                                 "the full tables are the artifact comparison.md")
    return best_model


def _vertical_artifacts(cfg: ExperimentConfig, registries: Any, ctx: ArtifactContext,
                        run_id: str) -> None:
    """The vertical's own figures; a failure there is reported, not fatal to a finished sweep."""
    from sslcore import tracking

    recipe = registries.verticals.get(cfg.vertical).build()
    if recipe.artifacts is None:
        return
    try:
        recipe.artifacts(ctx)
    except Exception as exc:  # noqa: BLE001 - the results are already computed and logged
        logger.warning("vertical %s: artifacts failed: %s", cfg.vertical, exc)
        tracking.set_tags(run_id, {"sslcore.artifacts_error": f"{type(exc).__name__}: {exc}"[:500]})


def _record_geometry(encoder: Any, out: Path, run_id: str) -> None:
    """How the data went through the encoder (image size, patches, upsampling), for backbones
    that decide it from the data: ``sslcore.geometry.*`` tags and ``geometry.json``."""
    from sslcore import tracking

    geometry = getattr(encoder, "geometry", None)
    if geometry is None:
        return
    tags = geometry.as_tags()
    tracking.set_tags(run_id, tags)
    (out / "geometry.json").write_text(json.dumps(tags, indent=2) + "\n")


# What an image-folder loader left out or flagged (sslcore.data.image_folders), as
# <name>.txt artifacts of the parent run: path and reason per line.
_FILE_LISTS = {"skipped_files": "skipped (unreadable, skip_bad_files: true)",
               "dropped_files": "dropped (a copy of a test file)",
               "duplicate_files": "duplicated within a split (kept)"}


def _write_file_lists(data: SSLData, out: Path) -> None:
    for name, what in _FILE_LISTS.items():
        entries = getattr(data, name, None) or []
        if entries:
            lines = [f"{path}\t{reason}" for path, reason in entries]
            (out / f"{name}.txt").write_text(f"# {len(entries)} file(s) {what}\n"
                                             + "\n".join(lines) + "\n")


def _dropped_markdown(dropped: dict[str, str]) -> str:
    if not dropped:
        return ""
    lines = ["", "## Left out for these data", "",
             "The recipe's methods and metrics below need what these data do not carry:", ""]
    lines += [f"- {key.replace('.', ' ', 1)}: {why}" for key, why in sorted(dropped.items())]
    return "\n".join(lines) + "\n"
