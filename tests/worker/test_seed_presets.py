"""The seed-exact presets run a scaled-down trial on CPU: the seed's untrained tensors leave training
bit-identical, its bf16 model and quantizer are what the artifact holds, and the code-byte rule is recorded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from clowncar.config import TrialConfig
from clowncar.config_load import load_config
from clowncar.model import build_model
from clowncar.worker.artifact import read_artifact
from clowncar.worker.quant import quantize_tensor
from clowncar.worker.run import run_trial

# On top of a full-size preset: the fixture data, a 32-wide model, a few steps, and a quantization threshold
# small enough that the tiny model's matrices are quantized rather than passed through.
SCALE_DOWN = [
    "train.device=cpu", "train.compile=false", "train.warmup_steps=2", "train.iterations=6",
    "train.log_every=1", "train.muon_momentum_warmup_steps=4", "model.delta_net_chunk=8",
    "quant.enabled=true", "quant.gptq_calib_seqs=4", "quant.gptq_calib_seq_len=32",
    "quant.passthrough_max_numel=256", "quant.zstd_level=3",
]
UNTRAINED = ("loop_inst_", "delta_net.")


def scaled_down(preset: str, tiny_overrides: list[str], *extra: str) -> TrialConfig:
    smaller_ve = ["model.unused_value_embed_dim=16"] if preset.endswith("-seed") else []
    return load_config(preset=preset, overrides=[*tiny_overrides, *SCALE_DOWN, *smaller_ve, *extra])


def initial_model(cfg: TrialConfig) -> torch.nn.Module:
    """The weights the trial starts from: the worker seeds torch with train.seed, then builds the model."""
    torch.manual_seed(cfg.train.seed)
    return build_model(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("preset, frozen", [("clowncar-seed", ("loop_inst_",)),
                                            ("clowncar-ii-seed", UNTRAINED),
                                            ("clowncar", ())])
def test_seed_presets_run_on_cpu_and_their_untrained_tensors_leave_training_bit_identical(
        preset: str, frozen: tuple[str, ...], tiny_overrides: list[str], tmp_path: Path,
        read_trial: Callable[..., Any]) -> None:
    cfg = scaled_down(preset, tiny_overrides)
    assert run_trial(cfg, tmp_path) == 0
    result, _ = read_trial(tmp_path)
    assert result["status"] == "ok" and result["q_val_bpb"] is not None
    assert result["artifact_code_rule"] == "challenge"
    stored, meta = read_artifact(tmp_path / "model.ptz")
    assert meta["code_rule"] == "challenge" and meta["config"] == cfg.to_dict()
    init = dict(initial_model(cfg).named_parameters())
    watched = [n for n in stored.tensors if n.startswith(UNTRAINED)]
    assert watched and all(n in init for n in watched)
    for name in watched:
        qt = stored.tensors[name]
        expected, _ = quantize_tensor(name, init[name].detach(), qt.group, qt.scheme, cfg.quant, None)
        same = all(torch.equal(getattr(qt, k), getattr(expected, k)) for k in ("q", "scale", "data")
                   if getattr(qt, k) is not None)
        assert same == name.startswith(frozen), name
    if frozen:  # the seed's bf16 model and quantizer
        assert stored.tensors["tok_emb.weight"].dtype == torch.bfloat16
        assert stored.tensors["flat_blocks.0.resid_mix"].scheme == "fp16"  # size before the control patterns
        assert "ve_shared.embed.weight" in stored.tensors
    if "delta_net." in frozen:
        assert stored.tensors["delta_net.q_proj.weight"].scheme == "int8"
