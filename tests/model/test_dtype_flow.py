"""A bf16 model (`param_dtype: bf16`, the seed's build) keeps its activations in bf16 from the embedding to the
head: the fp32 tensors it keeps (matrices under Muon, gains, scales, mixes, gates, offsets) are cast to the
activation dtype where they are used, so no module hands fp32 on and silently runs the rest of the network in
fp32 (twice the memory and another function than the seed's). Only the head's logits come back fp32."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from clowncar.model import build_model


def test_every_module_of_a_bf16_model_outputs_bf16(model_variant: dict[str, Any], tiny_cfg: Any,
                                                   perturb: Any) -> None:
    cfg = tiny_cfg(**{**model_variant, "param_dtype": "bf16"})
    torch.manual_seed(0)
    model = perturb(build_model(cfg))
    fp32_kept = {n for n, p in model.named_parameters() if p.dtype == torch.float32}
    assert fp32_kept, "nothing stayed fp32: the check would prove nothing"
    wrong: list[str] = []

    def check(name: str) -> Any:
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            outs = out if isinstance(out, tuple) else (out,)
            wrong.extend(f"{name} -> {t.dtype}" for t in outs
                         if isinstance(t, Tensor) and t.is_floating_point() and t.dtype != torch.bfloat16)
        return hook

    for name, module in model.named_modules():
        if name:
            module.register_forward_hook(check(name))
    ids = torch.randint(0, cfg.vocab_size, (2, 11))
    for crawl in (True, False):
        with torch.no_grad():
            logits = model(ids, crawl=crawl)
        assert logits.dtype == torch.float32
    assert not wrong, wrong
