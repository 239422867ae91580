"""Cadence trace TSVs (header `step type train_loss val_bpb step_ms [gravity]`): one trial per file.

`type` F (the crawler fired all its loops) becomes a step of kind `C`, N stays `N`; EVAL rows (only `val_bpb`
filled) become eval rows (mode `standard`, weights `raw`). A step row's `elapsed_ms` is the running sum of
`step_ms` (training time so far, as the worker's events count it). Result: `steps` (last step), `c_steps`,
`n_steps`, `train_seconds` (sum of step_ms), and `val_bpb` only when an EVAL row closes the run (an EVAL at or
after the last step); a trace that stops between evals has no final val_bpb (none is made up from an earlier
EVAL: the weights went on training after it), and the import line says so with the gap and the last EVAL's
value. The `gravity` column is empty in every known file and is not stored.

Config: the step kinds are the cadence. `train.cadence` and `train.cadence_offset` are stored when one cadence c
and offset o give every step row its kind as clowncar fires the crawler (`worker.schedule.is_crawl_step`: C on
the steps s with (s - 1) % c == o; cadence 0 when no step is a C-step): every step F is cadence 1, F and N in turn
from step 1 cadence 2. A trace whose kinds follow no one cadence (or with a single C-step, which several fit)
stores no config. Without it every trace had the empty config, one config hash for runs of different cadences.
"""

from __future__ import annotations

from clowncar.store.importers.base import LegacyFormatError, LegacyTrial, Parsed, Skipped, fnum, set_path
from clowncar.worker.schedule import is_crawl_step

FORMAT = "cadence-tsv"
HEADER = ["step", "type", "train_loss", "val_bpb", "step_ms"]
KINDS = {"F": "C", "N": "N"}


def detect(text: str) -> bool:
    return [name.strip() for name in text.split("\n", 1)[0].split("\t")][:5] == HEADER


def parse(text: str, name: str, key: str) -> Parsed:
    lines = text.split("\n")
    complete = text.endswith("\n")
    if complete:
        lines.pop()
    out = Parsed(FORMAT, [])
    width = len(lines[0].rstrip("\r").split("\t"))
    steps: list[dict[str, object]] = []
    evals: list[dict[str, object]] = []
    elapsed = 0.0
    for lineno, raw in enumerate(lines[1:], start=2):
        fields = raw.rstrip("\r").split("\t")
        last = lineno == len(lines)
        if not raw.strip():
            out.blank_lines += 1
            continue
        if fields[:5] == HEADER:
            out.skipped.append(Skipped(lineno, "repeated header", raw))
            continue
        if last and not complete and len(fields) < width:
            raise LegacyFormatError(f"{name}: last line {lineno} has {len(fields)} of {width} fields "
                                    "(truncated file?)")
        try:
            if len(fields) < 5:
                raise ValueError(f"{len(fields)} fields")
            step, kind = int(fields[0]), fields[1].strip()
            if kind == "EVAL":
                bpb = fnum(fields[3])
                if bpb is None:
                    raise ValueError("EVAL row without val_bpb")
                evals.append({"step": step, "val_bpb": bpb, "mode": "standard", "weights": "raw"})
                continue
            if kind not in KINDS:
                raise ValueError(f"type {kind!r} is not F, N or EVAL")
            step_ms = fnum(fields[4])
            elapsed += step_ms or 0.0
            steps.append({"step": step, "kind": KINDS[kind], "train_loss": fnum(fields[2]),
                          "elapsed_ms": round(elapsed, 6) if step_ms is not None else None})
        except ValueError as err:
            if last and not complete:
                raise LegacyFormatError(f"{name}: last line {lineno} is cut short (truncated file?)") from None
            out.skipped.append(Skipped(lineno, f"unreadable row ({err})", raw))
    if not steps:
        raise LegacyFormatError(f"{name}: no step rows")
    last_step = max(int(s["step"]) for s in steps)  # type: ignore[call-overload]
    result: dict[str, object] = {
        "status": "ok", "reason": None, "steps": last_step,
        "c_steps": sum(s["kind"] == "C" for s in steps), "n_steps": sum(s["kind"] == "N" for s in steps),
        "train_seconds": round(elapsed / 1000, 6),
    }
    final = [e for e in evals if int(e["step"]) >= last_step]  # type: ignore[call-overload]
    if final:
        result["val_bpb"] = final[-1]["val_bpb"]
    config: dict[str, dict[str, object]] = {}
    for dotted, value in _cadence(steps).items():
        set_path(config, dotted, value)
    trial = LegacyTrial(key=key, config=config, result=result, steps=steps, evals=evals)
    trial.notes += [] if final else [_no_final(evals, last_step)]
    out.trials.append(trial)
    return out


def _no_final(evals: list[dict[str, object]], last_step: int) -> str:
    if not evals:
        return f"no final val_bpb: the trace has no EVAL row (it stops at step {last_step})"
    last = max(evals, key=lambda e: int(e["step"]))  # type: ignore[call-overload]
    gap = last_step - int(last["step"])  # type: ignore[call-overload]
    return (f"no final val_bpb: the trace stops at step {last_step}, {gap} steps after its last EVAL (step "
            f"{last['step']}, val_bpb {last['val_bpb']}, kept as an eval row)")


def _cadence(steps: list[dict[str, object]]) -> dict[str, int]:
    """{train.cadence, train.cadence_offset} that give every step row its kind, or {} when no one cadence does."""
    crawl = [int(s["step"]) for s in steps if s["kind"] == "C"]  # type: ignore[call-overload]
    if not crawl:
        return {"train.cadence": 0}
    if len(crawl) < 2:
        return {}
    cadence = crawl[1] - crawl[0]
    if cadence < 1:  # a step row repeated, or rows out of order
        return {}
    offset = (crawl[0] - 1) % cadence
    kinds_fit = (is_crawl_step(int(s["step"]), cadence, offset) == (s["kind"] == "C")  # type: ignore[call-overload]
                 for s in steps)
    if all(kinds_fit):
        return {"train.cadence": cadence, "train.cadence_offset": offset}
    return {}
