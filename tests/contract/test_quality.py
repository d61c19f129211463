"""Drift metrics on synthetic images with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fluxaudit import quality


def _scene(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h) + 60], axis=-1)
    return np.clip(base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


def _mask(h: int = 96, w: int = 128) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[30:70, 40:90] = 255
    return m


def test_identical_images() -> None:
    img = _scene()
    d = quality.drift(img, img.copy(), _mask())
    for region in (d.whole, d.inside, d.outside):
        assert region.psnr_db == math.inf
        assert region.ssim == pytest.approx(1.0)


@pytest.mark.parametrize("sigma", [2.0, 5.0, 12.0])
def test_known_gaussian_noise_gives_expected_psnr(sigma: float) -> None:
    rng = np.random.default_rng(42)
    ref = np.full((512, 512, 3), 128.0)
    noisy = ref + rng.normal(0, sigma, ref.shape)  # float: no clipping or rounding
    expected = 10 * math.log10(255.0**2 / sigma**2)
    assert quality.psnr(noisy, ref) == pytest.approx(expected, abs=0.1)


def test_mask_regions_are_separated() -> None:
    ref = _scene().astype(np.float64)
    m = _mask()
    inside = m >= 128
    noisy = ref.copy()
    noisy[inside] += np.random.default_rng(1).normal(0, 6, noisy[inside].shape)
    d = quality.drift(noisy, ref, m)
    assert d.outside.psnr_db == math.inf  # nothing changed outside the mask
    assert d.inside.psnr_db == pytest.approx(10 * math.log10(255**2 / 36), abs=0.2)
    coverage = inside.mean()
    # whole-frame MSE is the in-mask MSE diluted by the mask's share of the frame
    assert d.whole.psnr_db == pytest.approx(d.inside.psnr_db - 10 * math.log10(coverage), abs=1e-6)
    assert d.inside.ssim < d.whole.ssim < 1.0 and d.outside.ssim > d.whole.ssim


def test_empty_and_full_masks() -> None:
    img, ref = _scene(seed=1), _scene(seed=2)
    empty = quality.drift(img, ref, np.zeros((96, 128), np.uint8))
    assert empty.inside == quality.RegionScores(None, None) and empty.outside.psnr_db == empty.whole.psnr_db
    full = quality.drift(img, ref, np.full((96, 128), 255, np.uint8))
    assert full.outside == quality.RegionScores(None, None) and full.inside.psnr_db == full.whole.psnr_db
    assert quality.mask_coverage(np.zeros((4, 4))) == 0.0


def test_mask_of_the_wrong_size_is_a_clear_error() -> None:
    with pytest.raises(quality.MaskError, match=r"mask is 64×64, image is 128×96: resize the mask first"):
        quality.drift(_scene(), _scene(), np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="differ in size"):
        quality.drift(_scene(), _scene(h=64), _mask())


def test_latent_mad_and_clipping() -> None:
    a = np.zeros((1, 16, 64), np.float32)
    b = a + 0.25
    assert quality.latent_mad(a, b) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        quality.latent_mad(a, np.zeros((1, 8, 64)))
    img = np.full((10, 10, 3), 100, np.uint8)
    img[:2] = 255
    region = np.ones((10, 10), bool)
    assert quality.clipped_fraction(img, region) == pytest.approx(0.2)
    assert quality.clipped_fraction(img, np.zeros((10, 10), bool)) is None
