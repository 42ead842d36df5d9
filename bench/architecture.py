"""Evidence about the code's structure that anyone can rerun: layers, import cycles, long functions and files, what
serving imports.

Run: .venv/bin/python bench/architecture.py [--max-lines 80] [--max-file-lines 500]

* layers: the root package ``distilrank`` (``core/``) imports neither half, except the command-line dispatcher
  ``distilrank.cli``, which assembles both command sets; the serving half ``distilrank.plugin`` (``plugin/``) imports
  nothing from the training half ``distilrank.distill`` (``distill/``); training may import both.  Every ``import``
  statement counts, also those inside functions (a lazy import still ties two modules together);
* import cycles between the project's modules: strongly connected components with more than one module;
* the longest functions (lines from ``def`` to the last line of the body), the ones over ``--max-lines`` flagged, and
  the longest source files, the ones over ``--max-file-lines`` flagged;
* the third-party top-level packages that importing the serving modules loads (in a fresh interpreter).

Exit status 1 when a layer rule is broken, there is a cycle, a function or file is over its limit, or torch /
transformers are among the serving imports (``tests/test_packaging.py`` runs it); a package ``__init__`` importing
its own submodules is not a cycle.  ``plugin/opensearch/`` (the Java plugin and its test-fixture writer) is not
part of the installed packages and is not checked.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: source folder -> installed package (pyproject.toml's package-dir)
PACKAGES = {"core": "distilrank", "distill": "distilrank.distill", "plugin": "distilrank.plugin"}
SERVING = ("distilrank.cli", "distilrank.plugin.api", "distilrank.plugin.cli", "distilrank.plugin.local_scoring",
           "distilrank.plugin.abtest.router", "distilrank.plugin.rescore")
#: the one root module allowed to import both halves
DISPATCHER = "distilrank.cli"


def modules() -> dict[str, Path]:
    """Installed module name (``distilrank.x`` for ``core/x.py``, ``distilrank.distill.x``, ...) -> file."""
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[:1] == ("opensearch",):  # the Java plugin's build helpers, not installed
                continue
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            out[".".join((package, *parts))] = path
    return out


def layer(module: str) -> str:
    """``training``, ``serving`` or ``root``."""
    if module == "distilrank.distill" or module.startswith("distilrank.distill."):
        return "training"
    if module == "distilrank.plugin" or module.startswith("distilrank.plugin."):
        return "serving"
    return "root"


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """``a -> b`` for every import that points up: serving -> training, root -> a half (except :data:`DISPATCHER`)."""
    allowed = {"training": {"training", "serving", "root"}, "serving": {"serving", "root"}, "root": {"root"}}
    out = []
    for a, targets in sorted(graph.items()):
        for b in sorted(targets):
            if layer(b) not in allowed[layer(a)] and a != DISPATCHER:
                out.append(f"{a} ({layer(a)}) -> {b} ({layer(b)})")
    return out


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> project modules it imports (resolved to the longest known prefix)."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):  # a package's own __init__ is not an edge back
                    graph[name].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def longest_functions(mods: dict[str, Path], top: int = 10) -> list[tuple[int, str]]:
    rows = []
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                rows.append((node.end_lineno - node.lineno + 1, f"{name}.{node.name} ({path.relative_to(ROOT)}:{node.lineno})"))
    return sorted(rows, reverse=True)[:top]


def longest_files(mods: dict[str, Path], top: int = 5) -> list[tuple[int, str]]:
    rows = [(len(path.read_text(encoding="utf-8").splitlines()), str(path.relative_to(ROOT))) for path in mods.values()]
    return sorted(rows, reverse=True)[:top]


def serving_imports() -> list[str]:
    code = ("import sys\n" + "".join(f"import {m}\n" for m in SERVING)
            + "import json; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    stdlib = set(sys.stdlib_module_names)
    return [m for m in json.loads(out) if m not in stdlib and not m.startswith("_") and m != "distilrank"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-lines", type=int, default=80, help="flag functions longer than this many lines")
    ap.add_argument("--max-file-lines", type=int, default=500, help="flag source files longer than this many lines")
    args = ap.parse_args()
    mods = modules()
    graph = import_graph(mods)
    wrong = layer_violations(graph)
    edges = sum(len(v) for v in graph.values())
    print(f"layers (root <- serving <- training; {DISPATCHER} assembles both): {len(wrong)} imports pointing up, of {edges}")
    for w in wrong:
        print("  " + w)
    found = cycles(graph)
    print(f"import cycles among {len(mods)} modules: {len(found) or 'none'}")
    for c in found:
        print("  " + " <-> ".join(c))
    print(f"longest functions (flag: > {args.max_lines} lines):")
    longest = longest_functions(mods)
    for n, where in longest:
        print(f"  {n:4d} {'!' if n > args.max_lines else ' '} {where}")
    print(f"longest files (flag: > {args.max_file_lines} lines):")
    files = longest_files(mods)
    for n, where in files:
        print(f"  {n:4d} {'!' if n > args.max_file_lines else ' '} {where}")
    third = serving_imports()
    print(f"third-party packages loaded by importing {', '.join(SERVING)}: {', '.join(third)}")
    print(f"  torch: {'YES' if 'torch' in third else 'no'}, transformers: {'YES' if 'transformers' in third else 'no'}")
    return int(bool(wrong) or bool(found) or longest[0][0] > args.max_lines or files[0][0] > args.max_file_lines
               or bool({"torch", "transformers"} & set(third)))


if __name__ == "__main__":
    sys.exit(main())
