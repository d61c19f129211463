"""The GGUF fast path: dequantization kernels at memory speed, regional compilation, a compile cache.

Three parts, each measured on its own in BENCHMARKS.md §7:

- :func:`swap_gguf_linears` swaps diffusers' ``GGUFLinear`` for :class:`KernelGGUFLinear`,
  which dequantizes with the Triton kernels of ``gguf_kernels`` (same bytes, same result), or
  for :class:`PlainGGUFLinear` (diffusers' formulas without the tensor subclass torch.compile
  cannot trace).
  The weights stay resident in their quantized form: only one layer's bf16 weight exists
  at a time, as in eager diffusers.
- :func:`compile_regions` compiles the repeated transformer blocks once per block class
  (``compile_repeated_blocks``): seconds of compiling instead of minutes for the whole model.
- :func:`configure_compile_cache` points Inductor's and Triton's caches at a directory that
  outlives the process, so a rerun, a resumed pod or a later audit loads compiled kernels.

What lost and was taken out: repacking each block's fields into contiguous tensors so
Inductor could fuse diffusers' arithmetic better (same step time for Q4_0, 8 % slower for
Q5_K_S: Inductor's gather code, not the layout, was the cost).
"""

from __future__ import annotations

import logging
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from fluxaudit.results import FastPath
from fluxaudit.spec import FastPathSpec

from . import gguf_kernels

log = logging.getLogger("fluxaudit.runner")


class PlainGGUFLinear(torch.nn.Module):
    """A GGUF linear holding its bytes as a plain tensor, dequantized with diffusers' own formulas.

    diffusers' ``GGUFParameter`` is a tensor subclass that torch.compile may refuse to trace
    under fullgraph (torch 2.13, the tiny model's regional compile: "Unsupported tensor subclass
    overridden attribute access"; it depends on what dynamo saw before), so every GGUF
    linear is swapped before regional compilation: to this one where no kernel exists for
    its type, to :class:`KernelGGUFLinear` where one does."""

    def __init__(self, raw: torch.Tensor, qtype: GGMLQuantizationType, out_features: int, in_features: int,
                 bias: torch.Tensor | None, compute_dtype: torch.dtype):  # fmt: skip
        super().__init__()
        self.qtype = int(qtype)
        self.in_features, self.out_features = in_features, out_features
        self.compute_dtype = compute_dtype
        self.register_buffer("weight_bytes", raw)  # the loaded GGUF bytes themselves: no copy
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach(), requires_grad=False)

    def weight(self) -> torch.Tensor:
        from diffusers.quantizers.gguf.utils import dequantize_functions

        kind = GGMLQuantizationType(self.qtype)
        block_size, type_size = GGML_QUANT_SIZES[kind]
        blocks = self.weight_bytes.reshape(-1, type_size)
        values = dequantize_functions[kind](blocks, block_size, type_size)
        return values.reshape(self.out_features, self.in_features).to(self.compute_dtype)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        bias = self.bias.to(self.compute_dtype) if self.bias is not None else None
        return F.linear(inputs, self.weight(), bias)

    def extra_repr(self) -> str:
        name = GGMLQuantizationType(self.qtype).name
        return f"in_features={self.in_features}, out_features={self.out_features}, qtype={name}"


class KernelGGUFLinear(PlainGGUFLinear):
    """A GGUF linear that dequantizes through ``fluxaudit::gguf_dequantize`` (one Triton kernel)."""

    def weight(self) -> torch.Tensor:
        return torch.ops.fluxaudit.gguf_dequantize(
            self.weight_bytes, self.qtype, self.out_features, self.in_features, self.compute_dtype
        )


@dataclass
class Swap:
    """Which GGUF linears dequantize through the kernels, and which through diffusers' formulas (by type)."""

    kernel: int = 0
    kernel_bytes: int = 0
    plain: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"kernelLinears": self.kernel, "kernelBytes": self.kernel_bytes, "keptLinears": self.plain}


def swap_gguf_linears(model: torch.nn.Module, kernels: bool) -> Swap:
    """Replace every diffusers ``GGUFLinear`` in place: by :class:`KernelGGUFLinear` where ``kernels``
    and the type has one, else by :class:`PlainGGUFLinear` (same bytes, same arithmetic)."""
    from diffusers.quantizers.gguf.utils import GGUFLinear, dequantize_functions

    swap = Swap()
    for name, module in [(n, m) for n, m in model.named_modules() if isinstance(m, GGUFLinear)]:
        weight = module.weight
        qtype = getattr(weight, "quant_type", None)
        if qtype is None or GGMLQuantizationType(int(qtype)) not in dequantize_functions:
            continue  # a float weight diffusers keeps as is: nothing to dequantize, nothing to swap
        qtype = GGMLQuantizationType(int(qtype))
        raw = weight.as_tensor().view(torch.uint8)
        use_kernel = kernels and qtype in gguf_kernels.SUPPORTED
        cls = KernelGGUFLinear if use_kernel else PlainGGUFLinear
        new = cls(raw, qtype, module.out_features, module.in_features, module.bias,
                  module.compute_dtype or torch.float32)  # fmt: skip
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
        if use_kernel:
            swap.kernel += 1
            swap.kernel_bytes += raw.numel()
        else:
            swap.plain[qtype.name] = swap.plain.get(qtype.name, 0) + 1
    return swap


def uncompile(transformer: torch.nn.Module) -> None:
    """Undo :func:`compile_regions`: ``nn.Module.compile`` keeps its compiled call in
    ``_compiled_call_impl`` (there is no public inverse), and dynamo's caches hold the blocks."""
    for module in transformer.modules():
        if getattr(module, "_compiled_call_impl", None) is not None:
            module._compiled_call_impl = None
    torch.compiler.reset()


def compile_regions(transformer: torch.nn.Module, backend: Any = "inductor") -> int:
    """Compile each repeated block class once (diffusers' ``compile_repeated_blocks``), fullgraph,
    so a graph break fails loudly instead of silently running eager.  Returns the blocks compiled."""
    transformer.compile_repeated_blocks(fullgraph=True, backend=backend)  # type: ignore[operator]
    names = set(getattr(transformer, "_repeated_blocks", ()))
    return sum(1 for m in transformer.modules() if type(m).__name__ in names)


def configure_compile_cache(cache_dir: str | os.PathLike[str] | None) -> str | None:
    """Point Inductor's and Triton's on-disk caches at ``cache_dir`` (a volume that outlives
    the pod, in Kubernetes).  Returns the directory in use, None when left at torch's default."""
    if not cache_dir:
        return default_cache_dir()
    root = Path(cache_dir)
    (root / "inductor").mkdir(parents=True, exist_ok=True)
    (root / "triton").mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(root / "inductor")
    os.environ["TRITON_CACHE_DIR"] = str(root / "triton")
    return str(root)


def cache_files(cache_dir: str | None) -> int:
    """Files in the compile cache: how warm it was before a compile, how much it grew after."""
    if not cache_dir or not Path(cache_dir).exists():
        return 0
    return sum(1 for p in Path(cache_dir).rglob("*") if p.is_file())


class FastPathUnavailable(Exception):
    """The spec asks for a part of the fast path this machine cannot run."""


@dataclass(frozen=True)
class Plan:
    """``spec.fastPath`` resolved for this machine, with the reason for each ``auto`` choice."""

    kernels: bool
    compile: bool
    backend: str
    notes: tuple[str, ...]

    def off(self, reason: str) -> Plan:
        """The plan with the fast path off, saying why (an offloaded transformer runs stock)."""
        if not (self.kernels or self.compile):
            return self
        return Plan(kernels=False, compile=False, backend=self.backend, notes=(*self.notes, reason))


def plan(spec: FastPathSpec, device_type: str, triton: bool) -> Plan:
    notes: list[str] = []
    if spec.dequant_kernels == "on" and not triton:
        raise FastPathUnavailable(
            "fastPath.dequantKernels is 'on' but Triton cannot run here (it needs the triton package and a "
            "CUDA GPU): set fastPath.dequantKernels to 'auto' or 'off'"
        )
    kernels = spec.dequant_kernels == "on" or (spec.dequant_kernels == "auto" and triton and device_type == "cuda")
    if spec.dequant_kernels == "auto" and not kernels:
        notes.append("dequant kernels off: " + ("no CUDA GPU" if device_type != "cuda" else "Triton is not installed"))
    compile_ = spec.compile == "regional" or (spec.compile == "auto" and device_type == "cuda")
    if spec.compile == "auto" and not compile_:
        notes.append(
            "compile off on CPU: Inductor's C++ build costs more than it saves here (fastPath.compile: regional forces it)"
        )
    return Plan(kernels=kernels, compile=compile_, backend=spec.compile_backend, notes=tuple(notes))


def default_cache_dir() -> str | None:
    """Where Inductor caches now (its own default when nothing configured it)."""
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir

        return cache_dir()
    except Exception:  # a private helper: if it moved, say nothing rather than guess
        return None


def start_compile_workers(plan: Plan, device_type: str, cache_dir: str | None) -> bool:
    """Start Inductor's compile workers now, while the group loads, instead of at the first compile.

    Inductor starts its worker pool when the first block graph reaches it, and compiles its kernels
    in the main process until the workers are up.  The cache directories are set first: the workers
    read them from the environment they start with.  Returns whether the pool was asked to start."""
    if not (plan.compile and plan.backend == "inductor" and device_type == "cuda"):
        return False
    configure_compile_cache(cache_dir)
    try:
        from torch._inductor.async_compile import maybe_warm_pool
    except ImportError:  # a private helper: if it moved, the first compile starts the pool as before
        return False
    maybe_warm_pool()
    return True


def record_for(plan: Plan) -> FastPath:
    """The record of what the transformer will run with; :func:`apply` carries it out."""
    return FastPath(
        dequant_kernels=plan.kernels,
        compile="regional" if plan.compile else "off",
        compile_backend=plan.backend if plan.compile else None,
        notes=list(plan.notes),
    )


def engaged(record: FastPath) -> bool:
    """Whether the transformer runs anything but stock diffusers."""
    return record.dequant_kernels or record.compile == "regional"


def apply(transformer: torch.nn.Module, record: FastPath, cache_dir: str | None) -> None:
    """Swap in the dequant kernels and compile the blocks, as recorded (the warm-up then compiles)."""
    if engaged(record):
        swap = swap_gguf_linears(transformer, kernels=record.dequant_kernels)
        record.kernel_linears, record.kept_linears = swap.kernel, swap.plain
    if record.compile == "regional":
        record.cache_dir = configure_compile_cache(cache_dir)
        record.cache_files_before = cache_files(record.cache_dir)
        compile_regions(transformer, record.compile_backend or "inductor")


def fall_back_to_eager(transformer: torch.nn.Module, record: FastPath, exc: Exception, label: str) -> None:
    """A compiler failure costs the speed-up, not the audit: run eager and say why in the record."""
    text = "".join(traceback.format_exception_only(exc))
    reason = " ".join(line.strip() for line in text.splitlines() if line.strip())[:300]
    log.warning("regional compile failed on %s, running eager: %s", label, reason)
    uncompile(transformer)
    record.compile, record.compile_backend, record.cache_files_before = "off", None, None
    record.notes.append(f"regional compile failed, ran eager: {reason}")
