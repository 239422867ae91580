"""Concurrent writers lose no rows and never see "database is locked" (threads and processes, both backends)."""

from __future__ import annotations

import multiprocessing
import threading
import traceback

from clowncar.store import open_store

BATCHES, BATCH = 15, 40


def _rows(first: int, n: int) -> list[dict]:
    return [{"step": i, "kind": "C" if i % 2 else "N", "train_loss": 1.0 / i, "tokens": i}
            for i in range(first, first + n)]


def _writer(store, uid: str, errors: list[str]) -> None:
    try:
        store.create_or_get_sweep("race", {})
        store.start_trial("race", uid, 0, 0, {"w": uid}, 1, uid)
        store.start_trial("race", "shared", 0, 0, {}, 1, None)
        for b in range(BATCHES):
            store.add_steps(uid, 0, _rows(1 + b * BATCH, BATCH))
            store.add_steps("shared", 0, _rows(1 + b * BATCH, BATCH))  # every writer repeats these rows
            store.add_evals(uid, 0, [{"step": (b + 1) * BATCH, "val_bpb": 1.0 + b}])
        store.finish_trial(uid, 0, "ok", None, {"val_bpb": 1.0})
    except Exception:
        errors.append(traceback.format_exc())


def _process_writer(url: str, uid: str, queue: multiprocessing.Queue) -> None:
    errors: list[str] = []
    store = open_store(url)  # every process opens (and may create) the schema at the same moment
    _writer(store, uid, errors)
    store.close()
    queue.put(errors)


def _check(store, writers: int) -> None:
    steps = store.steps_frame("race")
    counts = steps.groupby("trial_uid", observed=True).size().to_dict()
    assert counts == {**{f"w{i}": BATCHES * BATCH for i in range(writers)}, "shared": BATCHES * BATCH}
    assert len(store.evals_frame("race")) == writers * BATCHES
    states = store.trial_states("race")
    assert all(states[f"w{i}"] == (0, "ok") for i in range(writers))


def test_threads_writing_at_once_lose_no_rows(store):
    errors: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():  # a reader polling like `sweep status` does; bounded by the writers
            try:
                store.sweeps_frame()
                store.steps_frame("race")
            except Exception:
                errors.append(traceback.format_exc())
                return

    threads = [threading.Thread(target=_writer, args=(store, f"w{i}", errors)) for i in range(5)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    stop.set()
    watcher.join(timeout=60)
    assert not errors, errors[0]
    _check(store, 5)


def test_processes_writing_at_once_lose_no_rows(store_url):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_process_writer, args=(store_url, f"w{i}", queue)) for i in range(4)]
    for p in procs:
        p.start()
    errors = [e for _ in procs for e in queue.get(timeout=180)]
    for p in procs:
        p.join(timeout=60)
    assert not errors, errors[0]
    assert all(p.exitcode == 0 for p in procs)
    with open_store(store_url) as store:
        _check(store, 4)
