"""The roots of FluxAudit's error hierarchy: whether retrying can help is a type, not a string.

Each concrete error lives beside the code that raises it (``spec.SpecError``,
``storage.base.StorageUnavailable``, ``inputs.InputError`` …) and is imported from
there; callers that only need to know *what to do* catch these roots:

- :class:`PermanentError` — the input, the credentials or the stored run cannot work
  as they are: the CLI exits ``ExitCode.BAD_INPUT`` and a Job fails without retrying;
- :class:`TransientError` — an outage or a race: the CLI exits ``ExitCode.GROUPS_FAILED``
  and the Job (or the operator's next pass) tries again.
"""

from __future__ import annotations


class FluxAuditError(Exception):
    """Every error FluxAudit raises on purpose; its message names the field, file or object."""


class PermanentError(FluxAuditError):
    """Retrying cannot help: the message says what to fix."""


class TransientError(FluxAuditError):
    """Something outside FluxAudit failed for now: retrying may pass."""
