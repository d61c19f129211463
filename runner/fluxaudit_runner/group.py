"""Run one quant group: every guidance × seed × repeat cell of one GGUF file.

The partial JSON is rewritten after every cell, so a group that dies (spot
preemption, OOM, Ctrl-C) resumes from the last recorded cell: a cell counts as
done only once the partial lists it, and a rerun never repeats or rewrites one.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import io
import itertools
import logging
import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fluxaudit.assets import AssetError, resolve
from fluxaudit.layout import RunLayout
from fluxaudit.results import Cell, Cleanup, CompileCheck, FastPath, LoadTimings, Partial
from fluxaudit.spec import UNQUANTIZED, FluxAudit
from fluxaudit.storage import Storage

from . import compile_check, environment, fastpath, gguf_kernels, loading
from .measure import InferenceClock, PeakMemory, memory_in_use, return_freed_host_memory

log = logging.getLogger("fluxaudit.runner")

ProgressFn = Callable[[Partial], None]
#: a warm-up inference runs this many denoising steps: enough to initialise CUDA, cuBLAS
#: and the allocator at the real shapes, without paying a whole extra image per group.
WARMUP_STEPS = 2
#: with compilation, at least this many warm-ups: the first compiles, the second times the
#: compiled steps, and their difference is the compile time the partial records.
COMPILED_WARMUPS = 2
#: a directory that outlives the pod (the Job mounts the model cache volume there).
COMPILE_CACHE_ENV = "FLUXAUDIT_COMPILE_CACHE"


class ResumeConflict(Exception):
    """The stored partial was written for a different spec: resuming would mix results."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def cell_plan(audit: FluxAudit) -> list[tuple[float, int, int]]:
    s = audit.spec
    return list(itertools.product(s.guidance_scales, s.seeds, range(s.repeats)))


def runs_compile_check(audit: FluxAudit, label: str) -> bool:
    return audit.spec.compile_check.enabled and audit.spec.compile_quant == label


def is_finished(partial: Partial, audit: FluxAudit, label: str) -> bool:
    planned = set(cell_plan(audit))
    compile_pending = runs_compile_check(audit, label) and partial.compile_check is None
    return planned <= partial.done_keys() and not compile_pending


def load_partial(storage: Storage, layout: RunLayout, audit: FluxAudit, label: str) -> Partial | None:
    data = storage.read_json_or_none(layout.partial(label))
    if data is None:
        return None
    partial = Partial.from_json(data)
    if partial.fingerprint != audit.spec.fingerprint():
        raise ResumeConflict(
            f"{layout.partial(label)} was written by a different spec (fingerprint {partial.fingerprint}, "
            f"now {audit.spec.fingerprint()}): give this audit a new runId or use another output folder"
        )
    return partial


@dataclass
class _Loaded:
    pipe: Any
    transformer: torch.nn.Module
    prompt_embeds: torch.Tensor
    pooled: torch.Tensor
    load: LoadTimings
    #: what the transformer runs with; after the warm-up the one record of whether it is compiled.
    fast_path: FastPath


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


class GroupRunner:
    #: ``spec.fastPath`` resolved for this machine; set first thing in :meth:`run`.
    fast: fastpath.Plan

    def __init__(self, audit: FluxAudit, label: str, storage: Storage, progress: ProgressFn | None = None):
        self.audit = audit
        self.spec = audit.spec
        self.label = label
        #: None for the unquantized reference group (UNQUANTIZED), which loads the base repo's weights.
        self.quant = None if label == UNQUANTIZED else audit.spec.quant(label)
        self.storage = storage
        self.layout = RunLayout(audit.spec.storage.prefix, audit.run_id())
        self.progress = progress or (lambda p: None)
        self.device = environment.pick_device()
        self.several_seeds = len(audit.spec.seeds) > 1

    # -- persistence -------------------------------------------------------
    def _save(self, partial: Partial) -> None:
        self.storage.write_json(self.layout.partial(self.label), partial.to_json())
        self.progress(partial)

    def _fresh_partial(self, height: int, width: int, prompt: str) -> Partial:
        return Partial(
            run_id=self.layout.run_id,
            fingerprint=self.spec.fingerprint(),
            dtype=self.spec.dtype,
            steps=self.spec.steps,
            height=height,
            width=width,
            prompt=prompt,
            cells_total=len(cell_plan(self.audit)),
        )

    # -- the group ---------------------------------------------------------
    def run(self) -> Partial:
        label = self.label
        partial = load_partial(self.storage, self.layout, self.audit, label)
        if partial is not None and partial.status == "complete" and is_finished(partial, self.audit, label):
            log.info("group %s already complete in %s; skipping", label, self.layout.root)
            return partial

        try:
            self.fast = self._plan_fast_path()
            assets = resolve(self.spec.input, self.storage)
            inputs = loading.prepare_inputs(assets.image, assets.mask, self.spec.max_side)
        except (AssetError, loading.GroupInputError) as exc:
            # Say why in the partial, where the operator and the report look: a pod's log is gone
            # with the pod, and this failure happens before the group has anything else to show.
            failed = partial or self._fresh_partial(0, 0, self.spec.input.prompt)
            failed.status, failed.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
            self._save(failed)
            raise
        self._record_inputs(inputs)
        if partial is None or not partial.cells:
            attempts = partial.attempts if partial is not None else 0
            partial = self._fresh_partial(inputs.height, inputs.width, assets.prompt)
            partial.attempts = attempts
        partial.attempts += 1
        partial.status = "running"
        partial.error = None
        partial.started_at = partial.started_at or _now()
        partial.cells_total = len(cell_plan(self.audit))
        self._save(partial)

        try:
            self._run_loaded(partial, inputs)
        except Exception as exc:
            partial.status = "failed"
            partial.error = f"{type(exc).__name__}: {exc}"[:2000]
            self._save(partial)
            raise
        return partial

    def _plan_fast_path(self) -> fastpath.Plan:
        try:
            return fastpath.plan(self.spec.fast_path, self.device.type, gguf_kernels.triton_usable())
        except fastpath.FastPathUnavailable as exc:
            raise loading.GroupInputError(str(exc)) from exc

    def _record_inputs(self, inputs: loading.PreparedInputs) -> None:
        """Store the audit document and the inputs as the pipeline saw them (same bytes
        from every group), so the report can be rebuilt from the run folder alone."""
        doc = self.audit.model_dump(by_alias=True, mode="json", exclude={"status"}, exclude_none=True)
        doc["metadata"] = {"name": self.audit.metadata.name}
        self.storage.write_json(self.layout.spec_json, doc)
        self.storage.write_bytes(self.layout.input_image, _png(inputs.image), "image/png")
        self.storage.write_bytes(self.layout.input_mask, _png(inputs.mask), "image/png")

    def _run_loaded(self, partial: Partial, inputs: loading.PreparedInputs) -> None:
        partial.environment = environment.collect(self.device)
        loaded = self._load(inputs)
        if partial.quant is not None and partial.cells and partial.quant.sha256 != self._quant_file.sha256:
            self._release(loaded)
            raise ResumeConflict(
                f"{self._quant_file.file} changed since this run started (sha256 {partial.quant.sha256[:12]}… → "
                f"{self._quant_file.sha256[:12]}…): its finished cells came from another file; "
                "give this audit a new runId or use another output folder"
            )
        partial.quant = self._quant_file
        partial.transformer_config = {
            k: loaded.transformer.config[k]
            for k in ("num_layers", "num_single_layers", "num_attention_heads", "attention_head_dim", "in_channels",
                      "out_channels", "joint_attention_dim")
        }  # fmt: skip
        partial.load = loaded.load
        partial.fast_path = loaded.fast_path
        self._save(partial)
        try:
            done = partial.done_keys()
            for guidance, seed, repeat in cell_plan(self.audit):
                if (guidance, seed, repeat) in done:
                    continue
                partial.cells.append(self._cell(loaded, inputs, guidance, seed, repeat))
                self._save(partial)
            if runs_compile_check(self.audit, self.label) and partial.compile_check is None:
                partial.compile_check = self._compile_check(loaded, inputs)
                self._save(partial)
            partial.status = "complete"
            partial.finished_at = _now()
        finally:
            partial.cleanup = self._release(loaded)
            self._save(partial)

    def _load(self, inputs: loading.PreparedInputs) -> _Loaded:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gguf-hash") as pool:
            t0 = time.perf_counter()
            path = described = None
            if self.quant is not None:
                path = loading.download_gguf(self.spec, self.quant)
                described = pool.submit(self._timed_describe, path)
            t1 = time.perf_counter()
            pipe = loading.load_pipeline_without_transformer(self.spec, self.device)
            t2 = time.perf_counter()
            prompt_embeds, pooled = loading.encode_prompt(pipe, self.spec.input.prompt, self.spec, self.device)
            loading.free_text_encoders(pipe)
            gc.collect()
            t3 = time.perf_counter()
            if path is None:
                transformer, self._quant_file = loading.load_unquantized_transformer(self.spec, self.device)
            else:
                assert described is not None
                try:
                    transformer = loading.load_transformer(path, self.spec, self.device)
                except loading.GroupInputError:
                    described.result()  # a sha256/size mismatch explains a failed load best
                    raise
                self._quant_file = described.result()
            record = self._apply_fast_path(transformer)
            pipe.register_modules(transformer=transformer)
            t4 = time.perf_counter()
        memory_after_load = memory_in_use(self.device)
        loaded = _Loaded(pipe, transformer, prompt_embeds, pooled, None, record)  # type: ignore[arg-type]
        t5 = time.perf_counter()
        self._transformer_kwargs = None

        def warm_up(first: bool) -> None:
            self._infer(
                loaded, inputs, self.spec.guidance_scales[0], self.spec.seeds[0], capture=first, steps=WARMUP_STEPS
            )

        warmups = max(self.spec.warmup, COMPILED_WARMUPS if self.fast.compile else 0)
        seconds = []
        for i in range(warmups):
            start = time.perf_counter()
            try:
                warm_up(first=i == 0)
            except Exception as exc:
                if i > 0 or record.compile != "regional":
                    raise
                self._compile_failed(transformer, record, exc)
                warm_up(first=True)
            seconds.append(time.perf_counter() - start)
        t6 = time.perf_counter()
        if record.compile == "regional":
            record.compile_seconds = max(seconds[0] - seconds[1], 0.0)
            record.cache_files_after = fastpath.cache_files(record.cache_dir)
        loaded.load = LoadTimings(
            download_seconds=t1 - t0,
            hash_seconds=getattr(self, "_hash_seconds", None),
            pipeline_load_seconds=t2 - t1,
            prompt_encode_seconds=t3 - t2,
            transformer_load_seconds=t4 - t3,
            warmup_seconds=t6 - t5,
            memory_after_load_bytes=memory_after_load,
            memory_mode="resident; text encoders freed after encoding the prompt once",
        )
        return loaded

    def _apply_fast_path(self, transformer: torch.nn.Module) -> FastPath:
        """Swap in the dequant kernels and compile the blocks, as planned; the warm-up then compiles."""
        fast = self.fast
        record = FastPath(
            dequant_kernels=fast.kernels, compile="regional" if fast.compile else "off", notes=list(fast.notes)
        )
        if fast.kernels or fast.compile:
            swap = fastpath.swap_gguf_linears(transformer, kernels=fast.kernels)
            record.kernel_linears, record.kept_linears = swap.kernel, swap.plain
        if fast.compile:
            record.compile_backend = fast.backend
            record.cache_dir = fastpath.configure_compile_cache(os.environ.get(COMPILE_CACHE_ENV))
            record.cache_files_before = fastpath.cache_files(record.cache_dir)
            fastpath.compile_regions(transformer, fast.backend)
        return record

    def _compile_failed(self, transformer: torch.nn.Module, record: FastPath, exc: Exception) -> None:
        """A compiler failure costs the speed-up, not the audit: run eager and say why in the partial."""
        text = "".join(traceback.format_exception_only(exc))
        reason = " ".join(line.strip() for line in text.splitlines() if line.strip())[:300]
        log.warning("regional compile failed on %s, running eager: %s", self.label, reason)
        fastpath.uncompile(transformer)
        record.compile, record.compile_backend, record.cache_files_before = "off", None, None
        record.notes.append(f"regional compile failed, ran eager: {reason}")

    def _timed_describe(self, path: Any) -> Any:
        start = time.perf_counter()
        assert self.quant is not None
        described = loading.describe_gguf(self.spec, self.quant, path)
        self._hash_seconds = time.perf_counter() - start
        return described

    def _call_kwargs(
        self, loaded: _Loaded, inputs: loading.PreparedInputs, guidance: float, seed: int
    ) -> dict[str, Any]:
        return {
            "prompt_embeds": loaded.prompt_embeds,
            "pooled_prompt_embeds": loaded.pooled,
            "image": inputs.image,
            "mask_image": inputs.mask,
            "height": inputs.height,
            "width": inputs.width,
            "num_inference_steps": self.spec.steps,
            "guidance_scale": guidance,
            "generator": torch.Generator(device="cpu").manual_seed(seed),
            "max_sequence_length": self.spec.max_sequence_length,
        }

    def _infer(
        self,
        loaded: _Loaded,
        inputs: loading.PreparedInputs,
        guidance: float,
        seed: int,
        capture: bool = False,
        steps: int | None = None,
    ):
        kwargs = self._call_kwargs(loaded, inputs, guidance, seed)
        if steps is not None:
            kwargs["num_inference_steps"] = min(steps, self.spec.steps)
        handle = None
        if capture:

            def grab(module: torch.nn.Module, args: Any, kw: dict[str, Any]) -> None:
                if self._transformer_kwargs is None:
                    self._transformer_kwargs = {k: v.clone() if torch.is_tensor(v) else v for k, v in kw.items()}

            handle = loaded.transformer.register_forward_pre_hook(grab, with_kwargs=True)
        try:
            clock = InferenceClock(loaded.transformer, self.device)
            with torch.inference_mode():
                return clock.run(lambda cb: loaded.pipe(**kwargs, callback_on_step_end=cb))
        finally:
            if handle is not None:
                handle.remove()

    def _cell(self, loaded: _Loaded, inputs: loading.PreparedInputs, guidance: float, seed: int, repeat: int) -> Cell:
        with PeakMemory(self.device) as peak:
            result, timing = self._infer(loaded, inputs, guidance, seed)
        image_path = latents_path = image_sha = None
        if repeat == 0:
            png = _png(result.images[0])
            image_path = self.layout.image(self.label, guidance, seed, self.several_seeds)
            self.storage.write_bytes(image_path, png, "image/png")
            image_sha = hashlib.sha256(png).hexdigest()
            if timing.final_latents is not None:
                latents_path = self.layout.latents(self.label, guidance, seed, self.several_seeds)
                self.storage.write_bytes(latents_path, _npy(timing.final_latents.numpy()), "application/octet-stream")
        return Cell(
            guidance=guidance,
            seed=seed,
            repeat=repeat,
            wall_seconds=timing.wall_seconds,
            cuda_seconds=timing.cuda_seconds,
            step_seconds=timing.step_seconds,
            peak_memory_bytes=peak.peak,
            peak_memory_kind=peak.kind,  # type: ignore[arg-type]
            image=image_path,
            image_sha256=image_sha,
            latents=latents_path,
            finished_at=_now(),
        )

    def _compile_check(self, loaded: _Loaded, inputs: loading.PreparedInputs) -> CompileCheck:
        kwargs = self._call_kwargs(loaded, inputs, self.spec.guidance_scales[0], self.spec.seeds[0])
        kwargs["num_inference_steps"] = 1
        results = [compile_check.explain("pipeline", loaded.pipe, **kwargs)]
        if self._transformer_kwargs is None:
            with torch.inference_mode():
                self._infer(loaded, inputs, self.spec.guidance_scales[0], self.spec.seeds[0], capture=True)
        tkwargs = dict(self._transformer_kwargs or {})
        with torch.inference_mode():
            results.append(compile_check.explain("transformer", loaded.transformer, **tkwargs))
        speedup = None
        if self.spec.compile_check.measure_speedup:
            speedup = compile_check.measure_speedup(
                loaded.transformer,
                tkwargs,
                self.device,
                backend=self.fast.backend,
                compiled_seconds=loaded.fast_path.compile_seconds,  # None unless the blocks run compiled
            )
        return CompileCheck(
            quant=self.label, torch=torch.__version__, device=self.device.type, explain=results, speedup=speedup
        )

    def _release(self, loaded: _Loaded) -> Cleanup:
        """Drop every model of the group and measure what came back."""
        before = memory_in_use(self.device)
        compiled = loaded.fast_path.compile == "regional"
        loaded.pipe = None
        loaded.transformer = None  # type: ignore[assignment]
        loaded.prompt_embeds = loaded.pooled = None  # type: ignore[assignment]
        self._transformer_kwargs = None
        del loaded
        if compiled:
            torch.compiler.reset()  # compiled graphs reference the blocks: without this the weights stay
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        else:
            return_freed_host_memory()
        after = memory_in_use(self.device)
        return Cleanup(
            before_bytes=before,
            after_bytes=after,
            freed_bytes=before - after,
            kind="cuda_allocated" if self.device.type == "cuda" else "process_rss",
        )


def run_group(audit: FluxAudit, label: str, storage: Storage, progress: ProgressFn | None = None) -> Partial:
    return GroupRunner(audit, label, storage, progress).run()
