"""Publish files into a hand-built Hugging Face hub cache.

The runner resolves models only through ``hf_hub_download`` /
``from_pretrained(<repo id>)``; with ``HF_HUB_OFFLINE=1`` those read this layout:

    $HF_HUB_CACHE/models--ORG--NAME/refs/<revision>      snapshot name, no newline
    $HF_HUB_CACHE/models--ORG--NAME/snapshots/<40 hex>/  the repo's files

so the demo and the tests exercise the production loading path without a network.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path


def repo_cache_dir(hub_cache: Path, repo_id: str) -> Path:
    org, _, name = repo_id.partition("/")
    if not org or not name:
        raise ValueError(f"repo id must look like ORG/NAME, got {repo_id!r}")
    return hub_cache / f"models--{org}--{name}"


def tree_digest(root: Path, content: bool = True) -> str:
    """A 40-hex snapshot name derived from the files' names and bytes (deterministic);
    ``content=False`` hashes names and sizes only, for multi-GB benchmark folders."""
    h = hashlib.sha1()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest() if content else str(path.stat().st_size).encode())
    return h.hexdigest()


def publish_folder(hub_cache: Path, repo_id: str, folder: Path, revision: str = "main", move: bool = False) -> Path:
    """Copy (or, for multi-GB folders, move) ``folder`` as a snapshot of ``repo_id`` and
    point ``refs/<revision>`` at it."""
    repo_dir = repo_cache_dir(hub_cache, repo_id)
    commit = tree_digest(folder, content=not move)
    snapshot = repo_dir / "snapshots" / commit
    if snapshot.exists():
        shutil.rmtree(snapshot)
    if move:
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), snapshot)
    else:
        shutil.copytree(folder, snapshot)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / revision).write_text(commit)
    return snapshot
