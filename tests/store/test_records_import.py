"""`clowncar import` on the challenge's real record logs (../shared/legacy-runs/parameter-golf-records): every
training log imports (or is refused with a true message), each headline is the last final/eval line of its run
as this test's own simple scan finds it, step counts agree, no two files share a trial, a second import adds
nothing, and a directory with one corrupt log imports the rest and names that one. The figures are printed
(run with -s to see them)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from clowncar.store import open_store
from clowncar.store.importers import import_paths

# -- the test's own reading of a log: a few regular expressions, independent of the importer's grammar -------------
COUNTER = re.compile(r"^(?:\d{9,}(?:\.\d+)?\s+)?(?:step:)?(\d+)/(\d+)\s")
TRAIN = re.compile(r"^(?:\d{9,}(?:\.\d+)?\s+)?(?:step:)?(\d+)/\d+\s+(?:\[[^\]]*\]\s*)?(?:train_loss|loss|fitness)[:=]")
FINAL_BPB = re.compile(r"\bval_bpb[:=]\s*(-?\d+\.\d+)")
# a printed submission total, in every form the records write (`Total submission size int6+brotli: N bytes`,
# `Total submission size: N bytes`, `INT7+zlib model: N bytes | Total submission: N bytes`, the ternary and binary
# records' `budget:N/16000000 (15.99/16.00MB) FITS`)
TOTAL = re.compile(r"^(?:\d{9,}(?:\.\d+)?\s+)?(?:(?:.*\| )?Total submission[^:|]*: (\d+) bytes$|budget:(\d+)/\d+ )")


def scan_runs(text: str) -> list[dict]:
    """Per run: the step lines (train metric) and the value of the last unindented non-step line carrying
    `val_bpb:<number>`. A run ends where the step counter goes back; eval lines after a run's last step belong
    to it; `total` is the last submission total printed in the run (the compressed artifact's: the records print
    the unquantized checkpoint's total first). A run whose counter and eval lines are an earlier run's again,
    character for character, is that run printed twice and is left out."""
    runs: list[dict] = []
    last = None
    for line in text.splitlines():
        c = COUNTER.match(line)
        if c:
            step = int(c.group(1))
            if last is None or step < last:
                runs.append({"steps": [], "final": None, "finals": 0, "total": int(c.group(2)), "last_step": 0,
                             "lines": [], "bytes_total": None})
            last = step
            runs[-1]["last_step"] = step
            runs[-1]["lines"].append(line)
            if TRAIN.match(line):
                runs[-1]["steps"].append(step)
        elif runs and line[:1] not in (" ", "\t", '"', "{") and (m := FINAL_BPB.search(line)):
            runs[-1]["final"] = float(m.group(1))
            runs[-1]["finals"] += 1
            runs[-1]["lines"].append(line)
        elif runs and (m := TOTAL.match(line)):
            runs[-1]["bytes_total"] = int(m.group(1) or m.group(2))
    return [r for i, r in enumerate(runs) if all(r["lines"] != o["lines"] for o in runs[:i])]


def submission_values(folder: Path) -> list[str]:
    """Every number a record's submission.json gives under a key naming val_bpb (top level, per seed, ...), as
    written (so that a rounded claim compares at its own precision)."""
    path = folder / "submission.json"
    if not path.is_file():
        return []
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if "val_bpb" in k and isinstance(v, int | float) and not isinstance(v, bool):
                    found.append(repr(v))
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json.loads(path.read_text()))
    return found


def _equal_at_precision(value: float, claim: str) -> bool:
    decimals = len(claim.split(".", 1)[1]) if "." in claim else 0
    return round(value, decimals) == float(claim)


@pytest.fixture(scope="module")
def imported(records: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    url = f"sqlite:///{tmp_path_factory.mktemp('records') / 'store.db'}"
    with open_store(url) as st:
        reports = import_paths(st, [records], keep_going=True)
        trials = st.trials_frame()
        steps = st.steps_frame()
        named = st.named_evals_frame()
    logs = {r.path: r for r in reports if r.path.suffix in (".log", ".txt")}
    return {"url": url, "reports": reports, "logs": logs, "trials": trials, "steps": steps, "named": named}


def _training_logs(imported: dict) -> dict[Path, list[dict]]:
    return {p: runs for p in imported["logs"] if (runs := scan_runs(p.read_text())) and
            any(r["steps"] for r in runs)}


def test_every_training_log_imports_or_is_refused_with_a_true_reason(imported):
    training = _training_logs(imported)
    reports = imported["logs"]
    read = [p for p in training if reports[p].status in ("imported", "present")]
    refused = [p for p in training if reports[p].status == "refused"]
    assert len(read) + len(refused) == len(training)  # nothing dropped without a word
    share = len(read) / len(training)
    print(f"\ntraining logs: {len(training)}; imported or already present: {len(read)} ({share:.1%}); "
          f"refused: {len(refused)}")
    assert share >= 0.95
    for p in refused:  # the reason given is what the log shows: a run that stops early with no eval after it
        runs = training[p]
        cut = [r for r in runs if r["final"] is None and r["last_step"] < r["total"]]
        assert cut, reports[p].reason
        assert f"stops at step {cut[0]['last_step']}/{cut[0]['total']}" in reports[p].reason
        assert str(p) in reports[p].reason and "cut off" in reports[p].reason
    skipped = {r.path.name for r in imported["reports"] if r.status == "skipped"}
    assert {"README.md", "submission.json", "summary.log", "seed_0.log"} <= skipped  # not training logs
    assert not [r for r in imported["reports"] if r.status == "skipped" and TRAIN.search(r.path.read_text())]


def _runs_with_trials(imported: dict) -> list[tuple[Path, dict, dict]]:
    trials = imported["trials"].set_index("trial_uid")
    out = []
    for p, runs in _training_logs(imported).items():
        rep = imported["logs"][p]
        if rep.status not in ("imported", "present"):
            continue
        assert len(rep.uids) == len(runs), p  # one trial per run
        out += [(p, run, trials.loc[uid]) for uid, run in zip(rep.uids, runs, strict=True)]
    return out


def test_each_headline_is_the_last_final_or_eval_line_of_its_run(imported):
    pairs = _runs_with_trials(imported)
    with_final = [(p, run, t) for p, run, t in pairs if run["final"] is not None]
    equal = [p for p, run, t in with_final if t["headline_bpb"] == run["final"]]
    print(f"\nruns with a final/eval line: {len(with_final)}; headline equal to the last one: {len(equal)} "
          f"({len(equal) / len(with_final):.1%})")
    assert len(equal) == len(with_final), [str(p) for p, run, t in with_final if t["headline_bpb"] != run["final"]]
    no_final = [t for p, run, t in pairs if run["final"] is None]
    assert all(t.get("headline_bpb") is None or t["headline_bpb"] != t["headline_bpb"] for t in no_final)
    kept = imported["named"].groupby("trial_uid", observed=True).size()
    for p, run, t in pairs:  # every final/eval line is kept, each as its own metric
        assert kept.get(t.name, 0) == run["finals"], p


def test_a_sliding_value_is_never_stored_as_a_standard_one(imported):
    named = imported["named"]
    names = named["name"].astype(str)
    sliding_lines = named[names.str.contains("sliding") & ~names.str.contains("ttt")]  # ttt_sliding is TTT
    assert set(sliding_lines["mode"]) == {"sliding"}
    trials = imported["trials"].set_index("trial_uid")
    for uid, rows in sliding_lines.groupby("trial_uid", observed=True):
        values = set(rows["val_bpb"])
        standard = trials.loc[uid, ["q_val_bpb", "val_bpb"]].dropna()
        assert not values & set(standard), uid  # e.g. final_int8_zlib_roundtrip_exact repeating the sliding value
    repeats = named[named["repeats"].notna()]
    assert len(repeats) >= 10
    for _, row in repeats.iterrows():  # a line printing an earlier measurement again keeps that one's mode
        first = named[(named["trial_uid"] == row["trial_uid"]) & (named["name"] == row["repeats"])].iloc[0]
        shorter = min(_decimals_of(row["val_bpb"]), _decimals_of(first["val_bpb"]))  # 1.1189 and 1.11888882
        assert (row["mode"], round(row["val_bpb"], shorter)) == (first["mode"], round(first["val_bpb"], shorter))


def _decimals_of(value: float) -> int:
    text = repr(float(value))
    return len(text.split(".")[1]) if "." in text else 0


def test_step_counts_agree_with_the_logs(imported):
    steps = imported["steps"].groupby("trial_uid", observed=True).size()
    checked = 0
    for p, run, t in _runs_with_trials(imported):
        assert len(set(run["steps"])) == len(run["steps"]), p  # the real logs never repeat a step
        assert steps.get(t.name, 0) == len(run["steps"]), p
        checked += 1
    print(f"\nruns whose step rows equal the log's step lines: {checked}")


def test_no_two_files_share_a_trial_and_copies_are_one(imported):
    by_content: dict[str, set[str]] = {}
    for p, rep in imported["logs"].items():
        if rep.status in ("imported", "present"):
            by_content.setdefault(hashlib.sha256(p.read_bytes()).hexdigest(), set()).update(rep.uids)
    uids = [u for group in by_content.values() for u in group]
    assert len(uids) == len(set(uids))  # different content, different trials
    trials = imported["trials"]
    assert len(trials) == len(uids) and trials["trial_uid"].is_unique
    present = [rep for rep in imported["logs"].values() if rep.status == "present"]
    assert len(present) == 5  # the README's five byte-identical copies: one trial each, reported as present
    print(f"\ntrials: {len(trials)} from {len(by_content)} distinct logs; collisions: 0; copies already present: "
          f"{len(present)}")


def test_importing_the_folder_again_adds_nothing(imported, records):
    with open_store(imported["url"]) as st:
        before = (len(st.trials_frame()), len(st.steps_frame()), len(st.evals_frame()), len(st.named_evals_frame()))
        reports = import_paths(st, [records], keep_going=True)
        after = (len(st.trials_frame()), len(st.steps_frame()), len(st.evals_frame()), len(st.named_evals_frame()))
    assert before == after
    assert {r.status for r in reports} <= {"present", "skipped", "refused"} and not any(r.new_trials for r in reports)


def test_headlines_agree_with_submission_json(imported, records):
    checked, equal = 0, 0
    for p, rep in imported["logs"].items():
        if rep.status != "imported" or not rep.parsed or not rep.parsed.trials:
            continue
        folder = next(f for f in p.parents if f.parent.name.startswith("track_"))
        claims = submission_values(folder)
        headlines = [t.named_evals[-1]["val_bpb"] for t in rep.parsed.trials if t.named_evals]
        if not claims or not headlines:
            continue
        checked += len(headlines)
        equal += sum(any(_equal_at_precision(h, c) for c in claims) for h in headlines)
    print(f"\nimported headlines in records whose submission.json gives val_bpb: {checked}; equal to a value it "
          f"gives (at the precision it is written): {equal}")
    assert checked >= 100 and equal >= 80


def test_every_printed_submission_total_is_the_stored_artifact_bytes_and_agrees_with_submission_json(imported):
    pairs = _runs_with_trials(imported)
    printed = [(p, run, t) for p, run, t in pairs if run["bytes_total"] is not None]
    wrong = [(str(p), run["bytes_total"], t.get("artifact_bytes")) for p, run, t in printed
             if t.get("artifact_bytes") != run["bytes_total"]]
    assert not wrong
    assert all(t.get("artifact_bytes") != t.get("artifact_bytes") for p, run, t in pairs if run["bytes_total"] is None)
    # where the model's and the code's bytes are both stored, they make up the total (the code as submitted)
    parts = [t for p, run, t in printed if t.get("artifact_file_bytes") == t.get("artifact_file_bytes")
             and t.get("artifact_code_bytes") == t.get("artifact_code_bytes")]
    assert [t.name for t in parts if t["artifact_file_bytes"] + t["artifact_code_bytes"] != t["artifact_bytes"]] == []
    # a record of one run whose submission.json claims that run's BPB claims its bytes_total too
    by_folder: dict[Path, list] = {}
    for p, _run, t in pairs:
        by_folder.setdefault(next(f for f in p.parents if f.parent.name.startswith("track_")), []).append(t)
    single = {folder: trials[0] for folder, trials in by_folder.items() if len(trials) == 1
              and (folder / "submission.json").is_file()
              and isinstance(json.loads((folder / "submission.json").read_text()).get("bytes_total"), int)}
    same_run = {folder: t for folder, t in single.items()
                if any(_equal_at_precision(t["headline_bpb"], c) for c in submission_values(folder))}
    disagree = {str(f): (t["artifact_bytes"], json.loads((f / "submission.json").read_text())["bytes_total"])
                for f, t in same_run.items()
                if t["artifact_bytes"] != json.loads((f / "submission.json").read_text())["bytes_total"]}
    print(f"\nruns printing a submission total: {len(printed)}, each stored as artifact_bytes; with model + code "
          f"bytes adding up to it: {len(parts)}; single-run records whose submission.json gives bytes_total: "
          f"{len(single)}, {len(same_run)} of them claiming the log's BPB, disagreeing: {len(disagree)}")
    assert len(printed) >= 140 and len(parts) == len(printed) and len(same_run) >= 9 and not disagree
    dg = next(t for f, t in single.items() if f.name == "2026-03-23_DGAttention_DavidGao")
    assert dg["artifact_bytes"] == 16_638_468 > 16_000_000  # over the cap, as its log and submission.json say


EVAL_TIME = re.compile(r"\beval_time[:=]\s*(\d+(?:\.\d+)?)ms\b")


def test_eval_seconds_count_each_timed_evaluation_once(imported, records):
    """Where a run's eval lines write `eval_time:Nms`, eval_seconds is their sum: the progress line a TTT eval ends
    with (`ttt_sliding:done ... elapsed=405.0s`) is that evaluation, not another one."""
    checked = 0
    for p, run, t in _runs_with_trials(imported):
        times = [float(m.group(1)) for line in run["lines"] if not COUNTER.match(line) and (m := EVAL_TIME.search(line))]
        if times:
            assert t["eval_seconds"] == pytest.approx(sum(times) / 1000, abs=1e-9), p
            checked += 1
    print(f"\nruns whose eval_seconds is the sum of their eval_time lines: {checked}")
    assert checked >= 140
    log = records / "track_10min_16mb/2026-04-04_SP4096_DepthRecurrence_ParallelResid_MuonEqR/train_seed42.log"
    (uid,) = imported["logs"][log].uids
    assert imported["trials"].set_index("trial_uid").loc[uid, "eval_seconds"] == pytest.approx(
        2.010 + 7.776 + 76.195 + 405.410)  # not + 405.0 again for `ttt_sliding:done ... elapsed=405.0s`


def test_a_directory_with_one_corrupt_log_imports_the_others_and_names_it(records, run_cli, tmp_path):
    src = records / "track_10min_16mb"
    folder = tmp_path / "two records" / "with spaces"
    folder.mkdir(parents=True)
    good = ["2026-03-17_NaiveBaseline/train.log", "2026-04-01_Vocab4096_MLPMult4_WD085/train_seed42.log"]
    for i, rel in enumerate(good):
        (folder / f"good {i}.log").write_bytes((src / rel).read_bytes())
    text = (src / "2026-03-19_SlidingWindowEval/train.log").read_text()
    bad = folder / "cut off.log"
    bad.write_text(text[: text.index("step:9000/20000")])
    url = f"sqlite:///{tmp_path / 'store.db'}"
    stop = run_cli("import", str(tmp_path / "two records"), "--store", url)
    assert stop.returncode == 2 and not (tmp_path / "store.db").exists()  # a refusal stops it: nothing written
    assert "nothing was written: --keep-going imports the others" in stop.stderr
    proc = run_cli("import", str(tmp_path / "two records"), "--store", url, "--keep-going", "-q")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    quoted = f"'{bad}'"
    assert f"refused          {quoted}: run 1 stops at step 8800/20000" in proc.stdout
    assert proc.stderr.count("\n") == 1 and quoted in proc.stderr and "1 of 3 files refused" in proc.stderr
    assert "3 files: 2 imported (2 new trials), 0 already present, 1 refused" in proc.stdout
    with open_store(url) as st:
        assert len(st.trials_frame()) == 2
