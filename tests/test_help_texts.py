"""What `--help` says of each option, read from the command tree that `clowncar` runs (walk 6, F20)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer.main

import clowncar.cli as cli


def commands(command: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf command of the tree, with the words that call it."""
    command = command or typer.main.get_command(cli.app)
    subs = getattr(command, "commands", None)
    if not subs:
        yield path, command
        return
    for name, sub in subs.items():
        yield from commands(sub, (*path, name))


def help_of(path: tuple[str, ...], option: str) -> str:
    command = dict(commands())[path]
    return next(p.help for p in command.params if option in p.opts)


def test_every_option_and_argument_of_every_command_says_what_it_is() -> None:
    """`data inspect --train-glob` and `--val-glob` showed only their defaults."""
    silent = [f"{' '.join(path)} {p.opts[0]}" for path, command in commands() for p in command.params
              if not (getattr(p, "help", None) or "").strip()]
    assert silent == []


def test_trial_run_out_names_every_file_a_trial_writes() -> None:
    from clowncar.worker.commands import _trial_files

    text = help_of(("trial", "run"), "--out")
    assert "model.ptz" in _trial_files()
    assert [name for name in _trial_files() if name not in text] == []


@pytest.mark.parametrize(("path", "option", "dataset"), [(("data", "fetch-fineweb"), "--out", "fineweb10B_VARIANT"),
                                                         (("data", "demo"), "--data-dir", "demo_sp1024")])
def test_the_data_root_options_say_what_goes_under_the_root(path: tuple[str, ...], option: str,
                                                            dataset: str) -> None:
    text = help_of(path, option)
    assert text.startswith(f"Data root: datasets/{dataset}/") and "tokenizers/" in text
    assert "CLOWNCAR_DATA_DIR" in text


def test_data_build_out_is_the_dataset_folder_itself_not_a_data_root() -> None:
    text = help_of(("data", "build"), "--out")
    assert text.startswith("The dataset folder itself: ") and "not a data root" in text


def test_trial_run_config_names_a_result_json_as_the_readme_reruns_one() -> None:
    """README's `clowncar trial run clowncar-runs/t1/result.json --set train.seed=42` reruns a trial from its
    result.json (`config_load.embedded_config`); the argument's help named a config file and a trial.json only."""
    text = help_of(("trial", "run"), "config")
    assert "trial.json" in text and "result.json" in text
