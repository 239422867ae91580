"""Muon and the AdamW groups against the seed's optimizer written out in float64 (reference/seed_facts.md
section 4: Newton-Schulz with (3.4445, -4.7750, 2.0315), Nesterov momentum, updates scaled by
sqrt(max(1, rows / cols)), decoupled weight decay `p *= 1 - lr * wd`), step by step while the schedule moves
the LR and the momentum warm-up moves the momentum."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from clowncar.config import TrainConfig
from clowncar.worker.optim import Muon, build_optimizers, newton_schulz, set_lr_scale, set_muon_momentum


def reference_orthogonalize(g: Tensor, steps: int) -> Tensor:
    """The seed's quintic iteration on the wide orientation of g / (||g||_F + 1e-7), in float64."""
    x = g.double()
    wide = x.T if x.size(0) > x.size(1) else x
    wide = wide / (wide.norm() + 1e-7)
    for _ in range(steps):
        a = wide @ wide.T
        wide = 3.4445 * wide + (-4.7750 * a + 2.0315 * a @ a) @ wide
    return wide.T if x.size(0) > x.size(1) else wide


def reference_muon(weights: list[Tensor], grads: list[list[Tensor | None]], lrs: list[float],
                   momenta: list[float], wd: float, steps: int) -> list[Tensor]:
    """Weights after each step's grads (None: the parameter got no gradient that step and is left alone)."""
    w = [t.double().clone() for t in weights]
    bufs: list[Tensor | None] = [None] * len(w)
    for step_grads, lr, mu in zip(grads, lrs, momenta, strict=True):
        for i, g in enumerate(step_grads):
            if g is None:
                continue
            g = g.double().reshape(g.size(0), -1)
            bufs[i] = g.clone() if bufs[i] is None else mu * bufs[i] + g
            update = reference_orthogonalize(g + mu * bufs[i], steps)
            update = update * max(1.0, update.size(0) / update.size(1)) ** 0.5
            w[i] = w[i] * (1 - lr * wd) - lr * update.reshape(w[i].shape)
    return w


SHAPES = [(24, 8), (8, 24), (16, 16), (6, 3, 4)]  # tall, wide, square, and a kernel flattened to 6 x 12


@pytest.mark.parametrize("wd", [0.0, 0.04])
def test_muon_steps_equal_the_float64_reference(wd: float) -> None:
    g = torch.Generator().manual_seed(0)
    params = [nn.Parameter(torch.randn(s, generator=g)) for s in SHAPES]
    start = [p.detach().clone() for p in params]
    grads = [[torch.randn(s, generator=g) for s in SHAPES] for _ in range(4)]
    grads[2][1] = None  # a matrix unused in one step (an N-step's crawler extras): neither moved nor decayed
    lrs, momenta = [0.05, 0.04, 0.02, 0.01], [0.85, 0.9, 0.95, 0.95]
    opt = Muon(params, lr=0.05, momentum=0.85, backend_steps=5, weight_decay=wd)
    for group in opt.param_groups:
        group["base_lr"] = group["lr"]
    for step_grads, lr, mu in zip(grads, lrs, momenta, strict=True):
        set_lr_scale([opt], lr / 0.05)
        set_muon_momentum([opt], mu)
        for p, grad in zip(params, step_grads, strict=True):
            p.grad = grad
        opt.step()
    want = reference_muon(start, grads, lrs, momenta, wd, 5)
    for p, w in zip(params, want, strict=True):
        torch.testing.assert_close(p.detach().double(), w, atol=2e-6, rtol=0)


@pytest.mark.parametrize("steps, size", [(1, 4.0), (3, 4.0), (5, 1e-6)], ids=["1-step", "3-steps", "tiny-gradient"])
def test_newton_schulz_equals_the_reference_at_any_step_count(steps: int, size: float) -> None:
    """A gradient of norm ~1e-6 is where the eps in `g / (||g|| + eps)` shows: its sign changes the result."""
    g = torch.randn(12, 30, generator=torch.Generator().manual_seed(1)) * size
    for m in (g, g.T):
        torch.testing.assert_close(newton_schulz(m, steps).double(), reference_orthogonalize(m, steps),
                                   atol=1e-6, rtol=0)
        assert newton_schulz(m, steps).dtype == torch.float32 and newton_schulz(m, steps).shape == m.shape


def test_newton_schulz_of_a_zero_gradient_is_zero() -> None:
    assert not newton_schulz(torch.zeros(4, 6), 5).any()  # the eps keeps 0 / 0 out


def test_muon_momentum_starts_from_the_first_gradient() -> None:
    p = nn.Parameter(torch.zeros(4, 4))
    opt = Muon([p], lr=1.0, momentum=0.5)
    p.grad = torch.eye(4) * 3
    opt.step()
    torch.testing.assert_close(opt.state[p]["momentum_buffer"], torch.eye(4) * 3)
    p.grad = torch.eye(4)
    opt.step()
    torch.testing.assert_close(opt.state[p]["momentum_buffer"], torch.eye(4) * 2.5)


def test_muon_group_options_and_the_vector_message() -> None:
    p = nn.Parameter(torch.zeros(3, 2))
    opt = Muon([p], lr=0.1, momentum=0.9, backend_steps=4, weight_decay=0.2)
    assert {k: opt.param_groups[0][k] for k in ("lr", "momentum", "backend_steps", "weight_decay")} == \
        {"lr": 0.1, "momentum": 0.9, "backend_steps": 4, "weight_decay": 0.2}
    assert (opt.rank, opt.world_size) == (0, 1)
    plain = Muon([p], lr=0.1, momentum=0.9).param_groups[0]
    assert (plain["backend_steps"], plain["weight_decay"]) == (5, 0.0)  # the seed's 5 steps, no decay
    with pytest.raises(ValueError, match=r"^Muon needs matrices, got a parameter of shape \(5,\)$"):
        Muon([p, nn.Parameter(torch.zeros(5))], lr=0.1, momentum=0.9)


def test_a_step_without_any_gradient_moves_nothing() -> None:
    p = nn.Parameter(torch.ones(3, 3))
    opt = Muon([p], lr=0.1, momentum=0.9, weight_decay=0.5)
    opt.step()
    assert torch.equal(p.detach(), torch.ones(3, 3)) and not opt.state


def test_a_group_without_gradients_does_not_stop_the_next_one() -> None:
    idle, busy = nn.Parameter(torch.ones(3, 3)), nn.Parameter(torch.ones(3, 3))
    busy.grad = torch.eye(3)
    Muon([{"params": [idle]}, {"params": [busy]}], lr=0.1, momentum=0.9).step()
    assert torch.equal(idle.detach(), torch.ones(3, 3)) and not torch.equal(busy.detach(), torch.ones(3, 3))


def groups() -> dict[str, list[nn.Parameter]]:
    return {"matrix": [nn.Parameter(torch.zeros(4, 4)), nn.Parameter(torch.zeros(4, 2, 2))],
            "embed": [nn.Parameter(torch.zeros(8, 4))],
            "scalar": [nn.Parameter(torch.zeros(4)), nn.Parameter(torch.zeros(2, 4)), nn.Parameter(torch.zeros(()))]}


TRAIN = TrainConfig(matrix_lr=0.04, tied_embed_lr=0.05, scalar_lr=0.02, muon_momentum=0.9, muon_backend_steps=3,
                    muon_wd=0.01, adam_beta1=0.8, adam_beta2=0.99, adam_eps=1e-6, adam_wd=0.03)


def test_muon_takes_the_matrices_and_one_adamw_the_embeddings_and_scalars() -> None:
    gs = groups()
    muon, adam = build_optimizers(gs, TRAIN, torch.device("cpu"))
    assert isinstance(muon, Muon) and muon.param_groups[0]["params"] == gs["matrix"]
    m = muon.param_groups[0]
    assert (m["lr"], m["base_lr"], m["momentum"], m["backend_steps"], m["weight_decay"]) == (0.04, 0.04, 0.9, 3, 0.01)
    assert isinstance(adam, torch.optim.AdamW)
    assert [(g["params"], g["lr"], g["base_lr"]) for g in adam.param_groups] == [
        (gs["embed"], 0.05, 0.05), (gs["scalar"], 0.02, 0.02)]
    for g in adam.param_groups:
        assert (g["betas"], g["eps"], g["weight_decay"], g["fused"]) == ((0.8, 0.99), 1e-6, 0.03, False)


def test_rank_and_world_size_reach_muon() -> None:
    muon, _ = build_optimizers(groups(), TRAIN, torch.device("cpu"), rank=1, world_size=2)
    assert (muon.rank, muon.world_size) == (1, 2)
    muon, _ = build_optimizers(groups(), TRAIN, torch.device("cpu"))
    assert (muon.rank, muon.world_size) == (0, 1)


def test_adamw_mode_takes_whichever_groups_there_are() -> None:
    scalars = [nn.Parameter(torch.zeros(3))]
    (adam,) = build_optimizers({"scalar": scalars}, TRAIN.model_copy(update={"optimizer": "adamw"}),
                               torch.device("cpu"))
    assert [(g["params"], g["weight_decay"]) for g in adam.param_groups] == [(scalars, 0.0)]


def test_groups_that_are_empty_get_no_optimizer() -> None:
    only_scalars = build_optimizers({"matrix": [], "scalar": [nn.Parameter(torch.zeros(3))]}, TRAIN,
                                    torch.device("cpu"))
    assert len(only_scalars) == 1 and isinstance(only_scalars[0], torch.optim.AdamW)
    assert [g["lr"] for g in only_scalars[0].param_groups] == [0.02]
    only_matrices = build_optimizers({"matrix": [nn.Parameter(torch.zeros(2, 2))], "embed": []}, TRAIN,
                                     torch.device("cpu"))
    assert len(only_matrices) == 1 and isinstance(only_matrices[0], Muon)
    assert build_optimizers({}, TRAIN, torch.device("cpu")) == []


def test_adamw_mode_decays_only_parameters_of_two_or_more_dims_at_each_groups_lr() -> None:
    gs = groups()
    (adam,) = build_optimizers(gs, TRAIN.model_copy(update={"optimizer": "adamw"}), torch.device("cpu"))
    assert isinstance(adam, torch.optim.AdamW)
    got = [([id(p) for p in g["params"]], g["lr"], g["base_lr"], g["weight_decay"]) for g in adam.param_groups]
    ids = {name: [id(p) for p in ps] for name, ps in gs.items()}
    assert got == [(ids["matrix"], 0.04, 0.04, 0.03), (ids["embed"], 0.05, 0.05, 0.03),
                   (ids["scalar"][1:2], 0.02, 0.02, 0.03), ([ids["scalar"][0], ids["scalar"][2]], 0.02, 0.02, 0.0)]
    assert all((g["betas"], g["eps"], g["fused"]) == ((0.8, 0.99), 1e-6, False) for g in adam.param_groups)


def test_lr_scale_and_momentum_reach_every_group_of_their_optimizers() -> None:
    muon, adam = build_optimizers(groups(), TRAIN, torch.device("cpu"))
    set_lr_scale([muon, adam], 0.25)
    assert [g["lr"] for o in (muon, adam) for g in o.param_groups] == pytest.approx([0.01, 0.0125, 0.005])
    set_muon_momentum([adam, muon], 0.97)
    assert muon.param_groups[0]["momentum"] == 0.97 and "momentum" not in adam.param_groups[0]


def test_sharded_ranks_each_orthogonalize_their_share_and_the_sum_is_the_whole_update(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two ranks simulated in one process: rank r fills the slices of matrices i % 2 == r, and an all-reduce
    (here the sum of both ranks' buffers) gives each the same step as one unsharded process."""
    import clowncar.worker.optim as optim_module

    g = torch.Generator().manual_seed(3)
    start = [torch.randn(s, generator=g) for s in SHAPES]
    grads = [torch.randn(s, generator=g) for s in SHAPES]

    def run(rank: int, world: int) -> tuple[list[Tensor], Tensor]:
        params = [nn.Parameter(t.clone()) for t in start]
        for p, grad in zip(params, grads, strict=True):
            p.grad = grad.clone()
        opt = Muon(params, lr=0.1, momentum=0.5, weight_decay=0.1, rank=rank, world_size=world)
        seen: list[Tensor] = []

        def all_reduce(flat: Tensor, op: object) -> None:
            assert op == torch.distributed.ReduceOp.SUM
            seen.append(flat.clone())
            if others:
                flat.add_(others[0])

        monkeypatch.setattr(optim_module.dist, "all_reduce", all_reduce)
        opt.step()
        return [p.detach() for p in params], seen[0] if seen else torch.empty(0)

    monkeypatch.setattr(optim_module.dist, "is_initialized", lambda: True)
    others: list[Tensor] = []
    _, rank1_share = run(1, 2)
    others.append(rank1_share)
    sharded, rank0_share = run(0, 2)
    whole, none = run(0, 1)
    assert none.numel() == 0  # one process: no all-reduce at all
    sizes = [t.numel() for t in start]
    for i, chunk in enumerate(zip(rank0_share.split(sizes), rank1_share.split(sizes), strict=True)):
        mine, theirs = chunk if i % 2 == 0 else chunk[::-1]
        assert mine.any() and not theirs.any()  # each matrix orthogonalized by exactly one rank
    for a, b in zip(sharded, whole, strict=True):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=0)


@pytest.mark.parametrize("optimizer", ["muon", "adamw"])
def test_adamw_is_fused_on_cuda_only(optimizer: str) -> None:
    """Only the device's type is read (fused AdamW also takes CPU tensors), so this runs without a GPU."""
    train = TRAIN.model_copy(update={"optimizer": optimizer})
    for device, fused in ((torch.device("cuda", 0), True), (torch.device("cpu"), False)):
        adam = build_optimizers(groups(), train, device)[-1]
        assert isinstance(adam, torch.optim.AdamW) and {g["fused"] for g in adam.param_groups} == {fused}
