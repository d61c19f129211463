"""The user's image and mask as the pipeline receives them: decoded, resized, checked."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from .errors import GroupInputError


@dataclass(frozen=True)
class PreparedInputs:
    image: Image.Image
    mask: Image.Image
    width: int
    height: int


def fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Scale so the long side is at most ``max_side``, both sides multiples of 16
    (FLUX packs 2×2 latents of an 8× VAE)."""
    scale = min(1.0, max_side / max(width, height))
    return max(16, int(width * scale) // 16 * 16), max(16, int(height * scale) // 16 * 16)


def prepare_inputs(image_bytes: bytes, mask_bytes: bytes, max_side: int) -> PreparedInputs:
    try:
        image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    except Exception as exc:
        raise GroupInputError(f"input.image is not a readable image: {exc}") from None
    try:
        mask = Image.open(io.BytesIO(mask_bytes)).convert("L")
    except Exception as exc:
        raise GroupInputError(f"input.mask is not a readable image: {exc}") from None
    width, height = fit_size(*image.size, max_side)
    image = image.resize((width, height), Image.Resampling.LANCZOS)
    mask = mask.resize((width, height), Image.Resampling.NEAREST)
    if mask.getextrema()[1] < 128:
        raise GroupInputError("input.mask has no white (fill) area after resizing: nothing to inpaint")
    return PreparedInputs(image, mask, width, height)
