"""What each model can do and its own defaults: plain data for handlers (no torch)."""

from __future__ import annotations

from generation.backend import Mode, ModelId

# Flash is distilled without classifier-free guidance: it has no negative prompt (tell the user).
NEGATIVE_PROMPT_MODELS: frozenset[ModelId] = frozenset({ModelId.K22, ModelId.K31, ModelId.K31_REFINER})

MODES: dict[ModelId, frozenset[Mode]] = {
    ModelId.K22: frozenset(Mode),
    ModelId.K31: frozenset({Mode.TEXT2IMG, Mode.IMG2IMG, Mode.FACESWAP}),
    ModelId.K31_FLASH: frozenset({Mode.TEXT2IMG, Mode.IMG2IMG, Mode.FACESWAP}),
    ModelId.K31_REFINER: frozenset({Mode.TEXT2IMG, Mode.IMG2IMG, Mode.FACESWAP}),
}

# (steps, guidance scale); None: fixed by the model (Flash's 4 distilled steps, no guidance)
DEFAULTS: dict[ModelId, tuple[int | None, float | None]] = {
    ModelId.K22: (50, 4.0),  # decoder steps; the prior runs 25
    ModelId.K31: (50, 3.0),  # the authors' defaults (Kandinsky3T2IPipeline.__call__)
    ModelId.K31_FLASH: (None, None),
    ModelId.K31_REFINER: (50, 3.0),  # Kandinsky 3.1's steps, then one Flash step at t=229
}


def uses_negative_prompt(model: ModelId) -> bool:
    return model in NEGATIVE_PROMPT_MODELS
