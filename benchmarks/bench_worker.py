"""Worker benchmarks: training throughput of real trials, and eval throughput non-overlapping vs sliding.

    PYTHONPATH=$PWD python benchmarks/bench_worker.py                 # CPU: tiny-cpu and a mid-sized config
    PYTHONPATH=$PWD python benchmarks/bench_worker.py --device cuda   # + the `clowncar` preset, seq 2048, compiled

Trials run through `clowncar.worker.run.run_trial` (the code a user runs) on shards of uniformly random tokens
written to a temporary directory (throughput does not depend on the text), with a tokenizer trained on this
repository's own source files for the byte tables. Step times are medians over the steps after the first two
(the first steps pay for allocation, and with compile for the graphs: compile warm-up is outside training
time). The eval rows score the same validation tokens with the same model with stride 0 and with a sliding
stride: the sliding pass runs seq_len/stride times as many token positions through the model, so its time
ratio should be close to seq_len/stride (the target is no worse than 1.2x that).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

TINY = ["train.iterations=30", "train.max_wallclock_seconds=0", "train.probe_every=0",
        "eval.stride=0", "eval.max_tokens=4096", "quant.enabled=false"]
MID = ["model.model_dim=192", "model.num_heads=6", "model.num_kv_heads=3", "model.num_flat_layers=4",
       "model.crawler_loops=3", "model.inst_dim=16", "model.bigram_vocab_size=1024", "model.bigram_dim=64",
       "model.mlp_mult=3", "model.crawler_mlp_mult=4", "train.train_seq_len=256", "train.train_batch_tokens=4096",
       "train.grad_accum=2", "train.iterations=8", "train.max_wallclock_seconds=0", "train.probe_every=0",
       "eval.stride=0", "eval.max_tokens=4096", "quant.enabled=false"]
CLOWNCAR = ["train.iterations=20", "train.max_wallclock_seconds=0", "train.warmup_steps=3",
            "eval.max_tokens=65536", "eval.stride=0", "quant.enabled=false"]


def make_dataset(root: Path, vocab: int = 1024, train_tokens: int = 4_000_000, val_tokens: int = 300_000,
                 seed: int = 0) -> tuple[Path, Path]:
    """Random-token shards plus a tokenizer trained on this repository's Python and Markdown files."""
    from clowncar.data.shards import shard_name, write_shard
    from clowncar.data.tokenizer import train_tokenizer

    texts = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(REPO.rglob("*.py"))
             + sorted(REPO.rglob("*.md")) if ".venv" not in p.parts]
    train_tokenizer(texts, vocab, root / "tokenizer", num_threads=4)
    rng = np.random.default_rng(seed)
    data = root / "shards"
    data.mkdir()
    write_shard(data / shard_name("train", 0), rng.integers(0, vocab, train_tokens, dtype=np.uint16))
    write_shard(data / shard_name("val", 0), rng.integers(0, vocab, val_tokens, dtype=np.uint16))
    return data, root / "tokenizer.model"


def run_bench_trial(preset: str, overrides: list[str], data: Path, tokenizer: Path, out: Path,
                    device: str) -> dict[str, Any]:
    from clowncar.config_load import load_config
    from clowncar.worker.run import run_trial

    cfg = load_config(preset=preset, overrides=[f"data.dataset={data}", f"data.tokenizer={tokenizer}",
                                                f"train.device={device}", "train.log_every=1", *overrides])
    code = run_trial(cfg, out)
    result = json.loads((out / "result.json").read_text())
    if code:
        raise SystemExit(f"{preset} trial failed: {result['status']}: {result['reason']}")
    steps = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    elapsed = [e["elapsed_ms"] for e in steps if e["event"] == "step"]
    step_ms = statistics.median(np.diff(elapsed)[1:]) if len(elapsed) > 3 else elapsed[-1] / len(elapsed)
    return {"cfg": cfg, "result": result, "step_ms": step_ms,
            "tok_s": cfg.train.train_batch_tokens / (step_ms / 1000)}


def bench_eval(preset: str, overrides: list[str], data: Path, tokenizer: Path, stride: int, device: str,
               reps: int, compile_model: bool = False) -> tuple[float, float, int]:
    """Seconds per pass (min over reps) without and with a sliding stride, and the tokens scored."""
    from clowncar.config_load import load_config
    from clowncar.data.bpb import build_byte_luts
    from clowncar.data.stream import load_validation_tokens
    from clowncar.data.tokenizer import load_tokenizer
    from clowncar.model import build_model
    from clowncar.worker.evaluate import evaluate_bpb

    cfg = load_config(preset=preset, overrides=[f"data.dataset={data}", f"data.tokenizer={tokenizer}",
                                                *overrides])
    luts = build_byte_luts(load_tokenizer(tokenizer), cfg.model.vocab_size)
    tokens = load_validation_tokens(sorted(data.glob("fineweb_val_*.bin")), cfg.eval_seq_len, cfg.eval.max_tokens)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    if compile_model:
        model = torch.compile(model)  # the first rep of each stride pays for compiling: the minimum skips it
    times = {0: float("inf"), stride: float("inf")}
    for _ in range(reps):  # interleaved, best of reps: a busy machine slows both alike
        for s in (0, stride):
            t0 = time.perf_counter()
            res = evaluate_bpb(model, tokens, luts, cfg.eval_seq_len, s, cfg.eval.batch_tokens, device=device)
            if device == "cuda":
                torch.cuda.synchronize()
            times[s] = min(times[s], time.perf_counter() - t0)
    return times[0], times[stride], res["tokens_scored"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = as the worker picks)")
    parser.add_argument("--skip-cpu", action="store_true", help="with --device cuda: only the GPU rows")
    args = parser.parse_args()
    if args.threads:
        import os

        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    rows: list[tuple[str, str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data, tokenizer = make_dataset(root)
        if not args.skip_cpu:
            for name, preset, ov in (("tiny-cpu", "tiny-cpu", TINY), ("mid-cpu", "tiny-cpu", MID)):
                r = run_bench_trial(preset, ov, data, tokenizer, root / name, "cpu")
                t = r["cfg"].train
                rows.append((f"train {name}", f"{r['result']['params']:,} params, seq {t.train_seq_len}, "
                             f"{t.train_batch_tokens} tok/step", f"{r['step_ms']:.1f} ms/step",
                             f"{r['tok_s']:,.0f} tok/s", f"peak RSS {r['result']['peak_mem_bytes'] / 2**20:,.0f} MiB"))
            for name, ov, stride in (("tiny-cpu", ["eval.max_tokens=16384"], 32),
                                     ("mid-cpu", [*MID, "eval.max_tokens=8192", "eval.batch_tokens=4096"], 64)):
                plain, sliding, n = bench_eval("tiny-cpu", ov, data, tokenizer, stride, "cpu", reps=3)
                seq = 128 if name == "tiny-cpu" else 256
                rows.append((f"eval {name}", f"seq {seq}, stride {stride}, {n:,} targets",
                             f"{n / plain:,.0f} tok/s plain", f"{n / sliding:,.0f} tok/s sliding",
                             f"time ratio {sliding / plain:.2f} (ideal {seq / stride:.0f})"))
        if args.device == "cuda":
            r = run_bench_trial("clowncar", CLOWNCAR, data, tokenizer, root / "clowncar", "cuda")
            t, res = r["cfg"].train, r["result"]
            rows.append(("train clowncar (1 GPU, compile)",
                         f"{res['params']:,} params, seq {t.train_seq_len}, {t.train_batch_tokens} tok/step",
                         f"{r['step_ms']:.1f} ms/step", f"{r['tok_s']:,.0f} tok/s",
                         f"peak {res['peak_mem_bytes'] / 2**30:.1f} GiB, {torch.cuda.get_device_name()}"))
            plain, sliding, n = bench_eval("clowncar", ["eval.max_tokens=262144"], data, tokenizer, 64, "cuda",
                                           reps=3, compile_model=True)
            rows.append(("eval clowncar (1 GPU, compile, bf16)", f"seq 2048, stride 64, {n:,} targets",
                         f"{n / plain:,.0f} tok/s plain", f"{n / sliding:,.0f} tok/s sliding",
                         f"time ratio {sliding / plain:.2f} (ideal 32)"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, python {sys.version.split()[0]}")
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"reproduce: PYTHONPATH=$PWD python benchmarks/bench_worker.py --device {args.device}")


if __name__ == "__main__":
    main()
