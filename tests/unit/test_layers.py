"""The package's imports point one way: cli -> managed -> client -> {transport, solvers} ->
{jws, keys, csr, names} -> models -> errors, with no cycle (docs: ../shared/STYLE.md).

Every ``import`` in ``acmelite/`` (at the top of a module or inside a function, which is
how the CLI stays fast to start) is read with ``ast`` and checked against the layer table
below: a module may import only from its own layer or the ones beneath it, and the graph of
modules has no cycle. A new module must be placed in the table, so its place is a decision.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "acmelite"

#: Lowest first. A module's layer is that of its longest listed prefix.
LAYERS: list[tuple[str, ...]] = [
    (
        "acmelite.errors",
        "acmelite.constants",
        "acmelite._version",
        "acmelite._hookenv",
        "acmelite.text",
    ),
    ("acmelite.models",),
    ("acmelite.storage",),
    (
        "acmelite.names",
        "acmelite.keys",
        "acmelite.challenges",
        "acmelite.renewal",
        "acmelite.persist",
        "acmelite.origin",
        "acmelite.breaker",
    ),
    ("acmelite.validation",),
    ("acmelite.jws", "acmelite.csr", "acmelite.trust", "acmelite.tlsprobe"),
    (
        "acmelite.transport",
        "acmelite.http",
        "acmelite.deploy",
        "acmelite.dns",
        "acmelite.diagnose",
    ),
    ("acmelite.solvers", "acmelite.verify"),
    ("acmelite.accounts", "acmelite.client"),
    ("acmelite.account_store", "acmelite.config", "acmelite.index"),
    ("acmelite.client_pool",),
    ("acmelite.issuance",),
    ("acmelite.managed",),
    ("acmelite.inventory", "acmelite.fleet"),
    ("acmelite.metrics",),
    ("acmelite.cli", "acmelite.testing", "acmelite.__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    best, found = -1, None
    for index, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), index
    if found is None:
        pytest.fail(f"{module} is in no layer of tests/unit/test_layers.py: place it")
    return found


def imports(path: Path) -> set[str]:
    """The acmelite modules ``path`` imports (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("acmelite")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith("acmelite"):
                continue
            for alias in node.names:  # "from . import csr" imports the module acmelite.csr
                candidate = f"{target}.{alias.name}"
                if (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists():
                    found.add(candidate)
                else:
                    found.add(target)
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {m for m in imports(path) if m in modules}
        for name, path in modules.items()
        if name != "acmelite"  # the lazy public API re-exports from everywhere
    }


def test_every_import_points_down() -> None:
    wrong = []
    for module, targets in sorted(graph().items()):
        for target in sorted(targets):
            if target == "acmelite" or target.startswith("acmelite._version"):
                continue
            if layer_of(target) > layer_of(module):
                wrong.append(f"{module} (layer {layer_of(module)}) imports {target}"
                             f" (layer {layer_of(target)})")  # fmt: skip
    assert wrong == []


def test_no_import_cycle_between_packages_or_modules() -> None:
    edges = graph()

    def unit(module: str) -> str:  # a subpackage counts as one node, as Python imports it
        parts = module.split(".")
        return ".".join(parts[:2]) if len(parts) > 2 else module

    nodes: dict[str, set[str]] = {}
    for module, targets in edges.items():
        nodes.setdefault(unit(module), set()).update(
            unit(t) for t in targets if unit(t) != unit(module) and t != "acmelite"
        )
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(nodes.get(node, ())):
            if state.get(nxt) == 1:
                cycle.extend([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(nodes):
        if node not in state:
            visit(node, [node])
    assert cycle == [], " -> ".join(cycle)


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("acmelite.client", "acmelite.solvers"),  # the client knows the protocol, no solver
        ("acmelite.accounts", "acmelite.solvers"),
        ("acmelite.solvers", "acmelite.client"),  # solvers never import the client
        ("acmelite.dns", "acmelite.solvers"),  # the DNS machinery is below the solvers
        ("acmelite.managed", "acmelite.cli"),
    ],
)
def test_seams(module: str, forbidden: str) -> None:
    edges = graph()
    offenders = sorted(
        f"{m} imports {t}"
        for m, targets in edges.items()
        if m == module or m.startswith(module + ".")
        for t in targets
        if t == forbidden or t.startswith(forbidden + ".")
    )
    assert offenders == []


def test_only_transport_imports_requests_and_only_cli_reads_argv() -> None:
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        tree = ast.parse(path.read_text())
        roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                 for a in n.names}  # fmt: skip
        roots |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
                  if isinstance(n, ast.ImportFrom) and not n.level}  # fmt: skip
        if "requests" in roots:
            # acmelite.http: the JSON client of DNS provider APIs (PowerDNS) and the default
            # timeout for dns-lexicon's requests — HTTP that is not ACME, so not transport's.
            assert name in ("acmelite.transport", "acmelite.http", "acmelite.testing.pebble",
                            "acmelite.testing.proxy"), name  # fmt: skip
        if "argparse" in roots:
            assert name.startswith(("acmelite.cli", "acmelite.testing")), name


def test_the_layer_test_sees_imports() -> None:
    """The checks above would pass on an empty graph; this one would not."""
    edges = graph()
    assert "acmelite.client" in edges["acmelite.managed"]
    assert "acmelite.challenges" in edges["acmelite.client"]
    assert "acmelite.csr" in edges["acmelite.client"]  # "from . import csr as csrmod"
    assert "acmelite.managed" in edges["acmelite.cli.issue"]  # an import inside a function
