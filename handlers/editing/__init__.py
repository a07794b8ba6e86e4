"""Image editing in the chat: restyle by text or keeping the shapes, style from a guidance image,
fusion of photos, photo + text, variations.

Included before the text-to-image router: a text typed in the middle of a flow belongs to the flow.
Every flow shows its step and how to leave (/cancel, which the cancel router handles first) and
starts over after ten minutes of silence (:class:`FlowTimeoutMiddleware`).
"""

from __future__ import annotations

from aiogram import Router

from handlers.editing import entry, fuse, mix, restyle, style, variations
from handlers.editing.flow import FlowTimeoutMiddleware


def create_router() -> Router:
    router = Router(name="editing")
    timeout = FlowTimeoutMiddleware()
    router.message.outer_middleware(timeout)
    router.callback_query.outer_middleware(timeout)
    # The flows' own handlers first, the catch-alls (pictures outside flows, the rest of a flow) last.
    router.include_routers(
        restyle.create_router(),
        style.create_router(),
        fuse.create_router(),
        mix.create_router(),
        variations.create_router(),
        entry.create_router(),
    )
    return router
