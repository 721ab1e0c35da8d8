"""Throughput and peak memory of the fraud_transactions feature pipeline.

Writes a synthetic Parquet file (default 10 million rows, generated and written in 1-million-row
chunks of disjoint users so writing never holds the whole table), then computes the behavioural
features from a lazy scan in a fresh subprocess and reports wall time and the child's peak RSS
(polled with psutil and cross-checked with getrusage). Also times generating 1 million rows and
computing features on 200k rows in memory.

    python benchmarks/fraud_feature_pipeline.py                  # 10M rows in a temp dir
    python benchmarks/fraud_feature_pipeline.py --rows 2000000 --out /tmp/tx.parquet --keep

The pipeline must stay under 4 GB peak RSS at 10 million rows (exit code 1 otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RSS_LIMIT_GB = 4.0
KEYS = dict(user="user_id", timestamp="timestamp", amount="amount",
            categorical=["merchant_id", "merchant_category", "region", "device_id", "channel"],
            numeric=[])


def write_parquet(path: Path, rows: int, chunk_rows: int, rows_per_user: int, seed: int) -> float:
    """Write ``rows`` synthetic transactions in chunks of disjoint users; returns seconds."""
    import pyarrow.parquet as pq
    import polars as pl

    from sslcore_fraud_transactions.synthetic import generate_transactions

    start = time.perf_counter()
    writer = None
    done = 0
    for k in range((rows + chunk_rows - 1) // chunk_rows):
        n = min(chunk_rows, rows - done)
        users = max(10, n // rows_per_user)
        df = generate_transactions(n, n_users=users, seed=seed + k)
        user_offset = k * chunk_rows  # >= users of every earlier chunk, keeps ids disjoint
        df = df.with_columns(
            pl.col("transaction_id") + done,
            pl.col("user_id") + user_offset,
            # the users' own devices are user_id * 4 + slot; fraud devices (>= 1e12) stay shared
            pl.when(pl.col("device_id") < 10**12).then(pl.col("device_id") + 4 * user_offset)
            .otherwise(pl.col("device_id")).alias("device_id"),
        )
        table = df.to_arrow()
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=256_000)
        done += n
        del df, table
    if writer is not None:
        writer.close()
    return time.perf_counter() - start


def child(path: str, engine: str) -> None:
    """Run in the subprocess: lazy scan -> features -> collect; print a JSON summary."""
    import polars as pl

    from sslcore_fraud_transactions.features import behavioral_features, feature_columns

    start = time.perf_counter()
    lf = behavioral_features(pl.scan_parquet(path), **KEYS)
    out = lf.collect(engine=engine)
    x = out.select(feature_columns(out.schema))
    seconds = time.perf_counter() - start
    print(json.dumps({"rows": out.height, "features": x.width, "seconds": seconds,
                      "out_mb": out.estimated_size("mb")}))


def measure(path: Path, engine: str) -> dict[str, float]:
    import psutil

    cmd = [sys.executable, __file__, "--child", str(path), "--engine", engine]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    stdout = proc.communicate()[0]
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"feature pipeline failed with exit code {proc.returncode}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    # ru_maxrss is in KiB on Linux and the maximum over every child waited for so far
    rusage_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return {**summary, "wall": wall, "peak_gb": peak / 2**30, "rusage_gb": rusage_gb}


def small_timings() -> dict[str, float]:
    import polars as pl

    from sslcore_fraud_transactions.features import behavioral_features
    from sslcore_fraud_transactions.synthetic import generate_transactions

    start = time.perf_counter()
    generate_transactions(1_000_000, seed=0)
    gen = time.perf_counter() - start
    df = generate_transactions(200_000, n_users=2_000, seed=0)
    start = time.perf_counter()
    behavioral_features(df.lazy(), **KEYS).collect()
    return {"generate_1m": gen, "features_200k": time.perf_counter() - start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--chunk-rows", type=int, default=1_000_000)
    parser.add_argument("--rows-per-user", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="Parquet path (default: a temp dir, deleted)")
    parser.add_argument("--keep", action="store_true", help="keep the Parquet file")
    parser.add_argument("--reuse", action="store_true", help="reuse --out if it exists")
    parser.add_argument("--engine", default="streaming", choices=["streaming", "in-memory", "auto"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.engine)
        return 0

    tmp = None
    if args.out is None:
        tmp = tempfile.TemporaryDirectory(prefix="sslcore_fraud_bench_")
        args.out = Path(tmp.name) / "transactions.parquet"
    try:
        if args.reuse and args.out.exists():
            gen_s = float("nan")
        else:
            gen_s = write_parquet(args.out, args.rows, args.chunk_rows, args.rows_per_user,
                                  args.seed)
        size_mb = args.out.stat().st_size / 2**20
        res = measure(args.out, args.engine)
        small = small_timings()
    finally:
        if tmp is not None and not args.keep:
            tmp.cleanup()
    print(f"\nfraud feature pipeline  (polars engine={args.engine}, {os.cpu_count()} CPUs)")
    rows = [
        ("rows", f"{res['rows']:,}"),
        ("features", f"{res['features']}"),
        ("write parquet (s)", f"{gen_s:.1f}  ({size_mb:.0f} MiB on disk)"),
        ("features wall, incl. start-up (s)", f"{res['wall']:.1f}"),
        ("features compute (s)", f"{res['seconds']:.1f}"),
        ("rows / s", f"{res['rows'] / res['seconds']:,.0f}"),
        ("peak RSS, psutil poll (GiB)", f"{res['peak_gb']:.2f}"),
        ("peak RSS, getrusage (GiB)", f"{res['rusage_gb']:.2f}"),
        ("result frame (MiB)", f"{res['out_mb']:.0f}"),
        ("generate 1M rows in memory (s)", f"{small['generate_1m']:.2f}"),
        ("features on 200k rows in memory (s)", f"{small['features_200k']:.2f}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    peak = max(res["peak_gb"], res["rusage_gb"])
    if res["rows"] >= 10_000_000 and peak >= RSS_LIMIT_GB:
        print(f"FAIL: peak RSS {peak:.2f} GiB >= {RSS_LIMIT_GB} GiB")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
