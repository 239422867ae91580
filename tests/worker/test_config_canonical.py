"""Canonical configs (clowncar/config_canonical.py): each rule that sets a moot field merges only configs that
compute the same trial. Proven by running both, the config as written and its canonical form, as real trials:
the same losses at every step and the same score, bit for bit."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clowncar.config_canonical import canonical
from clowncar.config_load import from_dict
from clowncar.overrides import apply_overrides
from clowncar.presets import preset_dict
from clowncar.worker.run import run_trial

SHORT = ("train.iterations=4", "train.warmdown_iters=2", "eval.stride=0", "train.probe_every=0")
SEED_DELTA_NET = ("model.delta_net_conv_silu=false", "model.delta_net_head_norm=false",
                  "model.delta_net_out_norm=true", "model.delta_net_o_init=orthogonal", "train.train_delta_net=false",
                  "quant.delta_net_scheme=int8")
GPTQ_SETTINGS = ("quant.gptq_block_size=8", "quant.gptq_damp=0.1", "quant.gptq_col_order=natural",
                 "quant.gptq_calib_seqs=4", "quant.gptq_calib_seq_len=32", "quant.gptq_loop_aware=true")


@pytest.fixture
def tiny_cfg(tiny_overrides: list[str]) -> Callable[..., Any]:
    """tiny-cpu with overrides, built the way a sweep builds its points (no refusal of a named inert switch)."""
    def make(*extra: str) -> Any:
        return from_dict(apply_overrides(preset_dict("tiny-cpu"), [*tiny_overrides, *extra]))

    return make


# Two configs per row that differ only in fields the row's rule makes moot: their canonical forms must be one
# (what the trial-running test above cannot show: a rule that merges less is as safe as it is wasteful).
MERGE = {
    "one-loop-cadence": (["model.crawler_loops=1", "train.cadence=2", "train.cadence_offset=1", "model.inst_dim=8"],
                         ["model.crawler_loops=1", "train.cadence=3", "model.inst_dim=0"]),
    "no-crawler-blocks": (["model.num_crawler_layers=0", "model.crawler_loops=3", "model.crawler_mlp_mult=3.0",
                           "model.xsa=crawler", "model.inst_dim=8", "train.cadence=2",
                           "model.value_embed_dim=8"],
                          ["model.num_crawler_layers=0", "model.crawler_loops=2", "model.xsa=off",
                           "model.inst_dim=0", "model.loop_offsets=learned", "train.cadence=5"]),
    "no-flat-blocks": (["model.num_flat_layers=0", "model.mlp_mult=3.0", "model.crawler_position=end",
                        "model.xsa=all"],
                       ["model.num_flat_layers=0", "model.mlp_mult=2.0", "model.xsa=crawler"]),
    "gpt": (["model.arch=gpt", "model.crawler_loops=3", "model.inst_dim=8", "model.num_flat_layers=1",
             "model.num_crawler_layers=2", "model.crawler_mlp_mult=3.0", "model.crawler_position=end",
             "model.value_embed_dim=8", "train.cadence=2", "train.cadence_offset=1"],
            ["model.arch=gpt", "model.crawler_loops=2", "model.inst_dim=0", "model.loop_offsets=learned",
             "train.cadence=7"]),
    "crawler-ignores-num-layers": (["model.num_layers=3"], ["model.num_layers=5"]),
    "fixed-width-budget": (["model.param_budget=123", "model.param_budget_counts=blocks"], []),
    "bigram-off": (["model.bigram_vocab_size=0", "model.bigram_dim=8"], ["model.bigram_vocab_size=0"]),
    "trigram-off": (["model.trigram_vocab_size=0", "model.trigram_dim=8", "model.trigram_zero_init=true"],
                    ["model.trigram_vocab_size=0"]),
    "deltanet-off": (["model.delta_net_heads=0", "model.delta_net_conv=2", "model.delta_net_chunk=8",
                      "model.deltanet_backend=torch"], ["model.delta_net_heads=0"]),
    "phased-ignores-cadence": (["train.cadence_phased=true", "train.cadence=5"],
                               ["train.cadence_phased=true", "train.cadence=2"]),
    "unphased-ignores-phases": (["train.cadence_early=5", "train.cadence_main=7", "train.cadence_late=1"], []),
    "offset-at-cadence-1": (["train.cadence=1", "train.cadence_offset=3"], ["train.cadence=1"]),
    "offset-modulo-cadence": (["train.cadence=3", "train.cadence_offset=5"],
                              ["train.cadence=3", "train.cadence_offset=2"]),
    "cosine": (["train.lr_schedule=cosine", "train.warmdown_iters=7", "train.lr_hold_steps=3"],
               ["train.lr_schedule=cosine", "train.warmdown_iters=2"]),
    "warmdown": (["train.lr_min_ratio=0.3"], ["train.lr_min_ratio=0.1"]),
    "adamw": (["train.optimizer=adamw", "train.muon_momentum=0.5", "train.muon_wd=0.1",
               "train.muon_backend_steps=3", "train.muon_momentum_warmup_start=0.7",
               "train.muon_momentum_warmup_steps=3"], ["train.optimizer=adamw"]),
    "no-ema": (["train.ema=false", "train.ema_decay=0.5", "train.ema_start_step=2"], ["train.ema=false"]),
    "no-quant": (["quant.enabled=false", "quant.flat_scheme=int6", "quant.zstd_level=3"], ["quant.enabled=false"]),
    "stride-of-the-train-window": (["eval.seq_len=0", "train.train_seq_len=64", "eval.stride=64"],
                                   ["eval.seq_len=0", "train.train_seq_len=64", "eval.stride=0"]),
    "stride-of-the-eval-window": (["eval.stride=32", "eval.seq_len=32"], ["eval.stride=0", "eval.seq_len=32"]),
    "deltanet-switches-without-deltanet": (["model.delta_net_heads=0", "quant.enabled=true", *SEED_DELTA_NET],
                                           ["model.delta_net_heads=0", "quant.enabled=true",
                                            "model.delta_net_o_init=orthogonal"]),
    "flow-instruction-switch-without-them": (["model.inst_dim=0", "train.train_flow_instructions=false"],
                                             ["model.inst_dim=0"]),
    "flow-instruction-switch-of-one-loop": (["model.crawler_loops=1", "train.train_flow_instructions=false"],
                                            ["model.crawler_loops=1"]),
    "gptq-feedback-without-gptq": (["quant.enabled=true", "quant.flat_scheme=int8", "quant.gptq_feedback=full_inverse"],
                                   ["quant.enabled=true", "quant.flat_scheme=int8"]),
    "gptq-settings-without-gptq": (["quant.enabled=true", "quant.flat_scheme=int6", *GPTQ_SETTINGS],
                                   ["quant.enabled=true", "quant.flat_scheme=int6"]),
    "zstd-level-of-lzma": (["quant.enabled=true", "quant.compressor=lzma", "quant.zstd_level=3"],
                           ["quant.enabled=true", "quant.compressor=lzma"]),
}

# ... and two configs per row that differ in a live field must stay apart.
APART = {
    "cadence-of-two-loops": (["model.crawler_loops=2", "train.cadence=2"], ["model.crawler_loops=2", "train.cadence=3"]),
    "offset-of-cadence-2": (["train.cadence=2", "train.cadence_offset=0"], ["train.cadence=2", "train.cadence_offset=1"]),
    "xsa-of-flat-blocks-alone": (["model.num_crawler_layers=0", "model.xsa=all"],
                                 ["model.num_crawler_layers=0", "model.xsa=off"]),
    "xsa-of-crawler-blocks-alone": (["model.num_flat_layers=0", "model.xsa=crawler"],
                                    ["model.num_flat_layers=0", "model.xsa=off"]),
    "offset-of-cadence-3": (["train.cadence=3", "train.cadence_offset=1"], ["train.cadence=3", "train.cadence_offset=2"]),
    "phases-when-phased": (["train.cadence_phased=true", "train.cadence_early=3"],
                           ["train.cadence_phased=true", "train.cadence_early=4"]),
    "flat-mlp-width": (["model.mlp_mult=2.0"], ["model.mlp_mult=3.0"]),
    "crawler-mlp-width": (["model.crawler_mlp_mult=2.0"], ["model.crawler_mlp_mult=3.0"]),
    "inst-dim-of-two-loops": (["model.crawler_loops=2", "model.inst_dim=8"], ["model.crawler_loops=2", "model.inst_dim=4"]),
    "gpt-depth": (["model.arch=gpt", "model.num_layers=3"], ["model.arch=gpt", "model.num_layers=4"]),
    "warmdown-length": (["train.warmdown_iters=2"], ["train.warmdown_iters=3"]),
    "cosine-floor": (["train.lr_schedule=cosine", "train.lr_min_ratio=0.2"],
                     ["train.lr_schedule=cosine", "train.lr_min_ratio=0.3"]),
    "muon-momentum": (["train.muon_momentum=0.9"], ["train.muon_momentum=0.8"]),
    "ema-decay": (["train.ema=true", "train.ema_decay=0.9"], ["train.ema=true", "train.ema_decay=0.8"]),
    "quant-on-or-off": (["quant.enabled=false"], ["quant.enabled=true"]),
    "quant-scheme": (["quant.enabled=true", "quant.flat_scheme=int6"], ["quant.enabled=true", "quant.flat_scheme=int8"]),
    "bigram-width": (["model.bigram_vocab_size=64", "model.bigram_dim=8"], ["model.bigram_vocab_size=64", "model.bigram_dim=4"]),
    "trigram-init": (["model.trigram_vocab_size=64", "model.trigram_zero_init=true"],
                     ["model.trigram_vocab_size=64", "model.trigram_zero_init=false"]),
    "deltanet-conv": (["model.delta_net_heads=2", "model.delta_net_conv=2"], ["model.delta_net_heads=2", "model.delta_net_conv=3"]),
    "sliding-stride": (["eval.stride=16"], ["eval.stride=32"]),
    "stride-under-the-train-window": (["eval.seq_len=0", "train.train_seq_len=64", "eval.stride=32"],
                                      ["eval.seq_len=0", "train.train_seq_len=64", "eval.stride=16"]),
    "auto-width-budget": (["model.model_dim=auto", "model.param_budget=100000"],
                          ["model.model_dim=auto", "model.param_budget=200000"]),
    **{f"deltanet-{switch.split('=')[0]}": (["model.delta_net_heads=2", "quant.enabled=true"],
                                            ["model.delta_net_heads=2", "quant.enabled=true", switch])
       for switch in SEED_DELTA_NET},
    "trained-flow-instructions": (["model.inst_dim=8"], ["model.inst_dim=8", "train.train_flow_instructions=false"]),
    "gptq-feedback": (["quant.enabled=true", "quant.flat_scheme=gptq_int6"],
                      ["quant.enabled=true", "quant.flat_scheme=gptq_int6", "quant.gptq_feedback=full_inverse"]),
    **{f"gptq-{setting.split('=')[0]}": (["quant.enabled=true", "quant.flat_scheme=gptq_int6"],
                                         ["quant.enabled=true", "quant.flat_scheme=gptq_int6", setting])
       for setting in GPTQ_SETTINGS},
    "zstd-level": (["quant.enabled=true", "quant.zstd_level=22"], ["quant.enabled=true", "quant.zstd_level=3"]),
}


def test_a_config_without_quantization_keeps_it_off(tiny_cfg: Callable[..., Any]) -> None:
    assert canonical(tiny_cfg(*SHORT, "quant.enabled=false")).quant.enabled is False


def test_a_model_that_never_crawls_counts_every_step_as_an_n_step(tiny_cfg: Callable[..., Any]) -> None:
    assert canonical(tiny_cfg(*SHORT, "model.num_crawler_layers=0", "train.cadence=3")).train.cadence == 0
    assert canonical(tiny_cfg(*SHORT, "model.arch=gpt", "train.cadence=3")).train.cadence == 0
    # one pass through the crawler: C-steps and N-steps compute the same, and every step is a C-step (the default)
    assert canonical(tiny_cfg(*SHORT, "model.crawler_loops=1", "train.cadence=3")).train.cadence == 1


@pytest.mark.parametrize("pair", list(MERGE.values()), ids=list(MERGE))
def test_configs_that_differ_only_in_moot_fields_share_one_canonical_form(
        pair: tuple[list[str], list[str]], tiny_cfg: Callable[..., Any]) -> None:
    a, b = (canonical(tiny_cfg(*SHORT, *overrides)) for overrides in pair)
    assert a.to_dict() == b.to_dict()


@pytest.mark.parametrize("pair", list(APART.values()), ids=list(APART))
def test_configs_that_differ_in_a_live_field_keep_two_canonical_forms(
        pair: tuple[list[str], list[str]], tiny_cfg: Callable[..., Any]) -> None:
    a, b = (canonical(tiny_cfg(*SHORT, *overrides)) for overrides in pair)
    assert a.content_hash() != b.content_hash()


MOOT = {
    "one-loop-cadence-and-flow-instructions": ["model.crawler_loops=1", "train.cadence=3", "train.cadence_offset=2"],
    "no-crawler-blocks": ["model.num_crawler_layers=0", "model.crawler_loops=3", "train.cadence=2",
                          "model.crawler_mlp_mult=3.0", "model.xsa=crawler"],
    "no-flat-blocks": ["model.num_flat_layers=0", "model.mlp_mult=3.0", "model.crawler_position=end",
                       "model.xsa=all"],
    "offset-beyond-the-cadence": ["model.crawler_loops=2", "train.cadence=3", "train.cadence_offset=5"],
    "offset-at-cadence-0": ["train.cadence=0", "train.cadence_offset=1"],
    "unphased-phase-cadences": ["train.cadence=2", "train.cadence_early=5", "train.cadence_late=1"],
    "cosine-ignores-the-warmdown": ["train.lr_schedule=cosine", "train.lr_warmup_steps=1", "train.lr_min_ratio=0.2",
                                    "train.warmdown_iters=7", "train.lr_hold_steps=3"],
    "warmdown-ignores-the-cosine-floor": ["train.lr_min_ratio=0.3"],
    "adamw-ignores-muon": ["train.optimizer=adamw", "train.muon_momentum=0.5", "train.muon_wd=0.1",
                           "train.muon_backend_steps=3"],
    "no-ema-ignores-its-decay": ["train.ema=false", "train.ema_decay=0.5", "train.ema_start_step=2"],
    "no-quantization-ignores-quant": ["quant.enabled=false", "quant.flat_scheme=int6", "quant.zstd_level=3"],
    "no-gptq-ignores-its-settings-lzma-its-level": ["quant.enabled=true", "quant.flat_scheme=int6", *GPTQ_SETTINGS,
                                                    "quant.compressor=lzma", "quant.zstd_level=3"],
    "no-hash-tables-ignore-their-widths": ["model.bigram_vocab_size=0", "model.bigram_dim=8",
                                           "model.trigram_dim=8", "model.trigram_zero_init=true"],
    "fixed-width-ignores-the-budget": ["model.param_budget=123", "model.param_budget_counts=blocks"],
    "stride-of-a-whole-window": ["eval.stride=32"],
    "gpt-ignores-crawler-fields": ["model.arch=gpt", "model.num_layers=3", "model.crawler_loops=3",
                                   "model.inst_dim=8", "train.cadence=2"],
    "seed-switches-without-their-parts": ["model.inst_dim=0", "quant.enabled=true", "quant.flat_scheme=int8",
                                          *SEED_DELTA_NET,
                                          "train.train_flow_instructions=false", "quant.gptq_feedback=full_inverse"],
}


def trace(cfg: Any, out: Path) -> tuple[list[float], dict[str, Any]]:
    assert run_trial(cfg, out) == 0, (out / "train.log").read_text()[-2000:]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    result = json.loads((out / "result.json").read_text())
    return [e["train_loss"] for e in events if e["event"] == "step"], result


@pytest.mark.parametrize("overrides", list(MOOT.values()), ids=list(MOOT))
def test_canonical_form_computes_the_same_trial(overrides: list[str], tiny_cfg: Callable[..., Any],
                                                tmp_path: Path) -> None:
    raw = tiny_cfg(*SHORT, *overrides)
    canon = canonical(raw)
    assert canon.content_hash() != raw.content_hash()  # the rule did change something ...
    assert canonical(canon).content_hash() == canon.content_hash()
    losses, result = trace(raw, tmp_path / "raw")
    canon_losses, canon_result = trace(canon, tmp_path / "canonical")
    assert canon_losses == losses  # ... and nothing of what the trial computes
    for key in ("val_loss", "val_bpb", "sliding_val_bpb", "q_val_bpb", "params", "model_dim"):
        assert canon_result[key] == result[key], key
    assert (result["q_val_bpb"] is not None) == raw.quant.enabled  # a quant rule is proven on a quantized model


def test_one_loop_with_an_n_step_row_keeps_its_cadence(tiny_cfg: Callable[..., Any], tmp_path: Path) -> None:
    # The seed's 6x1 "flat control": its F and N steps add different learned rows, so cadence is not moot.
    base = (*SHORT, "model.crawler_loops=1", "model.inst_dim=0", "model.loop_offsets=learned_n_row")
    every, some = tiny_cfg(*base, "train.cadence=1"), tiny_cfg(*base, "train.cadence=3")
    assert canonical(every).content_hash() != canonical(some).content_hash()
    assert trace(every, tmp_path / "c1")[0] != trace(some, tmp_path / "c3")[0]


def test_configs_that_differ_in_a_live_field_stay_apart(tiny_cfg: Callable[..., Any]) -> None:
    a, b = tiny_cfg("model.crawler_loops=2", "train.cadence=2"), tiny_cfg("model.crawler_loops=2", "train.cadence=3")
    assert canonical(a).content_hash() != canonical(b).content_hash()
    assert canonical(tiny_cfg("train.seed=1")).content_hash() != canonical(tiny_cfg("train.seed=2")).content_hash()
