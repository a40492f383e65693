"""Imports run one way, with the data (docs/ARCHITECTURE.md):

    core <- data <- outputs <- models <- rundir, hf <- training <- run, metrics <- report, serve, cli

A module may import its own layer or any layer below it, never one above, and no import
(at module load or inside a function) may close a circle. The one exception is the
registry's deferred import of the built-in families (the plugin pattern: models register
themselves; nothing imports upward at module load). The check reads the source, so an
import inside a function is caught the same as one at the top; each failure names the
file, the line and the rule it breaks."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"

# Layers, lowest first: (name, module prefixes). A module belongs to the longest prefix that
# it is or lies under; "=genlab" is the package's __init__ alone (the public API).
LAYERS = [
    (
        "core",
        ("genlab.version", "genlab.errors", "genlab.config", "genlab.fsutil", "genlab.registry"),
    ),
    ("data", ("genlab.data",)),
    ("outputs", ("genlab.outputs",)),
    ("models", ("genlab.models",)),
    ("run format and bridges", ("genlab.rundir", "genlab.hf")),
    ("training", ("genlab.training",)),
    ("reading runs", ("genlab.run", "genlab.speech", "genlab.evaluate", "genlab.metrics")),
    (
        "faces",
        (
            "=genlab",
            "genlab.__main__",
            "genlab.report",
            "genlab.serve",
            "genlab.cli",
            "genlab.demo",
            "genlab.demo_audio",
            "genlab.demo_prompts",
        ),
    ),
]
# Siblings in one layer that must not build on each other: the report and the studio are two
# faces on the same runs, and the CLI (which starts either) is above both.
SIBLING_BANS = {
    "genlab.report": (
        "genlab.serve", "genlab.cli", "genlab.demo", "genlab.demo_audio", "genlab.demo_prompts"
    ),
    "genlab.serve": (
        "genlab.report", "genlab.cli", "genlab.demo", "genlab.demo_audio", "genlab.demo_prompts"
    ),
}
# (importer, imported) pairs allowed to point upward, and only inside a function
DEFERRED_ALLOWED = {("genlab.registry", "genlab.models")}


def modules(src: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under ``src``."""
    out = {}
    for p in sorted(src.rglob("*.py")):
        parts = list(p.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def imports(src: Path) -> list[tuple[str, str, int, bool]]:
    """(importer, imported module, line, deferred) for every genlab import under ``src``;
    ``from genlab.x import name`` counts as an import of genlab.x.name when that is a module."""
    mods = modules(src)

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    found = []
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        todo = [(child, False) for child in ast.iter_child_nodes(tree)]
        while todo:
            node, deferred = todo.pop()
            for target in _targets(node, package):
                hit = resolve(target) if target.startswith("genlab") else None
                if hit and hit != mod:
                    found.append((mod, hit, node.lineno, deferred))
            inner = deferred or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            todo += [(child, inner) for child in ast.iter_child_nodes(node)]
    found.sort(key=lambda f: (f[0], f[2], f[1]))
    return found


def _targets(node: ast.AST, package: str) -> list[str]:
    """The dotted names an import statement reaches (relative ones made absolute)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        up = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(up + ([base] if base else []))
    return [f"{base}.{a.name}" for a in node.names] or [base]


def layer_of(module: str) -> tuple[int, str] | None:
    """(rank, prefix) of the longest layer prefix that ``module`` falls under."""
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            exact = p.startswith("=")
            p = p.lstrip("=")
            under = module == p or (not exact and module.startswith(p + "."))
            if under and (best is None or len(p) > len(best[1])):
                best = (rank, p)
    return best


def _banned(importer: str, imported: str) -> bool:
    for side, banned in SIBLING_BANS.items():
        if importer == side or importer.startswith(side + "."):
            return any(imported == b or imported.startswith(b + ".") for b in banned)
    return False


def layering_errors(src: Path) -> list[str]:
    """One line per import against the flow (or of a module no layer names)."""
    errors = []
    for mod in modules(src):
        if layer_of(mod) is None:
            errors.append(
                f"{mod} is in no layer: add it to LAYERS here and to docs/ARCHITECTURE.md"
            )
    for mod, dep, line, deferred in imports(src):
        a, b = layer_of(mod), layer_of(dep)
        if a is None or b is None:
            continue
        where = f"{modules(src)[mod].relative_to(src)}:{line}"
        if b[0] > a[0] and not (deferred and _allowed(mod, dep)):
            errors.append(
                f"{where}: {mod} ({LAYERS[a[0]][0]}) imports {dep} ({LAYERS[b[0]][0]}), "
                "a higher layer: move the shared piece down, or pass it in"
            )
        elif _banned(mod, dep):
            errors.append(
                f"{where}: {mod} imports {dep}; these siblings do not build on each other"
            )
    return errors


def _allowed(mod: str, dep: str) -> bool:
    return any(mod == m and (dep == d or dep.startswith(d + ".")) for m, d in DEFERRED_ALLOWED)


def circles(src: Path) -> list[str]:
    """Each import circle (strongly connected modules, deferred imports included), with the
    import lines that close it; the registry's allowed deferred import is left out."""
    graph: dict[str, dict[str, int]] = {m: {} for m in modules(src)}
    for mod, dep, line, deferred in imports(src):
        if deferred and _allowed(mod, dep):
            continue
        graph[mod].setdefault(dep, line)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[str] = []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append("import circle: " + _shortest_circle(graph, set(comp)))

    for v in graph:
        if v not in index:
            connect(v)
    return out


def _shortest_circle(graph: dict[str, dict[str, int]], members: set[str]) -> str:
    """The shortest way round a set of modules that import each other, from its first
    member: 'a -> b (a's line 3) -> a (b's line 7)'."""
    start = min(members)
    paths = {start: [start]}
    queue = [start]
    while queue:
        here = queue.pop(0)
        for there in sorted(graph[here]):
            if there == start:
                ring = [*paths[here], start]
                steps = [f"{b} ({a}'s line {graph[a][b]})" for a, b in zip(ring, ring[1:])]
                more = f" [{len(members)} modules in all]" if len(members) > len(ring) - 1 else ""
                return " -> ".join([start, *steps]) + more
            if there in members and there not in paths:
                paths[there] = [*paths[here], there]
                queue.append(there)
    raise AssertionError(f"no circle through {start}")


def test_imports_follow_the_data_flow():
    errors = layering_errors(SRC)
    assert not errors, "\n".join(errors)


def test_no_import_circles():
    found = circles(SRC)
    assert not found, "\n".join(found)


def test_the_check_catches_an_upward_import_and_a_circle(tmp_path):
    """The two checks above fail, naming the place, on a tree that breaks each rule."""
    pkg = tmp_path / "genlab"
    for folder in ("data", "training", "serve"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "training" / "loop.py").write_text("x = 1\n")
    (pkg / "data" / "images.py").write_text("def f():\n    from genlab.training.loop import x\n")
    (pkg / "serve" / "a.py").write_text("from genlab.serve import b\n")
    (pkg / "serve" / "b.py").write_text("def g():\n    import genlab.serve.a\n")
    errors = layering_errors(tmp_path)
    assert errors == [
        "genlab/data/images.py:2: genlab.data.images (data) imports genlab.training.loop "
        "(training), a higher layer: move the shared piece down, or pass it in"
    ]
    assert circles(tmp_path) == [
        "import circle: genlab.serve.a -> genlab.serve.b (genlab.serve.a's line 1) "
        "-> genlab.serve.a (genlab.serve.b's line 2)"
    ]


def test_architecture_page_names_every_room():
    """docs/ARCHITECTURE.md's folder map names every top-level module and package, so the
    page a newcomer reads first cannot fall behind the code."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    top = sorted({m.split(".")[1] for m in modules(SRC) if m.count(".") >= 1})
    missing = []
    for name in top:
        is_pkg = (SRC / "genlab" / name).is_dir()
        shown = f"{name}/" if is_pkg else f"{name}.py"
        if not re.search(rf"(?<![\w/]){re.escape(shown)}", text):
            missing.append(shown)
    assert not missing, f"docs/ARCHITECTURE.md does not name {', '.join(missing)}"


# What importing a module loads at run time (the source check above cannot see a third-party
# import that drags a sibling in): one fresh interpreter; genlab's modules are dropped between
# imports (torch stays loaded).
RULES = {
    "genlab.data": ("genlab.models", "genlab.training", "genlab.metrics", "genlab.run"),
    "genlab.registry": ("genlab.training", "genlab.run", "genlab.metrics"),
    "genlab.rundir": ("genlab.training", "genlab.run", "genlab.metrics", "genlab.report"),
    "genlab.run": ("genlab.training", "genlab.metrics", "genlab.report"),
    "genlab.training.trainer": ("genlab.run", "genlab.metrics", "genlab.evaluate"),
    "genlab.hf.gpt2": ("genlab.training", "genlab.run", "genlab.metrics"),
    "genlab.evaluate": ("genlab.training", "genlab.report"),
    "genlab.metrics.protocol": ("genlab.training", "genlab.report"),
    "genlab.report.html": ("genlab.serve", "genlab.cli"),
    "genlab.serve.app": ("genlab.report", "genlab.cli", "genlab.training"),
}
PROBE = """
import importlib, json, sys
import torch  # noqa: F401
out = {}
for module in json.loads(sys.argv[1]):
    for m in [m for m in sys.modules if m == "genlab" or m.startswith("genlab.")]:
        del sys.modules[m]
    importlib.import_module(module)
    out[module] = [m for m in sys.modules if m.startswith("genlab.")]
print(json.dumps(out))
"""


def test_importing_a_layer_loads_nothing_above_it():
    res = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(RULES))],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = json.loads(res.stdout)
    bad = {
        module: sorted(m for m in loaded[module] for p in banned if m == p or m.startswith(p + "."))
        for module, banned in RULES.items()
    }
    assert not any(bad.values()), {k: v for k, v in bad.items() if v}
