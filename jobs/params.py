"""Typed job parameters: one pydantic model per job kind, stored in ``jobs.params`` (a JSON column).

What the user asked for (:class:`JobParams` and its subclasses, chosen by ``Job.kind`` through
:data:`PARAMS_BY_KIND`) is written once, when the job is created, and validated whenever it is read
(:func:`read_params`). What the worker learns while running the job (the prompt it drew, the
beautification result, the images the safety check withheld) is a separate :class:`JobOutcome`,
stored under the ``"outcome"`` key of the same column (:func:`read_outcome`, :func:`with_outcome`).

Rows carry ``version``. Version 1 is this layout; rows written before it (no ``version``) kept the
outcome's keys next to the parameters, and :func:`upgrade_row` moves them, so old databases still load
and their jobs still run (tests/test_job_params.py reads rows in the old shape).

A new job kind: a subclass here with its own fields, an entry in :data:`PARAMS_BY_KIND`, and its
mode in the model registry (``generation/registry.py``); see docs/architecture.md.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from generation.backend import GenerationError, Mode
from generation.motion import MAX_SCENES, CameraMove
from generation.styles import DEFAULT_ASPECT_RATIO, DEFAULT_STYLE

PARAMS_VERSION = 1
OUTCOME_KEY = "outcome"
# Keys the worker wrote next to the parameters before version 1.
_LEGACY_OUTCOME_KEYS = ("used_prompt", "beautify_outcome", "censored")


class JobParams(BaseModel):
    """A text-to-image job, and what every kind shares."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    version: Literal[1] = PARAMS_VERSION
    prompt: str = ""  # the user's own words (before the style template and beautification)
    display_prompt: str | None = None  # shown in the caption instead of ``prompt`` (mix: the text alone)
    style: str = DEFAULT_STYLE
    negative_prompt: str | None = None
    aspect_ratio: str = DEFAULT_ASPECT_RATIO
    width: int = Field(ge=64)
    height: int = Field(ge=64)
    num_images: int = Field(default=1, ge=1, le=4)
    seed: int = Field(ge=0)  # image i uses seed + i
    beautify: bool = False
    steps: int | None = Field(default=None, ge=1)  # None: the model's default (generation.registry)
    guidance_scale: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict)  # backend options (face swap: the face profile)
    inline: str | None = None  # the parameters typed into the prompt (--ar 16:9 ...), for the caption

    def to_row(self) -> dict[str, Any]:
        """What goes into the JSON column."""
        return self.model_dump(mode="json")


class EditParams(JobParams):
    """Restyle, keep the shapes, style, fuse, mix, variations: photos as Telegram file ids."""

    input_file_ids: list[str] = Field(min_length=1)
    weights: list[float] = Field(default_factory=list)  # fuse / mix / style: one per photo (mix: photo, text)
    strength: float = Field(default=0.6, ge=0.0, le=1.0)  # image-to-image: 0 keeps the photo
    # The user's model when the registry moved the edit to another one (the status message says so).
    requested_model: str | None = None
    # The strength (restyle) or the weights (mix, fusion of two) were not asked for: the user's last
    # choice was used at once; the status and the caption name it and the buttons that change it.
    remembered: bool = False


class FaceSwapParams(JobParams):
    """A scene with the user's face. New jobs carry no copy of the face: the runner looks up the
    user's face (photo file id and profile) when the job runs. Rows written before that carried
    ``input_file_ids`` and ``extra["face"]``; ``/forgetface`` removes both (storage.repositories),
    and the runner ignores them."""

    input_file_ids: list[str] = Field(default_factory=list)


class CanvasParams(JobParams):
    """Zoom out, expand, zoom in, inpaint, upscale: one picture (a result's or a sent photo's file id).

    The kind's option is in ``extra`` (the backend reads it from the request): ``factor`` (zoom out),
    ``ratio`` (expand), ``mask`` (inpaint: a base64 PNG, white = repaint), ``scale`` (upscale)."""

    input_file_ids: list[str] = Field(min_length=1, max_length=1)
class AnimationScene(BaseModel):
    """One scene of an /animate: its text and its camera move (4 seconds, the transition included)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)
    move: CameraMove


class AnimateParams(JobParams):
    """/animate: the first scene's text is also ``prompt`` (the first frame is drawn from it)."""

    scenes: list[AnimationScene] = Field(min_length=1, max_length=MAX_SCENES)


PARAMS_BY_KIND: dict[Mode, type[JobParams]] = {
    Mode.TEXT2IMG: JobParams,
    Mode.IMG2IMG: EditParams,
    Mode.RESTYLE_DEPTH: EditParams,
    Mode.STYLE: EditParams,
    Mode.FUSE: EditParams,
    Mode.MIX: EditParams,
    Mode.VARIATIONS: EditParams,
    Mode.FACESWAP: FaceSwapParams,
    Mode.ZOOM_OUT: CanvasParams,
    Mode.EXPAND: CanvasParams,
    Mode.ZOOM_IN: CanvasParams,
    Mode.INPAINT: CanvasParams,
    Mode.UPSCALE: CanvasParams,
    Mode.ANIMATE: AnimateParams,
    Mode.VIDEO: JobParams,  # the text alone; the model (5 s or 10 s checkpoint) is the clip's length
}


class JobOutcome(BaseModel):
    """What the worker writes back while running a job (rewritten on every run)."""

    model_config = ConfigDict(extra="forbid")

    used_prompt: str | None = None  # the beautified prompt that was drawn; None: the user's own
    beautify_outcome: Literal["beautified", "fell_back"] | None = None
    censored: list[int] = Field(default_factory=list)  # indices of images the safety check withheld
    # What the pipeline says about how it made the images, one caption line each ("edges-canny":
    # the HED ControlNet's outlines came from the Canny fallback); keys of result-note-* messages.
    notes: list[str] = Field(default_factory=list)


class JobParamsError(GenerationError):
    """A stored row that does not validate: the job fails with the generic message (logged in full)."""

    def __init__(self, detail: str) -> None:
        super().__init__("internal", detail)


def upgrade_row(row: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(parameters, outcome) of a stored row of any version, as plain dicts of the current one."""
    data = dict(row or {})
    version = data.get("version")
    if version is None:  # before version 1: the outcome lived next to the parameters
        outcome = {k: data.pop(k) for k in _LEGACY_OUTCOME_KEYS if k in data}
        outcome = {k: v for k, v in outcome.items() if v is not None}
        data["version"] = PARAMS_VERSION
        return data, outcome
    outcome = data.pop(OUTCOME_KEY, None) or {}
    return data, dict(outcome)


def params_class(kind: Mode | str) -> type[JobParams]:
    try:
        return PARAMS_BY_KIND[Mode(kind)]
    except (KeyError, ValueError):
        raise JobParamsError(f"unknown job kind {kind!r}") from None


def parse_params(kind: Mode | str, row: dict[str, Any] | None) -> JobParams:
    data, _ = upgrade_row(row)
    try:
        return params_class(kind).model_validate(data)
    except ValidationError as exc:
        raise JobParamsError(f"{kind} parameters do not validate: {exc}") from None


def read_params(job: Any) -> JobParams:
    """The typed parameters of a job row (``storage.models.Job``): validated, any stored version."""
    return parse_params(job.kind, job.params)


def shown_prompt(job: Any) -> str:
    """The prompt to show for a job in lists (admins' /user card): never raises, even on a row that
    does not validate (it is shown as stored)."""
    try:
        params = read_params(job)
    except JobParamsError:
        raw = job.params or {}
        return str(raw.get("display_prompt") or raw.get("prompt") or "")
    return params.display_prompt or params.prompt


def read_outcome(job: Any) -> JobOutcome:
    _, outcome = upgrade_row(job.params)
    try:
        return JobOutcome.model_validate(outcome)
    except ValidationError as exc:
        raise JobParamsError(f"job outcome does not validate: {exc}") from None


def with_outcome(kind: Mode | str, row: dict[str, Any] | None, outcome: JobOutcome) -> dict[str, Any]:
    """The row with ``outcome`` written (and upgraded to the current version)."""
    return {**parse_params(kind, row).to_row(), OUTCOME_KEY: outcome.model_dump(mode="json")}
