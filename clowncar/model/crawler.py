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

The seed's sweep trainers (reference/seed_facts.md section 9) are layouts of the same model:
- Frugendorff v2 (`train_fractal_cadence.py`): no flat blocks; U shared blocks looped L times, trained offsets
  with an extra row for the N-step (`loop_offsets: learned_n_row`).
- micro-crawler (`train_micro_crawler.py`): `crawler_position: end`, the flat blocks first (no skips), then the
  crawler at the top; 0 crawler layers is its flat control.
- the production cadence trainer: `crawler_mode: deliberate` (see `Deliberation`).

`unused_value_embed_dim > 0` adds the seed's value embedding (`ve_shared`, `ve_layer_scales`): built, exported,
never used in the forward pass (its layer list named blocks the crawler does not have). It exists so that a
seed-exact artifact carries the same bytes; it is initialized from its own generator, so adding it changes no
other tensor's initial values.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from clowncar.config_model import ModelConfig
from clowncar.model.deltanet import DeltaNet
from clowncar.model.layers import Block, CastedLinear, TiedLM, ValueEmbedding, init_normal


def fixed_loop_offsets(loops: int, dim: int) -> Tensor:
    """`[loops, dim]` orthogonal rows of norm 0.01 from a fixed generator: the same in every process."""
    g = torch.Generator(device="cpu").manual_seed(0x10_0905)
    raw = torch.randn(dim, loops, generator=g, device="cpu")
    q, _ = torch.linalg.qr(raw)  # needs loops <= dim, which any usable width satisfies
    return (q.T[:loops] * 0.01).contiguous()


def drawn_loop_offsets(rows: int, dim: int) -> Tensor:
    """`[rows, dim]` orthogonal rows of norm 0.01 drawn from the global RNG (the trial seed): the start of
    trained offsets. Drawn as the seed's trainers did: QR of a Gaussian matrix."""
    q, _ = torch.linalg.qr(torch.randn(dim, rows))
    return (q.T * 0.01).contiguous()


class Deliberation(nn.Module):
    """The seed's production crawler with two loops fired in parallel (train_gpt_diag_ts_polar.py).

    C-step: f_k = crawler(x + offset_k) for k = 0, 1 from the same x; g1 = sigmoid(W [f0; f1]) merges them,
    c = g1 f0 + (1 - g1) f1; g2 = sigmoid(W [c; r]) pulls c toward the learned consensus r,
    rho = g2 c + (1 - g2) r; the output is f1 + s (rho - f1). N-step: f = crawler(x + offset_0),
    g = sigmoid(W [f; r]), output f + s (g f + (1 - g) r - f). One bias-free W (2d -> d) serves every gate;
    r and the scalar s start at zero, so at init the output is f1 (C) or f (N)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.delib_gate = CastedLinear(2 * dim, dim, bias=False)
        self.consensus_ref = nn.Parameter(torch.zeros(1, 1, dim, dtype=torch.float32))
        self.delib_scale = nn.Parameter(torch.zeros((), dtype=torch.float32))

    def _gate(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.sigmoid(self.delib_gate(torch.cat((a, b), dim=-1)))

    def forward(self, fired: list[Tensor]) -> Tensor:
        last = fired[-1]
        r = self.consensus_ref.to(last.dtype).expand_as(last)
        if len(fired) == 2:
            g1 = self._gate(fired[0], fired[1])
            merged = g1 * fired[0] + (1 - g1) * fired[1]
        else:
            merged = last
        g2 = self._gate(merged, r)
        rho = g2 * merged + (1 - g2) * r
        return last + self.delib_scale.to(last.dtype) * (rho - last)


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
        # With the crawler at the end there is no decoder half: every flat block is an "encoder" block.
        at_end = cfg.crawler_position == "end"
        self.num_encoder_layers = cfg.num_flat_layers if at_end else cfg.num_flat_layers // 2
        self.num_decoder_layers = cfg.num_flat_layers - self.num_encoder_layers
        num_skips = min(self.num_encoder_layers, self.num_decoder_layers)
        # No empty parameter when there is nothing to skip over (a single flat layer, none, or crawler at the end).
        self.skip_weights = (nn.Parameter(torch.ones(num_skips, model_dim, dtype=torch.float32))
                             if num_skips else None)
        self.weight_init = cfg.weight_init

        def block(mlp_mult: float, layer_idx: int, xsa: bool) -> Block:
            return Block(model_dim, cfg.num_heads, cfg.num_kv_heads, mlp_mult, cfg.qk_gain_init,
                         layer_idx=layer_idx, ln_scale=cfg.ln_scale, xsa=xsa, attn_backend=cfg.attn_backend,
                         resid_mix=cfg.resid_mix, q_gain=cfg.q_gain)

        # Layer indices (for ln_scale) follow the seed: flat blocks 0..F-1, then the crawler blocks F, F+1, ...
        self.flat_blocks = nn.ModuleList([block(cfg.mlp_mult, i, cfg.xsa == "all")
                                          for i in range(cfg.num_flat_layers)])
        self.crawler_blocks = nn.ModuleList([block(cfg.crawler_mlp_mult, cfg.num_flat_layers + i, cfg.xsa != "off")
                                             for i in range(cfg.num_crawler_layers)])
        self.loop_inst_proj: CastedLinear | None = None
        self.loop_inst_up: nn.ModuleList | None = None
        self.loop_pos: Tensor | None
        crawls = cfg.num_crawler_layers > 0
        # The row an N-step adds: the first, or (learned_n_row) one of its own after the loops' rows.
        self.n_row = cfg.crawler_loops if cfg.loop_offsets == "learned_n_row" else 0
        if crawls and cfg.loop_offsets != "fixed":
            rows = cfg.crawler_loops + (cfg.loop_offsets == "learned_n_row")
            self.loop_pos = nn.Parameter(torch.zeros(rows, model_dim, dtype=torch.float32))
        elif crawls and cfg.crawler_loops > 1 and cfg.inst_dim > 0:
            self.loop_inst_proj = CastedLinear(model_dim, cfg.inst_dim, bias=False)
            self.loop_inst_up = nn.ModuleList([CastedLinear(cfg.inst_dim, model_dim, bias=False)
                                               for _ in range(cfg.crawler_loops)])
            self.register_buffer("loop_pos", None)
        elif crawls and cfg.crawler_loops > 1:
            # Derived from a fixed seed, so it need not be stored in checkpoints or artifacts.
            self.register_buffer("loop_pos", fixed_loop_offsets(cfg.crawler_loops, model_dim), persistent=False)
        else:
            self.register_buffer("loop_pos", None)
        self.deliberation = Deliberation(model_dim) if cfg.crawler_mode == "deliberate" else None
        kv_dim = cfg.num_kv_heads * (model_dim // cfg.num_heads)
        self.value_embed = (ValueEmbedding(cfg.vocab_size, cfg.value_embed_dim, kv_dim)
                            if cfg.value_embed_dim and crawls else None)
        self.value_embed_scales = (nn.Parameter(torch.ones(cfg.num_crawler_layers, dtype=torch.float32))
                                   if self.value_embed is not None else None)
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
        # `weight_init: normal` is the seed's small trainers' instead (see `init_normal`).
        if self.tok_emb.weight.is_meta:
            return
        nn.init.normal_(self.tok_emb.weight, std=self.tied_embed_init_std)
        if self.weight_init == "normal":
            init_normal(self)
        else:
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
        if isinstance(self.loop_pos, nn.Parameter):
            self.loop_pos.copy_(drawn_loop_offsets(self.loop_pos.size(0), self.loop_pos.size(1)))

    def _loop_input(self, x: Tensor, loop: int) -> Tensor:
        if self.loop_inst_proj is not None and self.loop_inst_up is not None:
            return x + self.loop_inst_up[loop](self.loop_inst_proj(x))
        if self.loop_pos is not None:
            return x + self.loop_pos[loop].to(x.dtype)
        return x

    def _fire(self, x: Tensor, x0: Tensor, cos: Tensor, sin: Tensor, ve: Tensor | None) -> Tensor:
        """One pass through the shared blocks (and DeltaNet)."""
        for i, block in enumerate(self.crawler_blocks):
            extra = None
            if ve is not None and self.value_embed_scales is not None:
                extra = self.value_embed_scales[i].to(ve.dtype) * ve
            x = block(x, x0, cos, sin, extra)
        if self.delta_net is not None:
            x = self.delta_net(x)  # a fresh zero state every loop: no cross-loop carry, stays causal
        return x

    def _crawl(self, x: Tensor, x0: Tensor, cos: Tensor, sin: Tensor, crawl: bool,
               ve: Tensor | None = None) -> Tensor:
        if not len(self.crawler_blocks):
            return x
        if self.deliberation is not None:
            rows = range(self.crawler_loops) if crawl else (self.n_row,)
            return self.deliberation([self._fire(self._loop_input(x, k), x0, cos, sin, ve) for k in rows])
        for loop in (range(self.crawler_loops) if crawl else (self.n_row,)):
            x = self._fire(self._loop_input(x, loop), x0, cos, sin, ve)
        return x

    def forward(self, input_ids: Tensor, target_ids: Tensor | None = None, crawl: bool = True) -> Tensor:
        """`crawl=True` is a C-step (all loops); `crawl=False` an N-step (the shared blocks once)."""
        x = x0 = self.embed(input_ids)
        cos, sin = self.rotary(input_ids.size(1), input_ids.device)
        ve = self.value_embed(input_ids) if self.value_embed is not None else None
        skips: list[Tensor] = []
        for block in self.flat_blocks[: self.num_encoder_layers]:
            x = block(x, x0, cos, sin)
            skips.append(x)
        x = self._crawl(x, x0, cos, sin, crawl, ve)
        for i, block in enumerate(self.flat_blocks[self.num_encoder_layers:]):
            if skips and self.skip_weights is not None:
                x = x + self.skip_weights[i].to(x.dtype) * skips.pop()
            x = block(x, x0, cos, sin)
        return self.head(x, target_ids)
