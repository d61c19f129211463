"""Write a FLUX transformer state dict as a GGUF file the way public converters do.

Public FLUX GGUF files quantize the 2-D weights of the repeated blocks and keep
the embedders, the final layer and every 1-D tensor in float: diffusers detects
Fill checkpoints from ``img_in``/``x_embedder`` having 384 input channels, so those
must stay readable.  Tensor names here are diffusers' own (see NOTES.md: the BFL
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
