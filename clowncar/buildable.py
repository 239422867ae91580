"""What a trial config must satisfy to build and run, beyond what its fields say on their own: the rules the
worker applies before it trains, which depend on the config alone. The worker applies them as it builds (a
trial that breaks one is rejected, exit 2); `config show`, `trial run` and `sweep plan` / `sweep run` apply the
same functions up front (`check_buildable`), so such a config is refused before anything runs.

Torch is imported only for `model_dim: auto`, whose width is found by building models on the meta device."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

from clowncar.errors import ConfigError

if TYPE_CHECKING:
    from clowncar.config import TrainConfig, TrialConfig
    from clowncar.config_model import ModelConfig


def width_step(cfg: ModelConfig) -> int:
    """Legal widths are the multiples of this: an even head dim for rotary, whole DeltaNet heads."""
    step = 2 * cfg.num_heads
    if cfg.delta_net_heads:
        step = math.lcm(step, cfg.delta_net_heads)
    return step


def check_width(cfg: ModelConfig, dim: int) -> None:
    """Raise ConfigError when `dim` cannot work with the rest of the model config."""
    head_dim = dim // cfg.num_heads
    if dim % cfg.num_heads or head_dim % 2:
        raise ConfigError(f"model.model_dim {dim} must be a multiple of 2 x model.num_heads ({2 * cfg.num_heads})")
    rope = cfg.rope_dims or head_dim
    if rope > head_dim or rope % 2:
        raise ConfigError(f"model.rope_dims ({cfg.rope_dims}) must be even and at most the head dim {head_dim}")
    if cfg.rope_ntk_above and rope < 4:
        raise ConfigError("model.rope_ntk_above needs at least 4 rotary dims (the NTK exponent is d / (d - 2))")
    if cfg.delta_net_heads and dim % cfg.delta_net_heads:
        raise ConfigError(f"model.model_dim {dim} must be a multiple of model.delta_net_heads "
                          f"({cfg.delta_net_heads})")
    rows = cfg.crawler_loops + (cfg.loop_offsets == "learned_n_row")
    if cfg.arch == "crawler" and cfg.inst_dim == 0 and rows > dim:
        raise ConfigError(f"model.crawler_loops ({cfg.crawler_loops}) exceeds the width {dim}: the "
                          f"loop offsets need one orthogonal direction per loop")


def check_arch(cfg: ModelConfig) -> None:
    if cfg.arch == "gpt" and cfg.xsa == "crawler":
        raise ConfigError("model.xsa = crawler needs model.arch = crawler (use 'all' or 'off' for a GPT)")
    if cfg.arch == "gpt" and cfg.delta_net_heads:
        raise ConfigError("model.delta_net_heads needs model.arch = crawler")


def probe_tokens(train: TrainConfig) -> int:
    """Validation tokens the probe batch takes: `probe_seqs` sequences of the train length, plus the last target."""
    return train.probe_seqs * train.train_seq_len + 1


def check_validation_cap(cfg: TrialConfig) -> None:
    """`eval.max_tokens` caps the validation tokens read: a cap below one eval sequence scores nothing, and one
    below the probe batch leaves the probe without tokens, whatever the data holds."""
    from clowncar.data.stream import tokens_kept

    cap = cfg.eval.max_tokens
    if not cap:
        return
    kept = tokens_kept(cap + 1, cfg.eval_seq_len)  # load_validation_tokens reads at most cap + 1 tokens
    if not kept:
        raise ConfigError(f"eval.max_tokens ({cap:,}) is less than one eval sequence of {cfg.eval_seq_len:,} "
                          "tokens: no validation token would be scored")
    if cfg.train.probe_every and probe_tokens(cfg.train) > kept:
        raise ConfigError(f"the probe needs {probe_tokens(cfg.train):,} validation tokens (train.probe_seqs x "
                          f"train.train_seq_len + 1), and eval.max_tokens ({cap:,}) keeps {kept:,}")


@lru_cache(maxsize=256)
def _auto_width(model_json: str) -> int:
    """`model_dim: auto` resolved once per model section (a grid of seeds or learning rates shares one)."""
    from clowncar.config_model import ModelConfig
    from clowncar.model.build import resolve_model_dim

    return resolve_model_dim(ModelConfig.model_validate_json(model_json))


def check_buildable(cfg: TrialConfig) -> None:
    """Raise ConfigError, with the line the worker would reject the trial with, when the config cannot build
    or cannot be scored: the model's width (for `model_dim: auto`, the width its param_budget allows) and the
    validation token cap."""
    model = cfg.model
    if model.model_dim == "auto":
        _auto_width(model.model_dump_json())
    else:  # what resolve_model_dim checks of a fixed width, without importing torch
        check_arch(model)
        check_width(model, model.model_dim)
    check_validation_cap(cfg)
