"""The seed-exact presets select every seed switch (and nothing else), their sizes are the seed's, the
baseline compiles as the seed's did, and switch combinations that cannot work are one-line errors (exit 2)."""

from __future__ import annotations

from typing import Any

import pytest

from clowncar.config import TrialConfig
from clowncar.config_load import load_config
from clowncar.errors import ConfigError
from clowncar.model import build_model, count_params
from clowncar.presets import PRESETS
from clowncar.store.frames import flatten

SEED_SWITCHES = {
    "model.param_dtype": "bf16", "model.softcap_dtype": "activation", "model.rope_table_dtype": "bf16",
    "model.unused_value_embed_dim": 128, "train.train_flow_instructions": False,
    "quant.scale_floor": True, "quant.gptq_feedback": "full_inverse", "quant.passthrough_order": "size_first",
    "quant.rtn_clip": "tensor", "quant.quantile_impl": "torch", "quant.scale_rounding": "fp32",
    "quant.delta_net_scheme": "int8",
}
DELTANET_SWITCHES = {
    "model.delta_net_heads": 4, "model.delta_net_conv_silu": False, "model.delta_net_head_norm": False,
    "model.delta_net_out_norm": True, "model.delta_net_o_init": "orthogonal", "train.train_delta_net": False,
}


def differences(a: str, b: str) -> dict[str, Any]:
    fa, fb = flatten(load_config(preset=a).to_dict()), flatten(load_config(preset=b).to_dict())
    return {k: fb[k] for k in fb if fa[k] != fb[k]}


def test_clowncar_seed_is_clowncar_with_every_seed_switch_flipped() -> None:
    assert differences("clowncar", "clowncar-seed") == SEED_SWITCHES
    defaults = flatten(TrialConfig().to_dict())
    assert all(defaults[k] != v for k, v in SEED_SWITCHES.items())  # ours is the default of every switch
    assert defaults["quant.code_bytes"] == "challenge" == load_config(preset="clowncar-seed").quant.code_bytes


def test_clowncar_ii_seed_adds_the_seeds_deltanet_layer() -> None:
    assert differences("clowncar-seed", "clowncar-ii-seed") == DELTANET_SWITCHES


@pytest.mark.parametrize("preset, params", [("clowncar-seed", 13_430_316), ("clowncar-ii-seed", 14_487_088)])
def test_seed_presets_have_the_seeds_parameter_counts(preset: str, params: int) -> None:
    # ClownCar's own count (computed from its code) and Medusa's logged model_params (ClownCar + 4-head DeltaNet).
    assert count_params(build_model(load_config(preset=preset))) == params


def test_baseline_compiles_like_the_seeds_baseline() -> None:
    assert load_config(preset="baseline").train.compile is True


@pytest.mark.parametrize("overrides, fragment", [
    (["quant.flat_scheme=gptq_int5"], "which had no int5 (quant.flat_scheme = gptq_int5)"),
    (["quant.flat_scheme=int5", "quant.scale_floor=false", "quant.gptq_feedback=cholesky",
      "quant.scale_rounding=stored"], "quant.rtn_clip reproduces the seed's int8/int6 quantizer"),
    (["model.arch=gpt", "model.xsa=off"], "model.unused_value_embed_dim reproduces the seed crawler's"),
])
def test_switch_combinations_that_cannot_work_are_config_errors(overrides: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(preset="clowncar-seed", overrides=overrides)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_the_cli_rejects_them_with_one_line_and_exit_2(run_cli: Any) -> None:
    bad = run_cli("config", "show", "--preset", "clowncar-seed", "--set", "quant.flat_scheme=gptq_int5")
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "no int5" in bad.stderr and "Traceback" not in bad.stderr
    ok = run_cli("config", "show", "--preset", "clowncar", "--set", "quant.flat_scheme=gptq_int5")
    assert ok.returncode == 0, ok.stderr  # our quantizer has int5


def test_config_presets_lists_every_preset_with_one_line(run_cli: Any) -> None:
    proc = run_cli("config", "presets")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(PRESETS)
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)


@pytest.mark.parametrize("preset, overrides, fragment", [
    *(("clowncar", [f"{key}={value}".lower()], f"{key} = {str(value).lower()} cannot act on this model: it needs "
       "model.delta_net_heads > 0") for key, value in DELTANET_SWITCHES.items() if key != "model.delta_net_heads"),
    ("tiny-cpu", ["model.inst_dim=0", "train.train_flow_instructions=false"], "it needs flow instructions"),
    ("tiny-cpu", ["model.crawler_loops=1", "train.train_flow_instructions=false"], "it needs flow instructions"),
    ("tiny-cpu", ["model.num_crawler_layers=0", "train.train_flow_instructions=false"], "it needs flow instructions"),
    ("tiny-cpu", ["quant.flat_scheme=int8", "quant.gptq_feedback=full_inverse"], "it needs a GPTQ scheme"),
])
def test_a_named_seed_switch_that_cannot_act_is_a_config_error(preset: str, overrides: list[str],
                                                               fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(preset=preset, overrides=overrides)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_a_switch_on_the_narrowest_flow_instructions_acts_and_is_accepted() -> None:
    cfg = load_config(preset="tiny-cpu", overrides=["model.inst_dim=1", "train.train_flow_instructions=false"])
    assert cfg.model.inst_dim == 1 and cfg.train.train_flow_instructions is False


def test_a_file_that_names_one_is_refused_too(tmp_path: Any) -> None:
    path = tmp_path / "inert.yaml"
    path.write_text("preset: clowncar\nmodel:\n  delta_net_out_norm: true\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^model.delta_net_out_norm = true cannot act on this model"):
        load_config(path)


@pytest.mark.parametrize("preset, overrides, same_as", [
    # the seed's DeltaNet switches, set by the preset: without heads it is clowncar-seed
    ("clowncar-ii-seed", ["model.delta_net_heads=0"], ("clowncar-seed", [])),
    # its flow-instruction and GPTQ switches, set by the preset, on a model without either
    ("clowncar-seed", ["model.inst_dim=0", "quant.flat_scheme=int8"],
     ("clowncar-seed", ["model.inst_dim=0", "quant.flat_scheme=int8", "train.train_flow_instructions=true",
                        "quant.gptq_feedback=cholesky"])),
    # clowncar-seed sets this one on its model without DeltaNet, so it is never refused
    ("clowncar", ["quant.delta_net_scheme=int8"], ("clowncar", [])),
])
def test_a_switch_the_preset_set_is_accepted_and_merged_by_the_canonical_form(
        preset: str, overrides: list[str], same_as: tuple[str, list[str]]) -> None:
    from clowncar.config_canonical import canonical

    cfg = load_config(preset=preset, overrides=overrides)
    other = load_config(preset=same_as[0], overrides=same_as[1])
    assert cfg.content_hash() != other.content_hash()
    assert canonical(cfg).content_hash() == canonical(other).content_hash()


def test_the_cli_refuses_a_named_inert_switch_in_one_line_with_exit_2(run_cli: Any) -> None:
    bad = run_cli("config", "show", "--preset", "clowncar", "--set", "model.delta_net_o_init=orthogonal")
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "needs model.delta_net_heads > 0" in bad.stderr
    ok = run_cli("config", "show", "--preset", "clowncar", "--set", "model.delta_net_heads=4",
                 "--set", "model.delta_net_o_init=orthogonal")
    assert ok.returncode == 0, ok.stderr
