"""Paired comparisons of the fill metrics: like with like, then wins/ties/losses and the median paired
difference with its bootstrap 95 % interval (pure).

Each metric is turned into a *distance from a perfect continuation* (lower is better): |ln seam|,
colour ΔE, |ln texture|, and CLIP's hallucination probability.  A quant is compared with the reference cell by cell — same guidance, seed
(and input) — and a guidance with the baseline guidance (30, the official value, when audited) on every
quant and seed.  A difference inside the metric's tie tolerance is a tie; "worse" or "better" only when
the whole 95 % interval of the median difference lies beyond the tolerance (the timing rule's logic),
and only from ``MIN_PAIRS`` pairs up.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from pydantic import computed_field

from ..stats import median_interval
from .base import ReportModel
from .cell_quality import CellQuality

#: metric → (how far from a perfect continuation, tie tolerance in that unit)
METRICS: dict[str, tuple[Callable[[CellQuality], float | None], float]] = {
    "seam": (lambda c: None if c.seam is None else abs(math.log(max(c.seam, 1e-6))), 0.05),
    "colourDeltaE": (lambda c: c.colour_delta_e, 1.0),
    "texture": (lambda c: None if c.texture_ratio is None else abs(math.log(max(c.texture_ratio, 1e-6))), 0.05),
    "hallucination": (lambda c: c.hallucination, 0.05),
}
#: fewer pairs than this give no verdict: a bootstrap over a handful of pairs is no interval.
MIN_PAIRS = 5
#: the guidance the others are compared with when audited: the official FLUX.1-Fill value.
BASELINE_GUIDANCE = 30.0


class PairedMetric(ReportModel):
    """``subject`` against ``baseline`` on one metric: differences are subject − baseline (negative: better)."""

    metric: str
    subject: str
    baseline: str
    pairs: int
    wins: int
    ties: int
    losses: int
    median: float
    low: float
    high: float
    #: differences this small are ties; a verdict needs the whole interval beyond it.
    tie: float

    @computed_field  # type: ignore[prop-decorator]
    @property
    def verdict(self) -> str:
        if self.pairs < MIN_PAIRS:
            return f"too few pairs (< {MIN_PAIRS})"
        if self.low > self.tie:
            return "worse"
        if self.high < -self.tie:
            return "better"
        return "not distinguishable"


class PairedComparisons(ReportModel):
    quants: list[PairedMetric]
    guidance: list[PairedMetric]
    baseline_guidance: float | None


def _compare(subject: str, baseline: str, pairs: list[tuple[CellQuality, CellQuality]]) -> list[PairedMetric]:
    out = []
    for name, (distance, tie) in METRICS.items():
        diffs = [a - b for s, r in pairs if (a := distance(s)) is not None and (b := distance(r)) is not None]
        if not diffs:
            continue
        m = median_interval(diffs)
        out.append(PairedMetric(
            metric=name, subject=subject, baseline=baseline, pairs=len(diffs),
            wins=sum(d < -tie for d in diffs), ties=sum(abs(d) <= tie for d in diffs),
            losses=sum(d > tie for d in diffs), median=m.median, low=m.low, high=m.high, tie=tie,
        ))  # fmt: skip
    return out


def paired_comparisons(cells: list[CellQuality], reference: str | None) -> PairedComparisons:
    quants: list[PairedMetric] = []
    if reference is not None:
        ref = {(c.input, c.guidance, c.seed): c for c in cells if c.quant == reference}
        for label in dict.fromkeys(c.quant for c in cells if c.quant != reference):
            pairs = [(c, ref[k]) for c in cells if c.quant == label and (k := (c.input, c.guidance, c.seed)) in ref]
            quants += _compare(label, reference, pairs)
    scales = sorted({c.guidance for c in cells})
    baseline = BASELINE_GUIDANCE if BASELINE_GUIDANCE in scales else (scales[-1] if scales else None)
    guidance: list[PairedMetric] = []
    if baseline is not None:
        base = {(c.quant, c.input, c.seed): c for c in cells if c.guidance == baseline}
        for g in scales:
            if g == baseline:
                continue
            pairs = [(c, base[k]) for c in cells if c.guidance == g and (k := (c.quant, c.input, c.seed)) in base]
            guidance += _compare(f"{g:g}", f"{baseline:g}", pairs)
    return PairedComparisons(quants=quants, guidance=guidance, baseline_guidance=baseline)
