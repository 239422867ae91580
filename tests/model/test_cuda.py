"""On a CUDA machine: the fast paths (flash-attn / FLA when installed, else SDPA / our delta rule) stay causal
and agree with the CPU model. Skipped without CUDA."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from clowncar.model import build_model

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@needs_cuda
def test_crawler_with_deltanet_is_causal_in_bf16_on_cuda_needs_cuda(tiny_cfg: Any, perturb: Any) -> None:
    cfg = tiny_cfg(model_dim=128, num_heads=4, num_kv_heads=2, delta_net_heads=2, bigram_vocab_size=64,
                   smear_gate=True, xsa="crawler")
    torch.manual_seed(0)
    model = perturb(build_model(cfg)).cuda()
    a = torch.randint(0, cfg.vocab_size, (2, 200), device="cuda")
    b = a.clone()
    b[:, 101:] = torch.randint(0, cfg.vocab_size, (2, 99), device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        la, lb = model(a), model(b)
    assert (la - lb)[:, :101].abs().max() < 1e-3
    assert (la - lb)[:, 101:].abs().max() > 1e-2


@pytest.mark.gpu
@needs_cuda
def test_cuda_bf16_loss_matches_cpu_fp32_needs_cuda(tiny_cfg: Any, perturb: Any) -> None:
    cfg = tiny_cfg(model_dim=128, num_heads=4, num_kv_heads=2, delta_net_heads=2)
    torch.manual_seed(0)
    model = perturb(build_model(cfg), 3)
    tokens = torch.randint(0, cfg.vocab_size, (2, 129))
    with torch.no_grad():
        cpu = model(tokens[:, :-1], tokens[:, 1:])
        model.cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            gpu = model(tokens[:, :-1].cuda(), tokens[:, 1:].cuda())
    assert abs(float(gpu) - float(cpu)) / float(cpu) < 2e-2
