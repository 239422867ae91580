"""What quantization may cost a trained tiny CrawlerGPT, read back from the artifact file alone: every int8 weight
within half a quantization step of the trained one, every matrix close in norm, and the validation BPB within
0.05 of the float model's. The same bounds fail when the dequantized weights are off by a scale factor of 127/128
or 2 (what a wrong scale in the round trip would do), so a broken round trip cannot pass unnoticed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from clowncar.data.bpb import build_byte_luts
from clowncar.data.stream import TokenStream, load_validation_tokens
from clowncar.data.tokenizer import load_tokenizer
from clowncar.model import build_model
from clowncar.worker.artifact import export_artifact, load_artifact
from clowncar.worker.evaluate import evaluate_bpb

QUANT = ["quant.enabled=true", "quant.flat_scheme=gptq_int6", "quant.crawler_scheme=int8",
         "quant.embed_scheme=int8", "quant.passthrough_max_numel=256", "quant.gptq_calib_seqs=4",
         "quant.gptq_calib_seq_len=32", "quant.zstd_level=3"]
HALF_STEP = 0.5 * 1.01  # half an int8 step of the row's largest |w| / 127, with room for the fp16 scale
MATRIX_REL_ERROR = 0.05  # ||deq - w|| / ||w|| per round-to-nearest matrix (int6 is the coarsest here)
BPB_GAP = 0.05


def _int8_names(state: dict[str, torch.Tensor]) -> list[str]:
    """The matrices that tiny-cpu stores as per-row int8: the shared crawler block and the embeddings."""
    return [n for n, t in state.items() if t.dim() == 2 and (n.startswith("crawler_blocks.")
                                                            or n in ("tok_emb.weight", "bigram.embed.weight"))]


def _worst_int8_excess(deq: dict[str, torch.Tensor], trained: dict[str, torch.Tensor]) -> float:
    """max over int8 elements of |deq - w| / (largest |w| of the row / 127): at most a half step when sound."""
    worst = 0.0
    for n in _int8_names(trained):
        w = trained[n].float()
        step = w.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127
        worst = max(worst, float(((deq[n].float() - w).abs() / step).max()))
    return worst


def _worst_matrix_error(deq: dict[str, torch.Tensor], trained: dict[str, torch.Tensor], skip: list[str]) -> float:
    """Largest relative error of a matrix outside `skip`. GPTQ's matrices are skipped: it trades weight error
    for output error, and leaves weights that meet no input (columns after relu^2 that stay zero) far off."""
    return max(float((deq[n].float() - w.float()).norm() / w.float().norm())
               for n, w in trained.items() if w.dim() == 2 and w.norm() > 0 and n not in skip)


@pytest.fixture(scope="module")
def trained_and_exported(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from clowncar.config_load import load_config

    overrides = [f"data.dataset={tiny_data}", f"data.tokenizer={tiny_data / 'tokenizer.model'}", "model.vocab_size=320",
                 "model.model_dim=32", "model.num_heads=2", "model.num_kv_heads=1", "model.bigram_vocab_size=64",
                 "model.bigram_dim=16", "model.inst_dim=4", "eval.seq_len=32", "eval.max_tokens=2048", *QUANT]
    cfg = load_config(preset="tiny-cpu", overrides=overrides)
    torch.manual_seed(0)
    model = build_model(cfg)
    stream = TokenStream(sorted(tiny_data.glob("fineweb_train_*.bin")))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):  # a short real training run: the weights leave their initialization
        batch = torch.from_numpy(stream.take(4 * 33).astype(np.int64)).view(4, 33)
        loss = model(batch[:, :-1], batch[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    calib = TokenStream(sorted(tiny_data.glob("fineweb_train_*.bin"))).take(4 * 32)
    path = tmp_path_factory.mktemp("quant") / "model.ptz"
    export_artifact(model, cfg, calib, path)
    deq, meta = load_artifact(path)
    sp = load_tokenizer(tiny_data / "tokenizer.model")
    val = load_validation_tokens(sorted(tiny_data.glob("fineweb_val_*.bin")), 32, 2048)
    luts = build_byte_luts(sp, cfg.model.vocab_size)

    def bpb(state: dict[str, torch.Tensor]) -> float:
        m = build_model(cfg)
        m.load_state_dict(state)
        return float(evaluate_bpb(m, val, luts, seq_len=32, stride=0, batch_tokens=1024)["val_bpb"])

    trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {"trained": trained, "deq": deq, "bpb": bpb, "float_bpb": bpb(trained), "gptq": meta["calibrated"]}


def _scaled(deq: dict[str, torch.Tensor], trained: dict[str, torch.Tensor], factor: float) -> dict[str, torch.Tensor]:
    """The round trip with every stored matrix's scale off by `factor` (passthrough tensors untouched)."""
    return {k: (v * factor if v.dim() == 2 and not torch.equal(v.float(), trained[k].float()) else v)
            for k, v in deq.items()}


def test_int8_weights_are_within_half_a_step_and_a_wrong_scale_is_not(trained_and_exported: dict[str, Any]) -> None:
    deq, trained = trained_and_exported["deq"], trained_and_exported["trained"]
    assert len(_int8_names(trained)) >= 7  # the crawler block's matrices and the embeddings
    assert _worst_int8_excess(deq, trained) <= HALF_STEP
    assert _worst_int8_excess(_scaled(deq, trained, 127 / 128), trained) > HALF_STEP
    assert _worst_int8_excess(_scaled(deq, trained, 2.0), trained) > 10


def test_every_rounded_matrix_is_close_in_norm_and_a_doubled_scale_is_not(
        trained_and_exported: dict[str, Any]) -> None:
    deq, trained, gptq = trained_and_exported["deq"], trained_and_exported["trained"], trained_and_exported["gptq"]
    assert set(deq) == set(trained) and gptq  # the flat blocks' matrices went through GPTQ
    assert _worst_matrix_error(deq, trained, gptq) <= MATRIX_REL_ERROR
    assert _worst_matrix_error(_scaled(deq, trained, 2.0), trained, gptq) > 0.9


def test_quantization_gap_of_the_trained_model_is_bounded_and_a_doubled_scale_breaks_it(
        trained_and_exported: dict[str, Any]) -> None:
    t: Callable[[dict[str, torch.Tensor]], float] = trained_and_exported["bpb"]
    float_bpb = trained_and_exported["float_bpb"]
    assert float_bpb < 8.0  # trained: well below the ~8.3 bits of a uniform guess over 320 tokens
    assert abs(t(trained_and_exported["deq"]) - float_bpb) <= BPB_GAP
    doubled = _scaled(trained_and_exported["deq"], trained_and_exported["trained"], 2.0)
    assert t(doubled) - float_bpb > BPB_GAP
