"""A tiny trial with quantization on: the worker writes model.ptz and the quant fields of result.json, and
`clowncar artifact eval` on that file alone reproduces the trial's round-trip BPB."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clowncar.worker.artifact import code_bytes, read_artifact
from clowncar.worker.artifact_model import load_model_from_artifact
from clowncar.worker.run import run_trial

QUANT = ["quant.enabled=true", "quant.flat_scheme=gptq_int6", "quant.crawler_scheme=int8",
         "quant.passthrough_max_numel=256", "quant.gptq_calib_seqs=4", "quant.gptq_calib_seq_len=32",
         "quant.zstd_level=3"]


@pytest.mark.slow
def test_tiny_trial_writes_the_artifact_and_artifact_eval_reproduces_its_round_trip_bpb(
        tiny_cfg: Callable[..., Any], tiny_data: Path, tmp_path: Path, read_trial: Callable[..., Any],
        run_cli: Callable[..., Any], other_tokenizer: Path) -> None:
    cfg = tiny_cfg(*QUANT)
    out = tmp_path / "trial"
    assert run_trial(cfg, out) == 0
    result, _ = read_trial(out)
    path = out / "model.ptz"
    assert result["status"] == "ok" and path.is_file()
    assert result["artifact_file_bytes"] == path.stat().st_size
    assert result["artifact_bytes"] == path.stat().st_size + code_bytes() == (
        result["artifact_file_bytes"] + result["artifact_code_bytes"])
    assert result["over_cap"] is False and result["quant_seconds"] > 0
    assert result["quant_schemes"]["flat"] == "gptq_int6" and result["quant_schemes"]["crawler"] == "int8"
    assert result["quant_gap"] == result["q_val_bpb"] - result["val_bpb"]

    _, stored = load_model_from_artifact(path)
    assert stored.content_hash() == cfg.content_hash()
    # the tokenizer it was trained with, byte for byte, in the file and in the result (walk 4, F1)
    trained_with = hashlib.sha256((tiny_data / "tokenizer.model").read_bytes()).hexdigest()
    assert read_artifact(path)[1]["tokenizer_sha256"] == trained_with == result["provenance"]["data"]["tokenizer"][
        "sha256"]
    refused = run_cli("artifact", "eval", str(path), "--tokenizer", str(other_tokenizer), "--device", "cpu")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith(f"clowncar: error: {other_tokenizer} is not the tokenizer {path} was trained "
                                     "with") and len(refused.stderr.splitlines()) == 1
    proc = run_cli("artifact", "eval", str(path), "--device", "cpu",  # no --data: the dataset its config names
                   env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert (report["data"], report["tokenizer_sha256"], report["tokenizer_checked"]) == (
        str(tiny_data), trained_with, True)
    assert report["config_hash"] == cfg.content_hash()
    assert abs(report["standard"]["val_bpb"] - result["q_val_bpb"]) < 1e-9
    assert abs(report["sliding"]["val_bpb"] - result["q_sliding_val_bpb"]) < 1e-9
    assert report["standard"]["tokens_scored"] == result["tokens_scored"]
