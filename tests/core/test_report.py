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
