"""The installed layout: one ``distilrank`` namespace over three folders: ``core/`` (the root package),
``distill/`` (training) and ``plugin/`` (serving)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import version

import distilrank
from tests.paths import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
FOLDERS = PYPROJECT["tool"]["setuptools"]["package-dir"]
FOLDERS = {folder: package for package, folder in FOLDERS.items()}


def _code_folders() -> set[str]:
    """Every folder under core/, distill/ and plugin/ that holds Python code, as its installed package name."""
    names = set()
    for folder, package in FOLDERS.items():
        for py in (REPO_ROOT / folder).rglob("*.py"):
            rel = py.parent.relative_to(REPO_ROOT / folder).parts
            if rel[:1] == ("opensearch",) or "__pycache__" in rel:
                continue  # the Java plugin's build helpers are not installed
            names.add(".".join((package, *rel)))
    return names


def test_every_code_folder_is_an_installed_package():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert _code_folders() == listed, "pyproject.toml [tool.setuptools] packages must list every folder with code"
    dirs = PYPROJECT["tool"]["setuptools"]["package-dir"]
    for name in listed:  # and each is a regular package (namespace packages are not picked up by the wheel)
        base = max((p for p in dirs if name == p or name.startswith(p + ".")), key=len)  # the longest mapped prefix
        folder = REPO_ROOT.joinpath(dirs[base], *name[len(base):].split(".")[1:])
        assert (folder / "__init__.py").exists(), f"{folder} has no __init__.py"


def test_one_version_from_package_metadata():
    assert distilrank.__version__ == version("distilrank") == PYPROJECT["project"]["version"]
    import distilrank.distill as distill

    assert distill.__version__ == distilrank.__version__


def test_python_dash_m_distilrank_is_the_cli():
    out = subprocess.run([sys.executable, "-m", "distilrank", "--help"], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    from distilrank.cli import build_parser

    listed = {line.split()[0] for line in out.stdout.splitlines() if line.startswith("    ") and line.split()}
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) <= listed, f"python -m distilrank --help does not list {set(sub.choices) - listed}"


def test_no_generic_top_level_names_are_installed():
    out = subprocess.run([sys.executable, "-c", "import importlib.util as u; "
                          "print([m for m in ('distill', 'plugin') if u.find_spec(m)])"],
                         capture_output=True, text=True, cwd="/", check=True)
    assert out.stdout.strip() == "[]"


def test_the_architecture_check_passes():
    """No import cycle, no function over 80 lines, no torch/transformers behind the serving modules."""
    out = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "architecture.py")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "import cycles among" in out.stdout and "torch: no, transformers: no" in out.stdout
