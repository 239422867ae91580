"""Fixtures for the deployment tests: the recipes under docker/, parsed with the safe YAML loader."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def load_yaml() -> Callable[[str], Any]:
    def load(rel: str) -> Any:
        with open(REPO / rel, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    return load


@pytest.fixture(scope="session")
def compose(load_yaml: Callable[[str], Any]) -> dict[str, Any]:
    return load_yaml("docker/compose.yaml")


@pytest.fixture(scope="session")
def raycluster(load_yaml: Callable[[str], Any]) -> dict[str, Any]:
    return load_yaml("docker/kuberay/raycluster.yaml")


@pytest.fixture(scope="session")
def launcher(load_yaml: Callable[[str], Any]) -> dict[str, Any]:
    return load_yaml("docker/cluster/aws.yaml")


@pytest.fixture(scope="session")
def git_ignored() -> Callable[[str], bool]:
    """True when git would ignore this repository-relative path (and it is not tracked)."""
    def ignored(rel: str) -> bool:
        check = subprocess.run(["git", "check-ignore", "-q", "--no-index", rel], cwd=REPO)
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", rel], cwd=REPO,
                                 capture_output=True).returncode == 0
        return check.returncode == 0 and not tracked
    return ignored


@pytest.fixture(scope="session")
def gpu_trial() -> ModuleType:
    """benchmarks/gpu_trial.py as a module (benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("clowncar_gpu_trial", REPO / "benchmarks" / "gpu_trial.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def parse_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


@pytest.fixture(scope="session")
def read_env_file() -> Callable[[Path], dict[str, str]]:
    return parse_env_file
