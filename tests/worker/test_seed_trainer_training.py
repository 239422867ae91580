"""The optimizer and schedules of the seed's sweep trainers (reference/seed_facts.md 9.1 and 9.4): AdamW with
decay on matrices only, the 20-step warm-up into a cosine to 0.1x, the production trainer's 50-step hold before
its wallclock warm-down, and late QAT's int6 fake quantization."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from clowncar.config import TrainConfig
from clowncar.config_load import load_config
from clowncar.model import build_model, param_groups
from clowncar.model.layers import CastedLinear, fake_int6
from clowncar.worker.optim import build_optimizers, set_lr_scale
from clowncar.worker.run import run_trial
from clowncar.worker.schedule import lr_scale


def seed_cosine(t: int, lr: float = 1.0, total: int = 500, warm: int = 20) -> float:
    """seed_facts 9.1, written out as the seed's trainers compute it (t is 1-based)."""
    if t < warm:
        return lr * t / warm
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (t - warm) / (total - warm))))


def test_cosine_schedule_is_the_seeds_step_for_step() -> None:
    train = load_config(preset="frugendorff-v2").train
    for step in range(1, 501):
        assert lr_scale(train, step, 0.0).scale == pytest.approx(seed_cosine(step), abs=1e-12), step
    assert lr_scale(train, 500, 0.0).scale == pytest.approx(0.1)
    # The wallclock cap only truncates a cosine run: time spent does not move the LR.
    assert lr_scale(train, 300, 599_000.0).scale == lr_scale(train, 300, 0.0).scale


def test_hold_steps_keep_the_full_lr_before_a_wallclock_warmdown() -> None:
    # The seed's H2 cad1 arm: 625 warm-down steps at 245 ms = 153 s, longer than its 150 s run, so without the
    # hold the LR would decay from step 2; the seed held it at 1 through its 0-based step 50 (our step 51).
    train = TrainConfig(max_wallclock_seconds=150.0, warmdown_iters=625, iterations=20000)
    assert lr_scale(train, 2, 245.0).scale < 1.0
    held = train.model_copy(update={"lr_hold_steps": 51})
    assert lr_scale(held, 51, 50 * 245.0).scale == 1.0
    assert lr_scale(held, 52, 51 * 245.0).scale == pytest.approx((150_000 - 51 * 245) / (625 * 245))


def test_adamw_decays_matrices_tables_and_loop_offsets_but_not_vectors() -> None:
    cfg = load_config(preset="micro-crawler", overrides=["model.model_dim=64", "model.trigram_vocab_size=37"])
    model = build_model(cfg)
    opts = build_optimizers(param_groups(model), cfg.train, torch.device("cpu"))
    assert len(opts) == 1 and isinstance(opts[0], torch.optim.AdamW)
    decay = {id(p): g["weight_decay"] for g in opts[0].param_groups for p in g["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    assert set(decay) == set(names)  # every parameter, once
    for pid, wd in decay.items():
        p = dict(model.named_parameters())[names[pid]]
        assert wd == (0.1 if p.ndim >= 2 else 0.0), names[pid]
    assert decay[id(model.loop_pos)] == 0.1 and decay[id(model.trigram.scale)] == 0.0
    set_lr_scale(opts, 0.5)
    assert {g["lr"] for g in opts[0].param_groups} == {0.001}


def test_fake_int6_rounds_each_row_to_at_most_63_levels_and_passes_the_gradient_through() -> None:
    torch.manual_seed(0)
    w = torch.randn(8, 300)
    q = fake_int6(w)
    for row, qrow in zip(w, q, strict=True):
        step = torch.quantile(row.abs(), 0.9995) / 31
        levels = torch.round(qrow / step)
        assert levels.unique().numel() <= 63 and levels.abs().max() <= 31
        torch.testing.assert_close(levels * step, qrow)
    lin = CastedLinear(300, 8, bias=False)
    lin.fake_quant = True
    x = torch.randn(4, 300)
    lin(x).sum().backward()
    torch.testing.assert_close(lin.weight.grad, x.sum(0).expand(8, -1))  # straight through the rounding
    with torch.no_grad():
        torch.testing.assert_close(lin(x), x @ fake_int6(lin.weight).T)


def test_late_qat_switches_on_below_the_threshold(tiny_cfg: Callable[..., Any], tmp_path: Path) -> None:
    cfg = tiny_cfg("train.late_qat_threshold=0.5", "train.iterations=12", "train.warmdown_iters=10",
                   "eval.stride=0")
    assert run_trial(cfg, tmp_path) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    # Iteration warm-down: scale (12 - step + 1) / 10 falls below 0.5 first at step 9 (0.4).
    assert result["late_qat_step"] == 9 and result["status"] == "ok"
    assert "late QAT on at step 9" in (tmp_path / "train.log").read_text()


def test_a_model_left_in_fake_quant_would_score_its_rounded_weights() -> None:
    # Why the trainer switches QAT off before the final eval: the float weights are the ones exported.
    model = nn.Sequential(CastedLinear(16, 16, bias=False))
    x = torch.randn(2, 16)
    plain = model(x)
    model[0].fake_quant = True
    assert not torch.equal(model(x), plain)
