"""The shape of the code, as docs/architecture.md draws it: rooms, and imports that run one way."""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"

pytestmark = pytest.mark.rules

# From the bottom up. A module may import modules of its own room and of the layers below it,
# never one above. Within a layer of several rooms, a room imports no other (they are peers).
# The foundation is one room: settings, the clock, money, engines, tables and domain errors.
FOUNDATION = (
    "app.config",
    "app.clock",
    "app.money",
    "app.db",
    "app.models",
    "app.services.errors",
    "app.services.schemas",
)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("foundation",),
    ("app.platform",),
    ("app.services.registry",),
    ("app.services.editions",),
    ("app.services.billing",),
    ("app.services.registrations",),
    ("app.services.teaching",),
    ("app.services.certificates",),
    # The applicant's portal is one page over every room the applicant meets: it is kept with
    # registrations but reads teaching and certificates, so it stands above them.
    ("app.services.registrations.portal",),
    ("app.services.office",),
    ("app.worker", "app.web"),
    ("app.routers",),
    ("app.main",),
    ("app.cli",),
)
FRAMEWORKS = ("fastapi", "starlette")


def module_name(path: Path) -> str:
    """The dotted name of a module file under app/."""
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    """Every module of the application, parsed."""
    return {module_name(path): ast.parse(path.read_text()) for path in APP.rglob("*.py")}


def imports(tree: ast.Module, known: set[str]) -> Iterator[tuple[str, str, int]]:
    """(imported module, imported name or '', line) for every import, lazy ones included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, "", node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in known:
                    yield full, "", node.lineno
                else:
                    yield node.module, alias.name, node.lineno


def place(name: str) -> tuple[int, str] | None:
    """(layer, room) of an application module; None for the package roots."""
    if any(name == f or name.startswith(f + ".") for f in FOUNDATION):
        return 0, "foundation"
    found = [
        (len(room), level, room)
        for level, rooms in enumerate(LAYERS)
        for room in rooms
        if name == room or name.startswith(room + ".")
    ]
    if not found:
        return None
    _, level, room = max(found)
    return level, room


@pytest.fixture(scope="module")
def parsed() -> dict[str, ast.Module]:
    return modules()


def test_every_module_has_a_place(parsed: dict[str, ast.Module]) -> None:
    roots = {"app", "app.services", "app.routers"}
    assert sorted(n for n in parsed if n not in roots and place(n) is None) == []


def test_services_have_no_loose_modules() -> None:
    loose = sorted(
        p.name
        for p in (APP / "services").glob("*.py")
        if p.name not in {"__init__.py", "errors.py", "schemas.py"}
    )
    assert loose == []


def test_imports_run_one_way(parsed: dict[str, ast.Module]) -> None:
    known = set(parsed)
    wrong = []
    for name, tree in parsed.items():
        here = place(name)
        if here is None:
            continue
        for target, _, line in imports(tree, known):
            there = place(target)
            if there is None or there[1] == here[1]:
                continue
            if there[0] > here[0] or (there[0] == here[0] and there[1] != here[1]):
                wrong.append(f"{name}:{line} imports {target}")
    assert wrong == []


def test_no_import_circles(parsed: dict[str, ast.Module]) -> None:
    known = set(parsed)
    graph = {
        name: {target for target, _, _ in imports(tree, known) if target in known}
        for name, tree in parsed.items()
    }
    circles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for child in sorted(graph.get(node, ())):
            if child.startswith(node + ".") or node.startswith(child + "."):
                continue  # a package and its own modules
            if state.get(child) == 1:
                circles.append([*stack[stack.index(child) :], child])
            elif child not in state:
                visit(child)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert circles == []


def test_rules_and_machinery_know_no_web_framework(parsed: dict[str, ast.Module]) -> None:
    known = set(parsed)
    offenders = [
        f"{name}:{line} imports {target}"
        for name, tree in parsed.items()
        if name.startswith(("app.services", "app.platform"))
        for target, _, line in imports(tree, known)
        if target.split(".")[0] in FRAMEWORKS
    ]
    assert offenders == []


def test_no_module_imports_another_modules_private_name(parsed: dict[str, ast.Module]) -> None:
    known = set(parsed)
    offenders = [
        f"{name}:{line} imports {target}.{imported}"
        for name, tree in parsed.items()
        for target, imported, line in imports(tree, known)
        if imported.startswith("_")
        and not imported.startswith("__")
        and target != name
        and target.startswith("app")
    ]
    assert offenders == []
