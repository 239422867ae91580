"""Data-parallel plumbing in one process: the collectives are replaced by stand-ins that play the other ranks,
so the tests see exactly what each rank sends and what it makes of the answer. (A real torchrun run of two
ranks is in test_evaluate.py.)"""

from __future__ import annotations

import datetime

import pytest
import torch
from torch import nn

from clowncar.worker import dist as dist_module
from clowncar.worker.dist import (
    DistInfo,
    all_reduce_sum,
    average_gradients,
    broadcast_parameters,
    cpu_threads,
    init_distributed,
    shutdown_distributed,
)

TWO = DistInfo(rank=0, local_rank=0, world_size=2)


def test_a_plain_process_is_rank_zero_of_one_and_the_main_one() -> None:
    info = DistInfo()
    assert (info.rank, info.local_rank, info.world_size) == (0, 0, 1)
    assert info.is_main and not info.enabled
    assert not DistInfo(rank=1, world_size=2).is_main
    assert DistInfo(rank=0, world_size=2).enabled and DistInfo(rank=0, world_size=2).is_main


@pytest.fixture
def no_group(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    calls: list[tuple] = []
    monkeypatch.setattr(dist_module.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist_module.dist, "init_process_group",
                        lambda backend, **kw: calls.append(("init", backend, kw)))
    monkeypatch.setattr(dist_module.torch.cuda, "set_device", lambda i: calls.append(("set_device", i)))
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    return calls


def test_without_torchrun_no_group_is_joined(no_group: list, monkeypatch: pytest.MonkeyPatch) -> None:
    assert init_distributed("cpu") == DistInfo()
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert init_distributed("cuda") == DistInfo()
    assert no_group == []


def test_a_cpu_rank_joins_gloo_with_the_timeout(no_group: list, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert init_distributed("cpu", timeout_s=42.5) == DistInfo(rank=3, local_rank=1, world_size=4)
    assert no_group == [("init", "gloo", {"timeout": datetime.timedelta(seconds=42.5)})]


def test_a_gpu_rank_joins_nccl_bound_to_its_local_gpu(no_group: list, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("LOCAL_RANK", "5")
    assert init_distributed("cuda") == DistInfo(rank=5, local_rank=5, world_size=8)
    assert no_group == [("set_device", 5), ("init", "nccl", {"timeout": datetime.timedelta(seconds=600),
                                                             "device_id": torch.device("cuda", 5)})]


def test_local_rank_defaults_to_zero_and_a_joined_group_is_not_joined_again(
    no_group: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(dist_module.dist, "is_initialized", lambda: True)
    assert init_distributed("cuda") == DistInfo(rank=1, local_rank=0, world_size=2)
    assert no_group == []


def test_shutdown_leaves_only_a_joined_group(monkeypatch: pytest.MonkeyPatch) -> None:
    destroyed: list[bool] = []
    monkeypatch.setattr(dist_module.dist, "destroy_process_group", lambda: destroyed.append(True))
    monkeypatch.setattr(dist_module.dist, "is_initialized", lambda: False)
    shutdown_distributed()
    assert destroyed == []
    monkeypatch.setattr(dist_module.dist, "is_initialized", lambda: True)
    shutdown_distributed()
    assert destroyed == [True]


def test_cpu_threads_takes_omp_num_threads_else_shares_the_allowed_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dist_module.os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setenv("OMP_NUM_THREADS", " 3 ")
    assert cpu_threads(4) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu_threads(4) == 1  # Ray's one-CPU trial gets one thread
    for bad in ("", "0", "-2", "two", "1.5"):
        monkeypatch.setenv("OMP_NUM_THREADS", bad)
        assert cpu_threads(4) == 4, bad
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cpu_threads() == 16
    assert cpu_threads(3) == 5
    assert cpu_threads(0) == 16  # no local count: the process has them all
    assert cpu_threads(32) == 1  # never zero


class Other:
    """Plays the other rank of two: its gradients are `other`, its parameters don't matter (rank 0 sends)."""

    def __init__(self) -> None:
        self.sent: list[tuple[torch.Tensor, object]] = []

    def all_reduce(self, t: torch.Tensor, op=None) -> None:
        self.sent.append((t.clone(), op))
        t.add_(self.other[: t.numel()].to(t.dtype) if t.dtype != torch.float64 else self.values)

    def broadcast(self, t: torch.Tensor, src: int) -> None:
        self.sent.append((t.clone(), src))


def two_param_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1, bias=False))


def test_gradients_become_the_mean_over_ranks_in_place_shape_by_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    model = two_param_model()
    params = list(model.parameters())  # weight 2x3, bias 2, weight 1x2: 10 numbers
    for i, p in enumerate(params):
        p.grad = torch.full_like(p, float(i + 1))
    other = Other()
    other.other = torch.arange(10, dtype=torch.float32) * 10  # the other rank's flat gradients
    monkeypatch.setattr(dist_module.dist, "all_reduce", other.all_reduce)
    average_gradients(model, TWO)
    assert len(other.sent) == 1  # one flat all-reduce for one dtype
    flat, op = other.sent[0]
    assert op == dist_module.dist.ReduceOp.SUM
    assert flat.tolist() == [1.0] * 6 + [2.0] * 2 + [3.0] * 2  # parameters in order, each flattened
    expected = (torch.tensor([1.0] * 6 + [2.0] * 2 + [3.0] * 2) + other.other) / 2
    got = torch.cat([p.grad.reshape(-1) for p in params])
    assert torch.equal(got, expected)
    assert params[0].grad.shape == (2, 3) and params[2].grad.shape == (1, 2)


def test_each_gradient_dtype_gets_its_own_reduce_and_unused_parameters_stay_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = two_param_model()
    model[1].to(torch.bfloat16)  # a bf16 layer beside fp32 ones
    w0, b0, w1 = model.parameters()
    w0.grad = torch.ones(2, 3)
    w1.grad = torch.ones(1, 2, dtype=torch.bfloat16)  # b0 has no gradient: unused in this step's mode
    other = Other()
    other.other = torch.full((6,), 3.0)
    monkeypatch.setattr(dist_module.dist, "all_reduce", other.all_reduce)
    average_gradients(model, DistInfo(rank=1, world_size=4))
    assert [(t.dtype, t.numel()) for t, _ in other.sent] == [(torch.float32, 6), (torch.bfloat16, 2)]
    assert b0.grad is None
    assert torch.equal(w0.grad, torch.full((2, 3), 1.0))  # (1 + 3) / 4
    assert w1.grad.dtype == torch.bfloat16 and torch.equal(w1.grad, torch.full((1, 2), 1.0, dtype=torch.bfloat16))


def test_a_single_process_touches_no_collective(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a, **k):
        raise AssertionError("a collective on one process")

    for name in ("all_reduce", "broadcast"):
        monkeypatch.setattr(dist_module.dist, name, refuse)
    model = two_param_model()
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    average_gradients(model, DistInfo())
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())
    broadcast_parameters(model, DistInfo())
    assert all_reduce_sum([1.5, 2.0], DistInfo(), torch.device("cpu")) == [1.5, 2.0]


def test_every_parameter_and_buffer_comes_from_rank_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    other = Other()
    monkeypatch.setattr(dist_module.dist, "broadcast", other.broadcast)
    broadcast_parameters(model, TWO)
    expected = [t for t in list(model.parameters()) + list(model.buffers())]
    assert len(other.sent) == len(expected) == 4 + 3  # 2 weights, 2 biases; running mean, var, count
    assert all(src == 0 for _, src in other.sent)
    assert all(torch.equal(sent, t) for (sent, _), t in zip(other.sent, expected, strict=True))


def test_float_sums_are_one_fp64_reduce(monkeypatch: pytest.MonkeyPatch) -> None:
    other = Other()
    other.values = torch.tensor([0.25, 1e-12], dtype=torch.float64)
    monkeypatch.setattr(dist_module.dist, "all_reduce", other.all_reduce)
    got = all_reduce_sum([1.0, 1.0], TWO, torch.device("cpu"))
    assert got == [1.25, 1.0 + 1e-12]  # fp64 keeps what fp32 would lose
    (sent, op), = other.sent
    assert sent.dtype == torch.float64 and op == dist_module.dist.ReduceOp.SUM
    assert isinstance(got, list) and isinstance(got[0], float)


def test_float_sums_travel_on_the_trials_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """NCCL reduces CUDA tensors only: the sums must be made on the device the rank trains on."""
    made_on: list[object] = []
    real_tensor = torch.tensor

    def tensor(data, **kwargs):
        made_on.append(kwargs.get("device"))
        return real_tensor(data, **{**kwargs, "device": "cpu"})

    other = Other()
    other.values = torch.zeros(1, dtype=torch.float64)
    monkeypatch.setattr(dist_module.dist, "all_reduce", other.all_reduce)
    monkeypatch.setattr(dist_module.torch, "tensor", tensor)
    assert all_reduce_sum([2.0], TWO, torch.device("cuda", 1)) == [2.0]
    assert made_on == [torch.device("cuda", 1)]
