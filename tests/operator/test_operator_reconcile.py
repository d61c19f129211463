"""The reconcile decision: from observations to Jobs to create and the status."""

from __future__ import annotations

import copy
import functools
from typing import Any

from fluxaudit_operator.policy import Policy
from tests.support.helpers import plan_from_body

# An installation that lets audits name the bucket BODY uses.
plan = functools.partial(plan_from_body, policy=Policy(buckets=("proj.appspot.com",)))

NOW = "2026-11-29T12:00:00Z"
BODY: dict[str, Any] = {
    "apiVersion": "fluxaudit.dev/v1alpha1",
    "kind": "FluxAudit",
    "metadata": {"name": "baseline", "namespace": "audits", "uid": "u-1", "generation": 1, "resourceVersion": "7"},
    "spec": {
        "input": {"userId": "u1", "sessionId": "D1A406F5"},
        "guidanceScales": [2, 30],
        "storage": {"bucket": "proj.appspot.com"},
        "reference": None,  # three groups, one timed run per cell: the arithmetic below
        "repeats": 1,
    },
}


def body(**status: Any) -> dict[str, Any]:
    b = copy.deepcopy(BODY)
    if status:
        b["status"] = status
    return b


def finished(job: dict[str, Any], ok: bool = True) -> dict[str, Any]:
    j = copy.deepcopy(job)
    j["status"] = {
        "conditions": [{"type": "Complete" if ok else "Failed", "status": "True", "reason": "x", "message": "y"}]
    }
    return j


def test_new_audit_creates_one_job_per_group() -> None:
    p = plan(body(), [], {}, NOW, report_ready=False)
    assert [j["metadata"]["name"] for j in p.create] == ["baseline-q4-0", "baseline-q5-k-s", "baseline-q8-0"]
    assert p.status["phase"] == "Pending" and p.status["runId"] == p.run_id and not p.aggregate
    assert {j["metadata"]["labels"]["fluxaudit.dev/run-id"] for j in p.create} == {p.run_id}


def test_existing_jobs_are_adopted_never_duplicated() -> None:
    first = plan(body(), [], {}, NOW, report_ready=False)
    # A restarted operator sees the Jobs it created before and the run id in the status.
    again = plan(body(runId=first.run_id), first.create[:2], {}, NOW, report_ready=False)
    assert [j["metadata"]["name"] for j in again.create] == ["baseline-q8-0"]
    assert again.run_id == first.run_id


def test_run_id_is_kept_from_status() -> None:
    p = plan(body(runId="chosen-earlier"), [], {}, NOW, report_ready=False)
    assert p.run_id == "chosen-earlier" and all(
        j["metadata"]["labels"]["fluxaudit.dev/run-id"] == "chosen-earlier" for j in p.create
    )


def test_progress_then_aggregation_then_success() -> None:
    first = plan(body(), [], {}, NOW, report_ready=False)
    # Before any runner reports, the totals come from the spec: 2 guidance scales × 3 groups.
    assert first.status["progress"] == "0/6"
    jobs = first.create
    partials = {"Q4_0": {"cellsTotal": 2, "cells": [{}]}}
    running = [dict(jobs[0], status={"active": 1, "startTime": NOW}), *jobs[1:]]
    p = plan(body(), running, partials, NOW, report_ready=False)
    assert p.status["phase"] == "Running" and p.status["progress"] == "1/6" and not p.create
    done = [finished(j) for j in jobs]
    p = plan(body(), done, {}, NOW, report_ready=False)
    assert p.aggregate and p.status["phase"] == "Aggregating"
    p = plan(body(), done, {}, NOW, report_ready=True)
    assert not p.aggregate and p.status["phase"] == "Succeeded"


def test_a_failed_group_still_gets_a_report_and_fails_the_audit() -> None:
    jobs = plan(body(), [], {}, NOW, report_ready=False).create
    done = [finished(jobs[0], ok=False), finished(jobs[1]), finished(jobs[2])]
    assert plan(body(), done, {}, NOW, report_ready=False).aggregate
    p = plan(body(), done, {}, NOW, report_ready=True)
    assert p.status["phase"] == "Failed"
    stalled = {c["type"]: c for c in p.status["conditions"]}["Stalled"]
    assert stalled["status"] == "True" and "Q4_0" in stalled["message"]


def test_invalid_spec_is_a_permanent_stalled_status() -> None:
    b = body()
    b["spec"]["steps"] = 0
    b["spec"]["quants"] = []
    p = plan(b, [], {}, NOW, report_ready=False)
    assert p.audit is None and not p.create and p.status["phase"] == "Failed"
    stalled = {c["type"]: c for c in p.status["conditions"]}["Stalled"]
    assert (
        stalled["reason"] == "InvalidSpec"
        and "spec.steps" in stalled["message"]
        and "spec.quants" in stalled["message"]
    )


def test_a_finished_audit_never_creates_a_job_again() -> None:
    """Jobs of a finished audit go (ttlSecondsAfterFinished, or by hand); the audit stays finished."""
    jobs = plan(body(), [], {}, NOW, report_ready=False).create
    done = plan(body(), [finished(j) for j in jobs], {}, NOW, report_ready=True)
    assert done.status["phase"] == "Succeeded"
    for left in ([], [finished(jobs[0])]):  # every Job deleted, or all but one
        later = plan(body(**done.status), left, {}, NOW, report_ready=True)
        assert not later.create and not later.aggregate
        assert later.status["phase"] == "Succeeded" and later.status["groups"] == done.status["groups"]


def test_a_running_audit_does_not_restart_a_finished_group_whose_job_was_deleted() -> None:
    jobs = plan(body(), [], {}, NOW, report_ready=False).create
    mid = plan(body(), [finished(jobs[0]), *jobs[1:]], {}, NOW, report_ready=False)
    assert mid.status["phase"] in ("Pending", "Running") and mid.status["groups"][0]["phase"] == "Succeeded"
    later = plan(body(**mid.status), jobs[1:], {}, NOW, report_ready=False)
    assert not later.create and later.status["groups"][0]["phase"] == "Succeeded"
    # a group whose Job vanished before it ended is started again (nothing finished it)
    again = plan(body(**mid.status), [finished(jobs[0]), jobs[1]], {}, NOW, report_ready=False)
    assert [j["metadata"]["annotations"]["fluxaudit.dev/quant-label"] for j in again.create] == ["Q8_0"]
