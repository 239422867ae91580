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


@pytest.mark.parametrize(("argv", "fragment"), [
    (["trial", "run"], "give a trial config file or --preset NAME"),
    (["sweep", "run"], "Missing argument 'spec'"),
    (["bogus"], "No such command 'bogus'"),
    (["config", "show", "--bogus"], "No such option: --bogus"),
    (["config", "show", "--set"], "requires an argument"),
    (["sweep", "run", "x.yaml", "--num-cpus", "abc"], "'--num-cpus'"),
    (["sweep", "run", "x.yaml", "--num-cpus", "0"], "'--num-cpus'"),
], ids=["missing-config", "missing-spec", "unknown-command", "unknown-option", "option-without-value",
        "not-an-int", "below-min"])
def test_usage_errors_are_one_line_and_exit_2(argv: list[str], fragment: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert ended.value.code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("clowncar: error: ") and fragment in err
    assert "internal error" not in err


def test_bare_command_group_prints_its_help_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        cli.main(["trial"])
    out = capsys.readouterr()
    assert ended.value.code == 0 and "run" in out.out and not out.err


@pytest.mark.parametrize("code", [1, 3, 4])
def test_a_command_exits_with_the_code_it_ends_with(code: int, monkeypatch: pytest.MonkeyPatch) -> None:
    def work() -> None:
        raise typer.Exit(code)

    monkeypatch.setattr(cli, "app", one_command_app(work))
    with pytest.raises(SystemExit) as ended:
        cli.main(["work"])
    assert ended.value.code == code


def test_debug_shows_the_traceback_and_keeps_the_exit_code(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from clowncar.errors import RunFailed

    def work() -> None:
        raise RunFailed("trial diverged: loss nan", 3)

    monkeypatch.setattr(cli, "app", one_command_app(work))
    monkeypatch.setenv("CLOWNCAR_DEBUG", "1")
    with pytest.raises(SystemExit) as ended:
        cli.main(["work"])
    err = capsys.readouterr().err
    assert ended.value.code == 3
    assert "Traceback" in err and err.strip().splitlines()[-1] == "clowncar: error: trial diverged: loss nan"


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        cli.main(["data", "--help"])
    except SystemExit as ended:
        assert ended.code in (0, None)
    assert "build" in capsys.readouterr().out
