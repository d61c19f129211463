"""The runner's phase records: start and done with seconds and fields, failed with the error's type, and
every thread's stack when a phase outlives its stall limit (a stall then says where it waits)."""

from __future__ import annotations

import logging
import time

import pytest

from fluxaudit_runner.events import phase


def test_phase_records_start_done_fields_and_failure(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fluxaudit.runner")
    with phase("load", "Q8_0", file="f.gguf") as done:
        done.update(bytes=12)
    with pytest.raises(KeyError), phase("warm_up", "Q8_0"):
        raise KeyError("x")
    records = [(r.event, r.fields) for r in caplog.records]  # type: ignore[attr-defined]
    assert [e for e, _ in records] == ["load.start", "load.done", "warm_up.start", "warm_up.failed"]
    assert records[1][1]["bytes"] == 12 and records[1][1]["file"] == "f.gguf" and records[1][1]["seconds"] >= 0
    assert records[3][1]["error"] == "KeyError" and records[3][1]["group"] == "Q8_0"


def test_a_stalled_phase_dumps_every_threads_stack_and_a_quick_one_does_not(capfd: pytest.CaptureFixture) -> None:
    with phase("compile_check", "Q4_0", stacks_after=0.2):
        time.sleep(0.6)
    stalled = capfd.readouterr().err
    assert "Timeout" in stalled and "in test_a_stalled_phase_dumps" in stalled, stalled
    with phase("compile_check", "Q4_0", stacks_after=5):
        pass
    time.sleep(0.1)
    assert "Timeout" not in capfd.readouterr().err  # disarmed when the phase ended
