"""aiogram routers, one per feature; thin: parse, validate, call a service, answer."""

from __future__ import annotations

from aiogram import Router

from handlers import cancel, editing, errors, fallback, generate, settings, start


def build_root_router() -> Router:
    """All routers in the order they must see updates; the fallback router is last."""
    root = Router(name="root")
    root.include_routers(
        errors.router,
        start.router,
        cancel.router,  # before flows: /cancel leaves any of them
        settings.router,
        editing.build_router(),  # before generate: a text in the middle of an editing flow is the flow's
        generate.router,
        fallback.router,
    )
    return root
