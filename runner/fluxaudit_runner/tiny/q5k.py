"""A numpy Q5_K quantizer.

gguf-py can read K-quants but not write them, and the default audit includes a
Q5_K_S file, so the tiny model needs real Q5_K blocks.  The block layout is the
one ggml and diffusers' ``dequantize_blocks_Q5_K`` read:

    d fp16 | dmin fp16 | 12 bytes of 6-bit scales/mins | qh 32 bytes | qs 128 bytes

A super-block holds 256 values in 8 sub-blocks of 32; value = d*sc*q - dmin*m with
q in 0..31 and sc, m in 0..63.  The scale search is the plain min/max one (not
llama.cpp's iterative ``make_qkx2_quants``): it is a few tenths of a dB worse and
keeps the file deterministic and easy to check against gguf-py's dequantizer.
"""

from __future__ import annotations

import numpy as np

QK_K = 256
SUB = 32
BLOCK_BYTES = 176


def _pack_scales(sc: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """Pack 8 six-bit scales and 8 six-bit mins into the 12-byte K-quant layout."""
    n = sc.shape[0]
    out = np.zeros((n, 12), dtype=np.uint8)
    lo_sc, hi_sc = sc[:, :4], sc[:, 4:]
    lo_mn, hi_mn = mn[:, :4], mn[:, 4:]
    out[:, 0:4] = lo_sc | ((hi_sc >> 4) << 6)
    out[:, 4:8] = lo_mn | ((hi_mn >> 4) << 6)
    out[:, 8:12] = (hi_sc & 0x0F) | ((hi_mn & 0x0F) << 4)
    return out


def quantize_q5_k(data: np.ndarray) -> np.ndarray:
    """Quantize a float array whose last dimension is a multiple of 256.

    Returns uint8 bytes shaped ``(*data.shape[:-1], data.shape[-1] // 256 * 176)``,
    the byte shape gguf-py's writer expects for ``raw_dtype=Q5_K``.
    """
    if data.shape[-1] % QK_K:
        raise ValueError(f"Q5_K needs rows that are a multiple of {QK_K}, got {data.shape[-1]}")
    rows_shape = data.shape[:-1]
    x = np.asarray(data, dtype=np.float32).reshape(-1, QK_K // SUB, SUB)  # (blocks, 8, 32)
    n = x.shape[0]

    # Per sub-block affine range: x ≈ scale * q - mn, q in 0..31, mn >= 0 so min <= 0.
    xmin = np.minimum(x.min(axis=-1), 0.0)
    xmax = x.max(axis=-1)
    scale = (xmax - xmin) / 31.0
    mins = -xmin

    # Six-bit quantization of the sub-block scales and mins against two fp16 super scales.
    d = (scale.max(axis=-1) / 63.0).astype(np.float16)
    dmin = (mins.max(axis=-1) / 63.0).astype(np.float16)
    d32 = d.astype(np.float32)[:, None]
    dmin32 = dmin.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d32 > 0, np.rint(scale / d32), 0)
        mn = np.where(dmin32 > 0, np.rint(mins / dmin32), 0)
    sc = np.clip(sc, 0, 63).astype(np.uint8)
    mn = np.clip(mn, 0, 63).astype(np.uint8)

    eff_scale = (d32 * sc)[..., None]
    eff_min = (dmin32 * mn)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(eff_scale > 0, np.rint((x + eff_min) / eff_scale), 0)
    q = np.clip(q, 0, 31).astype(np.uint8)  # (blocks, 8, 32)

    qs = (q[:, 0::2, :] & 0x0F) | ((q[:, 1::2, :] & 0x0F) << 4)  # (blocks, 4, 32)
    qh = np.zeros((n, SUB), dtype=np.uint8)
    for i in range(QK_K // SUB):
        qh |= ((q[:, i, :] >> 4) & 1) << i

    blocks = np.concatenate(
        [
            d.reshape(n, 1).view(np.uint8),
            dmin.reshape(n, 1).view(np.uint8),
            _pack_scales(sc, mn),
            qh,
            qs.reshape(n, 128),
        ],
        axis=1,
    )
    assert blocks.shape[1] == BLOCK_BYTES
    return blocks.reshape(*rows_shape, -1)
