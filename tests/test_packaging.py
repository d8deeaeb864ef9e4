"""The package list in pyproject.toml names every package in the source tree.

setuptools installs only the packages ``[tool.setuptools] packages`` lists: an editable install
finds the others on disk, a wheel (``pip install .``, a release) leaves them out, and the CLI
then fails on its first import. This caught ``saebench.validation``, missing from the list.
"""

from __future__ import annotations

from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _setuptools_table() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _packages_on_disk(package_dir: dict[str, str]) -> set[str]:
    """Every directory with an ``__init__.py`` under each mapped top-level package, as a
    dotted import name."""
    found = set()
    for name, directory in package_dir.items():
        root = ROOT / directory
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root)
            if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
                continue
            found.add(".".join((name, *relative.parts)))
    return found


def test_every_package_on_disk_is_listed_for_the_wheel() -> None:
    table = _setuptools_table()
    listed = set(table["packages"])
    on_disk = _packages_on_disk(table["package-dir"])
    assert on_disk - listed == set(), "packages a wheel would leave out"
    assert listed - on_disk == set(), "listed packages with no __init__.py"


def test_the_check_sees_subpackages() -> None:
    """The walk finds nested packages (so the test above cannot pass vacuously)."""
    on_disk = _packages_on_disk(_setuptools_table()["package-dir"])
    assert {"saebench.cli", "saebench.sae", "saebench.metrics", "saebench.validation"} <= on_disk
    assert "saebench_tasks" in on_disk
