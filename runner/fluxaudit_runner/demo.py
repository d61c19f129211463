"""The demo audit: the tiny model, the demo image and mask, the default sweep.

The spec is an ordinary FluxAudit document, written next to the results so the
user can rerun it with ``fluxaudit run`` (it resumes) or edit it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fluxaudit.spec import DEFAULT_GUIDANCE, DEFAULT_PROMPT

from .tiny.builder import DEMO_SIZE, TinyModel, demo_image_and_mask
from .tiny.clip import TINY_CLIP_REPO

DEMO_STEPS = 4
#: the other demo scenes (``--inputs``): the object elsewhere, another colour, another prompt
SCENES = (
    ((0.10, 0.55, 0.35, 0.90), (30, 60, 200), "dry grass, nothing here, the field continuing"),
    ((0.60, 0.50, 0.92, 0.75), (240, 200, 20), DEFAULT_PROMPT),
    ((0.30, 0.60, 0.55, 0.95), (20, 160, 60), "bare soil, nothing on it"),
)
MAX_DEMO_INPUTS = 1 + len(SCENES)


def demo_inputs(model: TinyModel, folder: Path, count: int) -> list[dict[str, Any]]:
    """The demo's image, then ``count`` − 1 other scenes written to ``folder``: ``spec.inputs``."""
    items = [{"image": model.image.resolve().as_uri(), "mask": model.mask.resolve().as_uri(), "name": "scene-1"}]
    folder.mkdir(parents=True, exist_ok=True)
    for i, (box, colour, prompt) in enumerate(SCENES[: count - 1], start=2):
        image, mask = demo_image_and_mask(DEMO_SIZE, box, colour)
        image.save(folder / f"scene-{i}.png")
        mask.save(folder / f"scene-{i}_mask.png")
        items.append({"image": (folder / f"scene-{i}.png").resolve().as_uri(),
                      "mask": (folder / f"scene-{i}_mask.png").resolve().as_uri(), "prompt": prompt,
                      "name": f"scene-{i}"})  # fmt: skip
    return items


def demo_document(
    model: TinyModel,
    seed: int = 0,
    compile_check: bool = True,
    inputs: list[dict[str, Any]] | None = None,
    seeds: int = 1,
) -> dict[str, Any]:
    """The demo audit; ``inputs`` (``demo_inputs``) replaces the one input, ``seeds`` seeds from ``seed`` up."""
    doc = {
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
            "seeds": list(range(seed, seed + seeds)),
            "warmup": 1,
            "maxSide": DEMO_SIZE,
            "maxSequenceLength": 128,
            "dtype": "bfloat16",
            "compileCheck": {"enabled": compile_check, "quant": "Q8_0"},
            # the tiny random CLIP: the hallucination score's path runs offline (its values mean nothing)
            "quality": {"clipModel": TINY_CLIP_REPO},
        },
    }
    if inputs is not None and len(inputs) > 1:
        spec: dict[str, Any] = doc["spec"]  # type: ignore[assignment]
        del spec["input"]
        spec["inputs"] = inputs
    return doc


def default_model_dir() -> Path:
    import os

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fluxaudit" / "tiny-model"
