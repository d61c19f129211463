"""Pin a release into the chart: its version and appVersion, and both images by registry path and digest.

    python3 tools/pin_chart.py --version 0.2.0 --operator ghcr.io/o/operator --operator-digest sha256:… \
        --runner ghcr.io/o/runner --runner-digest sha256:…

Edits Chart.yaml and values.yaml line by line, so values.yaml keeps its comments (they are the chart's
documentation).  Used by .github/workflows/release.yml; tests/operator/test_release.py renders the result.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

CHART = Path(__file__).resolve().parents[1] / "charts" / "fluxaudit"
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
VERSION = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")


def set_image(values: str, section: str, repository: str, tag: str, digest: str) -> str:
    """Set ``{section}.image.{repository,tag,digest}`` in the values text (two-space indentation)."""
    lines = values.split("\n")
    start = lines.index(f"{section}:")
    image = next(i for i in range(start + 1, len(lines)) if lines[i] == "  image:")
    found = set()
    for i in range(image + 1, len(lines)):
        if not lines[i].startswith("    ") and lines[i].strip():
            break
        for key, value in (("repository", repository), ("tag", tag), ("digest", digest)):
            if lines[i].startswith(f"    {key}:"):
                lines[i] = f'    {key}: "{value}"'
                found.add(key)
    if found != {"repository", "tag", "digest"}:
        raise SystemExit(f"values.yaml: {section}.image lacks {sorted({'repository', 'tag', 'digest'} - found)}")
    return "\n".join(lines)


def pin(chart: Path, version: str, images: dict[str, tuple[str, str]]) -> None:
    if not VERSION.match(version):
        raise SystemExit(f"--version {version}: not a semantic version (the tag without its v)")
    for section, (_, digest) in images.items():
        if not DIGEST.match(digest):
            raise SystemExit(f"--{section}-digest {digest!r}: not a sha256:… digest")
    meta = chart / "Chart.yaml"
    text = re.sub(r"(?m)^version: .*$", f"version: {version}", meta.read_text())
    meta.write_text(re.sub(r"(?m)^appVersion: .*$", f'appVersion: "{version}"', text))
    values = (chart / "values.yaml").read_text()
    for section, (repository, digest) in images.items():
        values = set_image(values, section, repository, version, digest)
    (chart / "values.yaml").write_text(values)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chart", type=Path, default=CHART)
    p.add_argument("--version", required=True)
    for name in ("operator", "runner"):
        p.add_argument(f"--{name}", required=True, help=f"{name} image repository")
        p.add_argument(f"--{name}-digest", required=True)
    a = p.parse_args()
    pin(a.chart, a.version, {"operator": (a.operator, a.operator_digest), "runner": (a.runner, a.runner_digest)})


if __name__ == "__main__":
    main()
