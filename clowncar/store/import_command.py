"""`clowncar import PATH...`: read legacy run files (or directories of them) into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def import_runs(paths: Annotated[list[Path], typer.Argument(help="Legacy files or directories of them.")],
                sweep: Annotated[str | None, typer.Option("--sweep", help="Put every trial into this sweep "
                                                          "(default: one sweep per file, named after it).")] = None,
                store: Annotated[str | None, typer.Option("--store", help="SQLAlchemy URL of the store.")] = None,
                quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not list skipped lines.")] = False,
                ) -> None:
    """Import legacy runs (Frugendorff sweep CSV, micro-crawler log, cadence TSVs, train_gpt.py logs).

    The format is detected from the content. Each file lands in one transaction; importing a file again adds
    nothing. Prints what was imported and every skipped line with its reason."""
    from clowncar.store import open_store
    from clowncar.store.importers import LegacyFormatError, prepare, write_prepared

    prepared = prepare(paths)  # every file parsed whole before the store is even opened
    if not prepared.files:  # nothing to import is bad input, not an empty store created for it
        raise LegacyFormatError(f"no legacy runs found in {', '.join(str(p) for p in paths)} "
                                f"({len(prepared.others)} files, none in a known format)")
    with open_store(store) as st:
        reports = write_prepared(st, prepared, sweep)
        typer.echo(f"store: {st.url}")
    for f in prepared.others:
        typer.echo(f"skipped file {f}: not a legacy run format")
    for r in reports:
        typer.echo(f"imported {r.path} ({r.format}) -> sweep {r.sweep}: {r.trials} trials ({r.new_trials} new), "
                   f"{r.steps} step rows and {r.evals} eval rows written; {len(r.skipped)} lines skipped"
                   + (f", {r.blank_lines} blank" if r.blank_lines else ""))
        if not quiet:
            for s in r.skipped:
                text = s.text if len(s.text) <= 100 else s.text[:97] + "..."
                typer.echo(f"  skipped {r.path.name}:{s.line}: {s.reason}: {text}")


def register(app: typer.Typer) -> None:
    app.command("import")(import_runs)
