"""Which tensor gets which scheme, how each is stored, and how it comes back (quant.py), on hand-made tensors and
a hand-made model, with every expectation written out."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from clowncar.config import QuantConfig
from clowncar.worker.qscale import Rounding, quantize_int8_baseline, quantize_rtn
from clowncar.worker.quant import (
    QTensor,
    QuantResult,
    _quantize_into,
    _unique_state,
    applied_schemes,
    classify,
    collect_hessians,
    gptq_quantize,
    group_schemes,
    quantize_model,
    quantize_tensor,
)

F16 = torch.float16


def test_codes_times_row_scales_come_back_in_the_original_shape_and_dtype() -> None:
    qt = QTensor("w", "flat", "int6", (2, 2, 1), torch.bfloat16, q=torch.tensor([[1, -2], [3, 0]], dtype=torch.int8),
                 scale=torch.tensor([0.5, 0.25], dtype=F16))
    w = qt.dequantize()
    assert w.dtype == torch.bfloat16 and w.shape == (2, 2, 1)
    assert w.flatten().tolist() == [0.5, -1.0, 0.75, 0.0]
    p = QTensor("b", "passthrough", "fp16", (2, 2), torch.float32, data=torch.tensor([1.5, 2.0, -3.0, 0.125],
                                                                                    dtype=F16))
    assert p.dequantize().dtype == torch.float32 and p.dequantize().tolist() == [[1.5, 2.0], [-3.0, 0.125]]


def test_the_passthrough_size_limit_is_inclusive_and_control_names_stay_fp32_at_any_size() -> None:
    cfg = QuantConfig(passthrough_max_numel=512, flat_scheme="gptq_int6")
    assert classify("fc.weight", torch.zeros(512), cfg) == ("passthrough", "fp16")
    assert classify("fc.weight", torch.zeros(513), cfg) == ("flat", "gptq_int6")
    controls = ["blocks.0.attn_scale", "blocks.0.mlp_scale", "blocks.0.resid_mix", "blocks.0.attn.q_gain",
                "skip_weights", "smear.weight", "blocks.0.ln_scale", "loop_scale", "blocks.0.gate"]
    for name in controls:
        assert classify(name, torch.zeros(4), cfg) == ("passthrough", "fp32"), name
        assert classify(name, torch.zeros(64, 64), cfg) == ("passthrough", "fp32"), name
    assert classify("counter", torch.zeros(4096, dtype=torch.int64), cfg) == ("passthrough", "raw")


def test_groups_by_name() -> None:
    cfg = QuantConfig(passthrough_max_numel=16, flat_scheme="int6", crawler_scheme="same", embed_scheme="fp16")
    big = torch.zeros(8, 8)
    assert classify("tok_emb.weight", big, cfg) == ("embed", "fp16")
    assert classify("bigram.embed.weight", big, cfg) == ("embed", "fp16")
    assert classify("lookup.weight", big, cfg) == ("flat", "int6")
    assert classify("lookup.weight", big, cfg, embed_names=["lookup.weight"]) == ("embed", "fp16")
    assert classify("crawler_blocks.0.fc.weight", big, cfg) == ("crawler", "int6")  # same = the flat scheme
    assert classify("flat.crawler_blocks.0.weight", big, cfg) == ("flat", "int6")  # a prefix, not a substring
    assert classify("delta_net.q_proj.weight", big, cfg) == ("flat", "int6")  # delta_net_scheme same
    cfg8 = QuantConfig(passthrough_max_numel=16, crawler_scheme="int8", delta_net_scheme="fp16")
    assert classify("crawler_blocks.0.fc.weight", big, cfg8) == ("crawler", "int8")
    assert classify("delta_net.q_proj.weight", big, cfg8) == ("flat", "fp16")
    assert classify("x.delta_net.q_proj.weight", big, cfg8) == ("flat", cfg8.flat_scheme)


class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4, bias=False)
        self.b = nn.Linear(4, 4, bias=False)
        self.b.weight = self.a.weight  # a real tie: stored once
        self.register_buffer("whole", torch.arange(8.0))
        self.register_buffer("first4", self.whole[:4])  # same storage start, other shape: not a tie
        self.register_buffer("empty1", torch.zeros(0))
        self.register_buffer("empty2", torch.zeros(0))  # empty tensors may share a pointer: never a tie


def test_only_the_same_storage_shape_and_stride_is_a_tie() -> None:
    unique, aliases = _unique_state(Shared())
    assert aliases == {"b.weight": "a.weight"}
    assert list(unique) == ["whole", "first4", "empty1", "empty2", "a.weight"]


def test_passthrough_tensors_are_stored_in_the_dtype_their_scheme_names() -> None:
    cfg = QuantConfig()
    t = torch.tensor([1.0, 2.5, -0.1], dtype=torch.bfloat16)
    for scheme, dtype in (("fp32", torch.float32), ("fp16", F16), ("fp16/fp32", F16), ("raw", torch.bfloat16)):
        qt, fell_back = quantize_tensor("t", t, "passthrough", scheme, cfg, None)
        assert qt.data is not None and qt.data.dtype == dtype and qt.q is None and not fell_back, scheme
        assert (qt.shape, qt.dtype, qt.scheme, qt.group) == ((3,), torch.bfloat16, scheme, "passthrough")
        assert torch.equal(qt.dequantize(), t)  # the three values are exact in every one of those dtypes


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_passthrough_tensor_of_a_gpu_model_is_stored_on_the_cpu_needs_cuda() -> None:
    t = torch.tensor([1.0, 2.5, -0.1], device="cuda")
    for scheme in ("fp32", "fp16", "raw"):
        qt, _ = quantize_tensor("t", t, "passthrough", scheme, QuantConfig(), None)
        assert qt.data is not None and qt.data.device.type == "cpu", scheme


def test_a_gptq_tensor_without_a_hessian_is_plain_rounding_and_says_so() -> None:
    w = torch.randn(6, 40, generator=torch.Generator().manual_seed(3))
    qt, fell_back = quantize_tensor("w", w, "flat", "gptq_int5", QuantConfig(), None)
    q, s = quantize_rtn(w, "int5")
    assert qt.scheme == "int5" and not fell_back and torch.equal(qt.q, q) and torch.equal(qt.scale, s)
    qt8, _ = quantize_tensor("w", w, "flat", "int8", QuantConfig(scale_floor=True), None)
    q8, s8 = quantize_int8_baseline(w, Rounding(floor=True))
    assert qt8.scheme == "int8" and torch.equal(qt8.q, q8) and torch.equal(qt8.scale, s8)


def test_a_gptq_tensor_is_quantized_with_every_gptq_setting_of_the_config() -> None:
    g = torch.Generator().manual_seed(4)
    w = torch.randn(6, 12, generator=g) * 0.05
    x = torch.randn(64, 1, generator=g) + 0.3 * torch.randn(64, 12, generator=g)
    h = x.T @ x / 64
    cfg = QuantConfig(gptq_block_size=3, gptq_damp=0.05, gptq_col_order="natural", gptq_feedback="full_inverse",
                      scale_floor=True)
    qt, _ = quantize_tensor("w", w, "flat", "gptq_int5", cfg, h)
    q, s, _ = gptq_quantize(w, h, "int5", 3, 0.05, "natural", "full_inverse", Rounding(floor=True))
    assert qt.scheme == "gptq_int5" and torch.equal(qt.q, q) and torch.equal(qt.scale, s)
    assert not torch.equal(qt.q, gptq_quantize(w, h, "int5")[0])  # the settings matter for this tensor


def test_cholesky_fallbacks_are_counted() -> None:
    w = torch.randn(4, 2, generator=torch.Generator().manual_seed(5))
    indefinite = torch.tensor([[4.0, 0.0], [0.0, -10.0]])  # no damping helps: the diagonal fallback
    result = QuantResult(tensors={})
    plan = {"a": ("flat", "gptq_int6"), "b": ("flat", "gptq_int6"), "c": ("flat", "int8")}
    _quantize_into(result, {"a": w, "b": w, "c": w}, plan, QuantConfig(), {"a": indefinite, "b": indefinite})
    assert result.cholesky_fallbacks == 2 and list(result.tensors) == ["a", "b", "c"]
    assert result.tensors["c"].scheme == "int8"


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(16, 24)
        self.fc = nn.Linear(24, 24, bias=False)
        self.head = nn.Linear(24, 16)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc(self.tok_emb(ids))))


def test_quantize_model_reports_tokens_schemes_and_calibrated_weights() -> None:
    torch.manual_seed(0)
    model = TwoLayers()
    calib = torch.randint(16, (5, 12), generator=torch.Generator().manual_seed(1))
    cfg = QuantConfig(passthrough_max_numel=100, flat_scheme="gptq_int6", embed_scheme="int8")
    result = quantize_model(model, cfg, calib)
    assert result.calib_tokens == 60 and result.cholesky_fallbacks == 0
    assert result.calibrated == ["fc.weight", "head.weight"]
    assert list(result.tensors) == ["tok_emb.weight", "fc.weight", "head.weight", "head.bias"]
    assert result.schemes == {"flat": "gptq_int6", "embed": "int8", "passthrough": "fp16"}
    with pytest.raises(ValueError, match="calibration tokens"):
        quantize_model(model, cfg, torch.zeros(0, 12, dtype=torch.long))
    plain = quantize_model(model, QuantConfig(passthrough_max_numel=100, flat_scheme="int6"), torch.zeros(0, 1))
    assert plain.calib_tokens == 0 and plain.calibrated == [] and plain.schemes["flat"] == "int6"


def test_applied_schemes_join_what_each_group_got_in_group_order() -> None:
    def qt(group: str, scheme: str) -> QTensor:
        return QTensor("x", group, scheme, (1,), torch.float32, data=torch.zeros(1))

    got = applied_schemes([qt("passthrough", "fp32"), qt("flat", "int6"), qt("flat", "gptq_int6"),
                           qt("passthrough", "fp16"), qt("embed", "int8"), qt("flat", "int6")])
    assert list(got.items()) == [("flat", "gptq_int6+int6"), ("embed", "int8"), ("passthrough", "fp16+fp32")]


def test_group_schemes_under_a_config() -> None:
    cfg = QuantConfig(flat_scheme="gptq_int5", crawler_scheme="same", embed_scheme="fp16")
    assert group_schemes(cfg) == {"flat": "gptq_int5", "crawler": "gptq_int5", "embed": "fp16",
                                  "passthrough": "fp16/fp32"}
    assert group_schemes(QuantConfig(crawler_scheme="int8"))["crawler"] == "int8"


class LoopShared(nn.Module):
    """An early flat layer, then the three kinds of loop-shared modules, each a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(16, 24)
        self.fc = nn.Linear(24, 24, bias=False)
        self.crawler_blocks = nn.ModuleList([nn.Linear(24, 24, bias=False)])
        self.delta_net = nn.ModuleDict({"q_proj": nn.Linear(24, 24, bias=False)})
        self.loop_inst = nn.Linear(24, 24, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc(self.tok_emb(ids)))
        x = x + torch.relu(self.crawler_blocks[0](x))
        return self.loop_inst(x + self.delta_net["q_proj"](x))


def test_loop_aware_gptq_calibrates_every_loop_shared_kind_on_the_quantized_early_layers() -> None:
    torch.manual_seed(0)
    model = LoopShared()
    calib = torch.randint(16, (6, 16), generator=torch.Generator().manual_seed(2))
    cfg = QuantConfig(passthrough_max_numel=100, flat_scheme="gptq_int5", crawler_scheme="same",
                      embed_scheme="int8", gptq_loop_aware=True)
    aware = quantize_model(model, cfg, calib)
    plain = quantize_model(model, cfg.model_copy(update={"gptq_loop_aware": False}), calib)
    late = {"crawler_blocks.0.weight": model.crawler_blocks[0], "delta_net.q_proj.weight": model.delta_net["q_proj"],
            "loop_inst.weight": model.loop_inst}
    ref = copy.deepcopy(model)
    ref.load_state_dict({n: (t if n in late else aware.tensors[n].dequantize()) for n, t in
                         model.state_dict().items()})
    ref_late = {"crawler_blocks.0.weight": ref.crawler_blocks[0], "delta_net.q_proj.weight": ref.delta_net["q_proj"],
                "loop_inst.weight": ref.loop_inst}
    hessians, _ = collect_hessians(ref, ref_late, calib)
    for name, module in late.items():
        expected, _, _ = gptq_quantize(module.weight, hessians[name], "int5")
        assert torch.equal(aware.tensors[name].q, expected), name
        assert not torch.equal(plain.tensors[name].q, expected), name
    assert torch.equal(aware.tensors["fc.weight"].q, plain.tensors["fc.weight"].q)
    assert aware.calibrated == plain.calibrated == sorted([*late, "fc.weight"]) and aware.calib_tokens == 96
