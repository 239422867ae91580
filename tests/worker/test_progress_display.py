"""What a person watching a trial sees: train.log lines, a bar redrawn in place on a terminal, and a plain line
every few seconds when stderr is a file or a pipe (under the orchestrator), so a log never goes silent."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from clowncar.worker import progress
from clowncar.worker.progress import PLAIN_EVERY_S, TrialLog, _duration


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(progress.time, "monotonic", c.monotonic)
    return c


def test_durations_are_minutes_and_zero_padded_seconds_never_negative() -> None:
    assert _duration(0) == "0:00"
    assert _duration(59.9) == "0:59"
    assert _duration(60) == "1:00"
    assert _duration(61) == "1:01"
    assert _duration(725) == "12:05"
    assert _duration(-3) == "0:00"
    assert _duration(3600 + 9) == "60:09"


def test_lines_go_to_train_log_and_are_echoed_unless_asked_not_to(tmp_path: Path) -> None:
    stream = io.StringIO()
    log = TrialLog(tmp_path / "train.log", stream=stream)
    log.line("model: 1,234 parameters")
    log.line("quiet", echo=False)
    assert (tmp_path / "train.log").read_text() == "model: 1,234 parameters\nquiet\n"  # flushed line by line
    log.close()
    assert stream.getvalue() == "model: 1,234 parameters\n"
    log.close()  # a second close is harmless
    log.line("after close")  # and lines after it go nowhere
    assert (tmp_path / "train.log").read_text() == "model: 1,234 parameters\nquiet\n"


def test_train_log_is_appended_to_and_written_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_text("earlier\n")
    log = TrialLog(path, stream=io.StringIO())
    log.line("loss ≈ 3.2 — ok")
    log.close()
    assert path.read_bytes() == "earlier\nloss ≈ 3.2 — ok\n".encode()


def test_other_ranks_write_and_show_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stream = Terminal()
    log = TrialLog(None, total_steps=10, stream=stream)
    assert not log.enabled and not log.tty
    log.line("x")
    log.progress(1, "N", 3.0, 100.0, 1.0)
    log.close()
    assert stream.getvalue() == ""
    assert capsys.readouterr() == ("", "")


def test_the_default_stream_is_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = TrialLog(tmp_path / "train.log", total_steps=4)
    log.line("to stderr")
    log.progress(1, "N", 2.5, 10.0, 0.0)
    log.close()
    assert capsys.readouterr() == ("", "to stderr\nstep 1/4 [N] loss 2.5000 10 tok/s 0:00 elapsed, 3 steps left\n")


def test_a_plain_stream_gets_the_first_the_last_and_one_line_per_interval(tmp_path: Path, clock: Clock) -> None:
    stream = io.StringIO()
    log = TrialLog(tmp_path / "train.log", total_steps=100, stream=stream)
    assert log.enabled and not log.tty
    log.progress(1, "N", 5.12344, 12345.6, 1.0)  # the first step is always shown
    clock.now += 1.0
    log.progress(2, "N", 5.0, 1.0, 2.0)  # 1 s later: not shown
    clock.now += PLAIN_EVERY_S - 1.0 - 0.001
    log.progress(3, "C", 4.0, 1.0, 3.0)  # 4.999 s after the last shown: still not
    clock.now += 0.001
    log.progress(4, "C", 4.0, 1234567.0, 65.0)  # 5 s: shown
    clock.now += 0.5
    log.progress(100, "N", 1.0, 1.0, 70.0)  # the last step is always shown
    log.close()
    assert stream.getvalue().splitlines() == [
        "step 1/100 [N] loss 5.1234 12,346 tok/s 0:01 elapsed, 99 steps left",
        "step 4/100 [C] loss 4.0000 1,234,567 tok/s 1:05 elapsed, 96 steps left",
        "step 100/100 [N] loss 1.0000 1 tok/s 1:10 elapsed, 0 steps left",
    ]
    assert (tmp_path / "train.log").read_text() == ""  # progress is for people, not the log


def test_a_plain_stream_counts_the_interval_from_the_last_line_shown(tmp_path: Path, clock: Clock) -> None:
    stream = io.StringIO()
    log = TrialLog(tmp_path / "train.log", total_steps=0, cap_seconds=600.0, stream=stream)
    clock.now = 3.0  # a fresh log shows a step once PLAIN_EVERY_S have passed since the clock's zero
    log.progress(5, "N", 2.0, 1.0, 10.0)
    clock.now = 7.0
    log.progress(6, "N", 2.0, 1.0, 11.0)
    clock.now = 8.0
    log.progress(7, "N", 2.0, 1.0, 12.0)
    clock.now = 11.9
    log.progress(8, "N", 2.0, 1.0, 13.0)
    clock.now = 12.0
    log.progress(9, "N", 2.0, 1.0, 14.0)
    assert [line.split()[1] for line in stream.getvalue().splitlines()] == ["6/0", "9/0"]


def test_a_wallclock_capped_trial_shows_the_time_left(tmp_path: Path, clock: Clock) -> None:
    stream = io.StringIO()
    log = TrialLog(tmp_path / "t.log", total_steps=20000, cap_seconds=600.0, stream=stream)
    log.progress(1, "N", 6.0, 500.0, 59.0)
    assert stream.getvalue() == "step 1/20000 [N] loss 6.0000 500 tok/s 0:59 elapsed, 9:01 left\n"


def test_a_terminal_bar_fills_by_steps_or_by_the_clock_whichever_is_further(tmp_path: Path) -> None:
    term = Terminal()
    log = TrialLog(tmp_path / "t.log", total_steps=8, stream=term)
    assert log.tty
    log.progress(2, "N", 1.0, 1.0, 0.0)  # 2/8 of 24 cells
    bar = term.getvalue()
    assert bar == ("\r[######..................] step 2/8 [N] loss 1.0000 1 tok/s 0:00 elapsed, 6 steps left"
                   "\033[K")

    term = Terminal()
    log = TrialLog(tmp_path / "t.log", total_steps=1000, cap_seconds=100.0, stream=term)
    log.progress(10, "C", 1.0, 1.0, 50.0)  # 1% of the steps, half the clock: half the bar
    assert term.getvalue().startswith("\r[############............] step 10/1000 [C]")
    assert term.getvalue().endswith("0:50 elapsed, 0:50 left\033[K")

    term = Terminal()
    log = TrialLog(tmp_path / "t.log", total_steps=10, cap_seconds=100.0, stream=term)
    log.progress(9, "N", 1.0, 1.0, 130.0)  # past the cap: a full bar, never more
    assert term.getvalue().startswith("\r[########################] step 9/10")

    term = Terminal()
    log = TrialLog(tmp_path / "t.log", total_steps=0, stream=term)
    log.progress(3, "N", 1.0, 1.0, 1.0)  # no step count and no cap: an empty bar
    assert term.getvalue().startswith("\r[........................] step 3/0")


def test_a_terminal_redraws_every_step_and_clears_the_bar_before_a_log_line(tmp_path: Path, clock: Clock) -> None:
    term = Terminal()
    log = TrialLog(tmp_path / "t.log", total_steps=4, stream=term)
    log.progress(1, "N", 1.0, 1.0, 0.0)
    log.progress(2, "N", 1.0, 1.0, 0.0)  # same instant: a terminal redraws anyway
    log.line("eval: val_bpb 1.2345")
    log.close()
    out = term.getvalue()
    assert out.count("\r[") == 2
    assert out.endswith("\033[K\r\033[Keval: val_bpb 1.2345\n\n")  # the line wipes the bar; close ends its row


def test_a_plain_stream_gets_no_terminal_codes(tmp_path: Path, clock: Clock) -> None:
    stream = io.StringIO()
    log = TrialLog(tmp_path / "t.log", total_steps=2, stream=stream)
    log.progress(1, "N", 1.0, 1.0, 0.0)
    log.line("done")
    log.close()
    assert "\r" not in stream.getvalue() and "\033" not in stream.getvalue()
    assert stream.getvalue().endswith("left\ndone\n")


def test_train_log_is_utf8_whatever_the_locale(tmp_path: Path, ascii_locale_child) -> None:
    path = tmp_path / "train.log"
    ascii_locale_child(
        "import io, sys; from pathlib import Path; from clowncar.worker.progress import TrialLog\n"
        "log = TrialLog(Path(sys.argv[1]), stream=io.StringIO()); log.line('loss \\u2248 3.2'); log.close()",
        str(path))
    assert path.read_bytes() == "loss ≈ 3.2\n".encode()


def test_a_log_made_without_a_step_count_or_a_cap_says_nothing_of_what_is_left(tmp_path: Path,
                                                                               clock: Clock) -> None:
    stream = io.StringIO()
    TrialLog(tmp_path / "t.log", stream=stream).progress(1, "N", 1.0, 1.0, 0.0)
    assert stream.getvalue() == "step 1/0 [N] loss 1.0000 1 tok/s 0:00 elapsed\n"


def test_a_capped_trial_whose_steps_end_first_counts_down_its_steps_at_the_pace_so_far(tmp_path: Path,
                                                                                     clock: Clock) -> None:
    stream = io.StringIO()
    log = TrialLog(tmp_path / "t.log", total_steps=20, cap_seconds=60.0, stream=stream)
    log.progress(1, "C", 6.9, 2724.0, 0.75)  # 19 steps of 0.75 s: 14 s, well inside the minute
    clock.now += PLAIN_EVERY_S
    log.progress(8, "C", 5.7, 4641.0, 5.0)
    log.progress(20, "C", 5.4, 3537.0, 11.0)  # the last step: nothing left, though 49 s of the cap are
    log.progress(20, "C", 5.4, 3537.0, 70.0)  # past the cap: never a negative time
    assert [line.split("elapsed")[1] for line in stream.getvalue().splitlines()] == [
        ", 0:14 left", ", 0:07 left", ", 0:00 left", ", 0:00 left"]  # 12 steps of 0.625 s: 7.5 s
    stream = io.StringIO()
    TrialLog(tmp_path / "t.log", total_steps=20, cap_seconds=60.0, stream=stream).progress(0, "C", 7.0, 0.0, 0.0)
    assert stream.getvalue().endswith("0:00 elapsed, 1:00 left\n")  # no step yet: no pace, the cap alone
    stream = io.StringIO()
    log = TrialLog(tmp_path / "t.log", total_steps=0, cap_seconds=60.0, stream=stream)
    log.progress(5, "C", 5.0, 1.0, 10.0)  # no step count: the cap alone
    assert stream.getvalue().endswith("0:10 elapsed, 0:50 left\n")


def test_a_fresh_plain_log_shows_a_step_once_the_interval_has_passed_since_the_clock_began(
    tmp_path: Path, clock: Clock
) -> None:
    stream = io.StringIO()
    log = TrialLog(tmp_path / "t.log", total_steps=100, stream=stream)
    clock.now = PLAIN_EVERY_S + 0.5
    log.progress(7, "N", 1.0, 1.0, 0.0)
    assert stream.getvalue().startswith("step 7/100")


def test_a_sub_second_cap_still_counts_down_the_clock(tmp_path: Path) -> None:
    term = Terminal()
    log = TrialLog(tmp_path / "t.log", total_steps=100, cap_seconds=0.5, stream=term)
    log.progress(1, "N", 1.0, 1.0, 0.25)  # 1% of the steps, half the clock
    assert term.getvalue() == ("\r[############............] step 1/100 [N] loss 1.0000 1 tok/s 0:00 elapsed, "
                               "0:00 left\033[K")
