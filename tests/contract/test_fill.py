"""Known answers for the no-reference fill metrics: a synthetic ground surface, an object in the mask,
and fills whose quality is known by construction.  Each metric must separate the good fills from its
failure by the margin stated here (the margins are what the report's reader may rely on)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from fluxaudit.fill import FillScores, fill_scores, regions

SIZE = 256


def ground(seed: int) -> np.ndarray:
    """A brownish surface: blotches at two scales plus fine grain, uint8 RGB."""
    rng = np.random.default_rng(seed)
    coarse = ndimage.gaussian_filter(rng.normal(size=(SIZE, SIZE)), 12) * 40
    fine = ndimage.gaussian_filter(rng.normal(size=(SIZE, SIZE)), 1.2) * 18
    y = 120 + coarse / coarse.std() * 12 + fine / fine.std() * 10
    rgb = np.stack([y * 1.1, y * 0.9, y * 0.65], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def mask() -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    return ((yy - 128) / 48) ** 2 + ((xx - 120) / 56) ** 2 <= 1


MASK = mask()
SURFACE = ground(0)


def with_inside(base: np.ndarray, inside: np.ndarray) -> np.ndarray:
    out = base.copy()
    out[MASK] = inside[MASK]
    return out


def an_object() -> np.ndarray:
    """A high-contrast thing where the object was: a dark box with a bright stripe pattern."""
    img = SURFACE.copy()
    yy, xx = np.mgrid[:SIZE, :SIZE]
    box = (abs(yy - 128) < 30) & (abs(xx - 120) < 34)
    img[box] = 30
    img[box & ((xx // 6) % 2 == 0)] = 230
    return img


ORIGINAL = with_inside(SURFACE, an_object())  # the input: the object, to be removed


def scores(result: np.ndarray) -> FillScores:
    s = fill_scores(result, ORIGINAL, MASK)
    assert s is not None
    return s


GOOD = scores(SURFACE)  # the true continuation of the surface
RESAMPLED = scores(with_inside(SURFACE, ground(7)))  # the same kind of surface, not continuous with it


def test_good_fills_look_like_their_surroundings() -> None:
    for s in (GOOD, RESAMPLED):
        assert 0.7 < s.seam < 1.3, s
        assert s.colour_delta_e < 5.0, s
        assert 0.8 < s.texture_ratio < 1.25, s


def test_a_hard_edged_seam_is_at_least_three_times_the_good_seam() -> None:
    brighter = np.clip(SURFACE.astype(int) + 45, 0, 255).astype(np.uint8)
    s = scores(with_inside(SURFACE, brighter))
    assert s.seam > 3 * max(GOOD.seam, RESAMPLED.seam), (s, GOOD, RESAMPLED)


def test_a_colour_shifted_fill_is_three_times_further_in_colour() -> None:
    tinted = SURFACE.astype(int) + np.array([35, 0, -35])
    s = scores(with_inside(SURFACE, np.clip(tinted, 0, 255).astype(np.uint8)))
    assert s.colour_delta_e > 15 and s.colour_delta_e > 3 * max(GOOD.colour_delta_e, RESAMPLED.colour_delta_e), s


def test_a_pasted_object_has_at_least_twice_the_texture_and_a_smear_at_most_half() -> None:
    s = scores(an_object())  # the object left in place (or painted back)
    assert s.texture_ratio > 2.0, s
    flat = with_inside(SURFACE, np.broadcast_to(SURFACE[MASK].mean(axis=0).astype(np.uint8), SURFACE.shape))
    assert scores(flat).texture_ratio < 0.5 * GOOD.texture_ratio


def test_regions_are_disjoint_where_they_must_be_and_tiny_masks_are_not_scored() -> None:
    r = regions(MASK)
    assert not (r.ring & r.inside).any() and not (r.ring & r.band).any()
    assert r.band.sum() > 0 and r.ring.sum() > r.band.sum()
    dot = np.zeros_like(MASK)
    dot[100, 100] = True
    assert fill_scores(SURFACE, SURFACE, dot) is None
    with pytest.raises(ValueError, match="shapes differ"):
        fill_scores(SURFACE[:10], SURFACE, MASK)
