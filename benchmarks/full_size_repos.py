"""FLUX.1-Fill-dev-shaped random weights in a local hub cache: what the GPU harnesses audit.

The base repo (T5-XXL, CLIP-L, the VAE, the 19 + 38 block transformer config, and with
``transformer_weights`` its 23.8 GB of bf16 weights) and full-size GGUF files of well-formed random
blocks, published under ``root/hf-home/hub``.  Timing does not depend on weight values.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

BASE_REPO, GGUF_REPO = "fluxaudit-bench/FLUX.1-Fill-full", "fluxaudit-bench/FLUX.1-Fill-full-GGUF"


def gguf_file(quant: str) -> str:
    return f"flux1-fill-full-{quant}.gguf"


def build_repos(
    root: Path, quants: list[str], transformer_weights: bool = False, weights_dir: Path | None = None
) -> tuple[dict[str, float], int]:
    """Build both repos under ``root`` (emptied first); return the seconds of each part ("baseRepo",
    "gguf{Q}") and the transformer's parameter count.  ``weights_dir``: where the bf16 shards go (a RAM
    disk, when the machine's disk is short), linked from the snapshot."""
    import torch

    from fluxaudit_runner.tiny.builder import FULL, save_base_repo
    from fluxaudit_runner.tiny.gguf_export import write_random_transformer_gguf
    from fluxaudit_runner.tiny.hubcache import publish_folder

    seconds: dict[str, float] = {}
    hub = root / "hf-home" / "hub"
    staging = root / "staging"
    shutil.rmtree(root, ignore_errors=True)
    staging.mkdir(parents=True)
    t0 = time.perf_counter()
    transformer = save_base_repo(
        staging / "base", seed=0, arch=FULL, device="cuda", transformer_weights=transformer_weights
    )
    shapes = {k: tuple(v.shape) for k, v in transformer.state_dict().items()}
    params = sum(v.numel() for v in transformer.state_dict().values())
    del transformer
    torch.cuda.empty_cache()
    if weights_dir is not None:
        weights_dir.mkdir(parents=True, exist_ok=True)
        for shard in (staging / "base" / "transformer").glob("*.safetensors"):
            target = weights_dir / shard.name
            shutil.move(str(shard), target)
            shard.symlink_to(target)
    publish_folder(hub, BASE_REPO, staging / "base", move=True)
    seconds["baseRepo"] = time.perf_counter() - t0
    (staging / "gguf").mkdir()
    for q in quants:
        t1 = time.perf_counter()
        write_random_transformer_gguf(shapes, q, staging / "gguf" / gguf_file(q))
        seconds[f"gguf{q}"] = time.perf_counter() - t1
    publish_folder(hub, GGUF_REPO, staging / "gguf", move=True)
    return seconds, params
