"""benchmarks/gpu_trial.py: its FLOP formula equals PyTorch's own FLOP counter, crawler loops count as depth, a
missing kernel package is reported (not raised), it trains what the config trains, variants are compared with
their own dtype's compile and eager runs, and the whole script runs on CPU (eager, fp32 and bf16
parameters)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from clowncar.config_load import load_config
from clowncar.model import build_model

# The clowncar preset's layout (4 flat + 1 crawler x 4, flow instructions, XSA, bigram, smear) at a CPU width.
SMALL_CLOWNCAR = ["model.model_dim=64", "model.num_heads=4", "model.num_kv_heads=2", "model.rope_dims=8",
                  "model.bigram_dim=16", "model.bigram_vocab_size=64"]


@pytest.mark.parametrize("preset, overrides, crawl", [("tiny-cpu", [], True), ("clowncar", SMALL_CLOWNCAR, True),
                                                       ("clowncar", SMALL_CLOWNCAR, False)])
def test_flop_formula_equals_pytorch_flop_counter(gpu_trial: ModuleType, preset: str, overrides: list[str],
                                                  crawl: bool) -> None:
    cfg = load_config(preset=preset, overrides=overrides)
    torch.manual_seed(0)
    model = build_model(cfg)
    census = gpu_trial.matmul_census(model, crawl=crawl)
    batch, seq = 2, 96
    x = torch.randint(0, cfg.model.vocab_size, (batch, seq))
    # The math SDPA backend runs attention as batched matmuls, which the counter sees (the fused CPU kernel
    # is not registered with it); it counts the full T x T, as the formula does.
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x, x, crawl=crawl).backward()
    assert counter.get_total_flops() == pytest.approx(census.flops_per_token(seq) * batch * seq, rel=1e-9)


def test_crawler_loops_count_as_effective_depth(gpu_trial: ModuleType) -> None:
    def census(loops: int, crawl: bool = True):
        cfg = load_config(preset="clowncar", overrides=[*SMALL_CLOWNCAR, f"model.crawler_loops={loops}"])
        return gpu_trial.matmul_census(build_model(cfg), crawl=crawl)

    two, three = census(2), census(3)
    assert three.attn_calls - two.attn_calls == 1  # one crawler layer, one more loop
    per_loop = three.n_used - two.n_used
    assert per_loop > 0
    assert census(5).n_used - three.n_used == 2 * per_loop
    assert census(5, crawl=False).attn_calls == 4 + 1  # an N-step runs the shared block once


def test_missing_kernels_are_reported_not_raised(gpu_trial: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    real = gpu_trial.importlib.import_module

    def broken(name: str, *a: object) -> ModuleType:
        if name.startswith(("flash_attn", "fla")):
            raise RuntimeError("0 active drivers")
        return real(name, *a)

    monkeypatch.setattr(gpu_trial.importlib, "import_module", broken)
    report = gpu_trial.kernel_report()
    assert set(report) == {"flash-attn", "flash-linear-attention", "fla delta-rule kernel"}
    assert all(v.startswith("missing (RuntimeError: 0 active drivers") for v in report.values())


@pytest.mark.slow  # a fresh process importing torch and training 2 x 3 steps: ~15 s alone, more when busy
def test_gpu_trial_runs_end_to_end_on_cpu(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "trial.json"
    proc = subprocess.run([sys.executable, str(repo / "benchmarks/gpu_trial.py"), "--preset", "tiny-cpu",
                           "--device", "cpu", "--steps", "2", "--warmup", "1", "--micro-batch", "2",
                           "--modes", "eager", "--dtypes", "fp32,bf16", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "| tokens/s |" in proc.stdout and "flash-attn:" in proc.stdout
    assert "| metric | eager, fp32 | eager, bf16 |" in proc.stdout  # the variants side by side
    assert "reproduce: python benchmarks/gpu_trial.py --preset tiny-cpu" in proc.stdout
    r = json.loads(out.read_text())
    assert [(v["mode"], v["param_dtype"]) for v in r["variants"]] == [("eager", "fp32"), ("eager", "bf16")]
    for v in r["variants"]:
        assert v["tokens_per_step"] == 2 * 128 and v["steps"] == 2 and len(v["losses"]) == 3
        assert v["tokens_per_s"] > 0 and v["step_ms_median"] > 0
        assert v["flops_per_token"] == 6 * r["census"]["n_used"] + 12 * 128 * r["census"]["attn_dim_sum"]
        assert v["mfu"] is None and v["peak_mem_gib"] is None  # no peak to compare with on CPU
        assert v["loss_vs_eager"] == 0 and v["vs_compile"] is None  # eager is its own reference, no compile
    assert r["variants"][0]["losses"] != r["variants"][1]["losses"]  # bf16 parameters compute differently
    assert set(r["kernels"]) == {"flash-attn", "flash-linear-attention", "fla delta-rule kernel"}


def test_optimizers_leave_out_what_the_config_does_not_train(gpu_trial: ModuleType) -> None:
    """`clowncar-seed` keeps its flow instructions out of every optimizer, as the worker does."""
    def optimized(preset: str) -> set[str]:
        cfg = load_config(preset=preset, overrides=SMALL_CLOWNCAR)
        model = build_model(cfg)
        opts, _ = gpu_trial.make_optimizers(model, cfg, torch.device("cpu"))
        ids = {id(p) for opt in opts for group in opt.param_groups for p in group["params"]}
        return {name for name, p in model.named_parameters() if id(p) in ids}

    trained, seed = optimized("clowncar"), optimized("clowncar-seed")
    flow = {name for name in trained if name.startswith("loop_inst_")}
    assert flow and not flow & seed
    assert trained - flow <= seed  # everything else still trains (the seed build adds its unused embedding)


def test_variants_are_compared_with_compile_and_eager_of_their_own_dtype(gpu_trial: ModuleType) -> None:
    def v(mode: str, dtype: str, ms: float, losses: list[float]) -> dict[str, object]:
        return {"mode": mode, "param_dtype": dtype, "step_ms_median": ms, "losses": losses}

    variants = [v("eager", "fp32", 100.0, [4.0, 2.0]), v("default", "fp32", 80.0, [4.0, 2.1]),
                v("reduce-overhead", "fp32", 60.0, [4.2, 2.0]), v("eager", "bf16", 90.0, [5.0, 3.0]),
                {"mode": "default", "param_dtype": "bf16", "error": "OutOfMemoryError: ..."},
                v("reduce-overhead", "bf16", 50.0, [5.0, 3.3])]
    gpu_trial.compare(variants)
    graphs, plain = variants[2], variants[1]
    assert graphs["vs_compile"] == pytest.approx(0.75) and plain["vs_compile"] == 1.0
    assert graphs["loss_vs_eager"] == pytest.approx(0.05) and plain["loss_vs_eager"] == pytest.approx(0.05)
    assert variants[5]["vs_compile"] is None and variants[5]["loss_vs_eager"] == pytest.approx(0.1)
    assert "vs_compile" not in variants[4]


def test_bad_arguments_exit_2(gpu_trial: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    for bad, named in ((["--steps", "0"], "--steps"), (["--modes", "cudagraphs"], "--modes"),
                       (["--dtypes", "fp16"], "--dtypes")):
        with pytest.raises(SystemExit) as exc:
            gpu_trial.parse_args(bad)
        assert exc.value.code == 2 and named in capsys.readouterr().err
