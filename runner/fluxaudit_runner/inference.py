"""Pipeline calls of one group: the warm-up (which compiles when the fast path does) and a timed cell.

Every call uses a CPU ``torch.Generator`` seeded with the cell's seed, so a cell is
reproducible across quants and runs, and each input's prompt embeddings encoded once at load.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from fluxaudit.results import StockSample, TimedImage
from fluxaudit.spec import WARMUP_STEPS, FluxAuditSpec

from . import fastpath
from .loading import LoadedGroup
from .measure import InferenceClock, PeakMemory, Timing
from .pipeline_inputs import PreparedInputs

#: with compilation, at least this many warm-ups: the first compiles, the second times the
#: compiled steps, and their difference is the compile time the partial records.
COMPILED_WARMUPS = 2


def call_kwargs(
    loaded: LoadedGroup, inputs: PreparedInputs, spec: FluxAuditSpec, guidance: float, seed: int
) -> dict[str, Any]:
    prompt: dict[str, Any] = {"prompt": inputs.prompt}  # encoded in every call, as with offloaded encoders
    if loaded.embeddings is not None:
        embeds, pooled = loaded.embeddings[inputs.prompt]
        prompt = {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
    return {
        **prompt,
        "image": inputs.image,
        "mask_image": inputs.mask,
        "height": inputs.height,
        "width": inputs.width,
        "num_inference_steps": spec.steps,
        "guidance_scale": guidance,
        "generator": torch.Generator(device="cpu").manual_seed(seed),
        "max_sequence_length": spec.max_sequence_length,
    }


def infer(
    loaded: LoadedGroup,
    inputs: PreparedInputs,
    spec: FluxAuditSpec,
    device: torch.device,
    guidance: float,
    seed: int,
    steps: int | None = None,
    capture: dict[str, Any] | None = None,
) -> tuple[Any, Timing]:
    """One timed pipeline call; with ``capture``, the keyword arguments of the transformer's first
    forward are copied into it (the compile check replays that forward)."""
    kwargs = call_kwargs(loaded, inputs, spec, guidance, seed)
    if steps is not None:
        kwargs["num_inference_steps"] = min(steps, spec.steps)
    handle = None
    if capture is not None:

        def grab(module: torch.nn.Module, args: Any, kw: dict[str, Any]) -> None:
            if not capture:
                capture.update({k: v.clone() if torch.is_tensor(v) else v for k, v in kw.items()})

        handle = loaded.transformer.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        clock = InferenceClock(loaded.transformer, device)
        with torch.inference_mode():
            return clock.run(lambda cb: loaded.pipe(**kwargs, callback_on_step_end=cb))
    finally:
        if handle is not None:
            handle.remove()


@dataclass(frozen=True)
class WarmUp:
    seconds: float
    #: the transformer's forward arguments, as the pipeline passed them (the compile check replays them).
    transformer_inputs: dict[str, Any]


def warm_up(loaded: LoadedGroup, inputs: PreparedInputs, spec: FluxAuditSpec, device: torch.device,
            label: str) -> WarmUp:  # fmt: skip
    """Untimed inferences of ``WARMUP_STEPS`` steps at the audit's shapes.  With regional compilation
    the first compiles; a compiler failure there falls back to eager (recorded) instead of failing."""
    record = loaded.fast_path
    captured: dict[str, Any] = {}
    compiling = record.compile == "regional"
    count = max(spec.warmup, COMPILED_WARMUPS if compiling else 0)
    guidance, seed = spec.guidance_scales[0], spec.seeds[0]

    def once(first: bool) -> None:
        infer(loaded, inputs, spec, device, guidance, seed, steps=WARMUP_STEPS, capture=captured if first else None)

    start_all = time.perf_counter()
    seconds = []
    for i in range(count):
        start = time.perf_counter()
        try:
            once(first=i == 0)
        except Exception as exc:
            if i > 0 or record.compile != "regional":
                raise
            fastpath.fall_back_to_eager(loaded.transformer, record, exc, label)
            captured.clear()
            once(first=True)
        seconds.append(time.perf_counter() - start)
    if record.compile == "regional":
        record.compile_seconds = max(seconds[0] - seconds[1], 0.0)
        record.cache_files_after = fastpath.cache_files(record.cache_dir)
    return WarmUp(seconds=time.perf_counter() - start_all, transformer_inputs=captured)


def warm_shape(loaded: LoadedGroup, inputs: PreparedInputs, spec: FluxAuditSpec, device: torch.device) -> None:
    """One untimed short call at an input's own size, before its first timed cell: a compiled transformer
    meets a new shape there (and recompiles), not inside a measured interval."""
    infer(loaded, inputs, spec, device, spec.guidance_scales[0], spec.seeds[0], steps=WARMUP_STEPS)


def timed_cell(
    loaded: LoadedGroup, inputs: PreparedInputs, spec: FluxAuditSpec, device: torch.device, guidance: float, seed: int
) -> tuple[Any, Timing, PeakMemory]:
    """One timed image, with its peak memory."""
    with PeakMemory(device) as peak:
        result, timing = infer(loaded, inputs, spec, device, guidance, seed)
    return result, timing, peak


def stock_sample(
    loaded: LoadedGroup, inputs: PreparedInputs, spec: FluxAuditSpec, device: torch.device, images: int
) -> StockSample:
    """Stock diffusers before the fast path touches the transformer: one warm-up, then ``images`` full
    timed images (offloading and per-call costs are paid per image, not per step)."""
    start = time.perf_counter()
    infer(loaded, inputs, spec, device, spec.guidance_scales[0], spec.seeds[0], steps=WARMUP_STEPS)
    sample = StockSample(warmup_seconds=time.perf_counter() - start)
    for i in range(images):
        guidance = spec.guidance_scales[i % len(spec.guidance_scales)]
        _, timing, peak = timed_cell(loaded, inputs, spec, device, guidance, spec.seeds[0])
        sample.images.append(
            TimedImage(
                guidance=guidance,
                seed=spec.seeds[0],
                wall_seconds=timing.wall_seconds,
                cuda_seconds=timing.cuda_seconds,
                step_seconds=timing.step_seconds,
                peak_memory_bytes=peak.peak,
            )
        )
    return sample
