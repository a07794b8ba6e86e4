"""Keep a chosen style inside the model's text context.

Styles append their text to the prompt (``"{prompt}, in anime style, ..."``) and beautified prompts run
long, while the text encoders read a fixed number of tokens (Kandinsky 3: 128, Kandinsky 2.2's CLIP: 77)
and cut the rest, i.e. the style. :func:`fit_to_context` shortens the prompt's own part instead, on the
model's tokenizer, so the style's tokens always reach the model.
"""

from __future__ import annotations

from typing import Any


def _length(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, truncation=False)["input_ids"])  # special tokens included


def fit_to_context(tokenizer: Any, prompt: str, style_suffix: str, max_tokens: int) -> str:
    """``prompt`` unchanged if it fits ``max_tokens``; else its part before ``style_suffix`` cut (on
    token boundaries) so that the whole, style included, fits. A prompt that does not end with the
    suffix (no style, or rewritten since) is returned as is: the encoder's own truncation applies."""
    if not style_suffix or not prompt.endswith(style_suffix) or _length(tokenizer, prompt) <= max_tokens:
        return prompt
    head = prompt[: -len(style_suffix)]
    ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    keep = min(len(ids), max_tokens - _length(tokenizer, style_suffix))
    # Decoding and encoding again can merge or split a token at the cut: step back until it fits.
    while keep > 0:
        candidate = tokenizer.decode(ids[:keep], skip_special_tokens=True).rstrip(" ,") + style_suffix
        if _length(tokenizer, candidate) <= max_tokens:
            return candidate
        keep -= 1
    return style_suffix.lstrip(" ,")
