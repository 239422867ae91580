"""Config values are read as the digits say: YAML 1.1 read `seed: 0042` as octal (34), `1:30` as base 60 (90) and
`0b101` as binary, so a config file or a --set silently ran another value than the one written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clowncar.config_load import load_config
from clowncar.errors import ConfigError
from clowncar.strict_yaml import yaml_load


def test_a_leading_zero_is_decimal_in_a_file_and_in_an_override(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  seed: 0042\n")
    assert load_config(f, preset="tiny-cpu").train.seed == 42
    cfg = load_config(preset="tiny-cpu", overrides=["train.seed=0042", "model.model_dim=064"])
    assert (cfg.train.seed, cfg.model.model_dim) == (42, 64)


@pytest.mark.parametrize(("override", "key"), [("train.max_wallclock_seconds=1:30", "train.max_wallclock_seconds"),
                                               ("train.matrix_lr=1:0.5", "train.matrix_lr"),
                                               ("train.seed=0b101", "train.seed")])
def test_base_60_and_binary_are_refused_not_converted(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^config key '{key}': Input should be a valid"):
        load_config(preset="tiny-cpu", overrides=[override])


def test_the_plain_number_forms_still_resolve() -> None:
    text = "[0, -3, +4, 1337, 1_000, 0x10, 1.5, -0.25, .5, 2., 1.0e+3, .inf, -.inf]"
    assert yaml_load(text) == [0, -3, 4, 1337, 1000, 16, 1.5, -0.25, 0.5, 2.0, 1000.0, float("inf"), float("-inf")]
    assert yaml_load(".nan") != yaml_load(".nan")  # a float nan


@pytest.mark.parametrize("text", ["0042", "1:30", "0b101", "09", "1e3"])
def test_a_string_that_looks_like_a_number_round_trips_through_safe_dump(text: str) -> None:
    assert yaml_load(text) == text
    assert yaml_load(yaml.safe_dump({"v": text})) == {"v": text}
