"""Rebuild the stored run the report's golden tests render: ``python -m tests.report.build_fixture``.

A real audit of the tiny model on CPU (three quants, two guidance values, the compile
check), stored under ``fixtures/audit/golden``.  The Q8_0 partial then gets what only a GPU run
records — a CUDA environment, a fast-path record, a measured compile speed-up — so the
GPU-only sections render too; those figures are marked as fixture values here, and no
test treats them as measurements.  Rebuild when the partial schema changes, then
refresh the goldens with ``FLUXAUDIT_UPDATE_GOLDEN=1 pytest tests/report``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
RUN_ID = "golden"
RUN = HERE / "fixtures" / "audit" / RUN_ID

#: GPU-only records for the Q8_0 partial (fixture values, not measurements).
GPU_ENVIRONMENT = {
    "device": "cuda",
    "gpuName": "NVIDIA L4",
    "gpuMemoryBytes": 23_580_639_232,
    "computeCapability": "8.9",
    "driver": "570.86.15",
    "cuda": "12.8",
}
FAST_PATH = {
    "dequantKernels": True,
    "kernelLinears": 12,
    "keptLinears": {"Q5_K": 2},
    "compile": "regional",
    "compileBackend": "inductor",
    "compileSeconds": 18.6,
    "cacheDir": "/cache/torch-compile",
    "cacheFilesBefore": 0,
    "cacheFilesAfter": 41,
    "notes": [],
}
SPEEDUP = {
    "mode": "regional",
    "backend": "inductor",
    "eagerStepSeconds": 0.2411,
    "compiledStepSeconds": 0.1404,
    "compileSeconds": 18.6,
    "speedup": 0.2411 / 0.1404,
    "outputPsnrDb": 58.2,
    "outputMaxAbsDiff": 0.0039,
}


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="fluxaudit-fixture-"))
    os.environ["HF_HOME"] = str(root / "tiny" / "hf-home")
    os.environ["HF_HUB_OFFLINE"] = "1"
    from fluxaudit.spec import parse_document
    from fluxaudit.storage import LocalStorage
    from fluxaudit_runner.local import quiet_libraries, run_audit
    from fluxaudit_runner.tiny.builder import build_tiny_model
    from tests.support.helpers import audit_doc

    quiet_libraries()
    model = build_tiny_model(root / "tiny", seed=0)
    audit = parse_document(audit_doc(model, runId=RUN_ID, compileCheck={"enabled": True, "quant": "Q8_0"}))
    out = root / "out"
    run_audit(audit, LocalStorage(out), report=False)
    run = out / "audit" / RUN_ID
    q8 = run / "partials" / "Q8_0.json"
    partial = json.loads(q8.read_text())
    partial["environment"].update(GPU_ENVIRONMENT)
    partial["environment"]["host"] = "fixture-host"
    partial["fastPath"] = FAST_PATH
    partial["compileCheck"]["speedup"] = SPEEDUP
    q8.write_text(json.dumps(partial, indent=2, sort_keys=True))
    for other in ("Q4_0", "Q5_K_S"):
        path = run / "partials" / f"{other}.json"
        p = json.loads(path.read_text())
        p["environment"]["host"] = "fixture-host"
        path.write_text(json.dumps(p, indent=2, sort_keys=True))
    shutil.rmtree(RUN, ignore_errors=True)
    shutil.copytree(run, RUN)
    shutil.rmtree(root)
    print(f"wrote {RUN}")


if __name__ == "__main__":
    main()
