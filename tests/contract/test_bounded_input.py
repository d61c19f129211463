"""Bounded input (#15), as a user meets it through the CLI: every case gets a clear error naming the
field or file and the fix, the right exit code, no traceback, and nothing stored changes."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from fluxaudit.contract import ExitCode
from fluxaudit.inputs import InputError, resolve
from fluxaudit.limits import MAX_DOCUMENT_NODES, LimitError, count_nodes, read_regular_file
from fluxaudit.spec import InputSpec
from fluxaudit.storage import LocalStorage
from fluxaudit_cli import main

DOC: dict[str, Any] = {
    "apiVersion": "fluxaudit.dev/v1alpha1",
    "kind": "FluxAudit",
    "metadata": {"name": "b"},
    "spec": {"input": {"userId": "u", "sessionId": "s"}},
}


def validate(tmp_path: Path, text: str) -> Any:
    f = tmp_path / "a.yaml"
    f.write_text(text)
    return CliRunner().invoke(main, ["validate", str(f)])


def doc(**spec: Any) -> str:
    d = copy.deepcopy(DOC)
    d["spec"].update(spec)
    return yaml.safe_dump(d)


BOMB = """apiVersion: fluxaudit.dev/v1alpha1
kind: FluxAudit
metadata:
  name: x
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
spec:
  input: {userId: u, sessionId: s}
"""


def test_a_yaml_alias_bomb_is_refused_before_anything_walks_it(tmp_path: Path) -> None:
    res = validate(tmp_path, BOMB)  # 9 levels of 9: 387 million values once expanded
    assert res.exit_code == ExitCode.INVALID_SPEC and "expands to more than 100000 values" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    with pytest.raises(LimitError):
        count_nodes(yaml.safe_load(BOMB))
    assert count_nodes(yaml.safe_load(doc())) < MAX_DOCUMENT_NODES


def test_an_oversized_document_is_refused(tmp_path: Path) -> None:
    res = validate(tmp_path, doc() + "# " + "x" * 1_100_000 + "\n")
    assert res.exit_code == ExitCode.INVALID_SPEC and "more than a FluxAudit document may be" in res.output


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"guidanceScales": ["2"]}, "spec.guidanceScales[0]", "'2' is not a number"),
        ({"steps": True}, "spec.steps", "True is not an integer"),
        ({"quality": {"minPsnrDb": "30"}}, "spec.quality.minPsnrDb", "'30' is not a number"),
        ({"input": {"userId": "u", "sessionId": "s", "imageTemplate": "{userId[99]}/i.jpg"}}, "spec.input.imageTemplate", "unknown placeholder {userId[99]}"),
        ({"input": {"userId": "u", "sessionId": "s", "maskTemplate": "{userId:.0}/m.png"}}, "spec.input.maskTemplate", "{userId:.0} is not allowed"),
        ({"model": {"revision": "../../x"}}, "spec.model.revision", "does not match"),
        ({"guidanceScales": [2.0000001, 2.0000002]}, "spec.guidanceScales", "would both write images named ..._gs2"),
    ],
)  # fmt: skip
def test_refused_with_the_field_named_and_nothing_else(
    tmp_path: Path, spec: dict[str, Any], field: str, message: str
) -> None:
    res = validate(tmp_path, doc(**spec))
    assert res.exit_code == ExitCode.INVALID_SPEC, res.output
    assert f"{field}: " in res.output and message in res.output, res.output
    assert "must not be empty" not in res.output  # no spurious follow-on errors


def test_the_cli_and_the_crd_agree_on_types() -> None:
    """What the CRD's schema refuses, validate refuses (and the reverse for the numbers it takes)."""
    from jsonschema import Draft7Validator

    from fluxaudit.spec import SpecError, parse_document
    from fluxaudit_operator.crd import build_crd

    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for spec, ok in (({"guidanceScales": ["2"]}, False), ({"steps": True}, False), ({"steps": 28}, True),
                     ({"guidanceScales": [2, 3.5]}, True), ({"repeats": "3"}, False)):  # fmt: skip
        full = {"input": {"userId": "u", "sessionId": "s"}, **spec}
        crd_ok = not list(Draft7Validator(schema).iter_errors(full))
        try:
            parse_document({**DOC, "spec": full})
            cli_ok = True
        except SpecError:
            cli_ok = False
        assert crd_ok == cli_ok == ok, (spec, crd_ok, cli_ok)


def test_file_inputs_must_be_regular_files_under_the_limit(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, kind in ((Path("/dev/zero"), "a device"), (fifo, "a FIFO"), (tmp_path, "a directory")):
        with pytest.raises(LimitError, match=kind):
            read_regular_file(path, "input.image")
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 2048)
    with pytest.raises(LimitError, match="more than the 1024"):
        read_regular_file(big, "input.image", limit=1024)
    spec = InputSpec(image="file:///dev/zero", mask=fifo.as_uri())
    with pytest.raises(InputError, match=r"input\.image: .*/dev/zero is a device"):
        resolve(spec, LocalStorage(tmp_path / "o"))


def _png(path: Path, size: tuple[int, int], mode: str = "RGB") -> Path:
    Image.new(mode, size, 255 if mode == "L" else (90, 120, 60)).save(path)
    return path


@pytest.mark.parametrize(
    ("image", "mask", "message"),
    [
        ((1, 1), (1, 1), "shorter side must be at least 64 px"),
        ((12000, 12000), (64, 64), "more than 50 MP"),
        ((640, 480), (480, 640), "another aspect ratio would be stretched"),
        ((640, 480), (640, 481), None),  # same aspect within rounding: resized, as before
    ],
)
def test_image_size_and_mask_aspect(
    tmp_path: Path, image: tuple[int, int], mask: tuple[int, int], message: str | None
) -> None:
    from fluxaudit_runner.errors import GroupInputError
    from fluxaudit_runner.pipeline_inputs import prepare_inputs

    img = _png(tmp_path / "i.png", image).read_bytes()
    msk = _png(tmp_path / "m.png", mask, "L").read_bytes()
    if message is None:
        assert prepare_inputs(img, msk, 256).image.size[0] <= 256
        return
    with pytest.raises(GroupInputError, match=message):
        prepare_inputs(img, msk, 256, ("file:///i.png", "file:///m.png"))
    if "aspect" in message:  # the explicit opt-in resizes it
        resized = prepare_inputs(img, msk, 256, resize_mask=True)
        assert resized.mask.size == resized.image.size


def test_an_unreadable_image_names_its_uri_not_a_buffer() -> None:
    from fluxaudit_runner.errors import GroupInputError
    from fluxaudit_runner.pipeline_inputs import prepare_inputs

    with pytest.raises(GroupInputError) as err:
        prepare_inputs(b"not an image", b"x", 256, ("gs://b/users/u/sessions/s/original.jpg", "m"))
    assert "gs://b/users/u/sessions/s/original.jpg" in str(err.value) and "BytesIO" not in str(err.value)
