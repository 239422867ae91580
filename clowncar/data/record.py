"""A shard directory checked against the record of what was put in it.

`data build` (and `data demo`) write `build.json`, whose `splits.<split>.shards` and `.tokens` list every shard
and its split's token count; `data fetch-fineweb` keeps the hub's `manifest.json` in the data root, whose
`stats.files_val` / `files_train` give how many shards each split of the export has (validation is always
fetched whole, train as a prefix of `--train-shards`). A shard lost or added since then changes what every run
on the directory measures (a val split missing a third of its tokens changes every BPB), with no other error:
`check_shard_record` turns that into one line. `data inspect`, the sweep preflight and the trial worker share it.
`check_encoded_with` (shards read with the tokenizer they were built with) lives here too, beside the reader and
not in `build.py`: every module a trial imports counts in its artifact's code bytes, and the builder is not
part of what a trial runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clowncar.data.shards import SHARD_NAME, read_header, shard_name
from clowncar.errors import DataError

SPLITS = ("val", "train")
BUILD_INFO = "build.json"
"""What `data build` writes beside its shards."""
TOKENIZER_FILE = "tokenizer.model"
"""The copy of its tokenizer that `data build` keeps beside build.json."""


@dataclass(frozen=True)
class RecordedSplit:
    """What a record says one split holds."""

    allowed: tuple[str, ...]
    """Every shard name the record knows of; a shard of the split outside it is extra."""
    required: tuple[str, ...]
    """The shards that must be there (a fetch may take fewer train shards than the export has)."""
    tokens: int | None
    """The split's tokens, where the record counts them and all of `allowed` is required."""


def on_disk(directory: Path) -> dict[str, list[str]]:
    """Per split, the shard files in `directory` named as a build or a fetch names them, sorted."""
    found: dict[str, list[str]] = {split: [] for split in SPLITS}
    for path in directory.iterdir():
        match = SHARD_NAME.fullmatch(path.name)
        if match and path.is_file():
            found[match.group(1)].append(path.name)
    return {split: sorted(names) for split, names in found.items()}


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _from_build_info(info: dict[str, Any]) -> dict[str, RecordedSplit]:
    splits = info.get("splits")
    record = {}
    for split in SPLITS:
        entry = splits.get(split) if isinstance(splits, dict) else None
        shards = entry.get("shards") if isinstance(entry, dict) else None
        if isinstance(shards, list) and all(isinstance(s, str) for s in shards):
            record[split] = RecordedSplit(tuple(shards), tuple(shards), _count(entry.get("tokens")))
    return record


def _from_manifest(directory: Path) -> dict[str, RecordedSplit]:
    """The fetched export's entry for `directory` (`<root>/datasets/<name>`), if `<root>/manifest.json` has one."""
    if directory.parent.name != "datasets":
        return {}
    try:
        manifest = json.loads((directory.parent.parent / "manifest.json").read_text(encoding="utf-8"))
        entry = next(d for d in manifest["datasets"] if isinstance(d, dict) and d.get("name") == directory.name)
        stats = entry["stats"]
        counts = {"val": _count(stats["files_val"]), "train": _count(stats["files_train"])}
    except (OSError, ValueError, LookupError, StopIteration, TypeError, RecursionError):
        return {}
    record = {}
    for split, count in counts.items():
        if count is not None:
            names = tuple(shard_name(split, i) for i in range(count))
            if split == "val":  # a fetch takes every validation shard
                record[split] = RecordedSplit(names, names, _count(stats.get("tokens_val")))
            else:  # and the first --train-shards train shards
                record[split] = RecordedSplit(names, (), None)
    return record


def read_record(directory: Path) -> tuple[str, dict[str, RecordedSplit]] | None:
    """(the record's file name, what it says per split), or None when the directory records nothing usable."""
    info = read_build_info(directory)
    if info is not None:
        record = _from_build_info(info)
        return (BUILD_INFO, record) if record else None
    record = _from_manifest(directory)
    return ("manifest.json", record) if record else None


def _tokens(directory: Path, names: list[str]) -> int:
    return sum(read_header(directory / name).num_tokens for name in names)


def _split_problem(directory: Path, source: str, split: str, want: RecordedSplit, have: list[str]) -> str | None:
    missing = [name for name in want.required if name not in have]
    extra = [name for name in have if name not in want.allowed]
    tokens = _tokens(directory, have)
    if not missing and not extra and (want.tokens is None or tokens == want.tokens):
        return None
    whole = want.required == want.allowed
    listed = f"{'' if whole else 'up to '}{len(want.allowed)} {split} shards"
    listed += f", {want.tokens:,d} tokens" if want.tokens is not None else ""
    counts = f"{source} lists {listed}; the folder holds {len(have)}, {tokens:,d} tokens"
    if missing:
        what = f"{missing[0]} is missing" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
    elif extra:
        what = f"{extra[0]} is not in it" + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
    else:
        what = f"the {split} shards hold other tokens than it counts (a shard was replaced or rebuilt)"
    return f"{directory} does not match its {source}: {what} ({counts}); rebuild or re-fetch it"


def check_shard_record(directory: Path) -> str | None:
    """DataError, in one line naming the first missing or extra shard and the counts, when `directory` holds a
    record (`read_record`) that its shard files disagree with. Returns the record's name when one was checked."""
    directory = Path(directory)
    found = read_record(directory)
    if found is None:
        return None
    source, record = found
    have = on_disk(directory)
    for split, want in record.items():
        problem = _split_problem(directory, source, split, want, have[split])
        if problem:
            raise DataError(problem)
    return source


def numbering_gaps(directory: Path) -> list[str]:
    """One warning per split whose shard numbers skip one (0, 1, 3): a cheap sign of a lost shard where no record
    says what should be there."""
    warnings = []
    for split, names in on_disk(Path(directory)).items():
        numbers = {int(SHARD_NAME.fullmatch(name).group(2)) for name in names}  # type: ignore[union-attr]
        absent = [i for i in range(max(numbers, default=-1) + 1) if i not in numbers]
        if absent:
            warnings.append(f"{split} shards skip {shard_name(split, absent[0])}"
                            + (f" and {len(absent) - 1} more" if len(absent) > 1 else "")
                            + f" (numbered up to {max(numbers):06d}, {len(names)} present) and no build.json or "
                            "manifest says what belongs here: a shard may have been lost")
    return warnings


JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _build_info_problem(info: Any) -> str | None:
    """What keeps `info` from being the record `data build` writes: an object whose `splits.val` and
    `splits.train` list their shards by name (and count their tokens, where a count is given)."""
    if not isinstance(info, dict):
        return f"it holds a JSON {JSON_KINDS.get(type(info), 'value')}, not an object"
    splits = info.get("splits")
    if not isinstance(splits, dict):
        return "it has no 'splits' object"
    for split in SPLITS:
        entry = splits.get(split)
        if not isinstance(entry, dict):
            return f"it has no splits.{split} object"
        shards = entry.get("shards")
        if not isinstance(shards, list) or not all(isinstance(s, str) for s in shards):
            return f"splits.{split}.shards is not a list of shard names"
        if "tokens" in entry and _count(entry["tokens"]) is None:
            return f"splits.{split}.tokens is {entry['tokens']!r}, not a count of tokens"
    return None


def read_build_info(directory: Path) -> dict[str, Any] | None:
    """`directory`'s build.json, or None where there is none (shards from elsewhere, a FineWeb download). One that
    is there and cannot be read, is not JSON or lacks the splits a build writes is a DataError: read as no record,
    it would turn off the shard-list and tokenizer checks it exists for."""
    path = Path(directory) / BUILD_INFO
    if not os.path.lexists(path):
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        problem = f"cannot read it ({err.strerror or err})"
    except UnicodeDecodeError:
        problem = "not UTF-8 text"
    except json.JSONDecodeError as err:
        problem = f"not JSON ({err.msg.removesuffix(' at')} at line {err.lineno} column {err.colno})"
    except (ValueError, RecursionError):  # nested too deeply for the parser
        problem = "not JSON (nested too deeply)"
    else:
        problem = _build_info_problem(info)
    if problem is not None:
        raise DataError(f"{path} is damaged: {problem}; it no longer says which shards and tokenizer belong in "
                        f"{directory} (rebuild the dataset, or remove build.json to use its shards unchecked)")
    return info


def check_encoded_with(directory: Path, tokenizer: Path) -> None:
    """DataError when `directory` records the tokenizer its shards were encoded with and `tokenizer` is another
    model: each id would be read as another piece, and BPB would count the wrong bytes without any other error.
    `data build` and `data demo` keep a copy beside build.json (compared byte for byte); a fetched export's
    manifest.json names the tokenizer of each dataset (its file name is compared). A directory that records
    neither is not checked."""
    own = Path(directory) / TOKENIZER_FILE
    if read_build_info(directory) is None or not own.is_file():
        _check_manifest_tokenizer(Path(directory), Path(tokenizer))
        return
    try:
        same = own.read_bytes() == Path(tokenizer).read_bytes()
    except OSError as err:
        raise DataError(f"cannot compare the tokenizers {own} and {tokenizer}: {err.strerror or err}") from None
    if not same:
        raise DataError(f"the shards in {directory} were encoded with {own}, not with {tokenizer}: their ids "
                        "would be read as other pieces and BPB would count the wrong bytes (use the tokenizer the "
                        "shards were built with)")


def manifest_tokenizer(directory: Path) -> tuple[str, str] | None:
    """(the manifest's tokenizer name, its model's file name) for a fetched dataset `<root>/datasets/<name>`, from
    `<root>/manifest.json` (`datasets[].tokenizer_name` -> `tokenizers[].model_path`); None where it names none."""
    if directory.parent.name != "datasets":
        return None
    try:
        manifest = json.loads((directory.parent.parent / "manifest.json").read_text(encoding="utf-8"))
        entry = next(d for d in manifest["datasets"] if isinstance(d, dict) and d.get("name") == directory.name)
        name = entry["tokenizer_name"]
        tok = next(t for t in manifest["tokenizers"] if isinstance(t, dict) and t.get("name") == name)
        model = tok.get("model_path") or tok.get("path")
    except (OSError, ValueError, LookupError, StopIteration, TypeError, AttributeError, RecursionError):
        return None
    if not isinstance(name, str) or not isinstance(model, str) or not model.strip():
        return None
    return name, Path(model).name


def _check_manifest_tokenizer(directory: Path, tokenizer: Path) -> None:
    named = manifest_tokenizer(directory)
    if named is not None and tokenizer.name != named[1]:
        raise DataError(f"the shards in {directory} were encoded with {named[1]} (manifest.json's tokenizer "
                        f"{named[0]!r}), not with {tokenizer}: their ids would be read as other pieces and BPB "
                        "would count the wrong bytes (use the tokenizer the shards were fetched with)")
