"""Why a figure of the report is missing, in one line: the store field it reads (and the config key or result
that fills it) and how many of the runs record it. A reader of an imported sweep otherwise cannot tell a source
that never logged the value (the Frugendorff CSV has no per-step losses, quantized BPB, width or artifact size)
from an importer or a figure that dropped it. Each function answers for the `plots` function of the same name,
on the same inputs, and is called only when that function returned no figure."""

from __future__ import annotations

from typing import Any

import pandas as pd

from clowncar.analysis.frames import complete_rows


def _of(runs: pd.DataFrame) -> str:
    return f"{len(runs)} run" + ("" if len(runs) == 1 else "s")


def _recording(runs: pd.DataFrame, column: str) -> int:
    return int(runs[column].notna().sum()) if column in runs else 0


def _counts(runs: pd.DataFrame, first: tuple[str, str], second: tuple[str, str]) -> str:
    """'of the 6 runs, 0 record a gap and 6 a loop count' (', none both' when each is recorded somewhere)."""
    a, b = _recording(runs, first[0]), _recording(runs, second[0])
    verb = "records" if a == 1 else "record"
    return f"of the {_of(runs)}, {a} {verb} {first[1]} and {b} {second[1]}" + (", none both" if a and b else "")


def loss_curves(steps: pd.DataFrame | None) -> str:
    need = "needs per-step training losses (step rows with step and train_loss)"
    if steps is None or steps.empty:
        return f"{need}; none of the runs records a step row"
    absent = [c for c in ("trial_uid", "step", "train_loss") if c not in steps.columns]
    return f"{need}; the {len(steps)} step rows have no {', '.join(absent)}"


def eval_curves(evals: pd.DataFrame | None) -> str:
    from clowncar.analysis.curves import eval_curves as consistent

    need = ("needs 2 or more evals per run during training (eval rows with step and val_bpb; a clowncar sweep "
            "writes them when train.val_every > 0)")
    e = consistent(evals)
    if e.empty:
        return f"{need}; none of the runs records an eval row"
    return f"{need}; each of the {e['trial_uid'].nunique()} runs with eval rows has only one"


def quant_gap_vs_loops(runs: pd.DataFrame) -> str:
    return ("needs each run's quantization gap (results val_bpb and q_val_bpb, or sliding_val_bpb and "
            "q_sliding_val_bpb: BPB before and after quantization) and its loop count (model.crawler_loops); "
            + _counts(runs, ("quant_gap", "a gap"), ("loops", "a loop count")))


def bpb_vs_width(runs: pd.DataFrame) -> str:
    need = ("needs BPB at 2 or more model widths (result model_dim, or config model.model_dim when it is not "
            "auto)")
    with_bpb = complete_rows(runs, ["bpb"])
    widths = complete_rows(with_bpb, ["width"])["width"]
    if widths.empty:
        return f"{need}; none of the {_of(with_bpb)} with a BPB records its width"
    verb = "records" if len(widths) == 1 else "record"
    return f"{need}; the {_of(widths)} with both {verb} one width ({widths.iloc[0]:g})"


def pareto(runs: pd.DataFrame) -> str:
    return ("needs each run's artifact_bytes (the size of its saved, compressed model) beside its BPB; "
            + _counts(runs, ("artifact_bytes", "artifact_bytes"), ("bpb", "a BPB")))


def top_config_seeds(top: list[dict[str, Any]]) -> str:
    return "needs runs that record the report's metric (BPB); none does"
