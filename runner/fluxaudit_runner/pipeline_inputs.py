"""The user's image and mask as the pipeline receives them: decoded, resized, checked."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from fluxaudit.limits import LimitError, check_image_size, check_same_aspect
from fluxaudit.spec import DEFAULT_PROMPT

from .errors import GroupInputError


@dataclass(frozen=True)
class PreparedInputs:
    image: Image.Image
    mask: Image.Image
    width: int
    height: int
    #: the input's fill prompt (each of ``spec.inputs`` may have its own)
    prompt: str = DEFAULT_PROMPT


def fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Scale so the long side is at most ``max_side``, both sides multiples of 16
    (FLUX packs 2×2 latents of an 8× VAE)."""
    scale = min(1.0, max_side / max(width, height))
    return max(16, int(width * scale) // 16 * 16), max(16, int(height * scale) // 16 * 16)


def _open(data: bytes, field: str, source: str, where: str) -> Image.Image:
    """The image's header only (PIL decodes lazily): its size is checked before any pixel is decoded."""
    try:
        image = Image.open(io.BytesIO(data))
    except Exception as exc:
        raise GroupInputError(f"{where}.{field}: {source} is not a readable image ({type(exc).__name__})") from None
    try:
        check_image_size(image.size, f"{where}.{field} {source}")
    except LimitError as exc:
        raise GroupInputError(str(exc)) from None
    return image


def _decode(image: Image.Image, mode: str, field: str, source: str, where: str) -> Image.Image:
    try:
        return image.convert(mode)
    except Exception as exc:
        raise GroupInputError(f"{where}.{field}: {source} cannot be decoded ({type(exc).__name__}: {exc})") from None


def prepare_inputs(
    image_bytes: bytes,
    mask_bytes: bytes,
    max_side: int,
    sources: tuple[str, str] = ("the image", "the mask"),
    resize_mask: bool = False,
    prompt: str = DEFAULT_PROMPT,
    where: str = "input",
) -> PreparedInputs:
    """Decode, check and resize the inputs; a mask of another aspect ratio is refused unless
    ``input.resizeMask`` opts in (a stretched mask fills the wrong place)."""
    image_source, mask_source = sources
    image = _open(image_bytes, "image", image_source, where)
    mask = _open(mask_bytes, "mask", mask_source, where)
    if not resize_mask and not check_same_aspect(image.size, mask.size):
        raise GroupInputError(
            f"{where}.mask {mask_source} is {mask.size[0]}×{mask.size[1]} but the image is "
            f"{image.size[0]}×{image.size[1]}: another aspect ratio would be stretched; give the mask made for this "
            f"image, or set {where}.resizeMask: true to resize it anyway"
        )
    image = _decode(image, "RGB", "image", image_source, where)
    mask = _decode(mask, "L", "mask", mask_source, where)
    width, height = fit_size(*image.size, max_side)
    image = image.resize((width, height), Image.Resampling.LANCZOS)
    mask = mask.resize((width, height), Image.Resampling.NEAREST)
    if mask.getextrema()[1] < 128:
        raise GroupInputError(f"{where}.mask has no white (fill) area after resizing: nothing to inpaint")
    return PreparedInputs(image, mask, width, height, prompt)


def shrunk(inputs: PreparedInputs, max_side: int) -> PreparedInputs:
    """The same inputs at most ``max_side`` on the long side (what a shape-independent trace needs)."""
    width, height = fit_size(inputs.width, inputs.height, max_side)
    if (width, height) == (inputs.width, inputs.height):
        return inputs
    image = inputs.image.resize((width, height), Image.Resampling.LANCZOS)
    mask = inputs.mask.resize((width, height), Image.Resampling.NEAREST)
    return PreparedInputs(image, mask, width, height, inputs.prompt)
