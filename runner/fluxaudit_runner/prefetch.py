"""Local mode: the next group's weights made ready while this group sweeps.

One process runs the groups one after another, so the next group's files — its GGUF file, or the bf16
reference's safetensors shards — can be downloaded (a no-op when the hub cache has them) and read once
through sha256 while this group's cells run: the next group then loads from the page cache and finds the
digests already computed (``loading.sha256_file`` remembers digests by device, inode, size and
modification time), instead of reading the files twice more (measured on the H200: 52.6 s of loading
in the first run of BENCHMARKS.md §8.9, which skipped this).  It starts only once
this group has loaded (its own disk reads are done) and the next group waits for it, so at most one group's
file is read at a time.  A failure here is not the group's: the group downloads and hashes for itself and
reports what goes wrong.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from fluxaudit.spec import UNQUANTIZED, FluxAuditSpec

from .events import emit
from .loading import download_gguf, download_reference, sha256_file

log = logging.getLogger("fluxaudit.runner")


class Prefetcher:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="weights-prefetch")
        self._pending: Future[None] | None = None

    def start(self, spec: FluxAuditSpec, label: str) -> None:
        """Fetch and hash group ``label``'s files in the background (once; later calls wait for ``wait``)."""
        if self._pending is None:
            self._pending = self._pool.submit(self._fetch, spec, label)

    def wait(self) -> None:
        if self._pending is None:
            return
        try:
            self._pending.result()
        except Exception as exc:  # the group itself will download and hash, and say what is wrong
            log.info("prefetch failed (the group fetches for itself): %s", exc)
        self._pending = None

    @staticmethod
    def _fetch(spec: FluxAuditSpec, label: str) -> None:
        start = time.perf_counter()
        paths = download_reference(spec) if label == UNQUANTIZED else [download_gguf(spec, spec.quant(label))]
        for path in paths:
            sha256_file(path)
        size = sum(p.stat().st_size for p in paths)
        emit("prefetch.done", label, seconds=round(time.perf_counter() - start, 3), bytes=size)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.wait()
        self._pool.shutdown(wait=True)
