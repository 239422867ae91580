"""Store throughput: insert 175 trials x 20,000 step rows (3.5 M rows) and read them back as one DataFrame.

    PYTHONPATH=. python benchmarks/bench_store.py                 # SQLite, plus PostgreSQL if its binaries exist
    PYTHONPATH=. python benchmarks/bench_store.py --scale 0.05    # 1,000 steps per trial (quick)
    PYTHONPATH=. python benchmarks/bench_store.py --pg-url postgresql+psycopg://user@host/db   # an existing server
    PYTHONPATH=. python benchmarks/bench_store.py --batch 500     # relay-sized add_steps calls

Targets (issue 6): >= 200,000 rows/s inserted on SQLite; the read < 10 s. Rows go through the public API
(`start_trial`, `add_steps` with event-record dicts, `steps_frame`) exactly as the head writes them. Beside them,
measured in the same run on the same schema, the floor of the driver itself: plain `sqlite3` executemany of
ready-made tuples and a plain `fetchall` of the same rows. Compare the ratio (API / driver), which does not
depend on how busy the machine is; the absolute figures do.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from clowncar.store import open_store
from clowncar.store.pgserver import create_database, find_bin_dir, throwaway_postgres

COLS = ("step", "kind", "train_loss", "lr_scale", "phase", "elapsed_ms", "tokens")


def step_rows(n: int) -> list[dict[str, Any]]:
    """One trial's step events, shaped like the worker writes them."""
    return [{"event": "step", "step": i, "kind": "C" if i % 2 else "N", "train_loss": 7.0 - i * 1e-4,
             "lr_scale": 1.0 if i < n * 0.8 else (n - i) / (n * 0.2), "phase": "main",
             "elapsed_ms": i * 85.3, "tokens": i * 524288} for i in range(1, n + 1)]


def bench_api(url: str, trials: int, steps: int, batch: int) -> dict[str, float]:
    import pandas  # noqa: F401  (a reader has pandas loaded already; its import is not the store's cost)

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
    if len(frame) != trials * steps:
        raise SystemExit(f"read back {len(frame)} rows, wrote {trials * steps}")
    return {"rows": trials * steps, "insert_s": insert_s, "read_s": read_s}


def bench_sqlite_driver(path: Path, trials: int, steps: int) -> dict[str, float]:
    """The same rows through plain sqlite3 into the same schema (attempt rows made by the API, not timed)."""
    store = open_store(f"sqlite:///{path}")
    store.create_or_get_sweep("bench", {})
    for t in range(trials):
        store.start_trial("bench", f"bench-{t:04d}", t, 0, {}, t, None)
    store.close()
    base = [tuple(r[c] for c in COLS) for r in step_rows(steps)]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    ids = [r[0] for r in db.execute("SELECT id FROM clowncar_attempts ORDER BY id")]
    sql = f"INSERT INTO clowncar_steps (attempt_id, {', '.join(COLS)}) VALUES ({', '.join('?' * 8)}) " \
          "ON CONFLICT DO NOTHING"
    insert_s = 0.0
    for aid in ids:
        tuples = [(aid, *r) for r in base]
        t0 = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.executemany(sql, tuples)
        db.execute("COMMIT")
        insert_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    got = db.execute(f"SELECT attempt_id, {', '.join(COLS)} FROM clowncar_steps").fetchall()
    read_s = time.perf_counter() - t0
    db.close()
    return {"rows": len(got), "insert_s": insert_s, "read_s": read_s}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
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
        results.append(("sqlite", "clowncar API", bench_api(f"sqlite:///{tmp / 'api.db'}", args.trials, steps,
                                                             batch)))
        results.append(("sqlite", "sqlite3 driver floor", bench_sqlite_driver(tmp / "raw.db", args.trials, steps)))
        pg_url = args.pg_url
        if pg_url is None and not args.no_pg and find_bin_dir() is not None:
            pg_url = create_database(stack.enter_context(throwaway_postgres()), "bench")
        if pg_url:
            label = "postgresql" if args.pg_url else "postgresql (throwaway, fsync off)"
            results.append((label, "clowncar API", bench_api(pg_url, args.trials, steps, batch)))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{args.trials} trials x {steps:,} steps, add_steps batch {batch:,}; {os.cpu_count()} CPUs "
          f"({platform.machine()}), load average {load:.1f}, python {sys.version.split()[0]}, "
          f"sqlite {sqlite3.sqlite_version}\n")
    print("| backend | path | rows | insert s | rows/s | read s |\n|---|---|---|---|---|---|")
    for backend, path, r in results:
        print(f"| {backend} | {path} | {r['rows']:,} | {r['insert_s']:.1f} | {r['rows'] / r['insert_s']:,.0f} | "
              f"{r['read_s']:.2f} |")
    api, raw = results[0][2], results[1][2]
    print(f"\nsqlite API / driver: insert rate {raw['insert_s'] / api['insert_s']:.2f}x of the driver's, "
          f"read time {api['read_s'] / raw['read_s']:.2f}x the bare fetchall (which builds no DataFrame)")
    print(f"reproduce: PYTHONPATH=. python benchmarks/bench_store.py {' '.join(argv or sys.argv[1:])}".rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
