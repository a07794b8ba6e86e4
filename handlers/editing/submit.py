"""Edit jobs: the strength levels of the buttons.

Which model runs each edit mode, and the job's parameters (inputs as Telegram file ids, the first
photo's aspect ratio), live in :class:`handlers.context.RequestContext` (``submit_edit``), which reads
the model registry (:func:`generation.registry.model_for`).
"""

from __future__ import annotations

from handlers.editing.flow import DEFAULT_STRENGTH, STRENGTHS


def strength_value(level: str | None) -> float:
    return STRENGTHS.get(level or DEFAULT_STRENGTH, STRENGTHS[DEFAULT_STRENGTH])
