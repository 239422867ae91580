"""Reading a text corpus as documents: plain text files, directories of `.txt` files, JSONL files."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from clowncar.data.paths import require_regular_file
from clowncar.errors import DataError

DocsPer = Literal["file", "paragraph", "line"]
JSONL_SUFFIXES = (".jsonl", ".ndjson")


def _read_error(path: Path, exc: OSError | UnicodeDecodeError) -> DataError:
    if isinstance(exc, UnicodeDecodeError):
        return DataError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start})")
    return DataError(f"{path}: cannot read ({exc.strerror or exc})")


@dataclass(frozen=True)
class Corpus:
    """An ordered list of input files and how to cut them into documents.

    Plain text files give one document per file, per blank-line separated paragraph or per line
    (`docs_per`); JSONL files give one document per line, the string in `field`. Documents that are empty
    after stripping whitespace are skipped (they would be a lone BOS in the shards).
    """

    files: tuple[Path, ...]
    field: str = "text"
    docs_per: DocsPer = "file"
    origins: tuple[int, ...] = ()
    """For each file, the index of the input (a `--text` argument: a file or a directory) it came from."""

    @classmethod
    def from_paths(cls, paths: Sequence[str | Path], field: str = "text", docs_per: DocsPer = "file") -> Corpus:
        if not paths:
            raise DataError("no input given: pass --text PATH (a text file, a directory of .txt files or JSONL)")
        files: list[Path] = []
        origins: list[int] = []
        for i, raw in enumerate(paths):
            p = Path(raw).expanduser()
            if p.is_dir():
                found = sorted(q for q in p.rglob("*.txt") if q.is_file())
                if not found:
                    raise DataError(f"{p}: directory holds no .txt files")
                files.extend(found)
                origins.extend([i] * len(found))
            elif p.exists():
                require_regular_file(p, "input")  # /dev/zero or a FIFO would be read forever
                files.append(p)
                origins.append(i)
            else:
                raise DataError(f"{p}: input not found")
        return cls(files=tuple(files), field=field, docs_per=docs_per, origins=tuple(origins))

    def documents(self) -> Iterator[str]:
        for docs in self.documents_by_file():
            yield from docs

    def documents_by_file(self) -> Iterator[Iterator[str]]:
        """Each file's documents, file by file (`count` counts them per file)."""
        for path in self.files:
            yield self._jsonl(path) if path.suffix.lower() in JSONL_SUFFIXES else self._text(path)

    def _jsonl(self, path: Path) -> Iterator[str]:
        try:
            with path.open("r", encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
                    except RecursionError:
                        raise DataError(f"{path}:{lineno}: JSON nested too deeply") from None
                    if not isinstance(row, dict) or self.field not in row:
                        raise DataError(f"{path}:{lineno}: no field '{self.field}' (choose one with --field)")
                    text = row[self.field]
                    if not isinstance(text, str):
                        raise DataError(f"{path}:{lineno}: field '{self.field}' is {type(text).__name__}, "
                                        "not a string")
                    if text.strip():
                        yield text
        except (OSError, UnicodeDecodeError) as exc:
            raise _read_error(path, exc) from None

    def _text(self, path: Path) -> Iterator[str]:
        try:
            with path.open("r", encoding="utf-8") as f:
                if self.docs_per == "file":
                    text = f.read()
                    if text.strip():
                        yield text
                    return
                para: list[str] = []
                for line in f:
                    if self.docs_per == "line":
                        if line.strip():
                            yield line.rstrip("\r\n")
                    elif line.strip():
                        para.append(line.rstrip("\r\n"))
                    elif para:
                        yield "\n".join(para)
                        para = []
                if para:
                    yield "\n".join(para)
        except (OSError, UnicodeDecodeError) as exc:
            raise _read_error(path, exc) from None

    def count(self) -> tuple[int, int, list[int]]:
        """(documents, UTF-8 bytes, documents of each file): one full read that also surfaces unreadable files
        before any output."""
        per_file: list[int] = []
        nbytes = 0
        for docs in self.documents_by_file():
            n = 0
            for text in docs:
                n += 1
                nbytes += len(text.encode("utf-8"))
            per_file.append(n)
        return sum(per_file), nbytes, per_file

    def val_inputs(self, val_docs: int, per_file: list[int]) -> list[int]:
        """The inputs (indexes into `from_paths`' paths) that the first `val_docs` documents come from."""
        out: list[int] = []
        left = val_docs
        for origin, docs in zip(self.origins, per_file, strict=True):
            if left <= 0:
                break
            if docs and origin not in out:
                out.append(origin)
            left -= docs
        return out
