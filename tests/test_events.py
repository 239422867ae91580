"""A trial's files as its readers see them: events.jsonl read from an offset returns complete records only (a line
still being written waits for the next read; a torn or garbage line is skipped, never fatal), result.json is
replaced whole or not at all, and NaN or inf never reaches a file that other programs parse."""

from __future__ import annotations

import json
import math
from pathlib import Path

from clowncar.events import (
    RESULT_METRICS,
    RESULT_STATUSES,
    TRIAL_STATUSES,
    EventWriter,
    read_events,
    read_result,
    write_json_atomic,
)


def test_each_event_is_one_flushed_compact_line_and_non_finite_numbers_are_null(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "events.jsonl"  # the folders are made
    with EventWriter(path) as w:
        w.write("step", step=1, train_loss=float("nan"), ok=[1.5, float("inf"), (2, -math.inf)],
                nested={"a": {"b": float("-inf"), "c": "x"}})
        assert path.read_text() == ('{"event":"step","step":1,"train_loss":null,"ok":[1.5,null,[2,null]],'
                                    '"nested":{"a":{"b":null,"c":"x"}}}\n')  # flushed before close
    with EventWriter(path) as w:  # a second writer appends
        w.write("final", result={"val_bpb": 1.25})
    assert [e["event"] for e in read_events(path)[0]] == ["step", "final"]


def test_reading_from_an_offset_returns_whole_lines_and_where_to_go_on(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    assert read_events(path, 7) == ([], 7)  # no file yet
    path.write_bytes(b'{"event":"a"}\n\n{"event":"b"}\n{"event":"c"')
    records, offset = read_events(path)
    assert records == [{"event": "a"}, {"event": "b"}] and offset == 29
    assert read_events(path, offset) == ([], offset)  # the half-written line waits
    with path.open("ab") as f:
        f.write(b',"step":3}\n')
    assert read_events(path, offset) == ([{"event": "c", "step": 3}], path.stat().st_size)
    path.write_bytes(b'{"event":"only part')
    assert read_events(path) == ([], 0)
    path.write_bytes(b'\n{"event":"next')  # a blank first line is passed over
    assert read_events(path) == ([], 1)
    path.write_bytes(b'{"event":"a"}\n1')  # the start of a number being written is no record yet
    assert read_events(path) == ([{"event": "a"}], 14)


def test_a_torn_or_garbage_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"event":"a"}\n{"event":"b", "x\n\xff\xfe not json\n' + b"[" * 100_000 + b"\n"
                     + b'{"event":"c"}\n')
    records, offset = read_events(path)
    assert records == [{"event": "a"}, {"event": "c"}] and offset == path.stat().st_size


def test_a_json_file_is_replaced_whole_sorted_and_without_nan(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text('{"old": true}\n')
    write_json_atomic(path, {"val_bpb": float("nan"), "b": [float("inf")], "a": 1})
    assert path.read_text() == '{\n  "a": 1,\n  "b": [\n    null\n  ],\n  "val_bpb": null\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary left beside it
    assert read_result(path) == {"a": 1, "b": [None], "val_bpb": None}


def test_a_result_that_cannot_be_read_as_an_object_is_none(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    assert read_result(path) is None
    for text in ("[1, 2]", "{not json", "[" * 100_000, "7"):
        path.write_text(text)
        assert read_result(path) is None
    path.write_bytes(b"\xff\xfe")
    assert read_result(path) is None
    path.write_text(json.dumps({"status": "ok"}))
    assert read_result(path) == {"status": "ok"}


def test_statuses_and_metrics_are_the_documented_ones() -> None:
    assert RESULT_STATUSES == ("ok", "diverged", "oom", "error", "rejected")
    assert TRIAL_STATUSES == ("ok", "diverged", "oom", "error", "rejected", "crashed", "stopped", "pruned", "running")
    assert {"val_bpb", "q_sliding_val_bpb", "quant_gap", "artifact_bytes"} <= set(RESULT_METRICS)
    assert len(set(RESULT_METRICS)) == len(RESULT_METRICS) == 24
