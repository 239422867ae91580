from __future__ import annotations

import json
from pathlib import Path

import pytest

from clowncar.config import TrialConfig
from clowncar.config_load import load_config
from clowncar.errors import ConfigError
from clowncar.presets import PRESETS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_validates(name: str) -> None:
    cfg = load_config(preset=name)
    assert isinstance(cfg, TrialConfig)


def test_clowncar_preset_matches_the_seed_layout() -> None:
    m = load_config(preset="clowncar").model
    assert (m.num_flat_layers, m.num_crawler_layers, m.crawler_loops, m.inst_dim) == (4, 1, 4, 32)
    assert (m.model_dim, m.num_heads, m.num_kv_heads, m.crawler_mlp_mult) == (512, 8, 4, 4.0)
    cfg = load_config(preset="clowncar")
    assert cfg.quant.crawler_scheme == "int8" and cfg.train.train_seq_len == 2048
    assert cfg.train.max_wallclock_seconds == 600 and cfg.train.warmdown_iters == 2000


def test_file_then_overrides_win_over_preset(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("preset: clowncar\nmodel:\n  crawler_loops: 3\ntrain:\n  seed: 42\n")
    cfg = load_config(f, overrides=["model.crawler_loops=2", "train.cadence=4"])
    assert cfg.model.crawler_loops == 2 and cfg.train.seed == 42 and cfg.train.cadence == 4
    assert cfg.model.inst_dim == 32  # from the preset


def test_unknown_key_is_named_in_the_error(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  crawler_lops: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'model\.crawler_lops'"):
        load_config(f)
    with pytest.raises(ConfigError, match=r"unknown config key 'modle\.x'"):
        load_config(overrides=["modle.x=1"])


@pytest.mark.parametrize("override, fragment", [
    (["model.model_dim=500"], "model.model_dim"),
    (["model.num_kv_heads=3"], "num_kv_heads"),
    (["model.crawler_loops=0"], "model.crawler_loops"),
    (["model.vocab_size=70000"], "model.vocab_size"),
    (["model.model_dim=auto"], "param_budget"),
    (["model.rope_dims=7"], "rope_dims"),
    (["train.train_batch_tokens=1000"], "train_batch_tokens"),
    (["model.model_dim=abc"], "model.model_dim"),
])
def test_impossible_shapes_are_rejected_with_one_line(override: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(preset="clowncar", overrides=override)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_hash_is_stable_and_content_based(tmp_path: Path) -> None:
    a = load_config(preset="tiny-cpu")
    b = load_config(preset="tiny-cpu", overrides=["model.crawler_loops=2"])  # same value as the preset
    c = load_config(preset="tiny-cpu", overrides=["model.crawler_loops=3"])
    assert a.content_hash() == b.content_hash() != c.content_hash()
    round_trip = TrialConfig.model_validate(json.loads(json.dumps(a.to_dict())))
    assert round_trip.content_hash() == a.content_hash()


def test_auto_width_needs_a_budget_and_accepts_one() -> None:
    cfg = load_config(preset="tiny-cpu", overrides=["model.model_dim=auto", "model.param_budget=200000"])
    assert cfg.model.model_dim == "auto"


@pytest.mark.parametrize("text, fragment", [
    ("model: [1, 2", "not valid YAML"),
    ("- just\n- a list\n", "must hold a mapping"),
    ("preset: nope\n", "unknown preset 'nope'"),
])
def test_bad_files_give_one_line_errors(tmp_path: Path, text: str, fragment: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_config(f)


def test_cli_config_show_prints_hash_and_bad_input_exits_2(run_cli, tmp_path: Path) -> None:
    ok = run_cli("config", "show", "--preset", "tiny-cpu", "--json")
    assert ok.returncode == 0, ok.stderr
    shown = json.loads(ok.stdout)
    assert shown["config_hash"] == load_config(preset="tiny-cpu").content_hash()
    bad = run_cli("config", "show", "--preset", "tiny-cpu", "--set", "model.nope=1")
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "unknown config key 'model.nope'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_yaml_words_like_off_stay_strings(tmp_path: Path) -> None:
    cfg = load_config(preset="clowncar", overrides=["model.xsa=off", "train.ema=false"])
    assert cfg.model.xsa == "off" and cfg.train.ema is False
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  xsa: off\ntrain:\n  compile: yes\n")
    cfg = load_config(f)
    assert cfg.model.xsa == "off" and cfg.train.compile is True  # 'yes' reaches pydantic as text, which reads it


def test_a_file_naming_another_preset_than_the_flag_is_refused_not_silently_overridden(tmp_path: Path) -> None:
    path = tmp_path / "c1.yaml"
    path.write_text("preset: tiny-cpu\nmodel: {crawler_loops: 2}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, preset="clowncar")
    assert str(err.value) == (f"--preset clowncar conflicts with {path}'s `preset: tiny-cpu`: give the base once "
                              "(drop --preset, or the file's preset line)")
    same = load_config(path, preset="tiny-cpu")  # the same base twice is no conflict
    assert same == load_config(path) and same.model.crawler_loops == 2
