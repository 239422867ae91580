"""Run one trial as a process: set up (distributed, device, threads, output files), call `train`, and turn
every way it can end into a status in result.json and an exit code. Nothing here is Ray-specific."""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import Any

import torch

from clowncar.config import TrialConfig
from clowncar.data.paths import make_output_dir
from clowncar.errors import (
    EXIT_BAD_INPUT,
    EXIT_DIVERGED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_OOM,
    ClownCarError,
    ConfigError,
)
from clowncar.events import EVENTS_FILE, RESULT_FILE, EventWriter, write_json_atomic
from clowncar.worker.dist import cpu_threads, init_distributed, shutdown_distributed
from clowncar.worker.heap import keep_freed_memory
from clowncar.worker.progress import TrialLog
from clowncar.worker.provenance import peak_memory_bytes, provenance

RUN_FILES = (EVENTS_FILE, "train.log", RESULT_FILE)
"""What each run writes into its folder as it goes (model.ptz comes only at the end)."""
EXIT_CODES = {"ok": EXIT_OK, "error": EXIT_FAILED, "diverged": EXIT_DIVERGED, "oom": EXIT_OOM,
              "rejected": EXIT_BAD_INPUT}
RESULT_KEYS = (
    "status", "reason", "val_loss", "val_bpb", "sliding_val_loss", "sliding_val_bpb", "q_val_loss", "q_val_bpb",
    "q_sliding_val_loss", "q_sliding_val_bpb", "quant_gap", "tokens_scored", "bytes_scored", "params",
    "model_dim", "steps", "c_steps", "n_steps", "tokens_seen", "train_seconds", "eval_seconds", "quant_seconds",
    "peak_mem_bytes", "artifact_bytes", "artifact_file_bytes", "artifact_code_bytes", "artifact_code_rule",
    "over_cap", "artifact_path", "artifact_sha256", "evaluated_weights", "quant_schemes", "provenance",
    "late_qat_step", "warmdown_start_step", "warmdown_set_by", "startup_seconds", "startup",
)


def summary_line(result: dict[str, Any]) -> str:
    """One line for people: status, then the headline numbers that were measured."""
    parts = [f"status: {result['status']}" + (f" ({result['reason']})" if result["reason"] else "")]
    for key in ("val_bpb", "sliding_val_bpb", "q_val_bpb", "q_sliding_val_bpb"):
        if result.get(key) is not None:
            parts.append(f"{key}:{result[key]:.6f}")
    if result.get("steps"):
        prov = result.get("provenance")
        model = (prov.get("config") or {}).get("model") if isinstance(prov, dict) else None
        gpt = isinstance(model, dict) and model.get("arch") == "gpt"  # no crawler: C- and N-steps mean nothing
        split = "" if gpt else f" ({result['c_steps']} C / {result['n_steps']} N)"
        parts.append(f"steps:{result['steps']}{split} in {result['train_seconds']:.1f}s")
    return " ".join(parts)


def device_type(cfg: TrialConfig) -> str:
    """cpu or cuda: `auto` takes the GPU when there is one. ConfigError for a device or kernel this machine
    cannot give the trial, so that it is refused before its folder, data or model exist."""
    wanted = cfg.train.device
    if wanted == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is cuda but no CUDA device is available")
    kind = ("cuda" if torch.cuda.is_available() else "cpu") if wanted == "auto" else wanted
    if kind == "cpu":
        check_cpu_kernels(cfg, f"train.device is {wanted}" + (" and this machine has no CUDA device"
                                                                 if wanted == "auto" else ""))
    return kind


def check_cpu_kernels(cfg: TrialConfig, why_cpu: str) -> None:
    """ConfigError when the model asks for a CUDA-only kernel (flash-attn, fla's DeltaNet) and runs on the CPU,
    where its first forward pass would fail after the model was built (and, full size, compiled)."""
    m = cfg.model
    if m.attn_backend == "flash":
        raise ConfigError(f"model.attn_backend=flash needs a CUDA device, but {why_cpu}: use attn_backend auto "
                          "or sdpa on the CPU")
    if m.deltanet_backend == "fla" and m.delta_net_heads:
        raise ConfigError(f"model.deltanet_backend=fla needs a CUDA device, but {why_cpu}: use deltanet_backend "
                          "auto or torch on the CPU")


def run_trial(cfg: TrialConfig, out_dir: Path) -> int:
    """Train and evaluate one trial into out_dir; returns the exit code (0 ok, 1 error, 3 diverged, 4 oom, and
    2 when bad input (data, tokenizer, a vocabulary too small for them) stopped it before its first step)."""
    from clowncar.worker.startup import StartupClock
    from clowncar.worker.train import Diverged, train  # torch-heavy imports only once a trial really runs

    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} exists and is not a directory")
    kind = device_type(cfg)  # a device this machine lacks: refused before the folder is made
    make_output_dir(out_dir, "the trial directory")  # a path that cannot be one: bad input, before any work
    result: dict[str, Any] = dict.fromkeys(RESULT_KEYS)
    try:
        info = init_distributed(kind)
    except Exception as err:  # no process group: no rank to report through, so say it here and stop
        result.update(status="error", reason=f"joining the process group failed: {type(err).__name__}: {err}")
        write_json_atomic(out_dir / RESULT_FILE, result)
        return EXIT_CODES["error"]
    device = torch.device("cuda", info.local_rank) if kind == "cuda" else torch.device("cpu")
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size))
    torch.set_num_threads(cpu_threads(local_world))
    if device.type == "cpu":
        keep_freed_memory()  # multi-MB activations would otherwise page-fault back in every step
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    result["provenance"] = provenance(cfg, device, info.world_size)
    if info.is_main:
        for name in RUN_FILES:  # a rerun into the same folder starts clean
            (out_dir / name).unlink(missing_ok=True)
    events = EventWriter(out_dir / EVENTS_FILE) if info.is_main else None
    log = TrialLog(out_dir / "train.log" if info.is_main else None, cfg.train.iterations,
                   cfg.train.max_wallclock_seconds)
    status, reason, code = "ok", None, None
    try:
        train(cfg, out_dir, info, device, events, log, result, StartupClock())
    except ClownCarError as err:  # bad input: before the first step it is a rejected run, exit 2
        status, reason = "error", f"{type(err).__name__}: {err}"
        if result["steps"] is None:  # after it (a corrupt shard at step 500) it is a failed run like any other
            status, code = "rejected", err.exit_code
    except Diverged as err:
        status, reason = "diverged", str(err)
    except torch.OutOfMemoryError as err:
        status, reason = "oom", str(err).splitlines()[0] if str(err) else "out of memory"
    except MemoryError:
        status, reason = "oom", "host out of memory"
    except Exception as err:  # the trial must end with a status, whatever went wrong
        status, reason = "error", f"{type(err).__name__}: {err}"
        log.line(traceback.format_exc().rstrip(), echo=False)
    result.update(status=status, reason=reason)
    if result["peak_mem_bytes"] is None:
        result["peak_mem_bytes"] = peak_memory_bytes(device)
    log.line(summary_line(result), echo=code is None)  # a rejected run is said once, by whoever called it
    # Rank 0 writes the result; another rank that failed on its own writes one too if there is none yet, so a
    # failure on any rank leaves a reason behind even when rank 0 is killed while waiting for it.
    if info.is_main or (status != "ok" and not (out_dir / RESULT_FILE).exists()):
        write_json_atomic(out_dir / RESULT_FILE, result)
    if events is not None:
        events.write("final", result=result)
        events.close()
    log.close()
    if status == "ok":
        shutdown_distributed()  # after a failure a peer may be gone: tearing down could block on it
    return EXIT_CODES[status] if code is None else code
