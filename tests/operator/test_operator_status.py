"""Observations → status and conditions, as kstatus / Argo CD / Flux will read them."""

from __future__ import annotations

from typing import Any

import pytest

from fluxaudit_operator.status import GroupObservation, audit_status, group_status, merge_conditions

NOW = "2026-11-29T12:00:00Z"


def job(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "j"}, "status": status}


def cond(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "status": "True", **extra}


def partial(done: int, total: int = 5, error: str | None = None) -> dict[str, Any]:
    return {"cellsTotal": total, "cells": [{}] * done, "error": error}


@pytest.mark.parametrize(
    ("job_obj", "part", "phase", "done"),
    [
        (None, None, "Pending", 0),
        (job(), None, "Pending", 0),
        (job(active=1, startTime="t0"), partial(2), "Running", 2),
        (
            job(startTime="t0", completionTime="t1", succeeded=1, conditions=[cond("Complete")]),
            partial(5),
            "Succeeded",
            5,
        ),
        (
            job(
                failed=4,
                conditions=[
                    cond("Failed", reason="BackoffLimitExceeded", message="Job has reached the specified backoff limit")
                ],
            ),
            partial(3, error="RuntimeError: CUDA OOM"),
            "Failed",
            3,
        ),
    ],
)
def test_group_phases(job_obj: dict[str, Any] | None, part: dict[str, Any] | None, phase: str, done: int) -> None:
    g = group_status(GroupObservation("Q8_0", "a-q8-0", job_obj, part))
    assert g["phase"] == phase and g["cellsDone"] == done and g["job"] == "a-q8-0"
    if phase == "Failed":
        assert g["message"].startswith("BackoffLimitExceeded: Job has reached") and "CUDA OOM" in g["message"]


def _groups(*phases: str) -> list[dict[str, Any]]:
    return [
        {"quant": f"Q{i}", "phase": p, "cellsDone": 5 if p in ("Succeeded",) else 2, "cellsTotal": 5}
        for i, p in enumerate(phases)
    ]


def by_type(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_running_is_reconciling() -> None:
    s = audit_status(3, _groups("Running", "Pending", "Succeeded"), NOW)
    c = by_type(s)
    assert s["phase"] == "Running" and s["progress"] == "9/15" and s["observedGeneration"] == 3
    assert (
        c["Reconciling"]["status"] == "True" and c["Ready"]["status"] == "False" and c["Stalled"]["status"] == "False"
    )
    assert all(x["observedGeneration"] == 3 for x in s["conditions"])


def test_aggregating_then_succeeded() -> None:
    s = audit_status(1, _groups("Succeeded", "Succeeded"), NOW)
    assert s["phase"] == "Aggregating" and by_type(s)["Reconciling"]["status"] == "True"
    s = audit_status(1, _groups("Succeeded", "Succeeded"), NOW, report_ready=True)
    c = by_type(s)
    assert s["phase"] == "Succeeded" and c["Ready"]["status"] == "True" and c["Succeeded"]["status"] == "True"
    assert c["Reconciling"]["status"] == "False" and c["Stalled"]["status"] == "False"


def test_failed_group_gives_failed_with_partial_report() -> None:
    s = audit_status(1, _groups("Succeeded", "Failed"), NOW, report_ready=True)
    c = by_type(s)
    assert s["phase"] == "Failed" and c["Ready"]["status"] == "False" and c["Stalled"]["status"] == "True"
    assert c["Stalled"]["reason"] == "GroupsFailed" and "Q1" in c["Stalled"]["message"]


def test_invalid_spec_is_stalled_with_the_field() -> None:
    s = audit_status(2, [], NOW, spec_error="spec.steps: must be >= 1")
    c = by_type(s)
    assert s["phase"] == "Failed" and c["Stalled"]["status"] == "True" and c["Stalled"]["reason"] == "InvalidSpec"
    assert "spec.steps" in c["Stalled"]["message"] and c["Reconciling"]["status"] == "False"


def test_transition_times_survive_unchanged_status() -> None:
    old = [{"type": "Reconciling", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
           {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]  # fmt: skip
    new = audit_status(1, _groups("Running"), NOW)["conditions"]
    merged = {c["type"]: c for c in merge_conditions(old, new)}
    assert merged["Reconciling"]["lastTransitionTime"] == "2026-01-01T00:00:00Z"  # still True
    assert merged["Ready"]["lastTransitionTime"] == NOW  # True → False is a transition
