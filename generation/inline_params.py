"""Parameters typed into the prompt, the way Midjourney's users write them:

    a lighthouse at dawn --ar 16:9 --seed 42 --no text, watermark --model flash --style anime --n 4

Everything from the first ``--name`` on is parameters; a value runs to the next ``--``. Phones and
macOS turn ``--`` into an em dash (``—ar``), which is accepted too. Each parameter overrides the
user's /settings for this request only. A wrong one is an :class:`InlineParamError` whose ``code``
names the i18n message and whose ``kwargs`` fill it; nothing is queued then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from generation.backend import ModelId
from generation.styles import ASPECT_RATIOS, STYLES

MAX_SEED = 2**31 - 1
MAX_COUNT = 4
MAX_NEGATIVE_LENGTH = 1000

# ``--name`` or ``—name`` at the start or after white space.
_PARAM = re.compile(r"(?:(?<=\s)|^)(?:--|—|–)([A-Za-z][\w-]*)")

# The names a user may type, and the parameter each one means.
ALIASES: dict[str, str] = {
    "ar": "ar",
    "aspect": "ar",
    "seed": "seed",
    "no": "no",
    "model": "model",
    "m": "model",
    "style": "style",
    "n": "n",
    "count": "n",
}
# The canonical names, in the order the caption and /help show them.
NAMES: tuple[str, ...] = ("ar", "seed", "no", "model", "style", "n")

# Short model names; the full ids work too.
MODEL_NAMES: dict[str, ModelId] = {
    "2.2": ModelId.K22,
    "k2.2": ModelId.K22,
    "kandinsky-2.2": ModelId.K22,
    "22": ModelId.K22,
    "3.1": ModelId.K31,
    "k3.1": ModelId.K31,
    "3": ModelId.K31,
    "kandinsky-3.1": ModelId.K31,
    "flash": ModelId.K31_FLASH,
    "3.1-flash": ModelId.K31_FLASH,
    "kandinsky-3.1-flash": ModelId.K31_FLASH,
    "refiner": ModelId.K31_REFINER,
    "3.1-refiner": ModelId.K31_REFINER,
    "kandinsky-3.1-refiner": ModelId.K31_REFINER,
}
SHORT_MODEL_NAMES = ("2.2", "3.1", "flash", "refiner")


class InlineParamError(ValueError):
    """A parameter the bot cannot use; ``code`` is the i18n message id, ``kwargs`` its variables."""

    def __init__(self, code: str, **kwargs: Any) -> None:
        super().__init__(code)
        self.code = code
        self.kwargs = kwargs


@dataclass(frozen=True)
class InlineParams:
    prompt: str  # the text without the parameters
    aspect_ratio: str | None = None
    seed: int | None = None
    negative_prompt: str | None = None
    model: ModelId | None = None
    style: str | None = None
    count: int | None = None
    given: tuple[str, ...] = field(default=())  # canonical names, in the order typed

    @property
    def any(self) -> bool:
        return bool(self.given)

    def summary(self) -> str:
        """The parameters as the caption shows them, normalised: ``--ar 16:9 --seed 42 --no text``."""
        values = {
            "ar": self.aspect_ratio,
            "seed": self.seed,
            "no": self.negative_prompt,
            "model": _short_model(self.model) if self.model else None,
            "style": self.style.lower() if self.style else None,
            "n": self.count,
        }
        return " ".join(f"--{name} {values[name]}" for name in NAMES if values[name] is not None)


def _short_model(model: ModelId) -> str:
    return next(name for name in SHORT_MODEL_NAMES if MODEL_NAMES[name] == model)


def parse(text: str) -> InlineParams:
    """The prompt and its parameters; raises :class:`InlineParamError` for a wrong parameter."""
    matches = list(_PARAM.finditer(text))
    if not matches:
        return InlineParams(prompt=text.strip())
    prompt = text[: matches[0].start()].strip()
    values: dict[str, Any] = {}
    given: list[str] = []
    for i, match in enumerate(matches):
        typed = match.group(1)
        name = ALIASES.get(typed.lower())
        if name is None:
            raise InlineParamError("param-unknown", name=f"--{typed}", known=", ".join(f"--{n}" for n in NAMES))
        if name in given:
            raise InlineParamError("param-twice", name=f"--{name}")
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        raw = text[match.end() : end].strip()
        if not raw:
            raise InlineParamError("param-missing-value", name=f"--{name}", example=EXAMPLES[name])
        values[name] = _PARSERS[name](raw)
        given.append(name)
    return InlineParams(
        prompt=prompt,
        aspect_ratio=values.get("ar"),
        seed=values.get("seed"),
        negative_prompt=values.get("no"),
        model=values.get("model"),
        style=values.get("style"),
        count=values.get("n"),
        given=tuple(given),
    )


def _aspect_ratio(raw: str) -> str:
    match = re.fullmatch(r"(\d{1,3})\s*[:x×/]\s*(\d{1,3})", raw.lower())
    if match is None:
        raise InlineParamError("param-ar-invalid", value=raw, choices=", ".join(ASPECT_RATIOS))
    ratio = f"{int(match.group(1))}:{int(match.group(2))}"
    if ratio not in ASPECT_RATIOS:
        raise InlineParamError("param-ar-unavailable", value=ratio, choices=", ".join(ASPECT_RATIOS))
    return ratio


def _seed(raw: str) -> int:
    if not re.fullmatch(r"\d+", raw):
        raise InlineParamError("param-seed-invalid", value=raw, max=str(MAX_SEED))
    seed = int(raw)
    if seed > MAX_SEED:
        raise InlineParamError("param-seed-invalid", value=raw, max=str(MAX_SEED))
    return seed


def _negative(raw: str) -> str:
    if len(raw) > MAX_NEGATIVE_LENGTH:
        raise InlineParamError("param-no-too-long", length=len(raw), limit=MAX_NEGATIVE_LENGTH)
    return raw


def _model(raw: str) -> ModelId:
    key = raw.strip().lower()
    if key.startswith("kandinsky"):
        key = key.removeprefix("kandinsky").strip(" -")
    model = MODEL_NAMES.get(key)
    if model is None:
        raise InlineParamError("param-model-unknown", value=raw, choices=", ".join(SHORT_MODEL_NAMES))
    return model


def _style(raw: str) -> str:
    key = re.sub(r"[\s-]+", "_", raw.strip()).upper()
    if key not in STYLES:
        raise InlineParamError("param-style-unknown", value=raw, choices=", ".join(s.lower() for s in STYLES))
    return key


def _count(raw: str) -> int:
    if not re.fullmatch(r"\d+", raw) or not 1 <= int(raw) <= MAX_COUNT:
        raise InlineParamError("param-n-invalid", value=raw, max=MAX_COUNT)
    return int(raw)


_PARSERS = {"ar": _aspect_ratio, "seed": _seed, "no": _negative, "model": _model, "style": _style, "n": _count}
EXAMPLES = {
    "ar": "--ar 16:9",
    "seed": "--seed 42",
    "no": "--no text, watermark",
    "model": "--model flash",
    "style": "--style anime",
    "n": "--n 4",
}
