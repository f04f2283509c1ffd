"""The architecture holds: the import contracts of pyproject.toml (import-linter), every module
placed in a layer, no module over 600 lines (docs/architecture.md), and the tests named after
what they test."""

import fnmatch
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "stackview"
MAX_LINES = 600
#: modules others are splitting now (issue 21); nothing else may pass the limit
TEMPORARY_EXCEPTIONS = (
    "stackview/gui/**",
    "stackview/inference/spm.py",
    "stackview/materials/**",
    "stackview/core/**",
)


def _contracts() -> list[dict]:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["tool"]["importlinter"]["contracts"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer_modules(layer: str) -> list[str]:
    return [m.strip() for m in layer.replace("|", ":").split(":") if m.strip()]


def test_import_contracts_are_kept():
    importlinter = pytest.importorskip("importlinter.cli")
    code = importlinter.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True,
                                     no_logo=True)
    assert code == 0, "an import contract is broken: run 'lint-imports' for the chains"


def test_every_module_has_a_layer():
    """A new module must be placed in the layers contract (or be a package's ``__init__``
    holding no code of its own, or a subcommand module, which belongs to the CLI)."""
    layers = next(c for c in _contracts() if c["name"].startswith("Layers:"))["layers"]
    placed = [m for layer in layers for m in _layer_modules(layer)]
    # packages whose modules sit in different layers: only their __init__ is outside
    split = {"stackview", "stackview.engine", "stackview.inference", "stackview.io"}
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        if name in split or name.endswith(".commands"):
            continue
        if name == "stackview.__main__":
            continue
        if not any(name == p or name.startswith(p + ".") for p in placed):
            missing.append(name)
    assert missing == []


def test_the_layer_check_would_see_an_upward_import(tmp_path):
    """The contract is not vacuous: the same layers with one known upward import reversed
    (analysis imports inference) are broken."""
    importlinter = pytest.importorskip("importlinter.cli")
    layers = next(c for c in _contracts() if c["name"].startswith("Layers:"))["layers"]
    pos = {m: i for i, layer in enumerate(layers) for m in _layer_modules(layer)}
    assert pos["stackview.analysis"] < pos["stackview.inference.spm"]  # analysis is above
    swapped = list(layers)
    i, j = pos["stackview.analysis"], pos["stackview.datasets"]
    swapped[i], swapped[j] = swapped[j], swapped[i]
    body = "\n".join(f'    "{layer}",' for layer in swapped)
    config = tmp_path / "contracts.toml"
    config.write_text('[tool.importlinter]\nroot_package = "stackview"\n\n'
                      '[[tool.importlinter.contracts]]\nname = "swapped"\ntype = "layers"\n'
                      f'layers = [\n{body}\n]\n'
                      'ignore_imports = ["stackview.*.commands -> stackview.**"]\n',
                      encoding="utf-8")
    assert importlinter.lint_imports(config_filename=str(config), no_cache=True,
                                     no_logo=True) == 1


def test_no_module_over_600_lines():
    too_long = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if any(fnmatch.fnmatch(rel, pattern) for pattern in TEMPORARY_EXCEPTIONS):
            continue
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES:
            too_long[rel] = n
    assert too_long == {}



#: test files about the repository rather than a package: its folders, and this file
REPOSITORY_TOPICS = ("architecture", "benchmarks", "packaging")


def test_tests_mirror_the_package_layout():
    """Test files are named ``tests/test_<package>[_<module or topic>].py`` after the part of
    ``stackview`` they test (``test_inference_spm.py`` for ``stackview/inference/spm.py``,
    ``test_gui_wizard.py`` for ``stackview/gui/wizard/``, ``test_cli.py`` for
    ``stackview/cli.py``), or after a repository folder (``test_packaging_wheel.py``); helper
    modules carry no ``test_`` prefix. Every package has at least one test file. (Loose: what
    follows the package is a module or a topic, unchecked.)"""
    packages = sorted(p.name for p in PACKAGE.iterdir()
                      if (p / "__init__.py").is_file() and p.name != "resources")
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    prefixes = sorted(packages + modules + list(REPOSITORY_TOPICS), key=len, reverse=True)
    owner = {}
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        name = path.stem[len("test_"):]
        owner[path.name] = next((p for p in prefixes if name == p or name.startswith(p + "_")),
                                None)
    unplaced = [name for name, package in owner.items() if package is None]
    assert unplaced == [], (f"name these after the stackview package they test, "
                            f"tests/test_<package>_<module>.py (packages: {packages})")
    assert sorted(set(packages) - set(owner.values())) == []  # every package has tests
