"""Where a group's weights live while it runs: ``spec.memory`` resolved on this machine, then applied.

``choose`` is the policy (pure): resident when the transformer's weights plus the activation
peak measured on this device, with headroom, fit what the allocator can still hand out; else
block-level group offloading with CUDA streams when two blocks and the rest fit (the blocks
stream in ahead of use); else sequential CPU offload.  ``modelCpuOffload`` is never chosen
automatically — it moves the whole transformer on every call, so it fits only where resident
fits too — but is kept for reproducing a service that calls ``enable_model_cpu_offload()``.

The rest is mechanics: what the weights weigh, the activation probe (the VAE decode and one
block of each kind at the audit's shapes), what is free under the per-process cap
(``torch.cuda.set_per_process_memory_fraction``, how an L4 is stood in for), and diffusers'
own offloading hooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from fluxaudit.results import Placement
from fluxaudit.spec import MemoryMode

from .errors import GroupInputError

#: allocator slack kept free on top of the estimate: fragmentation, cuBLAS workspaces, small tensors.
HEADROOM_BYTES = 768 * 2**20
HEADROOM_FRACTION = 0.05


@dataclass(frozen=True)
class Budget:
    """Bytes the choice weighs (``free`` None: no GPU)."""

    weights: int
    largest_block: int
    outside_blocks: int
    activation: int
    free: int | None
    #: GGUF weights: accelerate's sequential offload hooks fail on diffusers' GGUF parameters
    #: (seen on an H200, diffusers 0.42.1: KeyError in the hook), so group offloading is their floor.
    gguf: bool = False


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def _with_headroom(n: int) -> int:
    return int(n * (1 + HEADROOM_FRACTION)) + HEADROOM_BYTES


def check_available(requested: str, device: torch.device) -> None:
    """Refuse an offload mode on a machine without a GPU, before anything loads."""
    if device.type != "cuda" and requested not in ("auto", "resident"):
        raise GroupInputError(f"spec.memory: {requested} needs a CUDA GPU; set it to auto or resident on this machine")


def choose(requested: str, budget: Budget) -> tuple[MemoryMode, str]:
    """The memory mode for ``requested`` (``spec.memory``) and the reason the partial records."""
    if budget.free is None:
        check_available(requested, torch.device("cpu"))
        return "resident", "no CUDA GPU: weights and activations in host memory"
    if requested == "sequentialCpuOffload" and budget.gguf:
        raise GroupInputError(
            "spec.memory: sequentialCpuOffload does not run GGUF weights (accelerate's hooks fail on diffusers' "
            "GGUF parameters); use groupOffload, which keeps two blocks on the GPU"
        )
    if requested != "auto":
        return requested, f"spec.memory = {requested}"  # type: ignore[return-value]
    resident = _with_headroom(budget.weights + budget.activation)
    if resident <= budget.free:
        return "resident", (
            f"weights {_gib(budget.weights)} + measured activations {_gib(budget.activation)} + headroom = "
            f"{_gib(resident)} fit the {_gib(budget.free)} free"
        )
    streamed = _with_headroom(budget.outside_blocks + 2 * budget.largest_block + budget.activation)
    why = f"weights {_gib(budget.weights)} + activations {_gib(budget.activation)} do not fit the {_gib(budget.free)} free"
    if streamed <= budget.free:
        return "groupOffload", f"{why}; block-level group offloading with CUDA streams needs {_gib(streamed)}"
    if budget.gguf:
        return (
            "groupOffload",
            f"{why}, nor do two blocks streamed ({_gib(streamed)}): group offloading, the least GGUF runs with",
        )
    return "sequentialCpuOffload", f"{why}, nor do two blocks streamed ({_gib(streamed)}): sequential CPU offload"


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers as they are held (quantized bytes for GGUF)."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def block_bytes(transformer: torch.nn.Module) -> tuple[int, int]:
    """(largest repeated block, everything outside the repeated blocks)."""
    blocks = [*transformer.transformer_blocks, *transformer.single_transformer_blocks]
    sizes = [module_bytes(b) for b in blocks]
    return max(sizes), module_bytes(transformer) - sum(sizes)


def free_bytes(device: torch.device) -> int:
    """What the caching allocator can still hand out: the device's free memory plus what it caches
    unused, bounded by the per-process cap."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    allocated = torch.cuda.memory_allocated(index)
    reserved = torch.cuda.memory_reserved(index)
    free_device, total = torch.cuda.mem_get_info(index)
    fraction = (
        torch.cuda.get_per_process_memory_fraction(index)
        if hasattr(torch.cuda, "get_per_process_memory_fraction")
        else 1.0
    )
    return int(min(free_device + reserved - allocated, total * fraction - allocated))


def _peak_over(device: torch.device, run: Any) -> int:
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        run()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - base)


def _vae_decode_peak(pipe: Any, height: int, width: int, device: torch.device) -> int:
    vae = pipe.vae
    latent = torch.zeros(1, vae.config.latent_channels, height // 8, width // 8, device=device, dtype=vae.dtype)
    return _peak_over(device, lambda: vae.decode(latent, return_dict=False))


def _block_peak(block: torch.nn.Module, tokens: tuple[int, int], hidden: int, rotary: Any, dtype: torch.dtype,
                device: torch.device) -> int:  # fmt: skip
    image_tokens, text_tokens = tokens
    x = torch.randn(1, image_tokens, hidden, device=device, dtype=dtype)
    ctx = torch.randn(1, text_tokens, hidden, device=device, dtype=dtype)
    temb = torch.randn(1, hidden, device=device, dtype=dtype)
    block.to(device)
    try:
        return _peak_over(device, lambda: block(x, ctx, temb, image_rotary_emb=rotary))
    finally:
        block.to("cpu")


def measure_activation(
    pipe: Any, transformer: torch.nn.Module, height: int, width: int, text_tokens: int, device: torch.device
) -> int:
    """Peak activation at the audit's shapes, measured on ``device``: the VAE decode (the VAE is there
    already) and one block of each kind moved over for the probe; the larger is the estimate."""
    hidden = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    tokens = ((height // 16) * (width // 16), text_tokens)
    rotary = transformer.pos_embed(torch.zeros(sum(tokens), 3, device=device))
    peaks = [_vae_decode_peak(pipe, height, width, device)]
    for block in (transformer.transformer_blocks[0], transformer.single_transformer_blocks[0]):
        peaks.append(_block_peak(block, tokens, hidden, rotary, pipe.vae.dtype, device))
    torch.cuda.empty_cache()
    return max(peaks)


def budget_for(pipe: Any, transformer: torch.nn.Module, height: int, width: int, text_tokens: int,
               device: torch.device, probe: bool) -> Budget:  # fmt: skip
    """What the choice weighs; ``probe``: measure the activations (only ``auto`` needs them)."""
    largest, outside = block_bytes(transformer)
    gguf = any(hasattr(p, "quant_type") for p in transformer.parameters())
    if device.type != "cuda":
        return Budget(module_bytes(transformer), largest, outside, 0, None, gguf)
    activation = measure_activation(pipe, transformer, height, width, text_tokens, device) if probe else 0
    return Budget(module_bytes(transformer), largest, outside, activation, free_bytes(device), gguf)


def place(pipe: Any, transformer: torch.nn.Module, mode: MemoryMode, device: torch.device) -> None:
    """Put the transformer where ``mode`` says and register it with the pipeline."""
    if mode == "resident":
        transformer.to(device)
        pipe.register_modules(transformer=transformer)
    elif mode == "groupOffload":
        transformer.enable_group_offload(  # type: ignore[operator]
            onload_device=device,
            offload_device=torch.device("cpu"),
            offload_type="block_level",
            num_blocks_per_group=1,
            use_stream=True,
            # pin each block as it streams instead of a pinned copy of every weight up front (24 GB for bf16)
            low_cpu_mem_usage=True,
        )
        pipe.register_modules(transformer=transformer)
    elif mode == "sequentialCpuOffload":
        pipe.register_modules(transformer=transformer)
        pipe.enable_sequential_cpu_offload(device=device)
    else:  # modelCpuOffload: every component moves to the GPU when it is called, as the original service ran
        pipe.register_modules(transformer=transformer)
        pipe.enable_model_cpu_offload(device=device)


def record(requested: str, mode: MemoryMode, reason: str, budget: Budget) -> Placement:
    return Placement(
        mode=mode,
        requested=requested,
        reason=reason,
        weights_bytes=budget.weights,
        activation_bytes=budget.activation if budget.free is not None and budget.activation else None,
        free_bytes=budget.free,
    )
