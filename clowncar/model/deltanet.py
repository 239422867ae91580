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
batched triangular solve; only the cheap state hand-off runs as a loop over chunks (T / C steps). It is an
autograd Function with a hand-derived backward (`_ChunkedDeltaRule`, checked against finite differences in
float64 and against autograd through the reference): inside it nothing is tracked, so it writes into buffers
in place instead of stacking states and copying inputs of every product, which autograd-visible code must.

On CUDA with flash-linear-attention installed, `DeltaNet` calls its Triton `chunk_delta_rule` instead. Every
call starts from a zero state: the crawler runs this layer once per loop over the same sequence, and a state
carried from loop k into loop k+1 would let position t read tokens after t (the seed's causality bug).
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

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


def _chunks(x: Tensor, N: int, C: int, dtype: torch.dtype) -> Tensor:
    """[B, T, H, D] -> a fresh [N, B*H, C, D] tensor of `dtype`, zero-padded at the end. Chunk-major with the
    chunk index outermost, so that chunk n of every (batch, head) is one contiguous [B*H, C, D] block: the
    loops over chunks read and write `x[n]` in place, and the batched products see all N*B*H blocks at once."""
    B, T, H, D = x.shape
    out = x.new_empty((N, B, H, C, D), dtype=dtype)
    full, rem = divmod(T, C)
    if full:
        out[:full].copy_(x[:, :full * C].reshape(B, full, C, H, D).permute(1, 0, 3, 2, 4))
    if rem:
        out[full, :, :, :rem].copy_(x[:, full * C:].transpose(1, 2))
        out[full, :, :, rem:].zero_()
    return out.view(N, B * H, C, D)


def _unchunk(y: Tensor, B: int, T: int, H: int, dtype: torch.dtype) -> Tensor:
    """The inverse of `_chunks`: [N, B*H, C, D] -> a contiguous [B, T, H, D] of `dtype`, padding dropped."""
    N, _, C, D = y.shape
    y = y.view(N, B, H, C, D)
    out = y.new_empty((B, T, H, D), dtype=dtype)
    full, rem = divmod(T, C)
    if full:
        out[:, :full * C].view(B, full, C, H, D).copy_(y[:full].permute(1, 0, 3, 2, 4))
    if rem:
        out[:, full * C:].copy_(y[full, :, :, :rem].transpose(1, 2))
    return out


class _ChunkedDeltaRule(torch.autograd.Function):
    """The chunked delta rule with a hand-written backward. Nothing inside is tracked by autograd, so every
    product writes into a buffer allocated once per call (`out=`, in-place `baddbmm_`): no stacked states, no
    copies of a `baddbmm` input, and a few large allocations instead of hundreds of small ones.

    Per chunk n (all [C, .] blocks of one (batch, head); S_n is the state before the chunk):
        G = K K^T,  A = I + tril(diag(beta) G, -1),  X = A^-1,  T = X diag(beta),  U = T V,  W = T K
        D_n = U_n - W_n S_n,   S_{n+1} = S_n + K_n^T D_n,   P = scale tril(Q K^T) (diagonal included)
        O_n = scale Q_n S_n + P_n D_n
    Only the two products that carry the state run in the loop over chunks; the rest is batched."""

    @staticmethod
    def forward(ctx: Any, q: Tensor, k: Tensor, v: Tensor, beta: Tensor, scale: float,  # type: ignore[override]
                chunk_size: int) -> Tensor:
        B, T, H, _ = q.shape
        ct = torch.float64 if torch.float64 in (q.dtype, k.dtype, v.dtype, beta.dtype) else torch.float32
        C = min(chunk_size, T)
        N = -(-T // C)
        # Zero-padded tail tokens have k = v = beta = 0: they change no state and their outputs are dropped.
        Q, K, V = (_chunks(t, N, C, ct) for t in (q, k, v))  # [N, B*H, C, .]
        b = _chunks(beta[..., None], N, C, ct)  # [N, B*H, C, 1]
        flat = lambda x: x.flatten(0, 1)  # noqa: E731  [N, M, ...] -> [N*M, ...] for the batched products
        G = torch.bmm(flat(K), flat(K).mT)
        A = (G * flat(b)).tril_(-1)
        A.diagonal(dim1=-2, dim2=-1).fill_(1.0)
        # Inverting the C x C systems once and multiplying is cheaper on CPU than solving for V and K, and the
        # right-sided solve X A = I runs about twice as fast as A X = I in MKL's small triangular solves.
        X = torch.linalg.solve_triangular(A, torch.eye(C, dtype=ct, device=q.device).expand_as(A), upper=False,
                                          left=False, unitriangular=True)
        Tb = X * flat(b).mT
        D = torch.bmm(Tb, flat(V)).view_as(V)  # U for now: the loop turns D[n] into U_n - W_n S_n in place
        W = torch.bmm(Tb, flat(K)).view_as(K)
        S = Q.new_empty(N, *K.shape[1:2], K.size(-1), V.size(-1))  # S[n]: the state before chunk n
        S[0].zero_()
        Ss, Ds, Ws, Kts = S.unbind(0), D.unbind(0), W.unbind(0), K.mT.unbind(0)  # one view op each, not N
        for n in range(N):
            Ds[n].baddbmm_(Ws[n], Ss[n], alpha=-1)
            if n + 1 < N:
                torch.baddbmm(Ss[n], Kts[n], Ds[n], out=Ss[n + 1])
        P = torch.bmm(flat(Q), flat(K).mT).tril_().mul_(scale)
        out = torch.bmm(P, flat(D)).baddbmm_(flat(Q), flat(S), alpha=scale)
        ctx.save_for_backward(Q, K, V, b, G, X, W, P, S, D)
        ctx.scale, ctx.shape, ctx.dtypes = scale, (B, T, H), (q.dtype, k.dtype, v.dtype, beta.dtype)
        return _unchunk(out.view_as(V), B, T, H, v.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, do: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        return _chunked_backward(ctx, do)


def _chunked_backward(ctx: Any, do: Tensor) -> tuple[Tensor | None, ...]:
    """`_ChunkedDeltaRule.backward`, undecorated so that mutation testing (mutmut skips decorated functions)
    reaches it."""
    Q, K, V, b, G, X, W, P, S, D = ctx.saved_tensors
    scale, (B, T, H) = ctx.scale, ctx.shape
    N, _, C, _ = Q.shape
    flat = lambda x: x.flatten(0, 1)  # noqa: E731
    with torch.autocast(device_type=Q.device.type, enabled=False):
        dO = _chunks(do, N, C, Q.dtype)
        fO, fQ, fK, fV, fD, fS = (flat(x) for x in (dO, Q, K, V, D, S))
        dPm = torch.bmm(fO, fD.mT).tril_()  # dL/dP, masked like P
        dQ = torch.bmm(dPm, fK).baddbmm_(fO, fS.mT).mul_(scale)
        dK = torch.bmm(dPm.mT, fQ).mul_(scale)
        dD = torch.bmm(P.mT, fO).view_as(D)  # the read-out's share of dL/dD; the loop adds the state's
        dS = torch.bmm(fQ.mT, fO).mul_(scale).view_as(S)  # becomes dS[n] = dL/dS_n, chunk by chunk
        for n in range(N - 1, -1, -1):
            if n + 1 < N:  # S_{n+1} = S_n + K_n^T D_n
                dD[n].baddbmm_(K[n], dS[n + 1])
                dS[n].add_(dS[n + 1])
            if n:  # D_n = U_n - W_n S_n (S_0 = 0 needs no gradient)
                dS[n].baddbmm_(W[n].mT, dD[n], alpha=-1)
        if N > 1:
            flat(dK.view_as(K)[:-1]).baddbmm_(flat(D[:-1]), flat(dS[1:]).mT)
        fdD = flat(dD)
        dW = torch.bmm(fdD, fS.mT).neg_()
        # U = T V, W = T K
        Tb = X * flat(b).mT
        dT = torch.bmm(fdD, fV.mT).baddbmm_(dW, fK.mT)
        dV = torch.bmm(Tb.mT, fdD)
        dK.baddbmm_(Tb.mT, dW)
        # T = X diag(beta), X = A^-1: dA = -X^T dX X^T
        db = (dT * X).sum(-2)
        dA = torch.bmm(torch.bmm(X.mT, dT.mul_(flat(b).mT)), X.mT).neg_().tril_(-1)
        # A = I + tril(diag(beta) G, -1), G = K K^T
        db += (dA * G).sum(-1)
        dG = dA.mul_(flat(b))
        dK.baddbmm_(dG + dG.mT, fK)  # G = K K^T is symmetric in K
    shape = (N, -1, C)
    return (_unchunk(dQ.view(*shape, dQ.size(-1)), B, T, H, ctx.dtypes[0]),
            _unchunk(dK.view(*shape, dK.size(-1)), B, T, H, ctx.dtypes[1]),
            _unchunk(dV.view(*shape, dV.size(-1)), B, T, H, ctx.dtypes[2]),
            _unchunk(db.view(*shape, 1), B, T, H, ctx.dtypes[3])[..., 0], None, None)


@torch.compiler.disable  # a hand-written kernel with its own backward: run it eagerly between compiled regions
def delta_rule_chunked(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, scale: float | None = None,
                       chunk_size: int = 32) -> Tensor:
    """The same function as `delta_rule_recurrent`, vectorized within chunks of `chunk_size` tokens.

    Runs in fp32 whatever the caller's autocast (float64 inputs run in float64, for gradcheck): the triangular
    solve has no bf16 kernel on CUDA, and the chunk systems are ill-conditioned enough that bf16 would lose the
    state. Returns v's dtype. On CPU 32 is the fastest chunk size (benchmarks/bench_deltanet.py --chunk 16, 32
    or 64): smaller chunks mean more steps in the loop over chunks, larger ones more work in the per-chunk
    products."""
    scale = q.size(-1) ** -0.5 if scale is None else scale
    with torch.autocast(device_type=q.device.type, enabled=False):
        return _ChunkedDeltaRule.apply(q, k, v, beta, scale, chunk_size)


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
    read-out and a zero-initialized output projection added to the residual stream.

    The seed's ClownCar_II layer differed in three places, each a switch here: no SiLU after the convolutions
    (`conv_silu=False`), no per-head norm of the read-out (`head_norm=False`), and an RMS norm of the
    residual stream after the addition (`out_norm=True`). Its output projection's zero start is the crawler's
    `model.delta_net_o_init` (the seed's generic init overwrote it)."""

    def __init__(self, dim: int, num_heads: int, conv_size: int = 4, chunk_size: int = 32,
                 backend: str = "auto", conv_silu: bool = True, head_norm: bool = True,
                 out_norm: bool = False) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.chunk_size, self.backend = chunk_size, backend
        self.conv_silu, self.head_norm, self.out_norm = conv_silu, head_norm, out_norm
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
                     groups=conv.groups).transpose(1, 2)
        return F.silu(y) if self.conv_silu else y

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
        if self.head_norm:
            o = F.rms_norm(o, (self.head_dim,))
        y = x + self.o_proj(o.reshape(B, T, D))
        return F.rms_norm(y, (D,)) if self.out_norm else y
