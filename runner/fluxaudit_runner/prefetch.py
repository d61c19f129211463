"""Local mode: the next group's GGUF file made ready while this group sweeps.

One process runs the groups one after another, so the next group's file can be downloaded (a no-op when
the hub cache has it) and read once through sha256 while this group's cells run: the next group then loads
from the page cache and finds its digest already computed (``loading.sha256_file`` remembers digests by
device, inode, size and modification time), instead of reading the file twice more.  It starts only once
this group has loaded (its own disk reads are done) and the next group waits for it, so at most one group's
file is read at a time.  A failure here is not the group's: the group downloads and hashes for itself and
reports what goes wrong.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from fluxaudit.spec import FluxAuditSpec, QuantSpec

from .events import emit
from .loading import download_gguf, sha256_file

log = logging.getLogger("fluxaudit.runner")


class Prefetcher:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gguf-prefetch")
        self._pending: Future[None] | None = None

    def start(self, spec: FluxAuditSpec, quant: QuantSpec) -> None:
        """Fetch and hash ``quant``'s file in the background (once; later calls wait for ``wait``)."""
        if self._pending is None:
            self._pending = self._pool.submit(self._fetch, spec, quant)

    def wait(self) -> None:
        if self._pending is None:
            return
        try:
            self._pending.result()
        except Exception as exc:  # the group itself will download and hash, and say what is wrong
            log.info("prefetch failed (the group fetches for itself): %s", exc)
        self._pending = None

    @staticmethod
    def _fetch(spec: FluxAuditSpec, quant: QuantSpec) -> None:
        start = time.perf_counter()
        path = download_gguf(spec, quant)
        sha256_file(path)
        emit("prefetch.done", quant.label, seconds=round(time.perf_counter() - start, 3), bytes=path.stat().st_size)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.wait()
        self._pool.shutdown(wait=True)
