"""Label-efficiency benchmark: the full comparison (all fractions, 3 seeds) on built-in data.

    python benchmarks/label_efficiency.py --vertical fraud_transactions [--quick]

Prints the comparison markdown (mean ± std over seeds for every arm, method and metric) and
writes it to benchmarks/results/<vertical>_label_efficiency.md (with --config, to
benchmarks/results/<config file name>.md), with the machine and the date.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vertical", default="fraud_transactions")
    parser.add_argument("--config", help="YAML overriding the recipe")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args()

    import sslcore
    from sslcore.evaluate.report import to_markdown

    target = args.config or args.vertical
    start = time.perf_counter()
    report = sslcore.compare(target, quick=args.quick, tracking_uri=args.tracking_uri)
    minutes = (time.perf_counter() - start) / 60
    ev = report.config.evaluation
    body = to_markdown(report.table, ev.primary_metric, report.labeled_counts,
                       f"{args.vertical}: SSL vs labeled-only", report.val_table,
                       lower_is_better=report.lower_is_better)
    header = (f"<!-- command: python benchmarks/label_efficiency.py --vertical {args.vertical}"
              f"{' --quick' if args.quick else ''}{' --config ' + args.config if args.config else ''}"
              f" | machine: {platform.machine()}, {os.cpu_count()} cores, "
              f"{platform.python_version()} | date: {date.today()} | wall: {minutes:.1f} min | "
              f"mlflow run: {report.run_id} -->\n")
    # A config is a variant of the recipe: its own file, so it never overwrites the recipe's.
    name = Path(args.config).stem if args.config else f"{args.vertical}_label_efficiency"
    out = Path(__file__).parent / "results" / f"{name}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(header + body)
    print(header + body)
    wins = [r for r in report.headline.rows if r["ssl_wins"]]
    print(f"SSL wins at {len(wins)}/{len(report.headline.rows)} fractions; wrote {out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
