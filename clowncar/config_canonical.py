"""The canonical form of a trial config: every field that cannot change what the trial computes, given the
others, set to one fixed value. Two configs that train the same model the same way then have the same content
hash, which is how a sweep finds points that would run the same trial twice (`crawler_loops: 1` makes the cadence
moot, a model with no flat blocks ignores `mlp_mult`, a run without quantization ignores every `quant` field, a
model without DeltaNet heads ignores every DeltaNet switch: clowncar/config_inert.py).

Each rule below is proven by tests/worker/test_config_canonical.py: the config and its canonical form give the same
training losses and the same scores. A rule may only ever merge configs that compute the same thing; a field
left out merely keeps two equal trials apart (the safe side).
"""

from __future__ import annotations

from typing import Any

from clowncar.config import TrialConfig
from clowncar.config_inert import inert_switches
from clowncar.config_load import from_dict

CRAWLER_ONLY = ("num_flat_layers", "num_crawler_layers", "crawler_loops", "inst_dim", "crawler_mlp_mult",
                "crawler_position", "crawler_mode", "loop_offsets", "value_embed_dim", "delta_net_heads")
CADENCE = ("cadence", "cadence_offset", "cadence_phased", "cadence_early", "cadence_main", "cadence_late")


def canonical(cfg: TrialConfig) -> TrialConfig:
    """`cfg` with its moot fields at fixed values (see the module docstring); a valid config, same hash for
    configs that compute the same trial."""
    data = cfg.to_dict()
    defaults = TrialConfig().to_dict()
    model, train = data["model"], data["train"]

    def reset(section: str, *keys: str) -> None:
        for key in keys:
            data[section][key] = defaults[section][key]

    _canonical_model(model, reset)
    crawls = model["arch"] == "crawler" and model["num_crawler_layers"] > 0
    if not crawls or _loops_are_one_pass(model):
        reset("train", *CADENCE)  # C-steps and N-steps run the same computation: the cadence is moot
        if not crawls:
            train["cadence"] = 0  # nothing to crawl: every step counts as an N-step, as the seed counted them
    _canonical_cadence(train, reset)
    if train["lr_schedule"] == "cosine":
        reset("train", "warmdown_iters", "lr_hold_steps")
    else:
        reset("train", "lr_min_ratio")
    if train["optimizer"] == "adamw":
        reset("train", "muon_momentum", "muon_momentum_warmup_start", "muon_momentum_warmup_steps",
              "muon_backend_steps", "muon_wd")
    if not train["ema"]:
        reset("train", "ema_decay", "ema_start_step")
    _canonical_quant(data["quant"], reset)
    seq_len = data["eval"]["seq_len"] or train["train_seq_len"]
    if data["eval"]["stride"] >= seq_len:  # no sliding window either way
        data["eval"]["stride"] = 0
    for key in inert_switches(data, defaults):  # a seed switch on a model without the part it acts on
        reset(*key.split("."))
    return from_dict(data)


GPTQ_ONLY = ("gptq_block_size", "gptq_damp", "gptq_col_order", "gptq_calib_seqs", "gptq_calib_seq_len",
             "gptq_loop_aware")
"""Read only by `quant.gptq_quantize` / `collect_hessians`: with no GPTQ scheme the calibration stream is taken
but never run through the model (`quantize_model` collects Hessians for GPTQ targets only)."""


def _canonical_quant(quant: dict[str, Any], reset: Any) -> None:
    if not quant["enabled"]:
        reset("quant", *(k for k in quant if k != "enabled"))
        return
    if not str(quant["flat_scheme"]).startswith("gptq_"):  # the only field that can name a GPTQ scheme
        reset("quant", *GPTQ_ONLY)
    if quant["compressor"] != "zstd":
        reset("quant", "zstd_level")


def _loops_are_one_pass(model: dict[str, Any]) -> bool:
    """One loop, and the N-step adds the same offset as the C-step (not its own learned row)."""
    return model["crawler_loops"] == 1 and model["loop_offsets"] != "learned_n_row"


def _canonical_model(model: dict[str, Any], reset: Any) -> None:
    if model["arch"] == "gpt":
        reset("model", *CRAWLER_ONLY)
    else:
        reset("model", "num_layers")
        if not model["num_crawler_layers"]:  # the flat blocks alone: nothing of the crawler is built
            reset("model", "crawler_loops", "crawler_mlp_mult", "crawler_mode", "loop_offsets", "value_embed_dim")
            model["inst_dim"] = 0
            if model["xsa"] == "crawler":
                model["xsa"] = "off"
        elif model["crawler_loops"] == 1:
            model["inst_dim"] = 0  # flow instructions exist only with two or more loops
        if not model["num_flat_layers"]:  # no flat block: their MLP width and place are moot
            reset("model", "mlp_mult", "crawler_position")
            if model["xsa"] == "all":
                model["xsa"] = "crawler"
    if model["model_dim"] != "auto":
        reset("model", "param_budget", "param_budget_counts")
    if not model["bigram_vocab_size"]:
        reset("model", "bigram_dim")
    if not model["trigram_vocab_size"]:
        reset("model", "trigram_dim", "trigram_zero_init")
    if not model["delta_net_heads"]:
        reset("model", "delta_net_conv", "delta_net_chunk", "deltanet_backend")


def _canonical_cadence(train: dict[str, Any], reset: Any) -> None:
    if train["cadence_phased"]:
        reset("train", "cadence")
        return
    reset("train", "cadence_early", "cadence_main", "cadence_late")
    if train["cadence"] <= 1:
        reset("train", "cadence_offset")
    else:
        train["cadence_offset"] %= train["cadence"]
