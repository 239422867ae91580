"""The worker's output contract: events.jsonl (one JSON object per line) and result.json.

The worker writes these; the orchestrator relays them to the head; the store persists them; nobody parses
text logs. This module is stdlib-only so that every side (worker, orchestrator, store) can import it.

Event records (every record has `event`):

| event | fields |
| --- | --- |
| `start` | `config_hash`, `world_size`, `params`, `model_dim`, `time` (unix seconds) |
| `startup` | once, after step 1: `startup_seconds` and `startup`, as in result.json |
| `step` | `step` (1-based), `kind` (`C` crawler loops fired / `N` single pass), `train_loss`, `lr_scale`, `phase` (`warmup`/`main`/`warmdown`), `elapsed_ms` (training time), `tokens` (seen so far) |
| `probe` | `step`, `probe_loss` (fixed held-out batch, same forward mode every time), `mode` (`C`/`N`) |
| `eval` | `step`, `val_loss`, `val_bpb`, `tokens_scored`, `bytes_scored`, `mode` (`standard`/`sliding`), `weights` (`raw`/`ema`/`quantized`) |
| `final` | `result`: the same dict as result.json |

result.json keys (numbers are None when not measured):
`status` (one of RESULT_STATUSES), `reason`, `val_loss`, `val_bpb`, `sliding_val_loss`, `sliding_val_bpb`
(pre-quantization), `q_val_loss`, `q_val_bpb`, `q_sliding_val_loss`, `q_sliding_val_bpb` (after the artifact
round trip), `quant_gap`, `tokens_scored`, `bytes_scored`, `params`, `model_dim`, `steps`, `c_steps`, `n_steps`,
`tokens_seen`, `train_seconds`, `eval_seconds`, `quant_seconds`, `peak_mem_bytes`, `artifact_bytes`,
`artifact_file_bytes`, `artifact_code_bytes`, `artifact_code_rule` (challenge | eval_path), `over_cap`,
`artifact_path` (the model.ptz file, absolute), `artifact_sha256` (of its bytes), `evaluated_weights`,
`quant_schemes`, `late_qat_step`, `warmdown_start_step` (the first LR warm-down step; None when none began),
`warmdown_set_by` (`wallclock` or `iterations`: the limit that timed it), `provenance`
(`git_commit`, `git_dirty`, `config`, `config_hash`, `torch`, `python`, the versions `numpy`, `zstandard`,
`sentencepiece`, `triton`, `flash_attn`, `flash_linear_attention` (null when not installed), `libzstd`, `cuda`,
`device`, `world_size`, `torch_threads` (torch.get_num_threads()), `omp_num_threads` (the variable, null when
unset), `seed`, `host`), `startup_seconds` (launch -> end of the first training step) and
`startup` (its phases in seconds: `launch`, `imports`, `data`, `model`, `optimizer`, `compile`, `first_step`;
`cpu_seconds`; `from` (`launch` or `process start`); `compile_mode`, `compiled_as`, `cuda_graphs`,
`compile_cache`, `compile_cache_hits`, `compile_cache_misses`; clowncar/worker/startup.py).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

# Worker outcomes; `rejected`: bad input (config, data, tokenizer) stopped the trial before its first step, and
# would stop it again. The orchestrator adds `crashed` (no result.json), `stopped` and `pruned`.
RESULT_STATUSES = ("ok", "diverged", "oom", "error", "rejected")
TRIAL_STATUSES = (*RESULT_STATUSES, "crashed", "stopped", "pruned", "running")

RESULT_METRICS = (
    "val_loss", "val_bpb", "sliding_val_loss", "sliding_val_bpb", "q_val_loss", "q_val_bpb", "q_sliding_val_loss",
    "q_sliding_val_bpb", "quant_gap", "tokens_scored", "bytes_scored", "params", "model_dim", "steps", "c_steps",
    "n_steps", "tokens_seen", "train_seconds", "eval_seconds", "quant_seconds", "peak_mem_bytes", "artifact_bytes",
    "artifact_file_bytes", "artifact_code_bytes",
)
"""The numbers of result.json: what a sweep's `objective.metric` may name."""

EVENTS_FILE = "events.jsonl"
RESULT_FILE = "result.json"
CONFIG_FILE = "trial.json"


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as None so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class EventWriter:
    """Appends one JSON line per event and flushes it, so a reader (or a crash) never sees half a record."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")

    def write(self, event: str, **fields: Any) -> None:
        self._fh.write(json.dumps(_clean({"event": event, **fields}), separators=(",", ":")) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(path: str | Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete records from byte `offset` on, and the offset after the last complete line.

    A line still being written (no trailing newline) is left for the next call, so a tailing reader
    never parses half a record."""
    p = Path(path)
    if not p.exists():
        return [], offset
    with p.open("rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    records = []
    for line in data[: end + 1].splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except (ValueError, RecursionError):
                continue  # a torn line from a killed writer (or garbage): skip it, never fail the reader
    return records, offset + end + 1


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON to a temporary name and rename it, so readers see the old file or the whole new one."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(_clean(obj), indent=2, sort_keys=True) + "\n")
    tmp.replace(p)


def read_result(path: str | Path) -> dict[str, Any] | None:
    p = Path(path)
    try:
        result = json.loads(p.read_text())
    except (OSError, ValueError, RecursionError):  # missing, not UTF-8, not JSON, nested too deeply
        return None
    return result if isinstance(result, dict) else None
