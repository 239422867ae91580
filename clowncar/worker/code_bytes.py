"""The code bytes of an artifact: which source files count, under the rule `quant.code_bytes`.

- `challenge` (the default; the challenge counts the whole training script): every project module a trial
  imports to train and evaluate, i.e. the import closure of the worker program (`clowncar.worker.__main__`)
  inside the `clowncar` package. It is read from the import statements of each module (those inside functions
  too, so a lazy import counts whether or not a given run reaches it), plus the package `__init__.py` files
  that importing a module runs. Read statically, the count does not depend on what else the process running
  the trial has imported (a test, the CLI).
- `eval_path`: only the files needed to rebuild and evaluate the model from the artifact (`CODE_FILES`, globs
  relative to the repository root): config (with its section modules) + errors and the config's readers (the
  config is rebuilt from the meta), the width rules the model builder checks (`buildable.py`), the package
  `__init__.py` files, the model package, `artifact.py`, `quant.py` and `qscale.py` (deserialize + dequantize),
  `artifact_model.py` (the model rebuilt from the file), the evaluator (`worker/evaluate.py`) and the byte
  accounting and validation reading it uses (`data/bpb.py`, `data/shards.py`, `data/stream.py`, `data/paths.py`).
  Files that are not in this checkout are not counted.
`code_files(rule)` lists what was counted.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
CODE_FILES = ("clowncar/__init__.py", "clowncar/config.py", "clowncar/config_model.py",
              "clowncar/config_section.py", "clowncar/config_load.py", "clowncar/buildable.py", "clowncar/errors.py",
              "clowncar/did_you_mean.py", "clowncar/overrides.py", "clowncar/strict_yaml.py", "clowncar/model/*.py",
              "clowncar/worker/__init__.py", "clowncar/worker/quant.py", "clowncar/worker/qscale.py",
              "clowncar/worker/artifact.py", "clowncar/worker/artifact_model.py",
              "clowncar/worker/code_bytes.py", "clowncar/worker/evaluate.py", "clowncar/data/__init__.py",
              "clowncar/data/bpb.py", "clowncar/data/paths.py", "clowncar/data/shards.py", "clowncar/data/stream.py")
"""Closed under the module-level imports of its files (tests/worker/test_code_bytes.py): what loading them runs."""
TRIAL_PROGRAM = "clowncar.worker.__main__"
CODE_RULES = ("challenge", "eval_path")


def code_files(rule: str = "challenge") -> list[Path]:
    """The source files counted in the artifact size under `rule`, sorted, relative to the repository root."""
    if rule not in CODE_RULES:
        raise ValueError(f"unknown code-byte rule {rule!r} (known: {', '.join(CODE_RULES)})")
    root = PACKAGE_ROOT.parent
    if rule == "challenge":
        return sorted(p.relative_to(root) for p in imported_files(TRIAL_PROGRAM))
    found = {p for pattern in CODE_FILES for p in root.glob(pattern) if p.is_file()}
    return sorted(p.relative_to(root) for p in found)


def code_bytes(rule: str = "challenge") -> int:
    root = PACKAGE_ROOT.parent
    return sum((root / p).stat().st_size for p in code_files(rule))


def _module_file(module: str) -> Path | None:
    """The source file of a `clowncar.*` module (a package's `__init__.py`), or None if there is none."""
    base = PACKAGE_ROOT.parent.joinpath(*module.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _imports_of(module: str, path: Path) -> set[str]:
    """Every `clowncar.*` module named by an import statement anywhere in `path` (a `from X import y` may
    name the module X.y), with relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] == PACKAGE_ROOT.name and _module_file(n) is not None}


@cache
def imported_files(program: str) -> tuple[Path, ...]:
    """The files of `program` and of every project module it imports, directly or not, with the parent
    packages each import runs: the code a trial runs, whatever path through it a given run takes."""
    seen: set[str] = set()
    todo = [program]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # importing a.b.c runs a and a.b
        path = _module_file(module)
        if path is not None:
            todo.extend(_imports_of(module, path))
    return tuple(sorted({p for m in seen if (p := _module_file(m)) is not None}))
