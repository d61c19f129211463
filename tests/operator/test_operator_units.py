"""Pure parts of the operator: its settings, report-link freshness, and status → Events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fluxaudit_operator.config import ConfigError, OperatorConfig
from fluxaudit_operator.report_links import needs_signing
from fluxaudit_operator.status import transitions, with_storage_problem

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_config_defaults_and_overrides() -> None:
    default = OperatorConfig.from_env({})
    assert default.jobs.hf_token_secret == "fluxaudit-hf-token" and default.jobs.firebase_secret is None
    assert default.namespaces == () and default.reconcile_seconds == 60
    custom = OperatorConfig.from_env(
        {
            "FLUXAUDIT_NAMESPACES": "audits, team-b ,",
            "FLUXAUDIT_HF_TOKEN_SECRET": "",
            "FLUXAUDIT_FIREBASE_SECRET": "fb",
            "FLUXAUDIT_STORAGE_ROOT": "/results",
            "FLUXAUDIT_STORAGE_CLAIM": "results",
            "FLUXAUDIT_RECONCILE_SECONDS": "5",
        }
    )
    assert custom.namespaces == ("audits", "team-b")
    assert custom.jobs.hf_token_secret is None and custom.jobs.firebase_secret == "fb"
    assert (custom.jobs.storage_root, custom.jobs.storage_claim, custom.reconcile_seconds) == ("/results", "results", 5)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"FLUXAUDIT_RECONCILE_SECONDS": "soon"}, "FLUXAUDIT_RECONCILE_SECONDS"),
        ({"FLUXAUDIT_RECONCILE_SECONDS": "0"}, "FLUXAUDIT_RECONCILE_SECONDS"),
        ({"FLUXAUDIT_STORAGE_CLAIM": "c"}, "FLUXAUDIT_STORAGE_ROOT"),
        ({"FLUXAUDIT_STORAGE_ROOT": "relative/path"}, "FLUXAUDIT_STORAGE_ROOT"),
    ],
)
def test_config_errors_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        OperatorConfig.from_env(env)


def test_report_links_are_re_signed_before_they_expire() -> None:
    def expires(hours: float) -> dict[str, str]:
        when = (NOW + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"reportURL": "https://signed", "reportURLExpiresAt": when}

    assert needs_signing({}, NOW, 72, 0.25)  # never signed
    assert not needs_signing(expires(71), NOW, 72, 0.25)
    assert not needs_signing(expires(19), NOW, 72, 0.25)
    assert needs_signing(expires(17), NOW, 72, 0.25)  # under a quarter of 72 h left
    assert needs_signing(expires(-1), NOW, 72, 0.25)  # already expired
    assert not needs_signing({"reportURL": "file:///r/REPORT.md", "reportURLExpiresAt": None}, NOW, 72, 0.25)


def _group(quant: str, phase: str, **extra: object) -> dict[str, object]:
    return {"quant": quant, "job": f"a-{quant}", "phase": phase, "cellsDone": 2, "cellsTotal": 2, **extra}


def test_transitions_become_events_without_urls() -> None:
    old = {"phase": "Running", "groups": [_group("Q4_0", "Running"), _group("Q8_0", "Running")]}
    new = {
        "phase": "Failed",
        "reportPath": "gs://b/audit/r/REPORT.md",
        "reportURL": "https://storage.googleapis.com/b/x?X-Goog-Signature=secret",
        "groups": [_group("Q4_0", "Succeeded"), _group("Q8_0", "Failed", message="BackoffLimitExceeded")],
        "conditions": [
            {"type": "Stalled", "status": "True", "reason": "GroupsFailed", "message": "groups failed: Q8_0"}
        ],
    }
    events = transitions(old, new)
    assert [(e.type, e.reason) for e in events] == [
        ("Normal", "GroupSucceeded"),
        ("Warning", "GroupFailed"),
        ("Warning", "GroupsFailed"),
    ]
    assert all("X-Goog-Signature" not in e.message for e in events)
    assert transitions(new, new) == []  # no change, no event


def test_storage_problem_keeps_the_progress_and_marks_stalled() -> None:
    old = {"phase": "Running", "progress": "3/6", "groups": [_group("Q4_0", "Running")], "conditions": []}
    status = with_storage_problem(old, 1, "2026-11-29T12:00:00Z", "StorageUnavailable", "503 from the bucket")
    assert status["progress"] == "3/6" and status["groups"] == old["groups"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"], stalled["observedGeneration"]) == ("True", "StorageUnavailable", 1)


def test_installation_defaults_fill_only_what_the_author_left_out() -> None:
    from fluxaudit_operator.defaults import merge_defaults

    defaults = {
        "runner": {"image": "registry.local/runner:1", "nodeSelector": {"pool": "l4"}},
        "storage": {"bucket": "team-bucket"},
    }
    spec = {"runner": {"nodeSelector": {"pool": "h100"}}, "storage": {"prefix": "x"}, "steps": 4}
    merged = merge_defaults(spec, defaults)
    assert merged["runner"] == {"image": "registry.local/runner:1", "nodeSelector": {"pool": "h100"}}
    assert merged["storage"] == {"bucket": "team-bucket", "prefix": "x"} and merged["steps"] == 4
    assert spec["runner"] == {"nodeSelector": {"pool": "h100"}}  # the input is not modified


def test_spec_defaults_are_checked_at_start_and_name_the_field() -> None:
    ok = OperatorConfig.from_env({"FLUXAUDIT_SPEC_DEFAULTS": '{"runner": {"image": "r:1"}}'})
    assert ok.spec_defaults == {"runner": {"image": "r:1"}}
    with pytest.raises(ConfigError, match=r"FLUXAUDIT_SPEC_DEFAULTS.runner.backoffLimit"):
        OperatorConfig.from_env({"FLUXAUDIT_SPEC_DEFAULTS": '{"runner": {"backoffLimit": 99}}'})
    with pytest.raises(ConfigError, match="not JSON"):
        OperatorConfig.from_env({"FLUXAUDIT_SPEC_DEFAULTS": "{runner"})


def test_plan_applies_installation_defaults_and_ignores_their_changes_later() -> None:
    from tests.support.helpers import plan_from_body as plan

    body = {
        "apiVersion": "fluxaudit.dev/v1alpha1",
        "kind": "FluxAudit",
        "metadata": {"name": "a", "namespace": "n", "uid": "u", "generation": 1},
        "spec": {"input": {"userId": "u", "sessionId": "s"}, "runner": {"tolerations": []}},
    }
    defaults = {"runner": {"image": "registry.local/runner:1", "tolerations": [{"key": "x", "operator": "Exists"}]}}
    no_bucket = plan(body, [], {}, "2026-11-29T12:00:00Z", report_ready=False, spec_defaults=defaults)
    assert no_bucket.status["conditions"][0]["reason"] == "InvalidSpec"  # no bucket anywhere
    defaults["storage"] = {"bucket": "team-bucket"}
    first = plan(body, [], {}, "2026-11-29T12:00:00Z", report_ready=False, spec_defaults=defaults)
    pod = first.create[0]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.local/runner:1"
    assert pod["tolerations"] == []  # the author's empty list wins over the installation's
    body["status"] = first.status
    defaults["runner"]["image"] = "registry.local/runner:2"
    later = plan(body, first.create, {}, "2026-11-29T12:00:00Z", report_ready=False, spec_defaults=defaults)
    assert later.status["phase"] != "Failed" and not later.create
