"""`clowncar demo`: demo data (built once), then `sweeps/smoke.yaml` on embedded Ray with the SQLite store, then
the signal report for that sweep. It lives at the top of the package because it drives data, orchestrator and
analysis together (the orchestrator never imports the analysis)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from clowncar.errors import ClownCarError

SMOKE = Path(__file__).resolve().parents[1] / "sweeps" / "smoke.yaml"


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    spec_path: Annotated[Path, typer.Option("--spec", help="Sweep spec to run")] = SMOKE,
    name: Annotated[str | None, typer.Option("--name", help="Sweep name (default: smoke-<time>)")] = None,
    store: Annotated[str | None, typer.Option("--store", help="Results store URL")] = None,
    num_cpus: Annotated[int | None, typer.Option("--num-cpus", help="CPUs for embedded Ray")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No live progress")] = False,
) -> None:
    """The one-command tour: build demo data if needed, run the smoke sweep locally, print the best trial and
    write its signal report."""
    from clowncar.orchestrator.commands import run_spec
    from clowncar.orchestrator.spec import load_spec, spec_from_dict
    from clowncar.redact import redact_url
    from clowncar.settings import load_settings

    settings = load_settings()
    try:
        from clowncar.data.demo import run_demo
    except ImportError:
        raise ClownCarError("the demo data builder (clowncar.data) is not installed in this checkout") from None
    started = time.time()
    _, reused = run_demo(settings.data_dir, log=typer.echo)
    typer.echo(f"demo data {'reused' if reused else 'built'}: {settings.data_dir} ({time.time() - started:.1f}s)")
    spec = load_spec(spec_path)
    data = spec.to_dict()
    data["name"] = name or f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    spec = spec_from_dict(data)
    typer.echo(f"sweep {spec.name}: {spec.max_trials()} trials, store {redact_url(store or settings.store_url)}")
    run_spec(spec, store, "", num_cpus, None, quiet, resume=False)
    report_dir = settings.runs_dir / "reports" / spec.name
    _write_report(spec.name, store or settings.store_url, report_dir)
    typer.echo(f"demo finished in {time.time() - started:.0f}s; look closer with "
               f"`clowncar sweep status {spec.name}` and {report_dir / 'report.html'}")


def _write_report(sweep: str, store_url: str, out: Path) -> None:
    from clowncar.analysis.commands import load_and_analyse
    from clowncar.analysis.report import printed_summary, write

    analysis = load_and_analyse([sweep], store_url)
    write(out, analysis)
    typer.echo(printed_summary(analysis))
