"""kopf handlers: each a few lines that hand one FluxAudit to ``Reconciler``.

Run with ``fluxaudit operator`` or ``kopf run -m fluxaudit_operator.handlers``.
Every trigger — creation, operator restart, a Job event, the slow timer, a spec edit —
runs the same idempotent reconcile, so missing one event never loses state.
"""

from __future__ import annotations

from typing import Any

import kopf

from fluxaudit.contract import API_GROUP, LABEL_AUDIT, PLURAL, VERSION

from .config import OperatorConfig
from .reconciler import Reconciler, configure_kopf

AUDITS = (API_GROUP, VERSION, PLURAL)
# Read at import: kopf fixes timer intervals when the handlers are registered.
TIMER_SECONDS = OperatorConfig.from_env().reconcile_seconds


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    memo.reconciler = Reconciler.from_env(logger)
    configure_kopf(settings)
    if memo.reconciler.config.metrics_port:
        memo.reconciler.metrics.serve(memo.reconciler.config.metrics_port)
    if memo.reconciler.config.peering:
        settings.peering.mandatory = True  # several replicas: never run unpeered, even if the object is missing


@kopf.on.create(*AUDITS)
@kopf.on.resume(*AUDITS)
@kopf.on.update(*AUDITS, field="spec")
async def on_audit(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    await memo.reconciler.reconcile(namespace, name)


@kopf.on.timer(*AUDITS, interval=TIMER_SECONDS, initial_delay=TIMER_SECONDS)
async def on_timer(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    await memo.reconciler.reconcile(namespace, name, trigger="timer")


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_AUDIT: kopf.PRESENT})
async def on_job(namespace: str, labels: dict[str, str], type: str | None, memo: kopf.Memo, **_: Any) -> None:
    if type is not None:  # None: the initial listing, already covered by the resume handler
        await memo.reconciler.reconcile(namespace, labels[LABEL_AUDIT], trigger="job")
