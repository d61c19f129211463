"""Paired fill comparisons on synthetic cells with known answers: a clearly worse quant is worse, ties
and symmetric noise are not distinguishable, a handful of pairs gives no verdict, and the guidance
baseline is 30 when audited."""

from __future__ import annotations

import numpy as np

from fluxaudit.report.cell_quality import CellQuality
from fluxaudit.report.paired import paired_comparisons


def cell(
    quant: str, guidance: float, seed: int, seam: float, delta_e: float = 2.0, texture: float = 1.0
) -> CellQuality:
    return CellQuality(quant=quant, guidance=guidance, seed=seed, psnr_whole=None, psnr_inside=None,
                       psnr_outside=None, ssim_whole=None, ssim_inside=None, ssim_outside=None, latent_mad=None,
                       psnr_outside_vs_input=None, clipped_inside=None, seam=seam, colour_delta_e=delta_e,
                       texture_ratio=texture)  # fmt: skip


GUIDANCE = [2, 4, 10, 20, 30]


def cells(quant_seam: dict[str, float], seeds: int = 2, noise: float = 0.0, rng_seed: int = 0) -> list[CellQuality]:
    rng = np.random.default_rng(rng_seed)
    return [
        cell(q, g, s, seam * float(np.exp(noise * rng.uniform(-1, 1))))
        for q, seam in quant_seam.items()
        for g in GUIDANCE
        for s in range(seeds)
    ]


def by(result: list, subject: str, metric: str):
    return next(m for m in result if m.subject == subject and m.metric == metric)


def test_a_quant_with_clearly_worse_seams_is_worse_and_a_tied_one_is_not() -> None:
    p = paired_comparisons(cells({"bf16": 1.0, "Q4_0": 1.6, "Q8_0": 1.01}), "bf16")
    worse, tied = by(p.quants, "Q4_0", "seam"), by(p.quants, "Q8_0", "seam")
    assert (worse.verdict, worse.losses, worse.pairs) == ("worse", 10, 10)
    assert tied.verdict == "not distinguishable" and tied.ties == 10
    assert by(p.quants, "Q4_0", "colourDeltaE").verdict == "not distinguishable"  # same ΔE everywhere


def test_symmetric_noise_is_not_distinguishable_whatever_the_seed() -> None:
    for rng_seed in range(5):
        p = paired_comparisons(cells({"bf16": 1.2, "Q4_0": 1.2}, seeds=4, noise=0.3, rng_seed=rng_seed), "bf16")
        assert by(p.quants, "Q4_0", "seam").verdict == "not distinguishable", rng_seed


def test_few_pairs_give_no_verdict_and_the_guidance_baseline_is_30() -> None:
    p = paired_comparisons([c for c in cells({"bf16": 1.0, "Q4_0": 2.0}, seeds=1) if c.guidance in (2, 30)], "bf16")
    assert by(p.quants, "Q4_0", "seam").verdict.startswith("too few pairs")
    p = paired_comparisons(cells({"bf16": 1.0, "Q4_0": 1.0, "Q8_0": 1.0}), "bf16")
    assert p.baseline_guidance == 30 and {m.subject for m in p.guidance} == {"2", "4", "10", "20"}
    assert all(m.baseline == "30" and m.pairs == 6 for m in p.guidance)  # 3 groups × 2 seeds
    assert "verdict" in p.guidance[0].model_dump(by_alias=True)  # report.json carries the verdict


def test_the_answers_say_which_quant_changes_the_fill_with_its_interval() -> None:
    from fluxaudit.report.answers import _paired_lines

    p = paired_comparisons(cells({"bf16": 1.0, "Q4_0": 1.6, "Q8_0": 1.01}), "bf16")
    q4, q8 = _paired_lines(p.quants, ["Q4_0", "Q8_0"], "{}")
    assert (
        "worse: seam +0.47 \\[+0.47, +0.47\\]" in q4
        and "over 10 pairs" in q4
        and "not distinguishable: colour ΔE" in q4
    ), q4
    assert "worse" not in q8 and "not distinguishable: seam, colour ΔE" in q8, q8
