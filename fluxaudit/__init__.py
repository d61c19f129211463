"""FluxAudit: reproducible audits of GGUF-quantized FLUX.1-Fill.

This package is the contract the runner and the operator share — the names they
communicate by (``contract``), the error roots (``errors``), the spec model, the
result schema, the run-folder layout, the storage interface and backends, the quality
metrics and the report builder.  It imports neither the runner, the operator, the CLI,
torch nor kopf (``tests/contract/test_boundaries.py``): the operator image stays small.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fluxaudit")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
