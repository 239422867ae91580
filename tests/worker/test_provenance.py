"""A result says where it came from: the commit and whether the tree was dirty, the config and its hash, and the
versions of every library that can move its numbers (read from package metadata, never by importing the GPU
extras), so two results that differ can be told apart by more than their config."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch
import zstandard

from clowncar.config_load import load_config
from clowncar.worker import provenance as prov


def test_library_versions_are_the_installed_ones_and_absent_ones_are_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prov, "LIBRARIES", ("numpy", "zstandard", "no-such-package-clowncar"))
    before = set(sys.modules)
    versions = prov.library_versions()
    assert versions == {"numpy": metadata.version("numpy"), "zstandard": zstandard.__version__,
                        "no_such_package_clowncar": None,
                        "libzstd": ".".join(map(str, zstandard.ZSTD_VERSION)), "cuda": torch.version.cuda}
    assert not {m for m in set(sys.modules) - before if m.startswith(("flash_attn", "fla", "triton"))}


def test_every_library_that_moves_numbers_is_listed() -> None:
    versions = prov.library_versions()
    assert {"numpy", "zstandard", "sentencepiece", "triton", "flash_attn", "flash_linear_attention", "libzstd",
            "cuda"} == set(versions)
    assert versions["sentencepiece"] == metadata.version("sentencepiece")


def test_a_result_carries_config_hash_seed_and_versions() -> None:
    cfg = load_config(preset="tiny-cpu", overrides=["train.seed=7"])
    out = prov.provenance(cfg, torch.device("cpu"), world_size=2)
    assert out["config"] == cfg.to_dict() and out["config_hash"] == cfg.content_hash()
    assert out["seed"] == 7 and out["world_size"] == 2 and out["torch"] == torch.__version__
    assert out["device"].startswith("cpu:") and out["python"] == sys.version.split()[0]
    assert out["zstandard"] == zstandard.__version__ and "libzstd" in out
    assert all(not isinstance(v, dict | list) for k, v in out.items() if k != "config")  # each one a store column


def test_a_result_records_the_thread_count_and_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two CPU results of one config and commit differ with the thread count (walk 4, F6): it is recorded."""
    cfg = load_config(preset="tiny-cpu")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        out = prov.provenance(cfg, torch.device("cpu"), world_size=1)
        assert out["torch_threads"] == 3 and out["omp_num_threads"] == "3"
        torch.set_num_threads(1)
        monkeypatch.delenv("OMP_NUM_THREADS")
        out = prov.provenance(cfg, torch.device("cpu"), world_size=1)
        assert out["torch_threads"] == 1 and out["omp_num_threads"] is None
    finally:
        torch.set_num_threads(before)


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t", *args], check=True,
                   capture_output=True)


def test_git_state_reads_the_commit_and_a_dirty_tracked_file(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "commit", "-q", "-m", "one")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert prov.git_state(tmp_path) == (head, False)
    (tmp_path / "new.py").write_text("")  # untracked files do not make a checkout dirty
    assert prov.git_state(tmp_path) == (head, False)
    (tmp_path / "a.py").write_text("x = 2\n")
    assert prov.git_state(tmp_path) == (head, True)


def test_git_state_outside_a_checkout_is_unknown(tmp_path: Path) -> None:
    assert prov.git_state(tmp_path / "not-a-repo") == (None, None)  # git fails: no such folder
    assert prov.git_state(tmp_path) == (None, None)  # git fails: not a repository


def test_peak_memory_on_cpu_is_the_resident_set_in_bytes() -> None:
    peak = prov.peak_memory_bytes(torch.device("cpu"))
    assert 10 << 20 < peak < 64 << 30  # a Python process with torch loaded: tens of MiB at least, in bytes


def test_a_result_names_its_checkout_host_and_processor() -> None:
    import platform
    import socket

    cfg = load_config(preset="tiny-cpu")
    out = prov.provenance(cfg, torch.device("cpu"), world_size=1)
    assert (out["git_commit"], out["git_dirty"]) == prov.git_state(prov.REPO_ROOT)
    assert out["host"] == socket.gethostname()
    assert out["device"] == f"cpu:{platform.processor() or platform.machine()}"
    assert out["seed"] == cfg.train.seed and out["world_size"] == 1
    assert set(prov.library_versions()) <= set(out)


def test_the_checkout_is_the_one_holding_the_clowncar_package() -> None:
    assert (prov.REPO_ROOT / "clowncar" / "worker" / "provenance.py").is_file()


def test_an_unnamed_processor_is_named_by_its_machine_type(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    monkeypatch.setattr(platform, "processor", lambda: "")
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    assert prov.device_name(torch.device("cpu")) == "cpu:riscv64"
    monkeypatch.setattr(platform, "processor", lambda: "x86_64-fancy")
    assert prov.device_name(torch.device("cpu")) == "cpu:x86_64-fancy"


def test_peak_memory_reads_kib_on_linux_and_bytes_on_macos(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    class Usage:
        ru_maxrss = 1000

    seen: list[int] = []
    monkeypatch.setattr(resource, "getrusage", lambda who: seen.append(who) or Usage())
    monkeypatch.setattr(prov.sys, "platform", "linux")
    assert prov.peak_memory_bytes(torch.device("cpu")) == 1_024_000
    monkeypatch.setattr(prov.sys, "platform", "darwin")
    assert prov.peak_memory_bytes(torch.device("cpu")) == 1000
    assert seen == [resource.RUSAGE_SELF] * 2


def test_a_gpu_result_names_and_measures_the_gpu_it_ran_on(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[object] = []
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d: asked.append(d) or "NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d: asked.append(d) or 21 << 30)
    gpu = torch.device("cuda", 3)
    assert prov.device_name(gpu) == "cuda:NVIDIA H200"
    assert prov.peak_memory_bytes(gpu) == 21 << 30
    assert asked == [gpu, gpu]  # the trial's own GPU, not the current default one


def test_the_cuda_torch_was_built_for_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    assert prov.library_versions()["cuda"] == "12.8"


def test_a_git_that_hangs_is_given_up_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def hanging_git(cmd, **kwargs):
        if kwargs.get("timeout") is None:
            raise AssertionError("git ran without a timeout: a hung git would hang the trial")
        raise subprocess.TimeoutExpired(cmd, kwargs["timeout"])

    monkeypatch.setattr(prov.subprocess, "run", hanging_git)
    assert prov.git_state(tmp_path) == (None, None)
