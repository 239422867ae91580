"""The training batches, token by token: each step takes the next train_batch_tokens + 1 tokens of the stream (the
extra one is the last target, then consumed), cuts them into grad_accum micro-batches of inputs and targets
shifted by one, and gives rank r its run of micro-batches: the global batch and its order are the same for any
number of processes. Checked on shards whose token at position i is i, so every id says where it came from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from clowncar.config import TrainConfig
from clowncar.data.shards import write_shard
from clowncar.errors import ConfigError, DataError
from clowncar.worker.loader import TrainBatches

CPU = torch.device("cpu")


@pytest.fixture
def shards(tmp_path: Path) -> list[Path]:
    """Positions 0..999 over two shards (a step crosses from one to the next)."""
    return [write_shard(tmp_path / "t_000.bin", np.arange(0, 300)), write_shard(tmp_path / "t_001.bin",
                                                                                 np.arange(300, 1000))]


def train(**kw: int) -> TrainConfig:
    return TrainConfig(**{"train_batch_tokens": 64, "train_seq_len": 8, "grad_accum": 4, **kw})


def test_a_step_is_micro_batches_of_inputs_and_next_token_targets(shards: list[Path]) -> None:
    batches = TrainBatches(shards, train(), rank=0, world_size=1, device=CPU)
    step = batches.next()
    assert len(step) == 4
    for m, (x, y) in enumerate(step):
        assert x.shape == y.shape == (2, 8) and x.dtype == y.dtype == torch.int64
        assert x.flatten().tolist() == list(range(16 * m, 16 * m + 16))
        assert y.flatten().tolist() == list(range(16 * m + 1, 16 * m + 17))
    second = batches.next()  # 65 tokens a step: the next one starts at 65
    assert second[0][0].flatten().tolist()[:3] == [65, 66, 67]
    for _ in range(3):
        last = batches.next()
    assert last[3][1].flatten().tolist()[-1] == 5 * 65 - 1  # the fifth step's last target: across the shard cut
    batches.reset()
    assert batches.next()[0][0][0, 0].item() == 0


@pytest.mark.parametrize("world_size", [2, 4])
def test_the_ranks_split_the_same_global_batch_in_order(shards: list[Path], world_size: int) -> None:
    alone = TrainBatches(shards, train(), rank=0, world_size=1, device=CPU)
    ranks = [TrainBatches(shards, train(), rank=r, world_size=world_size, device=CPU) for r in range(world_size)]
    for _ in range(3):
        whole = alone.next()
        split = [pair for r in ranks for pair in r.next()]
        assert len(split) == len(whole)
        for (xa, ya), (xb, yb) in zip(whole, split, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert [len(r.next()) for r in ranks] == [4 // world_size] * world_size


def test_a_world_size_that_does_not_divide_grad_accum_is_refused_as_bad_input(shards: list[Path]) -> None:
    with pytest.raises(ConfigError) as err:
        TrainBatches(shards, train(grad_accum=4), rank=0, world_size=3, device=CPU)
    assert str(err.value) == "train.grad_accum (4) must be divisible by the number of processes (3)"
    assert err.value.exit_code == 2


def test_a_token_past_the_model_vocab_stops_the_step_with_one_line(shards: list[Path]) -> None:
    assert TrainBatches(shards, train(), 0, 1, CPU, vocab_size=65).next()  # ids 0..64: the largest fits
    with pytest.raises(DataError) as err:
        TrainBatches(shards, train(), 0, 1, CPU, vocab_size=64).next()
    assert str(err.value) == "train shards: token id 64 does not fit model.vocab_size (64)"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_step_holds_the_cpu_steps_tokens_on_the_gpu_needs_cuda(shards: list[Path]) -> None:
    on_cpu = TrainBatches(shards, train(), 0, 1, CPU).next()
    on_gpu = TrainBatches(shards, train(), 0, 1, torch.device("cuda")).next()
    for (xc, yc), (xg, yg) in zip(on_cpu, on_gpu, strict=True):
        assert xg.device.type == yg.device.type == "cuda"
        assert torch.equal(xg.cpu(), xc) and torch.equal(yg.cpu(), yc)
