"""The importers of the earlier sweeps' files (`sweep_csv.py`, `micro_log.py`, `cadence_tsv.py`) rule by rule, on
short files written here: the column each value goes to, every row that is skipped and why, and every refusal."""

from __future__ import annotations

import datetime as dt

import pytest

from clowncar.store.importers import cadence_tsv, micro_log, sweep_csv
from clowncar.store.importers.base import LegacyFormatError

CSV_HEAD = ",".join(sweep_csv.HEADER) + "\n"
CSV_ROW = "2026-03-25 09:30:00,frug2_001,1.2345,3,1,2,4,0.002,1.0,3.5,0,1000,250,750,80.5,81.2,1234567,why,note\n"


def test_a_csv_row_becomes_one_trial_with_each_column_where_it_belongs():
    (t,) = sweep_csv.parse(CSV_HEAD + CSV_ROW, "f.csv").trials
    assert t.key == "frug2_001"
    assert t.config == {"train": {"cadence": 3, "cadence_offset": 1, "grad_clip_norm": 1.0},
                        "model": {"num_crawler_layers": 2, "crawler_loops": 4, "mlp_mult": 3.5, "model_dim": "auto"},
                        "legacy": {"lr": 0.002}}
    assert t.result == {"status": "ok", "reason": None, "val_bpb": 1.2345, "steps": 1000, "c_steps": 250,
                        "n_steps": 750, "step_avg_ms": 80.5, "train_seconds": 81.2, "params": 1234567,
                        "reasoning": "why", "notes": "note"}
    assert t.started_at == dt.datetime(2026, 3, 25, 9, 30, tzinfo=dt.UTC).timestamp()
    assert sweep_csv.parse(CSV_HEAD + CSV_ROW, "f.csv").per_trial_identity  # a row's id is its own content


def test_csv_times_have_no_zone_and_are_read_as_utc_whatever_the_machines_zone(monkeypatch):
    import time

    try:
        monkeypatch.setenv("TZ", "America/New_York")
        time.tzset()
        (t,) = sweep_csv.parse(CSV_HEAD + CSV_ROW, "f.csv").trials
    finally:
        monkeypatch.undo()
        time.tzset()
    assert t.started_at == dt.datetime(2026, 3, 25, 9, 30, tzinfo=dt.UTC).timestamp()


def test_a_csv_is_this_format_when_its_first_line_is_the_header():
    assert sweep_csv.detect(CSV_HEAD + CSV_ROW) and sweep_csv.detect(CSV_HEAD.rstrip("\n"))
    assert not sweep_csv.detect("timestamp,run_id,val_bpb,x\n")
    assert not sweep_csv.detect("timestamp,run_id,val_bpb,x\n1,num_loops,2\n")  # num_loops must be in the header
    assert not sweep_csv.detect("timestamp,run_id,val_bpb,num_loops x,y\n")  # a column is the whole cell


def test_a_csv_with_old_mac_line_ends_reads_like_one_with_lf():
    text = CSV_HEAD + CSV_ROW + CSV_ROW.replace("frug2_001", "frug2_002")
    lf, cr = sweep_csv.parse(text, "f.csv"), sweep_csv.parse(text.replace("\n", "\r"), "f.csv")
    assert [(t.key, t.result) for t in cr.trials] == [(t.key, t.result) for t in lf.trials]


def test_a_quoted_csv_cell_keeps_its_line_ends():
    row = CSV_ROW.replace("\n", "\r\n").replace(",why,", ',"line one\r\nline two",')
    (t,) = sweep_csv.parse(CSV_HEAD.replace("\n", "\r\n") + row, "f.csv").trials
    assert t.result["reasoning"] == "line one\r\nline two" and t.result["notes"] == "note"


def test_empty_csv_cells_stay_missing_and_a_width_is_kept():
    row = ",frug2_002,1.3,,,,,,,,512,,,,,,,  ,\n"
    (t,) = sweep_csv.parse(CSV_HEAD + row, "f.csv").trials
    assert t.config == {"model": {"model_dim": 512}} and t.started_at is None
    assert t.result == {"status": "ok", "reason": None, "val_bpb": 1.3}


def test_csv_rows_that_cannot_be_trials_are_skipped_with_their_reason():
    parsed = sweep_csv.parse(
        CSV_HEAD + CSV_ROW + "a,b\n" + CSV_ROW.replace("frug2_001", "frug2_003").replace(",3,1,", ",x,1,")
        + CSV_ROW.replace("1.2345", "") + CSV_ROW + CSV_ROW.replace("frug2_001", " ") + ",,,\n", "f.csv")
    assert [(s.line, s.reason) for s in parsed.skipped] == [
        (3, "2 fields, header has 19"), (4, "unreadable value (could not convert string to float: 'x')"),
        (5, "no val_bpb (run without a result)"), (6, "missing or repeated run_id 'frug2_001'"),
        (7, "missing or repeated run_id ''")]
    assert parsed.skipped[0].text == "a,b" and parsed.blank_lines == 1 and len(parsed.trials) == 1
    rows = (CSV_HEAD + CSV_ROW + "a,b\n" + CSV_ROW.replace("frug2_001", "frug2_003").replace(",3,1,", ",x,1,")
            + CSV_ROW.replace("1.2345", "") + CSV_ROW + CSV_ROW.replace("frug2_001", " ")).splitlines()
    assert [s.text for s in parsed.skipped] == rows[2:]  # each skipped row as the file wrote it


def test_blank_rows_are_counted_and_rows_after_them_read():
    parsed = sweep_csv.parse(CSV_HEAD + "\n,,\n" + CSV_ROW + "\n" + CSV_ROW.replace("frug2_001", "frug2_009"),
                             "f.csv")
    assert parsed.blank_lines == 3 and [t.key for t in parsed.trials] == ["frug2_001", "frug2_009"]


def test_a_bad_row_is_skipped_unless_it_is_a_last_line_without_its_line_end():
    for bad in ("a,b", CSV_ROW.rstrip("\n").replace("1234567", "12x")):
        parsed = sweep_csv.parse(CSV_HEAD + bad + "\n" + CSV_ROW.rstrip("\n"), "f.csv")  # in the middle
        assert [s.line for s in parsed.skipped] == [2] and len(parsed.trials) == 1
        parsed = sweep_csv.parse(CSV_HEAD + CSV_ROW + bad + "\n", "f.csv")  # last, with its line end
        assert [s.line for s in parsed.skipped] == [3] and len(parsed.trials) == 1


def test_a_csv_that_is_cut_off_or_not_a_sweep_is_refused():
    with pytest.raises(LegacyFormatError, match=r"^f.csv: last line 3 has 3 of 19 fields \(truncated file\?\)$"):
        sweep_csv.parse(CSV_HEAD + CSV_ROW + "2026,frug,1", "f.csv")
    with pytest.raises(LegacyFormatError, match=r"^f.csv: last line 3 is cut short \(truncated file\?\)$"):
        sweep_csv.parse(CSV_HEAD + CSV_ROW + CSV_ROW.rstrip("\n").replace("1234567", "12x"), "f.csv")
    with pytest.raises(LegacyFormatError, match=r"^f.csv: header lacks column\(s\) reasoning, notes$"):
        sweep_csv.parse(CSV_HEAD.replace(",reasoning,notes", ",a,b"), "f.csv")
    with pytest.raises(LegacyFormatError, match=r"^f.csv: no result rows$"):
        sweep_csv.parse(CSV_HEAD, "f.csv")
    with pytest.raises(LegacyFormatError, match=r"^f.csv: line 2: .*\(truncated file\?\)$"):
        sweep_csv.parse(CSV_HEAD + '2026,"open quote\n', "f.csv")
    # a good last row without its line end is kept
    assert len(sweep_csv.parse(CSV_HEAD + CSV_ROW.rstrip("\n"), "f.csv").trials) == 1


MICRO = """MICRO CRAWLER SWEEP
==========
>>> CONFIG 1: 2f+1cx3 dim 256
step:100/100 [C] loss:3.21
RESULTS — 2f+1cx3
val_loss:   2.5000
val_bpb:    1.4800
params:     1,234,567
flat_params: 800,000 (2 blocks, MLP 4.0x)
crawler_params: 434,567 (1 blocks x3, MLP 2.5x)
effective_depth: 5
dim:        256
steps:      100 (C:25 N:75)
time:       60.5s
avg_ms:     605.0ms/step
log:        logs/run_a.tsv
peak_vram:  1024 MiB
>>> val_bpb: 1.48
>>> CONFIG 2: failed one
something odd
SWEEP COMPLETE
"""


def test_a_results_block_becomes_one_trial_and_the_rest_is_skipped_with_reasons():
    parsed = micro_log.parse(MICRO, "m.log")
    (t,) = parsed.trials
    assert t.key == "run_a"
    assert t.config == {"model": {"num_flat_layers": 2, "num_crawler_layers": 1, "crawler_loops": 3, "mlp_mult": 4.0,
                                  "crawler_mlp_mult": 2.5, "model_dim": 256},
                        "train": {"cadence": 4}}  # C:25 N:75 of 100 steps; the parameter count fits no trigram
    assert t.result == {"status": "ok", "reason": None, "label": "2f+1cx3 dim 256", "val_loss": 2.5, "val_bpb": 1.48,
                        "params": 1234567, "flat_params": 800000, "crawler_params": 434567, "effective_depth": 5,
                        "model_dim": 256, "steps": 100, "c_steps": 25, "n_steps": 75, "train_seconds": 60.5,
                        "step_avg_ms": 605.0, "peak_mem_bytes": 1024 * 2**20}
    assert [(s.line, s.reason) for s in parsed.skipped] == [
        (1, "banner"), (2, "separator"), (4, "progress echo (the RESULTS block has the exact numbers)"),
        (18, "progress echo (the RESULTS block has the exact numbers)"),
        (19, "config has no RESULTS block (run failed?)"), (20, "unrecognized line"), (21, "banner")]
    assert parsed.skipped[4].text == "failed one"
    assert micro_log.detect(MICRO) and micro_log.detect("x\nRESULTS — a\n") and not micro_log.detect("RESULTS a")


def test_micro_log_details_key_texts_separators_and_detection():
    parsed = micro_log.parse(MICRO.replace("logs/run_a.tsv", "out/logs/run_a.tsv").replace("==========", "=-=-"),
                             "m.log")
    assert parsed.trials[0].key == "run_a" and parsed.per_trial_identity
    assert [(s.line, s.reason, s.text) for s in parsed.skipped][1] == (2, "separator", "=-=-")
    assert [s.text for s in parsed.skipped if s.reason == "unrecognized line"] == ["something odd"]
    assert micro_log.parse(MICRO.replace("logs/run_a.tsv", "run_a.tsv"), "m.log").trials[0].key == "run_a"
    assert micro_log.detect("MICRO CRAWLER SWEEP\nnothing yet\n")
    assert micro_log.detect("x" * 1981 + "MICRO CRAWLER SWEEP") and not micro_log.detect("x" * 1982 + "MICRO CRAWLER SWEEP")
    # a complete log without SWEEP COMPLETE (a sweep still going) reads; without its last line end, its last
    # line is still read
    assert len(micro_log.parse(MICRO.replace("SWEEP COMPLETE\n", ""), "m.log").trials) == 1
    assert micro_log.parse(MICRO.rstrip("\n"), "m.log").skipped[-1].text == "SWEEP COMPLETE"


def test_a_crawler_without_loops_and_a_block_without_peak_memory_are_read():
    text = MICRO.replace(" x3, MLP", ", MLP").replace("peak_vram:  1024 MiB\n", "")
    (t,) = micro_log.parse(text, "m.log").trials
    assert "crawler_loops" not in t.config["model"] and "peak_mem_bytes" not in t.result


def test_a_micro_log_that_is_cut_off_or_malformed_is_refused():
    with pytest.raises(LegacyFormatError, match=r"^m.log: RESULTS block ending at line 17 lacks log "
                                                r"\(truncated file\?\)$"):
        micro_log.parse(MICRO.replace("log:        logs/run_a.tsv\n", ""), "m.log")
    last_block = MICRO[:MICRO.index(">>> val_bpb")].replace("time:       60.5s\n", "").replace("log:  ", "x:  ")
    with pytest.raises(LegacyFormatError, match=r"^m.log: RESULTS block ending at line 16 lacks time, log "):
        micro_log.parse(last_block, "m.log")
    with pytest.raises(LegacyFormatError, match=r"^m.log: RESULTS block of '2f\+1cx3 dim 256': flat_params, "
                                                r"crawler_params or steps not in the expected form$"):
        micro_log.parse(MICRO.replace("(C:25 N:75)", "(25/75)"), "m.log")
    with pytest.raises(LegacyFormatError, match=r"^m.log: RESULTS block of '2f\+1cx3 dim 256': empty$"):
        micro_log.parse(MICRO.replace("60.5s", "s"), "m.log")
    with pytest.raises(LegacyFormatError, match=r"^m.log: no complete RESULTS block$"):
        micro_log.parse("MICRO CRAWLER SWEEP\n>>> CONFIG 1: a\n", "m.log")
    with pytest.raises(LegacyFormatError, match=r"^m.log: ends mid-line without SWEEP COMPLETE"):
        micro_log.parse(MICRO.replace("SWEEP COMPLETE\n", "Final eval"), "m.log")
    assert len(micro_log.parse(MICRO.rstrip("\n"), "m.log").trials) == 1  # complete, only the line end missing


TSV = ("step\ttype\ttrain_loss\tval_bpb\tstep_ms\tgravity\n"
       "1\tF\t3.5\t\t100.5\t\n2\tN\t3.4\t\t50.25\t\n2\tEVAL\t\t1.9\t\t\n3\tN\t3.3\t\t\t\n"
       "\n3\tEVAL\t\t1.8\t\t\n")


def test_a_cadence_trace_gives_c_and_n_steps_running_time_and_a_closing_eval():
    parsed = cadence_tsv.parse(TSV, "t.tsv", "trace")
    (t,) = parsed.trials
    assert t.key == "trace" and t.config == {} and parsed.blank_lines == 1
    assert t.steps == [{"step": 1, "kind": "C", "train_loss": 3.5, "elapsed_ms": 100.5},
                       {"step": 2, "kind": "N", "train_loss": 3.4, "elapsed_ms": 150.75},
                       {"step": 3, "kind": "N", "train_loss": 3.3, "elapsed_ms": None}]
    assert t.evals == [{"step": 2, "val_bpb": 1.9, "mode": "standard", "weights": "raw"},
                       {"step": 3, "val_bpb": 1.8, "mode": "standard", "weights": "raw"}]
    assert t.result == {"status": "ok", "reason": None, "steps": 3, "c_steps": 1, "n_steps": 2,
                        "train_seconds": 0.15075, "val_bpb": 1.8}
    assert cadence_tsv.detect(TSV) and cadence_tsv.detect(TSV.replace("\n", "\r\n", 1))
    assert cadence_tsv.detect("step\ttype\ttrain_loss\tval_bpb\tstep_ms \n1\tN\t3\t\t1\n2\tN\t3\t\t1\n")
    assert not cadence_tsv.detect("step\ttype\n") and not cadence_tsv.detect("step type train_loss val_bpb step_ms\n")


def test_cadence_times_are_kept_to_the_nanosecond_without_float_noise():
    text = ("step\ttype\ttrain_loss\tval_bpb\tstep_ms\n1\tN\t3\t\t0.1\n2\tN\t3\t\t0.2\n3\tN\t3\t\t0.0004\n"
            "4\tN\t3\t\t0.0000004\n")
    (t,) = cadence_tsv.parse(text, "t.tsv", "k").trials
    assert [s["elapsed_ms"] for s in t.steps] == [0.1, 0.3, 0.3004, 0.3004]
    assert t.result["train_seconds"] == 0.0003  # seconds to the microsecond


def test_a_five_column_trace_with_crlf_line_ends_reads_like_one_with_lf():
    lf = "step\ttype\ttrain_loss\tval_bpb\tstep_ms\n1\tF\t3.5\t\t10\n\n\nstep\ttype\ttrain_loss\tval_bpb\tstep_ms\n2\tN\t3.4\t\t5\n"
    a, b = cadence_tsv.parse(lf, "t.tsv", "k"), cadence_tsv.parse(lf.replace("\n", "\r\n"), "t.tsv", "k")
    assert a.trials[0].steps == b.trials[0].steps and a.trials[0].result == b.trials[0].result
    assert [(s.line, s.reason) for s in b.skipped] == [(5, "repeated header")] and b.blank_lines == 2


def test_a_trace_that_stops_between_evals_has_no_final_bpb_and_a_note_that_says_why():
    (t,) = cadence_tsv.parse(TSV.removesuffix("3\tEVAL\t\t1.8\t\t\n"), "t.tsv", "k").trials
    assert "val_bpb" not in t.result and len(t.evals) == 1
    assert t.notes == ["no final val_bpb: the trace stops at step 3, 1 steps after its last EVAL (step 2, val_bpb "
                       "1.9, kept as an eval row)"]
    (closed,) = cadence_tsv.parse(TSV, "t.tsv", "k").trials
    assert closed.notes == []
    (no_eval,) = cadence_tsv.parse("step\ttype\ttrain_loss\tval_bpb\tstep_ms\n1\tN\t3\t\t1\n", "t.tsv", "k").trials
    assert no_eval.notes == ["no final val_bpb: the trace has no EVAL row (it stops at step 1)"]


def test_cadence_rows_that_cannot_be_read_are_skipped_and_a_cut_last_row_refuses_the_file():
    bad = TSV + "step\ttype\ttrain_loss\tval_bpb\tstep_ms\tgravity\n4\tX\t3\t\t1\n4\tEVAL\t\t\t\t\nx\tN\t3\t\t1\n4\tN\n4\tN\t3\t\t1X\n"
    parsed = cadence_tsv.parse(bad, "t.tsv", "k")
    assert [(s.line, s.reason) for s in parsed.skipped] == [
        (8, "repeated header"), (9, "unreadable row (type 'X' is not F, N or EVAL)"),
        (10, "unreadable row (EVAL row without val_bpb)"),
        (11, "unreadable row (invalid literal for int() with base 10: 'x')"), (12, "unreadable row (2 fields)"),
        (13, "unreadable row (could not convert string to float: '1X')")]
    assert [s.text for s in parsed.skipped] == bad.splitlines()[7:]
    with pytest.raises(LegacyFormatError, match=r"^t.tsv: last line 8 has 2 of 6 fields \(truncated file\?\)$"):
        cadence_tsv.parse(TSV + "4\tN", "t.tsv", "k")
    with pytest.raises(LegacyFormatError, match=r"^t.tsv: last line 8 is cut short \(truncated file\?\)$"):
        cadence_tsv.parse(TSV + "4\tN\t3.3\t\t1x\t", "t.tsv", "k")
    with pytest.raises(LegacyFormatError, match=r"^t.tsv: no step rows$"):
        cadence_tsv.parse("step\ttype\ttrain_loss\tval_bpb\tstep_ms\n1\tEVAL\t\t1.9\t\n", "t.tsv", "k")
