"""Store throughput: insert 175 trials x 20,000 step rows (3.5 M rows) and read them back as one DataFrame.

    PYTHONPATH=. python benchmarks/bench_store.py                 # SQLite, plus PostgreSQL if its binaries exist
    PYTHONPATH=. python benchmarks/bench_store.py --scale 0.05    # 1,000 steps per trial (quick)
    PYTHONPATH=. python benchmarks/bench_store.py --pg-url postgresql+psycopg://user@host/db   # an existing server
    PYTHONPATH=. python benchmarks/bench_store.py --batch 500     # relay-sized add_steps calls

Targets (issue 6): >= 200,000 rows/s inserted on SQLite; the read < 10 s. The rows go through the public API
(`start_trial`, `add_steps` with event-record dicts, `steps_frame`), exactly as the head writes them.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from clowncar.store import open_store
from clowncar.store.pgserver import create_database, find_bin_dir, throwaway_postgres


def step_rows(n: int) -> list[dict[str, Any]]:
    """One trial's step events, shaped like the worker writes them."""
    rows = []
    for i in range(1, n + 1):
        rows.append({"event": "step", "step": i, "kind": "C" if i % 2 else "N", "train_loss": 7.0 - i * 1e-4,
                     "lr_scale": 1.0 if i < n * 0.8 else (n - i) / (n * 0.2), "phase": "main",
                     "elapsed_ms": i * 85.3, "tokens": i * 524288})
    return rows


def bench(url: str, trials: int, steps: int, batch: int) -> dict[str, Any]:
    rows = step_rows(steps)
    store = open_store(url)
    store.create_or_get_sweep("bench", {"trials": trials, "steps": steps})
    t0 = time.perf_counter()
    for t in range(trials):
        uid = f"bench-{t:04d}"
        store.start_trial("bench", uid, t, 0, {"model": {"crawler_loops": 1 + t % 4}}, t, "bench-node")
        for k in range(0, steps, batch):
            store.add_steps(uid, 0, rows[k:k + batch])
    insert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    frame = store.steps_frame("bench")
    read_s = time.perf_counter() - t0
    store.close()
    total = trials * steps
    if len(frame) != total:
        raise SystemExit(f"read back {len(frame)} rows, wrote {total}")
    return {"rows": total, "insert_s": insert_s, "rows_per_s": total / insert_s, "read_s": read_s}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the 20,000 steps per trial")
    ap.add_argument("--trials", type=int, default=175)
    ap.add_argument("--batch", type=int, default=0, help="rows per add_steps call (0 = a whole trial at once)")
    ap.add_argument("--pg-url", help="PostgreSQL URL to use instead of starting a throwaway server")
    ap.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = ap.parse_args(argv)
    steps = max(1, int(20_000 * args.scale))
    batch = args.batch or steps
    results = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-store-")))
        results.append(("sqlite (WAL, file)", bench(f"sqlite:///{tmp / 'bench.db'}", args.trials, steps, batch)))
        pg_url = args.pg_url
        if pg_url is None and not args.no_pg and find_bin_dir() is not None:
            pg_url = create_database(stack.enter_context(throwaway_postgres()), "bench")
        if pg_url:
            label = "postgresql (given URL)" if args.pg_url else "postgresql (throwaway, 127.0.0.1, fsync off)"
            results.append((label, bench(pg_url, args.trials, steps, batch)))
    print(f"\n{args.trials} trials x {steps:,} steps, add_steps batch {batch:,}; {platform.processor() or platform.machine()}, "
          f"python {sys.version.split()[0]}\n")
    print("| backend | rows | insert s | rows/s | read s (steps_frame) |\n|---|---|---|---|---|")
    for label, r in results:
        print(f"| {label} | {r['rows']:,} | {r['insert_s']:.1f} | {r['rows_per_s']:,.0f} | {r['read_s']:.2f} |")
    print(f"\nreproduce: PYTHONPATH=. python benchmarks/bench_store.py {' '.join(argv or sys.argv[1:])}".rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
