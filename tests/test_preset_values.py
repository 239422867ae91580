"""The presets hold the seed's numbers: `baseline` is the reference train_gpt.py at its environment defaults, and
`clowncar` is ClownCar's run.sh over its train_gpt.py defaults, the small-trainer presets are the seed's sweep
trainers (reference/seed_facts.md sections 4, 5, 6 and 9).
`tiny-cpu` is pinned as the demo and the golden trace were measured. A default changed in config.py or a preset
edited by mistake shows up here as the key that moved."""

from __future__ import annotations

from typing import Any

import pytest

from clowncar.config_load import load_config
from clowncar.data import demo

# seed_facts.md section 4 ("Env vars and defaults", "Schedule", "Architecture") and section 6 ("Baseline").
BASELINE = {
    "data.dataset": "fineweb10B_sp1024", "data.tokenizer": "fineweb_1024_bpe.model",
    "train.seed": 1337, "eval.batch_tokens": 524288,
    "train.iterations": 20000, "train.warmdown_iters": 1200, "train.warmup_steps": 20,
    "train.train_batch_tokens": 524288, "train.train_seq_len": 1024, "train.max_wallclock_seconds": 600.0,
    "train.grad_accum": 8, "train.lr_schedule": "warmdown", "train.optimizer": "muon",
    "model.arch": "gpt", "model.qk_gain_init": 1.5, "model.vocab_size": 1024, "model.num_layers": 9,
    "model.num_kv_heads": 4, "model.model_dim": 512, "model.num_heads": 8, "model.mlp_mult": 2.0,
    "model.rope_base": 10000.0, "model.rope_dims": 0, "model.logit_softcap": 30.0,
    "model.tied_embed_init_std": 0.005, "model.resid_mix": True, "model.q_gain": True,
    "train.tied_embed_lr": 0.05, "train.matrix_lr": 0.04, "train.scalar_lr": 0.04,
    "train.muon_momentum": 0.95, "train.muon_backend_steps": 5, "train.muon_momentum_warmup_start": 0.85,
    "train.muon_momentum_warmup_steps": 500, "train.adam_beta1": 0.9, "train.adam_beta2": 0.95,
    "train.adam_eps": 1e-8, "train.grad_clip_norm": 0.0, "train.muon_wd": 0.0, "train.adam_wd": 0.0,
    "train.ema": False, "train.compile": True, "eval.stride": 0,  # its only eval is non-overlapping
    "quant.flat_scheme": "int8", "quant.embed_scheme": "int8", "quant.passthrough_max_numel": 65536,
    "quant.size_cap_bytes": 16_000_000,
}

# seed_facts.md section 5 ("ClownCar run.sh", "Defaults that matter and that run.sh does not override",
# "Training differences from baseline") and section 6 ("ClownCar", "GPTQ specifics").
CLOWNCAR = {
    "train.seed": 1337, "train.max_wallclock_seconds": 600.0, "train.warmdown_iters": 2000,
    "model.xsa": "crawler", "model.bigram_vocab_size": 2048, "model.rope_dims": 16, "model.rope_ntk_above": 1024,
    "train.late_qat_threshold": 0.0, "train.matrix_lr": 0.03,
    "model.arch": "crawler", "model.num_flat_layers": 4, "model.num_crawler_layers": 1, "model.crawler_loops": 4,
    "model.inst_dim": 32, "quant.crawler_scheme": "int8", "model.delta_net_heads": 0,
    "model.model_dim": 512, "model.num_heads": 8, "model.num_kv_heads": 4, "model.mlp_mult": 3.0,
    "model.crawler_mlp_mult": 4.0, "model.bigram_dim": 128, "model.ln_scale": True, "model.smear_gate": True,
    "model.crawler_position": "middle", "model.crawler_mode": "loop",
    "train.train_seq_len": 2048, "eval.seq_len": 2048, "train.train_batch_tokens": 786432,
    "train.iterations": 20000, "train.warmup_steps": 20,
    "train.tied_embed_lr": 0.035, "train.scalar_lr": 0.025, "train.muon_momentum": 0.99,
    "train.muon_momentum_warmup_start": 0.92, "train.muon_momentum_warmup_steps": 1500,
    "train.muon_wd": 0.04, "train.adam_wd": 0.04, "train.grad_clip_norm": 0.3,
    "eval.stride": 64, "train.compile": True, "train.ema": True, "train.ema_decay": 0.997, "train.cadence": 1,
    "quant.flat_scheme": "gptq_int6", "quant.embed_scheme": "int8", "quant.passthrough_max_numel": 65536,
    "quant.gptq_calib_seqs": 256, "quant.gptq_calib_seq_len": 2048, "quant.gptq_damp": 0.002,
    "quant.gptq_col_order": "ascending", "quant.gptq_block_size": 64, "quant.compressor": "zstd",
    "quant.zstd_level": 22, "quant.gptq_loop_aware": False, "quant.size_cap_bytes": 16_000_000,
}

# seed_facts.md section 9.1 (what the two small trainers share), 9.2 (the Frug2 driver's RUN_DEFAULTS, its best
# config 5x2, cadence 4, MLP 4) and 9.3 (the micro-crawler sweep's common settings and its config 1).
SMALL_TRAINER = {
    "train.seed": 1337, "train.iterations": 500, "train.max_wallclock_seconds": 600.0,
    "train.train_batch_tokens": 32768, "train.train_seq_len": 1024, "train.grad_accum": 1,
    "train.lr_warmup_steps": 20, "train.optimizer": "adamw", "train.lr_schedule": "cosine",
    "train.lr_min_ratio": 0.1, "train.matrix_lr": 0.002, "train.scalar_lr": 0.002, "train.tied_embed_lr": 0.002,
    "train.adam_beta1": 0.9, "train.adam_beta2": 0.95, "train.adam_eps": 1e-8, "train.adam_wd": 0.1,
    "train.grad_clip_norm": 5.0, "train.ema": False, "train.compile": False, "train.cadence_offset": 0,
    "train.warmup_steps": 0, "train.log_every": 10, "train.val_every": 50,  # no compile; console every 10, EVAL 50
    "quant.enabled": False, "eval.max_tokens": 100000, "eval.seq_len": 1024, "eval.stride": 0,
    "eval.batch_tokens": 32768,  # non-overlapping, 32 sequences a batch
    "model.model_dim": "auto", "model.param_budget": 17_048_576, "model.param_budget_counts": "blocks",
    "model.num_heads": 8, "model.num_kv_heads": 4, "model.inst_dim": 0, "model.loop_offsets": "learned_n_row",
    "model.resid_mix": False, "model.q_gain": False, "model.weight_init": "normal", "model.rope_dims": 0,
    "model.rope_base": 10000.0, "model.rope_ntk_above": 0, "model.logit_softcap": 30.0,
    "model.tied_embed_init_std": 0.005, "model.bigram_vocab_size": 0, "model.smear_gate": False,
    "model.xsa": "off", "model.ln_scale": False, "model.vocab_size": 1024,
}
FRUGENDORFF_V2 = {**SMALL_TRAINER, "model.num_flat_layers": 0, "model.num_crawler_layers": 5,
                  "model.crawler_loops": 2, "model.crawler_mlp_mult": 4.0, "train.cadence": 4}
MICRO_CRAWLER = {**SMALL_TRAINER, "model.crawler_position": "end", "model.num_flat_layers": 4,
                 "model.num_crawler_layers": 1, "model.crawler_loops": 2, "model.mlp_mult": 4.0,
                 "model.crawler_mlp_mult": 4.0, "model.trigram_vocab_size": 8192, "model.trigram_dim": 128,
                 "model.trigram_zero_init": True, "train.cadence": 2}

# Not the seed's: ClownCar logged a train line every 500 steps; we keep every 50th for the step-level analyses.
CLOWNCAR_OURS = {**CLOWNCAR, "train.log_every": 50}

# The tiny crawler the demo sweep, the golden loss trace (tests/worker/assets/tiny_trace.json) and the README's
# timings were measured with: a change here is a change of all three, made on purpose, never by accident.
TINY_CPU = {
    "data.dataset": demo.DATASET, "data.tokenizer": demo.TOKENIZER,  # what `clowncar data demo` writes
    "model.arch": "crawler", "model.model_dim": 64, "model.num_heads": 4, "model.num_kv_heads": 2,
    "model.num_flat_layers": 2, "model.num_crawler_layers": 1, "model.crawler_loops": 2, "model.inst_dim": 8,
    "model.mlp_mult": 2.0, "model.crawler_mlp_mult": 2.0, "model.bigram_vocab_size": 256, "model.bigram_dim": 32,
    "model.smear_gate": True, "model.ln_scale": True,
    "train.device": "cpu", "train.iterations": 40, "train.max_wallclock_seconds": 60.0, "train.train_seq_len": 128,
    "train.train_batch_tokens": 2048, "train.grad_accum": 2, "train.warmup_steps": 0, "train.warmdown_iters": 10,
    "train.matrix_lr": 0.02, "train.scalar_lr": 0.02, "train.tied_embed_lr": 0.03,
    "train.muon_momentum_warmup_steps": 10, "train.log_every": 1, "train.probe_every": 5, "train.probe_seqs": 4,
    "quant.flat_scheme": "gptq_int6", "quant.crawler_scheme": "int8", "quant.gptq_calib_seqs": 8,
    "quant.passthrough_max_numel": 1024, "quant.gptq_calib_seq_len": 128, "quant.zstd_level": 19,
    "eval.seq_len": 128, "eval.stride": 32, "eval.batch_tokens": 8192, "eval.max_tokens": 16384,
}


def moved(preset: str, expected: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    flat = load_config(preset=preset).flat()
    return {key: (flat[key], want) for key, want in expected.items() if flat[key] != want}


@pytest.mark.parametrize("preset, expected", [("baseline", BASELINE), ("clowncar", CLOWNCAR_OURS),
                                              ("clowncar-seed", CLOWNCAR), ("frugendorff-v2", FRUGENDORFF_V2),
                                              ("micro-crawler", MICRO_CRAWLER), ("tiny-cpu", TINY_CPU)])
def test_a_preset_holds_the_seeds_hyperparameters(preset: str, expected: dict[str, Any]) -> None:
    assert moved(preset, expected) == {}  # key: (ours, the seed's)


def test_the_seed_presets_keep_the_seeds_value_embedding_and_ours_drops_it() -> None:
    # ClownCar's VE_ENABLED=1 VE_DIM=128 (built and exported, never used in the forward pass)
    assert load_config(preset="clowncar-seed").model.unused_value_embed_dim == 128
    assert load_config(preset="clowncar").model.unused_value_embed_dim == 0
