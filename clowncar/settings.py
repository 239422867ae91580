"""Deployment facts, read from the environment in this one place.

Only where things are (data, the results database, the Ray cluster, run directories) comes from the
environment. Model and training knobs never do: they are fields of `clowncar.config.TrialConfig`.

| variable | meaning | default |
| --- | --- | --- |
| CLOWNCAR_DATA_DIR | data root holding `datasets/<name>/` shards and `tokenizers/<file>` | `~/.cache/clowncar/data` |
| CLOWNCAR_STORE | SQLAlchemy URL of the results store | SQLite at `$CLOWNCAR_RUNS_DIR/clowncar.db` |
| CLOWNCAR_STORE_FILE | a file holding that URL (not readable by other users: `chmod 600`), instead of CLOWNCAR_STORE | unset |
| CLOWNCAR_RUNS_DIR | where trial directories, Ray Tune's cache and reports go | `./clowncar-runs` |
| CLOWNCAR_RAY_ADDRESS | Ray cluster a sweep joins (`auto` on one of its nodes, or the head's `host:6379`; Ray Client's `ray://` is refused: `clowncar sweep submit` runs a sweep from elsewhere); empty = embedded Ray on loopback | empty |
| CLOWNCAR_COMPILE_CACHE | torch.compile's on-disk cache shared by the trials of a node (given to each worker as `TORCHINDUCTOR_CACHE_DIR` unless that is set) | `~/.cache/clowncar/compile` |
| CLOWNCAR_STORE_RETRY_SECONDS | how long a running sweep's driver retries a store write that failed because the database server is away (restarting), before the sweep fails | `120` |
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from clowncar.errors import ConfigError

DEFAULT_COMPILE_CACHE = "~/.cache/clowncar/compile"
STORE_DEFAULT = "CLOWNCAR_STORE, else CLOWNCAR_STORE_FILE's URL, else SQLite at $CLOWNCAR_RUNS_DIR/clowncar.db"
"""Where the results store is when no --store is given (`Settings.store_url`), said the same way in every
command's help and in the README."""
STORE_HELP = f"SQLAlchemy URL of the results store (default: {STORE_DEFAULT})."
DEFAULT_STORE_RETRY_S = 120.0
"""Long enough for a PostgreSQL restart or a managed database's maintenance failover (seconds to a minute)."""
LEASE_TTL_ENV = "CLOWNCAR_LEASE_TTL_S"
DEFAULT_LEASE_TTL_S = 30.0
"""How long the GPU ledger keeps a sweep's leases without a heartbeat (a SIGKILLed driver's GPUs come back)."""


def lease_ttl_seconds(env: dict[str, str] | None = None) -> float:
    """CLOWNCAR_LEASE_TTL_S: a number of seconds > 0, DEFAULT_LEASE_TTL_S when unset. Anything else is a
    ConfigError (one line, exit 2), said before a GPU sweep starts: read inside the ledger's start, a bad value
    was reported as 'GPU ledger unreachable' and the sweep went on without the ledger."""
    return env_seconds(LEASE_TTL_ENV, (os.environ if env is None else env).get(LEASE_TTL_ENV, ""),
                       DEFAULT_LEASE_TTL_S, zero_ok=False)


def env_seconds(name: str, text: str, default: float, *, zero_ok: bool) -> float:
    """Variable `name`'s value `text` as a number of seconds (> 0, or >= 0 where `zero_ok`), `default` when unset
    or blank; anything else is a ConfigError naming the variable (one line, exit 2)."""
    text = text.strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise ConfigError(f"{name} must be a number of seconds {'>=' if zero_ok else '>'} 0, not {text!r}")
    return value


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    runs_dir: Path
    ray_address: str
    compile_cache_dir: Path
    """Where inductor keeps compiled graphs (FX graph and AOTAutograd caches, Triton kernels) across
    processes: a trial that compiles what an earlier trial on the node compiled loads it instead."""
    store_env: str = ""
    """CLOWNCAR_STORE as set (a URL that may carry the database password)."""
    store_file: Path | None = None
    """CLOWNCAR_STORE_FILE: where the URL is kept when it must not travel in an environment (cluster heads,
    submitted jobs). Read only when the URL is asked for, so processes that never open the store (trial
    workers) do not need the file."""

    @property
    def store_url(self) -> str:
        """The results store's URL: CLOWNCAR_STORE, else the contents of CLOWNCAR_STORE_FILE, else SQLite under
        the runs dir."""
        if self.store_env and self.store_file:
            raise ConfigError("set CLOWNCAR_STORE or CLOWNCAR_STORE_FILE, not both")
        if self.store_file:
            return read_secret_file(self.store_file, "CLOWNCAR_STORE_FILE")
        return self.store_env or f"sqlite:///{self.runs_dir / 'clowncar.db'}"

    store_retry_env: str = ""
    """CLOWNCAR_STORE_RETRY_SECONDS as set; read (and refused when bad) only by what runs a sweep."""

    @property
    def store_retry_seconds(self) -> float:
        """How long a running sweep retries a store write that failed because the server is away: a number of
        seconds >= 0 (0: no retry), DEFAULT_STORE_RETRY_S when unset. Anything else is a ConfigError."""
        return env_seconds("CLOWNCAR_STORE_RETRY_SECONDS", self.store_retry_env, DEFAULT_STORE_RETRY_S, zero_ok=True)

    def compile_cache_env(self, env: dict[str, str]) -> dict[str, str]:
        """The variables that point a worker with environment `env` at the node's compile cache (none when
        TORCHINDUCTOR_CACHE_DIR is already chosen there)."""
        if env.get("TORCHINDUCTOR_CACHE_DIR"):
            return {}
        return {"TORCHINDUCTOR_CACHE_DIR": str(self.compile_cache_dir)}

    def dataset_dir(self, dataset: str) -> Path:
        """A dataset name resolves under `<data_dir>/datasets/`; a path (absolute or with a slash) is used as is."""
        return _resolve(dataset, self.data_dir / "datasets")

    def tokenizer_path(self, tokenizer: str) -> Path:
        return _resolve(tokenizer, self.data_dir / "tokenizers")


def _resolve(name: str, root: Path) -> Path:
    p = Path(name).expanduser()
    if p.is_absolute() or "/" in name or name.startswith("."):
        return p
    return root / name


def nearest_existing(path: Path) -> Path:
    """`path`, or the nearest folder above it that exists (the root at worst): where a file or folder would go."""
    return next(p for p in [path, *path.parents] if p.exists())


def runs_dir_problem(runs_dir: Path) -> str | None:
    """Why `runs_dir` cannot hold a sweep's folders (it, or the nearest path above it that exists, is not a
    folder this process may write in); None when it is one or can be made. Shared by `sweep run`, which refuses
    such a runs dir before it records anything, and `doctor`, so that the two never disagree."""
    absolute = runs_dir.absolute()
    existing = nearest_existing(absolute)
    if existing == absolute and not existing.is_dir():
        return f"the runs dir {runs_dir} is not a folder"
    if not existing.is_dir():
        return f"the runs dir {runs_dir} cannot be made: {existing} is not a folder"
    lacking = [what for what, mode in (("write", os.W_OK), ("search", os.X_OK)) if not os.access(existing, mode)]
    if lacking:  # both are needed to make a folder in it: say which one is missing
        return f"the runs dir {runs_dir} cannot be written: no {' or '.join(lacking)} permission on {existing}"
    return None


def check_runs_dir(runs_dir: Path) -> None:
    """ConfigError (one line, exit code 2) for a runs dir that `runs_dir_problem` refuses."""
    problem = runs_dir_problem(runs_dir)
    if problem:
        raise ConfigError(f"{problem}; set CLOWNCAR_RUNS_DIR to a folder you can write in")


def read_secret_file(path: Path, what: str) -> str:
    """The stripped text of a file that holds a secret; one-line errors when it is missing, empty, or readable
    by other users (group access is allowed: Kubernetes gives mounted Secrets to the pod's fsGroup)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ConfigError(f"{what} {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path}: not UTF-8 text") from None
    if mode & 0o007:
        raise ConfigError(f"{what} {path} is readable by other users (mode {stat.S_IMODE(mode):04o}): "
                          f"chmod 600 {path}")
    if not text:
        raise ConfigError(f"{what} {path} is empty")
    return text


SECRET_ENV = ("CLOWNCAR_STORE",)
"""Variables that may carry the store's password. `hold_secret_env` moves them out of the process environment,
where every child process (Ray, trial workers, git, matplotlib's fc-list...) would get a copy."""

_held: dict[str, str] = {}


def hold_secret_env() -> None:
    """Keep the secret variables in this process's memory only: removed from `os.environ` (so no child process
    inherits them) and still seen by `load_settings`. The CLI calls this first thing in every command (tests
    call the CLI many times in one process, so what is held is what the environment holds now)."""
    _held.clear()
    for key in SECRET_ENV:
        if key in os.environ:
            _held[key] = os.environ.pop(key)


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = {**_held, **os.environ} if env is None else env
    runs_dir = Path(env.get("CLOWNCAR_RUNS_DIR") or "clowncar-runs").expanduser()
    data_dir = Path(env.get("CLOWNCAR_DATA_DIR") or "~/.cache/clowncar/data").expanduser()
    store_file = env.get("CLOWNCAR_STORE_FILE") or ""
    compile_cache = Path(env.get("CLOWNCAR_COMPILE_CACHE") or DEFAULT_COMPILE_CACHE).expanduser()
    return Settings(data_dir=data_dir, runs_dir=runs_dir, ray_address=env.get("CLOWNCAR_RAY_ADDRESS", ""),
                    compile_cache_dir=compile_cache.absolute(),
                    store_env=env.get("CLOWNCAR_STORE") or "",
                    store_retry_env=env.get("CLOWNCAR_STORE_RETRY_SECONDS") or "",
                    store_file=Path(store_file).expanduser() if store_file else None)
