"""The line grammar (`lines.py`) and the eval-line rules (`finals.py`), rule by rule on lines written here:
stamps, counters, fields, units, decimals, names, script source; eval modes, weights, schemes, repeats and the
result keys a run's evals give."""

from __future__ import annotations

import datetime as dt

import pytest

from clowncar.store.importers.finals import classify, mode_of, named_eval, result_keys
from clowncar.store.importers.lines import Line, number, parse_line


@pytest.mark.parametrize(("raw", "stamp", "body"), [
    ("1776142348.135 step:1/2 loss:3", 1776142348.135, "step:1/2 loss:3"),
    ("177614234 x:1", 177614234.0, "x:1"),  # 9 digits is a unix time; 8 is not
    ("17761423 x:1", None, "17761423 x:1"),
    ("2026-04-13T19:23:20Z INFO seed:1", dt.datetime(2026, 4, 13, 19, 23, 20, tzinfo=dt.UTC).timestamp(), "seed:1"),
    ("2026-04-13 19:23:20,500 INFO: seed:1", dt.datetime(2026, 4, 13, 19, 23, 20, 500000,
                                                         tzinfo=dt.UTC).timestamp(), "seed:1"),
    ("2026-04-13T21:23:20+02:00 [WARNING] seed:1", dt.datetime(2026, 4, 13, 19, 23, 20,
                                                               tzinfo=dt.UTC).timestamp(), "seed:1"),
    ("2026-13-45T19:23:20 seed:1", None, "seed:1"),  # the shape of a stamp, not a date: stripped, not kept
    ("[19:23:20] seed:1", None, "seed:1"),  # a clock time without a date is stripped and not kept
    ("[2026-04-13 19:23:20.25] ERROR seed:1", None, "seed:1"),
])
def test_a_leading_time_stamp_is_read_and_taken_off_the_line(raw, stamp, body):
    ln = parse_line(3, raw)
    assert (ln.stamp, ln.body, ln.number, ln.text) == (stamp, body, 3, raw)


def test_a_stamp_without_a_zone_is_utc_whatever_the_machines_zone(monkeypatch):
    import time

    want = dt.datetime(2026, 4, 13, 19, 23, 20, tzinfo=dt.UTC).timestamp()
    try:
        monkeypatch.setenv("TZ", "Asia/Tokyo")
        time.tzset()
        assert parse_line(1, "2026-04-13 19:23:20 seed:1").stamp == want
        assert parse_line(1, "2026-04-13T19:23:20Z seed:1").stamp == want
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(("raw", "step", "total"), [
    ("step:20/20000 train_loss:3.21", 20, 20000), ("STEP 7 / 9 loss 3", 7, 9), ("step: 7/9 loss:3", 7, 9),
    ("20/20000 train_loss: 3.21", 20, 20000), ("5/10, loss:3", 5, 10), ("5/10| loss:3", 5, 10),
    ("5/10: loss:3", 5, 10), ("5/10", 5, 10), ("[5/10] loss:3", None, None), ("5/10x loss:3", None, None),
    ("x 5/10 loss:3", None, None),
])
def test_a_step_counter_is_read_only_at_the_start_of_the_line(raw, step, total):
    ln = parse_line(1, raw)
    assert (ln.step, ln.total) == (step, total)


def test_fields_keep_their_first_value_lower_cased_key_and_how_they_were_written():
    ln = parse_line(1, "step:5/10 Train_Loss:3.2 train_loss:9 lr=0.1 tok/s: 8e6 (mem:1.5GiB) [JEPA main] a,b:2;c|d:x")
    assert ln.fields == {"train_loss": "3.2", "lr": "0.1", "tok/s": "8e6", "mem": "1.5GiB", "b": "2", "d": "x"}
    assert ln.colon_keys == {"train_loss", "tok/s", "mem", "b", "d"}  # `lr=` is not a colon key
    assert ln.tags == ["JEPA main"] and ln.words == ["a", "c"]
    assert (ln.num("train_loss"), ln.num("missing", "lr"), ln.num("d"), ln.num("mem")) == (3.2, 0.1, None, 1.5)


def test_after_a_counter_a_word_before_a_bare_number_is_a_field():
    ln = parse_line(1, "step 3/9 | loss 3.00 | lr 0.001 | time 12.5s | done")
    assert ln.fields == {"loss": "3.00", "lr": "0.001", "time": "12.5s"}
    assert ln.words == ["loss", "lr", "time", "done"]
    # a number after a `key:value` field or after a tag is no field's value
    assert parse_line(1, "step 3/9 loss:3.0 5 [x] 7").fields == {"loss": "3.0"}
    # without a counter, a bare number is not a value of the word before it
    assert parse_line(1, "loss 3.00 seed: 1").fields == {"seed": "1"}


@pytest.mark.parametrize(("raw", "name"), [
    ("final_int6_sliding_window_exact val_loss:1.89 val_bpb:1.12", "final_int6_sliding_window_exact"),
    ("pre-quantization post-ema val_loss:2.0 val_bpb:1.2", "pre-quantization post-ema"),
    ("quantized_ttt_phased mode:phased val_loss:2.32 val_bpb:1.06", "quantized_ttt_phased mode:phased"),
    ("ttt_sliding:done val_loss=2.7 val_bpb=1.6", "ttt_sliding:done"),
    ("Hyperparameters: lr 3 more", "Hyperparameters:lr"),  # `key: value` with a word for its value
    ("Hyperparameters:", "Hyperparameters"),  # a key with nothing after it is a word
    ("x:", "x"), ("a : 3", "a :"),  # a lone colon is a word of its own
    ("A banner without values", "A banner without values"),
])
def test_a_line_is_named_by_the_words_before_its_first_number(raw, name):
    assert parse_line(1, raw).name == name


def test_a_line_without_a_field_or_counter_is_only_words():
    ln = parse_line(1, "  Model   summary 12 layers  ")
    assert (ln.words, ln.name, ln.fields, ln.step, ln.text) == (["Model", "summary", "12", "layers"],
                                                                 "Model summary 12 layers", {}, None,
                                                                 "Model   summary 12 layers")


@pytest.mark.parametrize("raw", [
    "def main():", "import torch", "    return x", "x = 1", "y += 2", "a == b", 'print(f"step:{s}")', "{",
    '"val_bpb": 1.2', "# step:1/2 loss:3", "@torch.no_grad()", "for i in range(3):", "if step:", "a; b = 2",
    "class Foo(nn.Module):", "lambda x: x",
    # the arguments of a call or signature split over lines: each line ends with a comma
    "        train_seq_len=1024,", "yarn_max_len=4096, train_seq_len=1024, tversky_membership=\"sigmoid\",",
    "            stride=64,", "    num_heads: int,",
])
def test_script_source_and_json_are_marked_as_code_and_never_read(raw):
    ln = parse_line(1, raw)
    assert ln.code and ln.fields == {} and ln.step is None


@pytest.mark.parametrize("raw", ["step:1/2 train_loss:3.2 lr=0.1", "x:1,y:2", "val_bpb: 1.2 (best)",
                                 "Serialized model int8+zlib: 1 bytes", "returns: 3",
                                 "seed=42 model_dim=768 num_layers=10", "x:1, y:2"])
def test_log_lines_that_look_a_little_like_code_are_not_code(raw):
    assert not parse_line(1, raw).code


@pytest.mark.parametrize(("value", "ms"), [
    ("600011ms", 600011.0), ("600011", 600011.0), ("8.2s", 8200.0), ("8sec", 8000.0), ("0.5m", 30000.0),
    ("2min", 120000.0), ("1.5h", 5400000.0), ("3.9x", None), ("fast", None), ("2MS", 2.0),
])
def test_durations_are_read_in_milliseconds_by_their_unit(value, ms):
    ln = parse_line(1, f"step:1/2 train_time:{value} t:5s")
    assert ln.ms("train_time") == ms
    assert ln.ms("nothing", "train_time", "t") == (ms if ms is not None else 5000.0)


@pytest.mark.parametrize(("text", "value"), [
    ("3.21", 3.21), ("-3", -3.0), (".5", 0.5), ("5.", 5.0), ("1e-3", 0.001), ("2.5E+2", 250.0), ("8e6tok", 8e6),
    ("12%", 12.0), ("nan", None), ("-inf", -float("inf")), ("1.2.3", None), ("", None), (None, None), ("e5", None),
])
def test_numbers_are_read_with_their_unit_dropped(text, value):
    got = number(text)
    if text == "nan":
        assert got != got  # NaN: read as a number, equal to nothing
    else:
        assert got == value


@pytest.mark.parametrize(("text", "decimals"), [("1.19692464", 8), ("1.1969", 4), ("2", 0), ("2.", 0), ("3.50s", 2),
                                                 ("x", None)])
def test_decimals_count_what_was_written(text, decimals):
    assert parse_line(1, f"v val_bpb:{text}").decimals("val_bpb") == decimals
    assert parse_line(1, "v val_bpb:1.0").decimals("absent") is None


@pytest.mark.parametrize(("text", "mode"), [
    ("final_int6_ngram8_mix_exact", "ngram"), ("n-gram blend", "ngram"), ("2gram", "ngram"),
    ("legal_ttt_exact", "ttt"), ("quantized_ttt_phased", "ttt"), ("final_int8_sliding_window", "sliding"),
    ("sliding", "sliding"), ("x_sliding_windows", "sliding"), ("final temped", "temp"), ("temperature eval", "temp"),
    ("temp-eval", "temp"),
    ("standard", "standard"), ("nonoverlapping", "standard"), ("final_int8_zlib_roundtrip_exact", None),
    ("attempt", None), ("template", None),
])
def test_an_eval_name_states_its_mode_by_whole_words(text, mode):
    assert mode_of(text) == mode


@pytest.mark.parametrize(("name", "words", "default", "want"), [
    ("final_int8_zlib_roundtrip_exact", [], "standard", ("standard", "quantized", "int8")),
    ("final_int8_zlib_roundtrip_exact", [], "sliding", ("sliding", "quantized", "int8")),
    ("pre-quantization post-ema", [], "standard", ("standard", "raw", None)),
    ("pre_quant ema", ["fp32"], "standard", ("standard", "raw", None)),
    ("raw quantized", [], "standard", ("standard", "quantized", None)),
    ("pre int6", [], "standard", ("standard", "quantized", "int6")),
    ("final", ["ternary"], "standard", ("standard", "quantized", "ternary")),
    ("ema_bf16_sliding", [], "standard", ("sliding", "raw", None)),
    ("unquantized", ["legal_ttt"], "standard", ("ttt", "raw", None)),
    ("final_nf4_then_int8", [], "standard", ("standard", "quantized", "nf4")),
    *[(f"final {word}", [], "standard", ("standard", "raw", None))  # each word alone says raw
      for word in ("pre", "PREQUANT", "raw", "ema", "unquantized", "fp32", "bf16")],
    ("final", ["fp16"], "standard", ("standard", "quantized", "fp16")),
])
def test_an_eval_line_says_its_weights_and_scheme(name, words, default, want):
    assert classify(name, words, default) == want


_LINE_OF: dict[int, Line] = {}  # id of a row _eval made -> its line, for the rows after it


def _eval(raw: str, earlier: list[dict], number_: int = 10) -> dict:
    ln = parse_line(number_, raw)
    row = named_eval(ln, len(earlier), "standard", earlier, [_LINE_OF[id(e)] for e in earlier])
    _LINE_OF[id(row)] = ln
    return row


def test_an_eval_line_becomes_one_row_with_its_numbers_and_where_it_is():
    row = _eval("final_int6_sliding_window_exact val_loss:1.89 val_bpb:1.12 eval_time:8.5s", [], 12)
    assert row == {"seq": 0, "name": "final_int6_sliding_window_exact", "mode": "sliding", "weights": "quantized",
                   "quant": "int6", "step": None, "val_loss": 1.89, "val_bpb": 1.12, "eval_ms": 8500.0, "line": 12,
                   "repeats": None}
    assert _eval("val_bpb: 1.5 loss:2.5 time:3", [])["name"] == "val_bpb"  # no name: named by its metric
    assert (_eval("x val_bpb:1.5 loss:2.5 elapsed:3", [])["val_loss"], _eval("x val_bpb:1.5 elapsed:3", [])["eval_ms"]) \
        == (2.5, 3.0)
    assert len(_eval("a" * 300 + " val_bpb:1.5", [])["name"]) == 200


def test_a_repeated_measurement_keeps_the_first_lines_mode_and_names_it():
    first = _eval("final_int8_sliding_window val_loss:1.89000000 val_bpb:1.12000000", [])
    again = _eval("final_int8_zlib_roundtrip_exact val_loss:1.89000000 val_bpb:1.12000000", [first])
    assert (again["mode"], again["weights"], again["quant"], again["repeats"]) == \
        ("sliding", "quantized", "int8", "final_int8_sliding_window")
    third = _eval("legal_exact val_loss:1.89 val_bpb:1.12", [first, again])  # a repeat of a repeat: the first
    assert third["repeats"] == "final_int8_sliding_window"
    other_loss = _eval("final_int8_zlib_roundtrip_exact val_loss:1.80 val_bpb:1.12", [first])
    assert (other_loss["mode"], other_loss["repeats"]) == ("standard", None)
    # val_bpb alone repeats one only when written to 6 or more decimals
    assert _eval("summary val_bpb:1.120000", [first])["repeats"] == "final_int8_sliding_window"
    assert _eval("summary val_bpb:1.12000", [first])["repeats"] is None
    raw = _eval("pre-quantization post-ema val_loss:2.0 val_bpb:1.3", [])
    assert _eval("best val_bpb:1.300000", [first, raw])["weights"] == "raw"


def test_a_measurement_printed_again_at_another_precision_is_a_repeat():
    done = _eval("ttt_sliding:done val_loss=3.074214 val_bpb=1.336032 elapsed=405.0s", [])
    final = _eval("final_int6_ttt val_loss:3.07421378 val_bpb:1.33603200 eval_time:405410ms", [done])
    assert (final["repeats"], final["mode"], final["quant"]) == ("ttt_sliding:done", "ttt", "int6")
    short = _eval("legal_ttt val_loss:3.0742 val_bpb:1.3360 eval_time:405411ms", [done, final])  # 1.3360: 4 written
    assert short["repeats"] == "ttt_sliding:done"
    rounded = _eval("final_int6_roundtrip val_loss:2.5495 val_bpb:1.1080 eval_time:7776ms", [])
    assert _eval("final_int6_roundtrip_exact val_loss:2.54952146 val_bpb:1.10799265", [rounded])["repeats"] == \
        "final_int6_roundtrip"
    # not a repeat: another value at the shorter precision, or fewer than 4 decimals written by either line
    assert _eval("x_exact val_loss:2.54962146 val_bpb:1.10799265", [rounded])["repeats"] is None
    assert _eval("x_exact val_loss:2.54952146 val_bpb:1.10809265", [rounded])["repeats"] is None
    coarse = _eval("final_roundtrip val_loss:2.550 val_bpb:1.108", [])
    assert _eval("x_exact val_loss:2.54952146 val_bpb:1.10799265", [coarse])["repeats"] is None


def test_result_keys_give_one_value_per_kind_and_the_last_line_as_headline():
    rows = [_eval("pre-quantization post-ema val_loss:2.0 val_bpb:1.3", []),
            _eval("final_int8_zlib_roundtrip val_loss:2.2 val_bpb:1.4", []),
            _eval("final_int8_zlib_roundtrip_exact val_loss:2.1 val_bpb:1.35", []),
            _eval("final_sliding_window val_loss:2.05 val_bpb:1.32", []),
            _eval("ema sliding val_loss:1.9 val_bpb:1.25", []),
            _eval("legal_ttt val_loss:1.8 val_bpb:1.2 eval_time:60s", [], 40)]
    out = result_keys(rows)
    assert out == {"val_loss": 2.0, "val_bpb": 1.3, "q_val_loss": 2.1, "q_val_bpb": 1.35,
                   "q_sliding_val_loss": 2.05, "q_sliding_val_bpb": 1.32, "sliding_val_loss": 1.9,
                   "sliding_val_bpb": 1.25, "q_ttt_val_loss": 1.8, "q_ttt_val_bpb": 1.2,
                   "headline_bpb": 1.2, "headline_loss": 1.8, "headline_name": "legal_ttt", "headline_mode": "ttt",
                   "headline_weights": "quantized", "headline_quant": None, "headline_line": 40,
                   "headline_repeats": None, "evaluated_weights": "quantized"}
    assert result_keys([]) == {}
