"""The entry point's rules with exact texts: every way out of a command is one line `clowncar: error: ...` and a
documented exit code; usage errors say where the right usage is; a secret never reaches the error line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import pytest
import typer

import clowncar.cli as cli
from clowncar.errors import ClownCarError, RunFailed


def app_running(body: Callable[[], Any]) -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.command("work")(body)
    app.command("other")(lambda: None)
    return app


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], body: Callable[[], Any],
        argv: list[str] | None = None) -> tuple[int | None, str]:
    monkeypatch.setattr(cli, "app", app_running(body))
    try:
        cli.main(argv or ["work"])
        code = None
    except SystemExit as ended:
        code = ended.code  # type: ignore[assignment]
    return code, capsys.readouterr().err


def raising(exc: BaseException) -> Callable[[], None]:
    def body() -> None:
        raise exc

    return body


def test_ctrl_c_in_a_command_is_interrupted_130(monkeypatch, capsys) -> None:
    code, err = run(monkeypatch, capsys, raising(KeyboardInterrupt()))
    assert code == 130 and err.splitlines()[-1] == "clowncar: error: interrupted"


def test_an_abort_is_aborted_130(monkeypatch, capsys) -> None:
    code, err = run(monkeypatch, capsys, raising(click.exceptions.Abort()))
    assert (code, err) == (130, "clowncar: error: aborted\n")


def test_an_end_of_file_inside_a_command_is_a_failure_not_an_abort(monkeypatch, capsys) -> None:
    """click turns an EOFError into its Abort; a Tune state file cut short by a full disk raised one, and the
    sweep ended as if the user had stopped it (130, 'aborted')."""
    code, err = run(monkeypatch, capsys, raising(EOFError("Ran out\nof input")))
    assert (code, err.splitlines()[-1]) == (
        1, "clowncar: error: EOFError: Ran out of input: a file was read back short; is the disk full?")


def test_ctrl_c_outside_any_command_is_interrupted_130(monkeypatch, capsys) -> None:
    def tree(**kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_command", lambda app: tree)
    with pytest.raises(SystemExit) as ended:
        cli.main(["anything"])
    assert ended.value.code == 130 and capsys.readouterr().err == "clowncar: error: interrupted\n"


def test_an_exit_raised_by_the_command_tree_keeps_its_code(monkeypatch) -> None:
    def tree(**kwargs: Any) -> None:
        raise typer.Exit(5)

    monkeypatch.setattr(cli, "_command", lambda app: tree)
    with pytest.raises(SystemExit) as ended:
        cli.main([])
    assert ended.value.code == 5


def test_the_tree_is_called_as_clowncar_outside_standalone_mode(monkeypatch) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(cli, "_command", lambda app: lambda **kw: seen.append(kw))
    cli.main(["x", "y"])
    assert seen == [{"args": ["x", "y"], "prog_name": "clowncar", "standalone_mode": False}]


def test_the_store_secret_is_held_before_any_command_runs(monkeypatch) -> None:
    import clowncar.settings as settings

    order: list[str] = []
    monkeypatch.setattr(settings, "hold_secret_env", lambda: order.append("held"))
    monkeypatch.setattr(cli, "_command", lambda app: lambda **kw: order.append("ran"))
    cli.main([])
    assert order == ["held", "ran"]


def test_a_clowncar_error_is_its_message_and_its_code(monkeypatch, capsys) -> None:
    code, err = run(monkeypatch, capsys, raising(RunFailed("trial diverged: loss nan", 3)))
    assert (code, err) == (3, "clowncar: error: trial diverged: loss nan\n")
    code, err = run(monkeypatch, capsys, raising(ClownCarError("bad\n  spec:\tline 2")))
    assert (code, err) == (2, "clowncar: error: bad spec: line 2\n")  # folded onto one line


def test_an_empty_error_still_says_something(monkeypatch, capsys) -> None:
    code, err = run(monkeypatch, capsys, raising(ClownCarError("  \n ")))
    assert (code, err) == (2, "clowncar: error: failed\n")


def test_an_error_line_never_shows_a_password(monkeypatch, capsys) -> None:
    code, err = run(monkeypatch, capsys, raising(ClownCarError("cannot open postgresql://u:s3cret@h/db")))
    assert (code, err) == (2, "clowncar: error: cannot open postgresql://u:***@h/db\n")


def test_a_bug_is_an_internal_error_1_naming_its_type(monkeypatch, capsys) -> None:
    code, err = run(monkeypatch, capsys, raising(ValueError("boom")))
    assert (code, err) == (1, "clowncar: error: internal error: ValueError: boom (set CLOWNCAR_DEBUG=1 for the "
                              "traceback)\n")


def test_a_bug_whose_message_is_a_traceback_shows_the_exception_that_ended_it(monkeypatch, capsys) -> None:
    wrapped = ("Traceback (most recent call last):\n  File \"tune_controller.py\", line 1, in step\n    run()\n"
               "OverflowError: Python int too large to convert to SQLite INTEGER\n")  # as Ray Tune wraps a failure
    code, err = run(monkeypatch, capsys, raising(RuntimeError(wrapped)))
    assert (code, err) == (1, "clowncar: error: internal error: RuntimeError: OverflowError: Python int too large to "
                              "convert to SQLite INTEGER (set CLOWNCAR_DEBUG=1 for the traceback)\n")
    code, err = run(monkeypatch, capsys, raising(ValueError("two\nlines")))
    assert err == "clowncar: error: internal error: ValueError: two lines (set CLOWNCAR_DEBUG=1 for the traceback)\n"


def test_with_debug_a_bug_raises_with_its_traceback(monkeypatch) -> None:
    monkeypatch.setenv("CLOWNCAR_DEBUG", "1")
    monkeypatch.setattr(cli, "app", app_running(raising(ValueError("boom"))))
    with pytest.raises(ValueError, match="boom"):
        cli.main(["work"])


def test_fail_outside_an_exception_prints_no_traceback_even_with_debug(monkeypatch, capsys) -> None:
    monkeypatch.setenv("CLOWNCAR_DEBUG", "1")
    with pytest.raises(SystemExit) as ended:
        cli.fail("just this")
    assert ended.value.code == 2 and capsys.readouterr().err == "clowncar: error: just this\n"


def test_a_usage_error_says_which_help_to_read(capsys) -> None:
    with pytest.raises(SystemExit) as ended:
        cli.main(["config", "show", "--bogus"])
    assert ended.value.code == 2
    assert capsys.readouterr().err == "clowncar: error: No such option: --bogus (see 'clowncar config show --help')\n"


def test_usage_line_without_a_context_is_the_message_alone() -> None:
    assert cli.usage_line(click.UsageError("bad usage")) == "bad usage"
    assert cli.usage_line(ValueError("plain")) == "plain"
    ctx = click.Context(click.Command("show"), info_name="clowncar show")
    assert cli.usage_line(click.UsageError("bad", ctx=ctx)) == "bad (see 'clowncar show --help')"
    blank = click.Context(click.Command("x"), info_name="")
    assert cli.usage_line(click.UsageError("bad", ctx=blank)) == "bad"


def test_a_command_returning_a_value_exits_zero(monkeypatch, capsys) -> None:
    for value in (True, 0, "text", False):
        code, err = run(monkeypatch, capsys, lambda value=value: value)
        assert (code, err) == (None, ""), value


def test_a_bare_group_prints_its_help_once(capsys) -> None:
    with pytest.raises(SystemExit) as ended:
        cli.main(["store"])
    out = capsys.readouterr()
    assert ended.value.code == 0 and out.err == ""
    assert "None" not in out.out.splitlines() and "export" in out.out


def test_a_bare_group_whose_help_comes_as_the_error_prints_it(monkeypatch, capsys) -> None:
    """click (without typer's rich help) reports a bare group as an error that carries the help text."""
    group = click.Group("store", help="Inspect the store.", no_args_is_help=True)
    group.add_command(click.Command("ls", help="List."))

    def tree(**kwargs: Any) -> None:
        raise click.exceptions.NoArgsIsHelpError(click.Context(group, info_name="clowncar store"))

    monkeypatch.setattr(cli, "_command", lambda app: tree)
    with pytest.raises(SystemExit) as ended:
        cli.main(["store"])
    out = capsys.readouterr()
    assert ended.value.code == 0 and out.err == ""
    assert out.out.startswith("Usage: clowncar store") and "Inspect the store." in out.out


@pytest.mark.parametrize("url", [
    "notaurl", "foo://x", "mysql://u:SECRETPW@127.0.0.1:{closed}/db", "postgresql://u:SECRETPW@127.0.0.1:{closed}/db",
    "postgresql+psycopg://u:SECRETPW@127.0.0.1:{closed}/db", "postgresql+psycopg://u@127.0.0.1:{closed}/db?password=SECRETPW",
    "sqlite:///{tmp}/none.db"])
def test_the_dashboard_words_a_store_it_cannot_open_as_every_other_command(
        url: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    def said(argv: list[str]) -> tuple[Any, str]:
        with pytest.raises(SystemExit) as ended:
            cli.main(argv)
        return ended.value.code, capsys.readouterr().err

    with socket.create_server(("127.0.0.1", 0)) as closed, socket.create_server(("127.0.0.1", 0)) as taken:
        closed_port = closed.getsockname()[1]
        closed.close()  # nothing listens there now; `taken` stays bound: a dashboard that got past the store
        url = url.format(closed=closed_port, tmp=tmp_path)  # would end on it instead of serving
        dashboard = said(["dashboard", "--store", url, "--port", str(taken.getsockname()[1])])
    assert dashboard == said(["sweep", "ls", "--store", url])
    code, err = dashboard
    assert code == 2 and err.startswith("clowncar: error: ") and err.count("\n") == 1 and "SECRETPW" not in err, err


def _path_parameters() -> list[tuple[list[str], str]]:
    """(command words, how the parameter is given) for every option and argument of the real CLI that takes a
    path: `--out` for an option, '' for an argument."""
    found: list[tuple[list[str], str]] = []

    def walk(command: Any, words: list[str]) -> None:
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*words, name])
        for param in getattr(command, "params", []):
            if cli._is_path(param):
                found.append((words, param.opts[0] if param.opts[0].startswith("-") else ""))

    walk(cli._command(cli.app), [])
    return found


def test_every_path_option_and_argument_refuses_an_empty_value(capsys) -> None:
    """An unset shell variable (`--out "$OUT"`) is an empty argument, which a path reads as the current directory:
    `analyze` wrote its report into the working directory and `import` read every file under it."""
    params = _path_parameters()
    assert len(params) >= 20 and (["analyze"], "--out") in params and (["import"], "") in params
    for words, option in params:
        argv = [*words, *([option, ""] if option else [""])]
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2, (argv, err)
        assert len(err.strip().splitlines()) == 1 and "is empty (an unset shell variable?)" in err, (argv, err)
    cli.main(["config", "presets"])  # a command without an empty path still runs
    assert "clowncar" in capsys.readouterr().out
