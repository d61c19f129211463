"""One cell's quality: drift against the reference's cell, and the fill on its own terms (pure)."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import quality
from ..fill import Surroundings, score_fill, surroundings
from .base import ReportModel
from .model import CellSummary

ArrayReader = Callable[[str], np.ndarray | None]
#: per input (None: the one input of ``spec.input``): its mask and its image, as the runner stored them.
InputPixels = dict[str | None, tuple[np.ndarray | None, np.ndarray | None]]


class CellQuality(ReportModel):
    quant: str
    input: str | None = None
    guidance: float
    seed: int
    psnr_whole: float | None
    psnr_inside: float | None
    psnr_outside: float | None
    ssim_whole: float | None
    ssim_inside: float | None
    ssim_outside: float | None
    latent_mad: float | None
    #: against the input image, outside the mask: what the user sees change where nothing should.
    psnr_outside_vs_input: float | None
    clipped_inside: float | None
    #: the fill on its own terms, against the input's surroundings (``fluxaudit.fill``); no reference needed.
    #: CLIP's probability that the fill is an object rather than the prompt (runner-side, ``quality.clipModel``)
    hallucination: float | None = None
    seam: float | None = None
    colour_delta_e: float | None = None
    texture_ratio: float | None = None


def cell_quality(
    cell: CellSummary,
    ref: CellSummary | None,
    mask: np.ndarray | None,
    input_image: np.ndarray | None,
    read: ArrayReader,
    surround: Surroundings | None = None,
) -> CellQuality:
    """``surround``: the input's side of the fill metrics (``input_surroundings``), computed once per input;
    None: nothing to measure the fill against (no input, or too little fill or ring), so no fill scores."""
    img = read(cell.image) if cell.image else None
    d = None
    mad = None
    if ref is not None and img is not None and mask is not None:
        ref_img = read(ref.image) if ref.image else None
        if ref_img is not None:
            d = quality.drift(img, ref_img, mask)
        if cell.latents and ref.latents:
            la, lb = read(cell.latents), read(ref.latents)
            if la is not None and lb is not None:
                mad = quality.latent_mad(la, lb)
    vs_input = clipped = filled = None
    if img is not None and mask is not None:
        inside = quality.binary_mask(mask, img.shape[:2])
        if input_image is not None and input_image.shape == img.shape:
            vs_input = quality.psnr(img, input_image, ~inside)
            filled = score_fill(img, surround) if surround is not None else None
        clipped = quality.clipped_fraction(img, inside)
    return CellQuality(
        quant=cell.quant,
        input=cell.input,
        guidance=cell.guidance,
        seed=cell.seed,
        psnr_whole=d.whole.psnr_db if d else None,
        psnr_inside=d.inside.psnr_db if d else None,
        psnr_outside=d.outside.psnr_db if d else None,
        ssim_whole=d.whole.ssim if d else None,
        ssim_inside=d.inside.ssim if d else None,
        ssim_outside=d.outside.ssim if d else None,
        latent_mad=mad,
        psnr_outside_vs_input=vs_input,
        clipped_inside=clipped,
        hallucination=cell.hallucination,
        seam=filled.seam if filled else None,
        colour_delta_e=filled.colour_delta_e if filled else None,
        texture_ratio=filled.texture_ratio if filled else None,
    )


def input_surroundings(mask: np.ndarray | None, input_image: np.ndarray | None) -> Surroundings | None:
    """What every cell of one input measures its fill against (None: nothing to measure against)."""
    if mask is None or input_image is None:
        return None
    return surroundings(input_image, quality.binary_mask(mask, input_image.shape[:2]))


def cell_qualities(
    cells: list[CellSummary], references: dict[tuple[str | None, float, int], CellSummary], pixels: InputPixels,
    read: ArrayReader,
) -> list[CellQuality]:  # fmt: skip
    """Every cell's quality, in the cells' order.  The stored arrays are read first, on this thread (the
    reader may be a bucket client; ``build_report``'s reader has them decoded already, so these are cache
    hits there); the metrics then run on one thread per core: SSIM's Gaussian filters and the fill
    metrics release the GIL, and at 1024² they were most of a report's build."""
    for c in cells:
        for path in (c.image, c.latents):
            if path:
                read(path)
    surround = {name: input_surroundings(mask, image) for name, (mask, image) in pixels.items()}

    def one(c: CellSummary) -> CellQuality:
        mask, image = pixels.get(c.input, (None, None))
        return cell_quality(c, references.get((c.input, c.guidance, c.seed)), mask, image, read, surround.get(c.input))

    with ThreadPoolExecutor(max_workers=max(1, min(len(cells), os.cpu_count() or 1))) as pool:
        return list(pool.map(one, cells))
