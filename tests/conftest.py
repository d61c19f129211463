"""Shared fixtures.  The Hugging Face environment is set at import, before any
test module imports huggingface_hub (it reads HF_HOME and HF_HUB_OFFLINE once); so is Triton's
interpreter, before any test module imports Triton: ``triton.language``'s own jit functions
(``tl.zeros``, ``tl.sum``) are built interpreted only if it is set when Triton is first imported."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SESSION_ROOT = Path(tempfile.mkdtemp(prefix="fluxaudit-tests-"))
TINY_ROOT = _SESSION_ROOT / "tiny-model"
os.environ["HF_HOME"] = str(TINY_ROOT / "hf-home")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.pop("HF_HUB_CACHE", None)
os.environ.setdefault("TRITON_INTERPRET", "1")  # no GPU here: the fast path's kernels run on CPU


@pytest.fixture(scope="session")
def tiny_model():
    from fluxaudit_runner.tiny.builder import build_tiny_model

    return build_tiny_model(TINY_ROOT, seed=0)
