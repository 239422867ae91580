"""torch.compile of the tiny crawler (DeltaNet, flow instructions, bigram, smear) runs on CPU and matches eager."""

from __future__ import annotations

from typing import Any

import pytest
import torch


@pytest.mark.slow
def test_compiled_tiny_crawler_matches_eager_on_cpu(tiny_cfg: Any, perturb: Any) -> None:
    from clowncar.model import build_model

    cfg = tiny_cfg(arch="crawler", crawler_loops=2, delta_net_heads=2, delta_net_chunk=8, bigram_vocab_size=37,
                   bigram_dim=16, smear_gate=True, xsa="crawler", ln_scale=True)
    torch.manual_seed(0)
    model = perturb(build_model(cfg))
    tokens = torch.randint(0, cfg.vocab_size, (2, 20))
    compiled = torch.compile(model, dynamic=False)
    # One C-step graph (forward and backward): each compiled variant costs minutes of C++ on a loaded CPU.
    eager_loss = model(tokens[:, :-1], tokens[:, 1:])
    loss = compiled(tokens[:, :-1], tokens[:, 1:])
    torch.testing.assert_close(loss, eager_loss, rtol=1e-4, atol=1e-4)
    eager_grads = torch.autograd.grad(eager_loss, list(model.parameters()))
    grads = torch.autograd.grad(loss, list(model.parameters()))
    for g, ge in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(g, ge, rtol=1e-3, atol=1e-4)
