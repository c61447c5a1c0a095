"""Imports point one way, down the layers: no module imports one above it, and no two modules import each
other (directly or round a circle), counting imports inside functions too; type-only imports (under
`if TYPE_CHECKING:`) are not imports at run time and do not count."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "scalerl"

LAYERS = [
    # the ground: helpers that import no other part of scalerl but these
    ["scalerl.checks", "scalerl.progress", "scalerl.plugins", "scalerl.provenance", "scalerl.flags"],
    # building blocks: records, checkpoints, networks, environments, replay, optimizers
    ["scalerl.logger", "scalerl.checkpoint", "scalerl.nets", "scalerl.envs", "scalerl.replay", "scalerl.optim",
     "scalerl.normalization", "scalerl.evaluation"],
    ["scalerl.hooks.base", "scalerl.video"],
    ["scalerl.diagnostics"],  # measurements, as hooks
    ["scalerl.interventions"],  # resets and episode stops, as hooks, acting on those measurements
    ["scalerl.hooks"],  # the hook registry
    ["scalerl.agents"],
    ["scalerl.config"],
    ["scalerl.session"],
    ["scalerl.loops"],
    ["scalerl.run", "scalerl.probe"],
    ["scalerl.analysis"],
    ["scalerl.cluster"],  # Ray: a local start or a cluster to join
    ["scalerl.sweep", "scalerl.music", "scalerl.presets"],
    ["scalerl.studies"],
    ["scalerl.cli", "scalerl.__main__", "scalerl"],
]


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> int:
    """The layer of the longest listed name that `module` is or lies under."""
    best, index = -1, None
    for level, names in enumerate(LAYERS):
        for name in names:
            within = module == name or (name != "scalerl" and module.startswith(name + "."))
            if within and len(name) > best:
                best, index = len(name), level
    assert index is not None, f"{module} is in no layer: add it to LAYERS"
    return index


def resolve(name: str) -> str | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in MODULES:
            return ".".join(parts[:end])
    return None


def runtime_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    type_only = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            type_only |= {id(child) for child in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("scalerl"):
            for alias in node.names:
                target = resolve(f"{node.module}.{alias.name}") or resolve(node.module)
                found.add(target)
        elif isinstance(node, ast.Import):
            found |= {resolve(alias.name) for alias in node.names if alias.name.startswith("scalerl")}
    return {target for target in found if target}


GRAPH = {module: runtime_imports(path) - {module} for module, path in MODULES.items()}


def test_no_module_imports_a_layer_above_its_own():
    upward = [f"{module} -> {target}" for module, targets in GRAPH.items() for target in targets
              if layer_of(target) > layer_of(module)
              and not (module.startswith(target + ".") or target == "scalerl")]
    assert not upward, upward


def test_no_import_circles():
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(module):  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in GRAPH[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert not circles, circles


def test_music_stays_beside_the_rl_core():
    """ReaLchords uses the session, logger, progress bars and checkpoints, never agents or loops."""
    reaching = [f"{module} -> {target}" for module, targets in GRAPH.items() if module.startswith("scalerl.music")
                for target in targets if target.startswith(("scalerl.agents", "scalerl.loops", "scalerl.run"))]
    assert not reaching, reaching


def test_scalerl_modules_are_imported_at_the_top_of_a_module():
    """An import inside a function hides an edge of the graph above from a reader; scalerl's own modules are
    light to import (matplotlib, Ray and music21 load lazily inside them), so none needs one."""
    inside = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                inside += [f"{module}:{sub.lineno} {sub.module}" for sub in ast.walk(node)
                           if isinstance(sub, ast.ImportFrom) and (sub.module or "").startswith("scalerl")]
    assert not inside, inside
