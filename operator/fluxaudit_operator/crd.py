"""The FluxAudit CRD, generated from the spec model (pure).

One source of truth: the pydantic model's JSON schema becomes the CRD's structural
OpenAPI v3 schema — ``$ref``s inlined, ``Optional`` as ``nullable``, ``str | int``
quantities as ``x-kubernetes-int-or-string`` — so ``kubectl explain fa.spec`` shows
the same descriptions, defaults and limits the CLI enforces.  Run
``python -m fluxaudit_operator.crd > manifests/crd.yaml``; a test keeps them equal.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from fluxaudit.contract import API_GROUP, KIND, PLURAL, SHORT_NAME, SINGULAR, VERSION
from fluxaudit.spec import FluxAuditSpec

#: left without a schema default: the operator's installation defaults apply where these are unset.
INSTALLATION_DEFAULTED = ("spec.runner", "spec.storage")
_KEEP = ("description", "pattern", "minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems", "enum")


class SchemaError(ValueError):
    """The model uses a construct a structural schema cannot express."""


def _is_scalar_default(value: Any) -> bool:
    if isinstance(value, str | int | float | bool):
        return True
    return isinstance(value, list) and all(isinstance(v, str | int | float | bool) for v in value)


def structural(node: dict[str, Any], defs: dict[str, Any], path: str = "spec") -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return structural(merged, defs, path)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        nullable = len(branches) < len(node["anyOf"])
        types = sorted(b.get("type", "") for b in branches)
        if types == ["integer", "string"]:
            out: dict[str, Any] = {"x-kubernetes-int-or-string": True}
        elif len(branches) == 1:
            out = structural({**branches[0], **{k: v for k, v in node.items() if k != "anyOf"}}, defs, path)
        else:
            raise SchemaError(f"{path}: union of {types} has no structural form")
        if nullable:
            out["nullable"] = True
        if "description" in node:
            out["description"] = node["description"]
        return out
    out = {k: node[k] for k in _KEEP if k in node}
    out.update({k: v for k, v in node.items() if k.startswith("x-kubernetes-")})
    if "const" in node:
        out["enum"] = [node["const"]]
    if "exclusiveMinimum" in node:  # JSON Schema 2020 → OpenAPI 3.0
        out["minimum"], out["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if "exclusiveMaximum" in node:
        out["maximum"], out["exclusiveMaximum"] = node["exclusiveMaximum"], True
    installation_default = path.startswith(INSTALLATION_DEFAULTED)
    if (
        "default" in node
        and node["default"] is not None
        and _is_scalar_default(node["default"])
        and not installation_default
    ):
        out["default"] = node["default"]
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        out["type"] = "object"
        if "properties" in node:
            out["properties"] = {k: structural(v, defs, f"{path}.{k}") for k, v in node["properties"].items()}
        elif isinstance(node.get("additionalProperties"), dict):
            out["additionalProperties"] = structural(node["additionalProperties"], defs, f"{path}.*")
        if node.get("required"):
            out["required"] = list(node["required"])
    elif kind == "array":
        out["type"] = "array"
        out["items"] = structural(node.get("items", {}), defs, f"{path}[]")
    elif kind in ("string", "integer", "number", "boolean"):
        out["type"] = kind
    elif "enum" in out:
        out["type"] = "string"
    else:
        raise SchemaError(f"{path}: no type in {sorted(node)}")
    return out


def spec_schema() -> dict[str, Any]:
    raw = FluxAuditSpec.model_json_schema(by_alias=True, mode="validation")
    schema = structural(raw, raw.get("$defs", {}))
    schema["description"] = (
        "What to audit and how: every quant × every guidance scale, timed, with quality and compile checks."
    )
    schema["x-kubernetes-validations"] = [
        {"rule": "self == oldSelf", "message": "spec is immutable: create a new FluxAudit (or set a new runId) instead"}
    ]
    return schema


def build_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": PLURAL,
                "singular": SINGULAR,
                "kind": KIND,
                "listKind": f"{KIND}List",
                "shortNames": [SHORT_NAME],
                "categories": ["all"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                        },
                        {
                            "name": "Reason",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
                        },
                        {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
                        {"name": "Recommended", "type": "string", "jsonPath": ".status.summary.recommendedQuant"},
                        {"name": "Report", "type": "string", "jsonPath": ".status.reportPath", "priority": 1},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A reproducible audit of GGUF quantizations of FLUX.1-Fill on your image, mask and prompt.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": {
                                    "type": "object",
                                    "description": "Written by the operator: phase, conditions, per-group progress, report location.",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def render() -> str:
    header = "# Generated by `python -m fluxaudit_operator.crd` from fluxaudit/spec/: do not edit by hand.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=120)


if __name__ == "__main__":
    sys.stdout.write(render())
