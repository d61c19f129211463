"""Run one quant group: every input × guidance × seed × repeat cell of one GGUF file.

``GroupRunner.run`` reads as its phases: resume → record → load (and place) → calibrate →
stock sample → fast path → warm up → sweep → compile check → release.  The partial JSON is rewritten after every cell, so a group
that dies (spot preemption, OOM, Ctrl-C) resumes from the last recorded cell: a cell
counts as done only once the partial lists it, and a rerun never repeats or rewrites
one.  A failure is recorded in one place, in the partial, where the operator and the
report look (a pod's log is gone with the pod).
"""

from __future__ import annotations

import gc
import hashlib
import io
import itertools
import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fluxaudit.contract import Env, audit_document, timestamp
from fluxaudit.layout import RunLayout
from fluxaudit.results import Cell, CellKey, Cleanup, LoadTimings, Partial, ResumeConflict
from fluxaudit.run_folder import CorruptPartial, bind_spec, check_belongs, read_partial, set_aside
from fluxaudit.spec import UNQUANTIZED, FluxAudit
from fluxaudit.storage import Storage

from . import compile_check, environment, fastpath, gguf_kernels, loading, placement, prompt_cache
from .audit_inputs import AuditInput, distinct_prompts, inputs_sha256, read_inputs
from .calibration import calibrate
from .collector import compiling, full_collections_deferred
from .errors import GroupInputError
from .events import emit, phase
from .hallucination import Scorer, load_scorer
from .inference import WarmUp, stock_sample, timed_cell, warm_shape, warm_up
from .loading import LoadedGroup
from .measure import memory_in_use, return_freed_host_memory

log = logging.getLogger("fluxaudit.runner")
#: a phase that should take seconds to a few minutes: past this, the log gets every thread's stack.
STALL_STACKS_SECONDS = 600.0

ProgressFn = Callable[[Partial], None]


def cell_plan(audit: FluxAudit, label: str, gpu: bool) -> list[CellKey]:
    """Input by input (each input's images come out together), then guidance, seed, repeat."""
    s = audit.spec
    names = [name for name, _ in s.input_items()]
    return list(itertools.product(names, s.guidance_scales, s.seeds, range(s.repeats_for(label, gpu))))


def stock_images(audit: FluxAudit, label: str, gpu: bool) -> int:
    return audit.spec.timing.stock_images or audit.spec.repeats_for(label, gpu)


def runs_compile_check(audit: FluxAudit, label: str) -> bool:
    return audit.spec.compile_check.enabled and audit.spec.compile_quant == label


def stock_pending(partial: Partial, audit: FluxAudit, label: str, gpu: bool) -> bool:
    """The sweep runs the fast path and the stock runtime's images are not all timed yet."""
    have = len(partial.stock_sample.images) if partial.stock_sample else 0
    return partial.sweep_runtime == "fastPath" and have < stock_images(audit, label, gpu)


def is_finished(partial: Partial, audit: FluxAudit, label: str, gpu: bool) -> bool:
    planned = set(cell_plan(audit, label, gpu))
    compile_pending = runs_compile_check(audit, label) and partial.compile_check is None
    return planned <= partial.done_keys() and not compile_pending and not stock_pending(partial, audit, label, gpu)


def load_partial(
    storage: Storage, layout: RunLayout, audit: FluxAudit, label: str, set_aside_corrupt: bool
) -> Partial | None:
    """The group's stored partial, checked to belong to this spec; an unreadable one is set aside
    only when asked (``--set-aside-corrupt``), else refused."""
    path = layout.partial(label)
    try:
        partial = read_partial(storage, path)
    except CorruptPartial:
        if not set_aside_corrupt:
            raise
        aside = set_aside(storage, path)
        log.warning("%s was unreadable: kept as %s; group %s starts afresh", path, aside, label)
        return None
    if partial is not None:
        check_belongs(partial, audit, path)
    return partial


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


class GroupRunner:
    def __init__(
        self,
        audit: FluxAudit,
        label: str,
        storage: Storage,
        progress: ProgressFn | None = None,
        set_aside_corrupt: bool = False,
    ):
        self.audit = audit
        self.spec = audit.spec
        self.label = label
        #: None for the unquantized reference group (UNQUANTIZED), which loads the base repo's weights.
        self.quant = None if label == UNQUANTIZED else audit.spec.quant(label)
        self.storage = storage
        self.layout = RunLayout(audit.spec.storage.prefix, audit.run_id())
        self.progress = progress or (lambda p: None)
        self.device = environment.pick_device()
        self.gpu = self.device.type == "cuda"
        self.several_seeds = len(audit.spec.seeds) > 1
        self.set_aside_corrupt = set_aside_corrupt
        self.scorer: Scorer | None = None

    def run(self) -> Partial:
        # 1. resume: a finished group is done; a foreign partial is refused before anything is written.
        stored = load_partial(self.storage, self.layout, self.audit, self.label, self.set_aside_corrupt)
        if stored is not None and stored.status == "complete" and is_finished(stored, self.audit, self.label, self.gpu):
            log.info("group %s already complete in %s; skipping", self.label, self.layout.root)
            return stored
        partial = stored
        try:
            # 2. record: the plan for this machine, the inputs as the pipeline sees them, a running partial.
            try:
                plan = fastpath.plan(self.spec.fast_path, self.device.type, gguf_kernels.triton_usable())
            except fastpath.FastPathUnavailable as exc:
                raise GroupInputError(str(exc)) from exc
            placement.check_available(self.spec.memory, self.device)
            if self.quant is not None:  # the bf16 reference runs offloaded, stock, wherever it does not fit
                fastpath.start_compile_workers(plan, self.device.type, os.environ.get(Env.COMPILE_CACHE))
            audit_inputs = read_inputs(self.spec, self.storage)
            input_sha256 = inputs_sha256(audit_inputs)
            if stored is not None:
                check_belongs(stored, self.audit, self.layout.partial(self.label), input_sha256)
            self._record_inputs(audit_inputs)
            partial = self._start(stored, audit_inputs)
            partial.input_sha256 = input_sha256
            inputs = audit_inputs[0].prepared  # warm-up, stock sample and compile check run on the first input
            largest = max((i.prepared for i in audit_inputs), key=lambda p: p.height * p.width)
            # 3. load, and place the weights where spec.memory says (measured, on this device)
            partial.environment = environment.collect(self.device)
            prompts = distinct_prompts(self.spec)
            stored = prompt_cache.read_stored(self.storage, self.layout, self.spec, prompts)
            loaded = loading.load_group(
                self.spec, self.quant, self.device, plan, (largest.height, largest.width), prompts, stored
            )
            try:
                self._check_same_file(partial, loaded)
                if loaded.embeddings is not None and loaded.encoded:  # for the groups after this one
                    new = {p: loaded.embeddings[p] for p in loaded.encoded}
                    prompt_cache.store(self.storage, self.layout, self.spec, new)
                with phase("clip_load", self.label, model=self.spec.quality.clip_model or "none"):
                    self.scorer, partial.hallucination_note = load_scorer(self.spec)
                partial.hallucination_model = self.scorer.name if self.scorer else None
                partial.placement = loaded.placement
                partial.sweep_runtime = "fastPath" if fastpath.engaged(loaded.fast_path) else "stock"
                # 4. calibrate: a fixed matmul, so groups on different nodes compare
                with phase("calibrate", self.label) as done:
                    partial.calibration = calibrate(self.device, self.spec.timing.calibration_seconds)
                    done.update(tflops=round(partial.calibration.tflops_median, 2) if partial.calibration else None)
                self._save(partial)
                # 5. stock sample: when the sweep runs the fast path, time diffusers as shipped first
                if stock_pending(partial, self.audit, self.label, self.gpu):
                    images = stock_images(self.audit, self.label, self.gpu)
                    with phase("stock_sample", self.label, images=images):
                        partial.stock_sample = stock_sample(loaded, inputs, self.spec, self.device, images)
                    self._save(partial)
                # 6. fast path: the dequant kernels swapped in, the blocks compiled (by the first warm-up)
                fastpath.apply(loaded.transformer, loaded.fast_path, os.environ.get(Env.COMPILE_CACHE))
                # 7. warm up
                with phase("warm_up", self.label, compile=loaded.fast_path.compile) as done, compiling() as gc_cost:
                    warm = warm_up(loaded, inputs, self.spec, self.device, self.label)
                    done.update(compile_seconds=loaded.fast_path.compile_seconds, **gc_cost.fields())
                self._record_load(partial, loaded, warm)
                # 8. sweep
                self._sweep(partial, loaded, audit_inputs)
                # 9. compile check
                if runs_compile_check(self.audit, self.label) and partial.compile_check is None:
                    with (
                        phase("compile_check", self.label, stacks_after=STALL_STACKS_SECONDS) as done,
                        compiling() as gc_cost,
                    ):
                        partial.compile_check = compile_check.run_check(
                            loaded, inputs, self.spec, self.device, self.label, warm.transformer_inputs, plan.backend
                        )
                        done.update(gc_cost.fields())
                    self._save(partial)
                partial.status, partial.finished_at = "complete", timestamp()
            finally:
                # 10. release
                partial.cleanup = self._release(loaded)
                self._save(partial)
        except Exception as exc:
            self._record_failure(partial, exc)
            raise
        return partial

    # -- phases ---------------------------------------------------------------
    def _record_inputs(self, audit_inputs: list[AuditInput]) -> None:
        """Store the audit document and the inputs as the pipeline saw them (same bytes
        from every group), so the report can be rebuilt from the run folder alone."""
        bind_spec(self.storage, self.layout, self.audit, audit_document(self.audit))
        for item in audit_inputs:
            folder = self.layout.of_input(item.name)
            self.storage.write_bytes(folder.input_image, _png(item.prepared.image), "image/png")
            self.storage.write_bytes(folder.input_mask, _png(item.prepared.mask), "image/png")

    def _start(self, stored: Partial | None, audit_inputs: list[AuditInput]) -> Partial:
        """The stored partial when it holds cells to resume from, else a fresh one; marked running."""
        if stored is not None and stored.cells:
            partial = stored
        else:
            first = audit_inputs[0].prepared
            partial = self._fresh_partial(first.height, first.width, first.prompt)
            partial.attempts = stored.attempts if stored is not None else 0
        partial.inputs = [i.record() for i in audit_inputs if i.name is not None]
        partial.attempts += 1
        partial.status, partial.error = "running", None
        partial.started_at = partial.started_at or timestamp()
        partial.cells_total = len(cell_plan(self.audit, self.label, self.gpu))
        self._save(partial)
        return partial

    def _check_same_file(self, partial: Partial, loaded: LoadedGroup) -> None:
        found = loaded.quant_file
        if partial.quant is not None and partial.cells and partial.quant.sha256 != found.sha256:
            raise ResumeConflict(
                f"{found.file} changed since this run started (sha256 {partial.quant.sha256[:12]}… → "
                f"{found.sha256[:12]}…): its finished cells came from another file; "
                "give this audit a new runId or use another output folder"
            )

    def _record_load(self, partial: Partial, loaded: LoadedGroup, warm: WarmUp) -> None:
        s = loaded.seconds
        partial.quant = loaded.quant_file
        partial.transformer_config = loaded.transformer_config
        partial.load = LoadTimings(
            download_seconds=s.download,
            hash_seconds=s.hash,
            pipeline_load_seconds=s.pipeline,
            prompt_encode_seconds=s.prompt,
            transformer_load_seconds=s.transformer,
            warmup_seconds=warm.seconds,
            memory_after_load_bytes=s.memory_after_load_bytes,
            memory_mode=loaded.placement.mode
            + (
                "; text encoders kept, the prompt encoded in every call"
                if loaded.embeddings is None
                else "; text encoders freed after encoding the prompt once"
                if loaded.encoded
                else "; prompt embeddings read from the run, no text encoder loaded"
            ),
        )
        partial.fast_path = loaded.fast_path
        self._save(partial)

    def _sweep(self, partial: Partial, loaded: LoadedGroup, audit_inputs: list[AuditInput]) -> None:
        done = partial.done_keys()
        by_name = {i.name: i for i in audit_inputs}
        warmed = {(audit_inputs[0].prepared.height, audit_inputs[0].prepared.width)}  # the warm-up phase's shape
        for key in cell_plan(self.audit, self.label, self.gpu):
            if key in done:
                continue
            item = by_name[key[0]]
            shape = (item.prepared.height, item.prepared.width)
            if shape not in warmed:  # another size: its first call may compile; never inside a timed cell
                with full_collections_deferred():
                    warm_shape(loaded, item.prepared, self.spec, self.device)
                warmed.add(shape)
            partial.cells.append(self._cell(loaded, item, *key[1:]))
            self._save(partial)

    def _cell(self, loaded: LoadedGroup, item: AuditInput, guidance: float, seed: int, repeat: int) -> Cell:
        inputs = item.prepared
        result, timing, peak = timed_cell(loaded, inputs, self.spec, self.device, guidance, seed)
        emit("cell", self.label, **({"input": item.name} if item.name else {}), guidance=guidance, seed=seed,
             repeat=repeat, seconds=round(timing.wall_seconds, 3),
             step_ms_median=round(1000 * float(np.median(timing.step_seconds)), 2) if timing.step_seconds else None,
             peak_bytes=peak.peak)  # fmt: skip
        image_path = latents_path = image_sha = hallucination = None
        if repeat == 0:
            png = _png(result.images[0])
            folder = self.layout.of_input(item.name)
            image_path = folder.image(self.label, guidance, seed, self.several_seeds)
            self.storage.write_bytes(image_path, png, "image/png")
            image_sha = hashlib.sha256(png).hexdigest()
            if self.scorer is not None:  # after the timing: it never enters a measured interval
                hallucination = self.scorer.score(result.images[0], inputs.mask, inputs.prompt)
            if timing.final_latents is not None:
                latents_path = folder.latents(self.label, guidance, seed, self.several_seeds)
                self.storage.write_bytes(latents_path, _npy(timing.final_latents.numpy()), "application/octet-stream")
        return Cell(
            input=item.name,
            guidance=guidance,
            seed=seed,
            repeat=repeat,
            wall_seconds=timing.wall_seconds,
            cuda_seconds=timing.cuda_seconds,
            step_seconds=timing.step_seconds,
            peak_memory_bytes=peak.peak,
            peak_memory_kind=peak.kind,
            image=image_path,
            image_sha256=image_sha,
            latents=latents_path,
            finished_at=timestamp(),
            hallucination=hallucination,
        )

    def _release(self, loaded: LoadedGroup) -> Cleanup:
        """Drop every model of the group and measure what came back."""
        before = memory_in_use(self.device)
        compiled = loaded.fast_path.compile == "regional"
        loaded.release()
        self.scorer = None
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

    # -- persistence ----------------------------------------------------------
    def _save(self, partial: Partial) -> None:
        self.storage.write_json(self.layout.partial(self.label), partial.to_json(), guard=True)
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
            cells_total=len(cell_plan(self.audit, self.label, self.gpu)),
        )

    def _record_failure(self, partial: Partial | None, exc: Exception) -> None:
        """Say why in the partial; before the group had one of its own, in a fresh one.  Not when the
        run folder holds another audit's results: nothing already stored there may change."""
        if isinstance(exc, ResumeConflict | CorruptPartial):
            return
        failed = partial or self._fresh_partial(0, 0, self.spec.first_input.prompt)
        failed.status, failed.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
        self._save(failed)


def run_group(
    audit: FluxAudit,
    label: str,
    storage: Storage,
    progress: ProgressFn | None = None,
    set_aside_corrupt: bool = False,
) -> Partial:
    runner = GroupRunner(audit, label, storage, progress, set_aside_corrupt)
    with storage.writer_lock(runner.layout.root, f"group-{label}"):  # one writer per group's partial
        return runner.run()
