"""The `model` section of the trial config: the architecture (GPT baseline or crawler), its widths and depths, its
embeddings, and the seed's model switches (docs/fidelity.md), each with its default. `TrialConfig`
(`clowncar.config`) holds it as `model` and checks the shapes that must agree for a model to be built (head and
rotary widths, the crawler modes' needs)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from clowncar.config_section import Section


class ModelConfig(Section):
    arch: Literal["gpt", "crawler"] = "crawler"
    vocab_size: int = Field(1024, ge=2, le=65536)
    model_dim: int | Literal["auto"] = 512
    """Width; `auto` picks the widest legal width whose parameter count fits `param_budget`."""
    param_budget: int = Field(0, ge=0)
    num_heads: int = Field(8, ge=1)
    num_kv_heads: int = Field(4, ge=1)
    # GPT baseline depth
    num_layers: int = Field(9, ge=1)
    # Crawler layout: flat encoder half, shared crawler blocks looped, flat decoder half
    num_flat_layers: int = Field(4, ge=0)
    num_crawler_layers: int = Field(1, ge=0)
    """Shared crawler blocks; 0 leaves only the flat blocks (the seed's 6-flat control)."""
    crawler_loops: int = Field(4, ge=1)
    inst_dim: int = Field(32, ge=0)
    """Flow instructions: width of the shared down-projection; 0 uses fixed per-loop offsets."""
    mlp_mult: float = Field(2.0, gt=0)
    crawler_mlp_mult: float = Field(4.0, gt=0)
    rope_dims: int = Field(0, ge=0)
    """Rotary dims per head; 0 rotates the whole head."""
    rope_base: float = Field(10000.0, gt=0)
    rope_ntk_above: int = Field(0, ge=0)
    """If > 0, use an NTK-scaled rotary base for sequences longer than this (the seed used 1024)."""
    qk_gain_init: float = 1.5
    logit_softcap: float = Field(30.0, ge=0)
    tied_embed_init_std: float = Field(0.005, gt=0)
    bigram_vocab_size: int = Field(0, ge=0)
    """Buckets of the bigram-hash embedding; 0 disables it."""
    bigram_dim: int = Field(128, ge=1)
    smear_gate: bool = False
    ln_scale: bool = False
    """Scale each block's normed input by 1/sqrt(layer_index + 1)."""
    xsa: Literal["off", "crawler", "all"] = "off"
    delta_net_heads: int = Field(0, ge=0)
    delta_net_conv: int = Field(4, ge=1)
    delta_net_chunk: int = Field(32, ge=1)
    """Chunk length of the PyTorch delta rule (FLA on CUDA picks its own). Any length gives the same function;
    32 is the fastest on CPU (benchmarks/bench_deltanet.py --chunk)."""
    attn_backend: Literal["auto", "sdpa", "flash"] = "auto"
    deltanet_backend: Literal["auto", "torch", "fla"] = "auto"
    # -- the parts of the seed's sweep trainers (reference/seed_facts.md section 9) -----------------------------
    crawler_position: Literal["middle", "end"] = "middle"
    """`middle`: flat encoder half, crawler, flat decoder half with U-Net skips (ClownCar). `end`: every flat
    block once, then the crawler at the top of the stack, no skips (the seed's micro-crawler)."""
    crawler_mode: Literal["loop", "deliberate"] = "loop"
    """`loop`: the crawler blocks run crawler_loops times in sequence. `deliberate` (the seed's production
    cadence trainer): a C-step fires them twice in parallel from the same input and a learned gate merges the
    two with a learned consensus vector; an N-step fires once and gates against the consensus. Needs
    crawler_loops = 2 and inst_dim = 0."""
    loop_offsets: Literal["fixed", "learned", "learned_n_row"] = "fixed"
    """With inst_dim = 0, the vector added before each loop. `fixed`: untrained orthogonal rows of norm 0.01,
    an N-step adds the first. `learned`: the same rows drawn from the trial seed and trained. `learned_n_row`:
    one more trained row, which an N-step adds instead (the seed's fractal and micro-crawler trainers)."""
    resid_mix: bool = True
    """Each block mixes its input with the embedding stream x0 (learned, init (1, 0)); the seed's small
    trainers have no such mix."""
    q_gain: bool = True
    """A learned per-head query gain (init qk_gain_init); the seed's small trainers have none."""
    weight_init: Literal["auto", "normal"] = "auto"
    """`auto`: the architecture's own (GPT: PyTorch defaults; crawler: orthogonal). `normal`: N(0, 0.02) for
    q, k, v and the MLP input, PyTorch defaults for other matrices (the seed's small trainers). Output
    projections start at zero either way."""
    trigram_vocab_size: int = Field(0, ge=0)
    """Buckets of the trigram-hash embedding (hash of the token and the two before it); 0 disables it."""
    trigram_dim: int = Field(128, ge=1)
    trigram_zero_init: bool = False
    """Start the trigram projection at zero as well as its table. Both zero means no gradient ever reaches
    either: the path stays dead, as in the seed's micro-crawler trainer. Off: the projection is random and the
    trigram learns."""
    value_embed_dim: int = Field(0, ge=0)
    """A shared token embedding of this width, projected to the value width and added to the attention values
    of every crawler block with a learned per-block scale (the seed's VE, live on its crawler blocks in the
    production cadence trainer); 0 disables it."""
    param_budget_counts: Literal["all", "blocks"] = "all"
    """What `model_dim: auto` counts against param_budget: every parameter, or (`blocks`) the token embedding
    and the blocks only, as the seed's small trainers estimated it (hash embeddings, loop offsets, skips and
    gates left out)."""
    param_dtype: Literal["fp32", "bf16"] = "fp32"
    """bf16 stores the model as the seed's `.bfloat16()` build did: embeddings, untrained matrices and other
    tensors of 2+ dims in bf16; 1-D and control tensors (resid_mix, skip weights) and the matrices Muon
    updates stay fp32 (their master copies; they are cast to the activation dtype where they are used)."""
    # Seed-exact switches: the other value reproduces what the seed computed (docs/fidelity.md says why ours
    # is the default and what flipping each one measured).
    softcap_dtype: Literal["fp32", "activation"] = "fp32"
    """`activation` soft-caps the logits in the activation dtype (bf16 under autocast) before the fp32
    cross-entropy, as the seed did; fp32 casts first."""
    rope_table_dtype: Literal["fp32", "bf16"] = "fp32"
    """`bf16` computes rotary positions and frequencies in bf16 when no NTK scaling applies, as the seed's
    bf16-cast frequency buffer did (positions above 256 are rounded)."""
    unused_value_embed_dim: int = Field(0, ge=0)
    """> 0 builds the seed's value embedding (vocab x this table, projection to the KV width, two layer
    scales) that is exported but never used in the forward pass: it only adds artifact bytes. Seed: 128."""
    delta_net_conv_silu: bool = True
    """SiLU after the DeltaNet short convolutions (the canonical layer); the seed's ClownCar_II had none."""
    delta_net_head_norm: bool = True
    """Per-head RMS norm of the DeltaNet read-out; the seed's ClownCar_II had none."""
    delta_net_out_norm: bool = False
    """RMS-norm the residual stream after the DeltaNet (`norm(x + o_proj(y))`), as the seed's ClownCar_II did."""
    delta_net_o_init: Literal["zero", "orthogonal"] = "zero"
    """`orthogonal`: the seed meant o_proj to start at zero but its generic init overwrote it with an orthogonal
    matrix (when both sides are >= 64)."""

    @field_validator("bigram_vocab_size", "trigram_vocab_size")
    @classmethod
    def _off_or_two_buckets(cls, value: int) -> int:
        # The hash takes ids modulo (buckets - 1) and keeps the last bucket for position 0: a single bucket
        # divides by zero inside the trial.
        if value == 1:
            raise ValueError("must be 0 (off) or at least 2: the hash keeps one bucket for the first position "
                             "and spreads the rest over buckets - 1")
        return value

    @model_validator(mode="after")
    def _every_mlp_has_a_hidden_unit(self) -> ModelConfig:
        # An MLP is int(mult x width) wide; 0 builds an empty matrix that fails in the first forward pass.
        # `auto` is resolved later (clowncar.model.build) to a multiple of 2 x num_heads, never less than that.
        width = self.model_dim if self.model_dim != "auto" else 2 * self.num_heads
        if width < 1:
            return self  # TrialConfig says what is wrong with the width itself
        for key, mult in self._mlp_mults():
            if int(mult * width) < 1:
                where = (f"model.model_dim ({width})" if self.model_dim != "auto" else
                         f"the narrowest width model_dim: auto can pick ({width} = 2 x model.num_heads)")
                raise ValueError(f"model.{key} ({mult}) leaves the MLP without a hidden unit at {where}: "
                                 f"int({mult} x {width}) = 0")
        return self

    def _mlp_mults(self) -> list[tuple[str, float]]:
        """The MLP multipliers the model builds blocks with: the flat blocks' (every GPT block), the crawler's."""
        if self.arch == "gpt":
            return [("mlp_mult", self.mlp_mult)]
        return ([("mlp_mult", self.mlp_mult)] * (self.num_flat_layers > 0)
                + [("crawler_mlp_mult", self.crawler_mlp_mult)] * (self.num_crawler_layers > 0))
