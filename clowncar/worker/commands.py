"""`clowncar trial run`: train and evaluate one trial on this machine, without Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Run a single trial on this machine (no Ray).", no_args_is_help=True)


@app.command("run")
def run(
    config: Annotated[Path, typer.Argument(help="YAML/JSON trial config or an orchestrator trial.json.")],
    out: Annotated[Path, typer.Option("--out", help="Trial directory: result.json, events.jsonl, train.log.")],
    preset: Annotated[str | None, typer.Option("--preset", help="Base preset under the config.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Dotted override, e.g. train.iterations=100.")
                    ] = None,
) -> None:
    """Train, evaluate (and, with part 2, quantize) one trial. Exit code: 0 ok, 1 error, 3 diverged, 4 OOM.

    For several processes use `torchrun --nproc-per-node N -m clowncar.worker CONFIG --out DIR`."""
    from clowncar.worker.run import load_trial_config, run_trial

    cfg = load_trial_config(config, preset, set_ or [])
    code = run_trial(cfg, out)
    if code:
        raise typer.Exit(code)
