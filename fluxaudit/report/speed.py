"""Timing evidence and the noise-aware speed answer (pure).

Per group and runtime — stock diffusers in the group's memory mode, and the fast path
where it ran — the step-time median, p10, p90 and sample count.  "Faster" only when the
bootstrap 95 % interval of the ratio of step-time medians lies wholly outside the tie
band; otherwise the quants are tied at the measured noise and the smaller file wins.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..results import Partial
from ..stats import ratio_interval, spread
from .base import ReportModel

Runtime = Literal["stock", "fastPath"]
Basis = Literal["faster", "tied", "only-passing", "none-pass"]
RUNTIME_NAMES: dict[str, str] = {"stock": "stock diffusers", "fastPath": "the fast path"}
#: calibrations further apart than this make cross-group speed comparisons suspect.
CALIBRATION_TOLERANCE = 0.05


class RuntimeTiming(ReportModel):
    runtime: Runtime
    memory_mode: str | None
    images: int
    steps: int
    median_step_seconds: float
    p10_step_seconds: float
    p90_step_seconds: float
    median_image_seconds: float
    #: per-image step times, what the intervals resample (kept out of report.json: the partials hold them).
    step_samples: list[list[float]] = Field(exclude=True, repr=False)


def _timing(runtime: Runtime, mode: str | None, images: list[tuple[float, list[float]]]) -> RuntimeTiming | None:
    images = [(wall, steps) for wall, steps in images if steps]
    if not images:
        return None
    steps = spread([s for _, per_image in images for s in per_image])
    return RuntimeTiming(
        runtime=runtime,
        memory_mode=mode,
        images=len(images),
        steps=steps.samples,
        median_step_seconds=steps.median,
        p10_step_seconds=steps.p10,
        p90_step_seconds=steps.p90,
        median_image_seconds=spread([wall for wall, _ in images]).median,
        step_samples=[per_image for _, per_image in images],
    )


def runtime_timings(p: Partial) -> list[RuntimeTiming]:
    """What a group's partial says about each runtime it ran (schema-1 partials: the sweep, as stock
    unless a fast-path record says otherwise)."""
    mode = p.placement.mode if p.placement else None
    sweep = p.sweep_runtime or (
        "fastPath" if p.fast_path and (p.fast_path.dequant_kernels or p.fast_path.compile == "regional") else "stock"
    )
    out = []
    if p.stock_sample is not None:
        out.append(_timing("stock", mode, [(i.wall_seconds, i.step_seconds) for i in p.stock_sample.images]))
    out.append(_timing(sweep, mode, [(c.wall_seconds, c.step_seconds) for c in p.cells]))
    return [t for t in out if t is not None]


class SpeedComparison(ReportModel):
    label: str
    #: median step of this quant ÷ the fastest's, with its bootstrap 95 % interval.
    ratio: float
    low: float
    high: float
    resampled: str
    verdict: Literal["slower", "tied"]


class SpeedAnswer(ReportModel):
    runtime: Runtime
    pick: str | None
    basis: Basis
    fastest: str | None = None
    comparisons: list[SpeedComparison] = Field(default_factory=list)
    reason: str
    note: str | None = None
    #: the quants the rule was asked about (kept out of report.json: the comparisons name them).
    candidates: list[str] = Field(default_factory=list, exclude=True)


def _interval_text(c: SpeedComparison) -> str:
    return f"{c.label} ÷ fastest {c.ratio:.3f} [{c.low:.3f}, {c.high:.3f}]"


def decide_speed(
    candidates: list[str],
    timings: dict[str, dict[str, RuntimeTiming]],
    sizes: dict[str, int],
    tolerance: float,
    runtime: Runtime,
    incomparable: str | None = None,
) -> SpeedAnswer:
    """Among quants that pass quality (``candidates``, the reference never among them): the fastest when
    it is distinguishably so, else the smallest file of those tied with it.  ``timings[label][runtime]``.
    ``incomparable`` (why the groups' devices differ, from their calibrations): no quant can be called
    faster, so all are tied."""
    note = None
    if candidates and not all(runtime in timings.get(label, {}) for label in candidates):
        note = f"{RUNTIME_NAMES[runtime]} was not timed for every quant here: compared on stock diffusers instead"
        runtime = "stock"
    timed = [label for label in candidates if runtime in timings.get(label, {})]
    if not timed:
        return SpeedAnswer(
            runtime=runtime, pick=None, basis="none-pass", reason="no quant passes the quality rule", note=note
        )
    if len(timed) == 1:
        t = timings[timed[0]][runtime]
        return SpeedAnswer(
            runtime=runtime,
            pick=timed[0],
            basis="only-passing",
            fastest=timed[0],
            reason=f"{timed[0]} is the only quant that passes; {t.median_step_seconds * 1000:.1f} ms/step "
            f"(p10–p90 {t.p10_step_seconds * 1000:.1f}–{t.p90_step_seconds * 1000:.1f}, {t.steps} steps of {t.images} images)",
            note=note,
        )
    fastest = min(timed, key=lambda label: (timings[label][runtime].median_step_seconds, label))
    comparisons = []
    for label in timed:
        if label == fastest:
            continue
        r = ratio_interval(timings[label][runtime].step_samples, timings[fastest][runtime].step_samples)
        verdict: Literal["slower", "tied"] = "slower" if r.low > 1 + tolerance and not incomparable else "tied"
        comparisons.append(
            SpeedComparison(label=label, ratio=r.ratio, low=r.low, high=r.high, resampled=r.resampled, verdict=verdict)
        )
    tied = [fastest, *(c.label for c in comparisons if c.verdict == "tied")]
    pick = min(tied, key=lambda label: (sizes.get(label, 0), label))
    basis: Basis = "faster" if len(tied) == 1 else "tied"
    band = f"±{tolerance:.0%} tie band"
    if incomparable:
        reason = f"speed cannot decide between {', '.join(tied)}: {incomparable}; the smallest file, {pick}, wins"
    elif basis == "faster":
        reason = f"{pick} is the fastest passing quant, distinguishably: " + "; ".join(
            f"{_interval_text(c)} lies above the {band}" for c in comparisons
        )
    else:
        others = [c for c in comparisons if c.verdict == "tied"]
        reason = (
            f"{', '.join(tied)} are not distinguishable at the measured noise ("
            + "; ".join(f"{_interval_text(c)} reaches into the {band}" for c in others)
            + f"): the smallest file, {pick}, wins"
        )
        slower = [c for c in comparisons if c.verdict == "slower"]
        if slower:
            reason += "; slower: " + "; ".join(_interval_text(c) for c in slower)
    return SpeedAnswer(
        runtime=runtime, pick=pick, basis=basis, fastest=fastest, comparisons=comparisons, reason=reason, note=note
    )


def calibration_note(calibrations: dict[str, float]) -> str | None:
    """A warning when the groups' devices differ by more than the tolerance (TFLOP/s medians by group)."""
    if len(calibrations) < 2:
        return None
    low, high = min(calibrations.values()), max(calibrations.values())
    if high <= low * (1 + CALIBRATION_TOLERANCE):
        return None
    figures = ", ".join(f"{label} {v:.3g}" for label, v in sorted(calibrations.items()))
    return (
        f"the groups' calibration matmuls differ by {high / low - 1:.0%} (TFLOP/s: {figures}), more than "
        f"{CALIBRATION_TOLERANCE:.0%}: they ran on devices that differ, and their timings compare only as far as those do"
    )
