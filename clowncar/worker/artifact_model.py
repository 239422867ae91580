"""The model an artifact was made from, rebuilt from the file alone: its stored config builds a fresh model, which must
have exactly the stored tensors (checked before anything is allocated), and the dequantized weights fill it. The
file itself is read by `artifact.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from clowncar.errors import DataError
from clowncar.worker.artifact import load_artifact


def _check_fits(path: Path, state: dict[str, Tensor], cfg: Any) -> None:
    """The stored config must build a model of exactly the stored tensors; checked on the meta device (no memory)
    so a forged config cannot ask for a huge model before its shapes are compared."""
    from clowncar.model import build_model

    m = cfg.model
    layers = m.num_layers if m.arch == "gpt" else m.num_flat_layers + m.num_crawler_layers
    if layers > len(state):
        raise DataError(f"{path}: the stored config asks for {layers} layers, the file stores {len(state)} tensors")
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in build_model(cfg).state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in state.items()}
    if shapes != stored:
        diff = sorted(set(shapes) ^ set(stored)) or sorted(k for k in shapes if shapes[k] != stored[k])
        raise DataError(f"{path}: the artifact does not fit the model its config builds ({diff[0]}"
                        f"{f' and {len(diff) - 1} more' if len(diff) > 1 else ''})")


def load_model_from_artifact(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Any]:
    """A fresh model built from the config stored in the artifact, with the dequantized weights loaded.
    Returns (model in eval mode, TrialConfig)."""
    state, meta = load_artifact(path)
    return model_from_state(Path(path), state, meta, device)


def model_from_state(path: Path, state: dict[str, Tensor], meta: dict[str, Any],
                     device: str | torch.device = "cpu") -> tuple[nn.Module, Any]:
    """`load_model_from_artifact` for an artifact already read with `load_artifact`."""
    from clowncar.config_load import from_dict
    from clowncar.errors import ConfigError
    from clowncar.model import build_model

    try:
        cfg = from_dict(meta["config"])
        _check_fits(path, state, cfg)
    except ConfigError as err:
        raise DataError(f"{path}: its stored config is not usable: {err}") from None
    model = build_model(cfg)
    model.load_state_dict(state, strict=True)  # _check_fits compared every key and shape: this cannot refuse
    return model.to(device).eval(), cfg
