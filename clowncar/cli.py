"""The one command, `clowncar`. Each command group lives beside the code it drives (`clowncar/<pkg>/commands.py`)
and is registered here; command modules import heavy libraries (torch, ray) inside the commands so that
`clowncar --help` stays fast."""

from __future__ import annotations

import importlib
import os
import sys

import click
import typer

from clowncar.errors import ClownCarError

try:  # recent typer ships its own copy of click, whose exceptions are not click's
    from typer._click.exceptions import ClickException as _TyperClickException
except ImportError:  # older typer raises click's own
    _TyperClickException = click.ClickException
EXIT = (click.exceptions.Exit, typer.Exit)
ABORT = (click.exceptions.Abort, typer.Abort)
USAGE = (click.ClickException, _TyperClickException)

app = typer.Typer(
    name="clowncar",
    help="Sweeps of weight-shared crawler language models: data, trials, sweeps, results and analysis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# (module, group name or None for top-level commands registered by the module's `register(app)`)
COMMAND_MODULES: list[tuple[str, str | None]] = [
    ("clowncar.config_commands", "config"),
    ("clowncar.data.commands", "data"),
    ("clowncar.store.commands", "store"),
    ("clowncar.store.import_command", None),
    ("clowncar.worker.commands", "trial"),
    ("clowncar.worker.artifact_commands", "artifact"),
    ("clowncar.analysis.commands", None),
    ("clowncar.orchestrator.commands", "sweep"),
    ("clowncar.demo", None),
]

for _module, _group in COMMAND_MODULES:
    _mod = importlib.import_module(_module)
    if _group is None:
        _mod.register(app)
    else:
        app.add_typer(_mod.app, name=_group)


def fail(message: str, code: int = 2) -> None:
    print(f"clowncar: error: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    try:
        code = app(args=argv, prog_name="clowncar", standalone_mode=False)
    except EXIT as exc:
        sys.exit(exc.exit_code)
    except ABORT:
        fail("aborted", 130)
    except USAGE as exc:
        fail(exc.format_message(), 2)
    except ClownCarError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:
        if os.environ.get("CLOWNCAR_DEBUG"):
            raise
        fail(f"internal error: {type(exc).__name__}: {exc} (set CLOWNCAR_DEBUG=1 for the traceback)", 1)
    # Outside standalone mode typer turns Ctrl-C into a returned 130 instead of raising: say so, exit with it.
    if code == 130:
        fail("interrupted", 130)
