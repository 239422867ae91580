"""`train.compile_mode`: which torch.compile call a trial makes on each device, the CUDA-graph modes' gradient
handling, and (slow) a CPU trial in a CUDA-graph mode trains exactly as plain compile and reuses its compiled
graphs from the node's compile cache. On a GPU: 20 steps eager vs CUDA graphs agree to bf16 tolerance."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from clowncar.config import TrainConfig
from clowncar.model import build_model
from clowncar.worker.compiled import compile_plan, keep_grads_out_of_graph_pool

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)  # a device object needs no GPU, only a name


@pytest.mark.parametrize("mode, device, runs, graphs, evaluates", [
    ("default", CPU, "default", False, "default"),
    ("default", CUDA, "default", False, "default"),
    ("reduce-overhead", CUDA, "reduce-overhead", True, "default"),
    ("reduce-overhead", CPU, "default", False, "default"),
    ("max-autotune", CUDA, "max-autotune", True, "max-autotune-no-cudagraphs"),
    ("max-autotune", CPU, "max-autotune-no-cudagraphs", False, "max-autotune-no-cudagraphs"),
    ("max-autotune-no-cudagraphs", CUDA, "max-autotune-no-cudagraphs", False, "max-autotune-no-cudagraphs"),
])
def test_compile_mode_runs_as_this_on_each_device(mode: str, device: torch.device, runs: str, graphs: bool,
                                                  evaluates: str) -> None:
    plan = compile_plan(TrainConfig(compile=True, compile_mode=mode), device)
    assert (plan.mode, plan.cuda_graphs, plan.asked) == (runs, graphs, mode)
    assert ("needs CUDA" in plan.label) == (runs != mode)
    evaluation = plan.for_evaluation()  # the quantized model's eval: the same compile, never CUDA graphs
    assert (evaluation.mode, evaluation.cuda_graphs) == (evaluates, False)


def test_compile_off_is_eager_and_the_model_itself() -> None:
    plan = compile_plan(TrainConfig(), CUDA)
    model = torch.nn.Linear(2, 2)
    assert plan.mode is None and plan.label == "eager" and plan.compile(model) is model
    plan.begin_step()  # a no-op without CUDA graphs (this machine may have no CUDA at all)


def test_first_gradient_is_a_clone_and_later_ones_add_into_it(tiny_cfg: Callable[..., Any]) -> None:
    """What keeps gradient accumulation right under CUDA graphs: `.grad` never holds the buffer the backward
    produced (a CUDA graph's output, overwritten by the next replay); later micro-batches add in place."""
    cfg = tiny_cfg("train.cadence=2")
    torch.manual_seed(0)
    model, plain = build_model(cfg), build_model(cfg)
    plain.load_state_dict(model.state_dict())
    incoming: dict[int, list[int]] = {}
    for i, p in enumerate(model.parameters()):  # registered first: sees each gradient before our hook
        p.register_hook(lambda g, i=i: incoming.setdefault(i, []).append(g.data_ptr()))
    keep_grads_out_of_graph_pool(model)
    tokens = torch.randint(0, cfg.model.vocab_size, (3, 2, 17))
    first_ptrs: dict[int, int] = {}
    for micro, crawl in enumerate((False, True, True)):  # an N-step micro-batch first: some params get none
        for net in (model, plain):
            net(tokens[micro, :, :-1], tokens[micro, :, 1:], crawl=crawl).backward()
        for i, (p, q) in enumerate(zip(model.parameters(), plain.parameters(), strict=True)):
            assert (p.grad is None) == (q.grad is None)
            if p.grad is None:
                continue
            torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0)
            first_ptrs.setdefault(i, p.grad.data_ptr())
            assert p.grad.data_ptr() == first_ptrs[i]  # accumulated in place
            assert p.grad.data_ptr() not in incoming[i]  # never the backward's own buffer
    assert first_ptrs


def test_gradient_hooks_do_not_split_or_change_the_compiled_graph(tiny_cfg: Callable[..., Any]) -> None:
    """The hooks sit on the inputs of the compiled graph (parameters): through dynamo and AOTAutograd (the
    `aot_eager` backend: inductor's graph without its kernels) the step is still one graph, compiled once for
    both micro-batches, and the accumulated gradients are eager's."""
    from torch._dynamo.utils import counters

    cfg = tiny_cfg()
    torch.manual_seed(0)
    model, plain = build_model(cfg), build_model(cfg)
    plain.load_state_dict(model.state_dict())
    keep_grads_out_of_graph_pool(model)
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(model, backend="aot_eager")
    tokens = torch.randint(0, cfg.model.vocab_size, (2, 2, 17))
    for micro in range(2):
        compiled(tokens[micro, :, :-1], tokens[micro, :, 1:]).backward()
        plain(tokens[micro, :, :-1], tokens[micro, :, 1:]).backward()
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]
    for p, q in zip(model.parameters(), plain.parameters(), strict=True):
        assert (p.grad is None) == (q.grad is None)
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # two CPU trials that compile: minutes cold on a loaded 2-core machine
def test_cpu_trial_in_cuda_graph_mode_trains_as_plain_compile_from_the_same_cache(
        tiny_overrides: list[str], tmp_path: Path, worker_env: dict[str, str]) -> None:
    cache = tmp_path / "compile-cache"
    env = {**worker_env, "TORCHINDUCTOR_CACHE_DIR": str(cache)}
    # The crawler alone (its loops, no flat blocks or hash embeddings): fewer kernels for the C++ compiler.
    sets = [*tiny_overrides, "model.num_flat_layers=0", "model.bigram_vocab_size=0", "model.smear_gate=false",
            "train.compile=true", "train.iterations=3", "train.warmup_steps=0", "train.probe_every=0",
            "eval.stride=0", "eval.max_tokens=256"]

    def trial(mode: str) -> tuple[dict[str, Any], list[float]]:
        out = tmp_path / mode
        args = [a for s in [*sets, f"train.compile_mode={mode}"] for a in ("--set", s)]
        proc = subprocess.run([sys.executable, "-m", "clowncar.worker", "/dev/null", "--preset", "tiny-cpu",
                               "--out", str(out), *args], capture_output=True, text=True, env=env, timeout=1500)
        assert proc.returncode == 0, proc.stderr[-3000:]
        events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
        return json.loads((out / "result.json").read_text()), [e["train_loss"] for e in events
                                                               if e["event"] == "step"]

    graphs_result, graphs_losses = trial("reduce-overhead")
    compiled_graphs = sorted(p.name for p in (cache / "fxgraph").rglob("*") if p.is_file())
    plain_result, plain_losses = trial("default")
    assert graphs_losses == plain_losses and len(plain_losses) == 3
    assert graphs_result["val_loss"] == plain_result["val_loss"]
    # The second trial compiled nothing new: every graph came from the cache the first one filled.
    assert compiled_graphs and sorted(p.name for p in (cache / "fxgraph").rglob("*") if p.is_file()) \
        == compiled_graphs
    cold, warm = graphs_result["startup"], plain_result["startup"]
    assert cold["compile_cache_misses"] > 0 and cold["compile_cache_hits"] == 0
    assert warm["compile_cache_misses"] == 0 and warm["compile_cache_hits"] == cold["compile_cache_misses"]
    assert graphs_result["startup"]["compile_mode"] == "reduce-overhead"
    assert graphs_result["startup"]["compiled_as"] == "default" and not graphs_result["startup"]["cuda_graphs"]
    assert plain_result["startup"]["compile_cache"] == str(cache)


@pytest.fixture
def repo_text_data(tmp_path: Path) -> Path:
    """Shards of this repository's own Markdown and Python, one document per paragraph: real structure to learn,
    and no corpus package needed on the GPU machine."""
    from clowncar.data.build import build_dataset

    repo = Path(__file__).resolve().parents[2]
    files = sorted(repo.glob("*.md")) + sorted((repo / "docs").glob("*.md")) + sorted((repo / "clowncar").rglob("*.py"))
    paragraphs = [para for f in files for para in f.read_text(encoding="utf-8").split("\n\n") if para.strip()]
    corpus = tmp_path / "repo.jsonl"
    corpus.write_text("".join(json.dumps({"text": para}) + "\n" for para in paragraphs))
    build_dataset([corpus], tmp_path / "data", vocab_size=512, val_docs=200, shard_tokens=65536,
                  character_coverage=0.995, progress=False, log=lambda *_: None)  # code has many rare characters
    return tmp_path / "data"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_trial_matches_eager_for_20_steps_needs_cuda(repo_text_data: Path, tmp_path: Path) -> None:
    """C- and N-steps, two micro-batches a step (accumulation through the graphs), compile warm-up then
    restore, probes and the sliding eval: the same losses as eager to bf16 tolerance, and CUDA graphs ran."""
    from torch._dynamo.utils import counters

    from clowncar.config_load import load_config
    from clowncar.worker.run import run_trial

    base = [f"data.dataset={repo_text_data}", f"data.tokenizer={repo_text_data / 'tokenizer.model'}",
            "model.vocab_size=512", "model.model_dim=64", "model.bigram_vocab_size=64", "model.bigram_dim=16",
            "train.device=cuda", "train.iterations=20", "train.cadence=2", "train.warmup_steps=4",
            "train.max_wallclock_seconds=0", "train.train_seq_len=64", "train.train_batch_tokens=1024",
            "train.grad_accum=2", "train.probe_every=5", "train.probe_seqs=2", "eval.seq_len=64", "eval.stride=16",
            "eval.batch_tokens=4096", "eval.max_tokens=4096", "quant.enabled=false"]
    eager_cfg = load_config(preset="tiny-cpu", overrides=base)
    graph_cfg = load_config(preset="tiny-cpu", overrides=[*base, "train.compile=true",
                                                          "train.compile_mode=reduce-overhead"])
    assert run_trial(eager_cfg, tmp_path / "eager") == 0
    counters.clear()
    assert run_trial(graph_cfg, tmp_path / "graphs") == 0, (tmp_path / "graphs" / "train.log").read_text()[-3000:]
    assert counters["inductor"]["cudagraph_skips"] == 0

    def read(name: str) -> tuple[dict[str, Any], list[float]]:
        events = [json.loads(line) for line in (tmp_path / name / "events.jsonl").read_text().splitlines()]
        return (json.loads((tmp_path / name / "result.json").read_text()),
                [e["train_loss"] for e in events if e["event"] == "step"])

    (eager, eager_losses), (graphs, graph_losses) = read("eager"), read("graphs")
    assert graphs["startup"]["cuda_graphs"] is True and len(graph_losses) == 20
    assert graph_losses[-1] < graph_losses[0] - 0.5  # it learned: the comparison is of a real loss curve
    assert graph_losses == pytest.approx(eager_losses, rel=2e-2)
    assert graphs["val_bpb"] == pytest.approx(eager["val_bpb"], rel=2e-2)
    assert graphs["sliding_val_bpb"] == pytest.approx(eager["sliding_val_bpb"], rel=2e-2)
