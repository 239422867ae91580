"""The one line grammar on logs no test has seen: real record logs rewritten the way other tools write them
(time stamps, CRLF, no trailing newline, extra fields, `key: value` spacing, several runs in one file) must give
the same trials, steps and headline; and the lines users will bring next (n-gram evals, `loss 3.2` pairs) read
as what they are."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from clowncar.store.importers import LegacyFormatError, NotATrainingLog, parse_file, scan

SAMPLES = {  # one log per format family of the records folder (see its README)
    "step-exact": "track_10min_16mb/2026-03-22_11L_EMA_GPTQ-lite_warmdown3500_QAT015_1.1233/train_seed42.log",
    "step-ttt": "track_10min_16mb/2026-03-23_LeakyReLU_LegalTTT_ParallelMuon/train_seed42.log",
    "toks-ttt": "track_10min_16mb/2026-04-06_SP8192_QK5_LegalTTT_1.0828/train_seed0.log",
    "toks-phased": "track_10min_16mb/2026-04-18_PR1626_CaseOps_Taper/train_seed42.log",
    "loss-t": "track_non_record_16mb/2026-04-05_118M_XNOR-Net_FP8_1024D_10L/log_10mins_seed-42.txt",
    "tagged": "track_non_record_16mb/2026-03-30_ByteJEPA/logs/train_run_rtx5090.txt",
    "three-runs": "track_10min_16mb/2026-03-19_MixedQuant_Int6Int8_SlidingWindow/train.log",
}
_STEP = re.compile(r"^((?:step:)?\d+/\d+ .*)$", re.M)


def _iso(text: str) -> str:
    return "".join(f"2026-04-13T19:23:{i % 60:02d}.5Z INFO {ln}" for i, ln in enumerate(text.splitlines(True)))


def _unix(text: str) -> str:
    return "".join(f"{1776142348 + i}.135 {ln}" for i, ln in enumerate(text.splitlines(True)))


VARIANTS: dict[str, Callable[[str], str]] = {
    "no trailing newline": lambda t: t.rstrip("\n"),
    "CRLF": lambda t: t.replace("\n", "\r\n"),
    "ISO stamps and a log level": _iso,
    "unix stamps": _unix,
    "extra fields on step lines": lambda t: _STEP.sub(r"\1 grad_norm:0.51 mem=12.3GiB [main]", t),
    "key: value spacing": lambda t: _STEP.sub(lambda m: re.sub(r"(\w):(\d)", r"\1: \2", m.group(1)), t),
}


def _summary(path: Path) -> list[tuple]:
    parsed = parse_file(path)
    out = []
    for t in parsed.trials:
        h = t.named_evals[-1] if t.named_evals else {}
        out.append((len(t.steps), [s["step"] for s in t.steps][-3:], [s["train_loss"] for s in t.steps][-3:],
                    len(t.evals), len(t.named_evals), h.get("name"), h.get("val_bpb"), h.get("mode")))
    return out


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_a_rewritten_record_log_gives_the_same_trials(records, tmp_path, sample, variant):
    original = records / SAMPLES[sample]
    copy = tmp_path / "variant.log"
    copy.write_bytes(VARIANTS[variant](original.read_text()).encode())
    assert _summary(copy) == _summary(original)


def test_two_logs_in_one_file_give_two_trials_each_with_its_own_steps(records, tmp_path):
    a, b = (records / SAMPLES["step-ttt"]).read_text(), (records / SAMPLES["toks-ttt"]).read_text()
    both = tmp_path / "both.log"
    both.write_text(a + b)
    (only_a := tmp_path / "a.log").write_text(a)
    (only_b := tmp_path / "b.log").write_text(b)
    assert _summary(both) == _summary(only_a) + _summary(only_b)
    rep = scan([both])[0]
    assert rep.status == "ready" and len(rep.uids) == 2 and rep.uids[0].endswith("-run1")
    seeds = [t.seed for t in rep.parsed.trials]
    assert seeds == [42, 0]  # each run keeps the header lines printed before its first step


def test_lines_users_bring_next_read_as_what_they_are(tmp_path):
    log = tmp_path / "other.log"
    log.write_text("seed: 7\n"
                   "step 1/3 | loss 3.50 | lr 0.001\n"
                   "step 2/3 | loss 3.25 | lr 0.001\n"
                   "step 3/3 | loss 3.00 | lr 0.001 | time 12.5s\n"
                   "step:3/3 val_loss:2.90 val_bpb:1.700\n"
                   "final_int6_roundtrip_exact val_loss:2.95000000 val_bpb:1.75000000\n"
                   "final_int6_sliding_window_exact val_loss:2.91000000 val_bpb:1.72000000\n"
                   "final_int6_ngram8_mix_exact val_loss:2.80000000 val_bpb:1.65000000\n"
                   "ttt_sliding:done val_loss=2.70000000 val_bpb=1.60000000 elapsed=30.0s")
    (trial,) = parse_file(log).trials
    assert [s["train_loss"] for s in trial.steps] == [3.5, 3.25, 3.0] and trial.steps[2]["elapsed_ms"] == 12500.0
    assert [(e["name"], e["mode"], e["quant"]) for e in trial.named_evals] == [
        ("final_int6_roundtrip_exact", "standard", "int6"), ("final_int6_sliding_window_exact", "sliding", "int6"),
        ("final_int6_ngram8_mix_exact", "ngram", "int6"), ("ttt_sliding:done", "ttt", None)]
    r = trial.result
    assert (r["headline_name"], r["headline_bpb"], r["headline_mode"], r["headline_line"]) == \
        ("ttt_sliding:done", 1.6, "ttt", 9)
    assert (r["q_val_bpb"], r["q_sliding_val_bpb"], r["q_ngram_val_bpb"], r["q_ttt_val_bpb"]) == (1.75, 1.72, 1.65, 1.6)
    assert trial.seed == 7 and r["val_bpb"] == 1.7


def test_a_last_line_cut_mid_number_is_refused_and_a_whole_one_is_not(tmp_path):
    head = "step:1/1 train_loss:3.0 train_time:10ms\nfinal_int8_zlib_roundtrip_exact "
    whole, cut = tmp_path / "whole log.txt", tmp_path / "cut log.txt"
    whole.write_text(head + "val_loss:2.02095340 val_bpb:1.19692464")
    cut.write_text(head + "val_loss:2.02095340 val_bpb:1.1969")
    assert parse_file(whole).trials[0].result["headline_bpb"] == 1.19692464
    with pytest.raises(LegacyFormatError, match="val_bpb has 4 decimals where its val_loss has 8") as err:
        parse_file(cut)
    assert str(err.value).startswith(f"'{cut}': last line 2 has no line end")


def test_a_run_that_stops_early_is_refused_and_an_eval_only_log_is_not_a_training_log(tmp_path):
    stopped = tmp_path / "stopped.log"
    stopped.write_text("step:1/100 train_loss:3.0\nstep:2/100 train_loss:2.9\n")
    with pytest.raises(LegacyFormatError, match=r"run 1 stops at step 2/100 \(line 2\) with no final/eval line"):
        parse_file(stopped)
    finished = tmp_path / "finished.log"  # reached its last step: imported, with no headline
    finished.write_text("step:1/2 train_loss:3.0\nstep:2/2 train_loss:2.9\n")
    assert "headline_bpb" not in parse_file(finished).trials[0].result
    evals = tmp_path / "eval.log"
    evals.write_text("TTT_EVAL_ONLY=1\nquantized_ttt_phased val_loss:2.32641216 val_bpb:1.06307957\n")
    with pytest.raises(NotATrainingLog, match=r"evaluation-only log .*quantized_ttt_phased"):
        parse_file(evals)
    assert scan([tmp_path])[0].status == "skipped"  # inside a directory: skipped, and said why
    assert scan([evals])[0].status == "refused"  # named on its own: refused
