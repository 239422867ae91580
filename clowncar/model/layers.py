"""Layers shared by the GPT baseline and CrawlerGPT.

The shapes follow the Parameter Golf baseline: parameter-free RMSNorm, grouped-query attention with q/k
RMS-norm and a learned per-head q gain, partial rotary embedding, relu^2 MLP, and blocks that mix the
residual stream with the embedding stream x0 before each layer. Matrices are `CastedLinear` (an
`nn.Linear`), so quantization finds them by type and a bf16 model with fp32 weights still multiplies in
the activation dtype.
"""

from __future__ import annotations

import math
from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clowncar.config_model import ModelConfig


class CastedLinear(nn.Linear):
    """`nn.Linear` that multiplies in the input's dtype (weights may be kept in fp32 for the optimizer).

    With `fake_quant` set (late QAT) the forward uses the weight rounded to int6 per row, and the gradient
    passes straight through the rounding to the float weight."""

    fake_quant = False

    def forward(self, x: Tensor) -> Tensor:
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        w = self.weight
        if self.fake_quant:
            w = w + (fake_int6(w.detach()) - w).detach()
        return F.linear(x, w.to(x.dtype), bias)


def fake_int6(w: Tensor) -> Tensor:
    """w rounded to 63 levels per row, the row's step being its 99.95th percentile of |w| / 31 (the seed's
    late-QAT rounding)."""
    rows = w.float().reshape(w.size(0), -1)
    clip = torch.quantile(rows.abs(), 0.9995, dim=1, keepdim=True).clamp_min(1e-8)
    step = clip / 31.0
    return (torch.clamp(torch.round(rows / step), -31, 31) * step).reshape(w.shape).to(w.dtype)


class RMSNorm(nn.Module):
    """Parameter-free RMS norm over the last dimension (the baseline has no learned norm gains)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, (x.size(-1),))


# -- rotary ----------------------------------------------------------------------------------------------------

def rotary_tables(seq_len: int, rope_dims: int, base: float, ntk_above: int, device: torch.device,
                  dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """cos/sin tables `[1, T, 1, rope_dims/2]`, fp32 unless `dtype` is bf16 (below).

    With `ntk_above > 0` and a sequence longer than it, the base is NTK-scaled by
    `(T / ntk_above) ** (d / (d - 2))` so that the lowest frequency stretches over the longer context
    (the seed did this above 1024 tokens: base 10000 becomes ~22,082 at T=2048 with 16 rotary dims).
    `dtype=bf16` reproduces the seed's bf16 model: its frequency buffer was cast to bf16 with the model, and
    without NTK scaling it built positions and their products in that dtype (the NTK path recomputed fp32).
    """
    ntk = ntk_above > 0 and seq_len > ntk_above
    if ntk:
        base = base * (seq_len / ntk_above) ** (rope_dims / (rope_dims - 2))
    inv_freq = 1.0 / (base ** (torch.arange(0, rope_dims, 2, dtype=torch.float32, device=device) / rope_dims))
    table_dtype = torch.float32 if ntk else dtype
    inv_freq = inv_freq.to(table_dtype)
    freqs = torch.outer(torch.arange(seq_len, dtype=table_dtype, device=device), inv_freq)
    return freqs.cos()[None, :, None, :], freqs.sin()[None, :, None, :]


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the first `2 * cos.size(-1)` dims of `x [B, T, H, D]`; the rest pass through unchanged."""
    rd = 2 * cos.size(-1)
    half = rd // 2
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    x1, x2, rest = x[..., :half], x[..., half:rd], x[..., rd:]
    return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin, rest), dim=-1)


# -- attention -------------------------------------------------------------------------------------------------

@cache
def flash_attn_func():  # -> Callable | None
    """flash-attn 3 (`flash_attn_interface`) or 2 (`flash_attn`), imported lazily; None when neither is."""
    try:
        from flash_attn_interface import flash_attn_func as fa3  # type: ignore[import-not-found]
        return fa3
    except ImportError:
        pass
    try:
        from flash_attn import flash_attn_func as fa2  # type: ignore[import-not-found]
        return fa2
    except ImportError:
        return None


class CausalSelfAttention(nn.Module):
    """GQA attention: q/k RMS-normed, rotary on `rope_dims`, learned per-head q gain, optional XSA."""

    def __init__(self, dim: int, num_heads: int, num_kv_heads: int, qk_gain_init: float, *,
                 xsa: bool, backend: str, q_gain: bool) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = dim // num_heads
        kv_dim = num_kv_heads * self.head_dim
        self.c_q = CastedLinear(dim, dim, bias=False)
        self.c_k = CastedLinear(dim, kv_dim, bias=False)
        self.c_v = CastedLinear(dim, kv_dim, bias=False)
        self.proj = CastedLinear(dim, dim, bias=False)
        self.proj._zero_init = True
        self.q_gain = (nn.Parameter(torch.full((num_heads,), qk_gain_init, dtype=torch.float32))
                       if q_gain else None)
        self.xsa = xsa
        self.backend = backend
        # Looked up once here, not per call: a cached import inside forward is a torch.compile hazard.
        self._flash = flash_attn_func() if backend != "sdpa" else None

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """[B, T, H(kv), D] in, [B, T, H, D] out."""
        fa = self._flash
        if fa is not None and q.is_cuda and q.dtype in (torch.bfloat16, torch.float16):
            out = fa(q, k, v, causal=True)
            return out[0] if isinstance(out, tuple) else out
        if self.backend == "flash":
            raise RuntimeError("attn_backend=flash needs flash-attn and bf16/fp16 CUDA tensors")
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           is_causal=True, enable_gqa=self.num_kv_heads != self.num_heads)
        return y.transpose(1, 2)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, v_extra: Tensor | None = None) -> Tensor:
        """`v_extra` [B, T, kv_dim] is added to the values (a value embedding)."""
        B, T, _ = x.shape
        q = self.c_q(x).reshape(B, T, self.num_heads, self.head_dim)
        k = self.c_k(x).reshape(B, T, self.num_kv_heads, self.head_dim)
        v = self.c_v(x)
        if v_extra is not None:
            v = v + v_extra.to(v.dtype)
        v = v.reshape(B, T, self.num_kv_heads, self.head_dim)
        q = apply_rotary(F.rms_norm(q, (self.head_dim,)), cos, sin)
        k = apply_rotary(F.rms_norm(k, (self.head_dim,)), cos, sin)
        if self.q_gain is not None:
            q = q * self.q_gain.to(q.dtype)[None, None, :, None]
        # Under autocast the norms may hand back fp32; attention kernels want q, k, v in one dtype.
        q = q.to(v.dtype)
        k = k.to(v.dtype)
        y = self._attend(q, k, v)
        if self.xsa:
            y = exclude_self_value(y, v)
        return self.proj(y.reshape(B, T, -1))


def exclude_self_value(y: Tensor, v: Tensor) -> Tensor:
    """XSA: remove from each head's output its component along the token's own (normalized) value."""
    B, T, H, D = y.shape
    groups = H // v.size(2)
    yg = y.reshape(B, T, v.size(2), groups, D)
    vn = F.normalize(v, dim=-1).unsqueeze(3)
    return (yg - (yg * vn).sum(-1, keepdim=True) * vn).reshape(B, T, H, D)


class MLP(nn.Module):
    """relu^2 MLP with hidden width `int(mult * dim)`."""

    def __init__(self, dim: int, mult: float) -> None:
        super().__init__()
        hidden = int(mult * dim)
        self.fc = CastedLinear(dim, hidden, bias=False)
        self.proj = CastedLinear(hidden, dim, bias=False)
        self.proj._zero_init = True

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.relu(self.fc(x)).square())


class Block(nn.Module):
    """Pre-norm transformer block. Its input is first mixed with x0 (`resid_mix`, init (1, 0); optional); the
    attention and MLP outputs are added with learned per-channel scales; `ln_scale` damps deep layers' normed
    inputs."""

    def __init__(self, dim: int, num_heads: int, num_kv_heads: int, mlp_mult: float, qk_gain_init: float,
                 *, layer_idx: int, ln_scale: bool, xsa: bool, attn_backend: str, resid_mix: bool,
                 q_gain: bool) -> None:
        super().__init__()
        self.norm = RMSNorm()
        self.attn = CausalSelfAttention(dim, num_heads, num_kv_heads, qk_gain_init, xsa=xsa, backend=attn_backend,
                                        q_gain=q_gain)
        self.mlp = MLP(dim, mlp_mult)
        self.attn_scale = nn.Parameter(torch.ones(dim, dtype=torch.float32))
        self.mlp_scale = nn.Parameter(torch.ones(dim, dtype=torch.float32))
        self.resid_mix = (nn.Parameter(torch.stack((torch.ones(dim), torch.zeros(dim))).float())
                          if resid_mix else None)
        self.ln_scale_factor = 1.0 / math.sqrt(layer_idx + 1) if ln_scale else 1.0

    def forward(self, x: Tensor, x0: Tensor, cos: Tensor, sin: Tensor, v_extra: Tensor | None = None) -> Tensor:
        if self.resid_mix is not None:
            mix = self.resid_mix.to(x.dtype)
            x = mix[0] * x + mix[1] * x0
        x = x + self.attn_scale.to(x.dtype) * self.attn(self.norm(x) * self.ln_scale_factor, cos, sin, v_extra)
        return x + self.mlp_scale.to(x.dtype) * self.mlp(self.norm(x) * self.ln_scale_factor)


@torch.no_grad()
def init_normal(model: nn.Module) -> None:
    """The seed's small trainers' init: N(0, 0.02) for q, k, v and the MLP input, zero for the matrices flagged
    `_zero_init` (output projections), PyTorch's default (as constructed) for every other matrix."""
    for name, m in model.named_modules():
        if not isinstance(m, nn.Linear):
            continue
        if getattr(m, "_zero_init", False):
            nn.init.zeros_(m.weight)
        elif name.rsplit(".", 1)[-1] in ("c_q", "c_k", "c_v", "fc"):
            nn.init.normal_(m.weight, std=0.02)


# -- input side ------------------------------------------------------------------------------------------------

class BigramHashEmbedding(nn.Module):
    """Embedding of the hashed (previous, current) token pair, projected to the model width.

    Bucket = (36313 * t_i XOR 27191 * t_{i-1}) mod (V - 1); position 0 has no previous token and uses bucket
    V - 1. The table starts at zero (so the model starts as if it were absent) and the projection random, so
    the table gets gradient from the first step.
    """

    def __init__(self, buckets: int, bigram_dim: int, model_dim: int) -> None:
        super().__init__()
        self.buckets = buckets
        self.embed = nn.Embedding(buckets, bigram_dim)
        nn.init.zeros_(self.embed.weight)
        self.proj = CastedLinear(bigram_dim, model_dim, bias=False) if bigram_dim != model_dim else None
        self.scale = nn.Parameter(torch.tensor(0.05, dtype=torch.float32))

    def bucket_ids(self, tokens: Tensor) -> Tensor:
        t = tokens.long()  # int64: the products overflow int32 for vocabularies above 2^15
        mod = self.buckets - 1
        first = torch.full_like(t[:, :1], mod)
        rest = torch.bitwise_xor(36313 * t[:, 1:], 27191 * t[:, :-1]) % mod
        return torch.cat((first, rest), dim=1)

    def forward(self, tokens: Tensor) -> Tensor:
        h = self.embed(self.bucket_ids(tokens))
        if self.proj is not None:
            h = self.proj(h)
        return h * self.scale.to(h.dtype)


class TrigramHashEmbedding(BigramHashEmbedding):
    """The bigram hash with the token two back mixed in (the seed's trigram): position 0 uses bucket V - 1,
    position 1 the bigram hash, position n >= 2 (36313 t_n XOR 27191 t_{n-1} XOR 51647 t_{n-2}) mod (V - 1).
    With `zero_proj` the projection starts at zero too, which leaves table and projection without gradient."""

    def __init__(self, buckets: int, dim: int, model_dim: int, zero_proj: bool = False) -> None:
        super().__init__(buckets, dim, model_dim)
        if zero_proj and self.proj is not None:
            self.proj._zero_init = True
            nn.init.zeros_(self.proj.weight)

    def bucket_ids(self, tokens: Tensor) -> Tensor:
        ids = super().bucket_ids(tokens)
        if tokens.size(1) > 2:
            t = tokens.long()
            tri = torch.bitwise_xor(torch.bitwise_xor(36313 * t[:, 2:], 27191 * t[:, 1:-1]), 51647 * t[:, :-2])
            ids = torch.cat((ids[:, :2], tri % (self.buckets - 1)), dim=1)
        return ids


class ValueEmbedding(nn.Module):
    """A token embedding projected to the value width, `scale * proj(embed[t])`, that crawler blocks add to
    their attention values (each with its own learned scale). Table N(0, 0.01), projection zero (the crawler's
    orthogonal init replaces it, as the seed's did), scale 0.1."""

    def __init__(self, vocab_size: int, dim: int, kv_dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.embed.weight, std=0.01)
        self.proj = CastedLinear(dim, kv_dim, bias=False)
        nn.init.zeros_(self.proj.weight)
        self.scale = nn.Parameter(torch.tensor(0.1, dtype=torch.float32))

    def forward(self, tokens: Tensor) -> Tensor:
        h = self.proj(self.embed(tokens))
        return h * self.scale.to(h.dtype)


class SmearGate(nn.Module):
    """x_t <- (1 - g) x_t + g x_{t-1} with a learned per-channel gate g = sigmoid(gate), gate init 0."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(dim, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        g = torch.sigmoid(self.gate.to(x.dtype))
        prev = F.pad(x[:, :-1], (0, 0, 1, 0))
        return (1 - g) * x + g * prev


# -- shared input and output ends of both models ---------------------------------------------------------------

class TiedLM(nn.Module):
    """Token embedding tied to the output head, optional bigram hash and smear gate, rotary tables, soft-capped
    logits and the fp32 cross-entropy. GPT and CrawlerGPT differ only in what runs between `embed` and `head`."""

    def _init_io(self, cfg: ModelConfig, dim: int) -> None:
        """Embeddings, rotary settings and the tied head: what the GPT and the crawler share."""
        self.model_dim = dim
        self.tok_emb = nn.Embedding(cfg.vocab_size, dim)
        self.tied_embed_init_std = cfg.tied_embed_init_std
        self.bigram = (BigramHashEmbedding(cfg.bigram_vocab_size, cfg.bigram_dim, dim)
                       if cfg.bigram_vocab_size else None)
        self.trigram = (TrigramHashEmbedding(cfg.trigram_vocab_size, cfg.trigram_dim, dim, cfg.trigram_zero_init)
                        if cfg.trigram_vocab_size else None)
        self.smear = SmearGate(dim) if cfg.smear_gate else None
        self.final_norm = RMSNorm()
        self.logit_softcap = cfg.logit_softcap
        self.rope_dims = cfg.rope_dims or dim // cfg.num_heads
        self.rope_base, self.rope_ntk_above = cfg.rope_base, cfg.rope_ntk_above
        self.rope_table_dtype = torch.bfloat16 if cfg.rope_table_dtype == "bf16" else torch.float32
        self.softcap_in_activation_dtype = cfg.softcap_dtype == "activation"

    def embed(self, input_ids: Tensor) -> Tensor:
        """x0: the normed (and smeared) embedding stream every block mixes back in."""
        x = self.tok_emb(input_ids)
        if self.bigram is not None:
            x = x + self.bigram(input_ids)
        if self.trigram is not None:
            x = x + self.trigram(input_ids)
        x = F.rms_norm(x, (x.size(-1),))
        return self.smear(x) if self.smear is not None else x

    def rotary(self, seq_len: int, device: torch.device) -> tuple[Tensor, Tensor]:
        return rotary_tables(seq_len, self.rope_dims, self.rope_base, self.rope_ntk_above, device,
                             self.rope_table_dtype)

    def head(self, x: Tensor, target_ids: Tensor | None) -> Tensor:
        """Mean cross-entropy in fp32 when targets are given, else soft-capped fp32 logits [B, T, V].
        The cap runs in fp32, or (`softcap_dtype: activation`, the seed) in the activation dtype first."""
        logits = F.linear(self.final_norm(x), self.tok_emb.weight.to(x.dtype))
        if self.logit_softcap > 0 and self.softcap_in_activation_dtype:
            logits = self.logit_softcap * torch.tanh(logits / self.logit_softcap)
        logits = logits.float()
        if self.logit_softcap > 0 and not self.softcap_in_activation_dtype:
            logits = self.logit_softcap * torch.tanh(logits / self.logit_softcap)
        if target_ids is None:
            return logits
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), target_ids.reshape(-1))
