"""`clowncar demo`: demo data (built once), then `sweeps/smoke.yaml` on embedded Ray with the SQLite store, then
the signal report for that sweep. It lives at the top of the package because it drives data, orchestrator and
analysis together (the orchestrator never imports the analysis)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from clowncar.errors import ClownCarError
from clowncar.redact import redact_url
from clowncar.settings import STORE_HELP

SMOKE = Path(__file__).resolve().parents[1] / "sweeps" / "smoke.yaml"
SIGNALS = SMOKE.with_name("signals.yaml")
"""`clowncar demo --signals`: 28 trials designed so that every signal test gets a result (~5 min on 2 idle cores)."""


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    spec_path: Annotated[Path | None, typer.Option("--spec", help="Sweep spec to run (default: the smoke sweep)")
                         ] = None,
    signals: Annotated[bool, typer.Option("--signals", help="Run sweeps/signals.yaml, designed so that every "
                                          "signal test of the report has the data it needs")] = False,
    name: Annotated[str | None, typer.Option("--name", help="Sweep name (default: the spec's name and the time, "
                                             "e.g. smoke-20261206-225911)")] = None,
    store: Annotated[str | None, typer.Option("--store", help=STORE_HELP)] = None,
    num_cpus: Annotated[int | None, typer.Option("--num-cpus", min=1,
                                                 help="CPUs for embedded Ray to offer (default: all)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No live progress")] = False,
) -> None:
    """The one-command tour: build demo data if needed, run the smoke sweep (or, with --signals, the signal
    sweep) locally, print the best trial and write its signal report."""
    from clowncar.orchestrator.commands import SweepInterrupted, run_spec
    from clowncar.orchestrator.spec import load_spec, spec_from_dict
    from clowncar.orchestrator.start import StartFailed
    from clowncar.redact import redact_url
    from clowncar.settings import check_runs_dir, load_settings

    if signals and spec_path is not None:
        raise ClownCarError("give --signals or --spec, not both")
    settings = load_settings()
    check_runs_dir(settings.runs_dir)  # before the data build, which a refused sweep would have wasted
    try:
        from clowncar.data.demo import run_demo
    except ImportError:
        raise ClownCarError("the demo data builder (clowncar.data) is not installed in this checkout") from None
    started = time.time()
    _, reused = run_demo(settings.data_dir, log=typer.echo)
    typer.echo(f"demo data {'reused' if reused else 'built'}: {settings.data_dir} ({time.time() - started:.1f}s)")
    spec = load_spec(SIGNALS if signals else spec_path or SMOKE)
    data = spec.to_dict()
    data["name"] = name or f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    spec = spec_from_dict(data)
    store_url = store or settings.store_url
    typer.echo(f"sweep {spec.name}: {spec.max_trials()} trials, store {redact_url(store_url)}")
    report_dir = settings.runs_dir / "reports" / spec.name
    try:
        run_spec(spec, store, "", num_cpus, None, quiet, resume=False)
    except StartFailed as err:
        raise StartFailed(_again(str(err), spec.name, named=name is not None)) from err
    except SweepInterrupted as err:  # resume finishes the sweep, not the demo: say how its report is written
        line = _again(str(err), spec.name, named=name is not None)
        if "sweep resume" in line:
            line += f", then `{_command()} analyze {spec.name} --out {report_dir}` writes the demo's report"
        raise SweepInterrupted(line) from None
    _write_report(spec.name, store_url, report_dir)
    typer.echo(f"demo finished in {time.time() - started:.0f}s")
    typer.echo(f"report: {(report_dir / 'report.html').resolve()} (also report.md, report.json)")
    typer.echo(f"trials: {_command()} sweep status {spec.name}")
    typer.echo(f"live dashboard on the same store: {dashboard_command(store_url)}")


def _again(line: str, sweep: str, named: bool) -> str:
    """A line saying that the same command starts a sweep that never ran again, made true for a demo whose name
    was generated: run again, it would make a new time-stamped sweep and leave this one failed (walk 6, F3)."""
    from clowncar.orchestrator.start import SAME_COMMAND

    head, found, tail = line.rpartition(SAME_COMMAND)
    return line if named or not found else f"{head}{SAME_COMMAND} plus `--name {sweep}`{tail}"


def _command() -> str:
    """How to call clowncar from the user's shell: the venv's script when it is not on PATH (not activated)."""
    import shutil
    import sys

    script = Path(sys.executable).with_name("clowncar")
    if script.exists() and shutil.which("clowncar") != str(script):
        return str(Path(os.path.relpath(script)) if script.is_relative_to(Path.cwd()) else script)
    return "clowncar"


def dashboard_command(store_url: str) -> str:
    """The command that serves optuna-dashboard on `store_url`, with no password in it: a SQLite path is made
    absolute (it works from any folder); a URL with a password is left to CLOWNCAR_STORE."""
    from sqlalchemy.engine import make_url

    url = make_url(store_url)
    if redact_url(store_url) != store_url:  # a password in the userinfo or in the query (?password=)
        return (f"{_command()} dashboard (with CLOWNCAR_STORE set to {redact_url(store_url)}), "
                "then open http://127.0.0.1:8080/")
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_absolute():
        url = url.set(database=str(Path(url.database).resolve()))
    return f"{_command()} dashboard --store {url.render_as_string(hide_password=False)}, then open http://127.0.0.1:8080/"


def _write_report(sweep: str, store_url: str, out: Path) -> None:
    from clowncar.analysis.commands import load_and_analyse
    from clowncar.analysis.report import printed_summary, write

    analysis = load_and_analyse([sweep], store_url)
    write(out, analysis)
    typer.echo(printed_summary(analysis))
