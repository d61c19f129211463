"""Clocks and memory gauges for one inference.

Wall clock is ``time.perf_counter`` around the call, after a CUDA synchronize so
queued kernels are counted.  On CUDA, events give device time for the call and
for each denoising step (a transformer pre-hook marks a step's start, the
pipeline's ``callback_on_step_end`` its end).  Off CUDA the step marks are
perf_counter readings and the CUDA figure is ``None``: never estimated.
Peak memory is CUDA's max allocated on a GPU, else the process's peak RSS,
reset per cell through ``/proc/self/clear_refs``.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

PeakKind = Literal["cuda_max_allocated", "process_peak_rss"]


def process_rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _read_hwm() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory over a block: CUDA max allocated, else process peak RSS."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.kind: PeakKind = "cuda_max_allocated" if self.cuda else "process_peak_rss"
        self.peak = 0

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            _reset_hwm()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            self.peak = int(torch.cuda.max_memory_allocated())
        else:
            self.peak = _read_hwm() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def return_freed_host_memory() -> None:
    """Ask glibc to hand freed heap pages back to the OS, so RSS reflects what a
    released model really gave back (a no-op where malloc_trim does not exist)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def memory_in_use(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated())
    return process_rss_bytes()


@dataclass
class _Mark:
    cuda: torch.cuda.Event | None
    wall: float


def _mark(cuda: bool) -> _Mark:
    event = None
    if cuda:
        event = torch.cuda.Event(enable_timing=True)
        event.record()
    return _Mark(event, time.perf_counter())


def _between(a: _Mark, b: _Mark) -> float:
    if a.cuda is not None and b.cuda is not None:
        return a.cuda.elapsed_time(b.cuda) / 1000.0
    return b.wall - a.wall


@dataclass
class Timing:
    wall_seconds: float
    cuda_seconds: float | None
    step_seconds: list[float]
    final_latents: torch.Tensor | None


@dataclass
class InferenceClock:
    """Times one pipeline call: install on the transformer, pass ``callback`` to the pipeline."""

    transformer: torch.nn.Module
    device: torch.device
    capture_latents: bool = True
    _starts: list[_Mark] = field(default_factory=list)
    _ends: list[_Mark] = field(default_factory=list)
    _latents: torch.Tensor | None = None

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def _pre_hook(self, module: torch.nn.Module, args: Any) -> None:
        self._starts.append(_mark(self.cuda))

    def callback(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        self._ends.append(_mark(self.cuda))
        if self.capture_latents and step == pipe.num_timesteps - 1:
            self._latents = callback_kwargs["latents"].detach().to("cpu", torch.float32).clone()
        return {}

    def run(self, call: Callable[[Callable[..., dict[str, Any]]], Any]) -> tuple[Any, Timing]:
        """Run ``call(callback)`` and time it."""
        self._starts, self._ends, self._latents = [], [], None
        handle = self.transformer.register_forward_pre_hook(self._pre_hook)
        try:
            if self.cuda:
                torch.cuda.synchronize()
            begin = _mark(self.cuda)
            result = call(self.callback)
            end = _mark(self.cuda)
            if self.cuda:
                torch.cuda.synchronize()
            wall = time.perf_counter() - begin.wall
        finally:
            handle.remove()
        steps = [_between(s, e) for s, e in zip(self._starts, self._ends, strict=False)]
        cuda_seconds = _between(begin, end) if self.cuda else None
        return result, Timing(wall, cuda_seconds, steps, self._latents)
