"""The micro-crawler sweep log (`sweep_micro_crawler.log`): one trial per `RESULTS` block.

A block reads `val_loss`, `val_bpb`, `params`, `flat_params: N (F blocks, MLP Mx)`, `crawler_params: N (C blocks
xL, MLP Mx)`, `effective_depth`, `dim`, `steps: S (C:c N:n)`, `time: Ts`, `avg_ms: Xms/step`, `log: logs/<run
id>.tsv`, `peak_vram: V MiB`. The run id (the TSV name) is the trial key. Stored as: config `model.num_flat_layers`,
`model.num_crawler_layers`, `model.crawler_loops`, `model.mlp_mult` (flat), `model.crawler_mlp_mult`,
`model.model_dim`; result `val_loss`, `val_bpb`, `params`, `flat_params`, `crawler_params`, `effective_depth`,
`model_dim`, `steps`, `c_steps`, `n_steps`, `train_seconds`, `step_avg_ms`, `peak_mem_bytes`, and `label` (the
`>>> CONFIG` title). The `step:` progress line and the `>>> val_bpb` echo repeat the block's numbers (rounded).
"""

from __future__ import annotations

import re

from clowncar.store.importers.base import LegacyFormatError, LegacyTrial, Parsed, Skipped, fnum, set_path

FORMAT = "micro-crawler-log"
_CONFIG = re.compile(r"^>>> CONFIG (\d+): (.*)$")
_FIELD = re.compile(r"^([a-z_]+):\s+(.*)$")
_BLOCKS = re.compile(r"^([\d,]+) \((\d+) blocks(?: x(\d+))?, MLP ([\d.]+)x\)$")
_STEPS = re.compile(r"^(\d+) \(C:(\d+) N:(\d+)\)$")
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
    return LegacyTrial(key=key, config=config, result=result)


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
