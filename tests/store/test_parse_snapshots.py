"""What the importers read from every legacy file, pinned value by value: the challenge's 165 record logs
(through the training-log importer) and the earlier sweeps' CSV, TSV and logs (through the importer each one is
detected as).

`test_records_import.py` and `test_importers.py` check the importers against independent readings (headlines,
step counts, the claims of submission.json, source values); this file pins everything else they store: every
config value, result field (bytes, params, peak memory, train and eval seconds, tokens, the quantization gap),
named eval (mode, weights, scheme, repeats, line), step and eval row, and the reason each skipped line was
skipped. The snapshots (`assets/records_parse_snapshot.json` and `assets/legacy_parse_snapshot.json`, one line
per file) were read against the files when they were written; when an importer changes on purpose, rewrite them
with
`CLOWNCAR_REGEN_GOLDEN=1 PYTHONPATH=$PWD python -m pytest -q -p no:xdist tests/store -k snapshot`
and let the diff say what changed."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from clowncar.store.importers import parse_file, train_log
from clowncar.store.importers.base import LegacyFormatError, Parsed

ASSETS = Path(__file__).parent / "assets"
LEGACY_FOLDERS = ("cadence_tsv", "micro_crawler", "sweep_csv", "train_logs")


def _digest(rows: Any) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]


def _summary(parsed: Parsed) -> dict[str, Any]:
    """Every stored value of a parsed log; long row lists as (count, digest, last rows)."""
    reasons: dict[str, list[int]] = {}
    for s in parsed.skipped:
        reasons.setdefault(s.reason, []).append(s.line)
    trials = [{"key": t.key, "config": t.config, "result": t.result, "seed": t.seed, "status": t.status,
               "started_at": t.started_at, "steps": [len(t.steps), _digest(t.steps), t.steps[-1:]],
               "evals": [len(t.evals), _digest(t.evals), t.evals[-2:]], "named_evals": t.named_evals}
              for t in parsed.trials]
    return {"format": parsed.format, "trials": trials,
            "skipped": {k: [len(v), _digest(v)] for k, v in reasons.items()},
            "skipped_texts": _digest([s.text for s in parsed.skipped]),
            "blank_lines": [parsed.blank_lines, _digest(sorted(parsed.blank_at))],
            "unstored_fields": parsed.unstored_fields}


def _read_records(records: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted(records.rglob("*")):
        if path.suffix not in (".log", ".txt") or not path.is_file():
            continue
        rel = str(path.relative_to(records))
        try:
            out[rel] = _summary(train_log.parse(path.read_text(errors="replace"), rel))
        except LegacyFormatError as err:
            out[rel] = {"refused": type(err).__name__, "message": str(err)}
    return out


def _first_difference(got: Any, want: Any, where: str = "") -> str | None:
    if isinstance(got, dict) and isinstance(want, dict):
        for k in sorted(set(got) | set(want)):
            if k not in got or k not in want:
                return f"{where}/{k}: only in {'the snapshot' if k in want else 'this run'}"
            if (d := _first_difference(got[k], want[k], f"{where}/{k}")) is not None:
                return d
        return None
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            if (d := _first_difference(g, w, f"{where}[{i}]")) is not None:
                return d
        return None
    # floats compare exactly: every one is read from the log's text or is one subtraction of two of them
    return None if got == want and type(got) is type(want) else f"{where}: {got!r} here, {want!r} in the snapshot"


def _check(name: str, got: dict[str, Any]) -> dict[str, Any]:
    got = json.loads(json.dumps(got))
    path = ASSETS / f"{name}.json"
    if os.environ.get("CLOWNCAR_REGEN_GOLDEN"):
        path.write_text("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v, sort_keys=True)}"
                                             for k, v in got.items()) + "\n}\n")
    want = json.loads(path.read_text())
    assert (diff := _first_difference(got, want)) is None, diff
    return want


def test_every_record_log_parses_as_its_snapshot(records):
    want = _check("records_parse_snapshot", _read_records(records))
    assert len(want) == 165  # every .log / .txt of the records folder


def test_every_legacy_sweep_file_parses_as_its_snapshot(legacy_runs):
    got = {}
    for folder in LEGACY_FOLDERS:
        for path in sorted((legacy_runs / folder).rglob("*")):
            if path.is_file():
                got[str(path.relative_to(legacy_runs))] = _summary(parse_file(path))
    want = _check("legacy_parse_snapshot", got)
    assert [v["format"] for v in want.values()] == ["cadence-tsv"] * 3 + ["micro-crawler-log", "frugendorff-csv"] + \
        ["training-log"] * 2
