"""Every parameter is reachable by the loss and sits in exactly one optimizer group (the seed's flow
instructions and DeltaNet weights were in none, so they never trained)."""

from __future__ import annotations

from typing import Any

import torch

from clowncar.model import build_model, param_groups


def c_step(model: torch.nn.Module, opt: torch.optim.Optimizer, tokens: torch.Tensor) -> float:
    opt.zero_grad(set_to_none=True)
    loss = model(tokens[:, :-1], tokens[:, 1:], crawl=True)
    loss.backward()
    opt.step()
    return loss.item()


def test_every_parameter_gets_gradient_after_two_c_steps(model_variant: dict[str, Any], tiny_cfg: Any) -> None:
    cfg = tiny_cfg(**model_variant)
    torch.manual_seed(0)
    model = build_model(cfg)
    groups = param_groups(model)
    opt = torch.optim.Adam([{"params": ps} for ps in groups.values()], lr=1e-2)
    tokens = torch.randint(0, cfg.vocab_size, (4, 17))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    c_step(model, opt, tokens)
    c_step(model, opt, tokens)
    # Zero-initialized projections (attention/MLP outputs, flow-instruction ups, the DeltaNet read-out) block
    # the gradient of what feeds them at step 0; after two steps every path is open (the value embedding sits
    # behind two of them: its own projection and the attention output). An N-step is added because
    # it alone reaches the N-step's own loop offset (`loop_offsets: learned_n_row`).
    opt.zero_grad(set_to_none=True)
    (model(tokens[:, :-1], tokens[:, 1:]) + model(tokens[:, :-1], tokens[:, 1:], crawl=False)).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad, f"no gradient: {no_grad}"
    opt.step()  # and the optimizer groups move every one of them
    unchanged = [n for n, p in model.named_parameters() if torch.equal(p, before[n])]
    assert not unchanged, f"not trained by the optimizer step: {unchanged}"


def test_param_groups_hold_each_trainable_parameter_exactly_once(model_variant: dict[str, Any],
                                                                 tiny_cfg: Any) -> None:
    model = build_model(tiny_cfg(**model_variant))
    groups = param_groups(model)
    assert set(groups) == {"matrix", "embed", "scalar"}
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}


def test_param_groups_route_matrices_embeddings_and_controls(tiny_cfg: Any) -> None:
    cfg = tiny_cfg(arch="crawler", delta_net_heads=2, bigram_vocab_size=37, bigram_dim=16, smear_gate=True)
    model = build_model(cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {k: {names[id(p)] for p in ps} for k, ps in param_groups(model).items()}
    assert groups["embed"] == {"tok_emb.weight", "bigram.embed.weight"}
    assert {"loop_inst_proj.weight", "loop_inst_up.2.weight", "delta_net.q_proj.weight", "bigram.proj.weight",
            "crawler_blocks.0.attn.c_q.weight", "flat_blocks.1.mlp.fc.weight"} <= groups["matrix"]
    assert {"skip_weights", "smear.gate", "bigram.scale", "crawler_blocks.0.resid_mix",
            "crawler_blocks.0.attn.q_gain", "delta_net.q_conv.weight", "delta_net.b_proj.bias"} <= groups["scalar"]
    assert all(p.ndim == 2 for p in param_groups(model)["matrix"])


def test_n_step_runs_the_shared_block_once_and_c_step_all_loops(tiny_cfg: Any) -> None:
    model = build_model(tiny_cfg(arch="crawler", crawler_loops=3))
    calls: list[int] = []
    model.crawler_blocks[0].register_forward_hook(lambda *_: calls.append(1))
    tokens = torch.randint(0, 64, (1, 8))
    model(tokens, crawl=False)
    assert len(calls) == 1
    model(tokens, crawl=True)
    assert len(calls) == 1 + 3
