"""Imports point downwards only: ``vlcommon`` is the floor of both systems, neither system imports the other, and
inside each system no module imports a higher layer.

Every ``.py`` under ``llava/``, ``managertower/`` and ``vlcommon/`` is read with ``ast``: imports at any depth (in
functions and ``if TYPE_CHECKING:`` blocks too, since a lazy import is still an arrow) and the string literals given to
``importlib.import_module``. Modules of one layer may import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("llava", "managertower", "vlcommon")
# Which packages each package may import.
ALLOWED = {"vlcommon": {"vlcommon"}, "llava": {"llava", "vlcommon"}, "managertower": {"managertower", "vlcommon"}}

# Lowest first. A module's layer is that of the longest name here it is, or lies under.
LLAVA_LAYERS = (
    ("llava.constants", "llava.variants", "llava.conversation"),
    # The package itself re-exports the model. A module under no more specific name than its package's lands here
    # and fails test_every_module_has_a_layer: a new module is placed on purpose.
    ("llava", "llava.model"),
    ("llava.processing", "llava.mm_utils"),
    # Loading assembles model, tokenizer and image processor. builder stays at LLaVA-NeXT's path
    # (llava.model.builder.load_pretrained_model, which lmms-eval and upstream scripts import), above preprocessing;
    # convert loads through it.
    ("llava.model.builder", "llava.model.convert"),
    ("llava.data",),
    ("llava.train", "llava.eval", "llava.analysis", "llava.tools", "llava.testing", "llava.infer"),
)
MANAGERTOWER_LAYERS = (
    ("managertower.config", "managertower.presets"),
    # The package itself re-exports the config and the model.
    ("managertower", "managertower.model", "managertower.cross", "managertower.managers", "managertower.encoders",
     "managertower.inputs", "managertower.heads", "managertower.objectives", "managertower.pairing"),
    ("managertower.data",),  # Arrow tables, their builders, datasets; answers read the objectives' encoding
    ("managertower.tasks", "managertower.convert", "managertower.evaluate", "managertower.budget",
     "managertower.report", "managertower.testing"),
    ("managertower.train", "managertower.analysis"),
)  # fmt: skip
LAYERS = {"llava": LLAVA_LAYERS, "managertower": MANAGERTOWER_LAYERS}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    _module_name(path): path
    for package in PACKAGES
    for path in sorted((ROOT / package).rglob("*.py"))
    if "__pycache__" not in path.parts
}


def _resolve(base: str, name: str) -> str:
    """``from base import name``: the submodule when ``name`` is one, else ``base``."""
    return f"{base}.{name}" if f"{base}.{name}" in MODULES else base


def imports(module: str, source: str) -> list[tuple[int, str]]:
    """(line, imported module) of every import in ``source``, the code of ``module``."""
    package = module if MODULES.get(module, Path()).name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found += [(node.lineno, _resolve(base, alias.name)) for alias in node.names]
        elif isinstance(node, ast.Call) and _is_import_module(node.func) and _literal(node.args):
            found.append((node.lineno, node.args[0].value))
    return sorted((line, name) for line, name in found if name.split(".")[0] in PACKAGES)


def _literal(args: list[ast.expr]) -> bool:
    return bool(args) and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str)


def _is_import_module(func: ast.expr) -> bool:
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("import_module", "__import__")


def layer(module: str, layers: tuple[tuple[str, ...], ...]) -> tuple[int, str] | None:
    """(layer index, the name that placed it) by the longest matching name, or None outside ``layers``."""
    matches = [(len(name), index, name) for index, names in enumerate(layers) for name in names
               if module == name or module.startswith(name + ".")]  # fmt: skip
    return max(matches)[1:] if matches else None


def _edges():
    for module, path in MODULES.items():
        for line, target in imports(module, path.read_text()):
            yield f"{path.relative_to(ROOT)}:{line}", module, target


def test_vlcommon_is_the_floor_and_the_systems_do_not_import_each_other():
    wrong = [f"{where}: {module} imports {target}" for where, module, target in _edges()
             if target.split(".")[0] not in ALLOWED[module.split(".")[0]]]  # fmt: skip
    assert not wrong, "imports across systems (vlcommon imports neither; llava and managertower only vlcommon):\n" + (
        "\n".join(wrong)
    )


@pytest.mark.parametrize("package", LAYERS)
def test_no_module_imports_a_higher_layer(package):
    layers, wrong = LAYERS[package], []
    for where, module, target in _edges():
        if module.split(".")[0] != package or target.split(".")[0] != package:
            continue
        (low, placed), (high, above) = layer(module, layers), layer(target, layers)
        if high > low:
            wrong.append(f"{where}: {module} (layer {low}, {placed}) imports {target} (layer {high}, {above})")
    order = " < ".join("{" + ", ".join(names) + "}" for names in layers)
    assert not wrong, f"{package} imports pointing upwards (layers: {order}):\n" + "\n".join(wrong)


@pytest.mark.parametrize("package", LAYERS)
def test_every_module_has_a_layer(package):
    unplaced = [
        name for name in MODULES if name.startswith(f"{package}.") and layer(name, LAYERS[package])[1] == package
    ]
    assert not unplaced, f"place these in the layers of {package} (tests/test_layers.py): {unplaced}"


def test_the_scan_sees_lazy_relative_and_string_imports():
    source = (
        "import importlib\n"
        "from . import images\n"
        "from .config import LlavaQwenConfig\n"
        "def f():\n"
        "    from llava.train import recipes\n"
        "    return importlib.import_module('managertower.model')\n"
    )
    assert imports("llava.model.builder", source) == [
        (2, "llava.model.images"),
        (3, "llava.model.config"),
        (5, "llava.train.recipes"),
        (6, "managertower.model"),
    ]
    assert layer("llava.model.builder", LLAVA_LAYERS) == (3, "llava.model.builder")
    assert layer("llava.model.manager", LLAVA_LAYERS) == (1, "llava.model")
