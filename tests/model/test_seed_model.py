"""The seed-exact model switches (docs/fidelity.md): bf16 parameters, bf16 soft-cap and rotary tables, the
seed's DeltaNet layer, the unused value embedding, and the parameters kept out of every optimizer group."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from clowncar.config import TrialConfig
from clowncar.config_model import ModelConfig
from clowncar.model import build_model, param_groups, untrained
from clowncar.model.deltanet import DeltaNet
from clowncar.model.layers import rotary_tables


def trial(model: dict[str, Any], **train: Any) -> TrialConfig:
    return TrialConfig.model_validate({"model": model, "train": train})


def dtypes(model: torch.nn.Module) -> dict[str, torch.dtype]:
    return {n: p.dtype for n, p in model.named_parameters()}


# -- bf16 parameters ------------------------------------------------------------------------------------------

def test_bf16_parameters_when_asked_with_fp32_master_matrices_and_controls(tiny_cfg: Any) -> None:
    base = tiny_cfg(arch="crawler", bigram_vocab_size=37, bigram_dim=16, smear_gate=True).model_dump()
    assert set(dtypes(build_model(trial(base))).values()) == {torch.float32}
    d = dtypes(build_model(trial({**base, "param_dtype": "bf16"})))
    bf16 = {n for n, t in d.items() if t == torch.bfloat16}
    assert bf16 == {"tok_emb.weight", "bigram.embed.weight"}  # embeddings; Muon's matrices stay fp32
    assert d["crawler_blocks.0.attn.c_q.weight"] == d["loop_inst_up.0.weight"] == torch.float32
    assert d["flat_blocks.0.resid_mix"] == d["skip_weights"] == d["crawler_blocks.0.attn.q_gain"] == torch.float32
    frozen = dtypes(build_model(trial({**base, "param_dtype": "bf16"}, train_flow_instructions=False)))
    assert {n for n, t in frozen.items() if t == torch.bfloat16} == bf16 | {
        "loop_inst_proj.weight", "loop_inst_up.0.weight", "loop_inst_up.1.weight", "loop_inst_up.2.weight"}


def test_a_bf16_model_trains_and_its_logits_come_back_fp32(tiny_cfg: Any) -> None:
    torch.manual_seed(0)
    model = build_model(trial({**tiny_cfg(arch="crawler").model_dump(), "param_dtype": "bf16"}))
    tokens = torch.randint(0, 64, (2, 17))
    loss = model(tokens[:, :-1], tokens[:, 1:])
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert model(tokens[:, :-1]).dtype == torch.float32
    assert model.tok_emb.weight.grad.dtype == torch.bfloat16


def test_softcap_in_the_activation_dtype_caps_bf16_logits_before_the_cast(tiny_cfg: Any) -> None:
    torch.manual_seed(0)
    cfg = {**tiny_cfg(arch="gpt").model_dump(), "param_dtype": "bf16", "logit_softcap": 2.0}
    fp32_cap, act_cap = build_model(trial(cfg)), build_model(trial({**cfg, "softcap_dtype": "activation"}))
    act_cap.load_state_dict(fp32_cap.state_dict())
    x = torch.randn(1, 5, fp32_cap.model_dim).bfloat16()
    raw = F.linear(F.rms_norm(x, (x.size(-1),)), fp32_cap.tok_emb.weight)  # bf16 logits
    assert torch.equal(fp32_cap.head(x, None), 2.0 * torch.tanh(raw.float() / 2.0))
    assert torch.equal(act_cap.head(x, None), (2.0 * torch.tanh(raw / 2.0)).float())
    assert not torch.equal(fp32_cap.head(x, None), act_cap.head(x, None))


def test_bf16_rotary_tables_round_positions_below_the_ntk_threshold_only() -> None:
    cos32, _ = rotary_tables(600, 16, 10000.0, 1024, torch.device("cpu"))
    cos16, _ = rotary_tables(600, 16, 10000.0, 1024, torch.device("cpu"), torch.bfloat16)
    assert cos16.dtype == torch.bfloat16 and cos32.dtype == torch.float32
    assert torch.equal(cos16[0, 257], cos16[0, 256])  # bf16 has 8 significant bits: 257 rounds to 256
    assert not torch.equal(cos32[0, 257], cos32[0, 256])
    ntk16 = rotary_tables(2048, 16, 10000.0, 1024, torch.device("cpu"), torch.bfloat16)
    ntk32 = rotary_tables(2048, 16, 10000.0, 1024, torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(ntk16, ntk32, strict=True))  # the NTK path was fp32


# -- the seed's DeltaNet layer --------------------------------------------------------------------------------

def test_seed_deltanet_has_no_silu_no_head_norm_and_norms_the_residual_stream() -> None:
    torch.manual_seed(0)
    ours = DeltaNet(16, 2, conv_size=3, chunk_size=4)
    seed = DeltaNet(16, 2, conv_size=3, chunk_size=4, conv_silu=False, head_norm=False, out_norm=True)
    seed.load_state_dict(ours.state_dict())
    x = torch.randn(2, 7, 16)
    torch.testing.assert_close(seed(x), F.rms_norm(x, (16,)))  # o_proj starts at zero: norm(x + 0)
    with torch.no_grad():
        for layer in (ours, seed):
            layer.o_proj.weight.copy_(torch.eye(16))
    conv = seed._short_conv(seed.v_conv, seed.v_proj(x))
    assert torch.equal(ours._short_conv(ours.v_conv, ours.v_proj(x)), F.silu(conv))
    y = seed(x)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(2, 7), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(ours(x).pow(2).mean(-1), torch.ones(2, 7), atol=1e-2)


@pytest.mark.parametrize("init, orthogonal", [("zero", False), ("orthogonal", True)])
def test_deltanet_o_proj_init_is_zero_or_the_seeds_overwriting_orthogonal(init: str, orthogonal: bool) -> None:
    cfg = ModelConfig(vocab_size=64, model_dim=64, num_heads=4, num_kv_heads=2, num_flat_layers=2,
                      crawler_loops=2, inst_dim=8, delta_net_heads=2, delta_net_o_init=init)
    w = build_model(cfg).delta_net.o_proj.weight.detach()
    if orthogonal:
        torch.testing.assert_close(w @ w.T, torch.eye(64), atol=1e-5, rtol=0)
    else:
        assert not w.any()


# -- the unused value embedding ---------------------------------------------------------------------------------

def test_unused_value_embedding_adds_only_its_own_tensors(tiny_cfg: Any) -> None:
    cfg = tiny_cfg(arch="crawler", bigram_vocab_size=37, bigram_dim=16)
    torch.manual_seed(0)
    plain = build_model(cfg)
    torch.manual_seed(0)
    with_ve = build_model(cfg.model_copy(update={"unused_value_embed_dim": 8}))
    extra = set(with_ve.state_dict()) - set(plain.state_dict())
    assert extra == {"ve_shared.embed.weight", "ve_shared.proj.weight", "ve_shared.scale",
                     "ve_layer_scales.0", "ve_layer_scales.1"}
    kv_dim = cfg.num_kv_heads * cfg.model_dim // cfg.num_heads
    assert sum(with_ve.state_dict()[n].numel() for n in extra) == 64 * 8 + 8 * kv_dim + 1 + 2
    for name, t in plain.state_dict().items():  # no other tensor's initial values moved
        assert torch.equal(t, with_ve.state_dict()[name]), name
    tokens = torch.randint(0, 64, (2, 9))
    assert torch.equal(plain(tokens), with_ve(tokens))  # and the forward pass never reads it
    with_ve(tokens[:, :-1], tokens[:, 1:]).backward()
    assert all(with_ve.get_parameter(n).grad is None for n in extra)


# -- parameters kept out of every optimizer group ------------------------------------------------------------------

def test_untrained_flow_instructions_and_deltanet_are_in_no_group(tiny_cfg: Any) -> None:
    cfg = trial(tiny_cfg(arch="crawler", delta_net_heads=2).model_dump(), train_flow_instructions=False,
                train_delta_net=False)
    model = build_model(cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    grouped = [names[id(p)] for ps in param_groups(model, untrained(cfg)).values() for p in ps]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == {n for n in names.values() if not n.startswith(("loop_inst_", "delta_net."))}
    assert untrained(trial({})) == ()
