"""The Frugendorff v2 sweep CSV (`autoresearch_frug2_results.csv`): one trial per row.

| CSV column | stored as |
| --- | --- |
| run_id | the trial's key (uid `<file stem>/<run_id>`) |
| timestamp | started_at (the file has no zone; read as UTC) |
| val_bpb | result `val_bpb` |
| cadence, cadence_offset | config `train.cadence`, `train.cadence_offset` |
| num_unique_layers | config `model.num_crawler_layers` (the fractal model loops every unique layer) |
| num_loops | config `model.crawler_loops` |
| mlp_mult | config `model.mlp_mult` |
| model_dim | config `model.model_dim` (0 means auto-sized: `auto`) |
| grad_clip | config `train.grad_clip_norm` |
| lr | config `legacy.lr` (one AdamW rate; clowncar has no single-rate field) |
| steps, f_steps, n_steps | result `steps`, `c_steps`, `n_steps` |
| avg_ms, time_s, params | result `step_avg_ms`, `train_seconds`, `params` |
| reasoning, notes | result `reasoning`, `notes` (text) |

Empty cells stay missing: nothing is filled in from what other rows or the producer script would suggest.

To run a row again (`clowncar sweep rerun --base`), its `model.mlp_mult` is read as `model.crawler_mlp_mult`
(`RERUN_AS`): the fractal trainer's stack is shared blocks only, so that is the width the column set. The stored
key stays as it is: a trial's id is a digest of what was stored, and a store filled earlier must recognize the
file when it is imported again.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

from clowncar.store.importers.base import (
    LegacyFormatError,
    LegacyTrial,
    Parsed,
    Skipped,
    fnum,
    inum,
    set_path,
)

FORMAT = "frugendorff-csv"
RERUN_AS = {"model.mlp_mult": "model.crawler_mlp_mult"}
HEADER = ["timestamp", "run_id", "val_bpb", "cadence", "cadence_offset", "num_unique_layers", "num_loops", "lr",
          "grad_clip", "mlp_mult", "model_dim", "steps", "f_steps", "n_steps", "avg_ms", "time_s", "params",
          "reasoning", "notes"]


def detect(text: str) -> bool:
    first = text.split("\n", 1)[0].strip().split(",")
    return first[:3] == HEADER[:3] and "num_loops" in first


def _trial(row: dict[str, str]) -> LegacyTrial:
    config: dict[str, dict[str, object]] = {}
    set_path(config, "train.cadence", inum(row["cadence"]))
    set_path(config, "train.cadence_offset", inum(row["cadence_offset"]))
    set_path(config, "model.num_crawler_layers", inum(row["num_unique_layers"]))
    set_path(config, "model.crawler_loops", inum(row["num_loops"]))
    set_path(config, "model.mlp_mult", fnum(row["mlp_mult"]))
    dim = inum(row["model_dim"])
    set_path(config, "model.model_dim", "auto" if dim == 0 else dim)
    set_path(config, "train.grad_clip_norm", fnum(row["grad_clip"]))
    set_path(config, "legacy.lr", fnum(row["lr"]))
    result: dict[str, object] = {"status": "ok", "reason": None, "val_bpb": fnum(row["val_bpb"])}
    for src, dst, conv in (("steps", "steps", inum), ("f_steps", "c_steps", inum), ("n_steps", "n_steps", inum),
                           ("avg_ms", "step_avg_ms", fnum), ("time_s", "train_seconds", fnum),
                           ("params", "params", inum)):
        value = conv(row[src])
        if value is not None:
            result[dst] = value
    for key in ("reasoning", "notes"):
        if row[key].strip():
            result[key] = row[key].strip()
    started = None
    if row["timestamp"].strip():
        started = dt.datetime.fromisoformat(row["timestamp"].strip()).replace(tzinfo=dt.UTC).timestamp()
    return LegacyTrial(key=row["run_id"].strip(), config=config, result=result, started_at=started)


def parse(text: str, name: str) -> Parsed:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        rows = list(reader)
    except csv.Error as err:
        raise LegacyFormatError(f"{name}: line {reader.line_num}: {err} (truncated file?)") from None
    header = [h.strip() for h in rows[0]]
    missing = [h for h in HEADER if h not in header]
    if missing:
        raise LegacyFormatError(f"{name}: header lacks column(s) {', '.join(missing)}")
    out = Parsed(FORMAT, [], per_trial_identity=True)
    seen: set[str] = set()
    for lineno, fields in enumerate(rows[1:], start=2):
        if not any(f.strip() for f in fields):
            out.blank_lines += 1
            continue
        if len(fields) != len(header):
            if lineno == len(rows) and not text.endswith("\n"):
                raise LegacyFormatError(f"{name}: last line {lineno} has {len(fields)} of {len(header)} "
                                        "fields (truncated file?)")
            out.skipped.append(Skipped(lineno, f"{len(fields)} fields, header has {len(header)}",
                                       ",".join(fields)))
            continue
        row = dict(zip(header, fields, strict=True))
        try:
            trial = _trial(row)
        except ValueError as err:
            if lineno == len(rows) and not text.endswith("\n"):
                raise LegacyFormatError(f"{name}: last line {lineno} is cut short (truncated file?)") from None
            out.skipped.append(Skipped(lineno, f"unreadable value ({err})", ",".join(fields)))
            continue
        if trial.result["val_bpb"] is None:
            out.skipped.append(Skipped(lineno, "no val_bpb (run without a result)", ",".join(fields)))
            continue
        if not trial.key or trial.key in seen:
            out.skipped.append(Skipped(lineno, f"missing or repeated run_id {trial.key!r}", ",".join(fields)))
            continue
        seen.add(trial.key)
        out.trials.append(trial)
    if not out.trials:
        raise LegacyFormatError(f"{name}: no result rows")
    return out
