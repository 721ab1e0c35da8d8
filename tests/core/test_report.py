"""The headline picks each arm's method on validation, then reports its test score."""

from __future__ import annotations

import polars as pl

from sslcore.evaluate.report import (
    RESULT_SCHEMA,
    headline,
    reference_label,
    reference_sentences,
    summarize,
    to_markdown,
)


def _table(values: dict[tuple[str, str], float], fraction: float = 0.1) -> pl.DataFrame:
    rows = [{"label_fraction": fraction, "seed": 0, "arm": arm, "method": method,
             "metric": "auroc", "value": v} for (arm, method), v in values.items()]
    return summarize(pl.DataFrame(rows, schema=RESULT_SCHEMA))


# Test scores: the SSL arm's lucky method ("b") is best on test but worst on validation.
TEST = _table({("ssl", "a"): 0.70, ("ssl", "b"): 0.80, ("baseline", "s"): 0.75})
VAL = _table({("ssl", "a"): 0.90, ("ssl", "b"): 0.60, ("baseline", "s"): 0.85})


def test_each_arm_is_represented_by_its_validation_choice_scored_on_test():
    hl = headline(TEST, "auroc", VAL)
    row = hl.rows[0]
    assert row["best_ssl"] == ("a", 0.70) and row["best_baseline"] == ("s", 0.75)
    assert row["ssl_wins"] is False and hl.chosen_on == "validation split"
    assert hl.labels_to_match_full_baseline is None


def test_without_validation_scores_the_test_choice_is_named_as_such():
    hl = headline(TEST, "auroc")
    assert hl.rows[0]["best_ssl"] == ("b", 0.80) and hl.rows[0]["ssl_wins"] is True
    assert hl.chosen_on == "test set"
    md = to_markdown(TEST, "auroc", {0.1: [5, 5]}, "t")
    assert "chosen on the test set" in md


def test_markdown_states_the_choice_and_lists_it_per_fraction():
    md = to_markdown(TEST, "auroc", {0.1: [5, 5]}, "t", VAL)
    assert "Each group's best method at a fraction is chosen on the validation split" in md
    assert "| 0.1 | a 0.7000 | s 0.7500 | no |" in md


def test_a_metric_undefined_in_some_seeds_is_averaged_over_the_others_and_says_so():
    # median lead time: NaN in a seed whose model alerted on no failure
    rows = [{"label_fraction": 0.1, "seed": seed, "arm": "ssl", "method": "a",
             "metric": "median_lead_time", "value": v}
            for seed, v in enumerate([80.0, float("nan"), 100.0])]
    rows += [{"label_fraction": 0.1, "seed": seed, "arm": "baseline", "method": "s",
              "metric": "median_lead_time", "value": float("nan")} for seed in range(3)]
    table = summarize(pl.DataFrame(rows, schema=RESULT_SCHEMA))
    ssl = table.filter(pl.col("arm") == "ssl").row(0, named=True)
    assert (ssl["mean"], ssl["n_seeds"], ssl["n_defined"]) == (90.0, 3, 2)
    assert abs(ssl["std"] - 14.1421) < 1e-3
    base = table.filter(pl.col("arm") == "baseline").row(0, named=True)
    assert base["n_defined"] == 0 and base["mean"] != base["mean"]  # NaN: defined in no seed
    md = to_markdown(table, "median_lead_time", {0.1: [5, 5]}, "t")
    assert "| ssl | a | 90.0000 ± 14.1421 (2 of 3 seeds) |" in md
    assert "| baseline | s | nan ± nan (0 of 3 seeds) |" in md
    one = summarize(pl.DataFrame(rows[3:4], schema=RESULT_SCHEMA))
    assert "nan ± nan (0 of 1 seed) |" in to_markdown(one, "median_lead_time", {}, "t")


# ----------------------------------------------------------------------------- plain reference

def _with_reference(ref_test: float, ref_val: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """SSL 'a' and baseline 's' as above, plus the reference with the given scores."""
    test = _table({("ssl", "a"): 0.70, ("ssl", "b"): 0.80, ("baseline", "s"): 0.75,
                   ("baseline", "logreg_raw"): ref_test})
    val = _table({("ssl", "a"): 0.90, ("ssl", "b"): 0.60, ("baseline", "s"): 0.85,
                  ("baseline", "logreg_raw"): ref_val})
    return test, val


def test_the_reference_score_is_reported_and_silent_when_it_loses():
    test, val = _with_reference(0.65, 0.80)
    hl = headline(test, "auroc", val)
    row = hl.rows[0]
    assert hl.reference == "logreg_raw" and row["reference"] == ("logreg_raw", 0.65)
    assert not row["reference_beats_ssl"] and reference_sentences(hl) == []
    md = to_markdown(test, "auroc", {0.1: [5, 5]}, "t", val)
    assert "| SSL ahead | plain reference (logreg_raw) |" in md
    assert "| 0.1 | a 0.7000 | s 0.7500 | no | 0.6500 |" in md
    assert "earn" not in md


def test_a_sentence_says_when_the_reference_beats_both_chosen_methods():
    test, val = _with_reference(0.81, 0.80)  # not the baseline arm's choice on validation
    hl = headline(test, "auroc", val)
    assert hl.rows[0]["best_baseline"] == ("s", 0.75)
    sentence = ("At 10% labels the plain logistic regression on raw inputs (0.8100) beats the "
                "SSL arm's chosen method (a, 0.7000) and the baseline arm's (s, 0.7500): "
                "neither arm's chosen method earns its cost here.")
    assert reference_sentences(hl) == [sentence]
    assert sentence in to_markdown(test, "auroc", {0.1: [5, 5]}, "t", val)


def test_a_sentence_says_when_the_baseline_arm_chose_the_reference_and_it_beats_ssl():
    test, val = _with_reference(0.81, 0.88)
    hl = headline(test, "auroc", val)
    assert hl.rows[0]["best_baseline"] == ("logreg_raw", 0.81)
    assert reference_sentences(hl) == [
        "At 10% labels the plain logistic regression on raw inputs (0.8100) beats the SSL "
        "arm's chosen method (a, 0.7000): the deep arms do not earn their cost here."]


def test_the_reference_found_under_its_alias_and_absent_without_it():
    from sslcore.config import ComponentRef

    assert reference_label([ComponentRef(name="scratch"),
                            ComponentRef(name="logreg_raw", alias="plain")]) == "plain"
    assert reference_label([ComponentRef(name="scratch")]) is None
    test = _table({("ssl", "a"): 0.70, ("baseline", "plain"): 0.90})
    assert headline(test, "auroc").reference is None  # not under its default name
    hl = headline(test, "auroc", reference="plain")
    assert hl.rows[0]["reference"] == ("plain", 0.90) and len(reference_sentences(hl)) == 1
    md = to_markdown(TEST, "auroc", {0.1: [5, 5]}, "t", VAL)
    assert "plain reference" not in md  # no reference in the sweep: the table as before


def test_lower_is_better_metrics_turn_the_comparison_around():
    rows = [{"label_fraction": 0.05, "seed": 0, "arm": arm, "method": method,
             "metric": "fp_at_80pct_recall", "value": v}
            for (arm, method), v in {("ssl", "a"): 20.0, ("baseline", "s"): 30.0,
                                     ("baseline", "logreg_raw"): 10.0}.items()]
    table = summarize(pl.DataFrame(rows, schema=RESULT_SCHEMA))
    lower = {"fp_at_80pct_recall"}  # what the metric registry says (Metric.higher_is_better)
    hl = headline(table, "fp_at_80pct_recall", lower_is_better=lower)
    assert hl.rows[0]["best_ssl"] == ("a", 20.0) and hl.rows[0]["best_baseline"] == \
        ("logreg_raw", 10.0)
    assert reference_sentences(hl)[0].startswith("At 5% labels the plain logistic regression")
    md = to_markdown(table, "fp_at_80pct_recall", {}, "t", lower_is_better=lower)
    assert "## fp_at_80pct_recall (lower is better)" in md
    # Without it, the same table reads as higher-is-better: the caller must pass it.
    assert headline(table, "fp_at_80pct_recall").rows[0]["best_baseline"] == ("s", 30.0)
    assert "(lower is better)" not in to_markdown(table, "fp_at_80pct_recall", {}, "t")


def test_sslcore_run_prints_the_sentence(monkeypatch, capsys):
    import types

    import sslcore.api
    from sslcore.cli import main

    test, val = _with_reference(0.81, 0.88)
    report = types.SimpleNamespace(headline=headline(test, "auroc", val), run_id="r",
                                   tracking_uri="u", best_method="baseline/logreg_raw",
                                   model_uri="m", dropped={}, registered_model=None)
    monkeypatch.setattr(sslcore.api, "compare", lambda *a, **k: report)
    assert main(["run", "tabular", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "(plain reference logreg_raw 0.8100)" in out
    assert "the deep arms do not earn their cost here." in out


def test_a_tie_on_validation_is_reported_as_the_tied_methods_mean_not_by_name():
    # On a tiny validation split three SSL methods score a perfect 1.0; breaking the tie by
    # name would report "a_detector", whichever test score it has.
    test = _table({("ssl", "a_detector"): 0.46, ("ssl", "finetune"): 0.97,
                   ("ssl", "probe"): 0.91, ("ssl", "weak"): 0.99, ("baseline", "s"): 0.80})
    val = _table({("ssl", "a_detector"): 1.0, ("ssl", "finetune"): 1.0, ("ssl", "probe"): 1.0,
                  ("ssl", "weak"): 0.7, ("baseline", "s"): 0.9})
    name, value = headline(test, "auroc", val).rows[0]["best_ssl"]
    assert name == "tied on validation: a_detector, finetune, probe"
    assert abs(value - (0.46 + 0.97 + 0.91) / 3) < 1e-12
    assert "tied on validation" in to_markdown(test, "auroc", {0.1: [5, 5]}, "t", val)


# ----------------------------------------------------------------------------- transfer arm

def _with_transfer(values: dict[str, float], val: dict[str, float],
                   ref: tuple[float, float] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """TEST / VAL (SSL 'a' chosen, 0.70; baseline 's', 0.75) plus transfer methods (test and
    validation scores by name) and, with ``ref``, the reference's (test, validation)."""
    extra_test = {("transfer", m): v for m, v in values.items()}
    extra_val = {("transfer", m): v for m, v in val.items()}
    if ref:
        extra_test[("baseline", "logreg_raw")], extra_val[("baseline", "logreg_raw")] = ref
    return (_table({("ssl", "a"): 0.70, ("ssl", "b"): 0.80, ("baseline", "s"): 0.75}
                   | extra_test),
            _table({("ssl", "a"): 0.90, ("ssl", "b"): 0.60, ("baseline", "s"): 0.85}
                   | extra_val))


def test_the_transfer_arm_is_represented_by_its_validation_choice():
    # "lucky" is best on test, worst on validation: the arm is "p" (chosen on validation).
    test, val = _with_transfer({"p": 0.60, "lucky": 0.95}, {"p": 0.80, "lucky": 0.50})
    hl = headline(test, "auroc", val)
    row = hl.rows[0]
    assert hl.transfer is True
    assert row["best_transfer"] == ("p", 0.60)
    assert row["best_ssl"] == ("a", 0.70) and row["best_baseline"] == ("s", 0.75)
    assert not headline(TEST, "auroc", VAL).transfer  # no transfer arm: as before
    assert headline(TEST, "auroc", VAL).rows[0]["best_transfer"] is None


def test_ssl_wins_only_when_it_beats_both_other_arms():
    # SSL 'a' (0.70) vs baseline 's' (0.60 here) and transfer 'p'.
    base_low = {("ssl", "a"): 0.70, ("baseline", "s"): 0.60}
    for transfer, wins in ((0.65, True), (0.72, False), (0.70, False)):
        test = _table(base_low | {("transfer", "p"): transfer})
        assert headline(test, "auroc").rows[0]["ssl_wins"] is wins, transfer
    # Lower is better: the comparison turns around for the transfer arm too.
    rows = [{"label_fraction": 0.05, "seed": 0, "arm": arm, "method": method,
             "metric": "fp", "value": v}
            for (arm, method), v in {("ssl", "a"): 20.0, ("baseline", "s"): 30.0,
                                     ("transfer", "p"): 25.0}.items()]
    table = summarize(pl.DataFrame(rows, schema=RESULT_SCHEMA))
    assert headline(table, "fp", lower_is_better={"fp"}).rows[0]["ssl_wins"] is True
    assert headline(table, "fp").rows[0]["ssl_wins"] is False


def test_markdown_has_a_transfer_column_only_with_the_arm():
    test, val = _with_transfer({"p": 0.80}, {"p": 0.80}, ref=(0.65, 0.70))
    md = to_markdown(test, "auroc", {0.1: [5, 5]}, "t", val)
    assert ("| label fraction | SSL (chosen) | baseline (chosen) | transfer (chosen) | "
            "SSL ahead | plain reference (logreg_raw) |") in md
    assert "|---|---|---|---|---|---|" in md
    assert "| 0.1 | a 0.7000 | s 0.7500 | p 0.8000 | no | 0.6500 |" in md
    assert "| transfer | p |" in md
    assert "SSL ahead: better than every other group's choice (labeled-only, transfer)" in md
    plain = to_markdown(TEST, "auroc", {0.1: [5, 5]}, "t", VAL)
    assert "transfer" not in plain and "| 0.1 | a 0.7000 | s 0.7500 | no |" in plain


def test_the_reference_sentence_names_the_transfer_arm():
    # The reference (0.81, not the baseline's choice) beats SSL, baseline and transfer.
    test, val = _with_transfer({"p": 0.72}, {"p": 0.80}, ref=(0.81, 0.80))
    hl = headline(test, "auroc", val)
    assert hl.rows[0]["reference_beats_transfer"] is True
    assert reference_sentences(hl) == [
        "At 10% labels the plain logistic regression on raw inputs (0.8100) beats the SSL "
        "arm's chosen method (a, 0.7000) and the baseline arm's (s, 0.7500) and the transfer "
        "arm's (p, 0.7200): no arm's chosen method earns its cost here."]
    # The transfer arm beats the reference: SSL alone does not earn its cost.
    test, val = _with_transfer({"p": 0.90}, {"p": 0.80}, ref=(0.81, 0.80))
    assert reference_sentences(headline(test, "auroc", val)) == [
        "At 10% labels the plain logistic regression on raw inputs (0.8100) beats the SSL "
        "arm's chosen method (a, 0.7000) and the baseline arm's (s, 0.7500), but not the "
        "transfer arm's (p, 0.9000): SSL does not earn its cost here."]
    # The baseline arm chose the reference, which the transfer arm beats.
    test, val = _with_transfer({"p": 0.90}, {"p": 0.80}, ref=(0.81, 0.88))
    assert reference_sentences(headline(test, "auroc", val)) == [
        "At 10% labels the plain logistic regression on raw inputs (0.8100) beats the SSL "
        "arm's chosen method (a, 0.7000), but not the transfer arm's (p, 0.9000): SSL does "
        "not earn its cost here."]


def test_sslcore_run_prints_the_transfer_arm(monkeypatch, capsys):
    import types

    import sslcore.api
    from sslcore.cli import main

    test, val = _with_transfer({"p": 0.78}, {"p": 0.80})
    report = types.SimpleNamespace(headline=headline(test, "auroc", val), run_id="r",
                                   tracking_uri="u", best_method="transfer/p",
                                   model_uri="m", dropped={}, registered_model=None)
    monkeypatch.setattr(sslcore.api, "compare", lambda *a, **k: report)
    assert main(["run", "tabular", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert ("at 10%: best transfer p 0.7800 > best labeled-only s 0.7500 > best SSL a 0.7000"
            in out)
