"""What the top-configs and Pareto tables say about the configs they show, beyond their BPB.

- A label the tables can tell apart: a run's label is built from its layout only (`2f+1cx2 cad1 mlp2 d64`), so a
  400-step config and a 30-step one, or one with a smaller size cap, print alike. Among the configs one table shows,
  those that share a label get the settings in which they differ (`iters 30`, `cap 20000`).
- Whether a run is over its size cap (the worker's `over_cap`, or its artifact bytes above its config's
  quant.size_cap_bytes, else the challenge's 16,000,000): such a result cannot be submitted.
- Beside each Pareto point (a single run) its config's mean over seeds: the point of a config run at several seeds,
  as in a rerun sweep, is its luckiest draw."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from clowncar.analysis.frames import finished
from clowncar.store.frames import CHALLENGE_CAP_BYTES  # the cap of a run that records no quant.size_cap_bytes

SHORT_NAMES = {"train.iterations": "iters", "quant.size_cap_bytes": "cap", "train.max_wallclock_seconds": "wallclock_s",
               "eval.max_tokens": "eval_tokens", "data.dataset": "data"}
"""Names of settings a sweep often varies, shorter than the key's last part; any other key is named by that."""
MOST_KEYS = 4
"""At most this many differing settings are named in a label; the rest are counted."""
OVER_CAP = "over its size cap ({bytes} bytes > {cap}): cannot be submitted"


def annotate(top: list[dict[str, Any]], front: list[dict[str, Any]], runs: pd.DataFrame,
             trials: pd.DataFrame | None, per_config: list[dict[str, Any]] | None = None) -> None:
    """Add to the rows in place: distinct labels (also to `per_config`, the seed-variance test's table, whose rows
    name their config and config_key), over-cap caveats, and each Pareto point's config mean."""
    configs = _config_settings(runs, trials)
    over = over_cap(runs, trials)
    key_of_run = dict(zip(runs["run_id"].astype(str), runs["config_key"].astype(str), strict=True))
    sweep_of = dict(zip(runs["config_key"].astype(str), runs["sweep"].astype(str), strict=True))
    for rows in (top, per_config or []):
        _distinguish(rows, "config", [str(r["config_key"]) for r in rows], configs, sweep_of)
    _distinguish(front, "label", [key_of_run.get(str(r["run_id"]), str(r["run_id"])) for r in front], configs,
                 sweep_of)
    caps = dict(zip(runs["run_id"].astype(str), over, strict=True))
    for row in top:
        ids = [i for p in row["per_seed"] for i in p["run_ids"]]
        bad = [caps[i] for i in ids if caps.get(i)]
        if bad:
            row["over_cap_runs"] = len(bad)
            text = bad[0] if len(ids) == 1 else f"{len(bad)} of {len(ids)} runs over their size cap: not submittable"
            row["caveat"] = "; ".join(t for t in (row.get("caveat"), text) if t)
    means = _config_means(runs)
    for row in front:
        row["over_cap"] = bool(caps.get(str(row["run_id"])))
        if row["over_cap"]:
            row["caveat"] = caps[str(row["run_id"])]
        seeds, mean = means.get(key_of_run.get(str(row["run_id"]), ""), (1, row["bpb"]))
        row["config_seeds"], row["config_mean_bpb"] = seeds, mean


def over_cap(runs: pd.DataFrame, trials: pd.DataFrame | None) -> list[str | None]:
    """Per run (in the run table's order), the over-cap caveat, or None for a run within its cap (or that records
    no artifact bytes and no over_cap)."""
    src = _finished_rows(runs, trials)
    flag = src.get("over_cap", pd.Series(None, index=src.index, dtype=object))
    cap = pd.to_numeric(src.get("quant.size_cap_bytes", pd.Series(math.nan, index=src.index)), errors="coerce")
    cap = cap.where(cap > 0, CHALLENGE_CAP_BYTES)
    # the cap a sweep held the trial to, where that was its spec's stricter constraint (trainable.stored_result)
    applied = pd.to_numeric(src.get("size_cap_applied", pd.Series(math.nan, index=src.index)), errors="coerce")
    cap = applied.where(applied > 0, cap)
    size = pd.to_numeric(runs["artifact_bytes"], errors="coerce").reset_index(drop=True)
    out: list[str | None] = []
    for said, c, b in zip(flag, cap, size, strict=True):
        if _flagged(said) or (b == b and b > c):  # b == b: the run records its artifact bytes
            out.append(OVER_CAP.format(bytes="unknown" if b != b else f"{int(b)}", cap=f"the cap of {int(c)}"))
        else:
            out.append(None)
    return out


def _finished_rows(runs: pd.DataFrame, trials: pd.DataFrame | None) -> pd.DataFrame:
    """The trials frame's rows of the run table's runs, in its order (`run_table` keeps the finished trials in
    order); an empty frame of the same length when there is none to read."""
    src = finished(trials).reset_index(drop=True) if trials is not None else pd.DataFrame()
    return src if len(src) == len(runs) else pd.DataFrame(index=range(len(runs)))


def _config_settings(runs: pd.DataFrame, trials: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    """Per config_key, the settings of its first run (every config section, the seed aside)."""
    src = _finished_rows(runs, trials)
    cols = [c for c in src.columns if c.startswith(("data.", "model.", "train.", "quant.", "eval.", "legacy."))
            and c != "train.seed"]
    out: dict[str, dict[str, Any]] = {}
    for key, (_, row) in zip(runs["config_key"].astype(str), src[cols].iterrows(), strict=True):
        out.setdefault(key, {c: _value_text(row[c]) for c in cols})
    return out


def _distinguish(rows: list[dict[str, Any]], field: str, keys: list[str], configs: dict[str, dict[str, Any]],
                 sweep_of: dict[str, str]) -> None:
    """Extend the label of rows that share one with another config by the settings in which their configs
    differ; labels already distinct stay as they are."""
    groups: dict[str, set[str]] = {}
    for row, key in zip(rows, keys, strict=True):
        groups.setdefault(str(row[field]), set()).add(key)
    extra: dict[str, str] = {}
    for members in groups.values():
        if len(members) > 1:
            extra.update({k: " ".join(words) for k, words in _told_apart(sorted(members), configs, sweep_of).items()})
    for row, key in zip(rows, keys, strict=True):
        if key in extra:
            row[field] = f"{row[field]} {extra[key]}"


def _told_apart(members: list[str], configs: dict[str, dict[str, Any]], sweep_of: dict[str, str],
                used: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """The words that tell `members` (configs of one label) apart: the settings in which they differ, then, for
    configs still alike in those (say nine at one LR beside a tenth at another), the settings in which those
    differ in turn; where no recorded setting differs (imported runs of other folders), where they came from."""
    settings = {k: configs.get(k, {}) for k in members}
    differ = [c for c in dict.fromkeys(c for s in settings.values() for c in s)
              if c not in used and len({s.get(c, "-") for s in settings.values()}) > 1]
    if not differ:
        sweeps = {sweep_of.get(k) for k in members}
        return {k: [sweep_of.get(k, k) if len(sweeps) == len(members) else f"config {k[:8]}"] for k in members}
    names = _short_names(differ)
    words = {k: [f"{names[c]} {settings[k].get(c, '-')}" for c in differ[:MOST_KEYS]] for k in members}
    alike: dict[tuple[str, ...], list[str]] = {}
    for k in members:
        alike.setdefault(tuple(words[k]), []).append(k)
    for tied in alike.values():
        if len(tied) > 1:  # the first settings leave them alike: what splits them next, not "+N more"
            for k, more in _told_apart(tied, configs, sweep_of, used | set(differ[:MOST_KEYS])).items():
                words[k] += more
        elif len(differ) > MOST_KEYS:
            words[tied[0]].append(f"+{len(differ) - MOST_KEYS} more")
    return words


def _short_names(columns: list[str]) -> dict[str, str]:
    """Each key's short name; the whole key where two differing keys would get one name."""
    short = {c: SHORT_NAMES.get(c, c.rsplit(".", 1)[-1]) for c in columns}
    clash = {n for n in short.values() if list(short.values()).count(n) > 1}
    return {c: (c if n in clash else n) for c, n in short.items()}


def _config_means(runs: pd.DataFrame) -> dict[str, tuple[int, float]]:
    """Per config_key, (seeds, mean BPB over them), the seed being the unit as in the top-configs table."""
    from clowncar.analysis.frames import complete_rows
    from clowncar.analysis.seeds import seed_units

    units = seed_units(complete_rows(runs, ["bpb", "config_key"]))
    grouped = units.groupby("config_key")["bpb"]
    return {str(k): (int(n), float(m)) for k, n, m in zip(grouped.size().index, grouped.size(), grouped.mean(),
                                                          strict=True)}


def _flagged(v: Any) -> bool:
    """The worker's over_cap as a truth value: True/1, never a missing value."""
    if v is None or isinstance(v, str):
        return False
    try:
        return not pd.isna(v) and bool(v)
    except (TypeError, ValueError):
        return False


def _value_text(v: Any) -> str:
    try:
        if pd.isna(v):
            return "-"
    except (TypeError, ValueError):
        pass
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):  # a whole float (a column with a gap) in full: 16000000, never 1.6e+07
        return str(int(v)) if v.is_integer() else f"{v:g}"
    return str(v)
