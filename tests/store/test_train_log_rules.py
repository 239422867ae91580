"""The training-log importer (`train_log.py`) rule by rule, on short logs written here: what each kind of line
becomes, which header values are config, what the summary lines give, how runs are split, and the messages
for logs that are cut off or are not training logs."""

from __future__ import annotations

import pytest

from clowncar.store.importers.base import LegacyFormatError, NotATrainingLog
from clowncar.store.importers.train_log import detect, parse

END = "final_int8_zlib_roundtrip_exact val_loss:2.10000000 val_bpb:1.30000000\n"


def _one(text: str):
    parsed = parse(text, "run.log")
    (trial,) = parsed.trials
    return trial, parsed


def _skips(parsed) -> dict[int, str]:
    return {s.line: s.reason for s in parsed.skipped}


def test_every_line_that_is_not_stored_is_skipped_with_its_reason():
    trial, parsed = _one(
        "W1203 12:00:00 torch warning\n"            # 1 noise
        "NCCL INFO Bootstrap\n"                     # 2 noise
        "[rank0]: something\n"                      # 3 noise
        "*****\n"                                   # 4 noise
        "Setting OMP_NUM_THREADS environment variable\n"  # 5 noise
        "Running: torchrun train.py\n"              # 6 noise
        "x = torch.zeros(3)\n"                      # 7 script source
        "warmup_step:1/20\n"                        # 8 compile warm-up
        "step:0/2 tok/s:5\n"                        # 9 progress without a metric
        "|---|---|\n"                               # 10 table
        "==== banner ====\n"                        # 11 table
        "Training a model\n"                        # 12 prose
        "foo:bar\n"                                 # 13 no value we store
        "step:1/2 train_loss:3.0\n"
        "nothing here NCCL noise at the end\n"      # 15 noise anywhere: NCCL
        "step:2/2 train_loss:2.9\n" + END)
    assert _skips(parsed) == {
        1: "torchrun/NCCL noise", 2: "torchrun/NCCL noise", 3: "torchrun/NCCL noise", 4: "torchrun/NCCL noise",
        5: "torchrun/NCCL noise", 6: "torchrun/NCCL noise", 7: "script source",
        8: "compile warm-up step (weights restored after it)", 9: "progress line without a train or val metric",
        10: "separator or table", 11: "separator or table", 12: "text without a value (banner or prose)",
        13: "no value we store", 15: "torchrun/NCCL noise"}
    assert [s.text for s in parsed.skipped][:2] == ["W1203 12:00:00 torch warning", "NCCL INFO Bootstrap"]
    assert [s["step"] for s in trial.steps] == [1, 2]


def test_header_values_become_config_with_their_types_and_the_first_value_wins():
    trial, _ = _one(
        "seed:1337\ntrain_batch_tokens:1024 train_seq_len:256 iterations:2 warmup_steps:20\n"
        "max_wallclock_seconds:600 matrix_lr:0.04 scalar_lr:0.02\n"
        "num_heads:8 num_kv_heads:4 num_layers:11 model_dim:512 vocab_size:1024 mlp_mult:3 eval_stride:64\n"
        "seed:42 model_dim=768 iterations=9\n"  # a later value is ignored, `k:v` or `k=v`
        "step:1/2 train_loss:3.0\nstep:2/2 train_loss:2.9\n" + END)
    assert trial.config == {
        "train": {"seed": 1337, "train_batch_tokens": 1024, "train_seq_len": 256, "iterations": 2,
                  "warmup_steps": 20, "max_wallclock_seconds": 600.0, "matrix_lr": 0.04, "scalar_lr": 0.02},
        "model": {"num_heads": 8, "num_kv_heads": 4, "num_layers": 11, "model_dim": 512, "vocab_size": 1024,
                  "mlp_mult": 3.0},
        "eval": {"stride": 64}}
    types = {k: type(v) for k, v in trial.config["train"].items()}
    assert types["seed"] is int and types["max_wallclock_seconds"] is float and types["iterations"] is int
    assert type(trial.config["model"]["mlp_mult"]) is float and trial.seed == 1337


def test_k_eq_v_header_fields_are_read_as_settings_like_k_colon_v_ones():
    # a hyperparameter dump (2026-03-24_74M_Ternary line 1441): `k=v` fields, the same keys as `k:v` headers
    trial, parsed = _one(
        "--- Hyperparameters ---\n"
        "adam_eps=1e-08 data_path=./data/datasets/fineweb10B_sp8192 iterations=10000 matrix_lr=0.04 "
        "max_wallclock_seconds=599.0 mlp_mult=4 model_dim=768 num_heads=8 num_kv_heads=4 num_layers=10 "
        "scalar_lr=0.02 seed=42 tie_embeddings=1 train_batch_tokens=524288 train_seq_len=1024 vocab_size=8192 "
        "warmup_steps=5\n"
        "  SEED=7 MODEL_DIM=512\n"  # a later value is ignored, whatever its case
        "step:1/1 train_loss:3.0\n" + END)
    assert trial.config == {
        "train": {"seed": 42, "train_batch_tokens": 524288, "train_seq_len": 1024, "iterations": 10000,
                  "warmup_steps": 5, "max_wallclock_seconds": 599.0, "matrix_lr": 0.04, "scalar_lr": 0.02},
        "model": {"num_heads": 8, "num_kv_heads": 4, "num_layers": 10, "model_dim": 768, "vocab_size": 8192,
                  "mlp_mult": 4.0}}
    assert trial.seed == 42 and _skips(parsed) == {1: "separator or table"}
    trial, _ = _one("world_size=8 model_params=17059912\nstep:1/1 train_loss:3.0\n" + END)
    assert (trial.result["params"], trial.result["provenance"]["world_size"]) == (17059912, 8)


def test_k_eq_v_in_script_source_or_in_a_value_is_not_a_setting():
    trial, parsed = _one(
        "class Block(nn.Module):\n"
        "    def __init__(self, dim, num_heads, rope_base, group_size=64,\n"
        "                 yarn_max_len=4096, train_seq_len=1024, tversky_membership=\"sigmoid\",\n"
        "                 diff_attn=False):\n"
        "            stride=64,\n"                   # a call's arguments, one a line
        "out_dir=runs/seed=7 cmd=--seed=3\n"        # `=` inside a value or a flag
        "python train.py --seed=5 --iterations=9\n"  # a command line's flags
        "step:1/1 train_loss:3.0\n" + END)
    assert trial.config == {} and trial.seed is None
    assert _skips(parsed) == {1: "script source", 2: "script source", 3: "script source", 4: "script source",
                              5: "script source", 6: "no value we store",
                              7: "text without a value (banner or prose)"}


def test_summary_lines_give_params_world_size_memory_bytes_and_times():
    trial, parsed = _one(
        "model_params:17059912\nworld_size:8\ntie_embeddings:True embed_lr:0.05\n"
        "train_batch_tokens:1000\n"
        "step:1/4 train_loss:3.0 train_time:100ms\nstep:2/4 train_loss:2.9 train_time:200ms\n"
        "step:2/4 val_loss:2.5 val_bpb:1.5 train_time:0.5s\n"
        "stopping_early: wallclock_cap train_time:600011ms step:2/4\n"
        "peak memory allocated: 10184 MiB reserved: 10498 MiB\n"
        "Serialized model int8+zlib: 15814468 bytes\nCode size: 58380 bytes\n"
        "Total submission size int8+zlib: 15872848 bytes\n"
        "final_int8_zlib_roundtrip_exact val_loss:2.60000000 val_bpb:1.56000000 eval_time:1500ms\n"
        "final_sliding_window_exact val_loss:2.55000000 val_bpb:1.54000000 eval_time:2.5s\n")
    r = trial.result
    assert {k: r[k] for k in ("params", "provenance", "peak_mem_bytes", "artifact_file_bytes", "artifact_code_bytes",
                              "artifact_bytes", "train_seconds", "steps", "tokens_seen", "eval_seconds")} == {
        "params": 17059912, "provenance": {"world_size": 8, "run": "1 of 1"}, "peak_mem_bytes": 10184 * 2**20,
        "artifact_file_bytes": 15814468, "artifact_code_bytes": 58380, "artifact_bytes": 15872848,
        "train_seconds": 600.011, "steps": 2, "tokens_seen": 2000, "eval_seconds": 4.0}
    assert (r["val_bpb"], r["q_val_bpb"], r["quant_gap"]) == (1.5, 1.56, 1.56 - 1.5)
    assert trial.config["train"]["tied_embed_lr"] == 0.05
    assert [s["tokens"] for s in trial.steps] == [1000, 2000]
    assert parsed.skipped == []


BYTE_FORMS = [  # (the byte lines of a run as the records print them, artifact_bytes, file bytes, code bytes)
    ("Serialized model: 111568154 bytes\nCode size: 80288 bytes\nTotal submission size: 111648442 bytes\n"
     "Serialized model rdquant+zstd: 16558180 bytes\nTotal submission size: 16638468 bytes\n",  # DGAttention
     16638468, 16558180, 80288),
    ("Raw model: 85587955 bytes | Code: 70969 bytes | Total: 85658924\n"
     "INT7+zlib model: 15370972 bytes | Total submission: 15441941 bytes\n", 15441941, 15370972, 70969),  # Legendre
    ("Serialized model: 135418173 bytes\nCode size (uncompressed): 122501 bytes\n"
     "Code size (compressed): 27555 bytes\nSerialized model quantized+brotli: 15908674 bytes\n"
     "1776142348.5 Total submission size quantized+brotli: 15936229 bytes\n", 15936229, 15908674, 27555),
    ("Serialized model: 67224983 bytes\nCode size: 47642 bytes\nTotal submission size: 67272625 bytes\n"
     "Serialized model int8+zlib: 15815847 bytes (payload:17178912 raw_torch:17224025 payload_ratio:3.91x)\n"
     "Total submission size int8+zlib: 15863489 bytes\n", 15863489, 15815847, 47642),  # the baseline
    ("Total submission size: 15863489 bytes\n", 15863489, None, None),  # a bare total and no model line
    # only the unquantized checkpoint's sizes: no artifact was printed
    ("Serialized model: 67224983 bytes\nCode size: 47642 bytes\nTotal submission size: 67272625 bytes\n",
     None, None, 47642),
    # the same, labelled Raw (any case): its size and the bare total after it are no artifact's
    ("Raw model: 85587955 bytes\nCode: 70969 bytes\nTotal submission: 85658924 bytes\n", None, None, 70969),
]


@pytest.mark.parametrize(("lines", "total", "model", "code"), BYTE_FORMS)
def test_the_artifact_bytes_are_read_from_every_form_and_never_from_the_unquantized_checkpoint(
        lines: str, total: int | None, model: int | None, code: int | None) -> None:
    trial, parsed = _one("step:1/2 train_loss:3.0\nstep:2/2 train_loss:2.9\n" + lines + END)
    got = (trial.result.get("artifact_bytes"), trial.result.get("artifact_file_bytes"),
           trial.result.get("artifact_code_bytes"))
    assert got == (total, model, code)
    unquantized = {s.text for s in parsed.skipped if "bytes" in s.text}
    assert unquantized <= {"Serialized model: 111568154 bytes", "Total submission size: 111648442 bytes",
                           "Serialized model: 135418173 bytes", "Code size (uncompressed): 122501 bytes",
                           "Serialized model: 67224983 bytes", "Total submission size: 67272625 bytes",
                           "Raw model: 85587955 bytes", "Total submission: 85658924 bytes"}


def test_eval_seconds_count_a_measurement_printed_again_once_with_its_last_time():
    trial, _ = _one(
        "step:1/2 train_loss:3.0\nstep:2/2 train_loss:2.9\n"
        "final_int6_roundtrip val_loss:2.5495 val_bpb:1.1080 eval_time:7776ms\n"
        "final_int6_roundtrip_exact val_loss:2.54952146 val_bpb:1.10799265\n"   # the same, no time of its own
        "ttt_sliding:done val_loss=3.074214 val_bpb=1.336032 elapsed=405.0s\n"
        "final_int6_ttt val_loss:3.07421378 val_bpb:1.33603200 eval_time:405410ms\n"  # the same, timed in ms
        "legal_ttt val_loss:3.0742 val_bpb:1.3360 eval_time:405411ms\n"          # the same again, 4 decimals
        "other_ttt val_loss:3.0743 val_bpb:1.3360 eval_time:10000ms\n")          # another measurement
    named = trial.named_evals
    assert [e["repeats"] for e in named] == [None, "final_int6_roundtrip", None, "ttt_sliding:done",
                                             "ttt_sliding:done", None]
    assert named[3]["quant"] == "int6"  # the repeat keeps the scheme its first line did not name
    assert trial.result["eval_seconds"] == (7776 + 405411 + 10000) / 1000


def test_train_seconds_come_from_the_last_eval_when_the_run_did_not_stop_early():
    trial, _ = _one("step:1/2 train_loss:3.0 train_time:1000ms\nstep:2/2 val_loss:2.5 val_bpb:1.5 train_time:2.5s\n"
                    "step:2/2 train_loss:2.9 train_time:3000ms\n")
    assert trial.result["train_seconds"] == 2.5 and "train_seconds_at_eval" not in trial.result
    assert "tokens_seen" not in trial.result and trial.steps[0]["tokens"] is None
    assert "tied_embed_lr" not in trial.config.get("train", {})
    trial, _ = _one("tie_embeddings:False embed_lr:0.6\nstep:1/1 train_loss:3.0\n")
    assert trial.config == {} and trial.result["train_seconds"] is None


def test_step_lines_give_loss_time_lr_and_phase_and_count_fields_we_do_not_store():
    trial, parsed = _one(
        "step:1/4 [JEPA pretrain] train_loss:3.0 train_time:1.5s lr_mul:0.5 grad:1\n"
        "step:2/4 loss:2.9 t:2s lr_scale:0.25 grad:2 mem:3\n"
        "step:3/4 fitness:-3.0 time:0.1m [averylongphasename x]\nstep:4/4 loss:2.8 elapsed:1s\n" + END)
    assert trial.steps == [
        {"step": 1, "train_loss": 3.0, "elapsed_ms": 1500.0, "lr_scale": 0.5, "phase": "JEPA", "tokens": None},
        {"step": 2, "train_loss": 2.9, "elapsed_ms": 2000.0, "lr_scale": 0.25, "phase": None, "tokens": None},
        {"step": 3, "train_loss": None, "elapsed_ms": 6000.0, "lr_scale": None, "phase": "averylongp",
         "tokens": None},
        {"step": 4, "train_loss": 2.8, "elapsed_ms": 1000.0, "lr_scale": None, "phase": None, "tokens": None}]
    assert parsed.unstored_fields == {"grad": 2, "mem": 1, "fitness": 1}
    trial, _ = _one("step:1/1 [ ] train_loss:3.0\n")  # an empty tag is no phase
    assert trial.steps[0]["phase"] is None


def test_a_step_or_eval_printed_twice_is_kept_once_and_the_repeat_skipped():
    trial, parsed = _one("step:1/2 train_loss:3.0\nstep:1/2 train_loss:3.1\nstep:2/2 val_loss:2.5 val_bpb:1.5\n"
                         "step:2/2 val_loss:2.6 val_bpb:1.6\nstep:2/2 train_loss:2.9\n")
    assert _skips(parsed) == {2: "repeats step 1 of line 1", 4: "repeats the eval at step 2 of line 3"}
    assert [s.text for s in parsed.skipped] == ["step:1/2 train_loss:3.1", "step:2/2 val_loss:2.6 val_bpb:1.6"]
    assert [s["train_loss"] for s in trial.steps] == [3.0, 2.9]
    assert trial.evals == [{"step": 2, "val_loss": 2.5, "val_bpb": 1.5, "mode": "standard", "weights": "raw"}]


def test_the_raw_metric_is_the_last_eval_after_training_and_quantized_evals_join_the_eval_table():
    trial, _ = _one(
        "step:0/3 val_loss:6.9 val_bpb:4.0\nstep:1/3 train_loss:3.0\nstep:2/3 val_loss:2.5 val_bpb:1.5\n"
        "step:3/3 train_loss:2.9\nstep:3/3 val_loss:2.4 val_bpb:1.45\n"
        "final_int8_roundtrip val_loss:2.7 val_bpb:1.7\nfinal_int8_roundtrip_exact val_loss:2.60 val_bpb:1.60\n"
        "final_sliding_window val_loss:2.50 val_bpb:1.55\npre-quantization post-ema val_loss:2.3 val_bpb:1.4\n")
    r = trial.result
    assert (r["val_bpb"], r["val_loss"], r["q_val_bpb"]) == (1.4, 2.3, 1.6)  # the named raw eval wins
    assert r["quant_gap"] == 1.6 - 1.4 and r["steps"] == 3
    assert trial.evals[3:] == [
        {"step": 3, "val_loss": 2.60, "val_bpb": 1.60, "mode": "standard", "weights": "quantized"},
        {"step": 3, "val_loss": 2.50, "val_bpb": 1.55, "mode": "sliding", "weights": "quantized"}]
    assert [e["step"] for e in trial.named_evals] == [3, 3, 3, 3]
    trial, _ = _one("step:0/1 val_loss:6.9 val_bpb:4.0\nstep:1/1 train_loss:3.0\n")
    assert "val_bpb" not in trial.result and "quant_gap" not in trial.result  # step 0 is before training
    trial, _ = _one("step:1/1 train_loss:3.0\nstep:1/1 val_loss:2.9 val_bpb:1.9\n")
    assert trial.result["val_bpb"] == 1.9  # step 1 is after one step of training


def test_a_declared_eval_mode_applies_to_the_eval_lines_after_it():
    trial, _ = _one("step:1/1 train_loss:3.0\nfinal_eval_mode:sliding_window stride:64\n" + END)
    assert (trial.named_evals[0]["mode"], trial.config["eval"]["stride"]) == ("sliding", 64)
    assert trial.result["q_sliding_val_bpb"] == 1.3
    trial, _ = _one("eval_mode:whatever\nstep:1/1 train_loss:3.0\n" + END)  # an unknown mode keeps the default
    assert trial.named_evals[0]["mode"] == "standard" and "eval" not in trial.config


def test_the_stride_of_the_eval_line_is_the_runs_eval_stride_and_tells_runs_at_two_strides_apart():
    # two runs of one file scored at strides 256 and 64 (as 2026-03-19_MixedQuant prints them)
    parsed = parse("step:1/1 train_loss:3.0\n"
                   "final_sliding_window_eval_exact stride:256 val_loss:2.04 val_bpb:1.21\n"
                   "step:1/2 train_loss:3.1\nstep:2/2 train_loss:3.0\n"
                   "final_sliding_window_eval_exact stride:64 val_loss:1.96 val_bpb:1.16\n", "x.log")
    assert [t.config.get("eval") for t in parsed.trials] == [{"stride": 256}, {"stride": 64}]
    # the eval line produced the number: its stride wins over a header's (either order), in either form
    for text in ("eval_stride:64\nstep:1/1 train_loss:3.0\n", "step:1/1 train_loss:3.0\neval_stride:64\n",
                 "final_eval_mode:sliding_window stride:64\nstep:1/1 train_loss:3.0\n"):
        trial, _ = _one(text + "final_sliding val_loss:2.9 val_bpb:1.15 (stride=16, T=0.90) eval_time:429311ms\n")
        assert trial.config["eval"] == {"stride": 16}, text
    # the last eval line that names a stride gives it; an eval line without one keeps what the log said
    trial, _ = _one("eval_stride:64\nstep:1/1 train_loss:3.0\n"
                    "final_sliding_window val_loss:2.0 val_bpb:1.2 stride:32\nlegal_ttt_exact val_loss:1.9 "
                    "val_bpb:1.1\n")
    assert trial.config["eval"] == {"stride": 32}
    trial, _ = _one("eval_stride:64\nstep:1/1 train_loss:3.0\nfinal_sliding_window val_loss:2.0 val_bpb:1.2\n")
    assert trial.config["eval"] == {"stride": 64}


def test_the_first_time_stamp_is_the_start_time_of_its_run():
    trial, _ = _one("banner\n1776142348.5 step:1/1 train_loss:3.0\n1776142999.0 " + END)
    assert trial.started_at == 1776142348.5


def test_a_step_counter_that_goes_back_or_changes_total_starts_a_new_run_with_the_headers_before_it():
    parsed = parse("seed:1\nstep:1/2 train_loss:3.0\nstep:2/2 train_loss:2.9\n" + END +
                   "seed:2\nstep:1/2 train_loss:3.5\nstep:2/2 train_loss:3.4\n"  # goes back
                   "seed:3\nstep:3/5 train_loss:3.3\nstep:5/5 train_loss:3.2\n", "x.log")  # new total
    assert [(t.key, t.seed, [s["step"] for s in t.steps]) for t in parsed.trials] == [
        ("run1", 1, [1, 2]), ("run2", 2, [1, 2]), ("run3", 3, [3, 5])]
    assert [t.result["provenance"]["run"] for t in parsed.trials] == ["1 of 3", "2 of 3", "3 of 3"]
    assert parsed.trials[0].result["headline_bpb"] == 1.3 and "headline_bpb" not in parsed.trials[1].result


def test_a_run_printed_twice_is_one_trial_and_its_copy_is_skipped_line_by_line():
    run = "seed:42\nstep:1/2 train_loss:3.0 train_time:10ms\nstep:2/2 train_loss:2.9 train_time:20ms\n" + END
    parsed = parse("Running with SEED=42\n" + run + "====\n" + run, "x.log")  # a wrapper's output, then the log
    (trial,) = parsed.trials
    assert (trial.key, trial.seed, trial.result["provenance"]["run"]) == ("run1", 42, "1 of 1")
    copies = [s.line for s in parsed.skipped if s.reason == "a second copy of an earlier run (the log holds it twice)"]
    assert copies == [6, 7, 8, 9, 10]  # the whole copy, from the line after the first run's eval
    other_time = run.replace("20ms", "21ms")  # the same numbers at another wall-clock time: a second run
    assert len(parse(run + other_time, "x.log").trials) == 2
    other_score = run.replace("val_bpb:1.3", "val_bpb:1.4")  # the same steps, another final score: a second run
    assert other_score != run and len(parse(run + other_score, "x.log").trials) == 2
    # a run after the copy is still read, and the copy's skips add to the lines skipped before it
    later = "seed:7\nstep:1/1 train_loss:3.3 train_time:5ms\n" + END
    parsed = parse("NCCL INFO bpb noise\n" + run + run + later, "x.log")
    assert [t.seed for t in parsed.trials] == [42, 7]
    assert [(s.line, s.reason) for s in parsed.skipped] == [(1, "torchrun/NCCL noise")] + [
        (n, "a second copy of an earlier run (the log holds it twice)") for n in (6, 7, 8, 9)]
    thrice = parse(run * 3, "x.log")  # both copies are skipped, line by line
    assert len(thrice.trials) == 1 and [s.line for s in thrice.skipped] == list(range(5, 13))


def test_a_run_cut_off_before_its_last_step_refuses_the_file_and_says_where():
    with pytest.raises(LegacyFormatError) as err:
        parse("step:1/9 train_loss:3.0\nstep:2/9 train_loss:2.9\n", "cut.log")
    assert str(err.value) == (
        "cut.log: run 1 stops at step 2/9 (line 2) with no final/eval line after it: expected training to reach "
        "its last step, a stopping_early line or a line such as `final_int8_zlib_roundtrip_exact val_loss:X "
        "val_bpb:X`; found none, so the log is cut off (run still going, or file truncated; --keep-cut-off stores it as a "
        "crashed trial)")
    # an earlier run of the file that stops short is a run someone restarted: it is kept
    parsed = parse("step:1/9 train_loss:3.0\nstep:1/1 train_loss:2.9\n", "restart.log")
    assert len(parsed.trials) == 2
    assert len(parse("step:1/9 train_loss:3.0\nstopping_early: wallclock_cap\n", "x").trials) == 1


def test_a_last_line_without_its_line_end_must_be_whole():
    ok = parse("step:1/1 train_loss:3.0\nfinal_int8_zlib_roundtrip_exact val_loss:2.1 val_bpb:1.3", "a")
    assert ok.trials[0].result["headline_bpb"] == 1.3
    for tail in ("step:1/1 train_loss:3.0\nNCCL INFO", "step:1/1 train_loss:3.0\nfinal val_bpb:1.3",
                 "step:1/1 train_loss:3.0"):
        parse(tail, "b")  # noise, an eval with no loss to compare, and a step line are whole lines
    with pytest.raises(LegacyFormatError) as err:
        parse("step:1/1 train_loss:3.0\n" + END + "Some banner that was cut of", "c.log")
    assert str(err.value) == ("c.log: last line 3 has no line end and is not a whole log line (found 'Some banner "
                              "that was cut of'; expected a step, eval or summary line): truncated file?")
    with pytest.raises(LegacyFormatError, match=r"found 'x{57}\.\.\.'; expected"):
        parse("step:1/1 train_loss:3.0\n" + END + "x" * 61, "d.log")
    with pytest.raises(LegacyFormatError, match=r"found 'x{60}'; expected"):
        parse("step:1/1 train_loss:3.0\n" + END + "x" * 60, "d.log")
    with pytest.raises(LegacyFormatError) as err:
        parse("step:1/1 train_loss:3.0\nfinal_int8 val_loss:2.10000000 val_bpb:1.3", "f.log")
    assert str(err.value) == ("f.log: last line 2 has no line end and its val_bpb has 1 decimals where its val_loss "
                              "has 8: expected a whole eval line, found one cut short (truncated file?)")
    # a step line's numbers are not compared (its val_bpb and val_loss may be written to other precisions)
    parse("step:1/2 train_loss:3.0\nstep:2/2 val_loss:2.10000000 val_bpb:1.3", "g.log")
    parse("step:1/1 train_loss:3.0\n" + END + "x" * 60 + "\n", "e.log")  # with its line end: a skipped banner


def test_a_file_without_step_lines_is_not_a_training_log_and_says_what_it_holds():
    with pytest.raises(NotATrainingLog) as err:
        parse("ttt_start\nquantized_ttt val_loss:2.3 val_bpb:1.06\nlegal_ttt val_loss:2.2 val_bpb:1.05\n", "e.log")
    assert str(err.value) == ("e.log: not a training log: an evaluation-only log (2 eval line(s), the last "
                              "`legal_ttt` val_bpb 1.05 at line 3) with no training step lines")
    with pytest.raises(NotATrainingLog, match=r"the last `val_bpb` val_bpb 1.05 at line 1\)"):
        parse("val_bpb:1.05\n", "f.log")
    with pytest.raises(NotATrainingLog) as err:
        parse("We report the BPB of our model.\n", "g.md")
    assert str(err.value) == "g.md: not a training log: it mentions bpb but holds no step or eval line we can read"
    with pytest.raises(NotATrainingLog) as err:
        parse("hello\n\n", "h.txt")
    assert str(err.value) == "h.txt: not a training log: no step or eval lines"
    assert detect("anything at all")  # the fallback parser: it says itself when a text is not a log


def test_blank_lines_are_counted_where_they_are():
    _, parsed = _one("\nstep:1/1 train_loss:3.0\n   \n" + END)
    assert (parsed.blank_lines, parsed.blank_at) == (2, {1, 3})


def test_the_ternary_records_short_header_artifact_and_budget_lines_give_params_config_and_bytes():
    trial, parsed = _one(
        "params:73,685,840 (eval:70,000,000) L:10 d:768 h:8 kv:4 ws:8 ga:1 s:42\n"
        "step:1/2 loss:3.3120 t:91478ms avg:91.5ms\n"
        "step:2/2 val_loss:3.0517 val_bpb:1.1816 train_time:599652ms\n"
        "artifact:15.92MB ternary:64880640(14239486B) fp:2513744(2537376B) code:70853\n"
        "budget:15993853/16000000 (15.99/16.00MB) FITS\n"
        "final_sliding val_loss:2.9869 val_bpb:1.1565 (stride=16, T=0.90) eval_time:429311ms\n")
    assert trial.result["params"] == 73_685_840  # the count, not its digits up to the first comma
    assert trial.config["model"] == {"num_layers": 10, "model_dim": 768, "num_heads": 8, "num_kv_heads": 4}
    assert trial.seed == 42 and trial.config["train"]["seed"] == 42
    assert trial.result["provenance"]["world_size"] == 8
    assert (trial.result["artifact_bytes"], trial.result["artifact_code_bytes"],
            trial.result["artifact_file_bytes"]) == (15_993_853, 70_853, 15_923_000)
    assert not [s for s in parsed.skipped if s.line in (1, 4, 5)]


def test_short_keys_are_read_only_on_a_params_line_and_never_over_a_header_that_said_them():
    trial, _ = _one("model_dim=512 seed=7\n"
                    "params:1000 L:4 d:768 s:42\n"      # d and s were said by the k=v header: kept from it
                    "ema d:0.5 s:3\n"                   # not a params line: neither a width nor a seed
                    "step:1/1 train_loss:3.0\n" + END)
    assert trial.config["model"] == {"model_dim": 512, "num_layers": 4} and trial.seed == 7
    assert trial.result["params"] == 1000
    assert "artifact_bytes" not in trial.result and "artifact_code_bytes" not in trial.result
    other, _ = _one("run d:3 s:9 L:2\nstep:1/1 train_loss:3.0\n" + "result code:77\n" + END)  # no params: nothing
    assert "model" not in other.config and other.seed is None and "artifact_code_bytes" not in other.result


def test_a_seed_said_only_on_the_params_line_is_the_runs_seed_with_no_setting_line_after_it():
    trial, _ = _one("params:1000 L:4 s:42\nstep:1/1 train_loss:3.0\n" + END)  # END is a final line, no setting
    assert trial.seed == 42 and trial.config == {"model": {"num_layers": 4}, "train": {"seed": 42}}
    unseeded, parsed = _one("params:1000 L:4\nstep:1/1 train_loss:3.0\n" + END)  # no seed anywhere, no train keys
    assert unseeded.seed is None and unseeded.config == {"model": {"num_layers": 4}}
    assert unseeded.result["params"] == 1000 and not parsed.skipped


def test_a_params_count_without_any_short_key_is_not_the_short_header():
    trial, parsed = _one("params:5000 (eval:4,000)\nstep:1/1 train_loss:3.0\n" + END)
    assert "params" not in trial.result and trial.config == {}
    assert [(s.line, s.reason) for s in parsed.skipped] == [(1, "no value we store")]
