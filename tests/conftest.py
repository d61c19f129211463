"""Shared fixtures.  The Hugging Face environment is set at import, before any
test module imports huggingface_hub (it reads HF_HOME and HF_HUB_OFFLINE once)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

_SESSION_ROOT = Path(tempfile.mkdtemp(prefix="fluxaudit-tests-"))
TINY_ROOT = _SESSION_ROOT / "tiny-model"
os.environ["HF_HOME"] = str(TINY_ROOT / "hf-home")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.pop("HF_HUB_CACHE", None)


@pytest.fixture(scope="session")
def tiny_model():
    from fluxaudit_runner.tiny.builder import build_tiny_model

    return build_tiny_model(TINY_ROOT, seed=0)


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
    }
    spec.update(copy.deepcopy(spec_overrides))
    return {"apiVersion": "fluxaudit.dev/v1alpha1", "kind": "FluxAudit", "metadata": {"name": "t"}, "spec": spec}


def run_cli(*args: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "fluxaudit.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
