"""The artifact with the real CrawlerGPT: a fresh model built from the stored config alone gives the same
logits as the in-process dequantized model, and GPTQ calibrates exactly the flat Linear layers; a stored config
that does not fit the stored tensors is refused in one exact line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clowncar.config_load import from_dict, load_config
from clowncar.errors import ConfigError, DataError
from clowncar.model import build_model
from clowncar.worker.artifact import export_artifact
from clowncar.worker.artifact_model import load_model_from_artifact, model_from_state
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
    elsewhere, _ = load_model_from_artifact(tmp_path / "model.ptz", device="meta")  # built where it is asked
    assert {p.device.type for p in elsewhere.parameters()} == {"meta"} and not elsewhere.training
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


def _state_and_meta(**model: object) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    cfg = load_config(preset="tiny-cpu")
    state = build_model(cfg).state_dict()
    config = cfg.to_dict()
    config["model"] = {**config["model"], **model}
    return state, {"config": config}


def test_a_config_that_asks_for_more_layers_than_tensors_is_refused_before_building() -> None:
    state, meta = _state_and_meta(num_flat_layers=100)  # crawler: 100 flat + 1 crawler layer
    with pytest.raises(DataError) as info:
        model_from_state(Path("x.ptz"), state, meta)
    assert str(info.value) == f"x.ptz: the stored config asks for 101 layers, the file stores {len(state)} tensors"
    state, meta = _state_and_meta(num_flat_layers=len(state) - 1)  # as many layers as tensors: built, compared
    with pytest.raises(DataError) as info:
        model_from_state(Path("x.ptz"), state, meta)
    assert str(info.value).startswith("x.ptz: the artifact does not fit the model its config builds (")
    state, meta = _state_and_meta(arch="gpt", num_layers=len(state) + 1)  # gpt: num_layers
    with pytest.raises(DataError) as info:
        model_from_state(Path("x.ptz"), state, meta)
    assert str(info.value) == (f"x.ptz: the stored config asks for {len(state) + 1} layers, the file stores "
                               f"{len(state)} tensors")


def test_a_state_that_does_not_fit_names_the_first_difference_and_counts_the_rest() -> None:
    state, meta = _state_and_meta()
    one = {**state, "tok_emb.weight": state["tok_emb.weight"][:, :3]}
    with pytest.raises(DataError) as info:
        model_from_state(Path("x.ptz"), one, meta)
    assert str(info.value) == "x.ptz: the artifact does not fit the model its config builds (tok_emb.weight)"
    two = {k: v for k, v in state.items() if k != "smear.gate"} | {"zz": torch.zeros(1)}
    with pytest.raises(DataError) as info:
        model_from_state(Path("x.ptz"), two, meta)
    assert str(info.value) == "x.ptz: the artifact does not fit the model its config builds (smear.gate and 1 more)"
    three = {k: v for k, v in state.items() if k not in ("smear.gate", "bigram.scale")} | {"zz": torch.zeros(1)}
    with pytest.raises(DataError) as info:
        model_from_state(Path("x.ptz"), three, meta)
    assert str(info.value) == ("x.ptz: the artifact does not fit the model its config builds (bigram.scale and 2 "
                               "more)")


def test_an_unusable_stored_config_is_one_line_that_says_why() -> None:
    state, meta = _state_and_meta(depth=3)
    with pytest.raises(ConfigError) as expected:
        from_dict(meta["config"])
    with pytest.raises(DataError) as info:
        model_from_state(Path("x.ptz"), state, meta)
    assert str(info.value) == f"x.ptz: its stored config is not usable: {expected.value}"


def test_a_fitting_state_gives_the_model_in_eval_mode_with_those_weights() -> None:
    state, meta = _state_and_meta()
    state = {k: v + 0.5 if v.is_floating_point() else v for k, v in state.items()}
    model, cfg = model_from_state(Path("x.ptz"), state, meta)
    assert not model.training and cfg.to_dict() == meta["config"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
