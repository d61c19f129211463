"""The noise-aware speed rule on synthetic timings with known separation: clearly faster is faster,
overlapping is tied (and the smaller file wins), a change of the bootstrap seed does not flip a
clear decision, the reference is never a candidate, and calibration differences are flagged."""

from __future__ import annotations

import numpy as np
import pytest

from fluxaudit.report.speed import RuntimeTiming, calibration_note, decide_speed
from fluxaudit.stats import ratio_interval, spread

SIZES = {"Q4_0": 6_900_000_000, "Q5_K_S": 8_400_000_000, "Q8_0": 12_800_000_000}


def images(median_ms: float, noise: float, n_images: int = 15, steps: int = 28, seed: int = 0) -> list[list[float]]:
    """Per-image step times: a per-image offset (images differ from each other) plus per-step jitter."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_images):
        offset = rng.normal(0, noise * median_ms)
        out.append(list((median_ms + offset + rng.normal(0, noise * median_ms / 2, steps)) / 1000))
    return out


def timing(samples: list[list[float]], runtime: str = "stock") -> RuntimeTiming:
    flat = [s for per in samples for s in per]
    s = spread(flat)
    return RuntimeTiming(
        runtime=runtime,
        memory_mode="resident",
        images=len(samples),
        steps=len(flat),
        median_step_seconds=s.median,
        p10_step_seconds=s.p10,
        p90_step_seconds=s.p90,
        median_image_seconds=sum(samples[0]),
        step_samples=samples,
    )


def test_spread_of_known_values() -> None:
    s = spread(list(range(1, 101)))
    assert (s.median, s.samples) == (50.5, 100) and s.p10 == pytest.approx(10.9) and s.p90 == pytest.approx(90.1)
    with pytest.raises(ValueError):
        spread([])


def test_ratio_interval_covers_the_truth_and_shrinks_with_samples() -> None:
    a, b = images(250, 0.05, seed=1), images(200, 0.05, seed=2)
    r = ratio_interval(a, b)
    assert r.resampled == "images" and r.low < 1.25 < r.high and r.low > 1.15
    few = ratio_interval(images(250, 0.05, n_images=3, seed=1), images(200, 0.05, n_images=3, seed=2))
    assert few.high - few.low > r.high - r.low
    one = ratio_interval(images(250, 0.05, n_images=1, seed=1), b)
    assert one.resampled == "steps"  # a single image: nothing to resample across but its steps


def test_clearly_faster_is_faster_for_any_bootstrap_seed() -> None:
    timings = {"Q8_0": {"stock": timing(images(240, 0.03, seed=3))}, "Q4_0": {"stock": timing(images(315, 0.03, seed=4))},
               "Q5_K_S": {"stock": timing(images(415, 0.03, seed=5))}}  # fmt: skip
    answer = decide_speed(["Q4_0", "Q5_K_S", "Q8_0"], timings, SIZES, 0.03, "stock")
    assert (answer.pick, answer.basis, answer.fastest) == ("Q8_0", "faster", "Q8_0")
    assert all(c.verdict == "slower" and c.low > 1.03 for c in answer.comparisons)
    assert "distinguishably" in answer.reason and "Q4_0 ÷ fastest" in answer.reason
    for seed in range(10):  # the interval's randomness never flips a clear separation
        flat_a = [s for per in timings["Q4_0"]["stock"].step_samples for s in per]
        assert ratio_interval([flat_a[i : i + 28] for i in range(0, len(flat_a), 28)],
                              timings["Q8_0"]["stock"].step_samples, seed=seed).low > 1.03  # fmt: skip


def test_overlapping_timings_are_tied_and_the_smaller_file_wins() -> None:
    # The H200 fast path: Q4_0 124/129/175 ms-like noise, all three within a few ms.
    timings = {"Q8_0": {"fastPath": timing(images(140, 0.15, seed=6), "fastPath")},
               "Q4_0": {"fastPath": timing(images(138, 0.15, seed=7), "fastPath")},
               "Q5_K_S": {"fastPath": timing(images(141, 0.15, seed=8), "fastPath")}}  # fmt: skip
    answer = decide_speed(["Q4_0", "Q5_K_S", "Q8_0"], timings, SIZES, 0.03, "fastPath")
    assert answer.basis == "tied" and answer.pick == "Q4_0"  # the smallest file of the tied ones
    assert "not distinguishable at the measured noise" in answer.reason
    assert all(c.verdict == "tied" and c.low <= 1.03 for c in answer.comparisons)
    for seed in range(5):  # and stays tied whatever the bootstrap seed
        assert ratio_interval(timings["Q5_K_S"]["fastPath"].step_samples,
                              timings["Q8_0"]["fastPath"].step_samples, seed=seed).low <= 1.03  # fmt: skip


def test_tied_with_the_fastest_but_a_third_is_slower() -> None:
    timings = {"Q8_0": {"stock": timing(images(240, 0.02, seed=9))}, "Q4_0": {"stock": timing(images(241, 0.02, seed=10))},
               "Q5_K_S": {"stock": timing(images(415, 0.02, seed=11))}}  # fmt: skip
    answer = decide_speed(["Q4_0", "Q5_K_S", "Q8_0"], timings, SIZES, 0.03, "stock")
    assert answer.basis == "tied" and answer.pick == "Q4_0" and "slower: Q5_K_S" in answer.reason


def test_only_one_passing_and_none_passing() -> None:
    timings = {"Q8_0": {"stock": timing(images(240, 0.02))}}
    one = decide_speed(["Q8_0"], timings, SIZES, 0.03, "stock")
    assert (one.pick, one.basis) == ("Q8_0", "only-passing") and "only quant that passes" in one.reason
    none = decide_speed([], timings, SIZES, 0.03, "stock")
    assert (none.pick, none.basis) == (None, "none-pass")


def test_a_runtime_not_timed_for_every_quant_falls_back_to_stock_and_says_so() -> None:
    timings = {
        "Q8_0": {"stock": timing(images(240, 0.02, seed=1))},
        "Q4_0": {"stock": timing(images(315, 0.02, seed=2))},
    }
    answer = decide_speed(["Q4_0", "Q8_0"], timings, SIZES, 0.03, "fastPath")
    assert answer.runtime == "stock" and answer.pick == "Q8_0" and "was not timed for every quant" in answer.note


def test_calibration_differences_beyond_five_percent_are_flagged() -> None:
    assert calibration_note({"Q4_0": 700.0, "Q8_0": 720.0}) is None  # within 5 %
    note = calibration_note({"Q4_0": 700.0, "Q8_0": 790.0, "Q5_K_S": 705.0})
    assert note is not None and "differ by 13%" in note and "Q8_0 790" in note
    assert calibration_note({"Q4_0": 700.0}) is None


def test_devices_that_differ_leave_speed_undecided_and_the_smallest_file_wins() -> None:
    timings = {
        "Q8_0": {"stock": timing(images(240, 0.02, seed=3))},
        "Q4_0": {"stock": timing(images(315, 0.02, seed=4))},
    }
    why = calibration_note({"Q4_0": 300.0, "Q8_0": 700.0})
    answer = decide_speed(["Q4_0", "Q8_0"], timings, SIZES, 0.03, "stock", incomparable=why)
    assert (answer.pick, answer.basis) == ("Q4_0", "tied") and "speed cannot decide" in answer.reason
