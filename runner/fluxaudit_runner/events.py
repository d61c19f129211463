"""One log record per phase and per cell, with its numbers as fields, so ``kubectl logs`` of a runner pod
says what the group is doing while it runs (a pod's progress bar needs a terminal).

Records go to the ``fluxaudit.runner`` logger with an ``event`` name and a ``fields`` dict in ``extra``;
the CLI's handler renders them as one JSON object per line when stderr is not a terminal.
"""

from __future__ import annotations

import faulthandler
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("fluxaudit.runner")


def emit(event: str, group: str, **fields: Any) -> None:
    """One record; ``fields`` are JSON-able numbers and strings."""
    text = " ".join(f"{k}={_short(v)}" for k, v in fields.items())
    log.info("%s %s %s", group, event, text, extra={"event": event, "fields": {"group": group, **fields}})


@contextmanager
def phase(name: str, group: str, stacks_after: float | None = None, **fields: Any) -> Iterator[dict[str, Any]]:
    """``name`` started, then ``name`` done with its seconds (or failed, with the error's type).  The
    body may add fields to the yielded dict; they go into the closing record.  ``stacks_after``: if the
    phase runs longer, every thread's stack goes to stderr (then again each interval), so a phase that
    stalls in native code (seen once in the compile check on an H200) says where."""
    emit(f"{name}.start", group, **fields)
    extra: dict[str, Any] = {}
    start = time.perf_counter()
    if stacks_after:
        faulthandler.dump_traceback_later(stacks_after, repeat=True, file=sys.stderr)
    try:
        yield extra
    except BaseException as exc:
        emit(f"{name}.failed", group, seconds=round(time.perf_counter() - start, 3), error=type(exc).__name__)
        raise
    finally:
        if stacks_after:
            faulthandler.cancel_dump_traceback_later()
    emit(f"{name}.done", group, seconds=round(time.perf_counter() - start, 3), **fields, **extra)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
