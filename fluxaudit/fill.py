"""How good a fill is on its own terms, against the image around it — no reference needed (pure).

Drift from a reference says two fills differ, not which is better.  Object removal asks for "the
natural ground surface continuing seamlessly", which these measure against the original image's
ring around the mask:

- ``seam``: mean gradient magnitude (Sobel of the luminance smoothed with a Gaussian, σ = 2 px, so
  fine grain weighs less than a step) of the result in a band of ±3 px straddling the mask boundary ÷
  the same in the original's ring.  ≈1: the boundary is as smooth as its surroundings;
  a visible edge along the boundary raises it.
- ``colour_delta_e``: CIE76 ΔE between the mean CIELAB colour of the fill and of the ring.  A tinted or
  brighter fill raises it; a continuation of the surroundings keeps it near 0.
- ``texture_ratio``: standard deviation of the high-pass luminance (image minus its Gaussian blur,
  σ = 2 px) inside the fill ÷ in the ring.  ≈1: as much fine structure as the surface around it;
  > 1: more (edges of something painted in); < 1: a smear.

Known-answer tests (tests/contract/test_fill.py) build each failure and state the margins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.color import rgb2lab
from skimage.filters import gaussian, sobel

#: band half-width around the boundary for ``seam``, px, and the smoothing before its gradient.
BAND_PX = 3
SEAM_SIGMA_PX = 2.0
#: the ring's width beyond the band, as a share of the image's short side (at least 8 px).
RING_FRACTION = 0.06
#: fewer ring or fill pixels than this: the statistic is not computed (None).
MIN_PIXELS = 64
EPS = 1e-6


@dataclass(frozen=True)
class FillScores:
    seam: float
    colour_delta_e: float
    texture_ratio: float


@dataclass(frozen=True)
class Regions:
    inside: np.ndarray
    band: np.ndarray
    ring: np.ndarray


def regions(mask: np.ndarray, band_px: int = BAND_PX) -> Regions:
    """The fill (mask), the boundary band, and the ring of surroundings beyond the band."""
    inside = mask.astype(bool)
    ring_px = max(8, round(RING_FRACTION * min(inside.shape)))
    grown = ndimage.binary_dilation(inside, iterations=band_px)
    band = grown & ~ndimage.binary_erosion(inside, iterations=band_px, border_value=1)
    ring = ndimage.binary_dilation(inside, iterations=band_px + ring_px) & ~grown
    return Regions(inside, band, ring)


def _luminance(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)[..., :3] @ np.array([0.2126, 0.7152, 0.0722]) / 255.0


#: how far the filters reach (Gaussian radius round(4σ) + Sobel's 1 px, plus 1): a crop this much larger than
#: the regions gives every region pixel the value the whole image would.
REACH_PX = int(4 * SEAM_SIGMA_PX + 0.5) + 2


def _seam_gradient(y: np.ndarray) -> np.ndarray:
    return sobel(gaussian(y, SEAM_SIGMA_PX))


def _high_pass(y: np.ndarray) -> np.ndarray:
    return y - gaussian(y, sigma=2.0)


@dataclass(frozen=True)
class Surroundings:
    """The original's side of every statistic and the regions, cropped to where they are: the same for
    every cell of one input, so a report computes it once per input."""

    regions: Regions
    crop: tuple[slice, slice]
    ring_gradient: float
    ring_lab: np.ndarray
    ring_texture: float


def surroundings(original: np.ndarray, mask: np.ndarray) -> Surroundings | None:
    """None when the mask leaves too little fill or ring to measure."""
    if original.shape[:2] != mask.shape:
        raise ValueError(f"shapes differ: original {original.shape}, mask {mask.shape}")
    whole = regions(mask)
    if min(whole.inside.sum(), whole.ring.sum(), whole.band.sum()) < MIN_PIXELS:
        return None
    rows, cols = np.nonzero(whole.ring | whole.inside | whole.band)
    crop = (
        slice(max(0, rows.min() - REACH_PX), min(mask.shape[0], rows.max() + 1 + REACH_PX)),
        slice(max(0, cols.min() - REACH_PX), min(mask.shape[1], cols.max() + 1 + REACH_PX)),
    )
    r = Regions(whole.inside[crop], whole.band[crop], whole.ring[crop])
    org = original[crop]
    org_y = _luminance(org)
    return Surroundings(
        regions=r,
        crop=crop,
        ring_gradient=float(_seam_gradient(org_y)[r.ring].mean()),
        ring_lab=rgb2lab(org[r.ring][None])[0].mean(axis=0),
        ring_texture=float(_high_pass(org_y)[r.ring].std()),
    )


def score_fill(result: np.ndarray, s: Surroundings) -> FillScores:
    """``result``: H×W×3 uint8 of the original's size."""
    res = result[s.crop]
    r = s.regions
    res_y = _luminance(res)
    seam = float(_seam_gradient(res_y)[r.band].mean() / (s.ring_gradient + EPS))
    lab_fill = rgb2lab(res[r.inside][None])[0].mean(axis=0)
    delta_e = float(np.linalg.norm(lab_fill - s.ring_lab))
    texture = float(_high_pass(res_y)[r.inside].std() / (s.ring_texture + EPS))
    return FillScores(seam=seam, colour_delta_e=delta_e, texture_ratio=texture)


def fill_scores(result: np.ndarray, original: np.ndarray, mask: np.ndarray) -> FillScores | None:
    """``result``, ``original``: H×W×3 uint8 of the same size; ``mask``: H×W, true where the fill is.
    None when the mask leaves too little fill or ring to measure."""
    if result.shape != original.shape or result.shape[:2] != mask.shape:
        raise ValueError(f"shapes differ: result {result.shape}, original {original.shape}, mask {mask.shape}")
    s = surroundings(original, mask)
    return None if s is None else score_fill(result, s)
