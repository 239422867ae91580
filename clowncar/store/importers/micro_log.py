"""The micro-crawler sweep log (`sweep_micro_crawler.log`): one trial per `RESULTS` block.

A block reads `val_loss`, `val_bpb`, `params`, `flat_params: N (F blocks, MLP Mx)`, `crawler_params: N (C blocks
xL, MLP Mx)`, `effective_depth`, `dim`, `steps: S (C:c N:n)`, `time: Ts`, `avg_ms: Xms/step`, `log: logs/<run
id>.tsv`, `peak_vram: V MiB`. The run id (the TSV name) is the trial key. Stored as: config `model.num_flat_layers`,
`model.num_crawler_layers`, `model.crawler_loops`, `model.mlp_mult` (flat), `model.crawler_mlp_mult`,
`model.model_dim`; result `val_loss`, `val_bpb`, `params`, `flat_params`, `crawler_params`, `effective_depth`,
`model_dim`, `steps`, `c_steps`, `n_steps`, `train_seconds`, `step_avg_ms`, `peak_mem_bytes`, and `label` (the
`>>> CONFIG` title). The `step:` progress line and the `>>> val_bpb` echo repeat the block's numbers (rounded).

Two settings the block does not print are read from its numbers, so that configs that differ in them do not share
a config hash and `sweep rerun` runs them as they ran:
- the trigram: `params` minus the blocks (`flat_params`, `crawler_params`), the tied embedding (1024 x dim) and,
  with a crawler, the loop offsets ((loops + 1) x dim) leaves 0 without a trigram (`model.trigram_vocab_size: 0`)
  or exactly the trainer's 8192 x 128 table, its 128 x dim projection and its scale with one
  (`model.trigram_vocab_size: 8192`, `trigram_dim: 128`, `trigram_zero_init: true`). The label is no guide: the
  6-flat control says nothing of a trigram and has one. The trainer zero-initialised table and projection, so
  the trigram never learned (docs/seed_sweeps.md); stored is what the run had, and its rerun has the same dead
  trigram. Any other remainder records no trigram key and says so in the import line.
- the cadence: `train.cadence` is the one c whose C-step count over `steps` at offset 0 (the trainer's), ceil(steps
  / c), is the block's C count (0 when there is none); not stored when no c, or several, give it.
Both are left out of the trial's id (`LegacyTrial.derived`): they follow from values the id digests already.
"""

from __future__ import annotations

import re

from clowncar.store.importers.base import LegacyFormatError, LegacyTrial, Parsed, Skipped, fnum, set_path

FORMAT = "micro-crawler-log"
_CONFIG = re.compile(r"^>>> CONFIG (\d+): (.*)$")
_FIELD = re.compile(r"^([a-z_]+):\s+(.*)$")
_BLOCKS = re.compile(r"^([\d,]+) \((\d+) blocks(?: x(\d+))?, MLP ([\d.]+)x\)$")
_STEPS = re.compile(r"^(\d+) \(C:(\d+) N:(\d+)\)$")
VOCAB = 1024
"""The trainer's vocabulary (sp1024): the tied embedding holds VOCAB x dim parameters."""
TRIGRAM_VOCAB, TRIGRAM_DIM = 8192, 128
"""The trigram of `sweep_micro_crawler.sh` (`--trigram-vocab 8192 --trigram-dim 128`); the trainer zero-initialised
its table and projection."""
REQUIRED = ("val_loss", "val_bpb", "params", "flat_params", "crawler_params", "effective_depth", "dim", "steps",
            "time", "avg_ms", "log")
_ECHO = (re.compile(r"^step:\d+/\d+ \[[CN]\] loss:"), re.compile(r"^>>> val_bpb:"))


def detect(text: str) -> bool:
    return "MICRO CRAWLER SWEEP" in text[:2000] or bool(re.search(r"^RESULTS — ", text, re.M))


def _number(text: str) -> float:
    value = fnum(re.sub(r"(ms/step|ms|s|MiB)$", "", text.strip()))
    if value is None:
        raise ValueError("empty")
    return value


def _trial(label: str, fields: dict[str, str]) -> LegacyTrial:
    flat, crawl, steps = (_BLOCKS.match(fields["flat_params"]), _BLOCKS.match(fields["crawler_params"]),
                          _STEPS.match(fields["steps"]))
    if not (flat and crawl and steps):
        raise ValueError("flat_params, crawler_params or steps not in the expected form")
    key = re.sub(r"\.tsv$", "", fields["log"].strip().rsplit("/", 1)[-1])
    dim = int(_number(fields["dim"]))
    config: dict[str, dict[str, object]] = {}
    set_path(config, "model.num_flat_layers", int(flat.group(2)))
    set_path(config, "model.num_crawler_layers", int(crawl.group(2)))
    set_path(config, "model.crawler_loops", int(crawl.group(3)) if crawl.group(3) else None)
    set_path(config, "model.mlp_mult", float(flat.group(4)))
    set_path(config, "model.crawler_mlp_mult", float(crawl.group(4)))
    set_path(config, "model.model_dim", dim)
    result: dict[str, object] = {
        "status": "ok", "reason": None, "label": label,
        "val_loss": _number(fields["val_loss"]), "val_bpb": _number(fields["val_bpb"]),
        "params": int(_number(fields["params"])), "flat_params": int(flat.group(1).replace(",", "")),
        "crawler_params": int(crawl.group(1).replace(",", "")),
        "effective_depth": int(_number(fields["effective_depth"])), "model_dim": dim,
        "steps": int(steps.group(1)), "c_steps": int(steps.group(2)), "n_steps": int(steps.group(3)),
        "train_seconds": _number(fields["time"]), "step_avg_ms": _number(fields["avg_ms"]),
    }
    if "peak_vram" in fields:
        result["peak_mem_bytes"] = int(_number(fields["peak_vram"]) * 2**20)
    trial = LegacyTrial(key=key, config=config, result=result)
    _derive_trigram(trial, loops=int(crawl.group(3) or 0), crawlers=int(crawl.group(2)))
    _derive_cadence(trial)
    return trial


def _derive_trigram(trial: LegacyTrial, loops: int, crawlers: int) -> None:
    """The trigram setting from what the parameter count leaves after blocks, embedding and loop offsets."""
    r = trial.result
    dim = int(r["model_dim"])
    rest = r["params"] - r["flat_params"] - r["crawler_params"] - VOCAB * dim - (loops + 1 if crawlers else 0) * dim
    trigram: dict[str, object] = {"model.trigram_vocab_size": TRIGRAM_VOCAB, "model.trigram_dim": TRIGRAM_DIM,
                                  "model.trigram_zero_init": True}
    found = ({"model.trigram_vocab_size": 0} if rest == 0
             else trigram if rest == TRIGRAM_VOCAB * TRIGRAM_DIM + TRIGRAM_DIM * dim + 1 else None)
    if found is None:
        trial.notes.append(f"the parameter count leaves {rest:,} parameters that are neither no trigram nor the "
                           f"trainer's {TRIGRAM_VOCAB} x {TRIGRAM_DIM} one: the trigram setting is not recorded")
        return
    for key, value in found.items():
        set_path(trial.config, key, value)
        trial.derived.append(key)


def _derive_cadence(trial: LegacyTrial) -> None:
    """`train.cadence` from the C-step count: the trainer fires on steps s with (s - 1) % c == 0."""
    steps, c_steps = int(trial.result["steps"]), int(trial.result["c_steps"])
    if c_steps + int(trial.result["n_steps"]) != steps:
        return
    fits = [c for c in range(steps + 1) if (-(-steps // c) if c else 0) == c_steps]
    if len(fits) == 1:
        set_path(trial.config, "train.cadence", fits[0])
        trial.derived.append("train.cadence")


def parse(text: str, name: str) -> Parsed:
    out = Parsed(FORMAT, [], per_trial_identity=True)
    label, fields, start, in_results = "", {}, 0, False
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()

    def close(lineno: int) -> None:
        nonlocal in_results, fields
        if label and not in_results:
            out.skipped.append(Skipped(start, "config has no RESULTS block (run failed?)", label))
        elif in_results:
            missing = [k for k in REQUIRED if k not in fields]
            if missing:
                raise LegacyFormatError(f"{name}: RESULTS block ending at line {lineno} lacks "
                                        f"{', '.join(missing)} (truncated file?)")
            try:
                out.trials.append(_trial(label, fields))
            except ValueError as err:
                raise LegacyFormatError(f"{name}: RESULTS block of {label!r}: {err}") from None
        in_results, fields = False, {}

    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            out.blank_lines += 1
            continue
        if m := _CONFIG.match(line):
            close(lineno - 1)
            label, start = m.group(2).strip(), lineno
        elif line.startswith("RESULTS — "):
            in_results, fields = True, {}
        elif in_results and (m := _FIELD.match(line)):
            fields[m.group(1)] = m.group(2)
        elif set(line) <= {"=", "-"}:
            out.skipped.append(Skipped(lineno, "separator", line))
        elif line.startswith(("MICRO CRAWLER SWEEP", "SWEEP COMPLETE", "Logs in ", "Final eval")):
            out.skipped.append(Skipped(lineno, "banner", line))
        elif any(p.match(line) for p in _ECHO):
            out.skipped.append(Skipped(lineno, "progress echo (the RESULTS block has the exact numbers)", line))
        else:
            out.skipped.append(Skipped(lineno, "unrecognized line", line))
    close(len(lines))
    if not out.trials:
        raise LegacyFormatError(f"{name}: no complete RESULTS block")
    if not text.endswith("\n") and "SWEEP COMPLETE" not in text:
        raise LegacyFormatError(f"{name}: ends mid-line without SWEEP COMPLETE (truncated file?)")
    out.skipped.sort(key=lambda s: s.line)  # a config without results is found when the next one starts
    return out
