"""benchmarks/gpu_trial.py: its FLOP formula equals PyTorch's own FLOP counter, crawler loops count as depth, a
missing kernel package is reported (not raised), and the whole script runs on CPU."""

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

from clowncar.config import load_config
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


@pytest.mark.slow  # a fresh process importing torch and training two steps: ~10 s alone, more on a busy machine
def test_gpu_trial_runs_end_to_end_on_cpu(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "trial.json"
    proc = subprocess.run([sys.executable, str(repo / "benchmarks/gpu_trial.py"), "--preset", "tiny-cpu",
                           "--device", "cpu", "--steps", "2", "--warmup", "0", "--micro-batch", "2",
                           "--no-compile", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "| tokens/s |" in proc.stdout and "flash-attn:" in proc.stdout
    assert "reproduce: python benchmarks/gpu_trial.py --preset tiny-cpu" in proc.stdout
    r = json.loads(out.read_text())
    assert r["tokens_per_step"] == 2 * 128 and r["steps"] == 2
    assert r["tokens_per_s"] > 0 and r["step_ms_median"] > 0
    assert r["flops_per_token"] == 6 * r["census"]["n_used"] + 12 * 128 * r["census"]["attn_dim_sum"]
    assert r["mfu"] is None and r["peak_mem_gib"] is None  # no peak to compare with on CPU
    assert set(r["kernels"]) == {"flash-attn", "flash-linear-attention", "fla delta-rule kernel"}


def test_bad_arguments_exit_2(gpu_trial: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        gpu_trial.parse_args(["--steps", "0"])
    assert exc.value.code == 2 and "--steps" in capsys.readouterr().err
