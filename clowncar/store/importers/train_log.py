"""Parameter Golf `train_gpt.py` logs (torchrun stdout): one trial per file.

Read: `step:N/M train_loss:L train_time:Tms step_avg:Ams` (step rows: elapsed_ms = T, tokens = N x
train_batch_tokens when the header states it), `step:N/M val_loss:L val_bpb:B ...` (eval rows, mode standard,
raw weights), and `final_int8_zlib_roundtrip_exact val_loss:L val_bpb:B` (an eval row of the quantized weights at
the last step; result `q_val_*`, or `q_sliding_val_*` after `final_eval_mode:sliding_window`). The header gives
config fields (`train.train_batch_tokens`, `train.train_seq_len`, `train.iterations`, `train.warmup_steps`,
`train.max_wallclock_seconds`, `train.seed`, `train.matrix_lr`, `train.scalar_lr`, `train.tied_embed_lr`,
`model.num_heads`, `model.num_kv_heads`, `eval.stride`) and results (`params`, `peak_mem_bytes`,
`artifact_file_bytes`, `artifact_code_bytes`, `artifact_bytes`, `train_seconds`, `eval_seconds`). `val_loss` /
`val_bpb` are the last pre-quantization eval; `quant_gap` is filled only when both evals use the same mode.
torchrun banners, NCCL warnings, warm-up steps and other lines are skipped, each with its reason. A log without
the final round-trip line is a cut-off run and is refused whole.
"""

from __future__ import annotations

import re
from typing import Any

from clowncar.store.importers.base import LegacyFormatError, LegacyTrial, Parsed, Skipped, set_path

FORMAT = "train-gpt-log"
_STEP = re.compile(r"^step:(\d+)/(\d+) train_loss:(\S+) train_time:([\d.]+)ms step_avg:([\d.]+)ms$")
_VAL = re.compile(r"^step:(\d+)/(\d+) val_loss:(\S+) val_bpb:(\S+) train_time:([\d.]+)ms")
_FINAL = re.compile(r"^final_int8_zlib_roundtrip_exact val_loss:(\S+) val_bpb:(\S+)$")
_FINAL_ROUNDED = re.compile(r"^final_int8_zlib_roundtrip val_loss:\S+ val_bpb:\S+ eval_time:([\d.]+)ms$")
_KV = re.compile(r"(\w+):(\S+)")
HEADER_CONFIG = {"train_batch_tokens": ("train.train_batch_tokens", int), "train_seq_len": ("train.train_seq_len", int),
                 "iterations": ("train.iterations", int), "warmup_steps": ("train.warmup_steps", int),
                 "max_wallclock_seconds": ("train.max_wallclock_seconds", float),
                 "matrix_lr": ("train.matrix_lr", float), "scalar_lr": ("train.scalar_lr", float),
                 "num_heads": ("model.num_heads", int), "num_kv_heads": ("model.num_kv_heads", int)}
_BYTES = {"Serialized model int8+zlib:": "artifact_file_bytes", "Code size:": "artifact_code_bytes",
          "Total submission size int8+zlib:": "artifact_bytes"}
_NOISE = ("NCCL", "[W", "W0", "[rank", "*****", "Setting OMP_NUM_THREADS")


def detect(text: str) -> bool:
    return bool(re.search(r"^step:\d+/\d+ (train_loss|val_loss):", text, re.M))


class _State:
    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.result: dict[str, Any] = {"status": "ok", "reason": None}
        self.steps: list[dict[str, Any]] = []
        self.evals: list[dict[str, Any]] = []
        self.seed: int | None = None
        self.sliding = False
        self.final: tuple[float, float] | None = None
        self.final_seconds: float | None = None


def _header(line: str, st: _State) -> str | None:
    """Consume a header or summary line; return a skip reason when it carries nothing we store."""
    pairs = dict(_KV.findall(line))
    if line.startswith("model_params:"):
        st.result["params"] = int(pairs["model_params"])
    elif line.startswith("seed:"):
        st.seed = int(pairs["seed"])
        set_path(st.config, "train.seed", st.seed)
    elif line.startswith("world_size:"):
        st.result.setdefault("provenance", {})["world_size"] = int(pairs["world_size"])
    elif line.startswith(("train_batch_tokens:", "attention_mode:", "tie_embeddings:")):
        for key, (dotted, conv) in HEADER_CONFIG.items():
            if key in pairs:
                set_path(st.config, dotted, conv(pairs[key]))
        if pairs.get("tie_embeddings") == "True" and "embed_lr" in pairs:
            set_path(st.config, "train.tied_embed_lr", float(pairs["embed_lr"]))
    elif line.startswith("final_eval_mode:"):
        st.sliding = pairs["final_eval_mode"] == "sliding_window"
        if "stride" in pairs:
            set_path(st.config, "eval.stride", int(pairs["stride"]))
    elif line.startswith("stopping_early:"):
        st.result["train_seconds"] = float(pairs["train_time"].removesuffix("ms")) / 1000
    elif m := re.match(r"^peak memory allocated: (\d+) MiB", line):
        st.result["peak_mem_bytes"] = int(m.group(1)) * 2**20
    elif any(line.startswith(p) for p in _BYTES):
        prefix = next(p for p in _BYTES if line.startswith(p))
        st.result[_BYTES[prefix]] = int(line[len(prefix):].split()[0])
    elif m := _FINAL_ROUNDED.match(line):
        st.final_seconds = float(m.group(1)) / 1000
        return None
    elif line.startswith(("Serialized model:", "Total submission size:")):
        return "size before quantization (the artifact is the int8+zlib file)"
    elif line.startswith(("val_bpb:enabled", "train_loader:", "val_loader:", "logs/")):
        return "paths on the original machine"
    else:
        return "not a metric this importer stores"
    return None


def _line(line: str, st: _State) -> str | None:
    if m := _STEP.match(line):
        step = int(m.group(1))
        st.steps.append({"step": step, "train_loss": float(m.group(3)), "elapsed_ms": float(m.group(4))})
    elif m := _VAL.match(line):
        st.evals.append({"step": int(m.group(1)), "val_loss": float(m.group(3)), "val_bpb": float(m.group(4)),
                         "mode": "standard", "weights": "raw"})
        st.result["train_seconds_at_eval"] = float(m.group(5)) / 1000
    elif m := _FINAL.match(line):
        st.final = (float(m.group(1)), float(m.group(2)))
    elif line.startswith(_NOISE) or "NCCL" in line:
        return "torchrun/NCCL noise"
    elif line.startswith("warmup_step:"):
        return "compile warm-up step (weights restored after it)"
    else:
        return _header(line, st)
    return None


def _finish(st: _State, name: str, key: str) -> LegacyTrial:
    if st.final is None:
        raise LegacyFormatError(f"{name}: no final_int8_zlib_roundtrip_exact line (run cut off or truncated file)")
    batch = st.config.get("train", {}).get("train_batch_tokens")
    for row in st.steps:
        row["tokens"] = row["step"] * batch if batch else None
    res = st.result
    at_eval = res.pop("train_seconds_at_eval", None)
    last_step = max([r["step"] for r in st.steps] + [e["step"] for e in st.evals])
    res["steps"] = last_step
    res.setdefault("train_seconds", at_eval)
    if batch:
        res["tokens_seen"] = last_step * batch
    raw = [e for e in st.evals if e["step"] > 0]
    if raw:
        res["val_loss"], res["val_bpb"] = raw[-1]["val_loss"], raw[-1]["val_bpb"]
    prefix = "q_sliding_val" if st.sliding else "q_val"
    res[f"{prefix}_loss"], res[f"{prefix}_bpb"] = st.final
    if raw and not st.sliding:
        res["quant_gap"] = st.final[1] - raw[-1]["val_bpb"]
    if st.final_seconds is not None:
        res["eval_seconds"] = st.final_seconds
    res["evaluated_weights"] = "quantized"
    st.evals.append({"step": last_step, "val_loss": st.final[0], "val_bpb": st.final[1],
                     "mode": "sliding" if st.sliding else "standard", "weights": "quantized"})
    return LegacyTrial(key=key, config=st.config, result=res, seed=st.seed, steps=st.steps, evals=st.evals)


def parse(text: str, name: str, key: str) -> Parsed:
    out = Parsed(FORMAT, [])
    st = _State()
    lines = text.split("\n")
    complete = text.endswith("\n")
    if complete:
        lines.pop()
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            out.blank_lines += 1
            continue
        if lineno == len(lines) and not complete and not (line.startswith(_NOISE) or "NCCL" in line):
            # a log is written line by line: a last line without its newline was cut mid-write
            raise LegacyFormatError(f"{name}: last line {lineno} has no line end (truncated file?)")
        try:
            reason = _line(line, st)
        except (ValueError, KeyError) as err:
            reason = f"unreadable ({err})"
        if reason is not None:
            out.skipped.append(Skipped(lineno, reason, line))
    out.trials.append(_finish(st, name, key))
    return out
