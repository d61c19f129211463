"""The CRD: generated from the spec model, kept in manifests/, valid, and agreeing
with the model on what it accepts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from fluxaudit.spec import SpecError, parse_document
from fluxaudit_operator.crd import build_crd, render

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "manifests" / "examples" / "audit.yaml"


def _schema() -> dict[str, Any]:
    return build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _validator() -> jsonschema.Draft4Validator:
    # OpenAPI v3.0 schemas use draft-4 style boolean exclusiveMinimum; x-kubernetes-* keys are ignored.
    return jsonschema.Draft4Validator(_schema())


def test_manifest_is_the_generated_crd() -> None:
    assert (ROOT / "manifests" / "crd.yaml").read_text() == render(), (
        "manifests/crd.yaml is stale: run python -m fluxaudit_operator.crd > manifests/crd.yaml"
    )


@pytest.mark.parametrize("version", ["1.29", kubernetes_validate.utils.latest_version()])
def test_crd_validates_strictly(version: str) -> None:
    kubernetes_validate.validate(build_crd(), version, strict=True)


def test_every_spec_field_is_described() -> None:
    missing: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        for key, child in (node.get("properties") or {}).items():
            if not child.get("description"):
                missing.append(f"{path}.{key}")
            walk(child, f"{path}.{key}")
        if "items" in node:
            walk(node["items"], f"{path}[]")

    walk(_schema()["properties"]["spec"], "spec")
    assert not missing, missing


def test_structural_essentials() -> None:
    version = build_crd()["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Phase",
        "Ready",
        "Reason",
        "Progress",
        "Recommended",
        "Report",
        "Age",
    ]
    assert spec["properties"]["guidanceScales"]["items"] == {
        "type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 100
    }  # fmt: skip
    limits = spec["properties"]["runner"]["properties"]["resources"]["properties"]["limits"]
    assert limits["additionalProperties"] == {"x-kubernetes-int-or-string": True}
    assert "$ref" not in yaml.safe_dump(spec) and "anyOf" not in yaml.safe_dump(spec)


def test_example_audit_is_valid_for_crd_and_model() -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    _validator().validate(doc)
    audit = parse_document(doc)
    assert audit.spec.input.session_id == "D1A406F5" and len(audit.spec.quants) == 3
    assert audit.spec.guidance_scales == (2, 4, 10, 20, 30)


@pytest.mark.parametrize(
    "spec",
    [
        {"steps": 0},
        {"guidanceScales": [0]},
        {"guidanceScales": [101]},
        {"guidanceScales": []},
        {"quants": [{"label": "../x", "file": "a.gguf"}]},
        {"storage": {"signedUrlHours": 169}},
        {"dtype": "int8"},
        {"runId": "Bad_Id"},
    ],
)
def test_crd_and_model_reject_the_same_bad_fields(spec: dict[str, Any]) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc = copy.deepcopy(doc)
    doc["spec"].update(spec)
    assert list(_validator().iter_errors(doc)), f"the CRD accepts {spec}"
    with pytest.raises(SpecError):
        parse_document(doc)
