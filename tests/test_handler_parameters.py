"""The editing and face-swap handlers take few parameters (issue #12): what they need comes from the
request context (:class:`handlers.context.RequestContext`) and from the filters that add context
(photos, caption, prompt, a button's choice), not from seven or more arguments passed down.

Read from the source with ``ast``: every function and method of these modules, ``self`` and
``*args`` / ``**kwargs`` counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_PARAMETERS = 6
MODULES = ["handlers/editing", "handlers/faceswap.py", "handlers/context.py", "handlers/filters.py"]


def parameter_count(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = function.args
    return (
        len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs) + (args.vararg is not None) + (args.kwarg is not None)
    )


def wide_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({parameter_count(node)})"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and parameter_count(node) > MAX_PARAMETERS
    ]


def test_every_kind_of_parameter_counts():
    tree = ast.parse("async def handler(self, message, /, state, *args, request, choice=None, **data): pass")
    (function,) = [node for node in ast.walk(tree) if isinstance(node, ast.AsyncFunctionDef)]
    assert parameter_count(function) == 7


def test_editing_and_face_handlers_take_at_most_six_parameters():
    paths = [
        path
        for module in map(ROOT.joinpath, MODULES)
        for path in (sorted(module.rglob("*.py")) if module.is_dir() else [module])
    ]
    assert len(paths) > 5  # the modules are where this test looks for them
    wide = [entry for path in paths for entry in wide_functions(path)]
    assert wide == [], "take the request context or a filter's context instead:\n" + "\n".join(wide)
