"""`train.compile_mode` next to `train.compile`: presets and old configs load as before, a mode without compile
or an unknown mode is one line (exit 2 from the CLI), and the mode is part of the config (and its hash)."""

from __future__ import annotations

import pytest

from clowncar.config_canonical import canonical
from clowncar.config_load import from_dict, load_config
from clowncar.errors import ConfigError
from clowncar.presets import PRESETS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_keep_their_compile_switch_in_the_default_mode(name: str) -> None:
    t = load_config(preset=name).train
    assert t.compile_mode == "default"
    assert t.compile == (name in ("baseline", "clowncar", "clowncar-seed", "clowncar-ii-seed"))


def test_a_config_written_before_compile_mode_loads_in_the_default_mode() -> None:
    old = load_config(preset="clowncar").to_dict()
    del old["train"]["compile_mode"]
    cfg = from_dict(old)
    assert cfg.train.compile and cfg.train.compile_mode == "default"


@pytest.mark.parametrize("mode", ["reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"])
def test_a_compile_mode_needs_compile_on(mode: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(preset="tiny-cpu", overrides=[f"train.compile_mode={mode}"])
    assert str(err.value) == f"train.compile_mode = {mode} needs train.compile = true"
    cfg = load_config(preset="tiny-cpu", overrides=["train.compile=true", f"train.compile_mode={mode}"])
    assert cfg.train.compile_mode == mode
    # A different compilation, kept apart by the hash and by canonicalization (it is not a moot field).
    plain = load_config(preset="tiny-cpu", overrides=["train.compile=true"])
    assert cfg.content_hash() != plain.content_hash()
    assert canonical(cfg).content_hash() != canonical(plain).content_hash()


def test_unknown_compile_mode_is_named(run_cli) -> None:
    with pytest.raises(ConfigError, match=r"config key 'train\.compile_mode'"):
        load_config(preset="clowncar", overrides=["train.compile_mode=cudagraphs"])
    ok = run_cli("config", "show", "--preset", "clowncar", "--set", "train.compile_mode=reduce-overhead")
    assert ok.returncode == 0 and "compile_mode: reduce-overhead" in ok.stdout
    bad = run_cli("config", "show", "--preset", "tiny-cpu", "--set", "train.compile_mode=reduce-overhead")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].endswith("train.compile_mode = reduce-overhead needs "
                                                        "train.compile = true")
