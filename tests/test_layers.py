"""The import graph, built from the source: dependencies point one way
(`tools, cli, http -> engine -> scheduling -> providers, store`), the edges come in through the engine only,
and no module outside server/store/ runs SQL or handles a connection itself."""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import treedistill.server
import treedistill.tools

SERVER = Path(treedistill.server.__file__).parent
TOOLS = Path(treedistill.tools.__file__).parent

# The layer of each part of the package (the longest matching prefix wins); the rest of server/ is the engine layer
# (engine.py and the modules it delegates to, export/ among them). Names are relative to `treedistill`.
LAYERS = {
    "tools": "edge", "server.cli": "edge", "server.http": "edge", "server.ui": "edge", "server.app": "edge",
    "server.stdio": "edge", "__main__": "edge",
    "server.scheduling": "scheduling",
    "server.pricing": "scheduling",  # what a call costs: read by the paid-call path, so it sits with it
    "server.providers": "providers",
    "server.store": "store",
    "server.models": "base", "server.errors": "base", "server.config": "base",
    "server.text": "base",
    # models of one feature each, the event-loop sharing helper the paid-call path uses, and the collector's freeze
    # that follows the providers' SDK imports
    "server.push_models": "base", "server.dialogue_models": "base", "server.loop_share": "base", "server.heap": "base",
}
MAY_IMPORT = {
    "edge": {"edge", "engine", "base"},  # the front door: tools, CLI and HTTP reach the rest through the engine
    "engine": {"engine", "scheduling", "providers", "store", "base"},
    "scheduling": {"scheduling", "providers", "store", "base"},
    "providers": {"providers", "base"},
    "store": {"store", "base"},
    "base": {"base"},
}
SQL_CALLS = {"execute", "executemany", "executescript", "connect"}
SQL_WORDS = ("SELECT ", "INSERT ", "UPDATE ", "DELETE FROM", "CREATE ", "PRAGMA ", "ALTER TABLE", "DROP ", "WITH ")


@dataclass(frozen=True)
class Module:
    name: str  # relative to the treedistill package: "server.store.catalog", "tools.jobs"
    tree: ast.Module

    @property
    def layer(self) -> str:
        return layer_of(self.name)


def layer_of(name: str) -> str:
    """The layer of a module; the package itself (`treedistill`, its version) and `treedistill.server` are base."""
    parts = name.split(".")
    for size in range(len(parts), 0, -1):
        if ".".join(parts[:size]) in LAYERS:
            return LAYERS[".".join(parts[:size])]
    return "engine" if parts[0] == "server" and len(parts) > 1 else "base"


@functools.cache
def modules() -> tuple[Module, ...]:
    """Every module of the package, parsed (server/package_root/ is the `treedistill` package itself)."""
    found = []
    for prefix, root in (("server", SERVER), ("tools", TOOLS), ("", SERVER / "package_root")):
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if prefix == "server" and parts[0] == "package_root":
                continue
            name = ".".join(filter(None, (prefix, *(parts[:-1] if parts[-1] == "__init__" else parts))))
            found.append(Module(name, ast.parse(path.read_text(encoding="utf-8"), str(path))))
    return tuple(found)


def imports(module: Module, known: set[str]) -> set[str]:
    """The treedistill modules `module` imports (relative to the package), `from x import y` as x.y when y is one."""
    names: set[str] = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "treedistill":
            base = node.module.removeprefix("treedistill").lstrip(".")
            names.add(base)
            names.update(f"{base}.{alias.name}".lstrip(".") for alias in node.names
                         if f"{base}.{alias.name}".lstrip(".") in known)
        elif isinstance(node, ast.Import):
            names.update(alias.name.removeprefix("treedistill").lstrip(".") for alias in node.names
                         if alias.name.split(".")[0] == "treedistill")
    return names


def layer_violations(found: tuple[Module, ...] | list[Module]) -> list[str]:
    known = {module.name for module in found}
    return sorted(f"{module.name} ({module.layer}) imports {target} ({layer_of(target)})"
                  for module in found for target in imports(module, known)
                  if layer_of(target) not in MAY_IMPORT[module.layer])


def sql_outside_store(found: tuple[Module, ...] | list[Module]) -> list[str]:
    """Calls that run SQL or open a connection, a connection handled by hand, and SQL text, outside server/store/."""
    problems = []
    for module in found:
        if module.layer == "store":
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS:
                problems.append(f"{module.name}:{node.lineno} calls .{node.func.attr}()")
            elif isinstance(node, ast.Attribute) and node.attr == "conn":
                problems.append(f"{module.name}:{node.lineno} uses a connection (.conn)")
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and node.value.lstrip().upper().startswith(SQL_WORDS) and node.value.lstrip()[:1].isupper()
                  and node.value.lstrip().split()[0].isupper()):
                problems.append(f"{module.name}:{node.lineno} holds SQL text {node.value.strip()[:40]!r}")
    return sorted(problems)


def engine_parts_reached(found: tuple[Module, ...] | list[Module]) -> list[str]:
    """Places where a tool reaches past the Engine's methods: `engine.part.method`, `engine_of(ctx).part...`, or
    `engine._private`."""
    problems = []
    for module in found:
        if not module.name.startswith("tools"):
            continue
        parents = _parents(module.tree)
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.Attribute):
                continue
            inner = node.value
            is_engine = ((isinstance(inner, ast.Name) and inner.id == "engine")
                         or (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name)
                             and inner.func.id == "engine_of"))
            if not is_engine:
                continue
            if node.attr.startswith("_"):
                problems.append(f"{module.name}:{node.lineno} engine.{node.attr}")
            parent = parents.get(node)
            called = isinstance(parent, ast.Call) and parent.func is node
            if not called:
                problems.append(f"{module.name}:{node.lineno} engine.{node.attr} (not an Engine method call)")
    return sorted(problems)


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def test_dependencies_point_one_way():
    found = modules()
    assert len(found) > 100 and {module.layer for module in found} == set(MAY_IMPORT)
    assert layer_violations(found) == []


def test_no_sql_outside_the_store():
    assert sql_outside_store(modules()) == []


def test_tools_call_engine_methods_only():
    assert engine_parts_reached(modules()) == []


def _module(name: str, source: str) -> Module:
    return Module(name, ast.parse(source))


def test_the_checks_see_an_edge_added_against_the_direction():
    """Each check fails when one bad line is added (the same functions as above, on a module made up here)."""
    found = modules()
    assert layer_violations([*found, _module("server.store.extra", "from treedistill.server.engine import Engine")]) \
        == ["server.store.extra (store) imports server.engine (engine)"]
    assert layer_violations([*found, _module("server.cli.extra", "from treedistill.server.store.queue import "
                                                                  "WorkQueue")]) \
        == ["server.cli.extra (edge) imports server.store.queue (store)"]
    assert layer_violations([*found, _module("server.scheduling.extra", "import treedistill.tools.jobs")]) \
        == ["server.scheduling.extra (scheduling) imports tools.jobs (edge)"]
    assert layer_violations([*found, _module("server.providers.extra", "from treedistill.server.store import x")]) \
        == ["server.providers.extra (providers) imports server.store (store)"]
    assert sql_outside_store([_module("server.extra", "def f(store):\n    store.db.execute('PRAGMA optimize')\n"
                                                      "    store.db.conn.close()\n")]) \
        == ["server.extra:2 calls .execute()", "server.extra:2 holds SQL text 'PRAGMA optimize'",
            "server.extra:3 uses a connection (.conn)"]
    assert engine_parts_reached([_module("tools.extra", "async def t(ctx):\n"
                                                        "    return engine_of(ctx).judging.score_answers(1)\n")]) \
        == ["tools.extra:2 engine.judging (not an Engine method call)"]
