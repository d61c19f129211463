"""The Argo CD health check (charts/fluxaudit/argocd/health.lua) in a real Lua interpreter:
Argo CD's own test-case file, then the statuses the operator really writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa
import pytest
import yaml

from fluxaudit_operator.status import GroupObservation, audit_status, group_status

ARGOCD = Path(__file__).resolve().parents[2] / "charts" / "fluxaudit" / "argocd"
CASES = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]
NOW = "2026-11-29T12:00:00Z"


def health(obj: dict[str, Any]) -> dict[str, str]:
    """Run the script as Argo CD does: ``obj`` is a global, the script returns the health table."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute((ARGOCD / "health.lua").read_text())
    return {"status": result["status"], "message": result["message"]}


@pytest.mark.parametrize("case", CASES, ids=[c["inputPath"] for c in CASES])
def test_argocd_cases(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((ARGOCD / case["inputPath"]).read_text())
    assert health(obj) == case["healthStatus"]


def _audit(status: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": "a", "generation": generation}, "status": status}


def _groups(*phases: str) -> list[dict[str, Any]]:
    out = []
    for i, phase in enumerate(phases):
        conditions = {"Succeeded": "Complete", "Failed": "Failed"}.get(phase)
        job = {"status": {"conditions": [{"type": conditions, "status": "True"}]}} if conditions else None
        if phase == "Running":
            job = {"status": {"active": 1, "startTime": NOW}}
        out.append(group_status(GroupObservation(f"Q{i}", f"a-q{i}", job, None, 5)))
    return out


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (audit_status(1, _groups("Pending", "Pending"), NOW), "Progressing"),
        (audit_status(1, _groups("Running", "Succeeded"), NOW), "Progressing"),
        (audit_status(1, _groups("Succeeded", "Succeeded"), NOW), "Progressing"),  # aggregating
        (audit_status(1, _groups("Succeeded", "Succeeded"), NOW, report_ready=True), "Healthy"),
        (audit_status(1, _groups("Succeeded", "Failed"), NOW, report_ready=True), "Degraded"),
        (audit_status(1, [], NOW, spec_error="spec.steps: must be ≥ 1"), "Degraded"),
    ],
)
def test_operator_statuses_map_to_argocd_health(status: dict[str, Any], expected: str) -> None:
    assert health(_audit(status))["status"] == expected
