"""The honest headline: label-free methods are their own group, the groups are ranked per
fraction, the model logged is the one the headline names, and one seed has no spread."""

from __future__ import annotations

import polars as pl
import pytest

from sslcore.evaluate.report import (
    RESULT_SCHEMA,
    headline,
    headline_lines,
    overall_choice,
    overall_sentences,
    summarize,
    to_markdown,
)
from sslcore.experiment import _best_method

# The fraud demo's shape: a label-free detector beats both labeled groups at 1%.
FREE = {("baseline", "iforest"), ("ssl", "embedding_anomaly")}


def _table(test: dict[tuple[str, str, float], float], seeds: int = 1,
           label_free: set[tuple[str, str]] = FREE) -> pl.DataFrame:
    rows = [{"label_fraction": f, "seed": s, "arm": arm, "method": method, "metric": "auprc",
             "value": v + 0.01 * s}
            for (arm, method, f), v in test.items() for s in range(seeds)]
    return summarize(pl.DataFrame(rows, schema=RESULT_SCHEMA), label_free)


def _scores(**by_method: tuple[float, float]) -> dict[tuple[str, str, float], float]:
    """method=(score at 1%, score at 100%); the arm from the method's name."""
    arm = {"iforest": "baseline", "hist_gbm": "baseline", "logreg_raw": "baseline",
           "embedding_anomaly": "ssl", "finetune": "ssl"}
    return {(arm[m], m, f): v for m, pair in by_method.items() for f, v in zip((0.01, 1.0), pair)}


TEST = _table(_scores(iforest=(0.63, 0.63), embedding_anomaly=(0.40, 0.40),
                      finetune=(0.48, 0.70), hist_gbm=(0.34, 0.80), logreg_raw=(0.30, 0.60)))
VAL = _table(_scores(iforest=(0.70, 0.70), embedding_anomaly=(0.50, 0.50),
                     finetune=(0.60, 0.75), hist_gbm=(0.40, 0.90), logreg_raw=(0.35, 0.65)))


def test_label_free_methods_form_their_own_group_whichever_arm_ran_them():
    groups = {(r["arm"], r["method"]): r["group"] for r in TEST.iter_rows(named=True)}
    assert groups[("baseline", "iforest")] == groups[("ssl", "embedding_anomaly")] == "label_free"
    assert groups[("ssl", "finetune")] == "ssl" and groups[("baseline", "hist_gbm")] == "baseline"
    hl = headline(TEST, "auprc", VAL)
    row = hl.rows[0]
    assert hl.label_free and row["best_label_free"] == ("iforest", 0.63)
    # SSL is represented by a method that uses labels: the label-free head is not "SSL" here.
    assert row["best_ssl"] == ("finetune", 0.48) and row["best_baseline"] == ("hist_gbm", 0.34)
    assert row["ssl_wins"] is False  # the label-free detector beats it


def test_the_ranking_names_each_group_best_first():
    lines = headline_lines(headline(TEST, "auprc", VAL))
    assert ("  at 1%: best label-free iforest 0.6300 > best SSL finetune 0.4800 > best "
            "labeled-only hist_gbm 0.3400 (plain reference logreg_raw 0.3000)") in lines
    md = to_markdown(TEST, "auprc", {}, "t", VAL)
    assert ("- at 100%: best labeled-only hist_gbm 0.8000 > best SSL finetune 0.7000 > best "
            "label-free iforest 0.6300") in md
    assert "| label-free (chosen) |" in md and "| label_free | iforest |" in md
    assert "| label_free | embedding_anomaly (ssl encoder) |" in md


def test_the_model_logged_is_the_one_the_headline_names():
    hl = headline(TEST, "auprc", VAL)
    assert (hl.overall.arm, hl.overall.method) == _best_method(VAL, "auprc") == \
        ("baseline", "hist_gbm")
    assert overall_sentences(hl) == [
        "Best overall at 100% labels, chosen on the validation split: labeled-only hist_gbm "
        "(test auprc 0.8000); it is the model logged."]


def test_when_the_test_set_ranks_another_group_first_the_output_says_why():
    # finetune best on validation at 100%, hist_gbm better on test.
    val = _table(_scores(iforest=(0.7, 0.7), embedding_anomaly=(0.5, 0.5), finetune=(0.6, 0.95),
                         hist_gbm=(0.4, 0.9), logreg_raw=(0.3, 0.6)))
    hl = headline(TEST, "auprc", val)
    assert _best_method(val, "auprc") == ("ssl", "finetune")
    assert hl.overall.beaten_on_test_by == ("baseline", ("hist_gbm", 0.8))
    assert overall_sentences(hl)[1] == (
        "On the test set the labeled-only choice (hist_gbm, 0.8000) does better, yet the "
        "logged model stays finetune: the model is chosen on the validation split only; the "
        "test set reports, it does not choose.")


def test_a_label_free_model_can_be_the_one_logged_and_the_output_says_what_it_outputs():
    val = _table(_scores(iforest=(0.99, 0.99), embedding_anomaly=(0.5, 0.5),
                         finetune=(0.6, 0.7), hist_gbm=(0.4, 0.9), logreg_raw=(0.3, 0.6)))
    hl = headline(TEST, "auprc", val)
    assert _best_method(val, "auprc") == ("baseline", "iforest") and hl.overall.group == \
        "label_free"
    assert any("uses no labels: its output is an anomaly score" in s
               for s in overall_sentences(hl))


def test_a_validation_tie_is_logged_deterministically_and_the_headline_says_which():
    val = _table(_scores(iforest=(0.5, 0.5), embedding_anomaly=(0.5, 0.5), finetune=(0.6, 0.9),
                         hist_gbm=(0.4, 0.9), logreg_raw=(0.3, 0.9)))
    # Reversed row order must not change the choice: the first of the tie by (arm, method).
    for table in (val, val.reverse()):
        assert overall_choice(table, "auprc") == [("baseline", "hist_gbm"),
                                                  ("baseline", "logreg_raw"), ("ssl", "finetune")]
        assert _best_method(table, "auprc") == ("baseline", "hist_gbm")
    hl = headline(TEST, "auprc", val)
    assert overall_sentences(hl)[0] == (
        "Best overall at 100% labels, chosen on the validation split: 3 methods tie (hist_gbm, "
        "logreg_raw, finetune); the model logged is the first by name, labeled-only hist_gbm "
        "(test auprc 0.8000).")
    # Within the baseline group the tie is still reported as the tied methods' mean.
    name, value = hl.rows[-1]["best_baseline"]
    assert name == "tied on validation: hist_gbm, logreg_raw" and abs(value - 0.7) < 1e-12
    assert headline_lines(hl)[2] == (
        "  at 100%: best SSL finetune 0.7000 = best labeled-only (tied on validation: "
        "hist_gbm, logreg_raw) 0.7000 > best label-free (tied on validation: iforest, "
        "embedding_anomaly (ssl encoder)) 0.5150 (plain reference logreg_raw 0.6000)")


def test_lower_is_better_ranks_ascending():
    rows = [{"label_fraction": 1.0, "seed": 0, "arm": arm, "method": m, "metric": "fp",
             "value": v} for arm, m, v in (("ssl", "finetune", 20.0), ("baseline", "hist_gbm",
                                                                        30.0),
                                           ("baseline", "iforest", 10.0))]
    table = summarize(pl.DataFrame(rows, schema=RESULT_SCHEMA), {("baseline", "iforest")})
    hl = headline(table, "fp", table, lower_is_better={"fp"})
    assert headline_lines(hl)[1] == ("  at 100%: best label-free iforest 10.0000 < best SSL "
                                     "finetune 20.0000 < best labeled-only hist_gbm 30.0000")
    assert _best_method(table, "fp", {"fp"}) == ("baseline", "iforest")


def test_one_seed_shows_no_spread_and_several_seeds_do():
    md = to_markdown(TEST, "auprc", {}, "t", VAL)
    assert "| ssl | finetune | 0.4800 ± n/a | 0.7000 ± n/a |" in md and "± 0.0000" not in md
    from sslcore.experiment import format_console

    console = format_console(TEST, "auprc")
    assert "0.480 ± n/a" in console and "± 0.000" not in console
    two = _table(_scores(iforest=(0.63, 0.63), embedding_anomaly=(0.4, 0.4), finetune=(0.48, 0.7),
                         hist_gbm=(0.34, 0.8), logreg_raw=(0.3, 0.6)), seeds=2)
    assert "| ssl | finetune | 0.4850 ± 0.0071 |" in to_markdown(two, "auprc", {}, "t")
    assert two.filter(pl.col("n_seeds") == 2)["std"].is_finite().all()
    assert TEST["std"].is_nan().all()  # one seed: NaN in Report.table, not 0


def test_the_plot_groups_label_free_methods_and_draws_no_band_for_one_seed(tmp_path,
                                                                             monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    from sslcore.evaluate.plots import label_efficiency_plot

    bands, labels = [], []
    monkeypatch.setattr(Axes, "fill_between",
                        lambda self, *a, **k: bands.append(k.get("where")))
    original = Axes.legend
    monkeypatch.setattr(Axes, "legend", lambda self, *a, **k: (
        labels.extend(self.get_legend_handles_labels()[1]), original(self, *a, **k))[1])
    label_efficiency_plot(TEST, "auprc", tmp_path / "one.png", "t")
    assert bands == [] and "label_free: iforest" in labels
    assert "label_free: embedding_anomaly (ssl encoder)" in labels and "ssl: finetune" in labels
    two = _table(_scores(iforest=(0.6, 0.6), embedding_anomaly=(0.4, 0.4), finetune=(0.5, 0.7),
                         hist_gbm=(0.3, 0.8), logreg_raw=(0.3, 0.6)), seeds=2)
    label_efficiency_plot(two, "auprc", tmp_path / "two.png", "t")
    assert len(bands) == 5 and (tmp_path / "two.png").stat().st_size > 0


@pytest.mark.parametrize("free", [frozenset(), FREE])
def test_without_label_free_methods_the_groups_are_the_arms(free):
    table = _table(_scores(finetune=(0.5, 0.7), hist_gbm=(0.3, 0.8)), label_free=free)
    assert list(table["group"]) == list(table["arm"])
    hl = headline(table, "auprc")
    assert not hl.label_free and hl.rows[0]["best_label_free"] is None
    assert "label-free" not in to_markdown(table, "auprc", {}, "t")


def test_a_run_reports_the_label_free_group_and_logs_the_model_it_names(tmp_path, monkeypatch,
                                                                         make_store):
    from mlflow import MlflowClient

    import sslcore

    from tests.core.test_experiment import SMALL

    uri = make_store(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = SMALL | {"output_dir": str(tmp_path / "runs"),
                   "baselines": SMALL["baselines"] + [
                       {"name": "iforest", "params": {"n_estimators": 10}}]}
    report = sslcore.compare(cfg, tracking_uri=uri, progress=False)
    groups = dict(zip(report.table["method"], report.table["group"], strict=False))
    assert groups == {"linear_probe": "ssl", "hist_gbm": "baseline", "iforest": "label_free"}
    overall = report.headline.overall
    assert report.best_method == f"{overall.arm}/{overall.method}"
    assert report.table["std"].is_nan().all()  # one seed
    client = MlflowClient(uri)
    children = client.search_runs([report.experiment_id],
                                  f"tags.mlflow.parentRunId = '{report.run_id}' and "
                                  "tags.`sslcore.method` = 'iforest'")
    assert [r.data.tags["sslcore.arm"] for r in children] == ["baseline"]  # resume keys as before
    assert client.get_run(report.run_id).data.tags["sslcore.best_method"] == report.best_method
    md = (client.download_artifacts(report.run_id, "comparison.md", str(tmp_path)))
    text = open(md).read()
    assert "| label_free | iforest |" in text and "it is the model logged" in text
    assert "± n/a" in text
