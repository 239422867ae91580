"""Data parallelism: 2 gloo processes under torchrun train the same trial as 1 process with the same global
batch (same micro-batches, gradients averaged, Muon's orthogonalization shared out), up to float rounding."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from clowncar.errors import ConfigError
from clowncar.worker.loader import TrainBatches
from clowncar.worker.run import run_trial


@pytest.mark.slow
def test_two_processes_give_the_loss_trace_of_one(run_worker: Callable[..., Any], tiny_cfg: Callable[..., Any],
                                                  tiny_overrides: list[str], tmp_path: Path,
                                                  read_trial: Callable[..., Any]) -> None:
    extra = ["train.iterations=8", "train.grad_accum=4", "train.cadence=2"]
    # one process, in this test's process (same code path as the worker's main)
    assert run_trial(tiny_cfg(*extra), tmp_path / "np1") == 0
    # two processes under torchrun, from the orchestrator's trial.json form: {"config": {...}}
    config = tmp_path / "trial.json"
    config.write_text(json.dumps({"config": tiny_cfg(*extra).to_dict(), "trial_id": "t1"}))
    proc = run_worker([str(config), "--out", str(tmp_path / "np2")], nproc=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    traces, results = {}, {}
    for nproc in (1, 2):
        result, events = read_trial(tmp_path / f"np{nproc}")
        traces[nproc] = [(e["kind"], e["train_loss"], e["tokens"]) for e in events if e["event"] == "step"]
        results[nproc] = result
    assert [k for k, _, _ in traces[2]] == [k for k, _, _ in traces[1]] == list("CNCNCNCN")
    assert [t for _, _, t in traces[2]] == [t for _, _, t in traces[1]]
    assert [loss for _, loss, _ in traces[2]] == pytest.approx([loss for _, loss, _ in traces[1]], abs=2e-4)
    assert results[2]["provenance"]["world_size"] == 2
    assert results[2]["tokens_scored"] == results[1]["tokens_scored"]
    assert results[2]["val_bpb"] == pytest.approx(results[1]["val_bpb"], abs=1e-3)


def test_world_size_must_divide_grad_accum(tiny_cfg: Callable[..., Any]) -> None:
    cfg = tiny_cfg("train.grad_accum=4")
    with pytest.raises(ConfigError, match="grad_accum"):
        TrainBatches([], cfg.train, rank=0, world_size=3, device=torch.device("cpu"))


def test_a_world_size_that_does_not_divide_grad_accum_is_a_rejected_trial_exit_2(
        run_worker: Callable[..., Any], tiny_cfg: Callable[..., Any], tmp_path: Path) -> None:
    """`torchrun --nproc-per-node 2` of a trial with grad_accum 1: bad input before step 1 (each rank exits 2
    with the worker's one line; torchrun itself exits 1 whatever its ranks' codes, so the record says it), not
    a failed run (it was `error`, with the reason `ValueError: ...`)."""
    config = tmp_path / "trial.json"
    config.write_text(json.dumps({"config": tiny_cfg("train.grad_accum=1").to_dict(), "trial_id": "t1"}))
    proc = run_worker([str(config), "--out", str(tmp_path / "np2")], nproc=2)
    assert proc.returncode != 0
    assert ("clowncar.worker: error: trial rejected: ConfigError: train.grad_accum (1) must be divisible by the "
            "number of processes (2)") in proc.stderr
    result = json.loads((tmp_path / "np2" / "result.json").read_text())
    assert result["status"] == "rejected"
    assert result["reason"] == ("ConfigError: train.grad_accum (1) must be divisible by the number of processes "
                                "(2)")
    assert result["steps"] is None
