"""The package layering (docs/architecture.md): no package imports one above it, no cycles.

Read from the source with ``ast`` (every import statement, also those inside functions and under
``TYPE_CHECKING``), so a lazy import cannot sneak a cycle in.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Each package and the packages of ours it may import. Bottom to top:
# storage, generation < prompting, faceswap < jobs < bot < handlers < app (the composition root).
ALLOWED: dict[str, set[str]] = {
    "storage": set(),
    "generation": set(),
    "prompting": {"generation"},
    "faceswap": {"generation"},
    "jobs": {"generation", "prompting", "storage"},
    "bot": {"jobs", "generation", "prompting", "storage"},
    "handlers": {"bot", "jobs", "generation", "prompting", "faceswap", "storage"},
    "app": {"bot", "handlers", "jobs", "generation", "prompting", "faceswap", "storage"},
    # The playground runs the bot as a process (``python -m app``) next to a Bot API emulator and a
    # web chat: it imports none of the bot's packages.
    "playground": set(),
}


def our_packages() -> set[str]:
    return {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} - {"tests", "benchmarks", "alembic"}


def import_edges() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> the modules that import it (for the failure message)."""
    packages = our_packages()
    edges: dict[str, dict[str, list[str]]] = {p: {} for p in packages}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in packages and top != package:
                        edges[package].setdefault(top, []).append(str(path.relative_to(ROOT)))
    return edges


def cycles(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    closure = {a: reach(a) for a in edges}
    return sorted({tuple(sorted((a, b))) for a in edges for b in closure[a] if a != b and a in closure[b]})


def test_every_package_has_a_layer():
    assert our_packages() == set(ALLOWED), "a new top-level package needs its place in ALLOWED and in docs/architecture.md"


def test_no_package_imports_one_above_it():
    problems = [
        f"{package} imports {other} (in {', '.join(sorted(set(where)))})"
        for package, imported in sorted(import_edges().items())
        for other, where in sorted(imported.items())
        if other not in ALLOWED[package]
    ]
    assert not problems, "\n".join(problems)


def test_no_package_cycles():
    edges = {package: set(imported) for package, imported in import_edges().items()}
    assert cycles(edges) == []


def test_the_cycle_check_can_fail():
    # The check itself, on a graph with the cycle the job system used to have (generation <-> bot).
    assert cycles({"generation": {"bot"}, "bot": {"generation", "storage"}, "storage": set()}) == [("bot", "generation")]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [("a", "b"), ("a", "c"), ("b", "c")]


def test_handlers_never_import_torch():
    # The bot process of the distributed mode never needs torch: handlers, the job service and the
    # wiring read model facts from the registry, which is plain data.
    code = (
        "import sys, handlers, app.wiring, generation.registry, jobs.service, jobs.params, bot.notifier; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


# -- handlers take few arguments (issue 12) ---------------------------------------------------
# A handler names the request-scoped objects (``request``: handlers.context.RequestContext;
# ``admin``: handlers.admin.common.AdminContext) and what filters add (``prompt``, ``photos``,
# ``job``, ``target``), not the bot, the user, the repositories and the services one by one.
MAX_HANDLER_PARAMETERS = 6  # tests/test_handler_parameters.py holds the editing and face modules' helpers to it too


def handler_parameters(router) -> dict[str, int]:
    """Every function registered on ``router`` and the routers below it (messages, buttons, errors,
    ...), by module and name, and how many parameters it takes."""
    import inspect

    found: dict[str, int] = {}
    todo = [router]
    while todo:
        current = todo.pop()
        todo.extend(current.sub_routers)
        for observer in current.observers.values():
            for handler in observer.handlers:
                callback = handler.callback
                found[f"{callback.__module__}.{callback.__qualname__}"] = len(inspect.signature(callback).parameters)
    return found


def over_the_limit(router) -> set[str]:
    return {name for name, count in handler_parameters(router).items() if count > MAX_HANDLER_PARAMETERS}


def test_handlers_take_few_parameters():
    from handlers import build_root_router

    handlers = handler_parameters(build_root_router())
    assert len(handlers) > 50  # the walk reaches the nested routers
    assert over_the_limit(build_root_router()) == set(), (
        f"handlers with more than {MAX_HANDLER_PARAMETERS} parameters: take request / admin and filters that add context"
    )


def test_the_parameter_check_can_fail():
    from aiogram import Router

    async def crowded(message, bot, i18n, user, repos, jobs, notifier) -> None: ...

    async def lean(message, request) -> None: ...

    inner = Router()
    inner.message()(crowded)
    outer = Router()
    outer.callback_query()(lean)
    outer.include_router(inner)
    assert {name.rsplit(".", 1)[-1] for name in over_the_limit(outer)} == {"crowded"}
