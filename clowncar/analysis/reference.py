"""Reference runs for test 1a: a run on the same token stream whose step kind never alternates.

The loader reads the training shards in order whatever the seed, so every run with the same shards and batch
sees the same tokens at step t, and every run of one cadence fires its C-steps on the same steps. A batch that
is harder than its neighbours raises the loss of all those runs at the same C-step: a share of the C-N
difference that every run has in common, which a t test across runs takes for signal. Subtracting the loss of
a run on the same stream at the same step removes it (reference/analysis_methods.md (1): r_t = loss_t -
loss_t^ref). The reference must not alternate itself (all N-steps, cadence 0, or all C-steps, cadence 1):
its own C/N difference would otherwise come back into the target's, with the opposite sign.

Among the references on a stream the closest is taken: the same seed, then the same model (every `model.*`
setting, the width as the run measured it: a sweep of `model_dim: auto` records "auto" for every width), then
the same number of loops, width, crawler blocks and flat blocks (the more alike the two models, the more alike
their response to a batch), then the same sweep, then the most steps in common. Runs that share a reference
share its own noise: the tests average them into one unit before the t test across runs
(`shared_steps.unit_members`; in `sweeps/signals.yaml` each reference serves a cadence-2 and a cadence-4 run of its
seed)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clowncar.analysis.frames import is_missing

STREAM_COLUMNS = ("data.dataset", "data.train_glob", "train.train_batch_tokens", "train.train_seq_len")
"""What fixes the tokens of step t: the shard set and how many tokens a step takes in sequences of what length
(the seed, the world size and the micro-batching do not change them)."""
CLOSENESS = ("train.seed", "model", "model.crawler_loops", "width", "model.num_crawler_layers",
             "model.num_flat_layers", "sweep")
"""Preferred agreements between a run and its reference, most important first (`model`: every model setting;
`width`: the measured width, else the configured one)."""


DECLARED_COLUMN = "stream_declared"
"""A trials-frame column (not part of the config): True where the user declared that the runs which do not
record their stream share one (`clowncar analyze --same-stream`)."""
DECLARED = "(declared)"


def declare_one_stream(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials, with every stream field a run does not record taken to be the same for all of them: the
    user's word that those runs read the same tokens at each step (an imported log records at most the batch
    size). What a run does record still has to match its reference's."""
    return trials.assign(**{DECLARED_COLUMN: True})


def declared_runs(trials: pd.DataFrame) -> int:
    """How many runs have a stream field filled in by `declare_one_stream`."""
    if DECLARED_COLUMN not in trials.columns:
        return 0
    keys = trials.reindex(columns=list(STREAM_COLUMNS))
    return int((keys.isna().any(axis=1) & trials[DECLARED_COLUMN].eq(True)).sum())


def stream_keys(trials: pd.DataFrame | None) -> dict[str, tuple[str, ...]]:
    """Run id -> its stream, for the runs that record every stream column, or whose missing ones were declared
    (an imported log that records none of them has an unknown stream and no reference)."""
    if trials is None or trials.empty or "trial_uid" not in trials.columns:
        return {}
    keys = trials.reindex(columns=list(STREAM_COLUMNS)).astype(object)
    if DECLARED_COLUMN in trials.columns:
        declared = trials[DECLARED_COLUMN].eq(True)
        keys.loc[declared] = keys.loc[declared].fillna(DECLARED)
    known = keys.notna().all(axis=1)
    return {str(uid): tuple(str(v) for v in row)
            for uid, row, ok in zip(trials["trial_uid"], keys.itertuples(index=False), known, strict=True) if ok}


def _closeness(trials: pd.DataFrame) -> dict[str, tuple[Any, ...]]:
    """Run id -> its `CLOSENESS` values (None where the run does not record one)."""
    width = _resolved_width(trials)
    model_cols = sorted(c for c in trials.columns if c.startswith("model."))
    out = {}
    for i, uid in enumerate(trials["trial_uid"]):
        row = trials.iloc[i]
        values: dict[str, Any] = {c: row.get(c) for c in CLOSENESS if c in trials.columns}
        values["width"] = width.iloc[i]
        model = {c: (width.iloc[i] if c == "model.model_dim" else row[c]) for c in model_cols}
        recorded = model and not all(is_missing(v) for v in model.values())
        values["model"] = repr(sorted(model.items())) if recorded else None
        values["sweep"] = row.get("sweep", row.get("sweep_name"))
        out[str(uid)] = tuple(values.get(c) for c in CLOSENESS)
    return out


def _resolved_width(trials: pd.DataFrame) -> pd.Series:
    """The width each run measured (result `model_dim`), else its configured one (NaN for `auto`)."""
    configured = pd.to_numeric(trials.get("model.model_dim", pd.Series(index=trials.index, dtype=float)),
                               errors="coerce")
    if "model_dim" not in trials.columns:
        return configured
    measured = pd.to_numeric(trials["model_dim"], errors="coerce")
    return measured.where(measured > 0, configured)



def _one_kind(g: dict[str, np.ndarray]) -> bool:
    return bool(g["c"].size) and (g["c"].min() == g["c"].max())


def pick_references(groups: dict[str, dict[str, np.ndarray]], trials: pd.DataFrame | None) -> dict[str, str]:
    """Run id -> its reference's run id, for every run with both step kinds that has a reference."""
    streams = stream_keys(trials)
    if not streams:
        return {}
    near = _closeness(trials)  # type: ignore[arg-type]  # streams is empty when trials is None
    refs = {rid for rid, g in groups.items() if _one_kind(g) and rid in streams}
    out: dict[str, str] = {}
    for rid, g in groups.items():
        if _one_kind(g) or rid not in streams:
            continue
        rank = {r: (*(_same(a, b) for a, b in zip(near[r], near[rid], strict=True)),
                    np.intersect1d(groups[r]["step"], g["step"]).size)
                for r in refs if streams[r] == streams[rid]}
        if rank:
            best = max(rank.values())
            out[rid] = min(r for r, k in rank.items() if k == best)  # ties: the first run id, for a stable choice
    return out


def _same(a: Any, b: Any) -> bool:
    return bool(not is_missing(a) and not is_missing(b) and str(a) == str(b))


def corrected(g: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The run at the steps both logged, its loss minus the reference's loss at the same step (`y`; the loss
    itself stays as `y_raw`)."""
    _, mine, theirs = np.intersect1d(g["step"], ref["step"], return_indices=True)
    out = {k: v[mine] for k, v in g.items()}  # its steps are now the common steps, in order
    out["y_raw"] = out["y"]
    out["y"] = g["y"][mine] - ref["y"][theirs]
    return out



def model_keys(trials: pd.DataFrame | None) -> dict[str, str | None]:
    """Run id -> its model (every model setting, the measured width) as one comparable value; None for a run
    that records no model setting."""
    if trials is None or trials.empty or "trial_uid" not in trials.columns:
        return {}
    model = CLOSENESS.index("model")
    return {rid: key[model] for rid, key in _closeness(trials).items()}


def reference_rows(coefs: dict[str, tuple[float, float]], refs: dict[str, str], trials: pd.DataFrame | None
                   ) -> list[dict[str, Any]]:
    """Per corrected run (`coefs`: run -> its C-N before and after the subtraction): its reference, whether that
    is the same model (None: not recorded), and the difference, which is what the reference run itself shows on
    the same steps with the same C/N labels (the fit is linear in the loss)."""
    models = model_keys(trials)
    rows = []
    for run, (raw, coef) in coefs.items():
        mine, theirs = models.get(run), models.get(refs[run])
        rows.append({"run": run, "reference": refs[run],
                     "same_model": None if mine is None or theirs is None else mine == theirs,
                     "uncorrected_c_minus_n": raw, "reference_c_minus_n": raw - coef, "c_minus_n": coef})
    return rows


def reference_note(rows: list[dict[str, Any]]) -> str:
    """What the references changed (the mean C-N without them, theirs alone), and which runs a reference of
    another model corrects: a sentence for the test's scope, empty without reference rows."""
    if not rows:
        return ""
    raw, ref = (float(np.mean([row[k] for row in rows])) for k in ("uncorrected_c_minus_n", "reference_c_minus_n"))
    note = (f" Uncorrected, the mean C-N would be {raw:+.4g} nats, of which the reference runs alone (one kind "
            f"throughout, on the same steps) show {ref:+.4g}.")
    other = [row["run"] for row in rows if row["same_model"] is False]
    if other:
        note += (f" {len(other)} of the {len(rows)} runs have no reference of their own model at their seed and are "
                 f"corrected by the closest other one ({', '.join(other[:5])}{' and more' if len(other) > 5 else ''}"
                 "; the same_model column of the reference table).")
    return note


def lacking_references(lacking: list[str], runs: int, what: str, trials: pd.DataFrame | None) -> str:
    """Which runs lack a reference, and how many of them cannot have one: a run that records no token stream
    (an imported log) pairs with nothing."""
    text = (f"no run with both step kinds has a {what}" if len(lacking) == runs else
            f"{len(lacking)} of the {runs} runs with both step kinds have no {what}")
    unknown = len(set(lacking) - set(stream_keys(trials))) if trials is not None else 0
    if unknown:
        text += (" (none of them records its token stream" if unknown == runs else
                 f" ({unknown} of them record{'s' if unknown == 1 else ''} no token stream") + (
                    ": an imported log does not; `clowncar analyze --same-stream` declares that such runs share one)")
    return text
