"""Describe stage: OmniFusion (AIRI-Institute/OmniFusion) says what the person on the photo looks like.

OmniFusion is a Mistral-7B language model that reads images through a CLIP ViT-L/14-336 vision
tower (its penultimate layer, patch tokens only), a projection module into the LM's embedding
space (``projection.pt``, a pickled ``VisualToGPTMapping``) and four learned special embeddings
(``special_embeddings.pt``: start/end of image, user, bot). Inference follows the publisher's
``gen_answer``: the dialog prompt, SOI, the projected image, EOI, USER, the question, BOT, then
beam search over ``inputs_embeds``.

The description never goes to the logs: it is a description of a user's face.
"""

from __future__ import annotations

import logging
import pickle
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from faceswap.config import FaceSwapConfig
from faceswap.detect import Face, to_rgb_array

log = logging.getLogger(__name__)

DIALOG_PROMPT = "This is a dialog with AI assistant.\n"  # OmniFusion's own system line
DESCRIBE_QUESTION = (
    "Describe the person in this photo as one short noun phrase for an image caption, like "
    "'a young woman with long red hair and glasses': gender, approximate age, hair, facial hair, glasses."
)
# The description stands in for "@me" inside the user's prompt: a noun phrase, short enough to
# leave the scene most of the text encoder's tokens.
MAX_DESCRIPTION_CHARS = 100
# Openings a chatty answer starts with, dropped so that the noun phrase is left.
_LEAD_INS = re.compile(
    r"^(?:(?:in|on) (?:this|the) (?:photo|image|picture),?\s*)?"
    r"(?:(?:the|this) (?:person|man|woman|image|photo|picture)(?: in (?:the|this) (?:photo|image|picture))? "
    r"(?:is|shows|depicts)|(?:this|it) is|(?:i|we) see|there is) ",
    re.IGNORECASE,
)


class FaceDescriber(Protocol):
    def describe(self, image: Image.Image | np.ndarray, face: Face) -> str | None:
        """A short description of the person's appearance, or None when the describer is off."""
        ...


def _torch_nn():
    import torch.nn as nn

    return nn


def _visual_to_gpt_mapping_class():
    nn = _torch_nn()

    class VisualToGPTMapping(nn.Module):
        """OmniFusion's projection (its ``models.py``): one transformer encoder layer over the CLIP
        patch features, then a linear map to the LM's embedding size. Defined here so that the
        pickled ``projection.pt`` unpickles without OmniFusion's repository on the path."""

        def __init__(self, visual_emb_dim: int, gpt_emb_dim: int, num_gpt_embs: int, num_heads: int) -> None:
            super().__init__()
            self.transformer_layer = nn.TransformerEncoderLayer(
                d_model=visual_emb_dim, nhead=num_heads, batch_first=True, norm_first=False
            )
            self.linear = nn.Linear(visual_emb_dim, gpt_emb_dim)
            self.n_embeddings = num_gpt_embs
            self.embedding_dim = gpt_emb_dim

        def forward(self, visual_embs):
            out = self.transformer_layer(visual_embs)
            return self.linear(out).view(-1, self.n_embeddings, self.embedding_dim)

    VisualToGPTMapping.__module__ = __name__
    VisualToGPTMapping.__qualname__ = "VisualToGPTMapping"
    return VisualToGPTMapping


_MAPPING_CLASS: type | None = None


def visual_to_gpt_mapping() -> type:
    """The projection class (built lazily: this module is imported where torch is not)."""
    global _MAPPING_CLASS
    if _MAPPING_CLASS is None:
        _MAPPING_CLASS = _visual_to_gpt_mapping_class()
    return _MAPPING_CLASS


def __getattr__(name: str) -> Any:
    # ``faceswap.describe.VisualToGPTMapping`` resolves (pickles made by this module name it so).
    if name == "VisualToGPTMapping":
        return visual_to_gpt_mapping()
    raise AttributeError(name)


class _ProjectionUnpickler(pickle.Unpickler):
    """Resolves OmniFusion's ``VisualToGPTMapping`` (pickled from its ``models`` module) to ours."""

    def find_class(self, module: str, name: str) -> Any:
        if name == "VisualToGPTMapping":
            return visual_to_gpt_mapping()
        return super().find_class(module, name)


_projection_pickle = types.SimpleNamespace(
    __name__="pickle", Unpickler=_ProjectionUnpickler, load=pickle.load, loads=pickle.loads
)


def load_projection(path: Path | str, device: str = "cpu"):
    """``projection.pt`` is a whole pickled module, so it needs ``weights_only=False``; only load it
    from the publisher's repository or a folder the operator controls."""
    import torch

    return torch.load(path, map_location=device, weights_only=False, pickle_module=_projection_pickle)


def _file(source: str, filename: str) -> str:
    """A file of the OmniFusion repository: from a local folder, or downloaded from the hub."""
    if Path(source).is_dir():
        path = Path(source) / filename
        if not path.is_file():
            raise FileNotFoundError(path)
        return str(path)
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_id=source, filename=filename)


@dataclass
class _OmniFusion:
    tokenizer: Any
    model: Any
    image_processor: Any
    vision_tower: Any
    projection: Any
    special_embeddings: dict[str, Any]
    device: str
    dtype: Any
    name: str = "omnifusion"

    # The model manager places it (use_external): ``to``, ``memory_bytes``, ``device``, ``name``.
    def to(self, device: str) -> _OmniFusion:
        self.model.to(device)
        self.vision_tower.to(device)
        self.projection.to(device)
        self.special_embeddings = {k: v.to(device) for k, v in self.special_embeddings.items()}
        self.device = str(device)
        return self

    def memory_bytes(self) -> int:
        modules = (self.model, self.vision_tower, self.projection)
        tensors = [t for m in modules for t in (*m.parameters(), *m.buffers())] + list(self.special_embeddings.values())
        return sum(t.numel() * t.element_size() for t in tensors)


def load_omnifusion(config: FaceSwapConfig, device: str = "cpu") -> _OmniFusion:
    """OmniFusion as its publishers load it (the slow-tokenizer setting included), on ``device``
    (the CPU by default: the model manager then places it under the VRAM budget), in bf16 when it
    will run on CUDA."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, CLIPImageProcessor, CLIPVisionModel

    runs_on = config.device
    if runs_on == "auto":
        runs_on = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if runs_on.startswith("cuda") else torch.float32
    source, variant = config.omnifusion_source, config.omnifusion_variant
    tokenizer = AutoTokenizer.from_pretrained(source, subfolder=f"{variant}/tokenizer", use_fast=False)
    model = AutoModelForCausalLM.from_pretrained(source, subfolder=f"{variant}/tuned-model", dtype=dtype)
    projection = load_projection(_file(source, f"{variant}/projection.pt"), device)
    special = torch.load(_file(source, f"{variant}/special_embeddings.pt"), map_location=device, weights_only=True)
    image_processor = CLIPImageProcessor.from_pretrained(config.clip_source)
    vision_tower = CLIPVisionModel.from_pretrained(config.clip_source, dtype=dtype)
    return _OmniFusion(
        tokenizer=tokenizer,
        model=model.to(device).eval(),
        image_processor=image_processor,
        vision_tower=vision_tower.to(device).eval().requires_grad_(False),
        projection=projection.to(device=device, dtype=dtype).eval(),
        special_embeddings={k: v.to(device=device, dtype=dtype) for k, v in special.items()},
        device=device,
        dtype=dtype,
    )


def face_crop(image: np.ndarray, face: Face, margin: float = 0.8) -> Image.Image:
    """A square crop around the face with room for the hair, ears and chin."""
    height, width = image.shape[:2]
    left, top, right, bottom = face.box
    side = max(right - left, bottom - top) * (1 + 2 * margin)
    cx, cy = (left + right) / 2, (top + bottom) / 2 - 0.1 * (bottom - top)
    x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    x1, y1 = int(min(width, cx + side / 2)), int(min(height, cy + side / 2))
    return Image.fromarray(image[y0:y1, x0:x1])


def clean_description(text: str) -> str | None:
    """One short phrase fit to stand in for ``@me`` in a prompt."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].strip().rstrip(".!?,;: ")
    text = _LEAD_INS.sub("", text).strip(" \"'")
    if len(text) > MAX_DESCRIPTION_CHARS:
        text = text[:MAX_DESCRIPTION_CHARS].rsplit(" ", 1)[0]
    return text or None


class OmniFusionDescriber:
    """Loads OmniFusion on first use; when that fails (no weights, no network) it switches itself
    off, logs that once, and answers None."""

    def __init__(self, config: FaceSwapConfig, question: str = DESCRIBE_QUESTION, on_use=None) -> None:
        self.config = config
        self.question = question
        self.on_use = on_use  # the model manager's placement; without one it goes to config.device
        self._vlm: _OmniFusion | None = None
        self.off = not config.describer_enabled
        if self.off:
            log.info("face describer is off (switched off in the settings); prompts use 'a person'")

    def _load(self) -> _OmniFusion | None:
        if self._vlm is None and not self.off:
            from huggingface_hub.errors import EntryNotFoundError

            try:
                if self.on_use is not None:
                    self._vlm = load_omnifusion(self.config, "cpu")
                else:
                    from faceswap.restore import torch_device

                    self._vlm = load_omnifusion(self.config, torch_device(self.config.device))
            except (OSError, ValueError, KeyError, EntryNotFoundError) as error:
                # OSError covers missing files and most hub errors (HfHubHTTPError,
                # LocalEntryNotFoundError); EntryNotFoundError is a file missing from the repository.
                self.off = True
                log.warning("face describer is off: OmniFusion weights are not available (%s)", type(error).__name__)
        if self._vlm is not None and self.on_use is not None:
            self.on_use(self._vlm)  # an out-of-memory here fails this job; the model stays loaded
        return self._vlm

    def describe(self, image: Image.Image | np.ndarray, face: Face) -> str | None:
        vlm = self._load()
        if vlm is None:
            return None
        return clean_description(self.generate(vlm, face_crop(to_rgb_array(image), face)))

    def generate(self, vlm: _OmniFusion, image: Image.Image) -> str:
        import torch

        tokenizer = vlm.tokenizer
        bad_words = [ids for ids in tokenizer(["\n", "</s>", ":"], add_special_tokens=False).input_ids if ids]
        newline = tokenizer.convert_tokens_to_ids("<0x0A>")  # Mistral's byte token for "\n" (id 13)
        if isinstance(newline, int) and newline != tokenizer.unk_token_id:
            bad_words.append([newline])
        eos = tokenizer.eos_token_id
        # The publisher's generation settings.
        params: dict[str, Any] = dict(
            do_sample=False,
            max_new_tokens=self.config.describer_max_new_tokens,
            early_stopping=True,
            num_beams=3,
            repetition_penalty=1.0,
            remove_invalid_values=True,
            eos_token_id=eos,
            pad_token_id=eos,
            forced_eos_token_id=eos,
            use_cache=True,
            no_repeat_ngram_size=4,
            num_return_sequences=1,
        )
        if bad_words:
            params["bad_words_ids"] = bad_words
        with torch.inference_mode():
            pixels = vlm.image_processor(image, return_tensors="pt")["pixel_values"]
            hidden = vlm.vision_tower(pixels.to(vlm.device, vlm.dtype), output_hidden_states=True).hidden_states
            patches = hidden[-2][:, 1:]  # penultimate layer, CLS token dropped
            image_embeddings = vlm.projection(patches).to(vlm.dtype)
            embed = vlm.model.get_input_embeddings()

            def text(value: str):
                ids = tokenizer.encode(value, add_special_tokens=False, return_tensors="pt").to(vlm.device)
                return embed(ids).to(vlm.dtype)

            special = vlm.special_embeddings
            embeddings = torch.cat(
                [
                    text(DIALOG_PROMPT),
                    special["SOI"][None, None, ...],
                    image_embeddings,
                    special["EOI"][None, None, ...],
                    special["USER"][None, None, ...],
                    text(self.question),
                    special["BOT"][None, None, ...],
                ],
                dim=1,
            )
            mask = torch.ones(embeddings.shape[:2], dtype=torch.long, device=vlm.device)
            out = vlm.model.generate(inputs_embeds=embeddings, attention_mask=mask, **params)
        # As in the publisher's gen_answer: the first generated token is dropped.
        return tokenizer.batch_decode(out[:, 1:], skip_special_tokens=True)[0]


class FakeFaceDescriber:
    """The stand-in of ``GENERATION_BACKEND=fake``: the same short description for every face, at once."""

    DESCRIPTION = "a smiling person with short dark hair"

    def describe(self, image: Image.Image | np.ndarray, face: Face) -> str | None:
        return self.DESCRIPTION


def make_describer(config: FaceSwapConfig, on_use=None) -> FaceDescriber:
    if config.describer_fake and config.describer_enabled:
        return FakeFaceDescriber()
    return OmniFusionDescriber(config, on_use=on_use)
