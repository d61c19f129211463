"""Helpers tests share: a small audit of the tiny model, the CLI in a fresh process."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from typing import Any


def audit_doc(model: Any, **spec_overrides: Any) -> dict[str, Any]:
    """A small, fast audit of the tiny model; override any spec field."""
    spec: dict[str, Any] = {
        "input": {"image": model.image.resolve().as_uri(), "mask": model.mask.resolve().as_uri()},
        "model": {"ggufRepo": model.gguf_repo, "baseRepo": model.base_repo},
        "quants": [{"label": label, "file": model.gguf_files[label]} for label in ("Q4_0", "Q5_K_S", "Q8_0")],
        "guidanceScales": [2, 30],
        "steps": 2,
        "maxSide": 64,
        "maxSequenceLength": 32,
        "warmup": 1,
        "compileCheck": {"enabled": False},
        # The largest GGUF file as the reference: one group fewer than the default (bf16), on 2 CPU cores.
        "reference": None,
    }
    spec.update(copy.deepcopy(spec_overrides))
    return {"apiVersion": "fluxaudit.dev/v1alpha1", "kind": "FluxAudit", "metadata": {"name": "t"}, "spec": spec}


def run_cli(*args: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "fluxaudit_cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def pinned(audit: Any, run_id: str) -> Any:
    """The audit with its run id fixed, as the operator pins it (``planning.read_resource``)."""
    return audit.model_copy(update={"spec": audit.spec.model_copy(update={"run_id": run_id})})


def jobs_for(audit: Any, *, namespace: str, uid: str, run_id: str | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """Every group's Job manifest, as the operator's plan builds them."""
    from fluxaudit_operator.jobs import build_job

    audit = pinned(audit, run_id or audit.run_id())
    return [build_job(audit, label, namespace=namespace, uid=uid, **kwargs) for label in audit.spec.group_labels()]


def plan_from_body(body: dict[str, Any], jobs: list[dict[str, Any]], partials: dict[str, Any], now: str, *,
                   spec_defaults: dict[str, Any] | None = None, **kwargs: Any) -> Any:  # fmt: skip
    """One reconcile decision from a FluxAudit as the API returns it (parsed once, as the reconciler does)."""
    from fluxaudit_operator.planning import plan, read_resource

    policy = kwargs.pop("policy", None)
    return plan(read_resource(body, spec_defaults, policy), jobs, partials, now, **kwargs)


def tiny_fp32_state_dict(seed: int = 0) -> dict[str, Any]:
    """The unquantized tiny transformer weights a seed produces (tests compare the GGUF files against them)."""
    import tempfile
    from pathlib import Path

    from fluxaudit_runner.tiny.builder import save_pipeline_folder

    with tempfile.TemporaryDirectory(prefix="fluxaudit-tiny-sd-") as tmp:
        return save_pipeline_folder(Path(tmp) / "base", seed)
