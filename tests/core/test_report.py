"""The headline picks each arm's method on validation, then reports its test score."""

from __future__ import annotations

import polars as pl

from sslcore.evaluate.report import RESULT_SCHEMA, headline, summarize, to_markdown


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
    assert "each arm's best method chosen on the validation" in md
    assert "| 0.1 | a 0.7000 | s 0.7500 | no |" in md
