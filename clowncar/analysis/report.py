"""The report: run every signal test and the exploratory views over the frames of one or more sweeps, then
write DIR/report.md, DIR/report.html (one self-contained file) and DIR/report.json (every number), each to a
temporary name first and renamed, so a reader never sees half a report."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from clowncar.analysis import cautions, explore, plots, shown_configs
from clowncar.analysis import environment as env
from clowncar.analysis import figure_needs as needs
from clowncar.analysis.document import Doc, fmt
from clowncar.analysis.family import run_all
from clowncar.analysis.frames import COUNTS
from clowncar.analysis.result import UNDECIDED, TestResult, jsonable
from clowncar.analysis.unrecorded import code_versions, dirty_flags, warmdown_starts
from clowncar.store.store import config_hash

SUMMARY_COLUMNS = ["test", "effect", "unit", "ci", "p", "p_adjusted", "runs", "units", "steps", "verdict"]


def analyse(sweeps: list[str], trials: pd.DataFrame, steps: pd.DataFrame | None = None,
            evals: pd.DataFrame | None = None, probes: pd.DataFrame | None = None,
            storage_url: str | None = None, method: str = "holm") -> dict[str, Any]:
    """Every number of the report, as one dict (results are TestResult objects; `to_json` flattens them)."""
    out = run_all(trials, steps, evals, probes, method=method)
    runs = out["runs"]
    out["sweeps"] = sweeps
    out["metric"] = runs.attrs.get("metric")
    out["metric_mode"] = runs.attrs.get("metric_mode")
    out["top_configs"] = explore.top_configs(runs)
    out["pareto_front"] = explore.pareto_front(runs)
    seed_table = next((r.tables.get("per_config") for r in out["results"] if r.key == "6_seed_variance"), None)
    shown_configs.annotate(out["top_configs"], out["pareto_front"], runs, trials, seed_table)
    out["environment"] = env.environment(trials)
    out["optuna"] = {s: explore.optuna_importances(storage_url, s) for s in sweeps}
    out["frames"] = {"trials": trials, "steps": steps, "evals": evals, "probes": probes}
    out["provenance"] = provenance(runs)
    out["cautions"] = (cautions.sweeps_without_runs(sweeps, trials, runs) + cautions.pooled_runs(trials)
                       + code_versions(runs) + warmdown_starts(runs) + cautions.without_metric(runs))
    return out


NO_CONFIG_HASH = config_hash({})
"""The hash an imported run with no config records (a cadence trace): the same for all of them, so no config."""


def provenance(runs: pd.DataFrame) -> dict[str, Any]:
    cols = [c for c in ("run_id", "sweep", "label", "seed", "config_hash", "config_key", "git_commit", "git_dirty",
                        "warmdown_step", "bpb", "width", "params", "quant_gap") if c in runs]
    # the BPB's eval mode and the gap's: a gap is taken in one mode for the whole table, not always the BPB's; a
    # run without a gap has no gap mode
    gaps = runs["quant_gap"] if "quant_gap" in runs else [None] * len(runs)
    gap_modes = pd.Series([explore.gap_mode(runs, g) for g in gaps], index=runs.index, dtype=object)
    records = (runs[cols].assign(eval_mode=runs.attrs.get("metric_mode"), quant_gap_mode=gap_modes)
               .to_dict("records") if len(runs) else [])
    hashes = runs.get("config_hash", pd.Series(dtype=object)).dropna().astype(str)
    return {"runs": records,
            "git_commits": sorted({str(c) for c in runs.get("git_commit", pd.Series(dtype=object)).dropna()}),
            "runs_dirty": int(dirty_flags(runs).sum()),
            "config_hashes": sorted(set(hashes) - {NO_CONFIG_HASH}),
            "runs_without_config": int((hashes == NO_CONFIG_HASH).sum()),
            "analysis_git_commit": _own_commit(),
            "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


GIT_TIMEOUT_S = 5.0
"""How long the report waits for `git rev-parse` (a hung git must not hang the report)."""


def _own_commit() -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None


SIGNALS_DEMO = ("What each test needs: docs/signals.md; `clowncar demo --signals` runs sweeps/signals.yaml, a sweep "
                "built to give every test an estimate (28 CPU trials, 2.5 to 11 min on 2 cores)")
"""Where a user's own sweep learns what to add, and a sweep that feeds every test, with its cost as measured in
docs/signals.md (idle and busy cores)."""


def data_hint(results: list[TestResult]) -> str | None:
    """One line for the tests that cannot decide for want of data, in place of a reader counting "not enough data"
    rows: which have no estimate at all (the runs lack what they read), which have too few runs for their
    interval, and what gives them data."""
    from clowncar.words import counted

    undecided = [r for r in results if r.status == UNDECIDED]
    if not undecided:
        return None
    blank = [r.key.split("_")[0] for r in undecided if r.effect is None]
    wide = [r.key.split("_")[0] for r in undecided if r.effect is not None]
    parts = []
    if blank:
        parts.append(f"{', '.join(blank)} {'lacks' if len(blank) == 1 else 'lack'} data for an estimate "
                     "(the verdict says what)")
    if wide:
        parts.append(f"{', '.join(wide)} {'needs' if len(wide) == 1 else 'need'} more runs")
    line = f"Not enough data for {len(undecided)} of {counted(len(results), 'test')}: {' and '.join(parts)}."
    return f"{line} {SIGNALS_DEMO}." if blank else line


def units_used(r: TestResult) -> int:
    """The independent units the test's statistics rest on: its runs, or fewer where it averaged the runs of one
    start (or of one reference run) into one unit; n and the degrees of freedom come from these."""
    units = r.extra.get("units")
    return units if isinstance(units, int) and not isinstance(units, bool) else r.n_runs


def runs_text(r: TestResult) -> str:
    """'28 runs', or '28 runs in 12 units' where the test counted fewer units than runs."""
    units = units_used(r)
    return f"{r.n_runs} runs" + (f" in {units} units" if units != r.n_runs else "")


def summary_rows(results: list[TestResult]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        ci = f"{fmt(r.ci_low)} to {fmt(r.ci_high)}" if r.ci_low is not None and r.ci_high is not None else ""
        rows.append({"test": r.key, "effect": r.effect, "unit": r.unit, "ci": ci, "p": r.p_value,
                     "p_adjusted": r.p_adjusted, "runs": r.n_runs, "units": units_used(r),
                     "steps": r.n_steps or None, "verdict": r.verdict})
    return rows


def to_json(a: dict[str, Any]) -> dict[str, Any]:
    runs: pd.DataFrame = a["runs"]
    return jsonable({
        "sweeps": a["sweeps"], "metric": a["metric"], "metric_mode": a.get("metric_mode"), "n_runs": len(runs),
        "correction_method": a["correction_method"], "tests": [r.to_dict() for r in a["results"]],
        "correction": a["correction"], "top_configs": a["top_configs"], "pareto_front": a["pareto_front"],
        "optuna_importances": a["optuna"], "runs": runs.to_dict("records"), "provenance": a["provenance"],
        "cautions": a.get("cautions") or [], "environment": a.get("environment") or [],
        "patterns": a.get("patterns") or {},
    }, counts=COUNTS)


def pattern_line(matched: dict[str, list[str]], names: bool = True) -> str:
    """Which sweeps each pattern typed to `analyze` took: `2026-0[34]*` matched 110 sweeps (a, b, ...)."""
    from clowncar.words import counted

    return "Sweeps by pattern: " + "; ".join(
        f"{pattern} matched {counted(len(hits), 'sweep')}" + (f" ({', '.join(hits)})" if names else "")
        for pattern, hits in matched.items()) + "."


def document(a: dict[str, Any]) -> Doc:
    runs: pd.DataFrame = a["runs"]
    fr = a["frames"]
    d = Doc()
    d.h(1, f"clowncar signal report: {', '.join(a['sweeps'])}")
    if a.get("patterns"):
        d.p(pattern_line(a["patterns"]))
    d.p(f"{len(runs)} finished runs; primary metric: {_metric(a)}; generated "
        f"{a['provenance']['generated_at']} by analysis commit {a['provenance']['analysis_git_commit'] or 'unknown'}. "
        "The run is the unit of replication: step-level numbers are aggregated per run before any test across runs, "
        "and runs that share a start (one seed and model) or a reference run are averaged into one unit where a "
        "test says so (its n reads 'runs in units').")
    d.items([f"caution: {c}" for c in a.get("cautions") or []])
    if a.get("environment"):
        d.h(2, "Data and environment")
        d.p("What every BPB was measured on and what the runs ran on, from their configs and provenance.")
        d.table(a["environment"], env.COLUMNS)
    d.h(2, "Signal tests")
    hint = data_hint(a["results"])
    if hint:
        d.p(hint)
    d.table(summary_rows(a["results"]), SUMMARY_COLUMNS)
    for r in a["results"]:
        _test_section(d, r, a["correction_method"])
    d.h(2, f"Multiple-comparison correction ({a['correction_method']})")
    d.p("Family: the primary p-value of tests 1-5 (seed variance is descriptive). Verdicts above use the "
        "adjusted p-values.")
    if a["correction"]:
        d.table(a["correction"])
    else:
        d.p("No test produced a p-value: nothing to correct.")
    d.h(2, "Figures")
    png, caption = plots.loss_curves(fr["steps"], runs)
    _figure(d, png, "training loss per config", needs.loss_curves, fr["steps"], caption)
    png, caption = plots.eval_curves(fr["evals"], runs)
    _figure(d, png, "eval BPB curves per config", needs.eval_curves, fr["evals"], caption)
    _figure(d, plots.quant_gap_vs_loops(runs), "quantization gap vs loops", needs.quant_gap_vs_loops, runs)
    _figure(d, plots.bpb_vs_width(runs), "BPB vs width", needs.bpb_vs_width, runs)
    _figure(d, plots.pareto(runs, a["pareto_front"]), "Pareto front of BPB against artifact bytes", needs.pareto,
            runs)
    d.h(2, "Top configs with their seed reruns")
    d.p("Ranked by mean BPB over seeds; every seed is listed. The best trial of a search is optimistically "
        "biased: confirm a winner only with fresh-seed reruns. The seed is the unit, as in the seed-variance test: "
        "runs of one config at one seed (a parent's trial and its rerun at that seed) are averaged into one value, "
        "so `seeds` (n), sd and the t interval count seeds, `runs` counts runs, and the caveat names each seed run "
        "more than once. A config run once carries a caveat: its rank rests on one run. A config is every setting its runs record, seed aside, and for imported runs the folder they "
        "came from; config_hash is the store's hash of the recorded settings, which an importer reads only in part.")
    d.table([{**row, "per_seed": per_seed_text(row["per_seed"])} for row in a["top_configs"]], ["config", "seeds", "runs", "mean_bpb", "sd", "ci_low", "ci_high", "caveat",
                                            "per_seed", "width", "params", "quant_gap", "quant_gap_mode", "eval_mode",
                                            "config_hash"])
    _figure(d, plots.top_config_seeds(a["top_configs"]), "top configs, every seed", needs.top_config_seeds,
            a["top_configs"])
    d.h(2, "Pareto front (BPB vs artifact bytes)")
    if a["pareto_front"]:
        d.p(pareto_note(a["pareto_front"]))
        d.table(a["pareto_front"])
    else:
        d.p("No run has both BPB and artifact bytes.")
    d.h(2, "Exploratory: Optuna parameter importances")
    for sweep, imp in a["optuna"].items():
        if imp["status"] == "ok":
            d.p(f"{sweep} ({imp['trials']} trials): {imp['note']}")
            d.table([{"parameter": k, "importance": v} for k, v in imp["importances"].items()])
        else:
            d.p(f"{sweep}: skipped ({imp['reason']})")
    d.h(2, "Provenance")
    prov = a["provenance"]
    d.p(f"git commits of the runs: {', '.join(prov['git_commits']) or 'not recorded'}"
        + (f" ({prov['runs_dirty']} run(s) from a checkout with uncommitted changes)" if prov.get("runs_dirty")
           else "")
        + f"; {len(prov['config_hashes'])} config hashes"
        + (f" ({prov['runs_without_config']} run(s) record no config)" if prov.get("runs_without_config") else "")
        + ". Every run used:")
    d.table(prov["runs"], limit=400)
    return d


def _figure(d: Doc, png: bytes | None, alt: str, lacks: Callable[[Any], str], data: Any, caption: str = "") -> None:
    """The figure, or the line that says what the runs lack for it (asked only when there is no figure); then
    the caption, if any (a curve figure's list of the configs it leaves out)."""
    d.image(png, alt, "" if png else lacks(data))
    if png and caption:
        d.p(caption)


def pareto_note(front: list[dict[str, Any]]) -> str:
    """What a Pareto point is: one run. Where its config ran at several seeds (a rerun sweep's winner), the point is
    that config's luckiest draw, and config_mean_bpb beside it is the honest figure."""
    line = ("Each point is one run; over_cap marks a run over its size cap (not submittable) and config_mean_bpb is "
            "its config's mean BPB over its config_seeds seeds, as the top configs table ranks it.")
    several = [r for r in front if r.get("config_seeds", 1) > 1]
    if several:
        line += (f" {len(several)} point(s) come from a config run at several seeds (as in a rerun sweep): such a "
                 "point is one seed's draw, on the front for its low BPB, so optimistically biased (the winner's "
                 "curse): quote config_mean_bpb, not bpb.")
    return line


def per_seed_text(runs: list[dict[str, Any]], limit: int = 12) -> str:
    """`seed: BPB` for each run of a config (an imported run may have no recorded seed), the first `limit`."""
    shown = [f"{'seed unknown' if p['seed'] is None else p['seed']}: {fmt(p['bpb'])}"
             + (f" (mean of {len(p['values'])} runs)" if len(p.get("values", ())) > 1 else "") for p in runs[:limit]]
    return ", ".join(shown) + (f" and {len(runs) - limit} more" if len(runs) > limit else "")


def _test_section(d: Doc, r: TestResult, correction: str) -> None:
    d.h(3, f"{r.key}: {r.title}")
    d.p(f"Question: {r.question}")
    d.p(f"Verdict: {r.verdict}", "verdict")
    d.p(result_line(r, correction))
    used = runs_text(r).removesuffix(" runs").replace(" runs in ", " in ")
    d.p(f"Method: {r.method}. Runs used: {used}" + (f"; steps used: {r.n_steps}" if r.n_steps else "") + ".")
    d.items([f"warning: {w}" for w in r.warnings])
    scope = r.extra.get("scope")
    if scope:
        d.p(scope)
    for name, rows in r.tables.items():
        if rows and name != "per_run":
            d.p(f"{name.replace('_', ' ')}:")
            d.table(rows)


def result_line(r: TestResult, correction: str) -> str:
    """The test's numbers in one line: effect with its interval, raw and corrected p, n."""
    n = f"n = {runs_text(r)}" + (f" ({r.n_steps} steps)" if r.n_steps else "")
    if r.effect is None:
        return f"Result: no estimate ({r.status}); {n}."
    ci = f" (95% CI {fmt(r.ci_low)} to {fmt(r.ci_high)})" if r.ci_low is not None and r.ci_high is not None else ""
    if r.p_value is None:
        p = "no p-value (descriptive, outside the corrected family)"
    elif r.p_adjusted is None:
        p = f"p = {fmt(r.p_value, 3)} (outside the corrected family)"
    else:
        p = f"p = {fmt(r.p_value, 3)}, {correction}-corrected p = {fmt(r.p_adjusted, 3)}"
    return f"Result: effect {fmt(r.effect)} {r.unit}{ci}; {p}; {n}."


def write(out_dir: Path, a: dict[str, Any]) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = document(a)
    title = f"clowncar report: {', '.join(a['sweeps'])}"
    files = {"report.md": doc.markdown(), "report.html": doc.html(title),
             "report.json": json.dumps(to_json(a), indent=1) + "\n"}
    paths = {name: out_dir / name for name in files}
    for path in paths.values():  # refused before anything is written: no report of which only a part is new
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory, not a file", str(path))
    temps = {name: out_dir / f".{name}.tmp-{os.getpid()}" for name in files}
    try:
        for name, text in files.items():
            temps[name].write_text(text, encoding="utf-8")
        for name, path in paths.items():
            temps[name].replace(path)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    return paths


def _metric(a: dict[str, Any]) -> str:
    """The primary metric and how it was measured; runs measured another way are not compared with it."""
    if not a["metric"]:
        return "none"
    return f"{a['metric']} ({a['metric_mode']})" if a.get("metric_mode") else a["metric"]


def printed_summary(a: dict[str, Any]) -> str:
    runs: pd.DataFrame = a["runs"]
    lines = [f"sweeps: {', '.join(a['sweeps'])} | runs: {len(runs)} | metric: {_metric(a)} | "
             f"correction: {a['correction_method']}"]
    if a.get("patterns"):  # the names are on the line above
        lines.append(f"  {pattern_line(a['patterns'], names=False)}")
    lines += [f"  caution: {c}" for c in a.get("cautions") or []]
    for r in a["results"]:
        lines.append(f"  {r.key:26s} {r.verdict}")
        lines += [f"  {'':26s} warning: {w}" for w in r.warnings]  # a caveat read only in the report is missed
    hint = data_hint(a["results"])
    if hint:
        lines.append(f"  {hint}")
    top = a["top_configs"][:3]
    if top:
        lines.append("  best configs (mean BPB over seeds): " + "; ".join(map(_best_config_text, top)))
    return "\n".join(lines)


def _best_config_text(t: dict[str, Any]) -> str:
    """`label 2.4656 (n=3; seed 1337 ran 2 times, averaged into one value)`: n counts seeds, not runs."""
    single = ", a single run" if t["seeds"] == 1 and t.get("runs", 1) == 1 else ""
    again = f"; {explore.repeats_text(t['seed_repeats'])}" if t.get("seed_repeats") else ""
    over = "; OVER its size cap, not submittable" if t.get("over_cap_runs") else ""
    return f"{t['config']} {t['mean_bpb']:.4f} (n={t['seeds']}{single}{again}{over})"
