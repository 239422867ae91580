"""GPT: the Parameter Golf baseline stack with U-Net skips.

The first half of the blocks push their outputs; each block of the second half first adds a popped skip
scaled by a learned per-channel weight. With the `baseline` preset (9 x 512, 8 heads / 4 KV heads, relu^2
MLP 2x, tied embeddings) this has exactly the reference's 17,059,912 parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clowncar.config_model import ModelConfig
from clowncar.model.layers import Block, TiedLM, init_normal


class GPT(TiedLM):
    def __init__(self, cfg: ModelConfig, model_dim: int) -> None:
        super().__init__()
        self._init_io(cfg, model_dim)
        self.num_encoder_layers = cfg.num_layers // 2
        num_skips = self.num_encoder_layers  # the decoder half is never the smaller: every push is popped
        # No empty parameter when there is nothing to skip over (a single layer).
        self.skip_weights = (nn.Parameter(torch.ones(num_skips, model_dim, dtype=torch.float32))
                             if num_skips else None)
        self.blocks = nn.ModuleList([
            Block(model_dim, cfg.num_heads, cfg.num_kv_heads, cfg.mlp_mult, cfg.qk_gain_init, layer_idx=i,
                  ln_scale=cfg.ln_scale, xsa=cfg.xsa == "all", attn_backend=cfg.attn_backend,
                  resid_mix=cfg.resid_mix, q_gain=cfg.q_gain)
            for i in range(cfg.num_layers)
        ])
        self.weight_init = cfg.weight_init
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        # The reference baseline: tied embedding N(0, 0.005), zero output projections, default nn.Linear init
        # for the rest (the bigram projection keeps its default init so its zero table gets gradient).
        if self.tok_emb.weight.is_meta:
            return
        nn.init.normal_(self.tok_emb.weight, std=self.tied_embed_init_std)
        if self.weight_init == "normal":
            init_normal(self)
        for m in self.modules():
            if isinstance(m, nn.Linear) and getattr(m, "_zero_init", False):
                nn.init.zeros_(m.weight)

    def forward(self, input_ids: Tensor, target_ids: Tensor | None = None, crawl: bool = True) -> Tensor:
        """`crawl` is accepted so that both models share one call signature; a GPT has nothing to loop."""
        x = x0 = self.embed(input_ids)
        cos, sin = self.rotary(input_ids.size(1), input_ids.device)
        skips: list[Tensor] = []
        for block in self.blocks[: self.num_encoder_layers]:
            x = block(x, x0, cos, sin)
            skips.append(x)
        for i, block in enumerate(self.blocks[self.num_encoder_layers:]):
            if skips and self.skip_weights is not None:
                x = x + self.skip_weights[i].to(x.dtype) * skips.pop()
            x = block(x, x0, cos, sin)
        return self.head(x, target_ids)
