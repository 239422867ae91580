"""The typed trial config: the one place where every model, training, quantization and eval default lives (the
model section's in `clowncar.config_model`, beside the base every section shares in `clowncar.config_section`).

A trial is fully described by a `TrialConfig` (sections data / model / train / quant / eval). Configs come
from a named preset, a YAML or JSON file and dotted overrides (`model.crawler_loops=3`), in that order.
Unknown keys and shapes that cannot work are rejected with a one-line `ConfigError` naming the key.
Deployment facts (where data lives, which database) are not here: see `clowncar.settings`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from clowncar.config_model import ModelConfig
from clowncar.config_section import Section
from clowncar.data.paths import glob_problem


class DataConfig(Section):
    dataset: str = "fineweb10B_sp1024"
    """Shard directory: a name under the data root (`CLOWNCAR_DATA_DIR`) `datasets/`, or a path."""
    tokenizer: str = "fineweb_1024_bpe.model"
    """SentencePiece model: a name under the data root `tokenizers/`, or a path."""
    train_glob: str = "fineweb_train_*.bin"
    val_glob: str = "fineweb_val_*.bin"

    @field_validator("dataset", "tokenizer")
    @classmethod
    def _names_something(cls, value: str, info: ValidationInfo) -> str:
        # "" resolves to the datasets (tokenizers) folder itself: the trial would look for shards there
        if not value.strip():
            folder = "datasets" if info.field_name == "dataset" else "tokenizers"
            raise ValueError(f"is empty (an unset shell variable?): name one under the data root's {folder}/, "
                             "or give a path")
        return value

    @field_validator("train_glob", "val_glob")
    @classmethod
    def _glob_inside_the_dataset(cls, value: str) -> str:
        # pathlib raises on these inside the trial (an empty or absolute pattern): refuse them before it starts
        problem = glob_problem(value)
        if problem:
            raise ValueError(f"glob {value!r} {problem}")
        return value


class TrainConfig(Section):
    seed: int = Field(1337, ge=0, le=2**63 - 1)
    """Any non-negative 64-bit integer (the store keeps it as one; torch seeds from it)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    iterations: int = Field(20000, ge=1)
    max_wallclock_seconds: float = Field(600.0, ge=0)
    """Stop training when this much training time has passed (0 = no cap). Eval time is not counted."""
    train_batch_tokens: int = Field(524288, ge=1)
    """Global batch in tokens, independent of the number of processes."""
    train_seq_len: int = Field(1024, ge=2)
    grad_accum: int = Field(8, ge=1)
    """Micro-batches per step summed over all processes; the world size must divide it."""
    warmup_steps: int = Field(20, ge=0)
    """Compile warm-up steps; weights, optimizer state and data are restored after them."""
    lr_warmup_steps: int = Field(0, ge=0)
    warmdown_iters: int = Field(1200, ge=0)
    matrix_lr: float = Field(0.04, ge=0)
    scalar_lr: float = Field(0.04, ge=0)
    tied_embed_lr: float = Field(0.05, ge=0)
    muon_momentum: float = Field(0.95, ge=0, lt=1)
    muon_momentum_warmup_start: float = Field(0.85, ge=0, lt=1)
    muon_momentum_warmup_steps: int = Field(500, ge=0)
    muon_backend_steps: int = Field(5, ge=1)
    muon_wd: float = Field(0.0, ge=0)
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.95, ge=0, lt=1)
    adam_eps: float = Field(1e-8, gt=0)
    adam_wd: float = Field(0.0, ge=0)
    grad_clip_norm: float = Field(0.0, ge=0)
    ema: bool = False
    ema_decay: float = Field(0.997, gt=0, lt=1)
    ema_start_step: int = Field(0, ge=0)
    compile: bool = False
    """torch.compile the model (inductor) for training and evaluation."""
    compile_mode: Literal["default", "reduce-overhead", "max-autotune",
                          "max-autotune-no-cudagraphs"] = "default"
    """torch.compile's mode when `compile` is on. `reduce-overhead` captures each compiled forward and
    backward (every crawler loop of a C- or N-step) in CUDA graphs; `max-autotune` also autotunes kernels,
    `-no-cudagraphs` without the graphs. On CPU there are no CUDA graphs: the two graph modes run as `default`
    and `max-autotune-no-cudagraphs`, the same computation."""
    cadence: int = Field(1, ge=0)
    """Crawler firing: 0 = never crawl (N-steps only), 1 = every step, N = one C-step every N steps."""
    cadence_offset: int = Field(0, ge=0)
    cadence_phased: bool = False
    """Choose the cadence by LR phase (early/main/late) instead of the fixed `cadence`."""
    cadence_early: int = Field(2, ge=0)
    cadence_main: int = Field(4, ge=0)
    cadence_late: int = Field(6, ge=0)
    log_every: int = Field(1, ge=1)
    val_every: int = Field(0, ge=0)
    """Full validation every N steps during training (0 = only at the end)."""
    probe_every: int = Field(0, ge=0)
    """Loss on a fixed held-out batch every N steps, same forward mode each time (0 = off)."""
    probe_seqs: int = Field(8, ge=1)
    reserve_seconds: float = Field(0.0, ge=0)
    """Stop this much before the wallclock cap to leave time for quantization."""
    # -- the optimizer and schedule of the seed's sweep trainers (reference/seed_facts.md section 9) -------------
    optimizer: Literal["muon", "adamw"] = "muon"
    """`muon`: Muon for matrices, AdamW for embeddings and scalars. `adamw`: AdamW for everything (each group
    at its own LR: matrix_lr, tied_embed_lr, scalar_lr), weight decay adam_wd on every parameter of two or
    more dimensions and none on vectors and scalars (the seed's fractal and micro-crawler trainers)."""
    lr_schedule: Literal["warmdown", "cosine"] = "warmdown"
    """`warmdown`: full LR, then a linear warm-down (wallclock- or iteration-driven, see warmdown_iters).
    `cosine`: cosine decay from the end of the LR warm-up to lr_min_ratio at train.iterations; the wallclock
    cap only truncates it (the seed's fractal and micro-crawler trainers)."""
    lr_min_ratio: float = Field(0.0, ge=0, le=1)
    """Floor of the cosine schedule, as a fraction of the LR (the seed: 0.1)."""
    lr_hold_steps: int = Field(0, ge=0)
    """The warm-down does not start before this step, whatever the wallclock says (the seed's production
    cadence trainer: 50)."""
    late_qat_threshold: float = Field(0.0, ge=0, le=1)
    """Once the LR multiplier falls below this in the warm-down (an LR warm-up never counts), train through int6
    fake quantization of every matrix (straight-through, per-row clip at the 99.95th percentile of |w|);
    0 = never (the seed's late QAT)."""
    # Seed-exact switches (docs/fidelity.md).
    train_flow_instructions: bool = True
    """false keeps the flow instructions (`loop_inst_*`) out of every optimizer group, as the seed did: they
    keep their initial values (the up-projections start at zero, so they stay inert)."""
    train_delta_net: bool = True
    """false keeps the DeltaNet layer out of every optimizer group, as the seed's ClownCar_II did."""


SEED_CALIB_SEQ_LEN = 2048
"""The seed's GPTQ calibration length (256 x 2048 tokens) and the default: allowed whatever the trial's lengths."""
MAX_CALIB_TOKENS = 64 * 256 * SEED_CALIB_SEQ_LEN


class QuantConfig(Section):
    enabled: bool = True
    flat_scheme: Literal["int8", "gptq_int6", "gptq_int5", "int6", "int5", "fp16"] = "int8"
    crawler_scheme: Literal["same", "int8", "fp16"] = "same"
    """`int8` is the seed's CRAWLER_QUANT_INT8: the shared blocks get per-row int8."""
    embed_scheme: Literal["int8", "fp16"] = "int8"
    passthrough_max_numel: int = Field(65536, ge=0)
    gptq_block_size: int = Field(64, ge=1)
    gptq_damp: float = Field(0.002, ge=0)
    gptq_col_order: Literal["ascending", "descending", "natural"] = "ascending"
    gptq_calib_seqs: int = Field(256, ge=1)
    gptq_calib_seq_len: int = Field(SEED_CALIB_SEQ_LEN, ge=2)
    """At most the longest sequence the trial trains or evaluates on, or SEED_CALIB_SEQ_LEN."""
    compressor: Literal["zstd", "lzma", "zlib"] = "zstd"
    """zstd at `zstd_level` (default), lzma preset 9e, or zlib level 9 (the reference baseline's export)."""
    zstd_level: int = Field(22, ge=1, le=22)
    size_cap_bytes: int = Field(16_000_000, ge=1)
    gptq_loop_aware: bool = False
    """Calibrate the loop-shared GPTQ layers (crawler blocks, DeltaNet, flow instructions) after the other
    layers are quantized, on the quantized model's activations (the seed's LOOP_AWARE_GPTQ)."""
    code_bytes: Literal["challenge", "eval_path"] = "challenge"
    """Code counted in the artifact bytes: `challenge` = every project module a trial imports to train and
    evaluate (the challenge counts the whole training script); `eval_path` = only the modules that rebuild and
    score the model from the artifact."""
    # Seed-exact switches: the seed's quantizer, piece by piece (docs/fidelity.md).
    scale_floor: bool = False
    """Floor every per-row scale at 1/qmax (int8 1/127, int6 1/31), also inside the clip search, as the seed."""
    gptq_feedback: Literal["cholesky", "full_inverse"] = "cholesky"
    """How GPTQ feeds a column's error forward: through the Cholesky factor of H^-1 (GPTQ), or, as the seed,
    through the full inverse H^-1 (with its 1/diag fallback and no special case for dead inputs)."""
    passthrough_order: Literal["control_first", "size_first"] = "control_first"
    """`size_first` stores every float tensor of <= passthrough_max_numel elements as fp16 before the control
    patterns are looked at (the seed), so small control tensors lose their fp32."""
    rtn_clip: Literal["row", "tensor"] = "row"
    """Plain int6/int5 rounding: the clip percentile is chosen per row, or once per tensor (the seed)."""
    quantile_impl: Literal["exact", "torch"] = "exact"
    """Clip quantiles: `exact` interpolates at rank q(n-1) computed in float64; `torch` is torch.quantile's
    arithmetic (rank in float32) with the seed's int8 q = 99.99984/100."""
    scale_rounding: Literal["stored", "fp32"] = "stored"
    """int8 and GPTQ round against the fp16 scale that is stored, or (the seed) against the fp32 scale, which
    is then stored in fp16."""
    delta_net_scheme: Literal["same", "int8", "fp16"] = "same"
    """The DeltaNet projections' scheme: `same` as the other flat tensors, or int8 per row (the seed, where they
    fell in its `other` class)."""


class EvalConfig(Section):
    seq_len: int = Field(0, ge=0)
    """Eval sequence length; 0 uses train.train_seq_len."""
    stride: int = Field(64, ge=0)
    """Sliding-window stride, at most the eval sequence length; 0 or the whole length skips the sliding eval."""
    batch_tokens: int = Field(524288, ge=1)
    """Tokens per eval forward pass summed over processes."""
    max_tokens: int = Field(0, ge=0)
    """Score only the first N validation tokens (0 = the whole split). For quick CPU runs."""


class TrialConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    quant: QuantConfig = Field(default_factory=QuantConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _shapes_that_can_work(self) -> TrialConfig:
        m, t = self.model, self.train
        if m.num_heads % m.num_kv_heads:
            raise ValueError(f"model.num_heads ({m.num_heads}) must be divisible by model.num_kv_heads "
                             f"({m.num_kv_heads})")
        if m.model_dim == "auto":
            if m.param_budget <= 0:
                raise ValueError("model.model_dim is 'auto' but model.param_budget is not set")
        else:
            if m.model_dim < 1 or m.model_dim % m.num_heads:
                raise ValueError(f"model.model_dim ({m.model_dim}) must be a positive multiple of "
                                 f"model.num_heads ({m.num_heads})")
            head_dim = m.model_dim // m.num_heads
            if head_dim % 2:
                raise ValueError(f"head dim {head_dim} (model.model_dim / model.num_heads) must be even for rotary")
            if m.rope_dims > head_dim or m.rope_dims % 2:
                raise ValueError(f"model.rope_dims ({m.rope_dims}) must be even and at most the head dim {head_dim}")
        if m.arch == "gpt" and m.delta_net_heads:
            raise ValueError("model.delta_net_heads needs model.arch = crawler")
        if m.loop_offsets != "fixed" and m.inst_dim:
            raise ValueError(f"model.loop_offsets = {m.loop_offsets} needs model.inst_dim = 0 (flow instructions "
                             "replace the loop offsets)")
        if m.crawler_mode == "deliberate" and (m.crawler_loops != 2 or m.inst_dim or not m.num_crawler_layers):
            raise ValueError("model.crawler_mode = deliberate needs model.crawler_loops = 2, model.inst_dim = 0 "
                             "and at least one crawler layer")
        if t.train_batch_tokens % (t.train_seq_len * t.grad_accum):
            raise ValueError(f"train.train_batch_tokens ({t.train_batch_tokens}) must be a multiple of "
                             f"train.train_seq_len x train.grad_accum ({t.train_seq_len * t.grad_accum})")
        if t.compile_mode != "default" and not t.compile:
            raise ValueError(f"train.compile_mode = {t.compile_mode} needs train.compile = true")
        if 0 < t.max_wallclock_seconds <= t.reserve_seconds:  # the cap would leave no training time: 0 is "no cap"
            raise ValueError(f"train.reserve_seconds ({t.reserve_seconds:g}) must be less than "
                             f"train.max_wallclock_seconds ({t.max_wallclock_seconds:g}), or the cap leaves no "
                             "time to train (max_wallclock_seconds = 0 turns the cap off)")
        if self.eval.stride > self.eval_seq_len:  # the length the windows are cut at, set or train.train_seq_len
            length = (f"eval.seq_len ({self.eval.seq_len})" if self.eval.seq_len else
                      f"the eval sequence length ({self.eval_seq_len}: eval.seq_len 0 uses train.train_seq_len)")
            raise ValueError(f"eval.stride ({self.eval.stride}) must not exceed {length}")
        return self

    @model_validator(mode="after")
    def _seed_switches_that_can_work(self) -> TrialConfig:
        """Seed-exact switches only combine with what the seed had (docs/fidelity.md)."""
        q = self.quant
        seed_quant = [name for name, on in (("scale_floor", q.scale_floor),
                                            ("gptq_feedback", q.gptq_feedback == "full_inverse"),
                                            ("rtn_clip", q.rtn_clip == "tensor"),
                                            ("scale_rounding", q.scale_rounding == "fp32")) if on]
        if seed_quant and q.flat_scheme in ("int5", "gptq_int5"):
            raise ValueError(f"quant.{seed_quant[0]} reproduces the seed's int8/int6 quantizer, which had no "
                             f"int5 (quant.flat_scheme = {q.flat_scheme})")
        if self.model.unused_value_embed_dim and self.model.arch != "crawler":
            raise ValueError("model.unused_value_embed_dim reproduces the seed crawler's unused value embedding "
                             "and needs model.arch = crawler")
        return self

    @model_validator(mode="after")
    def _calibration_no_longer_than_the_trial(self) -> TrialConfig:
        """Attention makes a calibration sequence cost its length squared, and positions past the longest
        sequence the model trains or is scored on never occur when it is evaluated: GPTQ's Hessians would
        describe activations the evaluation never produces, at a cost no other phase pays (100,000 on tiny-cpu
        ran for minutes). The seed's 2048 stays allowed: a default config has calibrated at it from the start."""
        longest = max(self.train.train_seq_len, self.eval_seq_len, SEED_CALIB_SEQ_LEN)
        if self.quant.gptq_calib_seq_len > longest:
            raise ValueError(f"quant.gptq_calib_seq_len ({self.quant.gptq_calib_seq_len}) must be at most {longest}: "
                             f"the longest of train.train_seq_len ({self.train.train_seq_len}), the eval sequence "
                             f"length ({self.eval_seq_len}) and the seed's calibration length {SEED_CALIB_SEQ_LEN}")
        # The calibration stream is held whole as int64 before its batched forward passes: cap it at 64x the
        # seed's 256 x 2048 tokens (256 MiB) so a typo fails here, not as an out-of-memory after the training.
        calib_tokens = self.quant.gptq_calib_seqs * self.quant.gptq_calib_seq_len
        if calib_tokens > MAX_CALIB_TOKENS:
            raise ValueError(f"quant.gptq_calib_seqs x quant.gptq_calib_seq_len = {calib_tokens:,} calibration tokens; "
                             f"at most {MAX_CALIB_TOKENS:,} (64x the seed's 256 x 2048)")
        return self

    # -- derived values ----------------------------------------------------------------------------------------
    @property
    def eval_seq_len(self) -> int:
        return self.eval.seq_len or self.train.train_seq_len

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def content_hash(self) -> str:
        """Stable 16-hex digest of the config's content (key order and formatting do not matter)."""
        return dict_hash(self.to_dict())

    def flat(self) -> dict[str, Any]:
        """The config as dotted keys (`model.crawler_loops`), as the store and sweeps see it."""
        return {f"{s}.{k}": v for s, sec in self.to_dict().items() for k, v in sec.items()}


def dict_hash(data: dict[str, Any]) -> str:
    """`TrialConfig.content_hash()` of a config as stored (`to_dict()`), without validating it: how a stored hash
    is checked against the config stored beside it, whatever fields this version's TrialConfig has."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]

