"""The artifact with the real CrawlerGPT: a fresh model built from the stored config alone gives the same
logits as the in-process dequantized model, and GPTQ calibrates exactly the flat Linear layers."""

from __future__ import annotations

from pathlib import Path

import torch

from clowncar.config import load_config
from clowncar.model import build_model
from clowncar.worker.artifact import export_artifact, load_model_from_artifact
from clowncar.worker.quant import quantize_model


def test_a_fresh_model_from_the_artifact_matches_the_in_process_quantized_model(tmp_path: Path) -> None:
    # tiny-cpu's matrices are below the default passthrough size; lower it so every scheme is exercised.
    cfg = load_config(preset="tiny-cpu", overrides=["quant.passthrough_max_numel=1024", "quant.zstd_level=3"])
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():  # move off the zero/identity init so every tensor carries information
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    calib = torch.randint(cfg.model.vocab_size, (2, 32), generator=torch.Generator().manual_seed(1))
    expected = quantize_model(model, cfg.quant, calib)
    fields = export_artifact(model, cfg, calib, tmp_path / "model.ptz")

    fresh, stored_cfg = load_model_from_artifact(tmp_path / "model.ptz")
    assert stored_cfg.content_hash() == cfg.content_hash()
    reference = build_model(cfg)
    reference.load_state_dict(expected.dequantized())
    reference.eval()
    tokens = torch.randint(cfg.model.vocab_size, (2, 48), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(fresh(tokens), reference(tokens))

    flat_linears = sorted(f"{n}.weight" for n, m in model.named_modules()
                          if isinstance(m, torch.nn.Linear) and not n.startswith("crawler_blocks.")
                          and m.weight.numel() > 1024)
    assert expected.calibrated == flat_linears and flat_linears
    assert fields["quant_schemes"]["flat"] == "gptq_int6"
    assert fields["quant_schemes"]["crawler"] == "int8"  # tiny-cpu sets crawler_scheme int8
    assert fields["quant_schemes"]["embed"] == "int8"
