"""Write a FLUX transformer state dict as a GGUF file the way public converters do.

Public FLUX GGUF files quantize the 2-D weights of the repeated blocks and keep
the embedders, the final layer and every 1-D tensor in float: diffusers detects
Fill checkpoints from ``img_in``/``x_embedder`` having 384 input channels, so those
must stay readable.  Tensor names here are diffusers' own (see docs/facts.md: the BFL
name converter hard-codes width 3072, so a tiny model cannot use BFL names).
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import torch

from .q5k import quantize_q5_k

QType = gguf.GGMLQuantizationType

#: file-level quant label -> GGML type used for the quantized block weights.
QUANT_TYPES: dict[str, QType] = {
    "Q8_0": QType.Q8_0,
    "Q4_0": QType.Q4_0,
    "Q5_K_S": QType.Q5_K,
}

#: name prefixes that stay unquantized (the BFL img_in/txt_in/time_in/vector_in/
#: guidance_in/final_layer, in diffusers naming).
KEEP_FLOAT_PREFIXES = ("x_embedder.", "context_embedder.", "time_text_embed.", "norm_out.", "proj_out.")


def _quantize(array: np.ndarray, qtype: QType) -> np.ndarray:
    if qtype == QType.Q5_K:
        return quantize_q5_k(array)
    return gguf.quantize(array, qtype)


def tensor_type_for(name: str, array: np.ndarray, qtype: QType) -> QType:
    """The GGML type a tensor is stored as: quantized only where converters quantize."""
    if array.ndim != 2 or name.startswith(KEEP_FLOAT_PREFIXES):
        return QType.F32
    block_size, _ = gguf.GGML_QUANT_SIZES[qtype]
    if array.shape[-1] % block_size:
        return QType.F16
    return qtype


def write_transformer_gguf(state_dict: dict[str, torch.Tensor], quant: str, path: Path) -> dict[str, str]:
    """Write ``state_dict`` quantized as ``quant``; return name -> stored GGML type."""
    qtype = QUANT_TYPES[quant]
    writer = gguf.GGUFWriter(path=None, arch="flux")
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    stored: dict[str, str] = {}
    for name in sorted(state_dict):
        array = state_dict[name].detach().to(torch.float32).cpu().numpy()
        ttype = tensor_type_for(name, array, qtype)
        if ttype == QType.F32:
            writer.add_tensor(name, array)
        elif ttype == QType.F16:
            writer.add_tensor(name, array.astype(np.float16))
        else:
            writer.add_tensor(name, _quantize(array, ttype), raw_dtype=ttype)
        stored[name] = ttype.name
    writer.write_header_to_file(path=path)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return stored


def random_blocks(rows: int, cols: int, qtype: QType, rng: np.random.Generator) -> np.ndarray:
    """Well-formed random blocks of ``qtype`` (weights of magnitude ~0.02): the bytes of
    quants are random, the fp16 scale fields are set so nothing decodes to NaN/Inf.
    Timing does not depend on weight values, so this stands in for a real file at full size."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = rows * cols // block_size
    raw = np.frombuffer(rng.bytes(n_blocks * type_size), dtype=np.uint8).reshape(n_blocks, type_size).copy()
    if qtype == QType.Q8_0:
        scales = {0: 0.02 / 127}
    elif qtype == QType.Q4_0:
        scales = {0: 0.02 / 8}
    elif qtype == QType.Q5_K:
        scales = {0: 0.04 / (63 * 31), 2: 0.02 / 63}  # d and dmin
    else:
        raise ValueError(f"no random block recipe for {qtype.name}")
    for offset, scale in scales.items():
        d = (rng.uniform(0.5, 1.5, n_blocks) * scale).astype(np.float16)
        raw[:, offset : offset + 2] = d.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(rows, cols // block_size * type_size)


def write_random_transformer_gguf(shapes: dict[str, tuple[int, ...]], quant: str, path: Path, seed: int = 0) -> None:
    """A full-size GGUF file with the tensor types a real converter would give, random values."""
    qtype = QUANT_TYPES[quant]
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(path=None, arch="flux")
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for name in sorted(shapes):
        shape = shapes[name]
        probe = (
            np.empty((0,) * len(shape), dtype=np.float32) if len(shape) != 2 else np.empty((1, shape[1]), np.float32)
        )
        ttype = tensor_type_for(name, probe, qtype)
        if ttype in (QType.F32, QType.F16):
            values = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(
                np.float32 if ttype == QType.F32 else np.float16
            )
            writer.add_tensor(name, values)
        else:
            writer.add_tensor(name, random_blocks(shape[0], shape[1], ttype, rng), raw_dtype=ttype)
    writer.write_header_to_file(path=path)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
