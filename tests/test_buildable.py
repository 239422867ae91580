"""What a config must satisfy to build, checked up front with the worker's own functions (clowncar/buildable.py):
`config show`, `trial run` and a sweep spec refuse, with the worker's line, a config the worker would reject
before its first step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from clowncar.buildable import check_buildable
from clowncar.config import TrialConfig
from clowncar.config_load import load_config
from clowncar.data.stream import load_validation_tokens, tokens_kept
from clowncar.errors import ConfigError
from clowncar.model.build import resolve_model_dim
from clowncar.presets import PRESETS
from clowncar.worker.dist import DistInfo
from clowncar.worker.progress import TrialLog
from clowncar.worker.train import train


def tiny(*overrides: str) -> TrialConfig:
    return load_config(None, preset="tiny-cpu", overrides=list(overrides))


def refusal(cfg: TrialConfig) -> str:
    with pytest.raises(ConfigError) as err:
        check_buildable(cfg)
    return str(err.value)


def test_every_preset_builds() -> None:
    for name in PRESETS:
        check_buildable(load_config(None, preset=name))


def test_an_auto_width_below_the_smallest_model_is_refused_with_the_workers_line() -> None:
    cfg = tiny("model.model_dim=auto", "model.param_budget=10")
    line = refusal(cfg)
    assert line == "model.param_budget 10 is below the smallest legal model (18,301 parameters at width 8)"
    with pytest.raises(ConfigError) as err:
        resolve_model_dim(cfg.model)  # the one rule, as the worker's build applies it
    assert str(err.value) == line
    check_buildable(tiny("model.model_dim=auto", "model.param_budget=200000"))


def test_a_fixed_width_the_model_cannot_use_is_refused_without_torch_rules_of_its_own() -> None:
    assert refusal(tiny("model.arch=gpt", "model.xsa=crawler")) == (
        "model.xsa = crawler needs model.arch = crawler (use 'all' or 'off' for a GPT)")
    assert refusal(tiny("model.delta_net_heads=3")) == "model.model_dim 64 must be a multiple of model.delta_net_heads (3)"


def test_an_eval_token_cap_below_one_sequence_or_the_probe_is_refused() -> None:
    assert refusal(tiny("eval.seq_len=100000")) == (
        "eval.max_tokens (16,384) is less than one eval sequence of 100,000 tokens: no validation token would be "
        "scored")
    assert refusal(tiny("train.probe_seqs=200")) == (
        "the probe needs 25,601 validation tokens (train.probe_seqs x train.train_seq_len + 1), and "
        "eval.max_tokens (16,384) keeps 16,385")
    check_buildable(tiny("eval.seq_len=100000", "eval.max_tokens=0"))  # the whole split: the data decides
    check_buildable(tiny("train.probe_seqs=200", "train.probe_every=0"))  # no probe
    check_buildable(tiny("train.probe_seqs=128"))  # 128 x 128 + 1 = 16,385: exactly what the cap keeps
    assert refusal(tiny("train.probe_seqs=128", "eval.max_tokens=16383")) == (  # reads 16,384: 127 sequences
        "the probe needs 16,385 validation tokens (train.probe_seqs x train.train_seq_len + 1), and "
        "eval.max_tokens (16,383) keeps 16,257")


def test_the_cap_counts_the_tokens_the_validation_loader_keeps(tmp_path: Path) -> None:
    from clowncar.data.shards import write_shard

    shard = tmp_path / "fineweb_val_000000.bin"
    write_shard(shard, [i % 50 for i in range(1000)])
    for seq_len, cap in ((100, 99), (100, 100), (100, 250), (7, 0)):
        expected = tokens_kept(cap + 1 if cap else 1000, seq_len)
        if expected:
            assert len(load_validation_tokens([shard], seq_len, cap)) == expected
        else:
            with pytest.raises(Exception, match="too few for one sequence"):
                load_validation_tokens([shard], seq_len, cap)
    assert tokens_kept(100, 100) == 0 and tokens_kept(101, 100) == 101 and tokens_kept(0, 5) == 0


def test_the_worker_refuses_such_a_config_before_it_reads_any_data(tmp_path: Path) -> None:
    cfg = tiny("model.model_dim=auto", "model.param_budget=10", f"data.dataset={tmp_path / 'no-such-data'}")
    result: dict[str, Any] = {}
    with pytest.raises(ConfigError, match="below the smallest legal model"):
        train(cfg, tmp_path, DistInfo(), torch.device("cpu"), None, TrialLog(None, 1, 0.0), result)
    assert "provenance" not in result  # the data step, which records the shards' digest, never ran
