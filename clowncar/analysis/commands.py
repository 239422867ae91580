"""`clowncar analyze SWEEP [SWEEP...] --out DIR`: the signal tests and the report for sweeps in the store."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from clowncar.did_you_mean import nearest
from clowncar.errors import ClownCarError
from clowncar.redact import redact_url
from clowncar.settings import STORE_HELP

app = typer.Typer(help="Statistical signal tests and the sweep report.")


class AnalysisError(ClownCarError):
    """Bad input to `clowncar analyze` (unknown sweep, unusable output directory)."""


def analyze(
    sweeps: Annotated[list[str], typer.Argument(help="Sweep names in the store (several are analysed together), or "
                                                "shell-style patterns of them, quoted: '2026-0[34]*' takes every sweep "
                                                "whose name matches (*, ?, [...]).")],
    out: Annotated[Path, typer.Option("--out", help="Directory for report.md, report.html and report.json.")],
    store: Annotated[str | None, typer.Option("--store", help=STORE_HELP)] = None,
    correction: Annotated[str, typer.Option("--correction", help="Multiple-comparison correction: holm, "
                                            "fdr_bh or bonferroni.")] = "holm",
    same_stream: Annotated[bool, typer.Option(
        "--same-stream", help="Take the runs that do not record their token stream (imported logs) to share one: "
        "the same shards in the same order, the same batch. Tests 1a/1b then subtract a reference run among them "
        "(a run of one step kind throughout). Say so only when it is true: one trainer, one data set, one batch "
        "size.")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace what DIR holds under the report's names: the report of other sweeps, or files "
        "no clowncar report wrote. (The report of the same sweeps is always replaced, and said so.)")] = False,
) -> None:
    """Run the seven signal tests over SWEEP(s) and write DIR/report.md, DIR/report.html, DIR/report.json."""
    from clowncar.analysis.family import METHODS
    from clowncar.data.paths import OutputDir

    if correction not in METHODS:
        raise AnalysisError(f"unknown correction '{correction}' (choose from {', '.join(METHODS)})")
    if out.exists() and not out.is_dir():
        raise AnalysisError(f"--out {out} exists and is not a directory")
    sweeps, matched = expand_patterns(sweeps, store)
    replaced = earlier_report(out, list(dict.fromkeys(sweeps)), overwrite)
    with OutputDir(out, "the report directory"):  # before the analysis
        analysis = load_and_analyse(sweeps, store, correction, same_stream)
        analysis["patterns"] = matched
        from clowncar.analysis.report import printed_summary, write

        try:
            paths = write(out, analysis)
        except OSError as err:
            raise AnalysisError(f"cannot write the report to {err.filename or out}: {err.strerror or err}") from None
    typer.echo(printed_summary(analysis))
    typer.echo("report: " + ", ".join(str(p) for p in paths.values()))
    if replaced:
        typer.echo(replaced)


REPORT_FILES = ("report.md", "report.html", "report.json")


def earlier_report(out: Path, sweeps: list[str], overwrite: bool) -> str | None:
    """What writing the report into `out` replaces, in a line, or None when it replaces nothing. The report of the
    same sweeps is replaced (analysing a sweep again as it grows); another sweep's report, or a file under a
    report's name that no clowncar report wrote (a reviewer's own report.md), only with `overwrite`."""
    present = [name for name in REPORT_FILES if (out / name).is_file()]
    if not present:
        return None
    before = _clowncar_report(out / "report.json")
    if before is None:
        if not overwrite:
            raise AnalysisError(f"--out {out} holds {present[0]}, which no clowncar report wrote: choose another "
                                "folder, or pass --overwrite to replace it")
        return f"replaced {', '.join(present)} in {out} (--overwrite)"
    earlier, when = before
    if sorted(earlier) != sorted(sweeps) and not overwrite:
        raise AnalysisError(f"--out {out} holds the report of {', '.join(earlier)} (generated {when}): choose "
                            "another folder, or pass --overwrite to replace it")
    return f"replaced the earlier report of {', '.join(earlier)} in {out} (generated {when})"


def _clowncar_report(path: Path) -> tuple[list[str], str] | None:
    """The sweeps and the time of the clowncar report whose report.json is `path`, or None when it is not one."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    sweeps = data.get("sweeps") if isinstance(data, dict) else None
    provenance = data.get("provenance") if isinstance(data, dict) else None
    if not (isinstance(sweeps, list) and isinstance(provenance, dict) and "generated_at" in provenance):
        return None
    return [str(s) for s in sweeps], str(provenance["generated_at"])


PATTERN_CHARS = frozenset("*?[")


def expand_patterns(sweeps: list[str], store_url: str | None) -> tuple[list[str], dict[str, list[str]]]:
    """The sweeps as typed, each shell-style pattern (`2026-0[34]*`: fnmatch's *, ? and [...]) replaced by the
    store's sweeps it matches, in name order; and each pattern with its matches, for the report to say. A name
    that is itself a sweep's stays that sweep, wildcards or not (an imported record's name may hold a bracket).
    The store is read only when a pattern was typed, so plain names are refused or taken exactly as before."""
    from fnmatch import fnmatchcase

    if not any(PATTERN_CHARS & set(s) for s in sweeps):
        return sweeps, {}
    from clowncar.settings import load_settings
    from clowncar.store import open_store

    with open_store(store_url or load_settings().store_url, create=False) as st:
        known = st.sweep_names()
    names: list[str] = []
    matched: dict[str, list[str]] = {}
    for typed in sweeps:
        if typed in known or not PATTERN_CHARS & set(typed):
            names.append(typed)
            continue
        matched[typed] = [k for k in known if fnmatchcase(k, typed)]
        names += matched[typed]
    empty = [p for p, hits in matched.items() if not hits]
    if empty:
        raise AnalysisError(f"no sweep matches {', '.join(empty)} ({_known_hint(empty, known, store_url)})")
    return list(dict.fromkeys(names)), matched


SWEEPS_LISTED = 8


def _known_hint(missing: list[str], known: list[str], store_url: str | None = None) -> str:
    """What the store has, on one readable line: every name of a small store; for a large one (an import of
    the challenge's records makes 160 sweeps) the names nearest to what was typed."""
    if len(known) <= SWEEPS_LISTED:
        return f"in the store: {', '.join(known) or 'none'}"
    near: list[str] = []
    for name in missing:
        near += [k for k in nearest(name, known) if k not in near]
    hint = f"did you mean {', '.join(near)}? " if near else ""
    store = f" --store {redact_url(store_url)}" if store_url else ""  # the store named, not the default one
    return f"{hint}{len(known)} sweeps in the store: `clowncar sweep ls{store}` lists them"


def load_and_analyse(sweeps: list[str], store_url: str | None, correction: str = "holm",
                     same_stream: bool = False) -> dict:
    """Read the sweeps' frames from the store (and nothing else) and run every test; `same_stream` declares
    that the runs which record no token stream share one."""
    from clowncar.analysis.reference import declare_one_stream
    from clowncar.analysis.report import analyse
    from clowncar.settings import load_settings
    from clowncar.store import open_store

    sweeps = list(dict.fromkeys(sweeps))  # `analyze mini mini` is mini once, not its runs twice
    url = store_url or load_settings().store_url
    with open_store(url, create=False) as st:
        missing = [s for s in sweeps if st.get_sweep(s) is None]
        if missing:
            known = st.sweep_names()
            raise AnalysisError(f"unknown sweep(s): {', '.join(missing)} ({_known_hint(missing, known, store_url)})")
        trials = st.trials_frame(sweeps=sweeps)
        refuse_without_finished_runs(sweeps, trials)
        steps = st.steps_frame(sweeps=sweeps)
        evals = st.evals_frame(sweeps=sweeps)
        probes = st.probes_frame(sweeps=sweeps)
    if same_stream:
        trials = declare_one_stream(trials)
    return analyse(list(sweeps), trials, steps, evals, probes, storage_url=url, method=correction)


def refuse_without_finished_runs(sweeps: list[str], trials: Any) -> None:
    """AnalysisError (one line, exit 2) when none of the sweeps has a finished run: a report of nothing but
    "not enough data" rows would only hide that the sweeps failed, were stopped early or never ran."""
    from clowncar.analysis.frames import finished

    if not finished(trials).empty:
        return
    parts = []
    for sweep in sweeps:
        mine = trials[trials["sweep"] == sweep] if "sweep" in trials.columns else trials.iloc[0:0]
        counts = Counter(str(s) for s in mine["status"]) if "status" in mine.columns else Counter()
        statuses = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
        parts.append(f"{sweep}: {len(mine)} trial{'' if len(mine) == 1 else 's'}" + (f": {statuses}" if statuses
                                                                                       else ""))
    if len(sweeps) == 1:
        raise AnalysisError(f"sweep {sweeps[0]} has no finished runs ({parts[0].split(': ', 1)[1]}); "
                            f"nothing to analyse (`clowncar sweep status {sweeps[0]}` says why)")
    raise AnalysisError(f"sweeps {', '.join(sweeps)} have no finished runs ({'; '.join(parts)}); nothing to analyse")


app.command("analyze")(analyze)


def register(root: typer.Typer) -> None:
    """Top-level command: `clowncar analyze` (COMMAND_MODULES entry with group None)."""
    root.command("analyze")(analyze)
