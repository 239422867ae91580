"""DeltaNet: the delta-rule linear-attention layer used inside the crawler.

Semantics (as flash-linear-attention's `naive.py` defines them), per head, with a state S of shape [K, V]:

    u_t = beta_t * (v_t - S_{t-1}^T k_t)        # what the memory gets wrong about v_t, scaled by beta_t
    S_t = S_{t-1} + k_t u_t^T                    # write the correction under key k_t
    o_t = S_t^T (scale * q_t)                    # read after the write, so o_t sees tokens <= t only

`delta_rule_recurrent` is that loop over time, kept as the readable reference. `delta_rule_chunked` computes
the same thing a chunk of C tokens at a time. Inside a chunk (state S0 at its start) the corrections solve a
unit lower-triangular system (the WY / UT form):

    (I + tril(diag(beta) K K^T, -1)) U = diag(beta) (V - K S0)   =>   U = A(beta V) - A(beta K) S0
    O = Q S0 + tril(Q K^T) U,    S_C = S0 + K^T U

A(beta V) and A(beta K) do not depend on the state, so they are computed for all chunks at once with one
batched triangular solve; only the cheap state hand-off runs as a loop over chunks (T / C steps).

On CUDA with flash-linear-attention installed, `DeltaNet` calls its Triton `chunk_delta_rule` instead. Every
call starts from a zero state: the crawler runs this layer once per loop over the same sequence, and a state
carried from loop k into loop k+1 would let position t read tokens after t (the seed's causality bug).
"""

from __future__ import annotations

import math
from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clowncar.model.layers import CastedLinear


def delta_rule_recurrent(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, scale: float | None = None) -> Tensor:
    """Reference: one token at a time. q, k `[B, T, H, K]`, v `[B, T, H, V]`, beta `[B, T, H]`; fp32 inside."""
    dtype = v.dtype
    q, k, v, beta = (t.float().transpose(1, 2) for t in (q, k, v, beta))  # [B, H, T, .]
    scale = q.size(-1) ** -0.5 if scale is None else scale
    S = q.new_zeros(q.size(0), q.size(1), q.size(-1), v.size(-1))
    outs = []
    for t in range(q.size(2)):
        k_t = k[:, :, t]
        u_t = beta[:, :, t, None] * (v[:, :, t] - torch.einsum("bhkv,bhk->bhv", S, k_t))
        S = S + k_t[..., :, None] * u_t[..., None, :]
        outs.append(torch.einsum("bhkv,bhk->bhv", S, q[:, :, t] * scale))
    return torch.stack(outs, dim=2).transpose(1, 2).to(dtype)


def _chunk_major(x: Tensor, pad: int, N: int, C: int) -> Tensor:
    """[B, T, H, D] -> [B*H*N, C, D] in fp32, zero-padded at the end: one copy, then every product below is a
    plain batched matmul over (batch, head, chunk)."""
    B, _, H, D = x.shape
    x = F.pad(x.float(), (0, 0, 0, 0, 0, pad)) if pad else x.float()
    return x.reshape(B, N, C, H, D).permute(0, 3, 1, 2, 4).reshape(B * H * N, C, D)


def delta_rule_chunked(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, scale: float | None = None,
                       chunk_size: int = 32) -> Tensor:
    """The same function as `delta_rule_recurrent`, vectorized within chunks of `chunk_size` tokens.

    Runs in fp32 whatever the caller's autocast: the triangular solve has no bf16 kernel on CUDA, and the
    chunk systems are ill-conditioned enough that bf16 would lose the state. On CPU 32 is the fastest chunk
    size (benchmarks/bench_deltanet.py --chunk 16, 32 or 64): smaller chunks mean more steps in the loop over
    chunks, larger ones more work in the per-chunk products."""
    with torch.autocast(device_type=q.device.type, enabled=False):
        return _delta_rule_chunked_fp32(q, k, v, beta, scale, chunk_size)


def _delta_rule_chunked_fp32(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, scale: float | None,
                             chunk_size: int) -> Tensor:
    dtype = v.dtype
    B, T, H, K = q.shape
    Vd = v.size(-1)
    scale = K ** -0.5 if scale is None else scale
    C = min(chunk_size, T)
    pad = (-T) % C
    N = (T + pad) // C
    # Zero-padded tail tokens have k = v = beta = 0: they change no state and their outputs are dropped.
    q, k, v = (_chunk_major(t, pad, N, C) for t in (q, k, v))  # [B*H*N, C, .]
    beta = F.pad(beta.float(), (0, 0, 0, pad)).reshape(B, N, C, H).permute(0, 3, 1, 2).reshape(B * H * N, C, 1)
    k_t = k.transpose(-1, -2)
    # Everything that does not depend on the state, for all chunks at once (T_beta = A^-1 diag(beta)):
    #   A = I + tril(diag(beta) K K^T, -1),   U = T_beta V,   W = T_beta K
    #   O = Q S0 + tril(Q K^T) (U - W S0) = tril(Q K^T) U + (Q - tril(Q K^T) W) S0
    system = torch.bmm(k, k_t).mul_(beta).tril_(-1)
    system.diagonal(dim1=-2, dim2=-1).fill_(1.0)
    # Inverting the C x C system once and multiplying is cheaper on CPU than solving for V and K separately.
    eye = torch.eye(C, device=q.device).expand_as(system)
    t_beta = torch.linalg.solve_triangular(system, eye, upper=False, unitriangular=True) * beta.mT
    u, w = torch.bmm(t_beta, v), torch.bmm(t_beta, k)
    qk = torch.bmm(q, k_t).tril_().mul_(scale)
    o = torch.bmm(qk, u)
    readers = torch.baddbmm(q, qk, w, beta=scale, alpha=-1)  # scale Q - tril(Q K^T) W
    # Only the state hand-off runs as a loop over chunks: S_{n+1} = S_n + K_n^T (U_n - W_n S_n). The states
    # are kept and read out afterwards in one batched product, which keeps the loop at two small matmuls.
    by_chunk = lambda x: x.unflatten(0, (B * H, N)).unbind(1)  # noqa: E731
    S = q.new_zeros(B * H, K, Vd)
    states = [S]
    for w_n, u_n, k_t_n in list(zip(by_chunk(w), by_chunk(u), by_chunk(k_t), strict=True))[:-1]:
        S = torch.baddbmm(S, k_t_n, torch.baddbmm(u_n, w_n, S, alpha=-1))
        states.append(S)
    o = torch.baddbmm(o, readers, torch.stack(states, dim=1).flatten(0, 1))
    return o.reshape(B, H, N * C, Vd).transpose(1, 2)[:, :T].to(dtype)


@cache
def fla_chunk_delta_rule():  # -> Callable | None
    """flash-linear-attention's Triton kernel, imported lazily; None when it is not installed."""
    try:
        from fla.ops.delta_rule import chunk_delta_rule  # type: ignore[import-not-found]
    except ImportError:
        return None
    return chunk_delta_rule


@torch.compiler.disable  # an opaque Triton autograd function: run it eagerly between compiled regions
def _fla_delta_rule(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, scale: float) -> Tensor:
    kernel = fla_chunk_delta_rule()
    half = torch.bfloat16 if v.dtype == torch.float32 else v.dtype
    o, _ = kernel(q=q.to(half), k=k.to(half), v=v.to(half), beta=beta.to(half), scale=scale,
                  initial_state=None, output_final_state=False)
    return o.to(v.dtype)


class DeltaNet(nn.Module):
    """Canonical DeltaNet layer: q/k/v projections through short causal depthwise convolutions (SiLU),
    L2-normalized q and k, beta = sigmoid(b_proj(x)), the delta rule per head, a per-head RMS norm of the
    read-out and a zero-initialized output projection added to the residual stream."""

    def __init__(self, dim: int, num_heads: int, conv_size: int = 4, chunk_size: int = 32,
                 backend: str = "auto") -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.chunk_size, self.backend = chunk_size, backend
        self.q_proj = CastedLinear(dim, dim, bias=False)
        self.k_proj = CastedLinear(dim, dim, bias=False)
        self.v_proj = CastedLinear(dim, dim, bias=False)
        self.b_proj = CastedLinear(dim, num_heads, bias=True)
        self.q_conv, self.k_conv, self.v_conv = (
            nn.Conv1d(dim, dim, conv_size, groups=dim, padding=0, bias=False) for _ in range(3))
        self.o_proj = CastedLinear(dim, dim, bias=False)
        self.o_proj._zero_init = True
        nn.init.zeros_(self.o_proj.weight)  # starts as a no-op on the residual stream

    def _short_conv(self, conv: nn.Conv1d, x: Tensor) -> Tensor:
        # Left padding only: the output at t sees inputs t - conv_size + 1 .. t.
        y = F.conv1d(F.pad(x.transpose(1, 2), (conv.kernel_size[0] - 1, 0)), conv.weight.to(x.dtype),
                     groups=conv.groups)
        return F.silu(y.transpose(1, 2))

    def use_fla(self, x: Tensor) -> bool:
        if self.backend == "torch" or not x.is_cuda:
            if self.backend == "fla":
                raise RuntimeError("deltanet_backend=fla needs CUDA tensors")
            return False
        available = fla_chunk_delta_rule() is not None
        if self.backend == "fla" and not available:
            raise RuntimeError("deltanet_backend=fla but flash-linear-attention is not installed")
        return available

    def forward(self, x: Tensor) -> Tensor:
        B, T, D = x.shape
        heads = (B, T, self.num_heads, self.head_dim)
        q = F.normalize(self._short_conv(self.q_conv, self.q_proj(x)).reshape(heads), dim=-1)
        k = F.normalize(self._short_conv(self.k_conv, self.k_proj(x)).reshape(heads), dim=-1)
        v = self._short_conv(self.v_conv, self.v_proj(x)).reshape(heads)
        beta = torch.sigmoid(self.b_proj(x).float()).to(x.dtype)
        scale = 1.0 / math.sqrt(self.head_dim)
        if self.use_fla(x):
            o = _fla_delta_rule(q, k, v, beta, scale)
        else:
            o = delta_rule_chunked(q, k, v, beta, scale, self.chunk_size)
        o = F.rms_norm(o, (self.head_dim,)).reshape(B, T, D)
        return x + self.o_proj(o)
