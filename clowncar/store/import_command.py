"""`clowncar import PATH...`: read training logs and legacy run files (or directories of them) into the store."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clowncar.errors import ClownCarError
from clowncar.settings import STORE_HELP
from clowncar.words import counted

if TYPE_CHECKING:
    from clowncar.store.importers import FileReport
    from clowncar.store.importers.base import Skipped

HELP = (
    "Import training logs and legacy run files (or directories of them) into the store.\n\n"
    "Every file is tried; each is imported whole or not at all. The command ends with a table: imported, "
    "already present, refused (with the reason) and skipped (not a training log: a README, a submission.json, "
    "an evaluation-only log). It exits 0 only when no file was refused.\n\n"
    "A file that is not a training log is skipped inside a directory (a record folder holds a README and a "
    "submission.json beside its logs) but refused when named on the command line (you meant that file). A "
    "directory with nothing to import (empty, or only skipped files) is named in a line; when nothing in the "
    "whole import could be imported the command exits 2, as it does for a path that does not exist.\n\n"
    "Formats, detected from the content:\n\n"
    "- Training logs of train_gpt.py and other trainers: one trial per run (a file where the step counter "
    "starts again holds several). One line grammar reads `step:N/M train_loss:X train_time:Tms step_avg:Tms`, "
    "`step:N/M val_loss:X val_bpb:X`, `N/M train_loss: X train_time: Tm tok/s: X`, `step:N/M loss:X`, "
    "`step:N/M \\[tag] train_loss:X`, `step N/M | loss X`, with or without a leading unix or ISO time stamp, "
    "with extra key:value or key=value fields, with or without a trailing newline.\n"
    "- Every final / eval line (`final_int8_zlib_roundtrip_exact`, `final_int6_sliding_window_exact`, "
    "`legal_ttt_exact`, `quantized_sliding_window`, `quantized_ttt_phased`, `pre-quantization post-ema`, "
    "`*_ngram*_exact`, ...) is its own named metric with its eval mode (standard, sliding, ttt, ngram, temp), "
    "weights (raw or quantized) and quant scheme. A trial's headline is the last one of its run; which line it "
    "was is stored (headline_name, headline_line; `clowncar store show TRIAL` lists them all); a TTT or n-gram "
    "headline is not ranked (`clowncar store ls` ranks the quantized, sliding and standard scores).\n"
    "- The Frugendorff sweep CSV (one trial per row), the micro-crawler sweep log (one per RESULTS block; its "
    "trigram and cadence read from the parameter counts and the C:N split) and cadence TSVs (one per file; the "
    "cadence read from the F/N step kinds).\n\n"
    "Trial ids come from the content (and the run index), never from the file name: the same file imported "
    "twice, under any name, is one trial. A log that differs from a stored one only in line ends (CRLF) or in "
    "white space at its end, or whose reading equals a stored trial's apart from where it was read from, is "
    "reported already present with the trial it is the same run as, and nothing is written: one run is never "
    "two trials.\n\n"
    "A file already present is read again and compared with what the store holds for its trials (result "
    "fields, config, seed, status, step, eval and named-eval rows): where an older importer stored other values, "
    "its row names the fields that differ. --reparse replaces those trials with this reading (same trial id, "
    "same sweep, one transaction per trial) and says how many it re-read; trials clowncar ran are never touched.")


def _quote(path: Path) -> str:
    from clowncar.store.importers import where

    return where(path)


def _groups(skipped: list[Skipped], blank: set[int]) -> list[tuple[int, int, int, str, str]]:
    """Blocks of skipped lines with one reason, with nothing but blank lines between them: (first line, last
    line, how many, reason, first text)."""
    out: list[tuple[int, int, int, str, str]] = []
    for s in skipped:
        if out and out[-1][3] == s.reason and all(n in blank for n in range(out[-1][1] + 1, s.line)):
            first, _, n, reason, text = out[-1]
            out[-1] = (first, s.line, n + 1, reason, text)
        else:
            out.append((s.line, s.line, 1, s.reason, s.text))
    return out


def _skipped_lines(r: FileReport, every: bool) -> list[str]:
    """What was not stored from a file: one line per file (how many lines were skipped for each reason), or with
    `every` each block of skipped lines with its reason and first text."""
    assert r.parsed is not None
    groups = _groups(r.parsed.skipped, r.parsed.blank_at)
    lines = []
    if every:
        for first, last, n, reason, text in groups:
            text = text if len(text) <= 100 else text[:97] + "..."
            span = f"{first}" if first == last else f"{first}-{last}"
            count = "" if n == 1 else f" ({n} lines)"
            lines.append(f"  skipped {_quote(r.path)}:{span}: {reason}{count}: {text}")
    elif groups:
        counts: dict[str, int] = {}
        for _, _, n, reason, _ in groups:
            counts[reason] = counts.get(reason, 0) + n
        lines.append(f"  skipped lines of {_quote(r.path)}: "
                     + ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items(), key=lambda x: -x[1])))
    if r.parsed.unstored_fields:
        fields = ", ".join(f"{k} ({n} lines)" for k, n in sorted(r.parsed.unstored_fields.items()))
        lines.append(f"  not stored from the step lines of {_quote(r.path)}: {fields}")
    return lines


def _headlines(r: FileReport) -> str:
    assert r.parsed is not None
    if r.format != "training-log":
        return ""
    parts = []
    for i, t in enumerate(r.parsed.trials, start=1):
        run = f"run {i}: " if len(r.parsed.trials) > 1 else ""
        if not t.named_evals:
            parts.append(f"{run}no final/eval line, so no headline")
            continue
        h = t.named_evals[-1]
        how = ", ".join(x for x in (h["mode"], h["weights"], h["quant"]) if x)
        again = f", repeats {h['repeats']}" if h["repeats"] else ""
        parts.append(f"{run}headline {h['name']} val_bpb {h['val_bpb']!r} ({how}{again}; line {h['line']})")
    return "; " + "; ".join(parts)


def _notes(r: FileReport) -> str:
    """What the parser had to say about the file's trials (a cadence trace with no final val_bpb)."""
    assert r.parsed is not None
    return "".join(f"; note: {note}" for t in r.parsed.trials for note in t.notes)


def _same_runs(r: FileReport, lead: str) -> str:
    """The trials of a file that the store holds as the same run read from another file (`same_run.py`)."""
    if not r.same_as:
        return ""
    runs = [("the same run" if r.trials == 1 else f"run {uid.rsplit('-run', 1)[-1]} is the same run")
            + f" as trial {m.uid} in sweep {m.sweep} ({m.why})" for uid, m in r.same_as.items()]
    return lead + "; ".join(runs)


def _row(r: FileReport, sweep: str | None = None) -> str:
    """A file's row of the table; `sweep`: the one --sweep named."""
    path = _quote(r.path)
    if r.status == "imported":
        return (f"imported         {path} ({r.format}) -> sweep {r.sweep}: {counted(r.trials, 'trial')} "
                f"({r.new_trials} new), {r.steps} step rows, {r.evals} eval rows and {r.named_evals} named evals "
                "written" + _headlines(r) + _notes(r) + _same_runs(r, "; not written again: "))
    if r.status == "present":
        stay = ""
        if sweep is not None and sweep not in r.present_in:
            stay = f"; they stay there, not in {sweep}"
        from clowncar.store.importers.reread import changed_fields

        differ = ""
        if r.differs:
            fields = ", ".join(changed_fields([r]))
            some = "" if len(r.differs) == r.trials else f" ({len(r.differs)} of {r.trials} trials)"
            differ = f"; stored values differ from this importer's reading{some}: {fields}; --reparse replaces them"
        held = (_same_runs(r, "") if r.same_as else
                f"{counted(r.trials, 'trial')} already stored in sweep {', '.join(r.present_in)}")
        return f"already present  {path} ({r.format}): {held}{stay}{differ}"
    if r.status == "re-read":
        from clowncar.store.importers.reread import changed_fields

        return (f"re-read          {path} ({r.format}): {counted(r.reread, 'trial')} of sweep "
                f"{', '.join(r.present_in)} replaced by this importer's reading (fields changed: "
                f"{', '.join(changed_fields([r]))})")
    if r.status == "ready":
        return f"not written      {path} ({r.format}): {counted(r.trials, 'trial')} (the import stopped)"
    label = "refused" if r.status == "refused" else "skipped"
    return f"{label:<16} {path}: {r.reason.removeprefix(path + ': ')}"


def _totals(reports: list[FileReport]) -> str:
    n = {s: sum(r.status == s for r in reports)
         for s in ("imported", "present", "re-read", "refused", "skipped", "ready")}
    trials = sum(r.new_trials for r in reports)
    text = (f"{counted(len(reports), 'file')}: {n['imported']} imported ({counted(trials, 'new trial')}), "
            f"{n['present'] + n['re-read']} already present, {n['refused']} refused, {n['skipped']} skipped "
            "(not a training log)")
    return text + (f", {n['ready']} not written" if n["ready"] else "")


def _reread_line(reports: list[FileReport]) -> str:
    """--reparse: how many stored trials this reading replaced, and which of their fields changed."""
    from clowncar.store.importers.reread import changed_fields

    reread = [r for r in reports if r.status == "re-read"]
    if not reread:
        return "re-read 0 trials: every stored trial of these files holds this importer's reading"
    n = sum(r.reread for r in reread)
    trials_with = Counter(f for r in reread for fields in r.differs.values() for f in fields)
    fields = ", ".join(f if n == 1 else f"{f} in {trials_with[f]}" for f in changed_fields(reread))
    return f"re-read {counted(n, 'trial')} (fields changed: {fields})"


def _barren_folders(paths: list[Path], reports: list[FileReport]) -> list[str]:
    """For each directory named on the command line that holds nothing to import (no file, or only files that
    are not training logs), what it held."""
    out = []
    for folder in (p for p in paths if p.is_dir()):
        inside = [r for r in reports if r.path.is_relative_to(folder)]
        if all(r.status == "skipped" for r in inside):
            held = (f"none of its {len(inside)} files is a training log or legacy run file (all skipped)"
                    if inside else "it holds no files")
            out.append(f"nothing to import under {_quote(folder)}: {held}")
    return out


def _find_present(store: str | None, reports: list[FileReport]) -> None:
    """An import stopped by a refused file writes nothing, yet some of its files may be stored already: say so
    (an existing store is only read; none is created)."""
    from clowncar.errors import StoreError
    from clowncar.store import open_store
    from clowncar.store.importers import mark_present
    from clowncar.store.importers.reread import compare_present

    try:
        with open_store(store, create=False) as st:
            mark_present(st, reports)
            compare_present(st, reports)
    except StoreError:  # no store yet, or none reachable: nothing is there, or nothing to say about it
        return


def _check_sweep_name(name: str) -> None:
    """A name typed for --sweep lands in tables, report titles and file names: one printable line, no path."""
    if not (0 < len(name) <= 128 and name.isprintable() and not {"/", "\\"} & set(name) and name.strip(".")
            and name == name.strip()):
        raise ClownCarError(f"--sweep {name!r}: a sweep name is 1-128 printable characters, no '/' or '\\', not "
                            "only dots, no leading or trailing space")


def import_runs(paths: Annotated[list[Path], typer.Argument(help="Files or directories (searched recursively).")],
                sweep: Annotated[str | None, typer.Option("--sweep", help="Put every new trial into this sweep "
                                                          "(default: one sweep per file, named after it, with "
                                                          "its folders where files share a name). A trial "
                                                          "already stored stays in its sweep; another store "
                                                          "(--store) groups such files afresh.")] = None,
                store: Annotated[str | None, typer.Option("--store", help=STORE_HELP)] = None,
                keep_going: Annotated[bool, typer.Option(
                    "--keep-going", help="Import the other files when some are refused (default: a refused file "
                    "stops the import before anything is written). The exit code is 2 either way.")] = False,
                quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not say what was skipped: neither the "
                                                       "skipped files (the totals still count them) nor the "
                                                       "skipped lines of imported ones.")] = False,
                verbose: Annotated[bool, typer.Option(
                    "--verbose", "-v", help="List every block of skipped lines with its reason (default: how "
                    "many lines of each file were skipped for each reason).")] = False,
                keep_cut_off: Annotated[bool, typer.Option(
                    "--keep-cut-off", help="Store a run whose training log stops before its last step with no "
                    "final/eval line as a crashed trial (its steps kept, no score) instead of refusing the file: "
                    "for archives, where such a log was killed (a pod's time ran out), not still being "
                    "written.")] = False,
                reparse: Annotated[bool, typer.Option(
                    "--reparse", help="For files already present whose stored trials differ from what this "
                    "importer reads (an older importer stored them), replace those trials with this reading: "
                    "same trial id and sweep, one transaction per trial. Trials clowncar ran are never "
                    "touched. Without it a differing file is named and nothing stored changes.")] = False,
                ) -> None:
    from clowncar.store import open_store
    from clowncar.store.importers import LegacyFormatError, scan, write
    from clowncar.store.importers.reread import compare_present
    from clowncar.store.importers.reread import reparse as replace_differing

    if sweep is not None:
        _check_sweep_name(sweep)
    reports = scan(paths, keep_cut_off)  # every file read and parsed before the store is even opened
    refused = [r for r in reports if r.status == "refused"]
    reparsed = False
    if (keep_going or not refused) and any(r.status == "ready" for r in reports):
        with open_store(store) as st:
            write(st, reports, sweep, keep_going)
            compare_present(st, reports)
            if reparse and (keep_going or not any(r.status == "refused" for r in reports)):
                replace_differing(st, reports)
                reparsed = True
            typer.echo(f"store: {st.url}")
    elif any(r.status == "ready" for r in reports):
        _find_present(store, reports)
    if not quiet:
        for r in reports:
            if r.parsed is not None and r.status == "imported":
                for line in _skipped_lines(r, verbose):
                    typer.echo(line)
    for r in reports:
        if not (quiet and r.status == "skipped"):  # -q: skipped files are counted in the totals, not listed
            typer.echo(_row(r, sweep))
    typer.echo(_totals(reports))
    if reparsed:
        typer.echo(_reread_line(reports))
    elsewhere = [r for r in reports if r.status == "present" and sweep not in r.present_in]
    if sweep is not None and elsewhere:
        added = (f"sweep {sweep} holds only the new trials" if any(r.status == "imported" for r in reports) else
                 f"nothing was added to sweep {sweep}")
        typer.echo(f"{added}: {len(elsewhere)} files are already stored in other sweeps and stay there (a trial, "
                   "whose id is a digest of its file, is in one sweep of a store); to group them under "
                   f"{sweep}, import them into another store (--store sqlite:///OTHER.db --sweep {sweep})")
    refused = [r for r in reports if r.status == "refused"]
    if refused:
        unwritten = any(r.status == "ready" for r in reports)
        tail = "; nothing was written: --keep-going imports the others" if unwritten and len(reports) > 1 else ""
        more = f" ({len(refused)} of {len(reports)} files refused{tail})" if len(reports) > 1 else ""
        raise LegacyFormatError(refused[0].reason + more)
    barren = _barren_folders(paths, reports)
    if all(r.status == "skipped" for r in reports):  # a wrong folder: as much an error as a missing path
        raise LegacyFormatError("; ".join(barren))
    for line in barren:  # one folder of several: said, not an error, as the other paths gave something
        typer.echo(line)


import_runs.__doc__ = HELP


def register(app: typer.Typer) -> None:
    app.command("import")(import_runs)
