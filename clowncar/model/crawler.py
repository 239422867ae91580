"""CrawlerGPT: a flat U-Net whose bottleneck is a shared block looped several times (Frugendorff / ClownCar).

    x0 = embed(tokens)
    encoder: the first num_flat_layers // 2 unique blocks, each pushing a skip
    crawler: the num_crawler_layers shared blocks, run crawler_loops times (a C-step) or once (an N-step)
    decoder: the remaining unique blocks, each adding a popped skip first
    logits = tied head

Before each loop k the hidden state gets a loop-specific nudge, so the shared weights can tell the passes
apart. With flow instructions (`inst_dim > 0`) the nudge is computed from the current state:
`x + up_k(down(x))`, with one shared down-projection to `inst_dim` and one zero-initialized up-projection per
loop, all trained (the seed never put them in an optimizer). With `inst_dim = 0` it is a fixed offset per loop:
orthogonal directions of norm 0.01, drawn from a fixed seed and never trained.

An N-step (`crawl=False`) runs the shared blocks once, as the first loop of a C-step would, which is how the
seed's micro-crawler alternated cheap and full steps. Evaluation should always crawl (the default).
With `delta_net_heads > 0` a DeltaNet layer runs after the shared blocks inside every loop, each time from a
zero state (see `deltanet.py`).

`unused_value_embed_dim > 0` adds the seed's value embedding (`ve_shared`, `ve_layer_scales`): built, exported,
never used in the forward pass (its layer list named blocks the crawler does not have). It exists so that a
seed-exact artifact carries the same bytes; it is initialized from its own generator, so adding it changes no
other tensor's initial values.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from clowncar.config import ModelConfig
from clowncar.model.deltanet import DeltaNet
from clowncar.model.layers import Block, CastedLinear, TiedLM


def fixed_loop_offsets(loops: int, dim: int) -> Tensor:
    """`[loops, dim]` orthogonal rows of norm 0.01 from a fixed generator: the same in every process."""
    g = torch.Generator(device="cpu").manual_seed(0x10_0905)
    raw = torch.randn(dim, max(loops, 1), generator=g, device="cpu")
    q, _ = torch.linalg.qr(raw)  # needs loops <= dim, which any usable width satisfies
    return (q.T[:loops] * 0.01).contiguous()


UNUSED_VE_SEED = 0x5EED_0E


class UnusedValueEmbedding(nn.Module):
    """The seed's `ValueEmbedding` as ClownCar built it: a table (init N(0, 0.01)), a projection to the KV width
    (orthogonal x 1/sqrt(2 x layers) when both sides are >= 64, else zero, as its generic init left it) and a
    scale of 0.1. Nothing calls it; it never gets a gradient, so training leaves it at its initial values."""

    def __init__(self, vocab_size: int, dim: int, kv_dim: int, total_layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.proj = CastedLinear(dim, kv_dim, bias=False) if dim != kv_dim else None
        self.scale = nn.Parameter(torch.tensor(0.1, dtype=torch.float32))
        if self.embed.weight.is_meta:
            return
        with torch.no_grad():
            nn.init.normal_(self.embed.weight, std=0.01)
            if self.proj is not None and min(self.proj.weight.shape) >= 64:
                nn.init.orthogonal_(self.proj.weight)
                self.proj.weight.mul_(1.0 / math.sqrt(2 * total_layers))
            elif self.proj is not None:
                nn.init.zeros_(self.proj.weight)


class CrawlerGPT(TiedLM):
    def __init__(self, cfg: ModelConfig, model_dim: int) -> None:
        super().__init__()
        self._init_io(cfg, model_dim)
        self.crawler_loops = cfg.crawler_loops
        self.num_encoder_layers = cfg.num_flat_layers // 2
        self.num_decoder_layers = cfg.num_flat_layers - self.num_encoder_layers
        num_skips = min(self.num_encoder_layers, self.num_decoder_layers)
        # No empty parameter when there is nothing to skip over (a single flat layer or none).
        self.skip_weights = (nn.Parameter(torch.ones(num_skips, model_dim, dtype=torch.float32))
                             if num_skips else None)

        def block(mlp_mult: float, layer_idx: int, xsa: bool) -> Block:
            return Block(model_dim, cfg.num_heads, cfg.num_kv_heads, mlp_mult, cfg.qk_gain_init,
                         layer_idx=layer_idx, ln_scale=cfg.ln_scale, xsa=xsa, attn_backend=cfg.attn_backend)

        # Layer indices (for ln_scale) follow the seed: flat blocks 0..F-1, then the crawler blocks F, F+1, ...
        self.flat_blocks = nn.ModuleList([block(cfg.mlp_mult, i, cfg.xsa == "all")
                                          for i in range(cfg.num_flat_layers)])
        self.crawler_blocks = nn.ModuleList([block(cfg.crawler_mlp_mult, cfg.num_flat_layers + i, cfg.xsa != "off")
                                             for i in range(cfg.num_crawler_layers)])
        self.loop_inst_proj: CastedLinear | None = None
        self.loop_inst_up: nn.ModuleList | None = None
        self.loop_pos: Tensor | None
        if cfg.crawler_loops > 1 and cfg.inst_dim > 0:
            self.loop_inst_proj = CastedLinear(model_dim, cfg.inst_dim, bias=False)
            self.loop_inst_up = nn.ModuleList([CastedLinear(cfg.inst_dim, model_dim, bias=False)
                                               for _ in range(cfg.crawler_loops)])
            self.register_buffer("loop_pos", None)
        elif cfg.crawler_loops > 1:
            # Derived from a fixed seed, so it need not be stored in checkpoints or artifacts.
            self.register_buffer("loop_pos", fixed_loop_offsets(cfg.crawler_loops, model_dim), persistent=False)
        else:
            self.register_buffer("loop_pos", None)
        self.delta_net = (DeltaNet(model_dim, cfg.delta_net_heads, cfg.delta_net_conv, cfg.delta_net_chunk,
                                   cfg.deltanet_backend, conv_silu=cfg.delta_net_conv_silu,
                                   head_norm=cfg.delta_net_head_norm, out_norm=cfg.delta_net_out_norm)
                          if cfg.delta_net_heads else None)
        if self.delta_net is not None and cfg.delta_net_o_init == "orthogonal":
            self.delta_net.o_proj._zero_init = False  # the generic init below makes it orthogonal, as the seed's did
        self._init_weights(cfg.num_flat_layers + cfg.num_crawler_layers)
        self.ve_shared: UnusedValueEmbedding | None = None
        self.ve_layer_scales: nn.ParameterList | None = None
        if cfg.unused_value_embed_dim:
            kv_dim = cfg.num_kv_heads * (model_dim // cfg.num_heads)
            with torch.random.fork_rng(devices=[]):  # its own random stream: the other tensors' init is unchanged
                torch.manual_seed(UNUSED_VE_SEED)
                self.ve_shared = UnusedValueEmbedding(cfg.vocab_size, cfg.unused_value_embed_dim, kv_dim,
                                                      cfg.num_flat_layers + cfg.num_crawler_layers)
                # The seed's VE_LAYERS "9,10": one scale per listed layer, none of which the crawler has.
                self.ve_layer_scales = nn.ParameterList([nn.Parameter(torch.ones(1)) for _ in range(2)])

    @torch.no_grad()
    def _init_weights(self, total_layers: int) -> None:
        # The seed's crawler init: orthogonal matrices (both sides >= 64), output projections zero, other
        # `.proj` matrices scaled by 1/sqrt(2 * layers); flow instructions start at N(0, 0.01) down / zero up.
        if self.tok_emb.weight.is_meta:
            return
        nn.init.normal_(self.tok_emb.weight, std=self.tied_embed_init_std)
        for name, m in self.named_modules():
            if not isinstance(m, nn.Linear):
                continue
            if getattr(m, "_zero_init", False):
                nn.init.zeros_(m.weight)
            elif min(m.weight.shape) >= 64:
                nn.init.orthogonal_(m.weight)
                if name.endswith(".proj"):
                    m.weight.mul_(1.0 / math.sqrt(2 * total_layers))
        if self.loop_inst_proj is not None and self.loop_inst_up is not None:
            nn.init.normal_(self.loop_inst_proj.weight, std=0.01)
            for up in self.loop_inst_up:
                nn.init.zeros_(up.weight)

    def _loop_input(self, x: Tensor, loop: int) -> Tensor:
        if self.loop_inst_proj is not None and self.loop_inst_up is not None:
            return x + self.loop_inst_up[loop](self.loop_inst_proj(x))
        if self.loop_pos is not None:
            return x + self.loop_pos[loop].to(x.dtype)
        return x

    def _crawl(self, x: Tensor, x0: Tensor, cos: Tensor, sin: Tensor, loops: int) -> Tensor:
        for loop in range(loops):
            x = self._loop_input(x, loop)
            for block in self.crawler_blocks:
                x = block(x, x0, cos, sin)
            if self.delta_net is not None:
                x = self.delta_net(x)  # a fresh zero state every loop: no cross-loop carry, stays causal
        return x

    def forward(self, input_ids: Tensor, target_ids: Tensor | None = None, crawl: bool = True) -> Tensor:
        """`crawl=True` is a C-step (all loops); `crawl=False` an N-step (the shared blocks once)."""
        x = x0 = self.embed(input_ids)
        cos, sin = self.rotary(input_ids.size(1), input_ids.device)
        skips: list[Tensor] = []
        for block in self.flat_blocks[: self.num_encoder_layers]:
            x = block(x, x0, cos, sin)
            skips.append(x)
        x = self._crawl(x, x0, cos, sin, self.crawler_loops if crawl else 1)
        for i, block in enumerate(self.flat_blocks[self.num_encoder_layers:]):
            if skips and self.skip_weights is not None:
                x = x + self.skip_weights[i].to(x.dtype) * skips.pop()
            x = block(x, x0, cos, sin)
        return self.head(x, target_ids)
