"""`clowncar store`: look into the results store and export it."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clowncar.errors import StoreError
from clowncar.settings import STORE_HELP

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer(help="Inspect and export the results store (sweeps, trials, steps, evals).",
                  no_args_is_help=True)

StoreOpt = Annotated[str | None, typer.Option("--store", help=STORE_HELP)]


def _fmt(value: Any, exact: bool = False) -> str:
    """A cell of a listing (8 significant digits), or with `exact` a result as recorded to 12: more than any
    training log prints (8 decimals), fewer than the last-digit noise of a difference of floats (a quantization
    gap of 0.0071656999999998305 is 0.0071657)."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:.12g}" if exact else f"{value:.8g}"
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def text_table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def ls(sweep: Annotated[str | None, typer.Argument(help="Show this sweep's trials instead of the sweeps.")] = None,
       store: StoreOpt = None) -> None:
    """List the sweeps (trial counts, best BPB and its metric), or the trials of one sweep (with an imported log's
    headline BPB where it is not the ranked metric: a TTT or n-gram eval is never ranked).

    `clowncar sweep ls` lists the same sweeps as the sweep commands see them: a sweep marked running whose driver
    is gone shows as `stalled`."""
    from clowncar.store import open_store
    from clowncar.store.frames import SCORE_KEYS, headline_unranked

    with open_store(store, create=False) as st:
        if sweep is None:
            frame = st.sweeps_frame()
            typer.echo(f"store: {st.url}")
            if frame.empty:
                typer.echo("no sweeps")
                return
            # the name last: long names (imported records') would otherwise push the counts off the screen
            cols = ["source", "status", "trials", "ok", "running", "failed", "pruned", "stopped", "best_bpb",
                    "best_metric", "created_at", "name"]
            typer.echo(text_table(frame[cols].values.tolist(), cols))
            from clowncar.orchestrator.rerun_lines import child_best_note

            if (note := child_best_note(frame["parent"].tolist())) is not None:
                typer.echo(note)
            for line in sweep_list_notes(frame):
                typer.echo(line)
            return
        if st.get_sweep(sweep) is None:
            raise StoreError(f"no sweep named {sweep!r} in {st.url}{st.no_sweep_hint(sweep)}")
        frame = _pruned_steps(st, st.trials_frame(sweep))
        found = st.ranked_trials(sweep, feasible_only=False)  # every ok trial: its headline columns
        searched = searched_keys(st.get_sweep(sweep)["spec"])
    if searched and not frame.empty:  # what tells the trials of a sweep apart: the values it searched
        frame = frame.assign(config=[config_text(row, searched) for _, row in frame.iterrows()])
    # every BPB a trial of the sweep measured (the sweep's best is one of them: `store ls` names which)
    scores = [k for k in reversed(SCORE_KEYS) if k in frame.columns and frame[k].notna().any()]
    metric = found[0] if found else ""
    unranked = [t for t in (found[1] if found else []) if headline_unranked(t["result"], metric)]
    headline = ["headline_bpb", "headline_name"] if unranked else []  # only where it is another number
    cols = [c for c in ["number", "trial_uid", "attempt", "status", "config", *scores, *headline, "steps",
                        "artifact_bytes", "node", "reason"]
            if c in frame.columns and (c != "artifact_bytes" or frame[c].notna().any())]
    typer.echo(text_table(frame[cols].values.tolist(), cols))
    if unranked:
        modes = sorted({str(t["result"].get("headline_mode")) for t in unranked})
        typer.echo(f"ranked by {metric} (the sweep's best_bpb); headline_bpb, the log's last eval line "
                   f"({'/'.join(modes)} eval), is not ranked")


def sweep_list_notes(frame: Any) -> list[str]:
    """The notes under a list of sweeps (`store ls`, `sweep ls`) on why a best_bpb is not the number a reader may
    expect: a headline (TTT/n-gram) that is not ranked, and ok trials over their size cap that are never a best."""
    from clowncar.store.frames import SCORE_KEYS

    notes = []
    if unranked := int(frame["unranked_headlines"].sum()):
        sweeps = int((frame["unranked_headlines"] > 0).sum())
        notes.append(f"note: headline_bpb (TTT/n-gram evals) is not ranked: best_bpb is a sweep's best "
                     f"{', '.join(SCORE_KEYS[:-1])} or {SCORE_KEYS[-1]} (best_metric); {unranked} trial(s) of "
                     f"{sweeps} sweep(s) have a headline other than that (`clowncar store ls SWEEP` shows it)")
    if over := int(frame["over_cap"].sum()):
        none = int(((frame["over_cap"] > 0) & frame["best_bpb"].isna()).sum())
        alone = f"; {none} sweep(s) have no other ok trial, so no best_bpb (-)" if none else ""
        notes.append(f"note: {over} ok trial(s) of {int((frame['over_cap'] > 0).sum())} sweep(s) are over their "
                     "size cap (artifact_bytes above 16,000,000, or the cap their config or sweep set) and are never "
                     f"a best_bpb{alone}")
    return notes


def _pruned_steps(st: Any, frame: Any) -> Any:
    """The `steps` of a pruned trial: its last stored step row. The column is result.json's step count, and a
    trial ASHA stopped has no result.json, so it read `-` though the store holds its rows (`store show`)."""
    pruned = frame.index[frame["status"] == "pruned"] if "status" in frame.columns else []
    if not len(pruned):
        return frame
    if "steps" not in frame.columns:
        frame = frame.assign(steps=None)
    for i in pruned:
        if not _present(frame.at[i, "steps"]):
            frame.at[i, "steps"] = st.max_step(frame.at[i, "trial_uid"], int(frame.at[i, "attempt"])) or None
    return frame


def searched_keys(spec: Any) -> list[str]:
    """The config keys a sweep's spec searched (its space, its named points' keys, its queued configs' keys, and
    train.seed when it lists seeds), in the spec's order; none for an imported sweep."""
    if isinstance(spec, str):
        spec = json.loads(spec) if spec else {}
    if not isinstance(spec, dict):
        return []
    keys = list(spec.get("space") or {})
    for named in [*(spec.get("points") or {}).values(), *(spec.get("enqueue") or [])]:
        keys += list(named) if isinstance(named, dict) else []
    keys += ["train.seed"] if spec.get("seeds") else []
    return [k for k in dict.fromkeys(keys) if not k.startswith("_")]


def config_text(row: Any, keys: list[str]) -> str:
    """`crawler_loops=2, seed=42`: the row's values of `keys`, each by its last name (values missing: none)."""
    parts = [f"{key.rsplit('.', 1)[-1]}={_fmt(row.get(key))}" for key in keys if key in row and _present(row[key])]
    return ", ".join(parts) or "-"


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


RESULT_LABELS = {"c_steps": "C-steps", "n_steps": "N-steps"}
"""Result keys shown under another name in `store show`: beside `steps`, `n_steps` reads as a step count; the
stored keys (`--json`, exports) keep their names."""


def show(trial: Annotated[str, typer.Argument(help="Trial uid (see `clowncar store ls SWEEP`).")],
         store: StoreOpt = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Print one trial: its config, every attempt with its outcome, result and row counts."""
    from clowncar.store import open_store

    with open_store(store, create=False) as st:
        info = st.get_trial(trial)
        if info is None:
            raise StoreError(f"no trial {trial!r} in {st.url}")
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    typer.echo(f"trial {info['trial_uid']}  sweep {info['sweep']}  number {info['number']}  seed {info['seed']}  "
               f"config {info['config_hash']}")
    typer.echo("config:")
    from clowncar.store.frames import flatten

    for key, value in flatten(info["config"]).items():
        typer.echo(f"  {key} = {value}")
    for at in info["attempts"]:
        typer.echo(f"attempt {at['attempt']}: {at['status']}  node {_fmt(at['node'])}  "
                   f"{_fmt(at['started_at'])} -> {_fmt(at['ended_at'])}  reason: {_fmt(at['reason'])}")
        typer.echo(f"  rows: {at['steps']} steps, {at['evals']} evals, {at['probes']} probes")
        for key, value in (at["result"] or {}).items():
            if key not in ("status", "reason", "provenance"):
                typer.echo(f"  {RESULT_LABELS.get(key, key)} = {_fmt(value, exact=True)}")
        for key, value in ((at["result"] or {}).get("provenance") or {}).items():
            if key != "config":
                typer.echo(f"  provenance.{key} = {_fmt(value)}")
        for e in at.get("named_evals", []):
            typer.echo(f"  eval line {_fmt(e['line'])}: {e['name']} val_bpb {_fmt(e['val_bpb'], exact=True)} "
                       f"({e['mode']}, {e['weights']}{', ' + e['quant'] if e['quant'] else ''}"
                       f"{', repeats ' + e['repeats'] if e['repeats'] else ''})")
        for art in at["artifacts"]:
            typer.echo(f"  artifact {art['kind']}: {art['path']} ({_fmt(art['size_bytes'])} bytes, "
                       f"code {_fmt(art['code_bytes'])}, sha256 {_fmt(art['sha256'])})")


def _parquet_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns mixing types (model.model_dim: 512 or "auto") become text so that Arrow can type them."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            kinds = {type(v) for v in out[col] if v is not None and v == v}
            if len(kinds) > 1 or kinds & {dict, list}:
                out[col] = [None if (v is None or v != v) else (json.dumps(v) if isinstance(v, dict | list)
                                                                else str(v)) for v in out[col]]
    return out


def _csv_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """A float column holding only whole numbers (width, params: pandas makes a column with a gap float) is
    written as whole numbers, 164749 rather than 164749.0; the gaps stay empty."""
    out = frame.copy()
    for col in out.columns:
        values = out[col]
        if values.dtype.kind == "f" and values.notna().any() and (values.dropna() % 1 == 0).all():
            out[col] = values.astype("Int64")
    return out


EXPORT_TABLES = ("trials", "steps", "evals", "named_evals", "probes", "artifacts")


def export(sweep: Annotated[list[str], typer.Option("--sweep", help="Sweep to export (repeatable).")],
           out: Annotated[Path, typer.Option("--out", help="Directory to write into (created).")],
           fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
           store: StoreOpt = None,
           overwrite: Annotated[bool, typer.Option(
               "--overwrite", help="Replace the files of an export of other sweeps under the same names, or files "
               "under those names that no clowncar export wrote. (An export of the same sweeps is always "
               "replaced.)")] = False) -> None:
    """Write the sweeps' trials, steps, evals, named evals, probes and artifacts into --out, one file each:
    SWEEP_trials.parquet, SWEEP_steps.parquet, SWEEP_evals.parquet, SWEEP_named_evals.parquet, SWEEP_probes.parquet
    and SWEEP_artifacts.parquet for one sweep (its name, characters other than letters, digits, '.', '_' and '-'
    made '_'), or export_trials.parquet ... export_artifacts.parquet for several (.csv with --format csv). The
    trials table leads with bpb, its metric and eval mode, width, params and the quantization gap with its mode."""
    if fmt not in ("parquet", "csv"):
        raise StoreError(f"--format must be parquet or csv, not {fmt!r}")
    from clowncar.data.paths import OutputDir

    sweep = list(dict.fromkeys(sweep))  # `--sweep a --sweep a` is one sweep: its files are named after it

    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {out} exists and is not a directory")
    replaced = earlier_export(out, sweep, fmt, overwrite)
    with OutputDir(out, "the export directory"):  # before the store is read
        written = _export_into(out, sweep, fmt, store)
    typer.echo("\n".join(f"wrote {w}" for w in written))
    if replaced:
        typer.echo(replaced)


def export_stem(sweeps: list[str]) -> str:
    """What an export's file names start with: the one sweep's name with only safe characters, else `export`."""
    # a sweep name is free text (an import's --sweep may hold a slash): the file name keeps only what is safe
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", sweeps[0]).strip("._") if len(sweeps) == 1 else ""
    return stem or "export"


def earlier_export(out: Path, sweeps: list[str], fmt: str, overwrite: bool) -> str | None:
    """What writing the export into `out` replaces of another export, in a line, or None when nothing. The files of
    an export of the same sweeps (or of some of them) are replaced as always: the new files hold every row they
    held. Files that hold rows of a sweep not exported now (`export_*` of other sweeps, or a sweep whose name differs
    only in unsafe characters), or that no clowncar export wrote, are replaced only with `overwrite`. Whose rows a
    file holds is read from the export's own trials table (its sweep column), as `analyze --out` reads
    report.json's sweeps."""
    stem = export_stem(sweeps)
    present = [f"{stem}_{t}.{fmt}" for t in EXPORT_TABLES if (out / f"{stem}_{t}.{fmt}").is_file()]
    if not present:
        return None
    trials = f"{stem}_trials.{fmt}"
    held = _exported_sweeps(out / trials, fmt) if trials in present else None
    if held is not None and set(held) <= set(sweeps):
        return None
    if held is not None:
        what = f"the export of {', '.join(held)} ({trials} and the rest)"
    elif trials in present:
        what = f"{trials}, which no clowncar export wrote"
    else:
        what = f"{present[0]}, an export without its {trials} (no telling whose)"
    if not overwrite:
        raise StoreError(f"--out {out} holds {what}: choose another folder, or pass --overwrite to replace it")
    return f"replaced {what} in {out} (--overwrite)"


def _exported_sweeps(path: Path, fmt: str) -> list[str] | None:
    """The sweeps whose rows the trials table at `path` holds, or None when it is not a table with a sweep column
    (a file of the same name that someone else wrote)."""
    import pandas as pd

    try:
        frame = (pd.read_csv(path, usecols=["sweep"], dtype=str, keep_default_na=False) if fmt == "csv"
                 else pd.read_parquet(path, columns=["sweep"]))
    except (OSError, ValueError, KeyError):  # Arrow's and the CSV parser's errors are ValueErrors
        return None
    return sorted({str(s) for s in frame["sweep"].dropna()})


def _export_into(out: Path, sweep: list[str], fmt: str, store: str | None) -> list[str]:
    """Read the sweeps' tables from the store and write one file each into the existing directory `out`."""
    from clowncar.store import open_store
    from clowncar.store.summary import with_summary

    with open_store(store, create=False) as st:
        for name in sweep:
            if st.get_sweep(name) is None:
                raise StoreError(f"no sweep named {name!r} in {st.url}{st.no_sweep_hint(name)}")
        frames = {"trials": with_summary(st.trials_frame(sweep)), "steps": st.steps_frame(sweep),
                  "evals": st.evals_frame(sweep),
                  "named_evals": st.named_evals_frame(sweep), "probes": st.probes_frame(sweep),
                  "artifacts": st.artifacts_frame(sweep)}
    stem = export_stem(sweep)
    written = []
    for table, frame in frames.items():
        final = out / f"{stem}_{table}.{fmt}"
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        try:
            if fmt == "csv":
                _csv_ready(frame).to_csv(tmp, index=False)
            else:
                _parquet_ready(frame).to_parquet(tmp, index=False)
            tmp.replace(final)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write {final}: {err.strerror or err}") from None
        written.append(f"{final} ({len(frame)} rows)")
    return written


# Registered here rather than decorated: mutation testing (mutmut) leaves decorated functions alone.
app.command("ls")(ls)
app.command("show")(show)
app.command("export")(export)
