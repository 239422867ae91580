"""A shard glob is matched inside the shard directory: one that climbs out with '..' read another dataset's shards
(encoded with another tokenizer than the one checked), so a trial or `artifact eval` scored BPB on the wrong bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from clowncar.config_load import load_config
from clowncar.data.paths import glob_problem
from clowncar.data.shards import list_shards
from clowncar.errors import ConfigError, DataError


@pytest.mark.parametrize("pattern", ["../other/fineweb_val_*.bin", "sub/../../other/*.bin", ".."])
def test_a_glob_with_dotdot_is_refused(pattern: str) -> None:
    assert glob_problem(pattern) == "climbs out with '..': shard globs are matched inside the shard directory"


def test_list_shards_does_not_read_a_neighbouring_dataset(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "fineweb_val_000000.bin").write_bytes(b"x")
    with pytest.raises(DataError, match=r"^shard glob '\.\./other/fineweb_val_\*\.bin' climbs out with '\.\.'"):
        list_shards(tmp_path / "mine", "../other/fineweb_val_*.bin")


@pytest.mark.parametrize("key", ["data.val_glob", "data.train_glob"])
def test_a_config_glob_with_dotdot_is_a_config_error(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^config key '{key}': glob '\.\./v512/x_\*\.bin' climbs out with '\.\.'"):
        load_config(preset="tiny-cpu", overrides=[f"{key}=../v512/x_*.bin"])


def test_a_glob_inside_the_directory_still_passes() -> None:
    assert glob_problem("val/**/*.bin") is None
    assert glob_problem("fineweb_val_00000[0-3].bin") is None
    assert glob_problem("a..b_*.bin") is None
