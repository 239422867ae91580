"""End to end with the real worker: `clowncar demo` builds the demo data and runs a sweep of real tiny-cpu
trials (training, quantization, sliding-window eval) on embedded Ray, recorded in the SQLite store, and writes
the signal report for it."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_real_tiny_cpu_trials_into_the_store(sweep_env, helpers) -> None:
    spec = sweep_env.spec("real", overrides={"data.dataset": "demo_sp1024", "train.iterations": 6,
                                             "train.max_wallclock_seconds": 20,
                                             "eval.max_tokens": 4096},
                          space={"model.crawler_loops": {"grid": [1, 2]}}, worker={"module": "clowncar.worker"})
    r = sweep_env.cli("demo", "--spec", str(spec), "--name", "real", "--num-cpus", "2", "--quiet", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "best trial" in r.stdout and "demo data built" in r.stdout
    report = next(Path(w) for w in r.stdout.split() if w.endswith("report.html"))
    assert report.is_file() and (report.parent / "report.json").is_file()  # the demo ends with the signal report
    assert "live dashboard on the same store: " in r.stdout and " dashboard --store sqlite:///" in r.stdout
    store = sweep_env.store()
    trials = store.trials_frame(sweeps="real")
    assert len(trials) == 2 and set(trials["status"]) == {"ok"}, trials[["status", "reason"]]
    for _, row in trials.iterrows():
        assert math.isfinite(row["q_sliding_val_bpb"]) and 0 < row["q_sliding_val_bpb"] < 12
        assert row["artifact_bytes"] > 0 and row["steps"] == 6
    steps = store.steps_frame(sweeps="real")
    assert (steps.groupby("trial_uid").size() == 6).all()
    assert not store.evals_frame(sweeps="real").empty
    assert sorted(trials["model.crawler_loops"]) == [1, 2]
    # each trial's model.ptz is in the artifacts table: where it is, its size and the digest of its bytes
    arts = store.artifacts_frame("real").set_index("trial_uid")
    assert sorted(arts.index) == sorted(trials["trial_uid"])
    for _, row in trials.iterrows():
        art = arts.loc[row["trial_uid"]]
        path = Path(art["path"])
        assert path.name == "model.ptz" and path.is_file()
        assert art["size_bytes"] == path.stat().st_size == row["artifact_file_bytes"]
        assert art["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
