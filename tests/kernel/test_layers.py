"""The dependency rule, read from the imports: kernel ← stages ← console.

- the kernel (``mailroom`` without its console modules) imports no stage and no console module:
  it is what every stage shares, and must not grow a way back up;
- a stage (``ingest``, ``unwrap``, ``route``, ``persist``) imports the kernel only — never
  another stage (stages talk through topics) nor the console;
- the console (the operator's surface: the command line, dashboard, operations, demo, local
  stack and doctor) may import anything.

Imports inside functions count too (a lazy import is still a dependency). A violation names the
module, the line and what it imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("ingest", "unwrap", "route", "persist")
# The command line's front door (it finds each sub-command by module name) and the console
# package: the dashboard, operations, demo, local stack and doctor.
CONSOLE = ("mailroom.cli", "mailroom.commands", "mailroom.console")


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    here = module_name(path, root)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def layer(name: str) -> str:
    if within(name, CONSOLE):
        return "console"
    if within(name, ("mailroom",)):
        return "kernel"
    if within(name, STAGES):
        return name.split(".")[0]
    return "outside"


def violations(root: Path = ROOT) -> list[str]:
    out = []
    for top in ("mailroom", *STAGES):
        for path in sorted((root / top).rglob("*.py")):
            source = module_name(path, root)
            mine = layer(source)
            if mine == "console":
                continue
            for line, target in imports(path, root):
                theirs = layer(target)
                if theirs in ("outside", "kernel") or theirs == mine:
                    continue
                out.append(f"{path.relative_to(root)}:{line} ({mine}) imports {target} "
                           f"({theirs})")
    return out


def test_kernel_stages_console() -> None:
    assert violations() == []


def test_the_rule_sees_a_violation(tmp_path: Path) -> None:
    # The checker itself, on a tree of its own: a stage importing another stage and the
    # console, the kernel importing a stage lazily; the console may import a stage.
    assert layer("unwrap.parse") == "unwrap" and layer("mailroom.console.web.app") == "console"
    assert layer("mailroom.codec") == "kernel" and layer("kafka") == "outside"
    (tmp_path / "route").mkdir()
    (tmp_path / "mailroom" / "console" / "web").mkdir(parents=True)
    (tmp_path / "route" / "probe.py").write_text(
        "import persist.apply\nfrom mailroom.console.web import app\n")
    (tmp_path / "mailroom" / "codec.py").write_text("def f():\n    from unwrap import parse\n")
    # The console may import a stage.
    (tmp_path / "mailroom" / "console" / "web" / "app.py").write_text("import ingest.store\n")
    assert violations(tmp_path) == [
        "mailroom/codec.py:2 (kernel) imports unwrap (unwrap)",
        "route/probe.py:1 (route) imports persist.apply (persist)",
        "route/probe.py:2 (route) imports mailroom.console.web (console)",
    ]


def module_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the project modules it imports at module level (what runs at import time).
    ``from package import module`` depends on the module, not on the package's ``__init__``."""
    paths = {module_name(p, root): p
             for top in ("mailroom", *STAGES) for p in (root / top).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                subs = {f"{base}.{a.name}" for a in node.names} & paths.keys()
                deps.update(subs or {base})
        graph[name] = {d for d in deps if d in paths and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_no_import_cycles() -> None:
    assert cycles(module_graph()) == []


def test_a_cycle_is_found(tmp_path: Path) -> None:
    (tmp_path / "unwrap").mkdir()
    (tmp_path / "unwrap" / "a.py").write_text("from unwrap import b\n")
    (tmp_path / "unwrap" / "b.py").write_text("import unwrap.c\n")
    (tmp_path / "unwrap" / "c.py").write_text("from .a import x\n")
    (tmp_path / "unwrap" / "d.py").write_text("def f():\n    from unwrap import a\n")  # lazy
    assert cycles(module_graph(tmp_path)) == [["unwrap.a", "unwrap.b", "unwrap.c"]]
