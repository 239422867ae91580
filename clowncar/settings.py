"""Deployment facts, read from the environment in this one place.

Only where things are (data, the results database, the Ray cluster, run directories) comes from the
environment. Model and training knobs never do: they are fields of `clowncar.config.TrialConfig`.

| variable | meaning | default |
| --- | --- | --- |
| CLOWNCAR_DATA_DIR | data root holding `datasets/<name>/` shards and `tokenizers/<file>` | `~/.cache/clowncar/data` |
| CLOWNCAR_STORE | SQLAlchemy URL of the results store | `sqlite:///clowncar-runs/clowncar.db` |
| CLOWNCAR_RUNS_DIR | where trial directories, Ray Tune's cache and reports go | `./clowncar-runs` |
| CLOWNCAR_RAY_ADDRESS | Ray cluster to join (`auto`, `ray://host:10001`); empty = embedded Ray on loopback | empty |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    runs_dir: Path
    store_url: str
    ray_address: str

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


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    runs_dir = Path(env.get("CLOWNCAR_RUNS_DIR") or "clowncar-runs").expanduser()
    data_dir = Path(env.get("CLOWNCAR_DATA_DIR") or "~/.cache/clowncar/data").expanduser()
    store_url = env.get("CLOWNCAR_STORE") or f"sqlite:///{runs_dir / 'clowncar.db'}"
    return Settings(data_dir=data_dir, runs_dir=runs_dir, store_url=store_url,
                    ray_address=env.get("CLOWNCAR_RAY_ADDRESS", ""))
