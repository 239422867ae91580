"""SIGTERM ends `artifact eval` as Ctrl-C does (KeyboardInterrupt: the CLI's one line and exit 130), where a `kill`
of a long evaluation ended it with 143 and no line."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import clowncar.worker.artifact as artifact
from clowncar.worker import artifact_commands


def test_sigterm_during_artifact_eval_is_an_interrupt_and_the_handler_comes_back(tmp_path: Path,
                                                                                monkeypatch) -> None:
    seen: list[int] = []

    def recorded(signum, frame) -> None:  # the process's own handler: without the fix, SIGTERM only lands here
        seen.append(signum)

    def killed(path):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(200):  # the handler runs between bytecodes: at the latest within the first sleeps
            time.sleep(0.01)
        pytest.fail("SIGTERM did not stop artifact eval")

    monkeypatch.setattr(artifact, "load_artifact", killed)
    command = next(c.callback for c in artifact_commands.app.registered_commands if c.name == "eval")
    old = signal.signal(signal.SIGTERM, recorded)
    try:
        with pytest.raises(KeyboardInterrupt):
            command(tmp_path / "model.ptz", data=None, tokenizer=None, max_tokens=None, stride=None, device="cpu")
        assert signal.getsignal(signal.SIGTERM) is recorded and seen == []
    finally:
        signal.signal(signal.SIGTERM, old)
