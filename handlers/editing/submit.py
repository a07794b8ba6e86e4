"""Edit jobs: which model runs each mode, and the job parameters (inputs as Telegram file ids).

Model choice:
* restyle by text (IMG2IMG) runs on the user's model when it has image-to-image: Kandinsky 2.2
  (``KandinskyV22Img2ImgPipeline``) or Kandinsky 3.1 (``Kandinsky3Img2ImgPipeline``). Kandinsky 3.1
  Flash and the Flash refiner have none, so those users get Kandinsky 3.1 (the status message says so);
* the other modes run on the user's "Editing model": Kandinsky 2.2 (its image prior's CLIP image
  embeddings, its depth ControlNet) or Kandinsky 3.1 (the IP-Adapter for fuse, mix, variations and
  style; the HED ControlNet for "keep the shapes").

The output follows the first photo's aspect ratio, fitted to MAX_IMAGE_SIDE in multiples of 64.
Inputs are stored as Telegram file ids (never bytes): the worker downloads them, so a job, or
"Again" on it, still works after a restart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from aiogram import Bot
from aiogram_i18n import I18nContext

from generation.backend import Mode, ModelId
from generation.capabilities import editing_model_for
from generation.jobs import JobService
from generation.styles import DEFAULT_STYLE, fit_size
from handlers.common import submit_job
from handlers.editing.flow import DEFAULT_STRENGTH, STRENGTHS
from handlers.editing.inputs import InputPhoto
from storage.models import Job, User
from storage.repositories import Repositories

IMG2IMG_MODELS = frozenset({ModelId.K22, ModelId.K31})
TEXT_MODES = frozenset({Mode.IMG2IMG, Mode.RESTYLE_DEPTH, Mode.MIX})  # the user's text (and style) count


def edit_model(mode: Mode, user_model: str, editing_model: str | None = None) -> tuple[ModelId, bool]:
    """(the model that runs ``mode``, whether it differs from the user's choice because it must).

    The image-prompt modes follow the "Editing model" setting (:func:`editing_model_for`)."""
    if mode is Mode.IMG2IMG:
        model = ModelId(user_model)
        if model in IMG2IMG_MODELS:
            return model, False
        return ModelId.K31, True
    return editing_model_for(mode, editing_model), False


def ratio_label(width: int, height: int) -> str:
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


def strength_value(level: str | None) -> float:
    return STRENGTHS.get(level or DEFAULT_STRENGTH, STRENGTHS[DEFAULT_STRENGTH])


def edit_params(
    jobs: JobService,
    user: User,
    mode: Mode,
    photos: Sequence[InputPhoto],
    max_side: int,
    prompt: str = "",
    weights: Sequence[float] = (),
    strength: float | None = None,
    display_prompt: str | None = None,
) -> dict[str, Any]:
    width, height = fit_size(photos[0].width, photos[0].height, max_side)
    params = jobs.params_from_settings(
        user,
        prompt,
        width=width,
        height=height,
        aspect_ratio=ratio_label(width, height),
        input_file_ids=[photo.file_id for photo in photos],
        weights=[float(w) for w in weights],
    )
    if strength is not None:
        params["strength"] = strength
    if mode not in TEXT_MODES:  # no text: a style template or a beautified prompt would be the whole prompt
        params.update(style=DEFAULT_STYLE, beautify=False)
    if display_prompt:
        params["display_prompt"] = display_prompt
    return params


async def submit_edit(
    *,
    bot: Bot,
    chat_id: int,
    repos: Repositories,
    user: User,
    jobs: JobService,
    i18n: I18nContext,
    max_side: int,
    mode: Mode,
    photos: Sequence[InputPhoto],
    prompt: str = "",
    weights: Sequence[float] = (),
    strength: float | None = None,
    display_prompt: str | None = None,
) -> Job | None:
    model, fell_back = edit_model(mode, user.settings.model, user.settings.editing_model)
    params = edit_params(jobs, user, mode, photos, max_side, prompt, weights, strength, display_prompt)
    note = i18n.get("edit-note-img2img-fallback") if fell_back else None
    return await submit_job(
        bot=bot, chat_id=chat_id, repos=repos, user=user, jobs=jobs, i18n=i18n,
        params=params, kind=mode, model=model, note=note,
    )
