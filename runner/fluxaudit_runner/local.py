"""Local mode: every group one after another in this process, then the report.

The same ``run_group`` the Kubernetes Jobs run; the only difference is who
schedules the groups.  Models are released between groups (and the freed memory
recorded), so group N+1 starts from a clean device.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fluxaudit.errors import PermanentError
from fluxaudit.inputs import InputError
from fluxaudit.layout import RunLayout
from fluxaudit.report import BuiltReport, build_report
from fluxaudit.results import Partial, ResumeConflict
from fluxaudit.spec import FluxAudit
from fluxaudit.storage import Storage

from .group import run_group
from .prefetch import Prefetcher

log = logging.getLogger("fluxaudit.runner")

#: errors about the audit's input: every group would hit them, so stop at once.
FATAL_INPUT_ERRORS = (InputError, ResumeConflict)


@dataclass
class AuditOutcome:
    partials: dict[str, Partial | None] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    #: groups that failed on their input (bad GGUF file...): retrying cannot help.
    input_failures: set[str] = field(default_factory=set)
    report: BuiltReport | None = None

    @property
    def ok(self) -> bool:
        return not self.failures


def quiet_libraries() -> None:
    """Keep third-party progress bars and deprecation chatter out of the user's terminal."""
    import diffusers
    import huggingface_hub
    import transformers

    huggingface_hub.utils.logging.set_verbosity_error()
    huggingface_hub.utils.disable_progress_bars()
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    for module in ("diffusers", "transformers", "huggingface_hub", "torch"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        warnings.filterwarnings("ignore", category=UserWarning, module=module)


def run_audit(
    audit: FluxAudit,
    storage: Storage,
    only: Sequence[str] | None = None,
    progress: Callable[[str, Partial], None] | None = None,
    report: bool = True,
    set_aside_corrupt: bool = False,
) -> AuditOutcome:
    layout = RunLayout(audit.spec.storage.prefix, audit.run_id())
    with storage.writer_lock(layout.root) if not only else contextlib.nullcontext():
        return _run_groups(audit, storage, only, progress, report, set_aside_corrupt)


def _run_groups(
    audit: FluxAudit,
    storage: Storage,
    only: Sequence[str] | None,
    progress: Callable[[str, Partial], None] | None,
    report: bool,
    set_aside_corrupt: bool,
) -> AuditOutcome:
    outcome = AuditOutcome()
    labels = list(only) if only else audit.spec.group_labels()
    with Prefetcher() as ahead:
        for i, label in enumerate(labels):
            ahead.wait()
            following = labels[i + 1] if i + 1 < len(labels) else None
            _run_one(audit, label, storage, _progress(ahead, audit, following, label, progress), set_aside_corrupt,
                     outcome)  # fmt: skip
    if report:
        outcome.report = build_report(audit, storage)
    return outcome


def _run_one(
    audit: FluxAudit,
    label: str,
    storage: Storage,
    on_progress: Callable[[Partial], None],
    set_aside_corrupt: bool,
    outcome: AuditOutcome,
) -> None:
    """One group; its failure is recorded in ``outcome`` unless every group would hit it."""
    try:
        outcome.partials[label] = run_group(audit, label, storage, on_progress, set_aside_corrupt)
    except FATAL_INPUT_ERRORS:
        raise
    except PermanentError as exc:  # this group's input (a bad GGUF file, a corrupt partial): no retry helps
        log.error("group %s failed: %s", label, exc)
        outcome.failures[label] = str(exc)
        outcome.input_failures.add(label)
    except Exception as exc:  # one broken group must not cost the others their results
        log.error("group %s failed: %s", label, exc, exc_info=log.isEnabledFor(logging.INFO))
        outcome.failures[label] = f"{type(exc).__name__}: {exc}"


def _progress(
    ahead: Prefetcher,
    audit: FluxAudit,
    following: str | None,
    label: str,
    progress: Callable[[str, Partial], None] | None,
) -> Callable[[Partial], None]:
    """The group's progress callback: passes it on, and once the group has timed a cell in this attempt (its
    own loading is over) starts fetching the next group's weights."""
    seen: list[int] = []

    def on_progress(p: Partial) -> None:
        seen.append(len(p.cells))
        if following is not None and len(p.cells) > seen[0]:
            ahead.start(audit.spec, following)
        if progress:
            progress(label, p)

    return on_progress
