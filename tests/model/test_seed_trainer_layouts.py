"""The layouts and parts of the seed's sweep trainers (reference/seed_facts.md section 9): the fully shared
Frugendorff stack, the micro-crawler with its crawler at the top, learned loop offsets with an N-step row, the
trigram hash, the plain block (no x0 mix, no q gain), the normal init, the blocks-only width budget, the
deliberating crawler and the value embedding."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

from clowncar.config_load import load_config
from clowncar.model import build_model, count_params, resolve_model_dim
from clowncar.model.layers import TrigramHashEmbedding

FRUGENDORFF_WIDTHS = {(3, 3): 768, (3, 4): 688, (4, 3): 672, (4, 4): 608, (5, 3): 592, (5, 4): 544, (6, 3): 544,
                      (6, 4): 496, (8, 3): 464, (8, 4): 432}
"""seed_facts 9.2: the width the seed's auto-size rule gives for U unique layers at MLP 3 and 4."""


def record_block_io(block: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
    inputs: list[Tensor] = []
    outputs: list[Tensor] = []

    def hook(_m: nn.Module, args: tuple[Any, ...], out: Tensor) -> None:
        inputs.append(args[0].detach())
        outputs.append(out.detach())

    block.register_forward_hook(hook)
    return inputs, outputs


@pytest.mark.parametrize("unique, mlp", sorted(FRUGENDORFF_WIDTHS))
def test_frugendorff_preset_auto_width_is_the_seeds(unique: int, mlp: int) -> None:
    cfg = load_config(preset="frugendorff-v2", overrides=[f"model.num_crawler_layers={unique}",
                                                          f"model.crawler_mlp_mult={mlp}"])
    assert resolve_model_dim(cfg.model) == FRUGENDORFF_WIDTHS[(unique, mlp)]


@pytest.mark.parametrize("unique, params", [(5, 16_840_608), (6, 16_752_400)])
def test_frugendorff_5x2_and_6x2_have_the_seeds_parameter_counts(unique: int, params: int) -> None:
    cfg = load_config(preset="frugendorff-v2", overrides=[f"model.num_crawler_layers={unique}"])
    with torch.device("meta"):
        model = build_model(cfg)
    assert count_params(model) == params  # blocks + tied embedding + 3 loop-offset rows
    assert not model.flat_blocks and model.skip_weights is None


def test_crawler_at_the_end_runs_every_flat_block_then_the_loops_without_skips(tiny_cfg: Any) -> None:
    model = build_model(tiny_cfg(crawler_position="end", num_flat_layers=3, crawler_loops=2, inst_dim=0))
    order: list[str] = []
    for name, block in [*((f"flat{i}", b) for i, b in enumerate(model.flat_blocks)), ("crawler", model.crawler_blocks[0])]:
        block.register_forward_hook(lambda *_, n=name: order.append(n))
    model(torch.randint(0, 64, (1, 8)))
    assert order == ["flat0", "flat1", "flat2", "crawler", "crawler"]
    assert model.skip_weights is None


def test_learned_offsets_add_one_row_per_loop_and_the_n_step_adds_its_own_row(tiny_cfg: Any) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_cfg(num_flat_layers=0, num_crawler_layers=1, crawler_loops=2, inst_dim=0,
                                 loop_offsets="learned_n_row"))
    pos = model.loop_pos
    assert isinstance(pos, nn.Parameter) and pos.shape == (3, 32)
    gram = pos.detach() @ pos.detach().T  # orthogonal rows of norm 0.01 at init
    torch.testing.assert_close(gram, torch.eye(3) * 1e-4, atol=1e-9, rtol=0)
    ins, outs = record_block_io(model.crawler_blocks[0])
    ids = torch.randint(0, 64, (2, 8))
    x0 = model.embed(ids).detach()
    model(ids, crawl=True)
    torch.testing.assert_close(ins[0], x0 + pos[0].detach())
    torch.testing.assert_close(ins[1], outs[0] + pos[1].detach())  # cumulative: added to the running stream
    model(ids, crawl=False)
    torch.testing.assert_close(ins[2], x0 + pos[2].detach())
    assert len(ins) == 3


def test_with_one_loop_learned_offsets_still_tell_the_n_step_apart(tiny_cfg: Any) -> None:
    # The seed's flat control (6x1) is not the same trial at every cadence: F and N steps add different rows.
    model = build_model(tiny_cfg(crawler_loops=1, inst_dim=0, loop_offsets="learned_n_row"))
    ids = torch.randint(0, 64, (1, 8))
    assert not torch.equal(model(ids, crawl=True), model(ids, crawl=False))
    fixed = build_model(tiny_cfg(crawler_loops=1, inst_dim=0))
    assert torch.equal(fixed(ids, crawl=True), fixed(ids, crawl=False))


def test_no_x0_mix_and_no_q_gain_equal_their_identity_settings(tiny_cfg: Any) -> None:
    plain = build_model(tiny_cfg(resid_mix=False, q_gain=False))
    names = {n for n, _ in plain.named_parameters()}
    assert not any(n.endswith(("resid_mix", "q_gain")) for n in names)
    full = build_model(tiny_cfg(qk_gain_init=1.0))  # mix (1, 0) and gain 1 at init: the same function
    missing, unexpected = full.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(n.endswith(("resid_mix", "q_gain")) for n in missing)
    ids = torch.randint(0, 64, (2, 8))
    torch.testing.assert_close(full(ids), plain(ids))


def test_normal_init_draws_qkv_and_mlp_input_at_0_02_and_zeroes_outputs() -> None:
    cfg = load_config(preset="micro-crawler", overrides=["model.model_dim=256", "model.trigram_vocab_size=0"])
    torch.manual_seed(0)
    model = build_model(cfg)
    for block in [*model.flat_blocks, *model.crawler_blocks]:
        for w in (block.attn.c_q.weight, block.attn.c_k.weight, block.attn.c_v.weight, block.mlp.fc.weight):
            assert abs(w.std().item() - 0.02) < 0.001
        assert not block.attn.proj.weight.any() and not block.mlp.proj.weight.any()
    assert abs(model.tok_emb.weight.std().item() - 0.005) < 0.0002


def test_trigram_buckets_follow_the_seed_hash() -> None:
    tri = TrigramHashEmbedding(8192, 4, 8)
    t = [5, 900, 17, 1023, 3]
    ids = tri.bucket_ids(torch.tensor([t])).tolist()[0]
    expect = [8191, (36313 * t[1] ^ 27191 * t[0]) % 8191]
    expect += [(36313 * t[n] ^ 27191 * t[n - 1] ^ 51647 * t[n - 2]) % 8191 for n in range(2, len(t))]
    assert ids == expect


def trigram_grads(tiny_cfg: Any, zero: bool) -> dict[str, Tensor]:
    torch.manual_seed(0)
    model = build_model(tiny_cfg(trigram_vocab_size=37, trigram_dim=16, trigram_zero_init=zero))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.randint(0, 64, (4, 17))
    for _ in range(3):
        opt.zero_grad()
        model(ids[:, :-1], ids[:, 1:]).backward()
        opt.step()
    return {n: p.grad.clone() for n, p in model.named_parameters() if n.startswith("trigram.") and p.grad is not None}


def test_zero_initialized_trigram_stays_dead_as_in_the_seeds_micro_crawler(tiny_cfg: Any) -> None:
    dead = trigram_grads(tiny_cfg, zero=True)
    assert set(dead) == {"trigram.embed.weight", "trigram.proj.weight", "trigram.scale"}
    assert all(not g.any() for g in dead.values())
    live = trigram_grads(tiny_cfg, zero=False)
    assert live["trigram.embed.weight"].abs().sum() > 0 and live["trigram.proj.weight"].abs().sum() > 0


def test_blocks_only_budget_leaves_the_trigram_out_of_the_width(tiny_cfg: Any) -> None:
    base = load_config(preset="micro-crawler").model
    assert resolve_model_dim(base) == 544  # the trigram's 1,048,576 + 128 d + 1 do not count, as in the seed
    assert resolve_model_dim(base.model_copy(update={"param_budget_counts": "all"})) < 544


def test_deliberation_fires_both_loops_from_one_input_and_starts_as_the_last_firing(tiny_cfg: Any) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_cfg(crawler_mode="deliberate", crawler_loops=2, inst_dim=0, loop_offsets="learned",
                                 num_crawler_layers=1))
    pos = model.loop_pos.detach()
    ins, outs = record_block_io(model.crawler_blocks[0])
    _, enc_out = record_block_io(model.flat_blocks[0])
    dec_in, _ = record_block_io(model.flat_blocks[1])  # the decoder block: crawler output + weighted skip

    def crawler_out(call: int) -> Tensor:
        return dec_in[call] - model.skip_weights[0].detach() * enc_out[call]

    ids = torch.randint(0, 64, (2, 8))
    model(ids, crawl=True)
    assert len(ins) == 2
    torch.testing.assert_close(ins[1] - pos[1], ins[0] - pos[0])  # parallel: the same x under both offsets
    torch.testing.assert_close(crawler_out(0), outs[1])  # delib_scale 0: the output is the last firing
    with torch.no_grad():
        model.deliberation.delib_scale.fill_(0.5)
        model.deliberation.consensus_ref.normal_()
    model(ids, crawl=True)
    assert not torch.allclose(crawler_out(1), outs[3], atol=1e-4)  # now the gates mix in f0 and the consensus
    model(ids, crawl=False)
    assert len(ins) == 5  # an N-step fires once, under the first offset
    torch.testing.assert_close(ins[4] - pos[0], ins[0] - pos[0])


def test_value_embedding_reaches_every_crawler_block_through_its_values(tiny_cfg: Any) -> None:
    torch.manual_seed(0)
    cfg = tiny_cfg(num_crawler_layers=2, value_embed_dim=8)
    model = build_model(cfg)
    seen: list[Any] = []
    for block in model.crawler_blocks:
        block.attn.register_forward_hook(lambda _m, args, _o: seen.append(args[3] if len(args) > 3 else None))
    with torch.no_grad():
        model.value_embed.proj.weight.normal_()
    ids = torch.randint(0, 64, (1, 8))
    model(ids)
    assert len(seen) == 2 * cfg.crawler_loops and all(v is not None and v.abs().sum() > 0 for v in seen)
    with torch.no_grad():
        model.value_embed_scales.zero_()
    off = model(ids)
    plain = build_model(tiny_cfg(num_crawler_layers=2))
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("value_embed")})
    torch.testing.assert_close(off, plain(ids))


@pytest.mark.parametrize("overrides, fragment", [
    (["model.loop_offsets=learned"], "needs model.inst_dim = 0"),
    (["model.crawler_mode=deliberate", "model.inst_dim=0"], "needs model.crawler_loops = 2"),
    (["model.crawler_mode=deliberate", "model.crawler_loops=2"], "model.inst_dim = 0"),
])
def test_layouts_that_cannot_work_are_one_line_config_errors(overrides: list[str], fragment: str) -> None:
    from clowncar.errors import ConfigError

    with pytest.raises(ConfigError, match=fragment):
        load_config(preset="clowncar", overrides=overrides)
