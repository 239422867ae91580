"""A whole trial: `clowncar trial run` end to end with a golden loss trace, determinism, the wallclock cap and
its warm-down, EMA evaluation, divergence, and failures that end with a status instead of a traceback.

The golden trace (tests/worker/assets/tiny_trace.json) pins the first steps' train losses of the tiny trial.
It changes whenever the model's initialization or forward pass, the optimizers, the data order or the test
dataset change on purpose; regenerate it then with

    CLOWNCAR_REGEN_GOLDEN=1 PYTHONPATH=$PWD python -m pytest -q tests/worker/test_trial.py -k golden

and commit the new file together with the change that explains it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clowncar.config import TrialConfig
from clowncar.data.shards import shards_digest
from clowncar.worker.__main__ import main as worker_main
from clowncar.worker.run import RESULT_KEYS, run_trial

GOLDEN = Path(__file__).resolve().parent / "assets" / "tiny_trace.json"
GOLDEN_STEPS = 12
TOLERANCE = 1e-4


def _steps(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "step"]


def _trial(cfg: TrialConfig, out: Path, read_trial: Callable[..., Any]) -> tuple[int, dict, list[dict]]:
    code = run_trial(cfg, out)
    result, events = read_trial(out)
    return code, result, events


def test_tiny_trial_end_to_end_matches_golden_trace(run_cli: Callable[..., Any], tiny_overrides: list[str],
                                                    tmp_path: Path, read_trial: Callable[..., Any]) -> None:
    config = tmp_path / "trial.yaml"
    config.write_text("preset: tiny-cpu\n")
    sets = [a for o in tiny_overrides for a in ("--set", o)]
    proc = run_cli("trial", "run", str(config), "--out", str(tmp_path / "out"), *sets,
                   env={"OMP_NUM_THREADS": "1"}, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out"
    result, events = read_trial(out)
    assert set(result) == set(RESULT_KEYS) and result["status"] == "ok" and result["reason"] is None
    assert result["steps"] == GOLDEN_STEPS == result["c_steps"] + result["n_steps"]
    assert result["tokens_seen"] == GOLDEN_STEPS * 256
    assert result["tokens_scored"] == 2048 and result["bytes_scored"] > 2048
    assert result["sliding_val_bpb"] is not None and result["evaluated_weights"] == "raw"
    prov = result["provenance"]
    assert prov["config_hash"] and prov["world_size"] == 1 and prov["seed"] == 1337 and prov["torch"]
    assert prov["zstandard"] and prov["libzstd"] and "flash_attn" in prov
    assert prov["config"]["model"]["model_dim"] == 32 and prov["device"].startswith("cpu")
    data = Path(next(o.split("=", 1)[1] for o in tiny_overrides if o.startswith("data.dataset=")))
    assert prov["data"] == {"train": shards_digest(sorted(data.glob("fineweb_train_*.bin"))),
                            "val": shards_digest(sorted(data.glob("fineweb_val_*.bin"))),
                            "tokenizer": {"sha256": hashlib.sha256((data / "tokenizer.model").read_bytes())
                                          .hexdigest()}}
    assert prov["data"]["train"]["shards"] >= 1 and prov["data"]["val"]["tokens"] > 2048
    assert events[0]["event"] == "start" and events[-1]["event"] == "final"
    assert events[-1]["result"]["val_bpb"] == result["val_bpb"]
    assert {e["mode"] for e in events if e["event"] == "eval"} == {"standard", "sliding"}
    assert [e["step"] for e in events if e["event"] == "probe"] == [4, 8, 12]
    log = (out / "train.log").read_text()
    assert "step:12/12" in log and "status: ok val_bpb:" in log

    trace = [e["train_loss"] for e in _steps(events)]
    if os.environ.get("CLOWNCAR_REGEN_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps({"overrides": tiny_overrides[2:], "train_loss": trace}, indent=1) + "\n")
    golden = json.loads(GOLDEN.read_text())["train_loss"]
    assert trace == pytest.approx(golden, abs=TOLERANCE)
    assert trace[-1] < trace[0] - 1.0  # it learned


def test_same_config_and_seed_give_the_same_trace(tiny_cfg: Callable[..., Any], tmp_path: Path,
                                                  read_trial: Callable[..., Any]) -> None:
    cfg = tiny_cfg("train.iterations=6", "train.cadence=2", "eval.stride=0")
    _, _, first = _trial(cfg, tmp_path / "a", read_trial)
    _, _, second = _trial(cfg, tmp_path / "b", read_trial)
    assert [e["kind"] for e in _steps(first)] == list("CNCNCN")
    assert [e["train_loss"] for e in _steps(first)] == [e["train_loss"] for e in _steps(second)]
    _, _, other_seed = _trial(tiny_cfg("train.iterations=6", "train.cadence=2", "eval.stride=0",
                                       "train.seed=7"), tmp_path / "c", read_trial)
    assert [e["train_loss"] for e in _steps(other_seed)] != [e["train_loss"] for e in _steps(first)]


def test_compile_warmup_steps_leave_no_trace(tiny_cfg: Callable[..., Any], tmp_path: Path,
                                             read_trial: Callable[..., Any]) -> None:
    """Warm-up steps train for real (to compile both step kinds) and are then undone: weights, optimizer
    state and data position are restored, so the run is the same as one without warm-up."""
    base = ("train.iterations=5", "train.cadence=2", "eval.stride=0")
    _, _, cold = _trial(tiny_cfg(*base, "train.warmup_steps=0"), tmp_path / "cold", read_trial)
    _, warm_result, warm = _trial(tiny_cfg(*base, "train.warmup_steps=3"), tmp_path / "warm", read_trial)
    assert [e["train_loss"] for e in _steps(warm)] == [e["train_loss"] for e in _steps(cold)]
    assert warm_result["steps"] == 5 and warm_result["tokens_seen"] == 5 * 256


def test_wallclock_cap_stops_within_one_step_and_warmdown_reaches_zero(
        tiny_cfg: Callable[..., Any], tmp_path: Path, read_trial: Callable[..., Any]) -> None:
    cap, reserve = 2.0, 0.5
    cfg = tiny_cfg("train.iterations=100000", f"train.max_wallclock_seconds={cap}",
                   f"train.reserve_seconds={reserve}", "train.warmdown_iters=5", "train.probe_every=1",
                   "eval.stride=0")
    code, result, events = _trial(cfg, tmp_path / "out", read_trial)
    assert code == 0 and result["status"] == "ok"
    steps = _steps(events)
    cap_ms = (cap - reserve) * 1000
    last, before = steps[-1], steps[-2]
    # the last step started before the cap and ended after it: training stopped within one step
    assert before["elapsed_ms"] < cap_ms <= last["elapsed_ms"]
    assert result["train_seconds"] * 1000 == pytest.approx(last["elapsed_ms"])
    # the warm-down is linear in the time left, so the step that crosses the cap trains at
    # lr <= (its own duration) / (warm-down length): the schedule has reached zero by the cap
    warmdown_ms = 5 * before["elapsed_ms"] / before["step"]
    assert last["lr_scale"] <= (last["elapsed_ms"] - before["elapsed_ms"]) / warmdown_ms + 1e-9
    assert last["phase"] == "warmdown" and steps[0]["lr_scale"] == 1.0
    scales = [s["lr_scale"] for s in steps if s["phase"] == "warmdown"]
    assert scales == sorted(scales, reverse=True)


def test_ema_weights_are_the_ones_evaluated(tiny_cfg: Callable[..., Any], tmp_path: Path,
                                            read_trial: Callable[..., Any]) -> None:
    raw = _trial(tiny_cfg("train.iterations=6", "eval.stride=0"), tmp_path / "raw", read_trial)[1]
    code, result, events = _trial(tiny_cfg("train.iterations=6", "eval.stride=0", "train.ema=true",
                                           "train.ema_decay=0.5"), tmp_path / "ema", read_trial)
    assert code == 0 and result["evaluated_weights"] == "ema"
    assert {e["weights"] for e in events if e["event"] == "eval"} == {"ema"}
    assert result["val_loss"] != raw["val_loss"]  # same training, different weights scored


def test_absurd_learning_rate_ends_diverged_within_a_few_steps(
        tiny_cfg: Callable[..., Any], tmp_path: Path, read_trial: Callable[..., Any]) -> None:
    cfg = tiny_cfg("train.iterations=100000", "train.max_wallclock_seconds=600", "train.matrix_lr=1e6",
                   "train.scalar_lr=1e6", "train.tied_embed_lr=1e6")
    code, result, events = _trial(cfg, tmp_path / "out", read_trial)
    assert code == 3 and result["status"] == "diverged"
    assert "train loss" in result["reason"] and result["steps"] <= 10
    assert _steps(events)[-1]["step"] == result["steps"]  # the step that blew up is in the trace
    assert events[-1]["event"] == "final" and events[-1]["result"]["status"] == "diverged"


def test_missing_data_ends_rejected(tmp_path: Path, read_trial: Callable[..., Any]) -> None:
    from clowncar.config_load import load_config

    cfg = load_config(None, "tiny-cpu", [f"data.dataset={tmp_path / 'nowhere'}"])
    config = tmp_path / "trial.json"  # the orchestrator's form: the whole config
    config.write_text(json.dumps({"config": cfg.to_dict(), "sweep": "s", "params": {}}))
    code = worker_main([str(config), "--out", str(tmp_path / "out")])
    assert code == 2  # bad input found before the first step; result.json still says why, for the orchestrator
    result, events = read_trial(tmp_path / "out")
    assert result["status"] == "rejected" and "DataError" in result["reason"] and "nowhere" in result["reason"]
    assert events[-1]["event"] == "final" and events[-1]["result"]["status"] == "rejected"


def test_trial_run_exits_with_the_trials_code_and_says_why_in_one_line(
        run_cli: Callable[..., Any], tiny_overrides: list[str], tmp_path: Path) -> None:
    config = tmp_path / "trial.yaml"
    config.write_text("preset: tiny-cpu\n")
    sets = [a for o in [*tiny_overrides, "train.matrix_lr=1e6", "train.scalar_lr=1e6", "train.tied_embed_lr=1e6",
                        "train.iterations=50"] for a in ("--set", o)]
    proc = run_cli("trial", "run", str(config), "--out", str(tmp_path / "out"), *sets,
                   env={"OMP_NUM_THREADS": "1"}, timeout=180)
    assert proc.returncode == 3, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("clowncar: error: trial diverged: train loss") and "Traceback" not in proc.stderr
    assert json.loads((tmp_path / "out" / "result.json").read_text())["status"] == "diverged"


def test_vocab_smaller_than_the_tokenizer_is_rejected_before_step_1_leaving_no_folder(
        run_cli: Callable[..., Any], tiny_overrides: list[str], tmp_path: Path) -> None:
    config = tmp_path / "trial.yaml"
    config.write_text("preset: tiny-cpu\n")
    sets = [a for o in [*tiny_overrides, "model.vocab_size=100"] for a in ("--set", o)]
    proc = run_cli("trial", "run", str(config), "--out", str(tmp_path / "out"), *sets,
                   env={"OMP_NUM_THREADS": "1"}, timeout=180)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "clowncar: error: trial rejected: model.vocab_size (100) is smaller than the tokenizer's vocabulary (320 ids)"]
    assert not (tmp_path / "out").exists()


def test_data_ids_beyond_the_vocab_are_bad_input_before_step_1(
        tiny_cfg: Callable[..., Any], tiny_data: Path, tmp_path: Path, read_trial: Callable[..., Any]) -> None:
    import numpy as np

    from clowncar.data.shards import read_shard, write_shard

    data = tmp_path / "data"  # the fixture's shards with one validation id past the 320-id tokenizer
    for shard in tiny_data.glob("*.bin"):
        tokens = np.array(read_shard(shard))
        if "val" in shard.name:
            tokens[5] = 400
        write_shard(data / shard.name, tokens)
    code, result, events = _trial(tiny_cfg(f"data.dataset={data}"), tmp_path / "out", read_trial)
    assert code == 2 and result["steps"] is None
    assert "token id 400 does not fit model.vocab_size (320)" in result["reason"]
    assert not [e for e in events if e["event"] == "step"]


def test_unknown_config_key_is_one_line_and_exit_2(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    config = tmp_path / "trial.yaml"
    config.write_text("preset: tiny-cpu\n")
    proc = run_cli("trial", "run", str(config), "--out", str(tmp_path / "out"), "--set", "train.nope=1")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "train.nope" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_out_of_memory_ends_with_oom_status(tiny_cfg: Callable[..., Any], tmp_path: Path,
                                            read_trial: Callable[..., Any],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """No CPU test can fill a GPU, so the allocation failure is raised where the model is built."""
    import torch

    import clowncar.worker.train as train_module

    def no_memory(cfg: TrialConfig) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB\nmore details")

    monkeypatch.setattr(train_module, "build_model", no_memory)
    code, result, events = _trial(tiny_cfg(), tmp_path / "out", read_trial)
    assert code == 4 and result["status"] == "oom"
    assert result["reason"] == "CUDA out of memory. Tried to allocate 80.00 GiB"
    assert events[-1]["result"]["status"] == "oom"


QUANT = ["quant.enabled=true", "quant.flat_scheme=gptq_int6", "quant.crawler_scheme=int8",
         "quant.passthrough_max_numel=256", "quant.gptq_calib_seqs=4", "quant.gptq_calib_seq_len=32",
         "quant.zstd_level=3"]


def _relative_distance(state: dict[str, Any], ref: dict[str, Any]) -> float:
    """||state - ref|| / ||ref|| over every floating tensor the two share."""
    num = den = 0.0
    for k, v in state.items():
        if k in ref and v.is_floating_point():
            num += float((v.float() - ref[k].float()).pow(2).sum())
            den += float(ref[k].float().pow(2).sum())
    return (num / den) ** 0.5 if den else float("nan")


def test_the_exported_weights_are_the_ema_weights_when_ema_is_on(tiny_cfg: Callable[..., Any],
                                                                  tmp_path: Path,
                                                                  read_trial: Callable[..., Any]) -> None:
    """With a decay this close to 1 the average barely leaves the initial weights, while training moves the
    raw ones far: the artifact must hold the former (what was evaluated), not the latter."""
    import torch

    from clowncar.model import build_model
    from clowncar.worker.artifact import load_artifact

    base = ("train.iterations=6", "eval.stride=0", *QUANT)
    raw_cfg = tiny_cfg(*base)
    ema_cfg = tiny_cfg(*base, "train.ema=true", "train.ema_decay=0.999999", "train.ema_start_step=0")
    assert _trial(raw_cfg, tmp_path / "raw", read_trial)[0] == 0
    code, result, _ = _trial(ema_cfg, tmp_path / "ema", read_trial)
    assert code == 0 and result["evaluated_weights"] == "ema"
    torch.manual_seed(ema_cfg.train.seed)  # the worker seeds this way before building the model
    init = build_model(ema_cfg).state_dict()
    ema_state, _ = load_artifact(tmp_path / "ema" / "model.ptz")
    raw_state, _ = load_artifact(tmp_path / "raw" / "model.ptz")
    moved = _relative_distance(raw_state, init)
    kept = _relative_distance(ema_state, init)
    assert moved > 0.1, moved  # training moved the raw weights
    assert kept < 0.05 and kept < moved / 4, (kept, moved)  # the export is the average: quantization error only


def test_gptq_calibrates_on_the_start_of_the_training_stream_never_on_validation(
        tiny_cfg: Callable[..., Any], tmp_path: Path, read_trial: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The calibration tokens handed to the export are the first tokens of the training shards; validation
    tokens would leak the scored data into the quantizer and lower the reported BPB."""
    import numpy as np

    import clowncar.worker.artifact as artifact
    from clowncar.data.stream import TokenStream, load_validation_tokens

    seen: list[np.ndarray] = []
    real = artifact.export_artifact

    def recording_export(model: Any, cfg: Any, calib_tokens: Any, path: Any, tokenizer_sha256: Any) -> dict[str, Any]:
        seen.append(np.asarray(calib_tokens).reshape(-1).copy())
        return real(model, cfg, calib_tokens, path, tokenizer_sha256)

    monkeypatch.setattr(artifact, "export_artifact", recording_export)
    cfg = tiny_cfg("train.iterations=2", "eval.stride=0", *QUANT)
    code, _, _ = _trial(cfg, tmp_path / "t", read_trial)
    assert code == 0 and len(seen) == 1
    data = Path(cfg.data.dataset)
    n = cfg.quant.gptq_calib_seqs * cfg.quant.gptq_calib_seq_len
    train_start = TokenStream(sorted(data.glob("fineweb_train_*.bin"))).take(n)
    assert seen[0].tolist() == train_start.tolist()
    val = load_validation_tokens(sorted(data.glob("fineweb_val_*.bin")), 1)
    assert seen[0][:64].tolist() != val[:64].tolist()
