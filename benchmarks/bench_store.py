"""Store throughput: insert 175 trials x 20,000 step rows (3.5 M rows) and read them back as one DataFrame.

    PYTHONPATH=. python benchmarks/bench_store.py                 # SQLite, plus PostgreSQL if its binaries exist
    PYTHONPATH=. python benchmarks/bench_store.py --scale 0.05    # 1,000 steps per trial (quick)
    PYTHONPATH=. python benchmarks/bench_store.py --pg-url postgresql+psycopg://user@host/db   # an existing server
    PYTHONPATH=. python benchmarks/bench_store.py --batch 500     # relay-sized add_steps calls
    PYTHONPATH=. python benchmarks/bench_store.py --no-pg --reads 3   # SQLite only; fastest of 3 reads each

Targets (issue 6): >= 200,000 rows/s inserted on SQLite; the read < 10 s. Rows go through the public API
(`start_trial`, `add_steps` with event-record dicts, `steps_frame`) exactly as the head writes them. Beside them,
measured in the same run on the same schema, the floor of the driver itself: plain `sqlite3` executemany of
ready-made tuples and a plain `fetchall` of the same rows. Compare the ratio (API / driver) and the CPU-time
columns, which depend less on how busy the machine is than the wall-clock figures do; on a shared machine,
`--reads N` times N reads of each kind, alternating, and reports the fastest.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
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


def timed(read: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall s, CPU s) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = read()
    return out, time.perf_counter() - t0, time.process_time() - c0


def fastest(results: list[tuple[Any, float, float]]) -> tuple[Any, float, float]:
    return min(results, key=lambda r: r[1])


def bench_api(url: str, trials: int, steps: int, batch: int) -> dict[str, Any]:
    import pandas  # noqa: F401  (a reader has pandas loaded already; its import is not the store's cost)

    rows = step_rows(steps)
    store = open_store(url)
    store.create_or_get_sweep("bench", {"trials": trials, "steps": steps})
    t0, c0 = time.perf_counter(), time.process_time()
    for t in range(trials):
        uid = f"bench-{t:04d}"
        store.start_trial("bench", uid, t, 0, {"model": {"crawler_loops": 1 + t % 4}}, t, "bench-node")
        for k in range(0, steps, batch):
            store.add_steps(uid, 0, rows[k:k + batch])
    insert_s, insert_cpu = time.perf_counter() - t0, time.process_time() - c0
    def read() -> tuple[Any, float, float]:
        frame, read_s, read_cpu = timed(lambda: store.steps_frame("bench"))
        if len(frame) != trials * steps:
            raise SystemExit(f"read back {len(frame)} rows, wrote {trials * steps}")
        return None, read_s, read_cpu  # the frame is dropped before the next read

    return {"rows": trials * steps, "insert_s": insert_s, "insert_cpu": insert_cpu, "read": read,
            "close": store.close}


def bench_sqlite_driver(path: Path, trials: int, steps: int) -> dict[str, Any]:
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
    insert_s = insert_cpu = 0.0
    for aid in ids:
        tuples = [(aid, *r) for r in base]
        t0, c0 = time.perf_counter(), time.process_time()
        db.execute("BEGIN IMMEDIATE")
        db.executemany(sql, tuples)
        db.execute("COMMIT")
        insert_s, insert_cpu = insert_s + time.perf_counter() - t0, insert_cpu + time.process_time() - c0
    def read() -> tuple[Any, float, float]:
        got, read_s, read_cpu = timed(
            lambda: db.execute(f"SELECT attempt_id, {', '.join(COLS)} FROM clowncar_steps").fetchall())
        if len(got) != trials * steps:
            raise SystemExit(f"fetched {len(got)} rows, wrote {trials * steps}")
        return None, read_s, read_cpu

    return {"rows": trials * steps, "insert_s": insert_s, "insert_cpu": insert_cpu, "read": read,
            "close": db.close}


def measure_reads(results: list[tuple[str, str, dict[str, Any]]], reads: int) -> None:
    """Each bench's read `reads` times, the benches alternating (so that a burst of load on a shared machine
    hits them alike); keep the fastest, then close."""
    timings: list[list[tuple[Any, float, float]]] = [[] for _ in results]
    for _ in range(reads):
        for k, (_, _, r) in enumerate(results):
            timings[k].append(r["read"]())
    for (_, _, r), runs in zip(results, timings, strict=True):
        _, r["read_s"], r["read_cpu"] = fastest(runs)
        r["close"]()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the 20,000 steps per trial")
    ap.add_argument("--trials", type=int, default=175)
    ap.add_argument("--batch", type=int, default=0, help="rows per add_steps call (0 = a whole trial at once)")
    ap.add_argument("--pg-url", help="PostgreSQL URL to use instead of starting a throwaway server")
    ap.add_argument("--no-pg", action="store_true", help="SQLite only")
    ap.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    ap.add_argument("--reads", type=int, default=1, help="reads of each kind, alternating; the fastest counts")
    args = ap.parse_args(argv)
    steps = max(1, int(20_000 * args.scale))
    batch = args.batch or steps
    results = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-store-")))
        if not args.no_sqlite:
            results.append(("sqlite", "clowncar API", bench_api(f"sqlite:///{tmp / 'api.db'}", args.trials,
                                                                 steps, batch)))
            results.append(("sqlite", "sqlite3 driver floor", bench_sqlite_driver(tmp / "raw.db", args.trials,
                                                                                  steps)))
        pg_url = args.pg_url
        if pg_url is None and not args.no_pg and find_bin_dir() is not None:
            pg_url = create_database(stack.enter_context(throwaway_postgres()), "bench")
        if pg_url:
            label = "postgresql" if args.pg_url else "postgresql (throwaway, fsync off)"
            results.append((label, "clowncar API", bench_api(pg_url, args.trials, steps, batch)))
        measure_reads(results, max(1, args.reads))  # while the throwaway server still runs
    load = "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"\n{args.trials} trials x {steps:,} steps, add_steps batch {batch:,}, fastest of {max(1, args.reads)} "
          f"read(s); {os.cpu_count()} CPUs "
          f"({platform.machine()}), load average (1/5/15 min) {load}, python {sys.version.split()[0]}, "
          f"sqlite {sqlite3.sqlite_version}\n")
    print("| backend | path | rows | insert s | rows/s | rows per CPU s | read s | read CPU s |\n"
          "|---|---|---|---|---|---|---|---|")
    for backend, path, r in results:
        print(f"| {backend} | {path} | {r['rows']:,} | {r['insert_s']:.1f} | {r['rows'] / r['insert_s']:,.0f} | "
              f"{r['rows'] / r['insert_cpu']:,.0f} | {r['read_s']:.2f} | {r['read_cpu']:.2f} |")
    print("\n(CPU s = this process's CPU time: the whole cost for SQLite, which runs in-process; PostgreSQL's "
          "server CPU is not in it.)")
    if not args.no_sqlite:
        api, raw = results[0][2], results[1][2]
        print(f"\nsqlite API / driver: insert rate {raw['insert_s'] / api['insert_s']:.2f}x of the driver's, "
              f"read time {api['read_s'] / raw['read_s']:.2f}x the bare fetchall (which builds no DataFrame)")
    print(f"reproduce: PYTHONPATH=. python benchmarks/bench_store.py {' '.join(argv or sys.argv[1:])}".rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
