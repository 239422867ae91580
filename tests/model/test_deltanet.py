"""The chunked delta rule equals the per-token reference; the FLA kernel equals our PyTorch path."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from clowncar.model.deltanet import DeltaNet, delta_rule_chunked, delta_rule_recurrent, fla_chunk_delta_rule


def random_inputs(B: int, T: int, H: int, K: int, V: int, seed: int = 0,
                  device: str = "cpu") -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, K, generator=g)
    k = F.normalize(torch.randn(B, T, H, K, generator=g), dim=-1)
    v = torch.randn(B, T, H, V, generator=g)
    beta = torch.rand(B, T, H, generator=g)
    return [t.to(device).requires_grad_() for t in (q, k, v, beta)]


@pytest.mark.parametrize(("T", "chunk", "H"), [(1, 8, 1), (7, 8, 2), (64, 16, 3), (100, 16, 2), (100, 64, 1),
                                               (130, 32, 4), (33, 32, 1), (96, 32, 2)],
                         ids=lambda x: str(x))
def test_chunked_delta_rule_equals_recurrent_reference_fp32(T: int, chunk: int, H: int, rel_err: Any) -> None:
    inputs = random_inputs(2, T, H, 16, 12)
    ref = delta_rule_recurrent(*inputs)
    out = delta_rule_chunked(*inputs, chunk_size=chunk)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert rel_err(out, ref) < 1e-5
    do = torch.randn_like(ref)
    grads_ref = torch.autograd.grad(ref, inputs, do)
    grads = torch.autograd.grad(out, inputs, do)
    for name, g, g_ref in zip(["q", "k", "v", "beta"], grads, grads_ref, strict=True):
        assert rel_err(g, g_ref) < 1e-5, name


def float64_inputs(B: int, T: int, H: int, K: int, V: int) -> list[torch.Tensor]:
    return [t.detach().double().requires_grad_() for t in random_inputs(B, T, H, K, V, seed=3)]


@pytest.mark.parametrize(("B", "T", "H", "K", "V", "chunk"), [(1, 7, 2, 4, 3, 4), (2, 9, 1, 3, 5, 4),
                                                            (2, 8, 2, 4, 3, 4), (1, 3, 1, 4, 4, 8)],
                         ids=lambda x: str(x))
def test_chunked_delta_rule_backward_passes_float64_gradcheck(B: int, T: int, H: int, K: int, V: int,
                                                              chunk: int) -> None:
    """The hand-written backward against finite differences, for every input (T not a multiple of the chunk,
    T shorter than a chunk, several chunks, B > 1)."""
    inputs = float64_inputs(B, T, H, K, V)
    assert delta_rule_chunked(*inputs, chunk_size=chunk).dtype == torch.float64  # float64 stays float64
    assert torch.autograd.gradcheck(lambda *xs: delta_rule_chunked(*xs, chunk_size=chunk), inputs)


def test_gradcheck_catches_a_backward_that_is_wrong_in_one_entry() -> None:
    """The check above can fail: a backward that loses one token's beta gradient is rejected."""
    from clowncar.model.deltanet import _ChunkedDeltaRule

    class OneEntryWrong(_ChunkedDeltaRule):
        @staticmethod
        def backward(ctx: Any, do: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
            grads = _ChunkedDeltaRule.backward(ctx, do)
            grads[3][0, 5, 1] = 0.0  # a token in the second chunk, second head
            return grads

    inputs = float64_inputs(1, 7, 2, 4, 3)
    assert torch.autograd.gradcheck(lambda *xs: _ChunkedDeltaRule.apply(*xs, 0.5, 4), inputs)
    assert not torch.autograd.gradcheck(lambda *xs: OneEntryWrong.apply(*xs, 0.5, 4), inputs,
                                        raise_exception=False)


def test_chunked_delta_rule_keeps_the_input_dtype_for_outputs_and_grads() -> None:
    inputs = [t.detach().bfloat16().requires_grad_() for t in random_inputs(2, 11, 2, 8, 8)]
    out = delta_rule_chunked(*inputs, chunk_size=4)
    assert out.dtype == torch.bfloat16
    grads = torch.autograd.grad(out.float().square().sum(), inputs)
    assert [g.dtype for g in grads] == [torch.bfloat16] * 4
    assert all(g.shape == x.shape and g.abs().sum() > 0 for g, x in zip(grads, inputs, strict=True))


def test_reference_reads_after_writing_the_current_token() -> None:
    # One token, beta = 1, unit key: the state becomes k v^T, and the read q = k returns v itself (scaled).
    k = torch.tensor([[[[1.0, 0.0]]]])
    v = torch.tensor([[[[3.0, -2.0]]]])
    out = delta_rule_recurrent(k, k, v, torch.ones(1, 1, 1), scale=1.0)
    assert torch.allclose(out, v)


def test_deltanet_layer_starts_as_identity_and_is_causal(perturb: Any) -> None:
    torch.manual_seed(0)
    layer = DeltaNet(24, 3, conv_size=4, chunk_size=8)
    x = torch.randn(2, 19, 24)
    assert torch.equal(layer(x), x)  # zero-initialized output projection
    perturb(layer)
    y = x.clone()
    y[:, 11:] = torch.randn(2, 8, 24)
    assert torch.allclose(layer(x)[:, :11], layer(y)[:, :11], atol=1e-6)


@pytest.mark.gpu
def test_fla_matches_torch_deltanet_bf16_needs_cuda_and_fla(rel_err: Any) -> None:
    if not torch.cuda.is_available() or fla_chunk_delta_rule() is None:
        pytest.skip("needs CUDA and flash-linear-attention")
    torch.manual_seed(0)
    layer = DeltaNet(256, 4, chunk_size=64).cuda()
    with torch.no_grad():
        layer.o_proj.weight.normal_(0, 0.05)  # make the delta-rule read-out reach the output
    x = torch.randn(2, 300, 256, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    outs, grads = [], []
    for backend in ("fla", "torch"):
        layer.backend = backend
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = layer(x)
        (g,) = torch.autograd.grad(y.float().square().sum(), x)
        outs.append((y - x).float())
        grads.append(g.float())
    assert rel_err(outs[0], outs[1]) < 1e-2
    assert rel_err(grads[0], grads[1]) < 1e-2
    # and the raw kernels on normalized inputs
    q, k, v, beta = (t.detach().cuda().bfloat16() for t in random_inputs(2, 300, 4, 64, 64))
    o_fla, _ = fla_chunk_delta_rule()(q=q, k=k, v=v, beta=beta, scale=64 ** -0.5)
    o_torch = delta_rule_chunked(q.float(), k.float(), v.float(), beta.float(), 64 ** -0.5)
    assert rel_err(o_fla.float(), o_torch) < 1e-2


def test_chunked_delta_rule_ignores_the_callers_autocast() -> None:
    """The GPU run showed bf16 autocast turning the chunk systems into bf16 (no triangular solve kernel for it
    on CUDA, and too little precision anyway): the chunked rule must compute in fp32 under any autocast."""
    from clowncar.model.deltanet import delta_rule_chunked

    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 70, 2, 16) for _ in range(3))
    k = torch.nn.functional.normalize(k, dim=-1)
    beta = torch.rand(1, 70, 2)
    plain = delta_rule_chunked(q, k, v, beta, chunk_size=16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = delta_rule_chunked(q, k, v, beta, chunk_size=16)
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, plain)

