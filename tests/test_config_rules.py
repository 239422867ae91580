"""The trial config's rules, each at its edge: the shapes that can work are accepted right up to the line and
refused one step past it with a one-line message naming the key; overrides, merges and files combine in the
documented order without touching their inputs; the content hash is the stored contract (a literal pins it)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from clowncar.config import TrialConfig, dict_hash
from clowncar.config_load import from_dict, load_config
from clowncar.errors import ConfigError
from clowncar.overrides import apply_overrides, deep_merge, parse_override


def refused(overrides: list[str], preset: str = "tiny-cpu") -> str:
    with pytest.raises(ConfigError) as err:
        load_config(preset=preset, overrides=overrides)
    text = str(err.value)
    assert "\n" not in text
    return text


# -- shapes ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    (["model.num_heads=8", "model.num_kv_heads=3"],
     "model.num_heads (8) must be divisible by model.num_kv_heads (3)"),
    (["model.model_dim=auto", "model.param_budget=0"], "model.model_dim is 'auto' but model.param_budget is not set"),
    (["model.model_dim=0"], "model.model_dim (0) must be a positive multiple of model.num_heads (4)"),
    (["model.model_dim=-8"], "model.model_dim (-8) must be a positive multiple of model.num_heads (4)"),
    (["model.model_dim=66"], "model.model_dim (66) must be a positive multiple of model.num_heads (4)"),
    (["model.model_dim=36"], "head dim 9 (model.model_dim / model.num_heads) must be even for rotary"),
    (["model.model_dim=64", "model.rope_dims=18"], "model.rope_dims (18) must be even and at most the head dim 16"),
    (["model.model_dim=64", "model.rope_dims=3"], "model.rope_dims (3) must be even and at most the head dim 16"),
    (["model.arch=gpt", "model.delta_net_heads=1"], "model.delta_net_heads needs model.arch = crawler"),
    (["model.inst_dim=4", "model.loop_offsets=learned"],
     "model.loop_offsets = learned needs model.inst_dim = 0 (flow instructions replace the loop offsets)"),
    (["model.crawler_mode=deliberate", "model.inst_dim=0", "model.crawler_loops=3"],
     "model.crawler_mode = deliberate needs model.crawler_loops = 2, model.inst_dim = 0 and at least one crawler layer"),
    (["model.crawler_mode=deliberate", "model.inst_dim=4", "model.crawler_loops=2"], "crawler_mode = deliberate needs"),
    (["model.crawler_mode=deliberate", "model.inst_dim=0", "model.crawler_loops=2", "model.num_crawler_layers=0"],
     "crawler_mode = deliberate needs"),
    (["train.train_seq_len=32", "train.grad_accum=3", "train.train_batch_tokens=160"],
     "train.train_batch_tokens (160) must be a multiple of train.train_seq_len x train.grad_accum (96)"),
    (["train.compile_mode=max-autotune"], "train.compile_mode = max-autotune needs train.compile = true"),
    (["train.max_wallclock_seconds=3", "train.reserve_seconds=3"],
     "train.reserve_seconds (3) must be less than train.max_wallclock_seconds (3), or the cap leaves no time to "
     "train (max_wallclock_seconds = 0 turns the cap off)"),
    (["train.max_wallclock_seconds=2.5", "train.reserve_seconds=4"], "train.reserve_seconds (4) must be less than "
                                                                     "train.max_wallclock_seconds (2.5)"),
    (["eval.seq_len=32", "eval.stride=33"], "eval.stride (33) must not exceed eval.seq_len (32)"),
    (["model.bigram_vocab_size=1"], "config key 'model.bigram_vocab_size': must be 0 (off) or at least 2: the hash "
                                    "keeps one bucket for the first position and spreads the rest over buckets - 1"),
    (["model.trigram_vocab_size=1"], "config key 'model.trigram_vocab_size': must be 0 (off) or at least 2"),
    (["model.mlp_mult=0.0156"], "config key 'model': model.mlp_mult (0.0156) leaves the MLP without a hidden unit at "
                                "model.model_dim (64): int(0.0156 x 64) = 0"),
    (["model.crawler_mlp_mult=0.0156"], "model.crawler_mlp_mult (0.0156) leaves the MLP without a hidden unit at "
                                        "model.model_dim (64): int(0.0156 x 64) = 0"),
    (["model.arch=gpt", "model.mlp_mult=0.0156"], "model.mlp_mult (0.0156) leaves the MLP without a hidden unit"),
    (["model.num_flat_layers=1", "model.mlp_mult=0.0156"], "model.mlp_mult (0.0156) leaves the MLP"),  # one is built
    (["model.model_dim=auto", "model.param_budget=1", "model.mlp_mult=0.124"],
     "model.mlp_mult (0.124) leaves the MLP without a hidden unit at the narrowest width model_dim: auto can pick "
     "(8 = 2 x model.num_heads): int(0.124 x 8) = 0"),
    (["quant.gptq_calib_seq_len=2049"],
     "quant.gptq_calib_seq_len (2049) must be at most 2048: the longest of train.train_seq_len (128), the eval "
     "sequence length (128) and the seed's calibration length 2048"),
    (["train.train_seq_len=4096", "train.train_batch_tokens=8192", "quant.gptq_calib_seq_len=4097"],
     "quant.gptq_calib_seq_len (4097) must be at most 4096: the longest of train.train_seq_len (4096)"),
    (["eval.seq_len=3000", "quant.gptq_calib_seq_len=3001"],
     "quant.gptq_calib_seq_len (3001) must be at most 3000: the longest of train.train_seq_len (128), the eval "
     "sequence length (3000)"),
    (["quant.gptq_calib_seqs=16385", "quant.gptq_calib_seq_len=2048"],
     "quant.gptq_calib_seqs x quant.gptq_calib_seq_len = 33,556,480 calibration tokens; at most 33,554,432 (64x the "
     "seed's 256 x 2048)"),
    (["quant.gptq_calib_seqs=1000000000000"], "quant.gptq_calib_seqs x quant.gptq_calib_seq_len = "
                                              "128,000,000,000,000 calibration tokens"),
    (["data.val_glob="], "config key 'data.val_glob': glob '' is empty (it must match shard file names, e.g. "
                         "fineweb_val_*.bin)"),
    (["data.val_glob=' '"], "config key 'data.val_glob': glob ' ' is empty"),
    (["data.train_glob=/data/*.bin"], "config key 'data.train_glob': glob '/data/*.bin' is an absolute path: shard "
                                      "globs are matched inside the shard directory"),
    (["data.val_glob=./"], "config key 'data.val_glob': glob './' names no file"),
    (["data.val_glob=v**.bin"], "config key 'data.val_glob': glob 'v**.bin' uses '**' inside a name: '**' can only "
                                "be a whole path component"),
])
def test_a_shape_past_its_edge_is_refused_with_the_exact_line(overrides: list[str], message: str) -> None:
    assert message in refused(overrides)


def test_the_stride_is_checked_against_the_eval_length_the_trial_uses() -> None:
    # eval.seq_len 0 evaluates at train.train_seq_len: a longer stride was accepted and no sliding eval ran
    assert refused(["eval.seq_len=0", "eval.stride=200"]) == (
        "eval.stride (200) must not exceed the eval sequence length (128: eval.seq_len 0 uses train.train_seq_len)")
    assert refused(["eval.seq_len=0", "train.train_seq_len=32", "train.train_batch_tokens=256", "eval.stride=33"]) \
        .startswith("eval.stride (33) must not exceed the eval sequence length (32: ")
    assert refused(["eval.seq_len=128", "eval.stride=200"]) == "eval.stride (200) must not exceed eval.seq_len (128)"


EDGES_THAT_BUILD = [
    ["model.bigram_vocab_size=2", "model.trigram_vocab_size=2"],  # one bucket for position 0, one for the rest
    ["model.mlp_mult=0.015625", "model.crawler_mlp_mult=0.015625"],  # 1/64 of width 64: one hidden unit
    ["model.arch=gpt", "model.num_layers=2", "model.mlp_mult=0.015625"],
    # 1/8 of 8 = 2 x num_heads, the width auto picks here (9,901 parameters; 16 would need 12,845)
    ["model.vocab_size=64", "model.model_dim=auto", "model.param_budget=12000", "model.mlp_mult=0.125",
     "model.crawler_mlp_mult=0.125"],
]


@pytest.mark.parametrize("overrides", [
    ["model.num_heads=4", "model.num_kv_heads=4"],  # MHA: kv heads = heads
    ["model.num_heads=4", "model.num_kv_heads=1"],  # MQA
    ["model.model_dim=auto", "model.param_budget=1"],
    ["model.model_dim=8", "model.num_heads=4", "model.num_kv_heads=2"],  # head dim 2, the smallest even one
    ["model.model_dim=64", "model.rope_dims=16"],  # rope over the whole head
    ["model.model_dim=64", "model.rope_dims=0"],
    ["model.arch=gpt", "model.delta_net_heads=0"],
    ["model.arch=crawler", "model.delta_net_heads=2"],
    ["model.inst_dim=0", "model.loop_offsets=learned_n_row"],
    ["model.inst_dim=4", "model.loop_offsets=fixed"],
    ["model.crawler_mode=deliberate", "model.inst_dim=0", "model.crawler_loops=2", "model.num_crawler_layers=1"],
    ["train.train_seq_len=32", "train.grad_accum=3", "train.train_batch_tokens=96"],
    ["train.compile=true", "train.compile_mode=reduce-overhead"],
    ["eval.seq_len=32", "eval.stride=32"],
    ["eval.seq_len=0", "eval.stride=128"],  # the eval follows train.train_seq_len (128 on tiny-cpu)
    *EDGES_THAT_BUILD,
    ["model.num_flat_layers=0", "model.mlp_mult=0.001"],  # no flat block: the flat multiplier is unused
    ["model.num_crawler_layers=0", "model.crawler_mlp_mult=0.001"],
    ["model.arch=gpt", "model.crawler_mlp_mult=0.001"],
    ["quant.gptq_calib_seqs=16384", "quant.gptq_calib_seq_len=2048"],  # the cap itself
    ["quant.gptq_calib_seq_len=2048"],  # the seed's length, longer than any sequence of this trial
    ["train.train_seq_len=4096", "train.train_batch_tokens=8192", "quant.gptq_calib_seq_len=4096"],
    ["eval.seq_len=3000", "quant.gptq_calib_seq_len=3000"],
    ["data.val_glob=val/**/*.bin", "data.train_glob=fineweb_train_00000[0-3].bin"],
])
def test_a_shape_on_its_edge_is_accepted(overrides: list[str]) -> None:
    load_config(preset="tiny-cpu", overrides=overrides)


@pytest.mark.parametrize("overrides", EDGES_THAT_BUILD)
def test_the_accepted_edges_build_a_model_that_runs(overrides: list[str]) -> None:
    """The bounds are the model's own: one step inside them still builds and runs forward and backward."""
    import torch

    from clowncar.model import build_model

    cfg = load_config(preset="tiny-cpu", overrides=["model.vocab_size=64", *overrides])
    torch.manual_seed(0)
    tokens = torch.randint(0, 64, (2, 9))
    model = build_model(cfg)
    if cfg.model.model_dim == "auto":
        assert model.tok_emb.weight.shape[1] == 8
    loss = model(tokens[:, :-1], tokens[:, 1:])
    loss.backward()
    assert torch.isfinite(loss)


@pytest.mark.parametrize("switch", ["quant.scale_floor=true", "quant.gptq_feedback=full_inverse",
                                    "quant.rtn_clip=tensor", "quant.scale_rounding=fp32"])
@pytest.mark.parametrize("scheme", ["int5", "gptq_int5"])
def test_each_seed_quantizer_switch_alone_refuses_int5(switch: str, scheme: str) -> None:
    key = switch.split("=")[0]
    assert refused([switch, f"quant.flat_scheme={scheme}"]) == (
        f"{key} reproduces the seed's int8/int6 quantizer, which had no int5 (quant.flat_scheme = {scheme})")


@pytest.mark.parametrize("scheme", ["int8", "int6", "gptq_int6", "fp16"])
def test_the_seed_quantizer_takes_every_scheme_the_seed_had(scheme: str) -> None:
    switches = ["quant.scale_floor=true", "quant.rtn_clip=tensor", "quant.scale_rounding=fp32"]
    # the GPTQ feedback rule only with GPTQ: named beside another scheme it cannot act and is refused
    switches += ["quant.gptq_feedback=full_inverse"] if scheme.startswith("gptq_") else []
    assert load_config(preset="tiny-cpu", overrides=[*switches, f"quant.flat_scheme={scheme}"]).quant.scale_floor


def test_int5_without_seed_switches_and_the_unused_value_embedding_on_a_crawler_are_accepted() -> None:
    load_config(preset="tiny-cpu", overrides=["quant.flat_scheme=gptq_int5", "model.unused_value_embed_dim=8"])
    assert refused(["model.arch=gpt", "model.unused_value_embed_dim=8"]) == (
        "model.unused_value_embed_dim reproduces the seed crawler's unused value embedding and needs "
        "model.arch = crawler")


# -- the error line ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, line", [
    ({"modle": {}}, "unknown config key 'modle' (did you mean model?)"),
    ({"modle": {"x": 1, "y": 2}}, "unknown config key 'modle.x' (did you mean model?)"),
    ({"foo": 1}, "unknown config key 'foo'"),
    ({"model": {"crawler_lops": 1}}, "unknown config key 'model.crawler_lops' (did you mean model.crawler_loops, "
                                     "model.crawler_mode, model.crawler_position?)"),
    ({"train": {"seq_len": 1}}, "unknown config key 'train.seq_len' (did you mean train.train_seq_len?)"),
    ({"model": {"depth": 1}}, "unknown config key 'model.depth'"),  # nothing near: no hint
    ({"model": {"vocab_size": 70000}}, "config key 'model.vocab_size': Input should be less than or equal to 65536"),
    ({"train": {"muon_momentum": 1.0}}, "config key 'train.muon_momentum': Input should be less than 1"),
    ({"model": {"mlp_mult": float("inf")}}, "config key 'model.mlp_mult': Input should be a finite number"),
    ({"model": {"num_kv_heads": 3}}, "model.num_heads (8) must be divisible by model.num_kv_heads (3)"),
])
def test_the_first_problem_is_the_whole_line(data: dict[str, Any], line: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_dict(data)
    assert str(err.value) == line


# -- overrides, merges, files ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, parsed", [
    ("model.crawler_loops=3", (["model", "crawler_loops"], 3)),
    (" model.xsa = off ", (["model", "xsa"], "off")),
    ("train.ema=false", (["train", "ema"], False)),
    ("data.dataset=", (["data", "dataset"], "")),
    ("data.dataset=  ", (["data", "dataset"], "")),
    ("data.dataset=[1", (["data", "dataset"], "[1")),  # not YAML: kept as the text typed
    ("a.b=x=y", (["a", "b"], "x=y")),
])
def test_an_override_is_a_dotted_key_and_a_yaml_scalar(text: str, parsed: tuple[list[str], Any]) -> None:
    assert parse_override(text) == parsed


@pytest.mark.parametrize("text", ["model.crawler_loops", "=3", "  =3"])
def test_an_override_without_a_key_or_equals_is_refused(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_override(text)
    assert str(err.value) == f"override '{text}' is not of the form section.key=value"


def test_overrides_build_nested_keys_and_leave_their_input_alone() -> None:
    base = {"model": {"crawler_loops": 4}}
    out = apply_overrides(base, ["model.inst_dim=8", "train.seed=7"])
    assert out == {"model": {"crawler_loops": 4, "inst_dim": 8}, "train": {"seed": 7}}
    assert base == {"model": {"crawler_loops": 4}}
    assert apply_overrides(base, {"model.crawler_loops": 2}) == {"model": {"crawler_loops": 2}}
    assert apply_overrides({}, ["a.b.c=1"]) == {"a": {"b": {"c": 1}}}  # the value lands under the last part
    with pytest.raises(ConfigError) as err:
        apply_overrides(base, ["model.crawler_loops.deep=1"])
    assert str(err.value) == "unknown config key 'model.crawler_loops.deep'"


def test_a_merge_is_deep_and_copies_both_sides() -> None:
    base = {"model": {"a": 1, "b": {"c": [1]}}, "train": {"x": 1}}
    top = {"model": {"b": {"d": 2}}, "train": 5, "eval": {"e": [2]}}
    out = deep_merge(base, top)
    assert out == {"model": {"a": 1, "b": {"c": [1], "d": 2}}, "train": 5, "eval": {"e": [2]}}
    out["model"]["b"]["c"].append(9)
    out["eval"]["e"].append(9)
    assert base["model"]["b"]["c"] == [1] and top["eval"]["e"] == [2]


def test_a_file_names_its_preset_and_a_different_command_line_preset_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("preset: clowncar\ntrain:\n  seed: 42\n")
    from_file = load_config(f)
    assert from_file.train.seed == 42 and from_file.model.inst_dim == 32  # clowncar's
    assert load_config(f, preset="clowncar") == from_file  # the same base twice is one base
    with pytest.raises(ConfigError) as err:
        load_config(f, preset="tiny-cpu")
    assert str(err.value) == (f"--preset tiny-cpu conflicts with {f}'s `preset: clowncar`: give the base once (drop "
                              "--preset, or the file's preset line)")
    plain = tmp_path / "plain.yaml"
    plain.write_text("train:\n  seed: 3\n")
    assert load_config(plain) == TrialConfig(train={"seed": 3})


def test_a_preset_that_is_not_a_name_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("preset: 7\n")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert str(err.value) == f"{f}: preset must be a name, not int"


# -- what a config says of itself --------------------------------------------------------------------------------

def test_the_content_hash_is_sha256_of_the_sorted_compact_json() -> None:
    assert dict_hash({"b": [1, 2], "a": 1}) == "8baa73198470c7bb"  # the stored contract: never changes
    cfg = load_config(preset="tiny-cpu")
    text = json.dumps(cfg.to_dict(), sort_keys=True, separators=(",", ":"))
    assert cfg.content_hash() == hashlib.sha256(text.encode()).hexdigest()[:16] == dict_hash(cfg.to_dict())


def test_flat_keys_are_section_dot_key_and_the_eval_length_follows_training() -> None:
    cfg = load_config(preset="tiny-cpu", overrides=["eval.seq_len=0", "train.train_seq_len=48",
                                                    "train.train_batch_tokens=768", "train.grad_accum=1"])
    flat = cfg.flat()
    assert flat["model.crawler_loops"] == cfg.model.crawler_loops and flat["eval.seq_len"] == 0
    assert len(flat) == sum(len(section) for section in cfg.to_dict().values())
    assert cfg.eval_seq_len == 48
    assert load_config(preset="tiny-cpu", overrides=["eval.seq_len=32", "eval.stride=16"]).eval_seq_len == 32


def test_an_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(preset="clowncar-2")
    assert str(err.value) == ("unknown preset 'clowncar-2' (known: baseline, clowncar, clowncar-ii-seed, "
                              "clowncar-seed, frugendorff-v2, micro-crawler, tiny-cpu)")


def test_a_field_takes_true_or_false_only_where_its_type_holds_bool() -> None:
    from typing import Literal

    from clowncar.config_section import _takes_bool

    assert _takes_bool(bool) and _takes_bool(bool | None) and _takes_bool(Any)
    assert not _takes_bool(int) and not _takes_bool(int | None) and not _takes_bool(float | str)
    assert not _takes_bool(Literal["auto", "cpu"]) and not _takes_bool(Literal[0, 1])
    assert _takes_bool(Literal["auto", True]) and _takes_bool(Literal[False])
