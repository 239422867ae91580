"""Every model variant computes, to float rounding, what a plain float64 re-derivation of the architecture
(reference/seed_facts.md sections 4, 5 and 9) computes from the same named tensors.

The reference below shares no code with `clowncar.model`: it reads the state dict by name and writes each
operation out (explicit causal softmax with the KV heads repeated, the rotary pairs, the hash buckets per
position, the delta rule one token at a time). Every parameter is perturbed first, so zero-initialized
projections cannot hide a path. It is what keeps the loss (and so every BPB) honest against planted bugs in
layers.py, crawler.py, gpt.py and the DeltaNet layer."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor

from clowncar.config_model import ModelConfig
from clowncar.model import build_model

# Settings no variant of conftest.VARIANTS reaches, on top of the tiny config (the bf16 variant is left out:
# it differs from fp32 by bf16 rounding only, and tests/model/test_seed_model.py covers it).
EXTRA: dict[str, dict[str, Any]] = {
    "gpt-gqa-4to1-partial-rope-ntk": {"arch": "gpt", "num_kv_heads": 1, "rope_dims": 4, "rope_ntk_above": 5,
                                      "rope_base": 500.0, "qk_gain_init": 0.7, "logit_softcap": 7.0},
    "gpt-no-softcap-normal-init": {"arch": "gpt", "logit_softcap": 0.0, "weight_init": "normal", "num_layers": 4},
    "gpt-one-layer": {"arch": "gpt", "num_layers": 1},
    "gpt-softcap-below-one": {"arch": "gpt", "logit_softcap": 0.5},
    "crawler-softcap-below-one-in-activation-dtype": {"arch": "crawler", "logit_softcap": 0.5,
                                                      "softcap_dtype": "activation"},
    "crawler-no-softcap-in-activation-dtype": {"arch": "crawler", "logit_softcap": 0.0, "softcap_dtype": "activation"},
    "gpt-mha-bigram-at-width": {"arch": "gpt", "num_kv_heads": 4, "bigram_vocab_size": 11, "bigram_dim": 32},
    "crawler-odd-mlp-mult-3flat-xsa-all": {"arch": "crawler", "mlp_mult": 1.5, "crawler_mlp_mult": 2.7,
                                            "num_flat_layers": 3, "xsa": "all", "ln_scale": True},
    "crawler-learned-offsets-at-end": {"arch": "crawler", "inst_dim": 0, "loop_offsets": "learned",
                                       "crawler_position": "end", "num_flat_layers": 2, "crawler_loops": 4},
    "crawler-value-embed-loop": {"arch": "crawler", "value_embed_dim": 8, "num_crawler_layers": 2,
                                 "bigram_vocab_size": 29, "bigram_dim": 16, "trigram_vocab_size": 31,
                                 "trigram_dim": 32},
    "crawler-5flat-2loops-flow-1wide": {"arch": "crawler", "num_flat_layers": 5, "crawler_loops": 2, "inst_dim": 1},
    "crawler-2loops-fixed-offsets": {"arch": "crawler", "crawler_loops": 2, "inst_dim": 0},
    "crawler-1loop-no-flow": {"arch": "crawler", "crawler_loops": 1, "inst_dim": 0},
    "crawler-2shared-lnscale": {"arch": "crawler", "num_crawler_layers": 2, "num_flat_layers": 3, "ln_scale": True},
    "crawler-unused-value-embed": {"arch": "crawler", "unused_value_embed_dim": 8},
}


def rms(x: Tensor) -> Tensor:
    """F.rms_norm without an eps adds the input dtype's: the fp32 one here, as the model runs in fp32 (it
    matters where a vector is small: a DeltaNet head's read-out can have a mean square near 1e-6)."""
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + torch.finfo(torch.float32).eps)


def linear(p: dict[str, Tensor], name: str, x: Tensor, bias: bool = False) -> Tensor:
    y = x @ p[f"{name}.weight"].T
    return y + p[f"{name}.bias"] if bias else y


def rotate(x: Tensor, angles: Tensor) -> Tensor:
    """The seed's rotary: dims (j, j + half) of the first 2 * half dims turn by -angle; the rest pass."""
    half = angles.size(-1)
    cos, sin = angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]
    a, b = x[..., :half], x[..., half:2 * half]
    return torch.cat((a * cos + b * sin, b * cos - a * sin, x[..., 2 * half:]), dim=-1)


def rotary_angles(cfg: ModelConfig, dim: int, seq: int) -> Tensor:
    rope = cfg.rope_dims or dim // cfg.num_heads
    base = cfg.rope_base
    if cfg.rope_ntk_above and seq > cfg.rope_ntk_above:
        base *= (seq / cfg.rope_ntk_above) ** (rope / (rope - 2))
    # fp32 frequencies and positions, as the model builds them: the tables are the one place it keeps fp32.
    inv = (1.0 / base ** (torch.arange(0, rope, 2, dtype=torch.float32) / rope)).float()
    return (torch.arange(seq, dtype=torch.float32)[:, None] * inv[None, :]).double()


def attention(p: dict[str, Tensor], pre: str, cfg: ModelConfig, x: Tensor, angles: Tensor, xsa: bool,
              v_extra: Tensor | None) -> Tensor:
    B, T, dim = x.shape
    H, KV = cfg.num_heads, cfg.num_kv_heads
    D = dim // H
    q = linear(p, f"{pre}.c_q", x).reshape(B, T, H, D)
    k = linear(p, f"{pre}.c_k", x).reshape(B, T, KV, D)
    v = linear(p, f"{pre}.c_v", x)
    if v_extra is not None:
        v = v + v_extra
    v = v.reshape(B, T, KV, D)
    q, k = rotate(rms(q), angles), rotate(rms(k), angles)
    if cfg.q_gain:
        q = q * p[f"{pre}.q_gain"][None, None, :, None]
    group = H // KV  # query head h reads KV head h // group
    kh, vh = k.repeat_interleave(group, dim=2), v.repeat_interleave(group, dim=2)
    scores = torch.einsum("bthd,bshd->bhts", q, kh) / math.sqrt(D)
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    y = torch.einsum("bhts,bshd->bthd", scores.softmax(-1), vh)
    if xsa:
        unit = vh / vh.norm(dim=-1, keepdim=True)
        y = y - (y * unit).sum(-1, keepdim=True) * unit
    return linear(p, f"{pre}.proj", y.reshape(B, T, dim))


def block(p: dict[str, Tensor], pre: str, cfg: ModelConfig, x: Tensor, x0: Tensor, angles: Tensor,
          layer: int, xsa: bool, v_extra: Tensor | None = None) -> Tensor:
    if cfg.resid_mix:
        x = p[f"{pre}.resid_mix"][0] * x + p[f"{pre}.resid_mix"][1] * x0
    damp = 1 / math.sqrt(layer + 1) if cfg.ln_scale else 1.0
    x = x + p[f"{pre}.attn_scale"] * attention(p, f"{pre}.attn", cfg, rms(x) * damp, angles, xsa, v_extra)
    hidden = torch.relu(linear(p, f"{pre}.mlp.fc", rms(x) * damp)) ** 2
    return x + p[f"{pre}.mlp_scale"] * linear(p, f"{pre}.mlp.proj", hidden)


def hash_ids(ids: Tensor, buckets: int, order: int) -> Tensor:
    """Bucket of each position, one Python int at a time: V - 1 where the previous token is missing, else the
    XOR of 36313 t, 27191 t-1 (and 51647 t-2 for the trigram once two tokens precede it) mod (V - 1)."""
    out = torch.empty_like(ids)
    for b in range(ids.size(0)):
        t = [int(v) for v in ids[b]]
        for i in range(len(t)):
            if i == 0:
                out[b, i] = buckets - 1
                continue
            h = (36313 * t[i]) ^ (27191 * t[i - 1])
            if order == 3 and i >= 2:
                h ^= 51647 * t[i - 2]
            out[b, i] = h % (buckets - 1)
    return out


def hashed(p: dict[str, Tensor], name: str, ids: Tensor, order: int, buckets: int, width: int) -> Tensor:
    h = p[f"{name}.embed.weight"][hash_ids(ids, buckets, order)]
    if width != p["tok_emb.weight"].size(1):  # projected to the model width unless already that wide
        h = linear(p, f"{name}.proj", h)
    return h * p[f"{name}.scale"]


def embed(p: dict[str, Tensor], cfg: ModelConfig, ids: Tensor) -> Tensor:
    x = p["tok_emb.weight"][ids]
    if cfg.bigram_vocab_size:
        x = x + hashed(p, "bigram", ids, 2, cfg.bigram_vocab_size, cfg.bigram_dim)
    if cfg.trigram_vocab_size:
        x = x + hashed(p, "trigram", ids, 3, cfg.trigram_vocab_size, cfg.trigram_dim)
    x = rms(x)
    if cfg.smear_gate:
        g = torch.sigmoid(p["smear.gate"])
        prev = torch.cat((torch.zeros_like(x[:, :1]), x[:, :-1]), dim=1)
        x = (1 - g) * x + g * prev
    return x


def causal_conv(x: Tensor, weight: Tensor, silu: bool) -> Tensor:
    """Depthwise: y[t, c] = sum_j w[c, j] x[t - (K - 1) + j, c], zeros before the start."""
    K = weight.size(-1)
    padded = torch.cat((x.new_zeros(x.size(0), K - 1, x.size(2)), x), dim=1)
    y = sum(weight[:, 0, j] * padded[:, j:j + x.size(1)] for j in range(K))
    return y * torch.sigmoid(y) if silu else y


def deltanet(p: dict[str, Tensor], cfg: ModelConfig, x: Tensor) -> Tensor:
    B, T, dim = x.shape
    H = cfg.delta_net_heads
    D = dim // H

    def branch(name: str) -> Tensor:
        out = causal_conv(linear(p, f"delta_net.{name}_proj", x), p[f"delta_net.{name}_conv.weight"],
                          cfg.delta_net_conv_silu)
        return out.reshape(B, T, H, D)

    q, k, v = branch("q"), branch("k"), branch("v")
    q, k = q / q.norm(dim=-1, keepdim=True), k / k.norm(dim=-1, keepdim=True)
    beta = torch.sigmoid(linear(p, "delta_net.b_proj", x, bias=True))
    S = x.new_zeros(B, H, D, D)  # a fresh state each call: nothing carries between loops
    outs = []
    for t in range(T):
        kt, vt = k[:, t], v[:, t]
        err = vt - torch.einsum("bhkv,bhk->bhv", S, kt)
        S = S + torch.einsum("bhk,bhv->bhkv", kt, beta[:, t, :, None] * err)
        outs.append(torch.einsum("bhkv,bhk->bhv", S, q[:, t] / math.sqrt(D)))  # read after the write
    o = torch.stack(outs, dim=1)
    if cfg.delta_net_head_norm:
        o = rms(o)
    y = x + linear(p, "delta_net.o_proj", o.reshape(B, T, dim))
    return rms(y) if cfg.delta_net_out_norm else y


def crawler_section(p: dict[str, Tensor], cfg: ModelConfig, x: Tensor, x0: Tensor, angles: Tensor,
                    ids: Tensor, crawl: bool) -> Tensor:
    shared = cfg.num_crawler_layers
    if not shared:
        return x
    ve = linear(p, "value_embed.proj", p["value_embed.embed.weight"][ids]) * p["value_embed.scale"] \
        if cfg.value_embed_dim else None

    def fire(h: Tensor) -> Tensor:
        for i in range(shared):
            extra = p["value_embed_scales"][i] * ve if ve is not None else None
            h = block(p, f"crawler_blocks.{i}", cfg, h, x0, angles, cfg.num_flat_layers + i, cfg.xsa != "off",
                      extra)
        return deltanet(p, cfg, h) if cfg.delta_net_heads else h

    def loop_input(h: Tensor, k: int) -> Tensor:
        if cfg.loop_offsets != "fixed" or (cfg.crawler_loops > 1 and not cfg.inst_dim):
            return h + p["loop_pos"][k]  # trained offsets, or the fixed ones of a looping model without flow
        if cfg.crawler_loops > 1:  # flow instructions
            return h + linear(p, f"loop_inst_up.{k}", linear(p, "loop_inst_proj", h))
        return h  # one loop: nothing to tell apart

    n_row = cfg.crawler_loops if cfg.loop_offsets == "learned_n_row" else 0
    rows = list(range(cfg.crawler_loops)) if crawl else [n_row]
    if cfg.crawler_mode == "deliberate":
        fired = [fire(loop_input(x, k)) for k in rows]
        W, r = p["deliberation.delib_gate.weight"], p["deliberation.consensus_ref"].expand_as(fired[-1])

        def gate(a: Tensor, b: Tensor) -> Tensor:
            return torch.sigmoid(torch.cat((a, b), dim=-1) @ W.T)

        merged = fired[-1]
        if len(fired) == 2:
            g1 = gate(fired[0], fired[1])
            merged = g1 * fired[0] + (1 - g1) * fired[1]
        g2 = gate(merged, r)
        return fired[-1] + p["deliberation.delib_scale"] * (g2 * merged + (1 - g2) * r - fired[-1])
    for k in rows:
        x = fire(loop_input(x, k))
    return x


def reference_logits(p: dict[str, Tensor], cfg: ModelConfig, ids: Tensor, crawl: bool) -> Tensor:
    """Soft-capped float64 logits [B, T, V] of the U-Net GPT or the crawler, from named tensors."""
    dim = p["tok_emb.weight"].size(1)
    angles = rotary_angles(cfg, dim, ids.size(1))
    x = x0 = embed(p, cfg, ids)
    crawler = cfg.arch == "crawler"
    flat = cfg.num_flat_layers if crawler else cfg.num_layers
    prefix = "flat_blocks" if crawler else "blocks"
    encoder = flat if crawler and cfg.crawler_position == "end" else flat // 2
    skips = []
    for i in range(encoder):
        x = block(p, f"{prefix}.{i}", cfg, x, x0, angles, i, cfg.xsa == "all")
        skips.append(x)
    if crawler:
        x = crawler_section(p, cfg, x, x0, angles, ids, crawl)
    for j, i in enumerate(range(encoder, flat)):
        if skips:
            x = x + p["skip_weights"][j] * skips.pop()
        x = block(p, f"{prefix}.{i}", cfg, x, x0, angles, i, cfg.xsa == "all")
    logits = rms(x) @ p["tok_emb.weight"].T
    cap = cfg.logit_softcap
    return cap * torch.tanh(logits / cap) if cap > 0 else logits


class Tensors(dict[str, Tensor]):
    """The model's tensors by name; remembers which ones the reference read."""

    def __init__(self, items: dict[str, Tensor]) -> None:
        super().__init__(items)
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> Tensor:
        self.read.add(name)
        return super().__getitem__(name)


def named_tensors(model: torch.nn.Module) -> Tensors:
    """Parameters and buffers (the fixed loop offsets are a buffer), in float64."""
    named = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    return Tensors({n: t.detach().double() for n, t in named.items() if t is not None})


@pytest.mark.parametrize("crawl", [True, False], ids=["C-step", "N-step"])
def test_logits_and_loss_equal_the_float64_reference(reference_variant: dict[str, Any], crawl: bool,
                                                     tiny_cfg: Any, perturb: Any) -> None:
    cfg = tiny_cfg(**reference_variant)
    torch.manual_seed(0)
    model = perturb(build_model(cfg))
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, cfg.vocab_size, (3, 13), generator=g)
    targets = torch.randint(0, cfg.vocab_size, (3, 13), generator=g)
    tensors = named_tensors(model)
    want = reference_logits(tensors, cfg, ids, crawl)
    if crawl:  # a C-step uses every tensor the model has, but the seed's unused value embedding
        assert {n for n in tensors if not n.startswith(("ve_shared.", "ve_layer_scales."))} == tensors.read
    with torch.no_grad():
        logits, loss = model(ids, crawl=crawl), model(ids, targets, crawl=crawl)
    assert logits.dtype == torch.float32 and logits.shape == want.shape
    err = float((logits.double() - want).abs().max() / want.abs().max())
    assert err < 1e-5, f"logits differ from the reference by {err:.2e} of their range"
    want_loss = torch.nn.functional.cross_entropy(want.reshape(-1, cfg.vocab_size), targets.reshape(-1))
    assert loss.item() == pytest.approx(want_loss.item(), rel=1e-6)


def test_the_reference_tells_the_variants_apart(tiny_cfg: Any, perturb: Any) -> None:
    """The comparison would mean little if the perturbed variants all computed the same function."""
    ids = torch.randint(0, 64, (1, 11), generator=torch.Generator().manual_seed(3))
    seen = []
    for overrides in ({}, {"xsa": "crawler"}, {"ln_scale": True}, {"inst_dim": 0}, {"crawler_loops": 2}):
        cfg = tiny_cfg(**overrides)
        torch.manual_seed(0)
        seen.append(reference_logits(named_tensors(perturb(build_model(cfg))), cfg, ids, True))
    for i in range(1, len(seen)):
        assert (seen[i] - seen[0]).abs().max() > 1e-3
