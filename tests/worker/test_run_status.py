"""How a trial process turns each way `train` can end into a status, a reason, result.json, train.log, the final
event and an exit code (clowncar/worker/run.py). `train` is replaced by a function that fills the result as a
real run would and then ends the chosen way, so each ending is tested in milliseconds; the real endings (a
divergence, an out-of-memory, missing data) run whole in tests/worker/test_trial.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from clowncar.config import TrialConfig
from clowncar.config_load import load_config
from clowncar.errors import ConfigError, DataError
from clowncar.events import EventWriter, read_events
from clowncar.worker import run as run_module
from clowncar.worker import train as train_module
from clowncar.worker.dist import DistInfo
from clowncar.worker.run import RESULT_KEYS, device_type, run_trial, summary_line
from clowncar.worker.startup import StartupClock
from clowncar.worker.train import Diverged

MEASURED = {"steps": 7, "c_steps": 2, "n_steps": 5, "train_seconds": 1.25, "val_bpb": 1.5, "q_val_bpb": 1.625}


def fake_train(monkeypatch: pytest.MonkeyPatch, error: BaseException | None, measured: dict[str, Any] | None = None,
               log_line: str | None = None) -> list[dict[str, Any]]:
    """Replace train: it records what it was given, fills `measured` into the result, writes `log_line` and
    raises `error` (or returns). Returns the list of calls."""
    calls: list[dict[str, Any]] = []

    def train(cfg: TrialConfig, out_dir: Path, info: DistInfo, device: torch.device, events: Any, log: Any,
              result: dict[str, Any], clock: Any = None) -> None:
        calls.append({"cfg": cfg, "out_dir": out_dir, "info": info, "device": device, "events": events, "log": log,
                      "result": result, "clock": clock})
        result.update(measured if measured is not None else MEASURED)
        if log_line:
            log.line(log_line, echo=False)
        if error is not None:
            raise error

    monkeypatch.setattr(train_module, "train", train)
    return calls


@pytest.fixture
def cfg() -> TrialConfig:
    return TrialConfig.model_validate({"model": {"vocab_size": 64}, "train": {"device": "cpu", "seed": 3}})


@pytest.fixture
def shutdowns(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(run_module, "shutdown_distributed", lambda: calls.append(1))
    return calls


def ended(out: Path) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """(result.json, train.log, the final event's result)."""
    events, _ = read_events(out / "events.jsonl")
    assert [e["event"] for e in events] == ["final"]
    return json.loads((out / "result.json").read_text()), (out / "train.log").read_text(), events[0]["result"]


def test_a_finished_trial_is_ok_with_exit_0_and_every_key(cfg: TrialConfig, tmp_path: Path, shutdowns: list[int],
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    calls = fake_train(monkeypatch, None)
    assert run_trial(cfg, tmp_path / "t") == 0
    result, log, final = ended(tmp_path / "t")
    assert set(result) == set(RESULT_KEYS) and result == final
    assert result["status"] == "ok" and result["reason"] is None and result["steps"] == 7
    assert result["provenance"]["config_hash"] == cfg.content_hash() and result["provenance"]["world_size"] == 1
    assert result["peak_mem_bytes"] > 1_000_000  # measured when train left it empty: this process's peak RSS
    line = "status: ok val_bpb:1.500000 q_val_bpb:1.625000 steps:7 (2 C / 5 N) in 1.2s"
    assert log == line + "\n" and capsys.readouterr().err == line + "\n"  # said once, on stderr too
    call = calls[0]
    assert call["device"] == torch.device("cpu") and call["info"] == DistInfo()
    assert call["cfg"] is cfg and call["out_dir"] == tmp_path / "t" and isinstance(call["clock"], StartupClock)
    assert isinstance(call["events"], EventWriter) and call["events"].path == tmp_path / "t" / "events.jsonl"
    assert (call["log"].total, call["log"].cap) == (cfg.train.iterations, cfg.train.max_wallclock_seconds)
    assert shutdowns == [1]


def test_a_peak_that_train_measured_is_kept(cfg: TrialConfig, tmp_path: Path, shutdowns: list[int],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    fake_train(monkeypatch, None, {**MEASURED, "peak_mem_bytes": 12345})
    run_trial(cfg, tmp_path)
    assert json.loads((tmp_path / "result.json").read_text())["peak_mem_bytes"] == 12345


ENDINGS = {  # error -> (status, reason, exit code)
    "diverged": (Diverged("train loss nan at step 4"), "diverged", "train loss nan at step 4", 3),
    "gpu-oom": (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB\nsee the docs"), "oom",
                "CUDA out of memory. Tried to allocate 2 GiB", 4),
    "gpu-oom-without-message": (torch.OutOfMemoryError(), "oom", "out of memory", 4),
    "host-oom": (MemoryError("anything"), "oom", "host out of memory", 4),
    "crash": (ValueError("boom"), "error", "ValueError: boom", 1),
    "bad-input-after-step-1": (DataError("shard 3 is corrupt"), "error", "DataError: shard 3 is corrupt", 1),
}


@pytest.mark.parametrize("error, status, reason, code", ENDINGS.values(), ids=ENDINGS.keys())
def test_each_ending_has_its_status_reason_and_exit_code(error: BaseException, status: str, reason: str, code: int,
                                                         cfg: TrialConfig, tmp_path: Path, shutdowns: list[int],
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    fake_train(monkeypatch, error)
    assert run_trial(cfg, tmp_path) == code
    result, log, final = ended(tmp_path)
    assert (result["status"], result["reason"]) == (status, reason) and final == result
    assert result["steps"] == 7 and result["val_bpb"] == 1.5  # what was measured before the end is kept
    summary = f"status: {status} ({reason}) val_bpb:1.500000"
    assert log.splitlines()[-1].startswith(summary) and capsys.readouterr().err.startswith(summary)
    assert shutdowns == []  # after a failure a peer may be gone: no teardown that could wait on it


def test_a_crash_leaves_its_traceback_in_train_log_only(cfg: TrialConfig, tmp_path: Path, shutdowns: list[int],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    fake_train(monkeypatch, KeyError("gone"))
    assert run_trial(cfg, tmp_path) == 1
    log = (tmp_path / "train.log").read_text().splitlines()
    assert log[0] == "Traceback (most recent call last):" and log[-2] == "KeyError: 'gone'"
    assert log[-1].startswith("status: error (KeyError: 'gone')")
    assert "Traceback" not in capsys.readouterr().err


def test_bad_input_before_step_1_exits_2_and_is_not_echoed(cfg: TrialConfig, tmp_path: Path, shutdowns: list[int],
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    fake_train(monkeypatch, ConfigError("model.vocab_size 64 is below the tokenizer's 320"), {})
    assert run_trial(cfg, tmp_path) == 2
    result, log, _ = ended(tmp_path)
    assert result["status"] == "rejected"  # not `error`: `sweep resume --retry-failed` leaves it as it ended
    assert result["reason"] == "ConfigError: model.vocab_size 64 is below the tokenizer's 320"
    assert log == "status: rejected (ConfigError: model.vocab_size 64 is below the tokenizer's 320)\n"
    assert capsys.readouterr().err == ""  # whoever called it says it once


def test_a_rerun_into_the_same_folder_starts_clean(cfg: TrialConfig, tmp_path: Path, shutdowns: list[int],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fake_train(monkeypatch, ValueError("first"), log_line="first run")
    run_trial(cfg, tmp_path)
    (tmp_path / "keep.txt").write_text("mine")
    fake_train(monkeypatch, None, log_line="second run")
    assert run_trial(cfg, tmp_path) == 0
    result, log, _ = ended(tmp_path)  # one final event: the old events file is gone
    assert result["status"] == "ok" and log.splitlines()[0] == "second run" and "first" not in log
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_an_out_path_that_is_a_file_is_bad_input(cfg: TrialConfig, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"^--out .*/f exists and is not a directory$"):
        run_trial(cfg, tmp_path / "f")


def test_a_missing_out_folder_is_made_with_its_parents(cfg: TrialConfig, tmp_path: Path, shutdowns: list[int],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fake_train(monkeypatch, None)
    assert run_trial(cfg, tmp_path / "a" / "b") == 0 and (tmp_path / "a" / "b" / "result.json").exists()


def test_a_failed_process_group_join_is_an_error_result(cfg: TrialConfig, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(kind: str) -> DistInfo:
        raise RuntimeError("connection refused")

    monkeypatch.setattr(run_module, "init_distributed", refuse)
    assert run_trial(cfg, tmp_path) == 1
    result = json.loads((tmp_path / "result.json").read_text())
    assert result == {**dict.fromkeys(RESULT_KEYS), "status": "error",
                      "reason": "joining the process group failed: RuntimeError: connection refused"}


@pytest.mark.parametrize("status_ok, existing, writes", [(True, False, False), (False, False, True),
                                                          (False, True, False)],
                         ids=["ok-rank-writes-nothing", "failed-rank-writes-when-none", "failed-rank-keeps-rank0s"])
def test_other_ranks_write_a_result_only_when_they_failed_and_none_is_there(
        status_ok: bool, existing: bool, writes: bool, cfg: TrialConfig, tmp_path: Path, shutdowns: list[int],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_module, "init_distributed", lambda kind: DistInfo(rank=1, local_rank=1, world_size=2))
    if existing:
        (tmp_path / "result.json").write_text('{"status": "ok"}')
    (tmp_path / "train.log").write_text("rank 0's\n")
    calls = fake_train(monkeypatch, None if status_ok else ValueError("rank 1 broke"))
    run_trial(cfg, tmp_path)
    assert calls[0]["events"] is None  # only rank 0 writes events and train.log
    assert (tmp_path / "train.log").read_text() == "rank 0's\n" and not (tmp_path / "events.jsonl").exists()
    result = json.loads((tmp_path / "result.json").read_text()) if (tmp_path / "result.json").exists() else None
    if writes:
        assert result is not None and result["reason"] == "ValueError: rank 1 broke"
    else:
        assert result == ({"status": "ok"} if existing else None)


def test_threads_follow_the_local_world_size(cfg: TrialConfig, tmp_path: Path, shutdowns: list[int],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    monkeypatch.setattr(run_module, "cpu_threads", lambda local: seen.append(local) or 1)
    fake_train(monkeypatch, None)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")
    run_trial(cfg, tmp_path)
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    monkeypatch.setattr(run_module, "init_distributed", lambda kind: DistInfo(world_size=5))
    run_trial(cfg, tmp_path)
    assert seen == [3, 5]


def test_summary_line_lists_what_was_measured() -> None:
    base = dict.fromkeys(RESULT_KEYS)
    assert summary_line({**base, "status": "ok"}) == "status: ok"
    assert summary_line({**base, "status": "oom", "reason": "host out of memory"}) == \
        "status: oom (host out of memory)"
    full = {**base, "status": "ok", "val_bpb": 1.23456789, "sliding_val_bpb": 1.2, "q_val_bpb": 1.3,
            "q_sliding_val_bpb": 1.25, "steps": 100, "c_steps": 25, "n_steps": 75, "train_seconds": 59.96}
    assert summary_line(full) == ("status: ok val_bpb:1.234568 sliding_val_bpb:1.200000 q_val_bpb:1.300000 "
                                  "q_sliding_val_bpb:1.250000 steps:100 (25 C / 75 N) in 60.0s")
    assert summary_line({**base, "status": "error", "reason": "x", "steps": 0, "val_bpb": 0.0}) == \
        "status: error (x) val_bpb:0.000000"  # a zero is a measurement; no steps is none
    gpt = {**full, "provenance": {"config": {"model": {"arch": "gpt"}}}}
    assert summary_line(gpt).endswith(" q_sliding_val_bpb:1.250000 steps:100 in 60.0s")  # no crawler, no C/N


@contextmanager
def tf32_off() -> Iterator[None]:
    """Both TF32 switches off inside, as they were after (torch's cuBLAS module refuses monkeypatch)."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_a_gpu_trial_runs_on_its_local_rank_with_tf32_on(cfg: TrialConfig, tmp_path: Path, shutdowns: list[int],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything CUDA-specific is replaced (no GPU here): what is checked is what run_trial asks for."""
    kinds: list[str] = []
    monkeypatch.setattr(run_module, "device_type", lambda c: "cuda")
    monkeypatch.setattr(run_module, "init_distributed", lambda kind: kinds.append(kind) or DistInfo(
        rank=3, local_rank=1, world_size=4))
    monkeypatch.setattr(run_module, "provenance", lambda c, device, world: {"device": str(device), "world": world})
    monkeypatch.setattr(run_module, "peak_memory_bytes", lambda device: 77)
    freed: list[bool] = []
    monkeypatch.setattr(run_module, "keep_freed_memory", lambda: freed.append(True))
    calls = fake_train(monkeypatch, ValueError("rank 3 broke"))
    with tf32_off():
        run_trial(cfg, tmp_path)
        assert torch.backends.cuda.matmul.allow_tf32 is True and torch.backends.cudnn.allow_tf32 is True
    assert kinds == ["cuda"] and calls[0]["device"] == torch.device("cuda", 1) and not freed
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["provenance"] == {"device": "cuda:1", "world": 4} and result["peak_mem_bytes"] == 77


def test_a_cpu_trial_keeps_freed_memory_and_leaves_tf32_alone(cfg: TrialConfig, tmp_path: Path,
                                                              shutdowns: list[int],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    kinds: list[str] = []
    monkeypatch.setattr(run_module, "init_distributed", lambda kind: kinds.append(kind) or DistInfo())
    freed: list[bool] = []
    monkeypatch.setattr(run_module, "keep_freed_memory", lambda: freed.append(True))
    fake_train(monkeypatch, None)
    with tf32_off():
        run_trial(cfg, tmp_path)
        assert torch.backends.cuda.matmul.allow_tf32 is False and torch.backends.cudnn.allow_tf32 is False
    assert kinds == ["cpu"] and freed == [True]


def test_device_type_takes_the_gpu_only_when_there_is_one(cfg: TrialConfig,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def on(device: str) -> TrialConfig:
        return cfg.model_copy(update={"train": cfg.train.model_copy(update={"device": device})})

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_type(on("auto")) == "cpu" and device_type(on("cpu")) == "cpu"
    with pytest.raises(ConfigError, match=r"^train\.device is cuda but no CUDA device is available$"):
        device_type(on("cuda"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_type(on("auto")) == "cuda" and device_type(on("cuda")) == "cuda"
    assert device_type(on("cpu")) == "cpu"


def test_a_device_this_machine_lacks_is_refused_before_the_trial_folder_is_made(
        cfg: TrialConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """walk 4, F9: `train.device=cuda` without CUDA used to leave an empty --out behind."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    on_cuda = cfg.model_copy(update={"train": cfg.train.model_copy(update={"device": "cuda"})})
    with pytest.raises(ConfigError, match=r"^train\.device is cuda but no CUDA device is available$"):
        run_trial(on_cuda, tmp_path / "t" / "u")
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("model, kernel", [
    ({"attn_backend": "flash"}, "attn_backend=flash"),
    ({"deltanet_backend": "fla", "delta_net_heads": 2, "arch": "crawler"}, "deltanet_backend=fla")])
def test_a_cuda_only_kernel_on_the_cpu_is_a_config_error_before_the_trial_folder_is_made(
        cfg: TrialConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: dict[str, Any],
        kernel: str) -> None:
    """walk 4, F10: a flash/fla backend on a CPU trial failed only after the model was built, with exit 1."""
    changed = cfg.model_copy(update={"model": cfg.model.model_copy(update=model)})

    def on(device: str) -> TrialConfig:
        return changed.model_copy(update={"train": changed.train.model_copy(update={"device": device})})

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device, why in (("cpu", "cpu"), ("auto", "auto and this machine has no CUDA device")):
        with pytest.raises(ConfigError, match=rf"^model\.{kernel} needs a CUDA device, but train\.device is "
                                              rf"{why}: use .* on the CPU$"):
            run_trial(on(device), tmp_path / device)
        assert not (tmp_path / device).exists()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine takes the same config
    assert device_type(on("auto")) == "cuda" and device_type(on("cuda")) == "cuda"
    with pytest.raises(ConfigError, match=rf"^model\.{kernel} needs a CUDA device, but train\.device is cpu:"):
        device_type(on("cpu"))


@pytest.mark.parametrize("model", [{"deltanet_backend": "fla", "delta_net_heads": 0},  # no DeltaNet to run it
                                   {"attn_backend": "sdpa", "deltanet_backend": "torch", "delta_net_heads": 2,
                                    "arch": "crawler"}])
def test_a_cpu_trial_takes_backends_that_run_on_the_cpu(cfg: TrialConfig, monkeypatch: pytest.MonkeyPatch,
                                                        model: dict[str, Any]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    changed = cfg.model_copy(update={"model": cfg.model.model_copy(update=model)})
    assert device_type(changed) == "cpu"


def test_a_trial_json_from_the_orchestrator_is_read_with_overrides_and_refuses_a_preset(tmp_path: Path) -> None:
    trial = tmp_path / "trial.json"
    sections = {"data": {}, "model": {"crawler_loops": 3}, "train": {}, "quant": {}, "eval": {}}  # every section
    trial.write_text(json.dumps({"config": sections, "trial_uid": "abc"}))
    cfg = load_config(trial, overrides=["train.seed=9"])
    assert cfg.model.crawler_loops == 3 and cfg.train.seed == 9
    with pytest.raises(ConfigError, match="a trial record holds its whole config"):  # a preset would change nothing
        load_config(trial, preset="tiny-cpu")
    bare = load_config(trial)
    assert bare.model.crawler_loops == 3 and bare.model.model_dim == 512 and bare.train.seed == TrialConfig().train.seed
    plain = tmp_path / "trial.yaml"
    plain.write_text("model:\n  crawler_loops: 2\n")
    assert load_config(plain, overrides=["model.inst_dim=0"]).model.inst_dim == 0
    assert load_config(plain).model.crawler_loops == 2
    on_preset = load_config(plain, preset="tiny-cpu")
    assert (on_preset.model.crawler_loops, on_preset.model.model_dim) == (2, 64)


def test_an_out_path_under_a_file_is_bad_input_naming_the_trial_directory(cfg: TrialConfig, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError) as err:
        run_trial(cfg, tmp_path / "f" / "sub")
    assert str(err.value) == (f"cannot create the trial directory {tmp_path / 'f' / 'sub'}: {tmp_path / 'f'} is a "
                              "regular file, not a directory")


def test_without_a_file_the_config_is_the_preset_with_the_overrides() -> None:
    from clowncar.config_load import from_dict
    from clowncar.overrides import apply_overrides
    from clowncar.presets import preset_dict

    cfg = load_config(None, "tiny-cpu", ["train.seed=7"])
    assert cfg == from_dict(apply_overrides(preset_dict("tiny-cpu"), ["train.seed=7"])) and cfg.train.seed == 7
    assert load_config(None, "tiny-cpu").model != load_config(None, overrides=[]).model  # the preset counts
