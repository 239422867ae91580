"""The entry point turns interrupts and errors into one line and the right exit code, for any command."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

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
    (["trial", "run", "--out", "o"], "give a trial config file or --preset NAME"),
    (["sweep", "run"], "Missing argument 'SPEC'"),
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


def help_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """What the command prints on stdout; it ends with exit code 0 (returning or raising SystemExit)."""
    try:
        cli.main(argv)
    except SystemExit as ended:
        assert ended.code in (0, None)
    return capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--help"], ["sweep", "run", "--help"], ["import", "-h"], ["store", "ls", "-h"]])
def test_help_shows_no_type_for_a_flag_and_names_arguments_in_capitals(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    out = help_of(argv, capsys)
    assert "Show this message and exit." in out  # -h is --help
    assert "<bool>" not in out  # a flag takes no value
    usage = next(line for line in out.splitlines() if "Usage:" in line)
    assert "{" not in usage


def _options(command: typer.core.TyperGroup, path: str = "clowncar") -> list[tuple[str, Any, Any]]:
    """(command path, option, context) for every option of every command in the tree."""
    ctx = command.context_class(command, info_name=path)
    found = [(path, p, ctx) for p in command.params if isinstance(p, typer.core.TyperOption)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _options(sub, f"{path} {name}")
    return found


def test_a_repeatable_option_shows_what_one_use_takes_and_says_it_repeats() -> None:
    repeatable = [(path, opt, ctx) for path, opt, ctx in _options(cli._command(cli.app)) if opt.multiple]
    assert {(path, opt.opts[0]) for path, opt, _ in repeatable} >= {
        ("clowncar config show", "--set"), ("clowncar trial run", "--set"), ("clowncar data build", "--text"),
        ("clowncar store export", "--sweep")}
    for path, opt, ctx in repeatable:
        shown = opt.display_type_rich(ctx)
        assert "list" not in shown and "repeat" in opt.help.lower(), (path, opt.opts, shown, opt.help)
    assert {opt.display_type_rich(ctx) for path, opt, ctx in repeatable if opt.opts == ["--set"]} == {"KEY=VALUE"}


@pytest.mark.parametrize("argv", [["config", "show"], ["trial", "run"]])
def test_the_set_option_reads_as_what_the_user_types(argv: list[str], capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    row = next(line for line in help_of([*argv, "--help"], capsys).splitlines() if "--set " in line)
    assert "--set KEY=VALUE Dotted override" in " ".join(row.split()) and "list[" not in row, row


def test_usage_lines_name_required_arguments_bare_and_optional_ones_in_brackets(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert "Usage: clowncar sweep run [OPTIONS] SPEC " in help_of(["sweep", "run", "-h"], capsys)
    assert "Usage: clowncar import [OPTIONS] PATHS... " in help_of(["import", "-h"], capsys)
    assert "Usage: clowncar store ls [OPTIONS] [SWEEP] " in help_of(["store", "ls", "-h"], capsys)


@pytest.mark.parametrize("argv", [["store", "ls"], ["store", "export"], ["dashboard"], ["sweep", "run"],
                                  ["analyze"], ["import"], ["demo"]])
def test_every_store_option_states_the_default_store_the_settings_use(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    out = " ".join(help_of([*argv, "--help"], capsys).replace("│", " ").split())
    assert "$CLOWNCAR_RUNS_DIR/clowncar.db" in out and "CLOWNCAR_STORE_FILE" in out
    assert "sqlite:///clowncar-runs" not in out


def test_the_store_default_in_the_help_is_where_the_settings_put_the_store(tmp_path: Path) -> None:
    from clowncar.settings import STORE_DEFAULT, load_settings

    runs = tmp_path / "runs"
    assert load_settings({"CLOWNCAR_RUNS_DIR": str(runs)}).store_url == f"sqlite:///{runs / 'clowncar.db'}"
    assert STORE_DEFAULT.endswith("SQLite at $CLOWNCAR_RUNS_DIR/clowncar.db")
    readme = (Path(cli.__file__).parents[1] / "README.md").read_text()
    assert "| SQLite at `$CLOWNCAR_RUNS_DIR/clowncar.db` |" in readme and "sqlite:///clowncar-runs" not in readme


def test_a_required_option_is_marked_required_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    out = help_of(["trial", "run", "--help"], capsys)
    out_row = next(line for line in out.splitlines() if "--out " in line and "│" in line)
    assert out_row.split()[:2] == ["│", "*"], out_row  # the panel's required star


def test_a_command_list_entry_is_its_first_paragraph_on_joined_lines(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # wide enough that rich wraps nothing: a line break left is the docstring's
    entry = next(line for line in help_of(["--help"], capsys).splitlines() if "│ demo " in line)
    assert "The one-command tour:" in entry and "(or, with --signals, the signal sweep) locally" in entry


def test_version_prints_the_package_version_and_the_checkout_commit(capsys: pytest.CaptureFixture[str]) -> None:
    import clowncar
    from clowncar.version import checkout_commit

    out = help_of(["--version"], capsys).strip()
    state = checkout_commit()
    if state is None:
        assert out == f"clowncar {clowncar.__version__}"
    else:
        commit, dirty = state
        assert re.fullmatch(r"[0-9a-f]{40}", commit)
        assert out == f"clowncar {clowncar.__version__} (git {commit}" + (
            ", with uncommitted changes)" if dirty else ")")


def test_version_outside_a_checkout_is_the_package_version_alone(tmp_path: Path) -> None:
    import clowncar
    from clowncar.version import checkout_commit, version_line

    assert checkout_commit(tmp_path) is None
    assert version_line(tmp_path) == f"clowncar {clowncar.__version__}"


def test_version_of_a_checkout_names_its_commit_and_a_changed_tracked_file(tmp_path: Path) -> None:
    from clowncar.version import version_line

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "f.txt").write_text("a\n")
    git("add", "f.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = git("rev-parse", "HEAD")
    assert version_line(tmp_path).endswith(f"(git {head})")
    (tmp_path / "f.txt").write_text("b\n")
    assert version_line(tmp_path).endswith(f"(git {head}, with uncommitted changes)")


def test_output_whose_reader_closed_the_pipe_ends_quietly_with_141(tmp_path: Path) -> None:
    """`clowncar config show ... | head -1`: the reader leaves before the command writes; typer alone made that a
    silent exit 1. The reader here closes its end at once, so every write meets a closed pipe."""
    import os
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for _ in range(2):
        read_end, write_end = os.pipe()
        os.close(read_end)
        proc = subprocess.run([sys.executable, "-m", "clowncar", "config", "show", "--preset", "clowncar"],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                              timeout=120)
        os.close(write_end)
        assert (proc.returncode, proc.stderr) == (141, "")


def test_a_broken_pipe_that_is_not_stdout_is_an_internal_error_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def work() -> None:
        raise BrokenPipeError(32, "Broken pipe")  # a socket or a child's pipe: stdout is still read

    monkeypatch.setattr(cli, "app", one_command_app(work))
    monkeypatch.setattr(cli, "_stdout_reader_gone", lambda: False)
    with pytest.raises(SystemExit) as ended:
        cli.main(["work"])
    assert ended.value.code == 1
    assert capsys.readouterr().err.startswith("clowncar: error: internal error: BrokenPipeError")
