"""Changing the tokens after position t never changes the logits at positions <= t, for every model option."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from clowncar.model import build_model


def future_leak(model: torch.nn.Module, vocab: int, crawl: bool, T: int = 21, t: int = 9) -> tuple[float, float]:
    """(largest change at positions <= t, largest change after t) when tokens after t are redrawn."""
    g = torch.Generator().manual_seed(1)
    a = torch.randint(0, vocab, (2, T), generator=g)
    b = a.clone()
    b[:, t + 1:] = torch.randint(0, vocab, (2, T - t - 1), generator=g)
    with torch.no_grad():
        la, lb = model(a, crawl=crawl), model(b, crawl=crawl)
    diff = (la - lb).abs()
    return float(diff[:, : t + 1].max()), float(diff[:, t + 1:].max())


@pytest.mark.parametrize("crawl", [True, False], ids=["C-step", "N-step"])
def test_logits_up_to_t_ignore_tokens_after_t(model_variant: dict[str, Any], crawl: bool, tiny_cfg: Any,
                                              perturb: Any) -> None:
    cfg = tiny_cfg(**model_variant)
    torch.manual_seed(0)
    model = perturb(build_model(cfg))
    past, future = future_leak(model, cfg.vocab_size, crawl)
    assert past < 1e-5, f"positions <= t changed by {past}"
    assert future > 1e-3, "the redrawn tokens changed nothing: the check would not see a leak"


def test_the_check_sees_a_leak_when_attention_is_not_causal(tiny_cfg: Any, perturb: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    sdpa = F.scaled_dot_product_attention

    def bidirectional(*args: Any, **kwargs: Any) -> torch.Tensor:
        kwargs["is_causal"] = False
        return sdpa(*args, **kwargs)

    monkeypatch.setattr("clowncar.model.layers.F.scaled_dot_product_attention", bidirectional)
    cfg = tiny_cfg(arch="crawler")
    torch.manual_seed(0)
    past, _ = future_leak(perturb(build_model(cfg)), cfg.vocab_size, crawl=True)
    assert past > 1e-3
