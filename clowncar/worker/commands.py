"""`clowncar trial run`: train and evaluate one trial on this machine, without Ray."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Run a single trial on this machine (no Ray).", no_args_is_help=True)


def run(
    config: Annotated[Path | None, typer.Argument(
        help="YAML/JSON trial config or an orchestrator trial.json (optional with --preset).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Trial directory: result.json, events.jsonl, train.log (required).")] = None,
    preset: Annotated[str | None, typer.Option("--preset", help="Base preset under the config.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Dotted override, e.g. train.iterations=100.")
                    ] = None,
) -> None:
    """Train, evaluate and quantize one trial. Exit code: 0 ok (also over the size cap), 1 error, 2 bad input,
    3 diverged, 4 OOM.

    For several processes use `torchrun --nproc-per-node N -m clowncar.worker CONFIG --out DIR`."""
    from clowncar.errors import EXIT_BAD_INPUT, ConfigError, RunFailed
    from clowncar.events import RESULT_FILE, read_result
    from clowncar.worker.run import load_trial_config, run_trial

    if config is None and preset is None:  # the bare defaults are a full-size model: never run one by accident
        raise ConfigError("give a trial config file or --preset NAME (`clowncar config presets` lists them)")
    if out is None:
        raise ConfigError("--out DIR is required: the trial directory for result.json, events.jsonl, train.log")
    cfg = load_trial_config(config, preset, set_ or [])
    created = not out.exists()
    code = run_trial(cfg, out)
    if not code:
        return
    result = read_result(out / RESULT_FILE) or {}
    reason = str(result.get("reason") or "no reason recorded")
    if code == EXIT_BAD_INPUT:  # rejected before its first step: nothing worth keeping, so no folder is left
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise RunFailed(f"trial rejected: {reason.split(': ', 1)[-1]}", code)
    raise RunFailed(f"trial {result.get('status', 'error')}: {reason} (log: {out / 'train.log'})", code)


# Registered here rather than decorated: mutation testing (mutmut) leaves decorated functions alone.
app.command("run")(run)
