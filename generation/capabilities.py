"""What each model can do and its own defaults: plain data for handlers (no torch)."""

from __future__ import annotations

from generation.backend import Mode, ModelId

# Flash is distilled without classifier-free guidance: it has no negative prompt (tell the user).
NEGATIVE_PROMPT_MODELS: frozenset[ModelId] = frozenset(
    {ModelId.K22, ModelId.K31, ModelId.K31_REFINER, ModelId.K31_IP_ADAPTER, ModelId.K31_CONTROLNET_HED}
)

MODES: dict[ModelId, frozenset[Mode]] = {
    ModelId.K22: frozenset(Mode),
    ModelId.K31: frozenset({Mode.TEXT2IMG, Mode.IMG2IMG, Mode.FACESWAP}),
    ModelId.K31_FLASH: frozenset({Mode.TEXT2IMG, Mode.IMG2IMG, Mode.FACESWAP}),
    ModelId.K31_REFINER: frozenset({Mode.TEXT2IMG, Mode.IMG2IMG, Mode.FACESWAP}),
    ModelId.K31_IP_ADAPTER: frozenset({Mode.FUSE, Mode.MIX, Mode.VARIATIONS, Mode.STYLE}),
    ModelId.K31_CONTROLNET_HED: frozenset({Mode.RESTYLE_DEPTH}),
}

# (steps, guidance scale); None: fixed by the model (Flash's 4 distilled steps, no guidance)
DEFAULTS: dict[ModelId, tuple[int | None, float | None]] = {
    ModelId.K22: (50, 4.0),  # decoder steps; the prior runs 25
    ModelId.K31: (25, 3.0),
    ModelId.K31_FLASH: (None, None),
    ModelId.K31_REFINER: (25, 3.0),  # Kandinsky 3's steps, then the two last Flash steps
    ModelId.K31_IP_ADAPTER: (25, 3.0),
    ModelId.K31_CONTROLNET_HED: (25, 3.0),
}


# The "Editing model" setting: Kandinsky 2.2 (its image prior and depth ControlNet) or Kandinsky 3.1
# (the IP-Adapter and the HED ControlNet).
EDITING_MODELS: tuple[ModelId, ...] = (ModelId.K22, ModelId.K31)
DEFAULT_EDITING_MODEL = ModelId.K22
K31_EDITING: dict[Mode, ModelId] = {
    Mode.FUSE: ModelId.K31_IP_ADAPTER,
    Mode.MIX: ModelId.K31_IP_ADAPTER,
    Mode.VARIATIONS: ModelId.K31_IP_ADAPTER,
    Mode.STYLE: ModelId.K31_IP_ADAPTER,
    Mode.RESTYLE_DEPTH: ModelId.K31_CONTROLNET_HED,
}


def editing_model_for(mode: Mode, editing_model: str | None) -> ModelId:
    """The model that runs an image-prompt mode for a user whose editing model is ``editing_model``."""
    if editing_model == ModelId.K31 and mode in K31_EDITING:
        return K31_EDITING[mode]
    return ModelId.K22


def uses_negative_prompt(model: ModelId) -> bool:
    return model in NEGATIVE_PROMPT_MODELS
