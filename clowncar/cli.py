"""The one command, `clowncar`. Each command group lives beside the code it drives (`clowncar/<pkg>/commands.py`)
and is registered here; command modules import heavy libraries (torch, ray) inside the commands so that
`clowncar --help` stays fast."""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib
import os
import sys
import traceback
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import click
import typer

from clowncar.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_READER_GONE,
    ClownCarError,
    error_line,
)

HELP_OPTIONS = ["-h", "--help"]

app = typer.Typer(
    name="clowncar",
    help="Sweeps of weight-shared crawler language models: data, trials, sweeps, results and analysis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": HELP_OPTIONS},  # every command's context inherits it
)


def _print_version(asked: bool) -> None:
    if asked:
        from clowncar.version import version_line

        typer.echo(version_line())
        raise typer.Exit(0)


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version,
        help="Print the version (and the git commit of a checkout) and exit.")] = False) -> None:
    pass

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


class _Argument(typer.core.TyperArgument):
    """An argument named in the usage line the usual way, `SPEC`, `PATHS...`, `[SWEEP]` (typer's rich help
    writes a required one as `{spec}`)."""

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        name = self.metavar or (self.name or "").upper()
        return [name if self.required else f"[{name}]"]


class _RepeatableOption(typer.core.TyperOption):
    """A repeatable option shows the type of one value, `<path>`, as a single-valued option does: typer shows the
    Python type of the whole list, `<list[Path]>`, which is nothing a user types. Its help says it repeats."""

    def display_type_rich(self, ctx: Any) -> str | None:
        shown = super().display_type_rich(ctx)
        if self.metavar is None and shown and shown.startswith("<list[") and shown.endswith("]>"):
            return f"<{shown[len('<list['):-len(']>')].lower()}>"
        return shown


def _is_path(param: Any) -> bool:
    """Whether the option or argument takes a path (`Path`, `Path | None`, `list[Path]`), by its annotation."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    return annotation is Path or Path in typing.get_args(annotation)


def _refusing_empty(param: Any) -> None:
    """Make a path option or argument refuse an empty value. A path is read from "" as the current directory, so an
    unset shell variable (`--out "$OUT"`) wrote a report into the working directory, `import ""` read every file
    under it (a test file holding a sample log became a run), and `data build --text ""` took it as the corpus."""
    process = param.process_value

    def process_value(ctx: Any, value: Any) -> Any:
        values = value if isinstance(value, list | tuple) else [value]
        if any(isinstance(v, str) and not v.strip() for v in values):
            raise typer.BadParameter("is empty (an unset shell variable?); name the path, or `.` for this "
                                     "directory", ctx=ctx, param=param)
        return process(ctx, value)

    param.process_value = process_value


def _tidy_help(command: Any) -> Any:
    """Make the help of every command in the tree read as a command line's help does: a flag shows no type
    (typer's rich help gives each one a `<bool>` column, as if it took a value), a repeatable option shows what one
    use of it takes (`_RepeatableOption`), an argument is named in capitals
    (`SPEC`, `PATHS...`), and a command's line in its group's list is its first paragraph joined (typer keeps the
    docstring's line breaks there, which then wrap mid-sentence)."""
    # click makes a command's --help option on first use, from a context; made here, it is tidied as well
    help_option = command.get_help_option(command.context_class(command, help_option_names=HELP_OPTIONS))
    for param in [*command.params, *([help_option] if help_option else [])]:
        if isinstance(param, click.Option | typer.core.TyperOption) and (param.is_flag or param.count):
            param.metavar = ""  # what typer shows in a flag's type column instead of <bool>
        elif isinstance(param, typer.core.TyperOption) and param.multiple and param.metavar is None:
            param.__class__ = _RepeatableOption
        elif isinstance(param, typer.core.TyperArgument) and param.metavar is None:
            param.metavar = (param.name or "").upper() + ("..." if param.nargs != 1 else "")
            param.__class__ = _Argument
        if _is_path(param):
            _refusing_empty(param)
    if command.help and not command.short_help:
        command.short_help = " ".join(command.help.split("\n\n")[0].split())
    for sub in getattr(command, "commands", {}).values():
        _tidy_help(sub)
    return command


@functools.lru_cache(maxsize=4)
def _command(typer_app: typer.Typer) -> Callable[..., Any]:
    """The click command tree of `typer_app`, its help tidied (`_tidy_help`). typer rebuilds it from every
    command's signature on each call (~30 ms of CPU); built once per app, running many commands in one process
    (the tests, the bad-input corpus) does not pay that each time."""
    return _tidy_help(typer.main.get_command(typer_app))


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (poll reports POLLERR on such a write end)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.__stdout__.fileno(), select.POLLOUT)  # type: ignore[union-attr]
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no stdout, or not a file
        return False


INTERNAL_ERROR_CHARS = 400
"""At most this much of a bug's message on its line: a library's message can run to kilobytes (Ray's report of a
worker its memory monitor killed, 3 KB with the node's top memory users); CLOWNCAR_DEBUG=1 shows all of it."""


def internal_error_line(err: BaseException) -> str:
    """The line of an unexpected exception (a bug): its type and message in one line, cut to a readable length."""
    text = " ".join(error_line(err, whole=True).split())
    if len(text) > INTERNAL_ERROR_CHARS:
        text = f"{text[:INTERNAL_ERROR_CHARS].rstrip()} ... ({len(text) - INTERNAL_ERROR_CHARS} more characters)"
    return f"internal error: {text} (set CLOWNCAR_DEBUG=1 for the traceback)"


def _stdout_file() -> tuple[int, int] | None:
    """Which file stdout is (device, inode), to tell later whether someone swapped it."""
    try:
        st = os.fstat(sys.__stdout__.fileno())  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _broken_pipe(err: BrokenPipeError, stdout_was: tuple[int, int] | None = None) -> NoReturn:
    """A write to a closed pipe. stdout's reader leaving early (`clowncar store ls | head -1`) is no error: exit
    quietly as a Unix tool killed by SIGPIPE does. Any other pipe (a socket, a child) is one line and exit 1.
    rich (a command's --help) points stdout at /dev/null itself when its reader has gone: stdout being another
    file than at the start (`stdout_was`) says so, where the poll then found nothing wrong with /dev/null."""
    swapped = stdout_was is not None and _stdout_file() not in (stdout_was, None)
    if not (swapped or _stdout_reader_gone()):
        fail(internal_error_line(err), EXIT_FAILED)
    # the interpreter flushes stdout once more at exit: let that land in /dev/null, not in a second EPIPE
    with contextlib.suppress(AttributeError, OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.__stdout__.fileno())  # type: ignore[union-attr]
    sys.exit(EXIT_READER_GONE)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every way a command can fail ends in one line on stderr and a documented exit code
    (`clowncar.errors.EXIT_CODES`), never a traceback unless CLOWNCAR_DEBUG=1."""
    from clowncar.interrupts import signals_ignored_to_the_end
    from clowncar.redact import hide_secrets_in_title
    from clowncar.settings import hold_secret_env

    hold_secret_env()  # the store URL stays in this process: no child process inherits it
    if argv is None:  # the real command line, not a test's call
        hide_secrets_in_title(["clowncar", *sys.argv[1:]])
        atexit.register(signals_ignored_to_the_end)  # a signal as Python finalizes: the exit code as decided
    stdout_was = _stdout_file()
    try:
        code = _command(app)(args=argv, prog_name="clowncar", standalone_mode=False)
        sys.stdout.flush()  # what is still buffered, while a closed pipe can still be told apart
    except BrokenPipeError as exc:
        _broken_pipe(exc)
    except _EXITS as exc:
        sys.exit(exc.exit_code)
    except SystemExit as exc:
        if isinstance(exc.__context__, BrokenPipeError):  # typer and rich turn any EPIPE into a silent exit 1
            _broken_pipe(exc.__context__, stdout_was)
        raise
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
        fail(internal_error_line(exc), EXIT_FAILED)
    # Outside standalone mode typer returns, instead of raising, the code of a `typer.Exit` and 130 for Ctrl-C.
    if code == EXIT_INTERRUPTED:
        fail("interrupted", EXIT_INTERRUPTED)
    if isinstance(code, int) and not isinstance(code, bool) and code:
        sys.exit(code)
