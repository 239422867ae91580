"""Training logs (the stdout of Parameter Golf's `train_gpt.py` and of other trainers): one trial per run.

Every line is read with the one grammar of `lines.py`; what a line holds decides what it becomes:

- a step counter and a train metric (`step:20/20000 train_loss:3.21 train_time:940ms step_avg:47ms`,
  `20/20000 train_loss: 3.21 train_time: 0.8m tok/s: 8e6`, `step:5/10 loss:3.2 t:900ms`,
  `step:5/10 [JEPA] train_loss:3.2`, `step:5/10 fitness:-3.0`, `step 5/10 | loss 3.2`): a step row with
  `train_loss` (`train_loss` or `loss`), `elapsed_ms` (`train_time`, `t`, `time`: ms, s or m), `lr_scale`
  (`lr_mul`, `lr_scale`), `phase` (the `[tag]`) and `tokens` (step x `train_batch_tokens`);
- a step counter and `val_bpb` (`step:4000/20000 val_loss:2.15 val_bpb:1.27`, `4000/20000 val_loss: 2.67
  val_bpb: 1.16`): an eval row (mode standard, raw weights);
- `val_bpb` and no counter (`final_int6_sliding_window_exact val_loss:1.89 val_bpb:1.12`,
  `quantized_ttt_phased val_loss:2.32 val_bpb:1.06 eval_time:416500ms`, `legal_ttt_exact ...`): a named eval,
  its own metric with its eval mode (see `finals.py`); the last one of the run is its headline;
- header and summary fields (`seed:1337`, `  iterations: 20000`, `seed=42 model_dim=768 ...`,
  `model_params:17059912`, `final_eval_mode:sliding_window stride:64`, `stopping_early: ...`, `Serialized model
  int8+zlib: N bytes`, `Code size: N bytes`, `Total submission size int6+brotli: N bytes`, `peak memory
  allocated: N MiB`): config (`train.*`, `model.*`, `eval.stride`, the first value of each) and result fields.
  A named eval line that names its stride (`final_sliding_window_eval_exact stride:256 ...`, `final_sliding ...
  (stride=16, T=0.90)`) gives `eval.stride` (the last such line of the run), over any header value: that line
  produced the number. The artifact's bytes come from every form of byte line the records print (see
  `_MODEL_BYTES`): `artifact_bytes` is the total printed for the compressed model, never the unquantized
  checkpoint's `Total submission size: N bytes` printed before it. The ternary and binary records print
  `params:73685840 L:10 d:768 h:8 kv:4 ws:8 ga:1 s:42` (short keys, read on that line only), `artifact:15.92MB
  ... code:70853` and `budget:15993853/16000000 ... FITS` (the total; the model is the total less the code).
- `eval_seconds` sums the eval time of each measurement once: a line that prints an earlier measurement again
  (`repeats`, see `finals.py`) gives that measurement's time, not a second one.

Any line may start with a unix or ISO time stamp (the first one becomes the trial's start time); fields may be
`k:v`, `k: v` or `k=v`, in any order, with extra fields (listed as not stored). Script source printed into the
log, torchrun/NCCL noise, warm-up steps, banners and tables are skipped, each with its reason; a step number
seen twice in one run is skipped with a reason too (the store keeps one row per step).

Runs: a step counter that goes back (or a new total) starts a new run, so a file holding several runs gives
one trial per run, each with its own steps; header lines after the previous run's last step or eval go to the new
run. A run whose step and eval lines repeat an earlier run's line for line is the same run printed twice (two
records do this): its lines are skipped as a copy. A run that ends with no named eval, before its last step
(`N < M`) and without `stopping_early`, was cut off: the whole file is refused. A last line without a line end is
accepted only when it is a complete log line (a named eval whose val_loss and val_bpb carry the same number of
decimals). A file with no step line is not a training log (an evaluation-only log says what it holds).
"""

from __future__ import annotations

import re
from typing import Any

from clowncar.store.importers.base import (
    LegacyFormatError,
    LegacyTrial,
    NotATrainingLog,
    Parsed,
    Skipped,
    set_path,
)
from clowncar.store.importers.finals import mode_of, named_eval, result_keys
from clowncar.store.importers.lines import Line, parse_line

FORMAT = "training-log"
SETTINGS: dict[str, tuple[str, type]] = {
    "seed": ("train.seed", int), "train_batch_tokens": ("train.train_batch_tokens", int),
    "train_seq_len": ("train.train_seq_len", int), "iterations": ("train.iterations", int),
    "warmup_steps": ("train.warmup_steps", int), "max_wallclock_seconds": ("train.max_wallclock_seconds", float),
    "matrix_lr": ("train.matrix_lr", float), "scalar_lr": ("train.scalar_lr", float),
    "num_heads": ("model.num_heads", int), "num_kv_heads": ("model.num_kv_heads", int),
    "num_layers": ("model.num_layers", int), "model_dim": ("model.model_dim", int),
    "vocab_size": ("model.vocab_size", int), "mlp_mult": ("model.mlp_mult", float),
    "eval_stride": ("eval.stride", int)}
TRAIN_KEYS = ("train_loss", "loss", "fitness")
STEP_KEYS = {"train_loss", "loss", "val_loss", "val_bpb", "train_time", "t", "time", "elapsed", "lr_mul",
             "lr_scale"}
_NOISE = re.compile(r"^(?:[WIE]\d{4} |NCCL|\[W|\[rank|\*{5}|Setting OMP_NUM_THREADS|Running: |W\d{4})|NCCL")
_TABLE = re.compile(r"^[|+=-]")
# Byte lines, in every form the records print. A model line names its scheme (`Serialized model int6+zstd: N
# bytes`, `INT7+zlib model: N bytes`) or is the unquantized checkpoint's (`Serialized model: N bytes`, `Raw model:
# N bytes`); the code counts as it is submitted (`Code size: N`, `Code size (compressed): N`, `| Code: N bytes`).
# A total (`Total submission size int6+brotli: N bytes`, `Total submission size: N bytes`, `| Total submission: N
# bytes`) is the artifact's when it names a scheme or follows a compressed model's line; a bare total after the
# unquantized model's line is that checkpoint's size, not the artifact's.
_MODEL_BYTES = re.compile(r"^(?:Serialized model(?: (?P<scheme>\S+))?|(?P<label>\S+) model): (?P<n>\d+) bytes")
_CODE_BYTES = re.compile(r"(?:^|\| )Code(?: size)?(?: \(compressed\))?: (\d+) bytes")
_TOTAL_BYTES = re.compile(r"(?:^|\| )Total submission(?: size)?(?: (\S+))?: (\d+) bytes")
_PEAK = re.compile(r"^peak memory allocated: (\d+) MiB")
# The ternary/binary records' header and size lines: `params:73685840 L:10 d:768 h:8 kv:4 ws:8 ga:1 s:42`,
# `artifact:15.92MB ternary:N(NB) fp:N(NB) code:70853`, `budget:15993853/16000000 (15.99/16.00MB) FITS`.
SHORT_KEYS = {"l": "model.num_layers", "d": "model.model_dim", "h": "model.num_heads", "kv": "model.num_kv_heads",
              "s": "train.seed"}
_BUDGET = re.compile(r"^budget:(\d+)/\d+ ")
_SHORT_CODE = re.compile(r" code:(\d+)$")
_COUNT = re.compile(r"(?:^|[\s|])params:(\d{1,3}(?:,\d{3})+|\d+)(?![\d.,])")


def detect(text: str) -> bool:
    """Any text may be a training log: this parser is the fallback and says itself when it is not one."""
    return True


def _kind(ln: Line) -> str:
    """step | final | setting, or `skip:<reason>`."""
    if _NOISE.search(ln.body):
        return "skip:torchrun/NCCL noise"
    if ln.code:
        return "skip:script source"
    if ln.step is not None:
        if any(ln.num(k) is not None for k in TRAIN_KEYS) or ln.num("val_bpb") is not None:
            return "step"
        return "skip:progress line without a train or val metric"
    if ln.num("val_bpb") is not None:
        return "final"
    if any(k.endswith("warmup_step") for k in ln.fields):
        return "skip:compile warm-up step (weights restored after it)"
    if ln.fields or _CODE_BYTES.search(ln.body):  # `Code size (compressed): N bytes` holds no `key: value`
        return "setting"
    if _TABLE.match(ln.body):
        return "skip:separator or table"
    return "skip:text without a value (banner or prose)"


class _Run:
    """What one run of the file collects while its lines are read."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.config: dict[str, Any] = {}
        self.result: dict[str, Any] = {"status": "ok", "reason": None}
        self.steps: list[dict[str, Any]] = []
        self.evals: list[dict[str, Any]] = []
        self.named: list[dict[str, Any]] = []
        self.named_lines: list[Line] = []  # the line of each named eval (how precisely it wrote its numbers)
        self.step_lines: dict[int, int] = {}
        self.val_lines: dict[int, int] = {}
        self.last: Line | None = None
        self.mode = "standard"
        self.stopped = False
        self.started_at: float | None = None
        self.seed: int | None = None
        self.tie_lr: float | None = None
        self.eval_stride: int | None = None  # the stride the last eval line that names one was scored at
        self.raw_model = False  # the last model-size line was the unquantized checkpoint's

    @property
    def max_step(self) -> int:
        return max([*self.step_lines, *self.val_lines, 0])


def _setting(ln: Line, run: _Run) -> bool:
    """Read a header / summary line into the run; False when it holds nothing we store."""
    stored = False
    for key, (dotted, conv) in SETTINGS.items():
        if (value := ln.num(key)) is not None:  # `k:v`, `k: v` or `k=v` (`seed=42 model_dim=768 ...`)
            section, name = dotted.split(".")
            if name not in run.config.get(section, {}):
                set_path(run.config, dotted, conv(value))
            stored = True
    if run.seed is None and "seed" in run.config.get("train", {}):
        run.seed = run.config["train"]["seed"]
    if "model_params" in ln.fields and (value := ln.num("model_params")) is not None:
        run.result.setdefault("params", int(value))
        stored = True
    if _short_header(ln, run):
        stored = True
    if (value := ln.num("world_size")) is not None:
        run.result.setdefault("provenance", {})["world_size"] = int(value)
        stored = True
    if ln.fields.get("tie_embeddings") == "True" and (value := ln.num("embed_lr")) is not None:
        run.tie_lr = value
        stored = True
    if mode_key := next((k for k in ln.fields if k.endswith("eval_mode")), None):
        run.mode = mode_of(ln.fields[mode_key]) or run.mode
        if (stride := ln.num("stride")) is not None:
            set_path(run.config, "eval.stride", int(stride))
        stored = True
    if "stopping_early" in ln.fields:
        run.stopped = True
        if (ms := ln.ms("train_time")) is not None:
            run.result["train_seconds"] = ms / 1000
        stored = True
    if m := _PEAK.match(ln.body):
        run.result["peak_mem_bytes"] = int(m.group(1)) * 2**20
        stored = True
    return _byte_line(ln.body, run) or stored


def _short_header(ln: Line, run: _Run) -> bool:
    """The short keys of a `params:N L:N d:N ...` line (read on that line only: `d:` or `s:` elsewhere is not a
    width or a seed), which a `k=v` header line before it has said already when both are printed."""
    count = _COUNT.search(ln.body)  # the body: the fields split `params:36,915,884` at its commas
    if count is None or not ln.fields.keys() & SHORT_KEYS.keys():
        return False
    run.result.setdefault("params", int(count[1].replace(",", "")))  # `params:36,915,884` is one count
    for key, dotted in SHORT_KEYS.items():
        section, name = dotted.split(".")
        if (value := ln.num(key)) is not None and name not in run.config.get(section, {}):
            set_path(run.config, dotted, int(value))
    if run.seed is None and "seed" in run.config.get("train", {}):
        run.seed = run.config["train"]["seed"]
    if (value := ln.num("ws")) is not None:
        run.result.setdefault("provenance", {}).setdefault("world_size", int(value))
    return True


def _byte_line(body: str, run: _Run) -> bool:
    """Read the artifact's byte counts from a model / code / total line (see `_MODEL_BYTES`); False when the line
    holds none of them (an unquantized model's size is read only to know what a bare total after it counts)."""
    stored = False
    if m := _MODEL_BYTES.match(body):
        scheme = m["scheme"] or m["label"]
        run.raw_model = scheme is None or scheme.lower() == "raw"
        if not run.raw_model:
            run.result["artifact_file_bytes"] = int(m["n"])
            stored = True
    if m := _CODE_BYTES.search(body):
        run.result["artifact_code_bytes"] = int(m.group(1))
        stored = True
    if (m := _TOTAL_BYTES.search(body)) and (m.group(1) is not None or not run.raw_model):
        run.result["artifact_bytes"] = int(m.group(2))
        stored = True
    if body.startswith("artifact:") and (m := _SHORT_CODE.search(body)):  # the code beside the packed model
        run.result["artifact_code_bytes"] = int(m.group(1))
        stored = True
    if m := _BUDGET.match(body):  # code + compressed model, against the cap printed after the slash
        run.result["artifact_bytes"] = int(m.group(1))
        if (code := run.result.get("artifact_code_bytes")) is not None:  # `artifact:` printed the model in MB only
            run.result["artifact_file_bytes"] = int(m.group(1)) - code
        stored = True
    return stored


def _step(ln: Line, run: _Run, out: Parsed) -> None:
    train = next((v for k in TRAIN_KEYS if (v := ln.num(k)) is not None), None)
    step = ln.step or 0
    elapsed = ln.ms("train_time", "t", "time", "elapsed")
    for key in ln.fields.keys() - STEP_KEYS:
        out.unstored_fields[key] = out.unstored_fields.get(key, 0) + 1
    if train is not None:
        if step in run.step_lines:
            out.skipped.append(Skipped(ln.number, f"repeats step {step} of line {run.step_lines[step]}", ln.text))
        else:
            run.step_lines[step] = ln.number
            phase = ln.tags[0].split()[0][:10] if ln.tags and ln.tags[0].split() else None
            run.steps.append({"step": step, "train_loss": ln.num("train_loss", "loss"), "elapsed_ms": elapsed,
                              "lr_scale": ln.num("lr_mul", "lr_scale"), "phase": phase})
    if (bpb := ln.num("val_bpb")) is not None:
        if step in run.val_lines:
            out.skipped.append(Skipped(ln.number, f"repeats the eval at step {step} of line "
                                                  f"{run.val_lines[step]}", ln.text))
        else:
            run.val_lines[step] = ln.number
            run.evals.append({"step": step, "val_loss": ln.num("val_loss"), "val_bpb": bpb, "mode": "standard",
                              "weights": "raw"})
            if elapsed is not None:
                run.result["train_seconds_at_eval"] = elapsed / 1000


def _eval_ms(named: list[dict[str, Any]]) -> float | None:
    """The run's eval time: per measurement (a named eval and the lines that repeat it) the time of its last line
    that gives one (`ttt_sliding:done ... elapsed=405.0s` then `final_int6_ttt ... eval_time:405410ms` is one
    evaluation of 405.41 s); None when no line gives a time."""
    per_measurement: dict[int, float] = {}
    first_of: dict[str, int] = {}  # a repeat names the first line of its measurement
    for i, e in enumerate(named):
        if e["repeats"] is None:
            first_of[e["name"]] = i
        if e["eval_ms"] is not None:
            per_measurement[first_of[e["repeats"]] if e["repeats"] else i] = e["eval_ms"]
    return sum(per_measurement.values()) if per_measurement else None


def _trial(run: _Run, runs: int) -> LegacyTrial:
    res, last_step = run.result, run.max_step
    batch = run.config.get("train", {}).get("train_batch_tokens")
    for row in run.steps:
        row["tokens"] = row["step"] * batch if batch else None
    if run.tie_lr is not None:
        set_path(run.config, "train.tied_embed_lr", run.tie_lr)
    if run.eval_stride is not None:  # the eval line produced the number: its stride wins over the header's
        set_path(run.config, "eval.stride", run.eval_stride)
    at_eval = res.pop("train_seconds_at_eval", None)
    res["steps"] = last_step
    res.setdefault("train_seconds", at_eval)
    if batch:
        res["tokens_seen"] = last_step * batch
    trained = [e for e in run.evals if e["step"] > 0]
    if trained:
        res["val_loss"], res["val_bpb"] = trained[-1]["val_loss"], trained[-1]["val_bpb"]
    res.update(result_keys(run.named))
    if (eval_ms := _eval_ms(run.named)) is not None:
        res["eval_seconds"] = eval_ms / 1000
    if res.get("q_val_bpb") is not None and res.get("val_bpb") is not None:
        res["quant_gap"] = res["q_val_bpb"] - res["val_bpb"]
    res.setdefault("provenance", {})["run"] = f"{run.index} of {runs}"
    # the quantized evals also go to the eval table (one row per mode at the last step, as a worker writes them)
    last_of_mode = {e["mode"]: e for e in run.named if e["weights"] == "quantized"}
    run.evals += [{"step": last_step, "val_loss": e["val_loss"], "val_bpb": e["val_bpb"], "mode": e["mode"],
                   "weights": "quantized"} for e in last_of_mode.values()]
    for e in run.named:
        e["step"] = last_step
    return LegacyTrial(key=f"run{run.index}", config=run.config, result=res, seed=run.seed,
                       started_at=run.started_at, steps=run.steps, evals=run.evals, named_evals=run.named)


def _check_last_line(ln: Line, kind: str, where: str) -> None:
    """A last line without its line end must be a whole log line, or the file was cut while being written."""
    loss_decimals = ln.decimals("val_loss")
    if kind == "final" and loss_decimals is not None and ln.decimals("val_bpb") != loss_decimals:
        raise LegacyFormatError(
            f"{where}: last line {ln.number} has no line end and its val_bpb has {ln.decimals('val_bpb')} "
            f"decimals where its val_loss has {loss_decimals}: expected a whole eval line, found one "
            "cut short (truncated file?)")
    if kind.startswith("skip:") and kind != "skip:torchrun/NCCL noise":
        text = ln.text if len(ln.text) <= 60 else ln.text[:57] + "..."
        raise LegacyFormatError(f"{where}: last line {ln.number} has no line end and is not a whole log line "
                                f"(found {text!r}; expected a step, eval or summary line): truncated file?")


def _cut_off(run: _Run, where: str) -> str:
    last = run.last
    assert last is not None  # every run starts at a step line
    return (f"{where}: run {run.index} stops at step {run.max_step}/{last.total} (line {last.number}) "
            "with no final/eval line after it: expected training to reach its last step, a stopping_early "
            "line or a line such as `final_int8_zlib_roundtrip_exact val_loss:X val_bpb:X`; found none, so the "
            "log is cut off (run still going, or file truncated; --keep-cut-off stores it as a crashed trial)")


def _cut_off_trial(run: _Run, runs: int) -> LegacyTrial:
    """A cut-off run kept (`--keep-cut-off`): a crashed trial with its steps and no score, saying where it stops."""
    last = run.last
    assert last is not None
    trial = _trial(run, runs)
    trial.status = "crashed"
    trial.reason = (f"log cut off: run {run.index} stops at step {run.max_step}/{last.total} (line {last.number}) "
                    "with no final/eval line")
    trial.notes.append(f"run {run.index} is cut off at step {run.max_step}/{last.total}: stored as a crashed trial, "
                       "its steps kept, no score")
    return trial


def _split_runs(records: list[tuple[str, Line]]) -> list[list[tuple[str, Line]]]:
    """Group the file's records into runs: a step counter that goes back, or a new total, starts a run."""
    runs: list[list[tuple[str, Line]]] = [[]]
    last: Line | None = None
    for kind, ln in records:
        if kind == "step":
            if last is not None and ln.step is not None and last.step is not None and (
                    ln.step < last.step or ln.total != last.total):
                cur = runs[-1]
                cut = max(i for i, (k, _) in enumerate(cur) if k in ("step", "final")) + 1
                runs.append(cur[cut:])
                del cur[cut:]
            last = ln
        runs[-1].append((kind, ln))
    return runs


REPEAT = "a second copy of an earlier run (the log holds it twice)"


def _distinct_runs(groups: list[list[tuple[str, Line]]], out: Parsed) -> list[list[tuple[str, Line]]]:
    """Drop a run whose step and eval lines repeat an earlier run's, line for line (wall-clock times included):
    a log that a wrapper printed and then appended again holds one run, not two seed reruns of it."""
    seen: set[tuple[str, ...]] = set()
    kept = []
    for group in groups:
        lines = tuple(ln.text for kind, ln in group if kind in ("step", "final"))
        if lines in seen:
            out.skipped += [Skipped(ln.number, REPEAT, ln.text) for _, ln in group]
            continue
        seen.add(lines)
        kept.append(group)
    return kept


def _not_a_log(records: list[tuple[str, Line]]) -> str:
    finals = [ln for kind, ln in records if kind == "final"]
    if finals:
        last = finals[-1]
        return (f"not a training log: an evaluation-only log ({len(finals)} eval line(s), the last "
                f"`{last.name or 'val_bpb'}` val_bpb {last.fields.get('val_bpb')} at line {last.number}) with no "
                "training step lines")
    if any("bpb" in ln.text.lower() for _, ln in records):
        return "not a training log: it mentions bpb but holds no step or eval line we can read"
    return "not a training log: no step or eval lines"


def parse(text: str, where: str, keep_cut_off: bool = False) -> Parsed:
    """Parse a training log whole; `where` (the file's path) starts every error message. A cut-off run refuses the
    file, or with `keep_cut_off` becomes a crashed trial (for archives, where such a log was killed, not still
    being written)."""
    out = Parsed(FORMAT, [])
    lines = text.split("\n")
    complete = text.endswith("\n")
    if complete:
        lines.pop()
    records: list[tuple[str, Line]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            out.blank_lines += 1
            out.blank_at.add(number)
            continue
        ln = parse_line(number, raw)
        records.append((_kind(ln), ln))
    if not any(kind == "step" for kind, _ in records):
        raise NotATrainingLog(f"{where}: {_not_a_log(records)}")
    if not complete and records and records[-1][1].number == len(lines):
        _check_last_line(records[-1][1], records[-1][0], where)
    groups = _distinct_runs(_split_runs(records), out)
    runs: list[_Run] = []
    for index, group in enumerate(groups, start=1):
        run = _Run(index)
        for kind, ln in group:
            if run.started_at is None and ln.stamp is not None:
                run.started_at = ln.stamp
            if kind == "step":
                _step(ln, run, out)
                run.last = ln
            elif kind == "final":
                run.named.append(named_eval(ln, len(run.named), run.mode, run.named, run.named_lines))
                run.named_lines.append(ln)
                if (stride := ln.num("stride")) is not None:
                    run.eval_stride = int(stride)
            elif kind == "setting":
                if not _setting(ln, run):
                    out.skipped.append(Skipped(ln.number, "no value we store", ln.text))
            else:
                out.skipped.append(Skipped(ln.number, kind.removeprefix("skip:"), ln.text))
        runs.append(run)
    for run in runs:
        last = run.last
        finished = run.named or run.stopped or run is not runs[-1] or (
            last is not None and last.total is not None and run.max_step >= last.total)
        if not finished and not keep_cut_off:
            raise LegacyFormatError(_cut_off(run, where))
        out.trials.append(_trial(run, len(runs)) if finished else _cut_off_trial(run, len(runs)))
    out.skipped.sort(key=lambda s: s.line)
    return out
