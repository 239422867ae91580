"""`clowncar data fetch-fineweb`: the challenge's published shards and tokenizer, through `huggingface_hub`.

The layout follows the challenge's own downloader (`data/cached_challenge_fineweb.py`): in the dataset repo
`willdepueoai/parameter-golf`, under the remote root `datasets/`, a `manifest.json` lists every export:
`datasets[]` entries (`name` such as `fineweb10B_sp1024`, `tokenizer_name`, `stats.files_train`,
`stats.files_val`) and `tokenizers[]` entries (`name`, and file paths under `model_path`, `vocab_path` or
`path`, relative to the remote root). Shards live at `<root>/datasets/<name>/fineweb_{val|train}_NNNNNN.bin`.

Locally the files land in the data root layout that trial configs resolve: `<data_dir>/datasets/<name>/`,
`<data_dir>/tokenizers/`, and `<data_dir>/manifest.json`. Each file is downloaded into the Hugging Face cache,
linked (or copied) to a temporary name beside its destination, validated (shard header and size, or a
loadable tokenizer), then renamed: an interrupted fetch resumes, and a corrupt download never lands.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clowncar.data.atomic import default_mode
from clowncar.data.paths import make_output_dir, remove_created
from clowncar.data.shards import read_header, shard_name
from clowncar.data.tokenizer import load_tokenizer
from clowncar.errors import DataError

REPO_ID = "willdepueoai/parameter-golf"
REMOTE_ROOT = "datasets"


def dataset_name_for_variant(variant: str) -> str:
    if variant == "byte260" or re.fullmatch(r"sp\d+", variant):
        return f"fineweb10B_{variant}"
    raise DataError(f"unknown variant '{variant}' (expected sp<VOCAB> such as sp1024, or byte260)")


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


@dataclass
class FetchResult:
    dataset_dir: Path
    tokenizer_files: list[Path]
    val_shards: int
    train_shards: int
    downloaded: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)


class HubSource:
    """Files of one Hugging Face dataset repo, fetched with `hf_hub_download`. `endpoint` and `cache_dir`
    default to what HF_ENDPOINT and HF_HOME say (a mirror, a shared cache)."""

    def __init__(self, repo_id: str = REPO_ID, remote_root: str = REMOTE_ROOT, revision: str | None = None,
                 endpoint: str | None = None, cache_dir: Path | None = None):
        self.repo_id, self.remote_root, self.revision = repo_id, remote_root, revision
        self.endpoint, self.cache_dir = endpoint, cache_dir

    def download(self, relative: str, force: bool = False) -> Path:
        """Local path (in the HF cache) of `<remote_root>/<relative>`; `force` replaces a cached copy."""
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )
        from huggingface_hub.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # its retry warnings would bury our one-line error
        remote = _join(self.remote_root, relative)
        folder, _, name = remote.rpartition("/")
        try:
            path = hf_hub_download(repo_id=self.repo_id, filename=name, subfolder=folder or None,
                                   repo_type="dataset", revision=self.revision, endpoint=self.endpoint,
                                   cache_dir=self.cache_dir, force_download=force)
        except RepositoryNotFoundError:
            raise DataError(f"dataset repo '{self.repo_id}' not found on the hub") from None
        except LocalEntryNotFoundError:  # the hub could not be reached and the file is not cached
            from huggingface_hub import constants

            raise DataError(f"{remote}: cannot reach the hub at {self.endpoint or constants.ENDPOINT} and no cached copy "
                            "(check the network, HF_ENDPOINT, HF_HUB_OFFLINE)") from None
        except EntryNotFoundError:
            raise DataError(f"{remote}: not found in dataset repo '{self.repo_id}'") from None
        except (OSError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DataError(f"{remote}: download from '{self.repo_id}' failed: {first}") from None
        try:
            return Path(path).resolve(strict=True)
        except OSError:  # the cache changed under us (another process cleaning it): say so, do not go on
            raise DataError(f"{remote}: the Hugging Face cache lost {path} as it was downloaded; fetch again") from None


def _place(cached: Path, dest: Path, validate: Callable[[Path], Any]) -> None:
    """Link or copy a cached file to a temporary name beside `dest`, validate it there, then rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.unlink()
        try:
            os.link(cached, tmp)  # no second copy of a 200 MB shard when cache and data share a disk
        except OSError:
            shutil.copyfile(cached, tmp)
            os.chmod(tmp, default_mode())
        validate(tmp)
        os.replace(tmp, dest)
        # rename(2) between two links to one file (a rerun's manifest.json, linked to the same cached blob) does
        # nothing and keeps both names: the temporary one is removed here, or each rerun leaves a .part behind
        tmp.unlink(missing_ok=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fetch(source: HubSource, relative: str, dest: Path, validate: Callable[[Path], Any],
           log: Callable[[str], Any]) -> None:
    """Download `relative` and place it at `dest`. A cached copy that fails validation is downloaded once more
    before the failure stands: `_place` hard-links, so a local file damaged in place damaged the cached one too."""
    cached = source.download(relative)
    try:
        _place(cached, dest, validate)
    except DataError as exc:
        log(f"{exc}: downloading it again")
        _place(source.download(relative, force=True), dest, validate)


def _corrupt(dest_name: str, check: Callable[[Path], Any]) -> Callable[[Path], Any]:
    """`check` with its error naming the file by `dest_name`, not by the temporary path it was run on."""
    def validate(p: Path) -> None:
        try:
            check(p)
        except DataError as exc:
            why = str(exc).split(": ", 1)[-1].replace(str(p), dest_name)  # the library may quote the path too
            raise DataError(f"downloaded {dest_name} is corrupt: {why}") from None
    return validate


def _holds_good(dest: Path, check: Callable[[Path], Any]) -> bool:
    """True when `dest` is a file that passes `check` (a bad local copy is fetched again)."""
    if not dest.is_file():
        return False
    try:
        check(dest)
    except DataError:
        return False
    return True


def _validate_shard(dest_name: str) -> Callable[[Path], Any]:
    return _corrupt(dest_name, read_header)


def load_manifest(source: HubSource, data_dir: Path, log: Callable[[str], Any] = print) -> dict[str, Any]:
    log(f"manifest: {source.repo_id}/{_join(source.remote_root, 'manifest.json')}")
    cached = source.download("manifest.json")
    try:
        manifest = json.loads(cached.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise DataError(f"manifest.json from '{source.repo_id}' is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise DataError(f"manifest.json from '{source.repo_id}' is not a JSON object")
    _place(cached, data_dir / "manifest.json", lambda p: None)
    return manifest


def _entries(manifest: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """manifest[key] as a list of objects (missing: none); anything else is a one-line DataError."""
    entries = manifest.get(key, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise DataError(f"manifest.json: '{key}' is not a list of objects")
    return entries


def plan(manifest: dict[str, Any], variant: str, train_shards: int) -> tuple[str, int, list[str]]:
    """(dataset name, number of val shards, tokenizer files relative to the remote root) for a variant."""
    name = dataset_name_for_variant(variant)
    entry = next((d for d in _entries(manifest, "datasets") if d.get("name") == name), None)
    if entry is None:
        raise DataError(f"dataset {name} is not listed in manifest.json")
    stats = entry.get("stats") or {}
    try:
        files_train, files_val = stats["files_train"], stats["files_val"]
    except (KeyError, TypeError):
        raise DataError(f"manifest.json: dataset {name} lacks stats.files_train/files_val") from None
    for key, count in (("files_train", files_train), ("files_val", files_val)):
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:  # int() took -3, 1.7 and "2"
            raise DataError(f"manifest.json: dataset {name}: stats.{key} is {json.dumps(count)}, not a count of "
                            "shards (a whole number >= 0)")
    if files_val == 0:
        raise DataError(f"manifest.json: dataset {name}: stats.files_val is 0: the export has no validation shards "
                        "to score")
    if train_shards < 0:
        raise DataError(f"--train-shards must be >= 0, got {train_shards}")
    if train_shards > files_train:
        raise DataError(f"{variant} has only {files_train} training shards, requested {train_shards}")
    tok_name = entry.get("tokenizer_name")
    tok = next((t for t in _entries(manifest, "tokenizers") if t.get("name") == tok_name), None)
    if tok is None:
        raise DataError(f"manifest.json: tokenizer {tok_name!r} of dataset {name} is not listed")
    files = [str(tok[k]) for k in ("model_path", "vocab_path", "path") if tok.get(k)]
    if not files:
        raise DataError(f"manifest.json: tokenizer {tok_name!r} names no files")
    return name, files_val, files


def fetch_fineweb(variant: str, train_shards: int, data_dir: Path, source: HubSource | None = None,
                  log: Callable[[str], Any] = print) -> FetchResult:
    dataset_name_for_variant(variant)  # a variant of the wrong form is refused before anything is made or fetched
    # the data root first: one that cannot be a directory is bad input before any download, not a crash after
    created = make_output_dir(data_dir, "the data directory")
    try:
        return _fetch_into(variant, train_shards, data_dir, source or HubSource(), log)
    except BaseException:
        remove_created(created)  # only while still empty: what did arrive stays, for the next fetch to reuse
        raise


def _fetch_into(variant: str, train_shards: int, data_dir: Path, source: HubSource,
                log: Callable[[str], Any]) -> FetchResult:
    manifest = load_manifest(source, data_dir, log)
    name, val_shards, tok_files = plan(manifest, variant, train_shards)
    dataset_dir = data_dir / "datasets" / name
    result = FetchResult(dataset_dir=dataset_dir, tokenizer_files=[], val_shards=val_shards,
                         train_shards=train_shards)
    wanted = [("val", i) for i in range(val_shards)] + [("train", i) for i in range(train_shards)]
    for n, (split, i) in enumerate(wanted, 1):
        fname = shard_name(split, i)
        dest, check = dataset_dir / fname, _validate_shard(fname)
        if _holds_good(dest, check):
            result.reused.append(fname)
            continue
        log(f"[{n}/{len(wanted)}] {name}/{fname}")
        _fetch(source, _join("datasets", name, fname), dest, check, log)
        result.downloaded.append(fname)
    for rel in tok_files:
        dest = data_dir / "tokenizers" / Path(rel).name
        check = _corrupt(dest.name, load_tokenizer) if dest.suffix == ".model" else (lambda p: None)
        if _holds_good(dest, check):
            result.reused.append(rel)
        else:
            log(f"tokenizer {rel}")
            _fetch(source, rel, dest, check, log)
            result.downloaded.append(rel)
        result.tokenizer_files.append(dest)
    return result
