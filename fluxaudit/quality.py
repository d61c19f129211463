"""Image and latent drift metrics (pure numpy + scikit-image).

PSNR and SSIM are computed over the whole image, inside the mask and outside it:
FluxFillPipeline does not paste the original pixels back, so drift outside the
mask is something users see.  SSIM is scikit-image's (Gaussian-weighted, the
Wang et al. 2004 constants) with its full map averaged over each region, so the
three numbers come from one computation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from skimage.metrics import structural_similarity


class MaskError(ValueError):
    """A mask that cannot split an image into regions."""


@dataclass(frozen=True)
class RegionScores:
    """PSNR (dB; inf when identical) and SSIM for one region; None when the region is empty."""

    psnr_db: float | None
    ssim: float | None


@dataclass(frozen=True)
class Drift:
    whole: RegionScores
    inside: RegionScores
    outside: RegionScores


def _as_float(img: np.ndarray) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr.astype(np.float64)


def binary_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., 0]
    if m.shape != shape:
        raise MaskError(f"mask is {m.shape[1]}×{m.shape[0]}, image is {shape[1]}×{shape[0]}: resize the mask first")
    return m >= 128


def psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None, data_range: float = 255.0) -> float | None:
    """PSNR over ``region`` (all pixels when None); inf for identical pixels, None for an empty region."""
    diff2 = (_as_float(a) - _as_float(b)) ** 2
    if region is not None:
        if not region.any():
            return None
        diff2 = diff2[region]
    mse = float(diff2.mean())
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def _ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """In float32: scikit-image keeps the input's precision, 8-bit pixels need no more, and its Gaussian
    filters, a third of a report's build at 1024², run 30 % faster (scores agree to 1e-7)."""
    fa, fb = _as_float(a).astype(np.float32), _as_float(b).astype(np.float32)
    win = min(7, *(s if s % 2 else s - 1 for s in fa.shape[:2]))
    _, full = structural_similarity(
        fa, fb, data_range=255.0, channel_axis=2, full=True, gaussian_weights=True, sigma=1.5, win_size=win
    )
    return full.mean(axis=2)


def drift(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> Drift:
    """Scores of ``image`` against ``reference`` over the whole frame and each side of ``mask``."""
    if image.shape != reference.shape:
        raise ValueError(f"image {image.shape} and reference {reference.shape} differ in size")
    inside = binary_mask(mask, image.shape[:2])
    outside = ~inside
    smap = _ssim_map(image, reference)

    def scores(region: np.ndarray | None) -> RegionScores:
        if region is not None and not region.any():
            return RegionScores(None, None)
        return RegionScores(
            psnr(image, reference, region), float(smap[region].mean() if region is not None else smap.mean())
        )

    return Drift(whole=scores(None), inside=scores(inside), outside=scores(outside))


def latent_mad(latents: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute difference of final latents: finer than pixels (no VAE, no 8-bit rounding)."""
    if latents.shape != reference.shape:
        raise ValueError(f"latents {latents.shape} and reference {reference.shape} differ in shape")
    return float(np.abs(latents.astype(np.float64) - reference.astype(np.float64)).mean())


def clipped_fraction(image: np.ndarray, region: np.ndarray) -> float | None:
    """Fraction of pixels in ``region`` with any channel at 0 or 255 (saturation)."""
    if not region.any():
        return None
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    clipped = ((arr == 0) | (arr == 255)).any(axis=-1)
    return float(clipped[region].mean())


def mask_coverage(mask: np.ndarray) -> float:
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., 0]
    return float((m >= 128).mean())
