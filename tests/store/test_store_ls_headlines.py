"""`clowncar store ls` and an imported log's headline that is not ranked (walk 3, F6): a TTT or n-gram eval is left
out of best_bpb on purpose, and the listing says so: the sweep's trials show the headline beside the ranked metric,
and the sweep list ends with a note. Where every headline is the ranked metric, the output is as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from clowncar.store import open_store
from clowncar.store.commands import ls
from clowncar.store.importers import import_paths

LOG = ("step:1/2 train_loss:5.0000 train_time:10ms step_avg:10.00ms\n"
       "step:2/2 train_loss:4.5000 train_time:20ms step_avg:10.00ms\n"
       "final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.2345\n"
       "final_int6_sliding_window_exact val_loss:1.9 val_bpb:1.2100\n")
TTT = "legal_ttt_exact val_loss:1.8 val_bpb:1.19996676\n"


def _store(tmp_path: Path, logs: dict[str, str]) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    paths = []
    for name, text in logs.items():
        paths.append(tmp_path / f"{name}.log")
        paths[-1].write_text(text)
    with open_store(url) as st:
        import_paths(st, paths)
    return url


def test_a_sweeps_trials_show_a_ttt_headline_beside_the_ranked_metric(tmp_path: Path, capsys) -> None:
    url = _store(tmp_path, {"ttt": LOG + TTT})
    ls("ttt", store=url)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:9] == ["number", "trial_uid", "attempt", "status", "q_val_bpb", "q_sliding_val_bpb",
                                    "headline_bpb", "headline_name", "steps"]
    assert lines[1].split()[4:8] == ["1.2345", "1.21", "1.1999668", "legal_ttt_exact"]
    assert lines[2:] == ["ranked by q_sliding_val_bpb (the sweep's best_bpb); headline_bpb, the log's last eval line "
                         "(ttt eval), is not ranked"]


def test_headlines_of_two_unranked_modes_are_both_named(tmp_path: Path, capsys) -> None:
    paths = [tmp_path / "ttt.log", tmp_path / "ngram.log"]
    paths[0].write_text(LOG + TTT)
    paths[1].write_text(LOG.replace("5.0000", "6.0000") + "final_ngram_exact val_loss:1.8 val_bpb:1.18\n")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as st:
        import_paths(st, paths, sweep="both")
    ls("both", store=url)
    assert capsys.readouterr().out.splitlines()[-1] == (
        "ranked by q_sliding_val_bpb (the sweep's best_bpb); headline_bpb, the log's last eval line (ngram/ttt eval), "
        "is not ranked")


def test_the_sweep_list_ends_with_a_note_when_a_headline_is_not_ranked(tmp_path: Path, capsys) -> None:
    url = _store(tmp_path, {"ttt": LOG + TTT, "plain": LOG, "ttt2": LOG.replace("5.0000", "6.0000") + TTT})
    ls(None, store=url)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[8:10] for line in lines[2:5]] == [["1.21", "q_sliding_val_bpb"]] * 3  # best_bpb as before
    assert lines[5:] == ["note: headline_bpb (TTT/n-gram evals) is not ranked: best_bpb is a sweep's best "
                         "q_sliding_val_bpb, q_val_bpb, sliding_val_bpb or val_bpb (best_metric); 2 trial(s) of "
                         "2 sweep(s) have a headline other than that (`clowncar store ls SWEEP` shows it)"]


def test_a_sweep_whose_trials_measured_no_bpb_lists_them_without_a_ranking_line(tmp_path: Path, capsys) -> None:
    url = _store(tmp_path, {"unscored": LOG.split("final_")[0]})  # training steps only: nothing ranks the trial
    ls("unscored", store=url)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].split()[:4] == ["number", "trial_uid", "attempt", "status"]
    assert "bpb" not in lines[0]


@pytest.mark.parametrize("sweep", [None, "plain"])
def test_headlines_that_are_the_ranked_metric_change_nothing(tmp_path: Path, sweep: str | None, capsys) -> None:
    url = _store(tmp_path, {"plain": LOG})  # headline: the sliding line, which is the ranked q_sliding_val_bpb
    ls(sweep, store=url)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == (3 if sweep is None else 2) and "headline_bpb" not in lines[-2]  # the header


def test_a_pruned_trial_shows_its_last_stored_step(tmp_path: Path, capsys) -> None:
    """A trial ASHA stopped has no result.json, whose step count the `steps` column read: it showed `-` though
    `store show` counted its 15 step rows. It shows its last stored step; a trial with a result keeps its count."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as st:
        st.create_or_get_sweep("a2", {})
        for number, status, steps in ((0, "ok", 30), (1, "pruned", 15), (2, "pruned", 0)):
            uid = f"a2/{number}"
            st.start_trial("a2", uid, number, 0, {"n": number}, None, "n0")
            st.add_steps(uid, 0, [{"step": s, "train_loss": 5.0} for s in range(1, steps + 1)])
            st.finish_trial(uid, 0, status, None, {"steps": steps} if status == "ok" else None)
    ls("a2", store=url)
    lines = capsys.readouterr().out.splitlines()
    steps = lines[0].split().index("steps")
    assert [line.split()[steps] for line in lines[1:]] == ["30", "15", "-"]


def test_the_sweep_list_says_why_a_sweep_over_its_size_cap_has_no_best(tmp_path: Path, capsys) -> None:
    """An imported record whose printed total passes 16,000,000 bytes is no best (not submittable); the list says
    so, and how many sweeps that leaves without one. A list where every trial fits says nothing of it."""
    over = LOG + "Total submission size int6+zstd: 16000001 bytes\n"
    fits = LOG.replace("5.0000", "6.0000") + "Total submission size int6+zstd: 16000000 bytes\n"
    url = _store(tmp_path, {"over": over, "fits": fits})
    ls(None, store=url)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[8] for line in lines[2:4]] == ["1.21", "-"]  # fits, over (by name)
    assert lines[4:] == ["note: 1 ok trial(s) of 1 sweep(s) are over their size cap (artifact_bytes above "
                         "16,000,000, or the cap their config or sweep set) and are never a best_bpb; 1 sweep(s) "
                         "have no other ok trial, so no best_bpb (-)"]
    (tmp_path / "b").mkdir()
    url = _store(tmp_path / "b", {"fits": fits})
    ls(None, store=url)
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]


def test_sweep_ls_ends_with_the_same_notes_as_store_ls(tmp_path: Path, capsys) -> None:
    from clowncar.orchestrator.commands import ls_cmd

    over = LOG + TTT.replace("legal_ttt_exact", "Total submission size int6+zstd: 16000001 bytes\nlegal_ttt_exact")
    url = _store(tmp_path, {"over": over})
    ls(None, store=url)
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert [n.split(":")[1].split()[0] for n in notes] == ["headline_bpb", "1"]  # unranked headline, over the cap
    ls_cmd(store=url)
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")] == notes
