"""Quantization benchmarks: GPTQ speed on CPU, and compressed artifact bytes per parameter (a sizing table).

    PYTHONPATH=. python benchmarks/bench_quant.py                      # tiny-cpu and mid, about 2-4 minutes
    PYTHONPATH=. python benchmarks/bench_quant.py --models tiny-cpu,mid,clowncar --threads 1

1. GPTQ seconds per million weights on the layer shapes of the `clowncar` preset (d=512), with plain per-row
   rounding timed side by side (same scales), so the ratio is what to read on a busy machine.
2. Artifact file bytes per parameter for each flat scheme (crawler `same`, embeddings int8, small tensors fp16)
   under zstd-22 and lzma, for the `tiny-cpu` preset (also with passthrough_max_numel=1024, since at the default
   65,536 every tiny-cpu matrix is stored fp16), a mid-sized crawler (the `clowncar` preset at d=256) and,
   optionally, the full `clowncar` preset. Weights are Gaussian stand-ins N(0, 1/fan_in) of the model's shapes
   (control vectors keep their init) and GPTQ calibrates on random tokens: this measures sizes and speed, not
   quality. Trained weights have heavier tails, so their percentile-clipped codes sit closer to zero and
   compress somewhat better: read the sizes as an upper bound.
Max params under a cap ~ (cap - code bytes) / (bytes per param).
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from typing import Any

import torch
import zstandard

from clowncar.config import TrialConfig
from clowncar.config_load import load_config
from clowncar.model import build_model, count_params
from clowncar.worker.artifact import code_bytes, pack, serialize
from clowncar.worker.quant import GROUPS, QuantResult, gptq_quantize, quantize_model, quantize_rtn

D = 512
SHAPES = {"attn q/proj": (D, D), "attn k/v": (D // 2, D), "mlp fc (x3)": (3 * D, D),
          "mlp proj (x3)": (D, 3 * D), "crawler fc (x4)": (4 * D, D), "crawler proj (x4)": (D, 4 * D)}
MODELS = {
    "tiny-cpu": ("tiny-cpu", []),
    "tiny-cpu p1024": ("tiny-cpu", ["quant.passthrough_max_numel=1024"]),
    "mid d256": ("clowncar", ["model.model_dim=256"]),
    "clowncar d512": ("clowncar", []),
}


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[f"{c:,}" if isinstance(c, int) else f"{c:.3f}" if isinstance(c, float) else str(c) for c in r]
             for r in rows]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in cells])


def gptq_speed(n_tokens: int) -> list[list[Any]]:
    rows = []
    g = torch.Generator().manual_seed(0)
    for name, (out_f, in_f) in SHAPES.items():
        w = torch.randn(out_f, in_f, generator=g) / in_f ** 0.5
        x = torch.randn(n_tokens, in_f, generator=g) @ (torch.randn(in_f, in_f, generator=g) / in_f ** 0.5)
        h = x.T @ x / n_tokens
        t = time.perf_counter()
        gptq_quantize(w, h, "int6", block_size=64, damp=0.002)
        t_gptq = time.perf_counter() - t
        t = time.perf_counter()
        quantize_rtn(w, "int6")
        t_rtn = time.perf_counter() - t
        mparams = w.numel() / 1e6
        rows.append([name, f"{out_f}x{in_f}", t_gptq / mparams, t_rtn / mparams, t_gptq / t_rtn])
    return rows


def stand_in_model(cfg: TrialConfig) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2 and p.numel() > 1:
                p.normal_(0.0, p.shape[1] ** -0.5)
    return model.eval()


def sizes(label: str, cfg: TrialConfig, schemes: list[str], compressors: list[str],
          calib: int) -> tuple[list[list[Any]], list[list[Any]]]:
    model = stand_in_model(cfg)
    params = count_params(model)
    tokens = torch.randint(cfg.model.vocab_size, (calib, 256), generator=torch.Generator().manual_seed(1))
    rows: list[list[Any]] = []
    groups: list[list[Any]] = []
    for scheme in schemes:
        qcfg = cfg.quant.model_copy(update={"flat_scheme": scheme, "crawler_scheme": "same"})
        t = time.perf_counter()
        result = quantize_model(model, qcfg, tokens)
        t_quant = time.perf_counter() - t
        payload = serialize(result)
        meta = {"config": cfg.to_dict(), "config_hash": cfg.content_hash(), "quant_schemes": result.schemes}
        for comp in compressors:
            t = time.perf_counter()
            n = len(pack(meta, payload, comp, 22))
            t_comp = time.perf_counter() - t
            name = "zstd-22" if comp == "zstd" else "lzma-9e"
            rows.append([label, params, scheme, name, n, n / params, t_quant, t_comp])
        groups += group_sizes(label, scheme, result)
    return rows, groups


def group_sizes(label: str, scheme: str, result: QuantResult) -> list[list[Any]]:
    """Each group compressed on its own with zstd-22: bytes per parameter of int8/int6/int5/fp16 tensors."""
    rows = []
    for group in GROUPS:
        tensors = {n: qt for n, qt in result.tensors.items() if qt.group == group}
        if not tensors:
            continue
        numel = sum(math.prod(qt.shape) for qt in tensors.values())
        n = len(zstandard.ZstdCompressor(level=22).compress(serialize(QuantResult(tensors=tensors))))
        rows.append([label, scheme, group, "+".join(sorted({qt.scheme for qt in tensors.values()})), numel, n,
                     n / numel])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny-cpu,tiny-cpu p1024,mid d256",
                    help=f"comma-separated, from: {', '.join(MODELS)} (short names tiny-cpu, mid, clowncar work)")
    ap.add_argument("--schemes", default="int8,int6,gptq_int6,int5,gptq_int5,fp16")
    ap.add_argument("--compressors", default="zstd,lzma")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 avoids contention on shared hosts)")
    ap.add_argument("--calib-seqs", type=int, default=8, help="random calibration sequences of 256 tokens")
    ap.add_argument("--hessian-tokens", type=int, default=8192)
    ap.add_argument("--skip-speed", action="store_true", help="only the size table")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    alias = {"mid": "mid d256", "clowncar": "clowncar d512"}
    labels = [alias.get(m.strip(), m.strip()) for m in args.models.split(",")]
    print(f"# bench_quant  torch {torch.__version__}  {platform.processor() or platform.machine()}  "
          f"threads {args.threads}  code bytes {code_bytes():,}\n")
    if not args.skip_speed:
        print("## GPTQ int6 on CPU (block 64, damp 0.002, ascending) vs plain rounding, seconds per M weights\n")
        print(table(["layer", "shape", "GPTQ s/M", "rounding s/M", "GPTQ/rounding"], gptq_speed(args.hessian_tokens)))
        print(flush=True)
    print("## Artifact file bytes per parameter (flat and crawler at the scheme, embeddings int8, small fp16)\n")
    rows, groups = [], []
    for label in labels:
        preset, overrides = MODELS[label]
        cfg = load_config(preset=preset, overrides=overrides)
        r, g = sizes(label, cfg, args.schemes.split(","), args.compressors.split(","), args.calib_seqs)
        rows += r
        groups += g
        print(f"  ... {label} done", file=sys.stderr, flush=True)
    print(table(["model", "params", "flat scheme", "compressor", "file bytes", "bytes/param", "quant s",
                 "compress s"], rows))
    print("\n## Per group, compressed alone with zstd-22 (small tensors are the passthrough group)\n")
    print(table(["model", "flat scheme", "group", "stored as", "params", "bytes", "bytes/param"], groups))
    print(f"\nreproduce: PYTHONPATH=. python benchmarks/bench_quant.py --models '{args.models}' "
          f"--schemes {args.schemes} --compressors {args.compressors} --threads {args.threads}"
          + (" --skip-speed" if args.skip_speed else ""))


if __name__ == "__main__":
    main()
