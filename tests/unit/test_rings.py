"""The rings of docs/ARCHITECTURE.md, enforced: a package imports only the rings below it, only the
plugin imports Locust, and the measurement core does no I/O. Read from the source, so a new import
that breaks the direction fails here before it tangles the tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[2] / "harness"

#: what each ring may import from harness besides itself (lowest ring first)
MAY_IMPORT: dict[str, set[str]] = {
    "measure": set(),
    "protocols": set(),
    "report": {"measure"},
    "net": {"protocols"},
    "providers": {"net", "protocols", "measure"},
    "loop": {"providers", "net", "protocols", "measure"},
    "plugin": {"loop", "providers", "net", "protocols", "measure", "report"},
    "checklist": {"plugin", "providers", "net", "protocols", "measure", "report"},
    "cli": {"checklist", "plugin", "providers", "net", "protocols", "measure", "report"},
}
#: modules the core must not import: it has no I/O, no event loop, no Locust
CORE_FORBIDDEN = {"socket", "ssl", "asyncio", "gevent", "locust", "aiohttp", "psutil", "subprocess", "uvloop"}


def module_name(path: Path) -> str:
    parts = path.relative_to(HARNESS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at top level or inside a function (absolute names)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                parts = module_name(path).split(".")
                kept = parts if path.name == "__init__.py" else parts[:-1]
                base = ".".join(kept[: len(kept) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(p): p for p in sorted(HARNESS.rglob("*.py"))}
GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def ring_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "harness" and parts[1] in MAY_IMPORT else None


def test_every_harness_module_belongs_to_a_ring() -> None:
    stray = [m for m in MODULES if m != "harness" and ring_of(m) is None]
    assert stray == [], f"modules outside every ring: {stray}"


def upward(module: str, imported: set[str]) -> list[str]:
    """The imports of ``module`` that reach a ring it may not import."""
    ring = ring_of(module)
    if ring is None:
        return []
    return sorted(i for i in imported if (to := ring_of(i)) is not None and to != ring and to not in MAY_IMPORT[ring])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    assert upward(module, GRAPH[module]) == [], f"{module} imports a ring it may not"


def test_only_the_plugin_imports_locust() -> None:
    importers = sorted(m for m, imported in GRAPH.items() if any(i.split(".")[0] == "locust" for i in imported))
    assert importers and all(ring_of(m) == "plugin" for m in importers), importers


def test_the_cli_never_loads_locust() -> None:
    """Importing Locust monkey-patches the process with gevent; the ``rtbench`` command must stay plain."""

    loaders = [m for m in MODULES if ring_of(m) == "cli" and _reaches_locust(m, set())]
    assert loaders == [], f"these cli modules import Locust, directly or through harness modules: {loaders}"


def loaded_on_import(path: Path) -> set[str]:
    """The modules importing ``path`` loads: its module-level imports (inside ``if``/``try`` too), not those
    in functions or under ``if TYPE_CHECKING``."""
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, ast.If | ast.Try):
                for part in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, part, []):
                        visit(child.body if isinstance(child, ast.ExceptHandler) else [child])
            elif isinstance(node, ast.Import | ast.ImportFrom):
                found.update(i for i in imports_of_node(path, node))

    visit(ast.parse(path.read_text()).body)
    return found


def imports_of_node(path: Path, node: ast.Import | ast.ImportFrom) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level and path.is_relative_to(HARNESS):
        parts = module_name(path).split(".")
        kept = parts if path.name == "__init__.py" else parts[:-1]
        base = ".".join(kept[: len(kept) - node.level + 1] + ([base] if base else []))
    return {base} | {f"{base}.{alias.name}" for alias in node.names}


def test_no_test_module_loads_locust_when_collected() -> None:
    """pytest imports every test module into one process: one that loads Locust there (its gevent patching,
    after ``ssl`` is imported) breaks the collection of the whole suite. Locust runs in subprocesses."""
    runtime = {name: loaded_on_import(path) for name, path in MODULES.items()}

    def loads_locust(module: str, seen: set[str]) -> bool:
        if module.split(".")[0] == "locust":
            return True
        if module in seen or module not in runtime:
            return False
        seen.add(module)
        package = module.rsplit(".", 1)[0]  # importing a.b.c runs a.b's __init__ first
        return loads_locust(package, seen) or any(loads_locust(i, seen) for i in runtime[module])

    tests = HARNESS.parent / "tests"
    loaders = [
        str(path.relative_to(tests))
        for path in sorted(tests.rglob("*.py"))
        if "node_modules" not in path.parts
        and (path.name.startswith("test_") or path.name == "conftest.py")
        and any(loads_locust(name, set()) for name in loaded_on_import(path))
    ]
    assert loaders == [], f"these test modules load Locust when pytest collects them: {loaders}"


def _reaches_locust(module: str, seen: set[str]) -> bool:
    if module in seen or module not in GRAPH:
        return False
    seen.add(module)
    return any(i.split(".")[0] == "locust" or _reaches_locust(i, seen) for i in GRAPH[module])


def test_the_core_does_no_io() -> None:
    offenders = {
        m: sorted(i for i in imported if i.split(".")[0] in CORE_FORBIDDEN)
        for m, imported in GRAPH.items()
        if ring_of(m) == "measure"
    }
    assert {m: found for m, found in offenders.items() if found} == {}


def test_the_direction_check_can_fail(tmp_path: Path) -> None:
    """A core module importing the loop must be caught (the checker is not vacuous)."""
    bad = tmp_path / "bad.py"
    bad.write_text("def late():\n    from harness.loop.bridge import get_bridge\n")
    assert upward("harness.measure.bad", imports_of(bad)) == ["harness.loop.bridge", "harness.loop.bridge.get_bridge"]
