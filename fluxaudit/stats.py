"""Spread and confidence intervals of timings (pure numpy).

A timing decides nothing without its sample count and spread.  Step times within one image
are not independent (clocks, thermals and the allocator drift together), so the interval of
a ratio of medians resamples whole images — blocks of steps — with replacement; with a single
image there is nothing to resample across, and steps are resampled instead (and the report
says the interval assumes independent steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: bootstrap resamples: the 2.5 % and 97.5 % quantiles move by well under 1 % between seeds at this count.
RESAMPLES = 4000
#: a fixed seed: the same stored timings give the same interval, so a rebuilt report is identical.
SEED = 20261202


@dataclass(frozen=True)
class Spread:
    median: float
    p10: float
    p90: float
    samples: int


def spread(values: Sequence[float]) -> Spread:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no samples")
    p10, median, p90 = np.percentile(arr, [10, 50, 90])
    return Spread(float(median), float(p10), float(p90), int(arr.size))


@dataclass(frozen=True)
class RatioInterval:
    """median(a) / median(b) and its bootstrap 95 % interval."""

    ratio: float
    low: float
    high: float
    #: "images" (whole images resampled) or "steps" (a side had a single image).
    resampled: str


def _resampled_medians(blocks: list[np.ndarray], rng: np.random.Generator, by_steps: bool) -> np.ndarray:
    pooled = np.concatenate(blocks)
    if by_steps:
        idx = rng.integers(0, pooled.size, size=(RESAMPLES, pooled.size))
        return np.median(pooled[idx], axis=1)
    lengths = {b.size for b in blocks}
    if len(lengths) == 1:  # equal blocks (every image has the same steps): one vectorised gather
        matrix = np.stack(blocks)
        pick = rng.integers(0, len(blocks), size=(RESAMPLES, len(blocks)))
        return np.median(matrix[pick].reshape(RESAMPLES, -1), axis=1)
    pick = rng.integers(0, len(blocks), size=(RESAMPLES, len(blocks)))
    return np.array([np.median(np.concatenate([blocks[i] for i in row])) for row in pick])


def ratio_interval(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], seed: int = SEED) -> RatioInterval:
    """Interval of median(all of a) / median(all of b); ``a`` and ``b`` are per-image lists of step times."""
    blocks_a = [np.asarray(x, dtype=np.float64) for x in a if len(x)]
    blocks_b = [np.asarray(x, dtype=np.float64) for x in b if len(x)]
    if not blocks_a or not blocks_b:
        raise ValueError("both sides need samples")
    by_steps = len(blocks_a) < 2 or len(blocks_b) < 2
    rng = np.random.default_rng(seed)
    ratios = _resampled_medians(blocks_a, rng, by_steps) / _resampled_medians(blocks_b, rng, by_steps)
    low, high = np.percentile(ratios, [2.5, 97.5])
    ratio = float(np.median(np.concatenate(blocks_a)) / np.median(np.concatenate(blocks_b)))
    return RatioInterval(ratio, float(low), float(high), "steps" if by_steps else "images")


@dataclass(frozen=True)
class MedianInterval:
    """The median of paired differences and its bootstrap 95 % interval (pairs resampled)."""

    median: float
    low: float
    high: float
    samples: int

    @property
    def covers_zero(self) -> bool:
        return self.low <= 0.0 <= self.high


def median_interval(values: Sequence[float], seed: int = SEED) -> MedianInterval:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no samples")
    rng = np.random.default_rng(seed)
    medians = np.median(arr[rng.integers(0, arr.size, size=(RESAMPLES, arr.size))], axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return MedianInterval(float(np.median(arr)), float(low), float(high), int(arr.size))
