"""Beautification and the safety checks as one step of the job flow (no torch, no aiogram).

The service calls :meth:`ContentGuard.check_text` on the user's prompt before it creates a job; the
worker calls :meth:`ContentGuard.prepare_prompt` (beautify when the user asked for it, then the same
text check on the LLM's prompt) and :meth:`ContentGuard.check_images` on what it generated, and the
handlers of uploads call :meth:`ContentGuard.check_images` on the user's photos.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from PIL import Image

from generation.sources import GenerationConfig
from prompting.beautify import Beautifier, BeautifierSettings, BeautifyResult, NoBeautifier, build_beautifier
from prompting.safety import ImageSafety, ImageVerdict, SafetySettings, TextFilter, build_image_safety, build_text_filter

logger = logging.getLogger(__name__)


class BlockStage(StrEnum):
    PROMPT = "prompt"  # the user's own words
    BEAUTIFIED = "beautified"  # the LLM's expansion of them


@dataclass(frozen=True)
class PreparedPrompt:
    prompt: str  # what to generate from (before the style template)
    original: str  # the user's own prompt
    beautify: BeautifyResult | None = None  # None: the user's setting is off
    blocked_entry: str | None = None  # the blocklist entry that matched
    blocked_stage: BlockStage | None = None

    @property
    def blocked(self) -> bool:
        return self.blocked_entry is not None

    @property
    def beautified(self) -> bool:
        return self.beautify is not None and self.beautify.beautified

    @property
    def fell_back(self) -> bool:
        """Beautification was asked for and failed: the user is told in one line."""
        return self.beautify is not None and self.beautify.fell_back


class ContentGuard:
    """The operator's switches: any of the three parts may be None (off)."""

    def __init__(
        self,
        text_filter: TextFilter | None = None,
        image_safety: ImageSafety | None = None,
        beautifier: Beautifier | None = None,
        blurred_preview: bool = True,
    ) -> None:
        self.text_filter = text_filter
        self.image_safety = image_safety
        self.beautifier = beautifier or NoBeautifier()
        self.blurred_preview_enabled = blurred_preview

    @property
    def beautification_available(self) -> bool:
        return not isinstance(self.beautifier, NoBeautifier)

    def check_text(self, text: str | None) -> str | None:
        """The blocklist entry in ``text``, or None (also when the text filter is off)."""
        if self.text_filter is None or not text:
            return None
        entry = self.text_filter.check(text)
        if entry is not None:
            # The entry, not the prompt: the log is not a place to copy abuse into.
            logger.info("prompt blocked by the text filter (entry %r)", entry)
        return entry

    async def prepare_prompt(self, prompt: str, beautify: bool) -> PreparedPrompt:
        """Check the prompt, beautify it when asked, check the LLM's prompt too."""
        entry = self.check_text(prompt)
        if entry is not None:
            return PreparedPrompt(prompt, prompt, None, entry, BlockStage.PROMPT)
        if not beautify or not self.beautification_available:
            return PreparedPrompt(prompt, prompt)
        result = await self.beautifier.beautify(prompt)
        if result.beautified:
            entry = self.check_text(result.prompt)
            if entry is not None:
                return PreparedPrompt(result.prompt, prompt, result, entry, BlockStage.BEAUTIFIED)
        return PreparedPrompt(result.prompt, prompt, result)

    async def check_images(self, images: Sequence[Image.Image | bytes]) -> list[ImageVerdict] | None:
        """One verdict per image (in a worker thread), or None when the image check is off."""
        if self.image_safety is None:
            return None
        safety = self.image_safety
        return await asyncio.to_thread(lambda: [safety.verdict(image) for image in images])

    def blurred_preview(self, image: Image.Image) -> Image.Image | None:
        """The preview sent with the notice of a censored image, or None when the operator turned it off."""
        if not self.blurred_preview_enabled:
            return None
        return ImageSafety.blurred_preview(image)

    async def close(self) -> None:
        """Release the beautifier's HTTP session or model (on shutdown)."""
        close = getattr(self.beautifier, "close", None)
        if close is not None:
            await close()
        unload = getattr(self.beautifier, "unload", None)
        if unload is not None:
            await asyncio.to_thread(unload)

    async def check_upload(self, image: Image.Image | bytes) -> ImageVerdict | None:
        """A photo a user sent for editing or face swap; None when the image check is off."""
        verdicts = await self.check_images([image])
        return verdicts[0] if verdicts else None


def build_content_guard(
    beautifier: BeautifierSettings, safety: SafetySettings, config: GenerationConfig | None = None
) -> ContentGuard:
    """The guard the operator's settings describe (``app.config.Settings`` builds both settings)."""
    return ContentGuard(
        text_filter=build_text_filter(safety),
        image_safety=build_image_safety(safety),
        beautifier=build_beautifier(beautifier, config),
        blurred_preview=safety.blurred_preview,
    )
