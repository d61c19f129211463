"""Does the fill look like *something* rather than the surface around it?  CLIP's answer, per cell.

The image–text model (``quality.clipModel``) comes from the hub exactly as the FLUX weights do (cache,
revision, ``HF_TOKEN``, ``HF_HUB_OFFLINE``).  The score is the probability CLIP gives the object prompts
(``quality.objectPrompts``) over the fill prompt, on the crop around the mask: 0 when the fill reads as
what the prompt asks for, towards 1 when it reads as an object.  It runs on the CPU after a cell is timed
(the GPU keeps the transformer; ViT-B/32 takes a fraction of a second per image), and when the model
cannot be loaded the partial says why and no score is invented.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from fluxaudit.spec import FluxAuditSpec

#: the crop around the mask's bounding box grows by this share of its size on each side (context).
CROP_MARGIN = 0.15


@dataclass
class Scorer:
    model: Any
    processor: Any
    object_prompts: list[str]
    name: str

    def score(self, image: Image.Image, mask: Image.Image, prompt: str) -> float | None:
        """1 − p(fill prompt) over [the input's fill prompt, *object prompts] on the fill's crop; None: empty mask."""
        crop = fill_crop(image, mask)
        if crop is None:
            return None
        inputs = self.processor(text=[prompt, *self.object_prompts], images=crop, return_tensors="pt", padding=True)
        with torch.inference_mode():
            logits = self.model(**inputs).logits_per_image[0]
        probabilities = torch.softmax(logits.float(), dim=-1)
        return float(1.0 - probabilities[0])


def fill_crop(image: Image.Image, mask: Image.Image) -> Image.Image | None:
    """The mask's bounding box, grown by ``CROP_MARGIN``, cut from the result."""
    inside = np.asarray(mask.convert("L").resize(image.size)) >= 128
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if rows.size == 0:
        return None
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    dy, dx = round((bottom - top) * CROP_MARGIN), round((right - left) * CROP_MARGIN)
    box = (max(0, left - dx), max(0, top - dy), min(image.width, right + dx), min(image.height, bottom + dy))
    return image.convert("RGB").crop(box)


@functools.lru_cache(maxsize=1)
def _load(name: str) -> tuple[Any, Any]:
    """Once per process: every group of a local run scores with the same checkpoint (a failure is not cached)."""
    from transformers import CLIPModel, CLIPProcessor

    return CLIPModel.from_pretrained(name, dtype=torch.float32).eval(), CLIPProcessor.from_pretrained(name)


def load_scorer(spec: FluxAuditSpec) -> tuple[Scorer | None, str | None]:
    """(the scorer, None), or (None, why not) when it is switched off or its model cannot be loaded."""
    name = spec.quality.clip_model
    if name is None:
        return None, "hallucination not measured: quality.clipModel is null"
    try:
        model, processor = _load(name)
    except Exception as exc:  # not cached offline, gated, no network, not a CLIP checkpoint: say so, score nothing
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return None, f"hallucination not measured: {name} could not be loaded ({type(exc).__name__}: {first})"[:500]
    return Scorer(model, processor, list(spec.quality.object_prompts), name), None
