"""The measured effect of each seed-exact switch (docs/fidelity.md) on a tiny CPU trial.

    clowncar data demo                                    # once: the offline demo shards (demo_sp1024)
    PYTHONPATH=. python benchmarks/fidelity.py --json fidelity.json          # every row, ~15-25 min on 2 cores
    PYTHONPATH=. python benchmarks/fidelity.py --rows scale_floor,gptq_feedback

Each row is one trial: a base config with one switch flipped to the seed's value; the two bases are the fixed
`clowncar` preset scaled down to the d64 crawler below (`clowncar-d64`) and the same with our 4-head DeltaNet
(`clowncar-ii-d64`); the last rows flip every switch at once (the `clowncar-seed` and `clowncar-ii-seed`
presets, scaled down the same way). A trial is `python -m clowncar.worker` in its own process with one thread,
no wallclock cap and seed 1337, so every figure is reproducible bit for bit on the same machine and torch build.
Reported: pre-quantization BPB (EMA weights, non-overlapping eval of the first 16,384 validation tokens), BPB
after the artifact round trip, the artifact's file bytes and total bytes (file + counted code), and each one's
change against the row's base.

On a GPU (`--gpu`): one `clowncar` and one `clowncar-seed` trial on the same shards for the same steps, each a
worker process on one GPU with the per-GPU share of the preset's batch (98,304 tokens a step), no wallclock cap
(an iteration warm-down over the last 200 steps instead) and the first 4,194,304 validation tokens scored:
train loss at steps 100 / 500 / 1000, ms per step, peak GPU memory, BPB before and after quantization and the
artifact bytes of both, side by side.

    PYTHONPATH=. python benchmarks/fidelity.py --gpu --data ~/.cache/clowncar/data/datasets/fineweb10B_sp1024 \
        --tokenizer ~/.cache/clowncar/data/tokenizers/fineweb_1024_bpe.model --json fidelity-gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# The `clowncar` preset at d64 for a CPU: same layout (4 flat + 1 crawler x 4, MLP 3x/4x, flow instructions,
# bigram, smear, XSA, ln-scale, partial rotary, GPTQ int6 + int8 crawler), 80 steps of 2,048 tokens at seq 128.
# passthrough_max_numel scales the seed's 65,536 (a quarter of a 512x512 matrix) to a quarter of 64x64, so the
# tiny model's matrices are quantized as the full one's are. The EMA horizon is shortened with the run.
SCALE = [
    "data.dataset=demo_sp1024", "data.tokenizer=demo_1024_bpe.model",
    "model.model_dim=64", "model.num_heads=4", "model.num_kv_heads=2", "model.inst_dim=8",
    "model.bigram_vocab_size=256", "model.bigram_dim=32", "model.delta_net_chunk=32",
    "train.device=cpu", "train.compile=false", "train.iterations=80", "train.max_wallclock_seconds=0",
    "train.train_seq_len=128", "train.train_batch_tokens=2048", "train.grad_accum=2", "train.warmup_steps=0",
    "train.warmdown_iters=20", "train.muon_momentum_warmup_steps=20", "train.ema_decay=0.9", "train.log_every=10",
    "quant.gptq_calib_seqs=16", "quant.gptq_calib_seq_len=128", "quant.passthrough_max_numel=1024",
    "eval.seq_len=128", "eval.stride=0", "eval.batch_tokens=8192", "eval.max_tokens=16384",
]
DELTANET = ["model.delta_net_heads=4"]

# name -> (departure, base preset, base extras, the flip)
ROWS: dict[str, tuple[str, str, list[str], list[str]]] = {
    "flow_untrained": ("flow instructions untrained", "clowncar", [], ["train.train_flow_instructions=false"]),
    "scale_floor": ("scale floors 1/127, 1/31", "clowncar", [], ["quant.scale_floor=true"]),
    "gptq_feedback": ("GPTQ feedback through H^-1", "clowncar", [], ["quant.gptq_feedback=full_inverse"]),
    "passthrough_order": ("small tensors fp16 before control check", "clowncar", [],
                          ["quant.passthrough_order=size_first"]),
    "rtn_clip": ("plain int6: one clip per tensor", "clowncar", [], ["quant.rtn_clip=tensor"]),
    "rtn_clip_int6": ("plain int6: one clip per tensor (flat_scheme int6)", "clowncar", ["quant.flat_scheme=int6"],
                      ["quant.rtn_clip=tensor"]),
    "quantile_impl": ("torch.quantile, q = 99.99984/100", "clowncar", [], ["quant.quantile_impl=torch"]),
    "scale_rounding": ("round against fp32 scales", "clowncar", [], ["quant.scale_rounding=fp32"]),
    "param_dtype": ("bf16 parameters", "clowncar", [], ["model.param_dtype=bf16"]),
    "softcap_dtype": ("bf16 soft-cap (on a bf16 model)", "clowncar", ["model.param_dtype=bf16"],
                      ["model.softcap_dtype=activation"]),
    "rope_table_dtype": ("bf16 rotary tables below 1024 tokens", "clowncar", [], ["model.rope_table_dtype=bf16"]),
    "unused_value_embed": ("unused value embedding kept", "clowncar", [], ["model.unused_value_embed_dim=128"]),
    "code_bytes": ("code bytes: eval path only (ours before)", "clowncar", [], ["quant.code_bytes=eval_path"]),
    "dn_conv_silu": ("DeltaNet: no SiLU after the conv", "clowncar", DELTANET, ["model.delta_net_conv_silu=false"]),
    "dn_head_norm": ("DeltaNet: no per-head norm", "clowncar", DELTANET, ["model.delta_net_head_norm=false"]),
    "dn_out_norm": ("DeltaNet: RMSNorm(x + o_proj(y))", "clowncar", DELTANET, ["model.delta_net_out_norm=true"]),
    "dn_o_init": ("DeltaNet: orthogonal o_proj", "clowncar", DELTANET, ["model.delta_net_o_init=orthogonal"]),
    "dn_untrained": ("DeltaNet untrained", "clowncar", DELTANET, ["train.train_delta_net=false"]),
    "dn_int8": ("DeltaNet q/k/v/o int8", "clowncar", DELTANET, ["quant.delta_net_scheme=int8"]),
    "clowncar_seed": ("everything: clowncar-seed", "clowncar", [], ["preset=clowncar-seed"]),
    "clowncar_ii_seed": ("everything: clowncar-ii-seed", "clowncar", DELTANET, ["preset=clowncar-ii-seed"]),
}
METRICS = ("val_bpb", "q_val_bpb", "artifact_file_bytes", "artifact_bytes")


GPU_STEPS = 1000
GPU = ["train.device=cuda", f"train.iterations={GPU_STEPS}", "train.max_wallclock_seconds=0",
       "train.train_batch_tokens=98304", "train.grad_accum=1", "train.warmdown_iters=200", "train.log_every=50",
       "eval.stride=0", "eval.max_tokens=4194304"]
GPU_LOSS_STEPS = (100, 500, 1000)


def run_trial(preset: str, overrides: list[str], out: Path) -> dict[str, Any]:
    args = [a for o in overrides for a in ("--set", o)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    config = out.parent / "empty.yaml"
    config.write_text("{}\n")
    proc = subprocess.run([sys.executable, "-m", "clowncar.worker", str(config), "--preset", preset,
                           "--out", str(out), *args], capture_output=True, text=True, env=env)
    result = json.loads((out / "result.json").read_text()) if (out / "result.json").is_file() else {}
    if proc.returncode or result.get("status") != "ok":
        raise SystemExit(f"trial {out.name} failed ({proc.returncode}): {result.get('reason') or proc.stderr[-800:]}")
    losses = {}
    for line in (out / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "step":
            losses[event["step"]] = event["train_loss"]
    return {**{k: result[k] for k in METRICS}, "steps": result["steps"], "train_seconds": result["train_seconds"],
            "peak_mem_bytes": result["peak_mem_bytes"], "train_loss": losses}


def gpu_comparison(data: Path, tokenizer: Path, extra: list[str], work: Path) -> dict[str, Any]:
    """`clowncar` and `clowncar-seed` on one GPU, same shards and steps; prints the side-by-side table."""
    common = [f"data.dataset={data}", f"data.tokenizer={tokenizer}", *GPU, *extra]
    runs = {preset: run_trial(preset, common, work / preset) for preset in ("clowncar", "clowncar-seed")}
    print("| figure | " + " | ".join(runs) + " |")
    print("| --- | --- | --- |")
    for step in GPU_LOSS_STEPS:
        print(f"| train loss, step {step} | " + " | ".join(
            f"{r['train_loss'][step]:.4f}" if step in r["train_loss"] else "-" for r in runs.values()) + " |")
    rows = [("ms / step", lambda r: f"{1000 * r['train_seconds'] / r['steps']:.1f}"),
            ("peak GPU memory (GiB)", lambda r: f"{r['peak_mem_bytes'] / 2**30:.2f}"),
            ("BPB before quant", lambda r: f"{r['val_bpb']:.4f}"), ("BPB after quant", lambda r: f"{r['q_val_bpb']:.4f}"),
            ("artifact bytes", lambda r: f"{r['artifact_bytes']:,}")]
    for label, cell in rows:
        print(f"| {label} | " + " | ".join(cell(r) for r in runs.values()) + " |")
    return runs


def trial_spec(base: str, extras: list[str], flip: list[str]) -> tuple[str, list[str]]:
    """(preset, overrides): a `preset=NAME` flip swaps the preset and keeps the base's extras (the DeltaNet)."""
    preset = next((f.split("=", 1)[1] for f in flip if f.startswith("preset=")), base)
    return preset, [*SCALE, *extras, *(f for f in flip if not f.startswith("preset="))]


def fmt_delta(value: float, base: float, bytes_: bool) -> str:
    d = value - base
    return f"{value:,} ({d:+,})" if bytes_ else f"{value:.4f} ({d:+.4f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="all", help=f"comma-separated subset of: {', '.join(ROWS)}")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--out", type=Path, help="keep the trial directories here (default: a temp dir)")
    parser.add_argument("--gpu", action="store_true", help="the GPU comparison of clowncar and clowncar-seed")
    parser.add_argument("--data", type=Path, help="--gpu: the shard directory (e.g. fineweb10B_sp1024)")
    parser.add_argument("--tokenizer", type=Path, help="--gpu: the SentencePiece model of those shards")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra override for every trial (train.seed=42: another seed; with --gpu, "
                             "train.device=cpu for a dry run)")
    args = parser.parse_args(argv)
    work = args.out or Path(tempfile.mkdtemp(prefix="fidelity-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.gpu:
        if args.data is None or args.tokenizer is None:
            parser.error("--gpu needs --data and --tokenizer")
        runs = gpu_comparison(args.data, args.tokenizer, args.set, work)
        if args.json:
            args.json.write_text(json.dumps(runs, indent=2) + "\n")
        return 0
    names = list(ROWS) if args.rows == "all" else args.rows.split(",")
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        parser.error(f"unknown rows: {', '.join(unknown)}")
    bases: dict[tuple[str, ...], dict[str, Any]] = {}
    figures: dict[str, Any] = {}
    print("| row | departure | BPB before quant | BPB after quant | file bytes | artifact bytes |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in names:
        title, base, extras, flip = ROWS[name]
        key = (base, *extras)
        if key not in bases:
            label = "clowncar-ii-d64" if extras == DELTANET else "+".join(["clowncar-d64", *extras])
            bases[key] = run_trial(base, [*SCALE, *extras, *args.set], work / f"base-{len(bases)}")
            b = bases[key]
            print(f"| base | {label} | {b['val_bpb']:.4f} | {b['q_val_bpb']:.4f} | {b['artifact_file_bytes']:,} "
                  f"| {b['artifact_bytes']:,} |", flush=True)
            figures[f"base:{label}"] = {m: b[m] for m in METRICS}
        preset, overrides = trial_spec(base, extras, flip)
        r = run_trial(preset, [*overrides, *args.set], work / name)
        b = bases[key]
        figures[name] = {**{m: r[m] for m in METRICS}, "base": {m: b[m] for m in METRICS}, "flip": flip}
        print(f"| {name} | {title} | " + " | ".join(fmt_delta(r[m], b[m], m.endswith("bytes")) for m in METRICS)
              + " |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
