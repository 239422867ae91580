"""Where a trial config comes from and how its mistakes read: a trial's own result.json reruns that trial, a
preset's name given as a file says which option it meant, and a value or section of the wrong kind names the key
a user wrote (not pydantic's union branch or class name)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clowncar.config_load import from_dict, load_config
from clowncar.errors import ConfigError


def test_a_trials_result_json_gives_back_its_config_with_the_same_hash(tmp_path: Path) -> None:
    cfg = load_config(None, preset="tiny-cpu", overrides=["train.iterations=7"])
    result = {"status": "ok", "artifact_bytes": 1, "provenance": {"config": cfg.to_dict(), "seed": 1337}}
    (tmp_path / "result.json").write_text(json.dumps(result))
    again = load_config(tmp_path / "result.json")
    assert again.content_hash() == cfg.content_hash()
    other = load_config(tmp_path / "result.json", overrides=["train.seed=42"])
    assert (other.train.seed, other.train.iterations) == (42, 7)


def test_a_trial_record_that_lacks_newer_keys_takes_their_defaults(tmp_path: Path) -> None:
    # a trial.json written before some keys existed: the keys it has are its own, the others the defaults
    old = {"data": {}, "model": {"crawler_loops": 2}, "train": {}, "quant": {}, "eval": {}}
    (tmp_path / "trial.json").write_text(json.dumps({"config": old}))
    cfg = load_config(tmp_path / "trial.json")
    assert cfg.model.crawler_loops == 2 and cfg.train.iterations == 20000


def _record(tmp_path: Path, preset: str, *overrides: str) -> Path:
    cfg = load_config(None, preset=preset, overrides=list(overrides))
    (tmp_path / "result.json").write_text(json.dumps({"status": "ok", "provenance": {"config": cfg.to_dict()}}))
    return tmp_path / "result.json"


def test_a_preset_beside_a_trial_record_is_refused(tmp_path: Path) -> None:
    # it was ignored: the record's whole config left the preset nothing to give, and the hash stayed the same
    result = _record(tmp_path, "tiny-cpu", "train.iterations=3")
    with pytest.raises(ConfigError) as err:
        load_config(result, preset="clowncar", overrides=["train.seed=4"])
    assert str(err.value) == (f"--preset clowncar with {result}: a trial record holds its whole config, which a "
                              "preset cannot change; drop --preset (change keys with --set)")
    (tmp_path / "trial.json").write_text(json.dumps({"config": load_config(result).to_dict(), "sweep": "s"}))
    with pytest.raises(ConfigError, match=r"^--preset tiny-cpu with .*trial\.json: a trial record"):
        load_config(tmp_path / "trial.json", preset="tiny-cpu")


def test_a_seed_switch_set_on_a_trial_record_that_cannot_act_is_refused_as_on_a_preset(tmp_path: Path) -> None:
    result = _record(tmp_path, "tiny-cpu", "train.iterations=3")
    line = ("model.delta_net_out_norm = true cannot act on this model: it needs model.delta_net_heads > 0 (a model "
            "without DeltaNet heads has no DeltaNet layer)")
    for source in ({"preset": "tiny-cpu"}, {"path": result}):
        with pytest.raises(ConfigError) as err:
            load_config(**source, overrides=["model.delta_net_out_norm=true"])
        assert str(err.value) == line
    # the record's own switches were its preset's (an ablation): it reruns, with another seed too
    ablation = _record(tmp_path, "clowncar-ii-seed", "model.delta_net_heads=0")
    assert load_config(ablation, overrides=["train.seed=2"]).model.delta_net_out_norm is True


def test_a_provenance_without_a_whole_config_is_no_trial_record_and_says_what_one_holds(tmp_path: Path) -> None:
    """A result.json whose provenance.config is not a whole config (a name, or a section short) is refused at its
    provenance, naming what a record holds; it was refused at its first result field ('artifact_bytes')."""
    whole = load_config(None, preset="tiny-cpu").to_dict()
    for config in ("tiny-cpu", {k: v for k, v in whole.items() if k != "model"}):
        (tmp_path / "result.json").write_text(json.dumps({"artifact_bytes": 9, "status": "ok",
                                                          "provenance": {"config": config}}))
        with pytest.raises(ConfigError) as err:
            load_config(tmp_path / "result.json")
        assert str(err.value).startswith("unknown config key 'provenance': a trial record (trial.json, result.json")


def test_a_config_key_beside_a_config_files_keys_is_refused_not_read_as_a_trial_record(tmp_path: Path) -> None:
    # a top-level `config:` took the whole file for a trial record: the preset and the model section were dropped
    (tmp_path / "c.yaml").write_text("preset: tiny-cpu\nmodel:\n  crawler_loops: 3\nconfig:\n  train:\n    seed: 7\n")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "c.yaml")
    assert str(err.value).startswith("unknown config key 'config': ") and "\n" not in str(err.value)
    # a record holds a whole config: one section alone is a mistyped config file, not a record
    (tmp_path / "part.json").write_text(json.dumps({"config": {"train": {"seed": 7}}, "sweep": "s", "params": {}}))
    with pytest.raises(ConfigError, match=r"^unknown config key 'config': "):
        load_config(tmp_path / "part.json")


def test_what_a_trial_and_config_show_write_is_read_as_a_trial_record(tmp_path: Path) -> None:
    cfg = load_config(None, preset="tiny-cpu", overrides=["train.seed=5"])
    trial = {"config": cfg.to_dict(), "sweep": "s", "params": {"train.seed": 5}, "number": 3, "attempt": 0}
    (tmp_path / "trial.json").write_text(json.dumps(trial))  # the orchestrator's form
    assert load_config(tmp_path / "trial.json").content_hash() == cfg.content_hash()
    shown = {"config": cfg.to_dict(), "config_hash": cfg.content_hash()}  # `config show --json`
    (tmp_path / "shown.json").write_text(json.dumps(shown))
    assert load_config(tmp_path / "shown.json", overrides=["train.seed=6"]).train.seed == 6


def test_a_preset_name_given_where_a_file_goes_says_which_option_was_meant(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^cannot read clowncar-seed: no such file \(did you mean --preset "
                                          r"clowncar-seed\?\)$"):
        load_config("clowncar-seed")
    with pytest.raises(ConfigError, match=r"^cannot read nothing-here: No such file or directory$"):
        load_config("nothing-here")  # not a preset: the plain line


@pytest.mark.parametrize(("data", "line"), [
    ({"model": {"model_dim": "1e3"}}, "config key 'model.model_dim': Input should be a valid integer, unable to parse "
     "string as an integer; or Input should be 'auto' (got '1e3')"),
    ({"model": None}, "config section 'model' must be a mapping of keys, got null"),
    ({"train": 5}, "config section 'train' must be a mapping of keys, got 5"),
    ({"quant": {"gptq_col_order": "up"}}, "config key 'quant.gptq_col_order': Input should be 'ascending', 'descending' or "
     "'natural'"),
], ids=["union-value", "null-section", "number-section", "literal"])
def test_a_value_of_the_wrong_kind_names_the_key_as_written(data: dict, line: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_dict(data)
    assert str(err.value) == line
