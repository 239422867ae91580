"""Muon (orthogonalized updates, decoupled weight decay), the optimizer split and the EMA."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from clowncar.config import TrainConfig
from clowncar.model import build_model, param_groups
from clowncar.worker.optim import EMA, Muon, build_optimizers, newton_schulz, set_lr_scale


@pytest.mark.parametrize("shape", [(64, 16), (16, 64), (48, 48)])
def test_newton_schulz_makes_singular_values_near_one(shape: tuple[int, int]) -> None:
    torch.manual_seed(0)
    g = torch.randn(*shape) * 3.0
    s = torch.linalg.svdvals(newton_schulz(g, steps=5))
    # The quintic is tuned for speed, not convergence: singular values land in roughly [0.7, 1.2].
    assert s.min() > 0.5 and s.max() < 1.3
    assert torch.linalg.svdvals(g).max() > 5.0  # the input was far from orthogonal


def test_muon_update_is_scaled_orthogonal_direction() -> None:
    torch.manual_seed(0)
    p = nn.Parameter(torch.zeros(32, 8))
    p.grad = torch.randn(32, 8)
    Muon([p], lr=0.1, momentum=0.0).step()
    update = -p.detach() / 0.1
    s = torch.linalg.svdvals(update / (32 / 8) ** 0.5)  # tall matrices are scaled by sqrt(rows / cols)
    assert s.min() > 0.5 and s.max() < 1.3


def test_muon_weight_decay_is_decoupled_from_the_gradient() -> None:
    p = nn.Parameter(torch.full((4, 4), 2.0))
    p.grad = torch.zeros(4, 4)  # no gradient: only the decay moves the weights
    Muon([p], lr=0.5, momentum=0.9, weight_decay=0.1).step()
    assert torch.allclose(p.detach(), torch.full((4, 4), 2.0 * (1 - 0.5 * 0.1)))


def test_muon_rejects_vectors() -> None:
    with pytest.raises(ValueError, match="matrices"):
        Muon([nn.Parameter(torch.zeros(4))], lr=0.1, momentum=0.9)


def test_every_trainable_parameter_is_in_exactly_one_optimizer(tiny_cfg: Callable[..., Any]) -> None:
    cfg = tiny_cfg("model.delta_net_heads=2")
    model = build_model(cfg)
    opts = build_optimizers(param_groups(model), cfg.train, torch.device("cpu"))
    seen = [id(p) for opt in opts for g in opt.param_groups for p in g["params"]]
    assert len(seen) == len(set(seen))
    assert set(seen) == {id(p) for p in model.parameters() if p.requires_grad}
    muon = next(o for o in opts if isinstance(o, Muon))
    assert all(p.ndim >= 2 for g in muon.param_groups for p in g["params"])


def test_lr_scale_multiplies_each_groups_base_lr() -> None:
    groups = {"matrix": [nn.Parameter(torch.zeros(4, 4))], "embed": [nn.Parameter(torch.zeros(8, 4))],
              "scalar": [nn.Parameter(torch.zeros(4))]}
    train = TrainConfig(matrix_lr=0.04, tied_embed_lr=0.05, scalar_lr=0.02)
    opts = build_optimizers(groups, train, torch.device("cpu"))
    set_lr_scale(opts, 0.5)
    lrs = sorted(g["lr"] for o in opts for g in o.param_groups)
    assert lrs == pytest.approx([0.01, 0.02, 0.025])


def test_ema_follows_until_start_then_averages_and_loads() -> None:
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = EMA(model, decay=0.9, start_step=1)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model, step=1)  # before the start: follows the weights exactly
    assert torch.equal(ema.shadow[0], torch.full((2, 2), 3.0))
    with torch.no_grad():
        model.weight.fill_(13.0)
    ema.update(model, step=2)  # 0.9 * 3 + 0.1 * 13 = 4
    assert torch.allclose(ema.shadow[0], torch.full((2, 2), 4.0))
    ema.copy_to(model)
    assert torch.allclose(model.weight, torch.full((2, 2), 4.0))


def test_ema_keeps_fp32_shadows_of_trainable_parameters_only_and_loads_them_in_the_model_dtype() -> None:
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False)).to(torch.bfloat16)
    model[1].weight.requires_grad_(False)  # frozen: not averaged, never overwritten
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[1].weight.fill_(7.0)
    ema = EMA(model, decay=0.5, start_step=2)
    assert len(ema.shadow) == 1 and ema.shadow[0].dtype == torch.float32
    assert torch.equal(ema.shadow[0], torch.ones(2, 2))
    for step, value in [(1, 2.0), (2, 4.0)]:  # up to and including start_step: follows
        with torch.no_grad():
            model[0].weight.fill_(value)
        ema.update(model, step=step)
        assert torch.equal(ema.shadow[0], torch.full((2, 2), value))
    with torch.no_grad():
        model[0].weight.fill_(8.0)
    ema.update(model, step=3)  # 0.5 * 4 + 0.5 * 8
    assert torch.equal(ema.shadow[0], torch.full((2, 2), 6.0))
    with torch.no_grad():
        model[0].weight.fill_(0.0)
    ema.copy_to(model)
    assert model[0].weight.dtype == torch.bfloat16 and torch.equal(model[0].weight.float(), torch.full((2, 2), 6.0))
    assert torch.equal(model[1].weight.float(), torch.full((2, 2), 7.0))


def test_ema_averages_from_the_first_step_by_default() -> None:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.75)
    with torch.no_grad():
        model.weight.fill_(4.0)
    ema.update(model, step=1)  # start_step 0: step 1 already averages, 0.75 * 0 + 0.25 * 4
    assert torch.equal(ema.shadow[0], torch.full((1, 1), 1.0))


def test_ema_refuses_to_load_into_a_model_of_another_shape() -> None:
    ema = EMA(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), decay=0.9)
    with pytest.raises(ValueError, match="zip"):
        ema.copy_to(nn.Linear(2, 2))  # two parameters against four shadows: never a silent partial load
