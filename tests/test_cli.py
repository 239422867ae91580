"""The entry point turns interrupts and errors into one line and the right exit code, for any command."""

from __future__ import annotations

import pytest
import typer

import clowncar.cli as cli


def one_command_app(body: typer.models.CommandFunctionType) -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.command()(body)
    app.command("other")(lambda: None)  # two commands, so the first is addressed by name as in clowncar
    return app


@pytest.mark.parametrize("exc", [KeyboardInterrupt, ValueError], ids=["ctrl-c", "bug"])
def test_interrupt_or_crash_in_any_command_is_one_line_and_nonzero(
        exc: type[BaseException], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def work() -> None:
        raise exc("boom")

    monkeypatch.setattr(cli, "app", one_command_app(work))
    with pytest.raises(SystemExit) as ended:
        cli.main(["work"])
    err = capsys.readouterr().err.strip()
    assert ended.value.code == (130 if exc is KeyboardInterrupt else 1)
    assert len(err.splitlines()) == 1 and err.startswith("clowncar: error: ")


def test_a_command_that_finishes_exits_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "app", one_command_app(lambda: None))
    cli.main(["other"])  # returns normally: exit status 0


@pytest.mark.parametrize("argv", [["data", "nosuch"], ["--no-such-flag"],
                                  ["data", "build", "--text", "x", "--val-docs", "many", "--out", "o"]],
                         ids=["unknown command", "unknown option", "bad value"])
def test_usage_errors_are_one_line_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Whichever click typer raises through (recent typer ships its own copy), a usage error is the user's:
    exit 2, never reported as an internal error."""
    with pytest.raises(SystemExit) as ended:
        cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert ended.value.code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("clowncar: error: ") and "internal error" not in err


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        cli.main(["data", "--help"])
    except SystemExit as ended:
        assert ended.code in (0, None)
    assert "build" in capsys.readouterr().out
