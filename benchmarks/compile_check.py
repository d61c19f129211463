"""The compile check alone, at full size, on one GPU under an L4-sized cap: where its seconds go.

    python -m benchmarks.compile_check --root /tmp/full

One Q4_0 group (guidance 2, one repeat, Q4_0 as its own reference so no bf16 weights are built) run
through ``run_group``; prints the compile check's record: ``explain[*].seconds`` is the pipeline's one
trace (the transformer's findings are read from it, ``tracedIn: pipeline``) and the speed-up's forwards the rest.

``--gc plain`` runs the group with CPython's default gen-2 threshold while compiling (the runner defers
full collections then, ``fluxaudit_runner.collector``); each mode compiles cold, into its own cache and
run folder, so two processes, one per mode, compare.  The ``warm_up.done`` and ``compile_check.done``
records carry the collector's seconds either way.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/fluxaudit-full"))
    p.add_argument("--cap-gib", type=float, default=22.0)
    p.add_argument("--profile", type=Path, default=None, help="cProfile the compile check; top functions to this file")
    p.add_argument("--gc", choices=("deferred", "plain"), default="deferred", help="full collections while compiling")
    args = p.parse_args()
    os.environ["HF_HOME"] = str(args.root / "hf-home")  # before huggingface_hub is imported
    os.environ["HF_HUB_OFFLINE"] = "1"
    cache = args.root / f"compile-cache-{args.gc}"
    shutil.rmtree(cache, ignore_errors=True)  # cold, as a fresh pod compiles
    os.environ["FLUXAUDIT_COMPILE_CACHE"] = str(cache)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", stream=sys.stdout, force=True)
    logging.getLogger("fluxaudit").setLevel(logging.INFO)

    import torch

    from benchmarks.default_audit import audit_document
    from benchmarks.full_size_repos import build_repos
    from fluxaudit.spec import parse_document
    from fluxaudit.storage import LocalStorage
    from fluxaudit_runner import collector
    from fluxaudit_runner.group import run_group
    from fluxaudit_runner.tiny.builder import demo_image_and_mask

    print(build_repos(args.root, ["Q4_0"], transformer_weights=False), flush=True)
    image, mask = demo_image_and_mask(1024)
    image.resize((1365, 1024)).save(args.root / "original.jpg", quality=92)
    mask.resize((1365, 1024)).save(args.root / "mask_auto.png")
    doc = audit_document(args.root)
    doc["spec"].update(quants=doc["spec"]["quants"][:1], reference="Q4_0", guidanceScales=[2], repeats=1)
    torch.cuda.set_per_process_memory_fraction(args.cap_gib * 2**30 / torch.cuda.get_device_properties(0).total_memory)
    if args.profile is not None:  # only the compile check: where dynamo's trace of the pipeline spends its time
        _profile_compile_check(args.profile)
    if args.gc == "plain":
        collector.DEFERRED_GEN2_THRESHOLD = gc.get_threshold()[2]
    out = args.root / f"out-{args.gc}"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    partial = run_group(parse_document(doc), "Q4_0", LocalStorage(out))
    print(f"group {time.perf_counter() - start:.1f} s", flush=True)
    print(json.dumps(partial.compile_check.to_json() if partial.compile_check else None, indent=1))
    return 0


def _profile_compile_check(out: Path) -> None:
    import cProfile
    import io
    import pstats

    from fluxaudit_runner import compile_check

    plain = compile_check.run_check

    def profiled(*args, **kwargs):  # type: ignore[no-untyped-def]
        profiler = cProfile.Profile()
        try:
            return profiler.runcall(plain, *args, **kwargs)
        finally:
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(60)
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(40)
            out.write_text(text.getvalue())

    compile_check.run_check = profiled  # group.py calls it through the module
    # `timeout` sends SIGTERM: exit through the finally above, so a cut-short profile is still written
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(124))


if __name__ == "__main__":
    sys.exit(main())
