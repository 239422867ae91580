"""Quantization schemes on a briefly trained toy model built from nn.Linear layers (CPU, a second or two)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from clowncar.config import QuantConfig
from clowncar.worker.quant import (
    classify,
    collect_hessians,
    gptq_quantize,
    quantize_int8_baseline,
    quantize_model,
    quantize_rtn,
    row_quantile,
)

VOCAB, DIM, SEQ = 64, 48, 32


class Toy(nn.Module):
    """Embedding, one shared block looped twice (named like the crawler), a flat MLP and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(VOCAB, DIM)
        self.crawler_blocks = nn.ModuleList([nn.Linear(DIM, DIM)])
        self.fc1 = nn.Linear(DIM, 4 * DIM)
        self.fc2 = nn.Linear(4 * DIM, DIM)
        self.attn_scale = nn.Parameter(torch.ones(DIM))
        self.head = nn.Linear(DIM, VOCAB, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(ids)
        for _ in range(2):
            x = x + torch.relu(self.crawler_blocks[0](x))
        x = x + self.fc2(torch.relu(self.fc1(x))) * self.attn_scale
        return self.head(x)


def markov_tokens(n_seqs: int, seed: int) -> torch.Tensor:
    """Sequences from a fixed sparse Markov chain, so a trained model has structured activations."""
    g = torch.Generator().manual_seed(1234)
    trans = torch.softmax(torch.randn(VOCAB, VOCAB, generator=g) * 3, dim=1)
    g.manual_seed(seed)
    seqs = torch.zeros(n_seqs, SEQ, dtype=torch.long)
    seqs[:, 0] = torch.randint(VOCAB, (n_seqs,), generator=g)
    for t in range(1, SEQ):
        seqs[:, t] = torch.multinomial(trans[seqs[:, t - 1]], 1, generator=g).squeeze(1)
    return seqs


@pytest.fixture(scope="module")
def trained() -> Toy:
    torch.manual_seed(0)
    model = Toy()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    data = markov_tokens(256, seed=1)
    for step in range(120):
        batch = data[(step * 16) % 256:(step * 16) % 256 + 16]
        logits = model(batch[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def qcfg(**kw: object) -> QuantConfig:
    return QuantConfig(passthrough_max_numel=512, **kw)


def layer_inputs(model: Toy, module: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    handle = module.register_forward_pre_hook(lambda _m, a: seen.append(a[0].reshape(-1, a[0].shape[-1])))
    with torch.no_grad():
        model(tokens)
    handle.remove()
    return torch.cat(seen)


def output_error(x: torch.Tensor, w: torch.Tensor, wq: torch.Tensor) -> float:
    return float((x @ w.T - x @ wq.T).pow(2).mean())


def test_gptq_int6_beats_plain_int6_rounding_on_held_out_activations(trained: Toy) -> None:
    calib, held_out = markov_tokens(32, seed=7), markov_tokens(32, seed=99)
    layer = trained.fc2
    h, _ = collect_hessians(trained, {"fc2.weight": layer}, calib)
    w = layer.weight.detach()
    q_g, s_g, fell_back = gptq_quantize(w, h["fc2.weight"], "int6")
    q_r, s_r = quantize_rtn(w, "int6")
    x = layer_inputs(trained, layer, held_out)
    err_gptq = output_error(x, w, q_g.float() * s_g.float()[:, None])
    err_rtn = output_error(x, w, q_r.float() * s_r.float()[:, None])
    assert not fell_back
    assert torch.equal(s_g, s_r)  # same scales: the difference is GPTQ's error feedback alone
    assert err_gptq < 0.8 * err_rtn


@pytest.mark.parametrize("order", ["ascending", "descending", "natural"])
def test_gptq_codes_stay_in_range_and_in_original_column_order(order: str) -> None:
    torch.manual_seed(3)
    w = torch.randn(16, 40) * 0.05
    w[:, 5] = 0.0  # a column that an identity Hessian quantizes to exactly zero
    q, _, _ = gptq_quantize(w, torch.eye(40), "int5", block_size=8, col_order=order)
    assert q.abs().max() <= 15 and q.dtype == torch.int8
    # With H = I there is no cross-column feedback: GPTQ equals plain rounding, column for column.
    q_rtn, _ = quantize_rtn(w, "int5")
    assert torch.equal(q, q_rtn)


def test_error_grows_from_int8_to_int6_to_int5(trained: Toy) -> None:
    calib, held_out = markov_tokens(32, seed=7), markov_tokens(32, seed=99)
    x = layer_inputs(trained, trained.fc1, held_out)
    w = trained.fc1.weight.detach()
    errors = {}
    for scheme in ("int8", "gptq_int6", "gptq_int5"):
        deq = quantize_model(trained, qcfg(flat_scheme=scheme), calib).dequantized()
        errors[scheme] = output_error(x, w, deq["fc1.weight"])
    assert 0 < errors["int8"] < errors["gptq_int6"] < errors["gptq_int5"]
    rtn = {b: quantize_rtn(w, b) for b in ("int6", "int5")}
    rtn_err = {b: float((w - q.float() * s.float()[:, None]).pow(2).mean()) for b, (q, s) in rtn.items()}
    q8, s8 = quantize_int8_baseline(w)
    assert float((w - q8.float() * s8.float()[:, None]).pow(2).mean()) < rtn_err["int6"] < rtn_err["int5"]


def test_hessians_are_collected_only_on_the_linears_that_get_gptq(trained: Toy) -> None:
    result = quantize_model(trained, qcfg(flat_scheme="gptq_int6", crawler_scheme="int8"), markov_tokens(8, 7))
    assert result.calibrated == ["fc1.weight", "fc2.weight", "head.weight"]
    schemes = {n: (t.group, t.scheme) for n, t in result.tensors.items()}
    assert schemes["crawler_blocks.0.weight"] == ("crawler", "int8")
    assert schemes["tok_emb.weight"] == ("embed", "int8")
    assert schemes["attn_scale"] == ("passthrough", "fp32")
    assert schemes["fc1.bias"] == ("passthrough", "fp16")
    assert schemes["fc2.weight"] == ("flat", "gptq_int6")
    same = quantize_model(trained, qcfg(flat_scheme="gptq_int6", crawler_scheme="same"), markov_tokens(8, 7))
    assert "crawler_blocks.0.weight" in same.calibrated
    assert same.tensors["crawler_blocks.0.weight"].scheme == "gptq_int6"


def test_a_looped_module_contributes_the_inputs_of_every_loop(trained: Toy) -> None:
    calib = markov_tokens(4, 7)
    mod = trained.crawler_blocks[0]
    h, n = collect_hessians(trained, {"c": mod}, calib)
    x = layer_inputs(trained, mod, calib)  # both loops' inputs
    assert x.shape[0] == 2 * calib.numel() and n == calib.numel()
    assert torch.allclose(h["c"], x.T @ x / x.shape[0], rtol=1e-4, atol=1e-6)


def test_the_model_passed_in_is_the_one_calibrated_and_quantized(trained: Toy) -> None:
    """The seed collected Hessians on the raw weights and quantized the EMA weights. Here the Hessian comes
    from the model object that is quantized, so quantizing an EMA copy calibrates the EMA copy."""
    ema = copy.deepcopy(trained)
    with torch.no_grad():
        for p in ema.parameters():
            p.mul_(0.9).add_(0.01 * torch.randn_like(p))
    calib = markov_tokens(16, 7)
    cfg = qcfg(flat_scheme="gptq_int6")
    result = quantize_model(ema, cfg, calib)
    h_ema, _ = collect_hessians(ema, {"w": ema.fc2}, calib)
    h_raw, _ = collect_hessians(trained, {"w": trained.fc2}, calib)
    q_ema, _, _ = gptq_quantize(ema.fc2.weight, h_ema["w"], "int6")
    q_mixed, _, _ = gptq_quantize(ema.fc2.weight, h_raw["w"], "int6")
    assert torch.equal(result.tensors["fc2.weight"].q, q_ema)
    assert not torch.equal(result.tensors["fc2.weight"].q, q_mixed)


def test_tied_weights_are_stored_once() -> None:
    model = Toy()
    model.head.weight = model.tok_emb.weight
    result = quantize_model(model, qcfg(flat_scheme="int6"), None)
    assert result.aliases == {"head.weight": "tok_emb.weight"}
    deq = result.dequantized()
    assert deq["head.weight"] is deq["tok_emb.weight"]


def test_gptq_without_calibration_tokens_is_refused(trained: Toy) -> None:
    with pytest.raises(ValueError, match=r"^GPTQ needs calibration tokens from the training stream$"):
        quantize_model(trained, qcfg(flat_scheme="gptq_int5"), None)


def test_row_quantile_matches_torch_quantile() -> None:
    a = torch.rand(7, 301)
    for q in (0.5, 0.999, 0.9999984, 1.0):
        assert torch.allclose(row_quantile(a, q), torch.quantile(a, q, dim=1))


def test_classify_uses_the_config_not_the_code() -> None:
    big = torch.zeros(100, 100)
    cfg = qcfg(flat_scheme="gptq_int5", crawler_scheme="fp16", embed_scheme="fp16")
    assert classify("crawler_blocks.0.mlp.fc.weight", big, cfg) == ("crawler", "fp16")
    assert classify("bigram.embed.weight", big, cfg) == ("embed", "fp16")
    assert classify("flat_blocks.0.attn.qkv.weight", big, cfg) == ("flat", "gptq_int5")
    assert classify("step", torch.zeros(3, dtype=torch.long), cfg) == ("passthrough", "raw")


def test_loop_aware_gptq_calibrates_shared_layers_on_the_quantized_model_and_restores_it(trained: Toy) -> None:
    calib = markov_tokens(16, 7)
    cfg = qcfg(flat_scheme="gptq_int6", crawler_scheme="same", gptq_loop_aware=True)
    before = {n: t.clone() for n, t in trained.state_dict().items()}
    aware = quantize_model(trained, cfg, calib)
    assert all(torch.equal(before[n], t) for n, t in trained.state_dict().items())  # weights restored

    ref = copy.deepcopy(trained)
    state = ref.state_dict()
    for name, qt in aware.tensors.items():
        if not name.startswith("crawler_blocks."):
            state[name] = qt.dequantize()
    ref.load_state_dict(state)
    h, _ = collect_hessians(ref, {"c": ref.crawler_blocks[0]}, calib)
    q_ref, _, _ = gptq_quantize(trained.crawler_blocks[0].weight, h["c"], "int6")
    assert torch.equal(aware.tensors["crawler_blocks.0.weight"].q, q_ref)

    plain = quantize_model(trained, qcfg(flat_scheme="gptq_int6", crawler_scheme="same"), calib)
    assert not torch.equal(plain.tensors["crawler_blocks.0.weight"].q, q_ref)
    assert torch.equal(plain.tensors["fc2.weight"].q, aware.tensors["fc2.weight"].q)
    assert list(aware.tensors) == list(plain.tensors) and aware.calibrated == plain.calibrated


class Named(nn.Module):
    """An embedding under a name the quantizer has no rule for, and a tied weight in the middle of the state."""

    def __init__(self) -> None:
        super().__init__()
        self.vocab = nn.Embedding(VOCAB, DIM)
        self.a = nn.Linear(DIM, DIM)
        self.b = nn.Linear(DIM, DIM)
        self.b.weight = self.a.weight
        self.c = nn.Linear(DIM, DIM)


def test_every_tensor_after_a_tied_one_is_kept_under_its_own_name() -> None:
    result = quantize_model(Named(), qcfg(flat_scheme="int6"), None)
    assert result.aliases == {"b.weight": "a.weight"}
    assert list(result.tensors) == ["vocab.weight", "a.weight", "a.bias", "b.bias", "c.weight", "c.bias"]
    assert {n: qt.name for n, qt in result.tensors.items()} == {n: n for n in result.tensors}
    assert result.tensors["c.weight"].q is not None and result.tensors["c.bias"].data is not None


def test_any_embedding_module_is_quantized_as_an_embedding() -> None:
    result = quantize_model(Named(), qcfg(flat_scheme="int6", embed_scheme="fp16"), None)
    assert (result.tensors["vocab.weight"].group, result.tensors["vocab.weight"].scheme) == ("embed", "fp16")
    assert (result.tensors["c.weight"].group, result.tensors["c.weight"].scheme) == ("flat", "int6")
