from __future__ import annotations

from pathlib import Path

import pytest

from fluxaudit.layout import RunLayout, UnsafePathError, check_relative_path
from fluxaudit.storage import LocalStorage, NotFound


@pytest.mark.parametrize(
    "path",
    ["", "/abs", "a/../b", "..", "a//b", "a/./b", "a\\b", "a/b\x00", "a/\nb", "a/ b", "a/.hidden"],
)
def test_unsafe_paths_rejected(path: str) -> None:
    with pytest.raises(UnsafePathError):
        check_relative_path(path)


def test_layout_paths() -> None:
    lay = RunLayout("audit", "run-1")
    assert lay.image("Q4_0", 2.0, 0) == "audit/run-1/Q4_0_gs2.png"
    assert lay.image("Q4_0", 3.5, 0) == "audit/run-1/Q4_0_gs3.5.png"  # not a clash with gs4
    assert lay.image("Q4_0", 30.0, 7, several_seeds=True) == "audit/run-1/Q4_0_gs30_s7.png"
    assert lay.partial("Q8_0") == "audit/run-1/partials/Q8_0.json"
    assert lay.report_md == "audit/run-1/REPORT.md"
    with pytest.raises(UnsafePathError):
        RunLayout("audit", "../x")


def test_round_trip_list_overwrite(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path)
    s.write_bytes("audit/r/a.png", b"1")
    s.write_json("audit/r/partials/q.json", {"x": 1})
    s.write_bytes("audit/r/a.png", b"2")
    assert s.read_bytes("audit/r/a.png") == b"2"
    assert s.read_json("audit/r/partials/q.json") == {"x": 1}
    assert s.list("audit/r") == ["audit/r/a.png", "audit/r/partials/q.json"]
    assert s.list("audit/none") == []
    assert s.exists("audit/r/a.png") and not s.exists("audit/r/b.png")
    assert s.read_json_or_none("audit/r/partials/missing.json") is None
    with pytest.raises(NotFound):
        s.read_bytes("audit/r/missing")
    with pytest.raises(UnsafePathError):
        s.write_bytes("../escape", b"x")
    assert not (tmp_path.parent / "escape").exists()


def test_failed_write_keeps_old_object(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path)
    s.write_bytes("a/obj.json", b"old")

    with pytest.raises(TypeError):
        s.write_bytes("a/obj.json", object())  # type: ignore[arg-type]
    assert s.read_bytes("a/obj.json") == b"old"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["obj.json"]  # no temp file left behind
