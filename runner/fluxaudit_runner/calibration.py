"""A fixed matmul timed on the group's device before its sweep.

One Job per quant means the groups of one audit may run on different nodes, and on 2
busy CPU cores the same machine is not the same from one group to the next: a group's
timings compare with another's only as far as their devices do.  The figure is the
median of short batches (TFLOP/s) over about ``seconds``; the report flags groups whose
figures differ by more than 5 %.
"""

from __future__ import annotations

import time

import torch

from fluxaudit.results import Calibration
from fluxaudit.stats import spread

#: bf16 on a GPU (what the transformer's matmuls run in); float32 on CPU, where bf16 matmul is emulated.
GPU_SIZE, CPU_SIZE = 8192, 384
BATCH = 8


def calibrate(device: torch.device, seconds: float) -> Calibration | None:
    if seconds <= 0:
        return None
    cuda = device.type == "cuda"
    n = GPU_SIZE if cuda else CPU_SIZE
    dtype = torch.bfloat16 if cuda else torch.float32
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    flops = 2.0 * n**3 * BATCH
    samples: list[float] = []
    a @ b  # warm: cuBLAS handle, kernel selection
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(samples) < 3:
        if cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            for _ in range(BATCH):
                a @ b
            end.record()
            end.synchronize()
            elapsed = begin.elapsed_time(end) / 1000.0
        else:
            t0 = time.perf_counter()
            for _ in range(BATCH):
                a @ b
            elapsed = time.perf_counter() - t0
        samples.append(flops / elapsed / 1e12)
    del a, b
    s = spread(samples)
    return Calibration(
        what=f"{'bf16' if cuda else 'float32'} matmul {n}×{n}×{n}, batches of {BATCH}",
        tflops_median=s.median,
        tflops_p10=s.p10,
        tflops_p90=s.p90,
        samples=s.samples,
        seconds=time.perf_counter() - start,
    )
