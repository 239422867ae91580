"""The report's "data and environment" table: what every BPB was measured on (dataset, tokenizer, how many
validation tokens each run scored) and what it ran on (device, torch), read from the runs' configs and the
`provenance.*` columns of the trials frame. A BPB difference of 0.005 means one thing on 62M validation tokens and
another on 16,384; a reader of a published report sees which."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd

from clowncar.analysis.frames import finished, is_missing

NOT_RECORDED = "not recorded"
COLUMNS = ["item", "value", "runs"]
"""The table's columns in report.md/html; report.json keeps every row whole (`values`: each value's run count)."""


def environment(trials: pd.DataFrame | None) -> list[dict[str, Any]]:
    """One row per item over the finished runs: dataset, tokenizer, validation tokens scored, validation split,
    device, torch version. `value` is the one value all runs share, else each value with its run count; `runs`
    says how many runs record it."""
    runs = finished(trials) if trials is not None else pd.DataFrame()
    total = len(runs)
    rows = [_row("dataset", _values(runs, "data.dataset"), total),
            _row("tokenizer", _tokenizers(runs), total),
            _scored_row(runs, total),
            _row("validation split (tokens)", _values(runs, "provenance.data.val.tokens"), total),
            _row("device", _values(runs, "provenance.device"), total),
            _row("torch", _values(runs, "provenance.torch"), total)]
    cut = _cut_note(runs)
    if cut:
        rows[2]["value"] += f"; {cut}"
    return rows


def _values(runs: pd.DataFrame, column: str) -> list[str | None]:
    """Per run, the column's value as text (whole numbers without '.0'), None where the run does not record it."""
    if column not in runs:
        return [None] * len(runs)
    return [None if is_missing(v) else _text(v) for v in runs[column]]


def _tokenizers(runs: pd.DataFrame) -> list[str | None]:
    """Per run, the tokenizer's name with its sha256 where the run recorded the digest of the file it used."""
    names, digests = _values(runs, "data.tokenizer"), _values(runs, "provenance.data.tokenizer.sha256")
    out: list[str | None] = []
    for name, digest in zip(names, digests, strict=True):
        if name is None and digest is None:
            out.append(None)
        else:
            out.append(f"{name or 'unnamed'}" + (f" (sha256 {digest})" if digest else " (sha256 not recorded)"))
    return out


def _scored_row(runs: pd.DataFrame, total: int) -> dict[str, Any]:
    row = _row("validation tokens scored per run", _values(runs, "tokens_scored"), total)
    if len(row["values"]) > 1:
        row["value"] += (" (differs between runs: their BPBs are means over different validation text, so compare "
                         "runs that scored the same tokens)")
    return row


def _cut_note(runs: pd.DataFrame) -> str | None:
    """Where eval.max_tokens scored only the first part of the validation split: how many runs, and of how much."""
    if "eval.max_tokens" not in runs:
        return None
    limit = pd.to_numeric(runs["eval.max_tokens"], errors="coerce")
    split = pd.to_numeric(runs.get("provenance.data.val.tokens", pd.Series(float("nan"), index=runs.index)),
                          errors="coerce")
    limited = (limit > 0) & ~(split <= limit)  # a split no longer than the limit is scored whole
    if not limited.any():
        return None
    limits = ", ".join(_text(v) for v in sorted(limit[limited].unique()))
    of = (f" of a {', '.join(_text(v) for v in sorted(split[limited].dropna().unique()))}-token split"
          if split[limited].notna().any() else "")
    return (f"eval.max_tokens {limits} cut the validation split: {int(limited.sum())} of {len(runs)} runs scored only "
            f"its first {limits} tokens{of}")


def _row(item: str, values: list[str | None], total: int) -> dict[str, Any]:
    counts = Counter(v for v in values if v is not None)
    recorded = sum(counts.values())
    if not counts:
        value = NOT_RECORDED
    elif len(counts) == 1:
        value = next(iter(counts))
    else:
        value = "; ".join(f"{v} ({n} run{'' if n == 1 else 's'})" for v, n in sorted(counts.items()))
    return {"item": item, "value": value, "runs": f"{recorded} of {total}", "values": dict(sorted(counts.items()))}



def _text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)
