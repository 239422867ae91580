"""The DeltaNet layer's plumbing, on CPU: its defaults, which kernel it picks (FLA or ours) for each backend
setting and device, what it hands the kernel it picked, and how it treats bf16 inputs. The FLA branch runs here
with a stand-in kernel (the per-token reference behind FLA's calling convention), so the code around it is
tested without a GPU; `test_deltanet.py` compares the real kernel on one."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from clowncar.model import deltanet
from clowncar.model.deltanet import DeltaNet, delta_rule_chunked, delta_rule_recurrent


def _layer(perturb: Any, dim: int = 24, heads: int = 3, **options: Any) -> DeltaNet:
    torch.manual_seed(0)
    return perturb(DeltaNet(dim, heads, **options))


def test_the_defaults_are_canonical_deltanet() -> None:
    layer = DeltaNet(16, 2)
    assert (layer.num_heads, layer.head_dim, layer.chunk_size, layer.backend) == (2, 8, 32, "auto")
    assert (layer.conv_silu, layer.head_norm, layer.out_norm) == (True, True, False)
    assert [c.kernel_size for c in (layer.q_conv, layer.k_conv, layer.v_conv)] == [(4,)] * 3
    assert layer.b_proj.bias is not None and layer.b_proj.out_features == 2
    assert all(p.bias is None for p in (layer.q_proj, layer.k_proj, layer.v_proj, layer.o_proj))


class FakeFLA:
    """FLA's `chunk_delta_rule` calling convention around the per-token reference: records what it was given."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, *, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor, scale: float,
                 initial_state: Any, output_final_state: bool) -> tuple[torch.Tensor, None]:
        self.calls.append(dict(q=q, k=k, v=v, beta=beta, scale=scale, initial_state=initial_state,
                               output_final_state=output_final_state))
        return delta_rule_recurrent(q, k, v, beta, scale), None


@pytest.mark.parametrize("backend, cuda, installed, expected", [
    ("torch", False, False, False), ("torch", False, True, False), ("torch", True, False, False),
    ("torch", True, True, False), ("auto", False, False, False), ("auto", False, True, False),
    ("auto", True, False, False), ("auto", True, True, True), ("fla", True, True, True),
    ("fla", False, True, "deltanet_backend=fla needs CUDA tensors"),
    ("fla", False, False, "deltanet_backend=fla needs CUDA tensors"),
    ("fla", True, False, "deltanet_backend=fla but flash-linear-attention is not installed")])
def test_the_kernel_is_chosen_by_backend_device_and_what_is_installed(
        monkeypatch: pytest.MonkeyPatch, backend: str, cuda: bool, installed: bool, expected: bool | str) -> None:
    monkeypatch.setattr(deltanet, "fla_chunk_delta_rule", lambda: FakeFLA() if installed else None)
    layer = DeltaNet(16, 2, backend=backend)
    x = SimpleNamespace(is_cuda=cuda)  # use_fla reads nothing else of the input
    if isinstance(expected, str):
        with pytest.raises(RuntimeError) as err:
            layer.use_fla(x)  # type: ignore[arg-type]
        assert str(err.value) == expected
    else:
        assert layer.use_fla(x) is expected  # type: ignore[arg-type]


def test_the_fla_branch_hands_the_kernel_bf16_heads_and_the_layers_scale(perturb: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    layer = _layer(perturb)
    x = torch.randn(2, 13, 24)
    ours = layer(x)
    fake = FakeFLA()
    monkeypatch.setattr(deltanet, "fla_chunk_delta_rule", lambda: fake)
    monkeypatch.setattr(DeltaNet, "use_fla", lambda self, x: True)
    theirs = layer(x)
    (call,) = fake.calls
    assert {call[n].dtype for n in ("q", "k", "v", "beta")} == {torch.bfloat16}
    assert call["q"].shape == call["k"].shape == call["v"].shape == (2, 13, 3, 8) and call["beta"].shape == (2, 13, 3)
    assert call["scale"] == 1 / math.sqrt(8) and call["initial_state"] is None and not call["output_final_state"]
    assert theirs.dtype == torch.float32
    assert (theirs - ours).abs().max() > 0  # the stand-in really ran, in bf16
    torch.testing.assert_close(theirs, ours, atol=0.03, rtol=0.03)


def test_the_layer_hands_the_chunked_rule_its_chunk_size_and_scale(perturb: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[float, int]] = []

    def spy(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor, scale: float,
            chunk_size: int) -> torch.Tensor:
        seen.append((scale, chunk_size))
        return delta_rule_chunked(q, k, v, beta, scale, chunk_size)

    monkeypatch.setattr(deltanet, "delta_rule_chunked", spy)
    _layer(perturb, chunk_size=5)(torch.randn(1, 11, 24))
    assert seen == [(1 / math.sqrt(8), 5)]


def test_an_fp32_layer_runs_bf16_inputs_in_bf16(perturb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under autocast on a GPU the projections hand the convolutions bf16 activations while the layer's weights
    stay fp32: every weight is cast to the activations' dtype, the kernel gets q, k, v and beta in it (beta
    is computed in fp32 and rounded, as FLA would be given it), and the output is bf16."""
    layer = _layer(perturb)
    x = torch.randn(2, 13, 24)
    seen: list[set[torch.dtype]] = []

    def spy(*args: Any) -> torch.Tensor:
        seen.append({t.dtype for t in args[:4]})
        return delta_rule_chunked(*args)

    monkeypatch.setattr(deltanet, "delta_rule_chunked", spy)
    half = layer(x.bfloat16())
    assert half.dtype == torch.bfloat16 and seen == [{torch.bfloat16}]
    torch.testing.assert_close(half.float(), layer(x), atol=0.05, rtol=0.05)


def test_the_reference_returns_the_dtype_it_was_given() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 5, 2, 4, generator=g).bfloat16() for _ in range(3))
    out = delta_rule_recurrent(q, k, v, torch.rand(1, 5, 2, generator=g).bfloat16())
    assert out.dtype == torch.bfloat16 and out.shape == (1, 5, 2, 4)


@pytest.mark.parametrize("dtypes, inside", [
    ((torch.float32,) * 4, torch.float32), ((torch.bfloat16,) * 4, torch.float32),
    ((torch.float32, torch.float32, torch.float64, torch.float32), torch.float64),
    ((torch.float64,) * 4, torch.float64)])
def test_the_chunked_rule_computes_in_fp32_unless_an_input_is_float64(dtypes: tuple[torch.dtype, ...],
                                                                     inside: torch.dtype) -> None:
    """float64 is for gradcheck: an fp32 run that slipped into float64 would be correct and many times slower
    (dozens of times on a GPU), so what the backward keeps is checked."""
    g = torch.Generator().manual_seed(0)
    shapes = [(1, 9, 2, 4), (1, 9, 2, 4), (1, 9, 2, 4), (1, 9, 2)]
    inputs = [torch.rand(s, generator=g).to(d).requires_grad_() for s, d in zip(shapes, dtypes, strict=True)]
    out = delta_rule_chunked(*inputs, chunk_size=4)
    assert {t.dtype for t in out.grad_fn.saved_tensors} == {inside}
