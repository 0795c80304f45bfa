"""vlcommon.runconfig: typed dataclasses to JSON and back, every value checked against its field, errors naming the
field's path and the file."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from vlcommon import runconfig
from vlcommon.enums import StrEnum


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True, kw_only=True)
class Inner:
    colour: Colour
    sizes: tuple[tuple[int, ...], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Outer:
    rate: float
    steps: int
    name: str = "run"
    flag: bool = False
    inner: Inner | None = None

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"steps={self.steps} must be >= 0")


def test_a_config_survives_json_with_its_types(tmp_path):
    config = Outer(rate=1e-5, steps=3, flag=True, inner=Inner(colour=Colour.BLUE, sizes=((1, 2), (3, 4))))
    path = runconfig.write(tmp_path / "sub" / "run.json", config)
    assert json.loads(path.read_text())["inner"] == {"colour": "blue", "sizes": [[1, 2], [3, 4]]}
    back = runconfig.read(path, Outer)
    assert back == config and back.inner.colour is Colour.BLUE and isinstance(back.inner.sizes[0], tuple)
    assert runconfig.from_dict(Outer, {"rate": 2, "steps": 1}).rate == 2.0, "JSON's 2 is a float field's 2.0"
    assert not list(tmp_path.glob("sub/.*")), "written atomically, no temporary left"


@pytest.mark.parametrize(
    "data,message",
    [
        ({"rate": 1.0}, "steps: missing"),
        ({"rate": 1.0, "steps": 1, "speed": 2}, "speed: unknown field"),
        ({"rate": "fast", "steps": 1}, "rate: expected float, found 'fast'"),
        ({"rate": 1.0, "steps": True}, "steps: expected int, found True"),
        ({"rate": 1.0, "steps": 1, "inner": {"colour": "green"}}, "inner.colour: 'green' is not one of red, blue"),
        ({"rate": 1.0, "steps": 1, "inner": {"colour": "red", "sizes": [[1, "2"]]}}, r"inner.sizes\[0\]\[1\]"),
        ({"rate": 1.0, "steps": -1}, "steps=-1 must be >= 0"),
    ],
)
def test_a_bad_value_names_its_field(data, message):
    with pytest.raises(ValueError, match=message):
        runconfig.from_dict(Outer, data)


def test_a_bad_file_names_the_file(tmp_path):
    path = tmp_path / "run.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=f"--run_config {path}"):
        runconfig.read(path, Outer)
    path.write_text(json.dumps({"rate": 1.0}))
    with pytest.raises(ValueError, match=f"--run_config {path}: steps: missing"):
        runconfig.read(path, Outer)


def test_replace_fields_checks_name_and_type():
    config = Outer(rate=1e-5, steps=3)
    assert runconfig.replace_fields(config, steps=5, inner=Inner(colour="red")).inner.colour is Colour.RED
    with pytest.raises(ValueError, match="recipe.stepz: unknown field"):
        runconfig.replace_fields(config, where="recipe", stepz=5)
    with pytest.raises(ValueError, match="steps: expected int"):
        runconfig.replace_fields(config, steps="5")
