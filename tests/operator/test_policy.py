"""Installation policy (#15): the installation decides what runs where; an audit's author picks only
among what it allows, and tenants never share a results folder."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from fluxaudit_operator.config import ConfigError, OperatorConfig
from fluxaudit_operator.policy import Policy
from tests.support.helpers import plan_from_body

NOW = "2026-12-02T12:00:00Z"
DEFAULTS = {"runner": {"image": "registry.local/runner:1"}, "storage": {"bucket": "team-bucket"}}


def body(namespace: str = "team-a", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "fluxaudit.dev/v1alpha1",
        "kind": "FluxAudit",
        "metadata": {"name": "a", "namespace": namespace, "uid": f"u-{namespace}", "generation": 1},
        "spec": {"input": {"userId": "u", "sessionId": "s"}, **copy.deepcopy(spec)},
    }


def stalled(p: Any) -> str:
    return {c["type"]: c for c in p.status["conditions"]}["Stalled"]["message"] if not p.create else ""


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"runner": {"image": "evil.example/miner:latest"}}, "spec.runner.image: evil.example/miner:latest is not allowed"),
        ({"runner": {"nodeSelector": {"pool": "system"}}}, "spec.runner.nodeSelector"),
        ({"runner": {"tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}}, "spec.runner.tolerations[0]"),
        ({"runner": {"priorityClassName": "system-cluster-critical"}}, "spec.runner.priorityClassName"),
        ({"storage": {"bucket": "other-team-bucket"}}, "spec.storage.bucket: other-team-bucket is not allowed"),
        ({"input": {"image": "gs://other-team-bucket/x.png", "mask": "gs://team-bucket/m.png"}}, "spec.input.image: bucket other-team-bucket"),
        ({"input": None, "inputs": [{"userId": "u", "sessionId": "s"}, {"image": "gs://team-bucket/x.png", "mask": "gs://other-team-bucket/m.png"}]}, "spec.inputs[1].mask: bucket other-team-bucket"),
    ],
)  # fmt: skip
def test_what_the_installation_does_not_allow_is_refused_by_name(spec: dict[str, Any], field: str) -> None:
    p = plan_from_body(body(**spec), [], {}, NOW, report_ready=False, spec_defaults=DEFAULTS, policy=Policy())
    assert not p.create and p.status["phase"] == "Failed" and field in stalled(p), stalled(p)


def test_allowed_values_and_the_installations_own_run() -> None:
    policy = Policy(runner_images=("registry.local/runner:2",), priority_class_names=("batch-low",),
                    input_buckets=("shared-inputs",))  # fmt: skip
    chosen = body(runner={"image": "registry.local/runner:2", "priorityClassName": "batch-low"},
                  input={"image": "gs://shared-inputs/i.png", "mask": "gs://team-bucket/m.png"})  # fmt: skip
    p = plan_from_body(chosen, [], {}, NOW, report_ready=False, spec_defaults=DEFAULTS, policy=policy)
    pod = p.create[0]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.local/runner:2" and pod["priorityClassName"] == "batch-low"
    unset = plan_from_body(body(), [], {}, NOW, report_ready=False, spec_defaults=DEFAULTS, policy=Policy())
    assert unset.create[0]["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/runner:1"
    same = plan_from_body(body(storage={"bucket": "team-bucket"}), [], {}, NOW, report_ready=False,
                          spec_defaults=DEFAULTS, policy=Policy())  # fmt: skip
    assert same.create  # naming the installation's own bucket is no override


def test_results_are_kept_apart_by_namespace() -> None:
    """Same name, same spec, two namespaces: one run id, two folders."""
    runs = {}
    for ns in ("team-a", "team-b"):
        p = plan_from_body(body(ns), [], {}, NOW, report_ready=False, spec_defaults=DEFAULTS, policy=Policy())
        env = {e["name"]: e.get("value") for e in p.create[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
        runs[ns] = (p.run_id, json.loads(env["FLUXAUDIT_SPEC"])["spec"]["storage"]["prefix"])
    assert runs["team-a"][0] == runs["team-b"][0]
    assert runs["team-a"][1] == "audit/team-a" and runs["team-b"][1] == "audit/team-b"


def test_a_policy_of_the_wrong_shape_stops_the_operator_naming_it() -> None:
    ok = OperatorConfig.from_env({"FLUXAUDIT_POLICY": '{"runnerImages": ["r:1"], "buckets": []}'})
    assert ok.policy.runner_images == ("r:1",)
    with pytest.raises(ConfigError, match=r"FLUXAUDIT_POLICY\.runnerImages: expected a list"):
        OperatorConfig.from_env({"FLUXAUDIT_POLICY": '{"runnerImages": "r:1"}'})
    with pytest.raises(ConfigError, match="FLUXAUDIT_POLICY: expected an object"):
        OperatorConfig.from_env({"FLUXAUDIT_POLICY": '{"images": []}'})
