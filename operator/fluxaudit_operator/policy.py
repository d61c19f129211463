"""What an audit's author may choose, as the installation allows it (pure).

The runner pod receives the installation's secrets and its Workload Identity, so the image it
runs, the nodes it lands on and the buckets it reads and writes are the installation's call.
A FluxAudit may leave those unset (the installation's defaults apply) or pick one of the values
the installation lists; an empty list allows no override.  A refusal names the field, the value
and what is allowed — never a secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse


class PolicyError(ValueError):
    """An installation policy that cannot be read (a Helm value of the wrong shape)."""


@dataclass(frozen=True)
class Policy:
    runner_images: tuple[str, ...] = ()
    node_selectors: tuple[dict[str, str], ...] = ()
    tolerations: tuple[dict[str, Any], ...] = ()
    priority_class_names: tuple[str, ...] = ()
    buckets: tuple[str, ...] = ()
    input_buckets: tuple[str, ...] = field(default=())

    @classmethod
    def from_json(cls, raw: str, name: str) -> Policy:
        if not raw.strip():
            return cls()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise PolicyError(f"{name}: not JSON ({exc})") from None
        keys = {"runnerImages", "nodeSelectors", "tolerations", "priorityClassNames", "buckets", "inputBuckets"}
        if not isinstance(data, dict) or set(data) - keys:
            raise PolicyError(
                f"{name}: expected an object with {sorted(keys)}; got {sorted(data) if isinstance(data, dict) else type(data).__name__}"
            )
        for key, value in data.items():
            if not isinstance(value, list):
                raise PolicyError(f"{name}.{key}: expected a list (empty: no override allowed)")
        return cls(
            runner_images=tuple(map(str, data.get("runnerImages", []))),
            node_selectors=tuple(data.get("nodeSelectors", [])),
            tolerations=tuple(data.get("tolerations", [])),
            priority_class_names=tuple(map(str, data.get("priorityClassNames", []))),
            buckets=tuple(map(str, data.get("buckets", []))),
            input_buckets=tuple(map(str, data.get("inputBuckets", []))),
        )


def _allowed(what: tuple[Any, ...]) -> str:
    return "none: leave it unset for the installation's value" if not what else f"allowed: {list(what)}"


def violations(spec: dict[str, Any], policy: Policy, default_bucket: str | None) -> list[str]:
    """``field: why`` for every value the author set (``spec`` as written, before the installation's
    defaults) that the installation does not allow."""
    out = []
    runner = spec.get("runner") or {}
    if runner.get("image") is not None and runner["image"] not in policy.runner_images:
        out.append(
            f"spec.runner.image: {runner['image']} is not allowed by this installation ({_allowed(policy.runner_images)})"
        )
    if runner.get("nodeSelector") is not None and runner["nodeSelector"] not in policy.node_selectors:
        out.append(
            f"spec.runner.nodeSelector: {runner['nodeSelector']} is not allowed ({_allowed(policy.node_selectors)})"
        )
    for i, toleration in enumerate(runner.get("tolerations") or []):
        if toleration not in policy.tolerations:
            out.append(f"spec.runner.tolerations[{i}]: {toleration} is not allowed ({_allowed(policy.tolerations)})")
    if runner.get("priorityClassName") is not None and runner["priorityClassName"] not in policy.priority_class_names:
        out.append(
            f"spec.runner.priorityClassName: {runner['priorityClassName']} is not allowed ({_allowed(policy.priority_class_names)})"
        )
    bucket = (spec.get("storage") or {}).get("bucket")
    if bucket is not None and bucket != default_bucket and bucket not in policy.buckets:
        out.append(f"spec.storage.bucket: {bucket} is not allowed ({_allowed(policy.buckets)})")
    readable = {*policy.input_buckets, *(b for b in (bucket or default_bucket,) if b)}
    given = [("spec.input", spec.get("input"))]
    given += [(f"spec.inputs[{i}]", item) for i, item in enumerate(spec.get("inputs") or [])]
    for where, item in given:
        for field_name in ("image", "mask"):
            uri = (item if isinstance(item, dict) else {}).get(field_name)
            if isinstance(uri, str) and uri.startswith("gs:") and urlparse(uri).netloc not in readable:
                out.append(
                    f"{where}.{field_name}: bucket {urlparse(uri).netloc} is not one the runners may read "
                    f"(allowed: {sorted(readable) or 'none'})"
                )
    return out
