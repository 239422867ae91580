"""The columns every exported trials table leads with, whatever wrote the trial (a sweep's worker or an import):
`bpb` (the trial's headline score), `bpb_metric` (the result key it came from), `eval_mode` (how it was scored:
standard, sliding, ttt, ...), `width`, `params`, `quant_gap` (post- minus pre-quantization BPB of one checkpoint)
and `quant_gap_mode` (the eval mode both sides of the gap were measured in). Each is left empty where the trial
does not record it; none is filled from a different kind of measurement."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

SUMMARY_COLUMNS = ("bpb", "bpb_metric", "eval_mode", "width", "params", "quant_gap", "quant_gap_mode")
HEADLINE_ORDER = (("q_sliding_val_bpb", "sliding"), ("q_val_bpb", "standard"), ("sliding_val_bpb", "sliding"),
                  ("val_bpb", "standard"))
"""A worker's headline: the post-quantization sliding-window score when measured (what a submission is scored on),
then the others (the analysis's order, clowncar/analysis/frames.py)."""


def _numeric(frame: pd.DataFrame, name: str) -> pd.Series:
    import pandas as pd

    if name not in frame.columns:
        return pd.Series(float("nan"), index=frame.index)
    return pd.to_numeric(frame[name], errors="coerce").astype(float)


def with_summary(trials: pd.DataFrame) -> pd.DataFrame:
    """`trials` (a `trials_frame`) with the summary columns inserted after `source`."""
    import pandas as pd

    out = trials.drop(columns=[c for c in SUMMARY_COLUMNS if c in trials.columns])
    idx = out.index
    bpb = pd.Series(float("nan"), index=idx)
    metric = pd.Series(None, index=idx, dtype=object)
    mode = pd.Series(None, index=idx, dtype=object)
    if "headline_bpb" in trials.columns:  # an imported log names its headline and its mode
        head = _numeric(trials, "headline_bpb")
        bpb, metric = head, metric.where(head.isna(), "headline_bpb")
        mode = mode.where(head.isna(), trials["headline_mode"].astype(object))
    for key, key_mode in HEADLINE_ORDER:
        v = _numeric(trials, key)
        fill = bpb.isna() & v.notna()
        bpb, metric, mode = bpb.where(~fill, v), metric.where(~fill, key), mode.where(~fill, key_mode)
    width = _numeric(trials, "model_dim")
    width = width.where(width > 0, _numeric(trials, "model.model_dim"))
    params = _numeric(trials, "params")
    stored = _numeric(trials, "quant_gap")  # the worker's and the importer's: standard eval
    standard = _numeric(trials, "q_val_bpb") - _numeric(trials, "val_bpb")
    sliding = _numeric(trials, "q_sliding_val_bpb") - _numeric(trials, "sliding_val_bpb")
    gap = stored.where(stored.notna(), standard)
    gap_mode = pd.Series(None, index=idx, dtype=object).where(gap.isna(), "standard")
    gap_mode = gap_mode.where(gap.notna() | sliding.isna(), "sliding")
    gap = gap.where(gap.notna(), sliding)
    summary = pd.DataFrame({"bpb": bpb, "bpb_metric": metric, "eval_mode": mode, "width": width,
                            "params": params.where(params > 0), "quant_gap": gap, "quant_gap_mode": gap_mode},
                           index=idx)
    at = list(out.columns).index("source") + 1 if "source" in out.columns else 0
    return pd.concat([out.iloc[:, :at], summary, out.iloc[:, at:]], axis=1)
