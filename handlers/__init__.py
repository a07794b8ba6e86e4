"""aiogram routers, one per feature; thin: parse, validate, call a service, answer.

Each module has ``create_router()``: a router can belong to one dispatcher only, and the tests (and
the bot's replicas in one process) build several.
"""

from __future__ import annotations

from aiogram import Router

from handlers import (
    admin,
    animate,
    cancel,
    canvas_edit,
    editing,
    errors,
    faceswap,
    fallback,
    generate,
    history,
    invite,
    results,
    settings,
    start,
    video,
)
from handlers.filters import run_sync_filters_inline


def build_root_router() -> Router:
    """All routers in the order they must see updates; the fallback router is last."""
    root = Router(name="root")
    features = [
        errors.create_router(),
        start.create_router(),
        cancel.create_router(),  # before flows: /cancel leaves any of them
        settings.create_router(),
        history.create_router(),  # /history
        results.create_router(),  # per-image buttons under albums, "Edit prompt"
        admin.create_router(),
        canvas_edit.create_router(),  # zoom / expand / upscale buttons, /inpaint (before editing's photo flows)
        invite.create_router(),  # /invite, owners only  # behind its admin filter; everyone else falls through
        animate.create_router(),  # /animate: its texts and buttons belong to the flow
        video.create_router(),  # /video and the buttons under videos
        editing.create_router(),  # before generate: a text in the middle of an editing flow is the flow's
        faceswap.create_router(),  # /face, /forgetface, @me prompts
        generate.create_router(),  # any text is a prompt: feature routers go before it
        fallback.create_router(),
    ]
    # Plain prompts go first (after the error handler): they need none of the feature routers.
    root.include_routers(features[0], generate.create_plain_prompt_router(), *features[1:])
    return run_sync_filters_inline(root)
