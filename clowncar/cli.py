"""The one command, `clowncar`. Each command group lives beside the code it drives (`clowncar/<pkg>/commands.py`)
and is registered here; command modules import heavy libraries (torch, ray) inside the commands so that
`clowncar --help` stays fast."""

from __future__ import annotations

import functools
import importlib
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

import click
import typer

from clowncar.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ClownCarError, error_line

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
    ("clowncar.doctor", None),
    ("clowncar.dashboard", None),
]

for _module, _group in COMMAND_MODULES:
    _mod = importlib.import_module(_module)
    if _group is None:
        _mod.register(app)
    else:
        app.add_typer(_mod.app, name=_group)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """The one way a command ends badly: one line on stderr (a traceback first only with CLOWNCAR_DEBUG=1)."""
    if os.environ.get("CLOWNCAR_DEBUG") and sys.exc_info()[0] is not None:
        traceback.print_exc()
    line = " ".join(message.split()) or "failed"  # one line, whatever the message holds
    from clowncar.redact import redact_text

    print(f"clowncar: error: {redact_text(line)}", file=sys.stderr)  # no password in any error line
    sys.exit(code)


# Usage errors come from click, or from the copy of click that typer >= 0.20 carries inside it (typer._click):
# both kinds are caught by what they have in common, so no typer upgrade turns them into "internal errors".
_USAGE_ERRORS: tuple[type[Exception], ...] = (click.ClickException, getattr(typer, "TyperException",
                                                                            click.ClickException))
_EXITS: tuple[type[BaseException], ...] = (click.exceptions.Exit, typer.Exit)
_ABORTS: tuple[type[BaseException], ...] = (click.exceptions.Abort, typer.Abort)


def usage_line(exc: Exception) -> str:
    """click's message for a usage error, plus where to find the right usage."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", "") if ctx is not None else ""
    return f"{message} (see '{path} --help')" if path else message


@functools.lru_cache(maxsize=4)
def _command(typer_app: typer.Typer) -> Callable[..., Any]:
    """The click command tree of `typer_app`. typer rebuilds it from every command's signature on each call
    (~30 ms of CPU); built once per app, running many commands in one process (the tests, the bad-input corpus)
    does not pay that each time."""
    return typer.main.get_command(typer_app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every way a command can fail ends in one line on stderr and a documented exit code
    (`clowncar.errors.EXIT_CODES`), never a traceback unless CLOWNCAR_DEBUG=1."""
    from clowncar.redact import hide_secrets_in_title
    from clowncar.settings import hold_secret_env

    hold_secret_env()  # the store URL stays in this process: no child process inherits it
    if argv is None:  # the real command line, not a test's call
        hide_secrets_in_title(["clowncar", *sys.argv[1:]])
    try:
        code = _command(app)(args=argv, prog_name="clowncar", standalone_mode=False)
    except _EXITS as exc:
        sys.exit(exc.exit_code)
    except _ABORTS as exc:
        cause = exc.__cause__  # click raises its Abort `from` the EOFError or KeyboardInterrupt it caught
        if isinstance(cause, EOFError):  # click turns any EOFError into Abort, but nobody stopped this command:
            # a file read back short (Ray Tune's state on a full disk gave 'Ran out of input')
            fail(f"{error_line(cause, whole=True)}: a file was read back short; is the disk full?", EXIT_FAILED)
        fail("aborted", EXIT_INTERRUPTED)
    except ClownCarError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    except _USAGE_ERRORS as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `clowncar` or command group: its help, exit 0
            if exc.format_message().strip():  # typer's rich help is printed already; click's plain help is here
                print(exc.format_message())
            sys.exit(EXIT_OK)
        fail(usage_line(exc), EXIT_BAD_INPUT)
    except Exception as exc:
        if os.environ.get("CLOWNCAR_DEBUG"):
            raise
        fail(f"internal error: {error_line(exc, whole=True)} (set CLOWNCAR_DEBUG=1 for the traceback)", EXIT_FAILED)
    # Outside standalone mode typer returns, instead of raising, the code of a `typer.Exit` and 130 for Ctrl-C.
    if code == EXIT_INTERRUPTED:
        fail("interrupted", EXIT_INTERRUPTED)
    if isinstance(code, int) and not isinstance(code, bool) and code:
        sys.exit(code)
