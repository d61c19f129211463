"""The audit's own wall clock from its partials: side by side (Jobs) vs one after another (local)."""

from __future__ import annotations

from fluxaudit.report.model import audit_clock
from fluxaudit.results import Partial


def partial(started: str, finished: str | None, status: str = "complete") -> Partial:
    return Partial(run_id="r", fingerprint="f", dtype="bfloat16", steps=4, height=64, width=64, prompt="p",
                   cells_total=1, status=status, started_at=started, finished_at=finished)  # fmt: skip


def test_groups_side_by_side_show_their_parallel_speedup() -> None:
    jobs = [partial("2026-12-03T01:00:00Z", "2026-12-03T01:05:00Z"), partial("2026-12-03T01:00:10Z", "2026-12-03T01:04:10Z"),
            partial("2026-12-03T01:00:20Z", "2026-12-03T01:06:00Z")]  # fmt: skip
    clock = audit_clock(jobs)
    assert clock is not None and clock.span_seconds == 360 and clock.groups_seconds == 300 + 240 + 340
    assert clock.parallel_speedup is not None and abs(clock.parallel_speedup - 880 / 360) < 1e-9
    assert (clock.first_started_at, clock.last_finished_at) == ("2026-12-03T01:00:00Z", "2026-12-03T01:06:00Z")


def test_one_after_another_is_about_one_and_unfinished_groups_do_not_count() -> None:
    local = [partial("2026-12-03T01:00:00Z", "2026-12-03T01:01:00Z"), partial("2026-12-03T01:01:00Z", "2026-12-03T01:03:00Z"),
             partial("2026-12-03T01:03:00Z", None, status="failed")]  # fmt: skip
    clock = audit_clock(local)
    assert clock is not None and clock.span_seconds == clock.groups_seconds == 180 and clock.parallel_speedup == 1.0
    assert audit_clock([partial("2026-12-03T01:03:00Z", None, status="running")]) is None
