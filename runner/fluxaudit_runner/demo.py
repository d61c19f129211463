"""The demo audit: the tiny model, the demo image and mask, the default sweep.

The spec is an ordinary FluxAudit document, written next to the results so the
user can rerun it with ``fluxaudit run`` (it resumes) or edit it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fluxaudit.spec import DEFAULT_GUIDANCE, DEFAULT_PROMPT

from .tiny.builder import DEMO_SIZE, TinyModel
from .tiny.clip import TINY_CLIP_REPO

DEMO_STEPS = 4


def demo_document(model: TinyModel, seed: int = 0, compile_check: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "fluxaudit.dev/v1alpha1",
        "kind": "FluxAudit",
        "metadata": {"name": "demo"},
        "spec": {
            "input": {
                "image": model.image.resolve().as_uri(),
                "mask": model.mask.resolve().as_uri(),
                "prompt": DEFAULT_PROMPT,
            },
            "model": {"ggufRepo": model.gguf_repo, "baseRepo": model.base_repo},
            "quants": [{"label": label, "file": model.gguf_files[label]} for label in ("Q4_0", "Q5_K_S", "Q8_0")],
            "guidanceScales": list(DEFAULT_GUIDANCE),
            "steps": DEMO_STEPS,
            "seeds": [seed],
            "warmup": 1,
            "maxSide": DEMO_SIZE,
            "maxSequenceLength": 128,
            "dtype": "bfloat16",
            "compileCheck": {"enabled": compile_check, "quant": "Q8_0"},
            # the tiny random CLIP: the hallucination score's path runs offline (its values mean nothing)
            "quality": {"clipModel": TINY_CLIP_REPO},
        },
    }


def default_model_dir() -> Path:
    import os

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fluxaudit" / "tiny-model"
