"""Two audits side by side (before/after a driver, diffusers or quant change): what changed beyond the noise.

Pure: two report.json documents in, a ``Comparison`` out.  Speed compares each quant's per-image step
times (every timed cell is one sample, repeats included) with the timing rule's bootstrap interval of
the ratio of medians (B ÷ A): "slower" only when the whole 95 % interval lies above ``1 + max_slowdown``.
Quality compares each (quant, input, guidance, seed) cell's whole-image PSNR against its own audit's reference:
deterministic per seed, so a drop beyond ``max_psnr_drop`` dB is a change, not noise.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Literal

from ..stats import RatioInterval, ratio_interval

#: PSNR of identical images ("inf") counts as this many dB in a difference.
PSNR_CAP_DB = 100.0
#: calibration matmuls of the two audits differing by more than this: the machines differ.
CALIBRATION_TOLERANCE = 0.05
ENVIRONMENT_KEYS = ("gpuName", "driver", "cuda", "torch", "diffusers", "gguf", "transformers", "device")

SpeedVerdict = Literal["slower", "faster", "within noise"]


@dataclass(frozen=True)
class SpeedChange:
    quant: str
    a_median: float
    b_median: float
    samples: tuple[int, int]
    interval: RatioInterval
    verdict: SpeedVerdict


@dataclass(frozen=True)
class QualityChange:
    quant: str
    #: the input's name with ``spec.inputs``; "" for the one input of ``spec.input``.
    input: str
    guidance: float
    seed: int
    a_psnr: float
    b_psnr: float
    regression: bool

    @property
    def delta(self) -> float:
        return self.b_psnr - self.a_psnr


@dataclass(frozen=True)
class Comparison:
    speed: list[SpeedChange]
    quality: list[QualityChange]
    #: context that explains a change: environment and calibration differences, cells in one audit only.
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[str]:
        slow = [
            f"{s.quant}: {s.interval.ratio:.3f}× slower [{s.interval.low:.3f}, {s.interval.high:.3f}]"
            for s in self.speed
            if s.verdict == "slower"
        ]
        worse = [
            f"{q.quant}{' input ' + q.input if q.input else ''} guidance {q.guidance:g} seed {q.seed}: PSNR {q.a_psnr:.2f} → {q.b_psnr:.2f} dB"
            for q in self.quality
            if q.regression
        ]
        return slow + worse


def _psnr(value: Any) -> float:
    if value == "inf" or (isinstance(value, float) and math.isinf(value)):
        return PSNR_CAP_DB
    return float(value)


def _step_samples(doc: dict[str, Any]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for cell in doc.get("cells") or []:
        if cell.get("secondsPerStep") is not None:
            out.setdefault(cell["quant"], []).append(float(cell["secondsPerStep"]))
    return out


def _speed(a: dict[str, Any], b: dict[str, Any], max_slowdown: float) -> list[SpeedChange]:
    sa, sb = _step_samples(a), _step_samples(b)
    changes = []
    for quant in [q for q in sa if q in sb]:
        interval = ratio_interval([[x] for x in sb[quant]], [[x] for x in sa[quant]])
        verdict: SpeedVerdict = (
            "slower"
            if interval.low > 1 + max_slowdown
            else "faster"
            if interval.high < 1 - max_slowdown
            else "within noise"
        )
        medians = statistics.median(sa[quant]), statistics.median(sb[quant])
        changes.append(SpeedChange(quant, *medians, (len(sa[quant]), len(sb[quant])), interval, verdict))
    return changes


def _quality(a: dict[str, Any], b: dict[str, Any], max_psnr_drop: float) -> list[QualityChange]:
    def cells(doc: dict[str, Any]) -> dict[tuple[str, str, float, int], float]:
        return {
            (c["quant"], c.get("input") or "", float(c["guidance"]), int(c["seed"])): _psnr(c["psnrWhole"])
            for c in (doc.get("quality") or {}).get("cells") or []
            if c.get("psnrWhole") is not None
        }

    qa, qb = cells(a), cells(b)
    return [
        QualityChange(quant, name, guidance, seed, qa[key], qb[key], qa[key] - qb[key] > max_psnr_drop)
        for key in sorted(set(qa) & set(qb))
        for quant, name, guidance, seed in [key]
    ]


def _notes(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    notes = []
    ea, eb = a.get("environment") or {}, b.get("environment") or {}
    for key in ENVIRONMENT_KEYS:
        if ea.get(key) != eb.get(key):
            notes.append(f"environment {key}: {ea.get(key)} → {eb.get(key)}")
    ra, rb = (a.get("quality") or {}).get("reference"), (b.get("quality") or {}).get("reference")
    if ra != rb:
        notes.append(f"reference: {ra} → {rb}: quality is measured against different references")
    ca = {g["label"]: g.get("calibration") for g in a.get("groups") or []}
    for g in b.get("groups") or []:
        before, after = ca.get(g["label"]), g.get("calibration")
        if before and after and before["tflopsMedian"] > 0:
            change = after["tflopsMedian"] / before["tflopsMedian"] - 1
            if abs(change) > CALIBRATION_TOLERANCE:
                notes.append(
                    f"{g['label']}: calibration matmul {before['tflopsMedian']:.4g} → {after['tflopsMedian']:.4g} "
                    f"TFLOP/s ({change:+.1%}): the machines differ, a speed change may be theirs"
                )
    only_a = sorted(set(_step_samples(a)) - set(_step_samples(b)))
    only_b = sorted(set(_step_samples(b)) - set(_step_samples(a)))
    if only_a or only_b:
        notes.append(f"groups in one audit only: A {only_a or '-'}, B {only_b or '-'}")
    return notes


def compare(a: dict[str, Any], b: dict[str, Any], max_slowdown: float = 0.05, max_psnr_drop: float = 1.0) -> Comparison:
    """B against A (A is the baseline)."""
    return Comparison(_speed(a, b, max_slowdown), _quality(a, b, max_psnr_drop), _notes(a, b))
