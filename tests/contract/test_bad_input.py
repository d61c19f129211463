"""Bad FluxAudits, each refused with a message that names the field: by the API server's
schema where the CRD can say it (as kubectl would see it: Strict field validation), by the
operator otherwise (phase Failed, Stalled=InvalidSpec, no Job created).  Then, property
based: any spec the model accepts renders Jobs that are valid Kubernetes objects."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fluxaudit.spec import SpecError, parse_document
from tests.support.helpers import jobs_for
from tests.support.kube.cluster import EmulatedCluster, OperatorProcess, wait_for

NS = "audits"
API = ("fluxaudit.dev", "v1alpha1", NS, "fluxaudits")
BASE: dict[str, Any] = {
    "apiVersion": "fluxaudit.dev/v1alpha1",
    "kind": "FluxAudit",
    "metadata": {"name": "x"},
    "spec": {"input": {"userId": "u1", "sessionId": "D1A406F5"}, "storage": {"bucket": "proj.appspot.com"}},
}
QUANT = {"label": "Q4_0", "file": "flux1-fill-dev-Q4_0.gguf"}


def doc(**spec: Any) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    for key, value in spec.items():
        if value is None:
            d["spec"].pop(key, None)
        else:
            d["spec"][key] = value
    return d


# (case id, document, the field the error must name)
SCHEMA_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("steps-wrong-type", doc(steps="many"), "spec.steps"),
    ("steps-zero", doc(steps=0), "spec.steps"),
    ("steps-too-many", doc(steps=500), "spec.steps"),
    ("guidance-empty", doc(guidanceScales=[]), "spec.guidanceScales"),
    ("guidance-too-high", doc(guidanceScales=[2, 400]), "spec.guidanceScales[1]"),
    ("guidance-zero", doc(guidanceScales=[0]), "spec.guidanceScales[0]"),
    ("guidance-duplicate", doc(guidanceScales=[2, 2]), "spec.guidanceScales"),
    ("guidance-oversize", doc(guidanceScales=list(range(1, 41))), "spec.guidanceScales"),
    ("quants-empty", doc(quants=[]), "spec.quants"),
    ("quant-label-space", doc(quants=[{**QUANT, "label": "Q4 0"}]), "spec.quants[0].label"),
    ("quant-label-traversal", doc(quants=[{**QUANT, "label": "../etc"}]), "spec.quants[0].label"),
    ("quant-file-not-gguf", doc(quants=[{**QUANT, "file": "model.bin"}]), "spec.quants[0].file"),
    ("quant-labels-duplicate", doc(quants=[QUANT, {**QUANT, "file": "other.gguf"}]), "spec.quants[1]"),
    ("quant-sha256-short", doc(quants=[{**QUANT, "sha256": "abc"}]), "spec.quants[0].sha256"),
    ("quants-oversize", doc(quants=[{"label": f"q{i}", "file": f"q{i}.gguf"} for i in range(40)]), "spec.quants"),
    ("url-expiry-over-7-days", doc(storage={"bucket": "b-1", "signedUrlHours": 200}), "spec.storage.signedUrlHours"),
    ("prefix-traversal", doc(storage={"bucket": "b-1", "prefix": "../x"}), "spec.storage.prefix"),
    ("bucket-uppercase", doc(storage={"bucket": "Not_A_Bucket"}), "spec.storage.bucket"),
    ("seed-negative", doc(seeds=[-1]), "spec.seeds[0]"),
    ("seeds-duplicate", doc(seeds=[1, 1]), "spec.seeds"),
    ("dtype-unknown", doc(dtype="int8"), "spec.dtype"),
    ("max-side-too-small", doc(maxSide=32), "spec.maxSide"),
    ("backoff-limit-too-high", doc(runner={"backoffLimit": 50}), "spec.runner.backoffLimit"),
    ("prompt-empty", doc(input={"userId": "u1", "sessionId": "s1", "prompt": ""}), "spec.input.prompt"),
    ("image-uri-http", doc(input={"image": "http://x/a.png", "mask": "gs://b/m.png"}), "spec.input.image"),
    ("run-id-unsafe", doc(runId="Bad Id/.."), "spec.runId"),
    (
        "toleration-operator",
        doc(runner={"tolerations": [{"key": "a", "operator": "Sometimes"}]}),
        "spec.runner.tolerations[0].operator",
    ),
    ("spec-missing", {**copy.deepcopy(BASE), "spec": None}, "spec"),
]
STRICT_CASES = [("unknown-field", doc(stepz=4), 'unknown field \\"spec.stepz\\"')]
# What JSON Schema cannot express: cross-field rules, and what depends on the installation.
OPERATOR_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("reference-not-a-quant", doc(reference="Q9"), "reference 'Q9' is not one of the quants"),
    ("compile-quant-not-a-quant", doc(compileCheck={"quant": "Q9"}), "compileCheck.quant 'Q9'"),
    ("label-reserved-bf16", doc(quants=[{**QUANT, "label": "bf16"}]), "spec.quants"),
    (
        "input-both-sources",
        doc(input={"userId": "u", "sessionId": "s", "image": "gs://b/i.png", "mask": "gs://b/m.png"}),
        "spec.input",
    ),
    ("input-half-session", doc(input={"userId": "u"}), "spec.input"),
    (
        "template-unknown-placeholder",
        doc(input={"userId": "u", "sessionId": "s", "imageTemplate": "x/{project}.png"}),
        "spec.input.imageTemplate",
    ),
    ("labels-same-in-kubernetes", doc(quants=[QUANT, {"label": "Q4.0", "file": "b.gguf"}]), "both become 'q4-0'"),
    ("file-parent-dir", doc(quants=[{**QUANT, "file": "a/../b.gguf"}]), "spec.quants[0].file"),
    ("no-bucket-no-shared-volume", doc(storage=None), "spec.storage.bucket"),
    # The installation decides (#15): with no policy, an audit may override none of these.
    (
        "runner-image-not-allowed",
        doc(runner={"image": "evil.example/x:1"}),
        "spec.runner.image: evil.example/x:1 is not allowed",
    ),
    ("bucket-not-allowed", doc(), "spec.storage.bucket: proj.appspot.com is not allowed"),
    (
        "input-bucket-not-allowed",
        doc(input={"image": "gs://someone-else/i.png", "mask": "gs://someone-else/m.png"}),
        "spec.input.image: bucket someone-else is not one the runners may read",
    ),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedCluster]:
    with EmulatedCluster(tmp_path_factory.mktemp("bad-input"), run_pods=False) as c:
        yield c


def test_the_table_is_big_enough() -> None:
    assert len(SCHEMA_CASES) + len(STRICT_CASES) + len(OPERATOR_CASES) >= 25


@pytest.mark.parametrize(("name", "document", "field"), SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_refused_by_the_crd_schema(cluster: EmulatedCluster, name: str, document: dict[str, Any], field: str) -> None:
    document = copy.deepcopy(document)
    document["metadata"]["name"] = name
    custom = client.CustomObjectsApi(cluster.client())
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(*API, document, field_validation="Strict")
    assert refused.value.status == 422, refused.value.body
    assert f"{field}: Invalid value" in refused.value.body or f"{field}: Duplicate value" in refused.value.body
    # The operator's own model refuses it too (the CLI and a CRD-less cluster get the same answer).
    with pytest.raises(SpecError):
        parse_document(document)


@pytest.mark.parametrize(("name", "document", "text"), STRICT_CASES, ids=[c[0] for c in STRICT_CASES])
def test_unknown_fields_are_refused_under_strict_validation(
    cluster: EmulatedCluster, name: str, document: dict[str, Any], text: str
) -> None:
    document = copy.deepcopy(document)
    document["metadata"]["name"] = name
    with pytest.raises(ApiException) as refused:
        client.CustomObjectsApi(cluster.client()).create_namespaced_custom_object(
            *API, document, field_validation="Strict"
        )
    assert refused.value.status == 400 and text in refused.value.body


def test_an_edit_of_the_spec_is_refused(cluster: EmulatedCluster) -> None:
    custom = client.CustomObjectsApi(cluster.client())
    document = doc()
    document["metadata"]["name"] = "immutable"
    custom.create_namespaced_custom_object(*API, document)
    with pytest.raises(ApiException) as refused:
        custom.patch_namespaced_custom_object(*API, "immutable", {"spec": {"steps": 10}})
    assert (
        refused.value.status == 422
        and "spec: Invalid value" in refused.value.body
        and "immutable" in refused.value.body
    )


def test_refused_by_the_operator(cluster: EmulatedCluster) -> None:
    custom = client.CustomObjectsApi(cluster.client())
    for name, document, _ in OPERATOR_CASES:
        document = copy.deepcopy(document)
        document["metadata"]["name"] = name
        custom.create_namespaced_custom_object(*API, document, field_validation="Strict")  # the schema lets it in

    def stalled() -> dict[str, dict[str, Any]] | None:
        out = {}
        for name, _, _ in OPERATOR_CASES:
            status = custom.get_namespaced_custom_object(*API, name).get("status") or {}
            if status.get("phase") != "Failed":
                return None
            out[name] = next(c for c in status["conditions"] if c["type"] == "Stalled")
        return out

    with OperatorProcess(cluster, {}):
        conditions = wait_for("every bad audit to be Stalled", stalled, 60)
    for name, _, field in OPERATOR_CASES:
        condition = conditions[name]
        assert condition["status"] == "True" and condition["reason"] == "InvalidSpec", (name, condition)
        assert field in condition["message"], (name, condition["message"])
    jobs = client.BatchV1Api(cluster.client()).list_namespaced_job(NS).items
    bad = {name for name, _, _ in OPERATOR_CASES}
    assert not [j for j in jobs if j.metadata.labels["fluxaudit.dev/audit"] in bad]


LABEL = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,20}\Z")
SPECS = st.fixed_dictionaries(
    {
        "input": st.just({"userId": "u1", "sessionId": "s1"}),
        "quants": st.lists(LABEL, min_size=1, max_size=4, unique_by=str.lower).map(
            lambda labels: [{"label": lb, "file": f"{lb}.gguf"} for lb in labels if lb.lower() != "bf16"] or [QUANT]
        ),
        "guidanceScales": st.lists(st.floats(0.5, 100), min_size=1, max_size=5, unique=True),
        "steps": st.integers(1, 200),
        "runner": st.fixed_dictionaries(
            {
                "nodeSelector": st.dictionaries(
                    st.from_regex(r"\A[a-z][a-z0-9.-]{0,10}/[a-z]{1,10}\Z"),
                    st.from_regex(r"\A[a-z0-9]{1,10}\Z"),
                    max_size=3,
                ),
                "backoffLimit": st.integers(0, 20),
                "activeDeadlineSeconds": st.integers(60, 7 * 24 * 3600),
            }
        ),
        "storage": st.fixed_dictionaries({"bucket": st.just("bucket-1"), "signedUrlHours": st.integers(1, 168)}),
    },
    optional={"runId": st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,30}[a-z0-9]\Z"), "reference": st.just("bf16")},
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=SPECS, name=st.from_regex(r"\A[a-z][a-z0-9-]{0,50}[a-z0-9]\Z"))
def test_any_accepted_spec_renders_valid_jobs(spec: dict[str, Any], name: str) -> None:
    try:
        audit = parse_document({**copy.deepcopy(BASE), "metadata": {"name": name}, "spec": spec})
    except SpecError:
        return  # refused, with field paths: covered above
    jobs = jobs_for(audit, namespace=NS, uid="0b0c")
    assert len(jobs) == len(audit.spec.group_labels()) == len({j["metadata"]["name"] for j in jobs})
    for job in jobs:
        assert len(job["metadata"]["name"]) <= 63
        kubernetes_validate.validate(job, kubernetes_validate.utils.latest_version(), strict=True)
