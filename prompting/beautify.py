"""Prompt beautification: an LLM expands the user's short prompt before generation.

The Kandinsky 3 papers send the prompt to ``Intel/neural-chat-7b-v3-1`` with :data:`INSTRUCTION_TEMPLATE`
and generate from the answer; human raters preferred the results. The answer is cleaned
(:func:`clean_answer`) and cut to :data:`MAX_PROMPT_CHARS`. A timeout, an error or an empty answer
falls back to the user's own prompt, with ``fell_back=True`` so the user can be told.

Backends (:func:`build_beautifier` picks one from :class:`BeautifierSettings`):

- :class:`LocalLLMBeautifier`: a transformers causal LM in this process (fp16 on CUDA, fp32 on CPU);
  it has ``load`` / ``unload`` / ``to`` / ``memory_bytes`` so the model manager can budget it like the
  image models. torch and transformers are imported only when it loads.
- :class:`OpenAIBeautifier`: any OpenAI-compatible chat-completions server (vLLM, llama.cpp, Ollama).
- :class:`NoBeautifier`: off.

Nothing at import time touches torch: the bot process may import this module.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import aiohttp

if TYPE_CHECKING:
    from generation.sources import GenerationConfig

logger = logging.getLogger(__name__)

# The papers' system instruction, word for word (the trailing space is theirs too).
SYSTEM_INSTRUCTION = (
    "You are a prompt engineer. Your mission is to expand prompts written by user. "
    "You should provide the best prompt for text to image generation in English. "
)
# neural-chat's prompt format with that instruction: what the local backend feeds the model.
INSTRUCTION_TEMPLATE = "### System:\n" + SYSTEM_INSTRUCTION + "\n### User:\n{prompt}\n### Assistant:\n"

MAX_PROMPT_CHARS = 1000

# Why a result is not the LLM's answer (BeautifyResult.reason).
REASON_OFF = "off"
REASON_TIMEOUT = "timeout"
REASON_ERROR = "error"
REASON_EMPTY = "empty"


def build_instruction(prompt: str) -> str:
    # str.replace, not str.format: a prompt may contain braces.
    return INSTRUCTION_TEMPLATE.replace("{prompt}", prompt)


@dataclass(frozen=True)
class BeautifyResult:
    prompt: str  # the prompt to generate from
    original: str  # the user's own prompt
    fell_back: bool  # True when beautification was wanted but failed; ``prompt`` is then ``original``
    reason: str | None = None  # None when beautified; else REASON_OFF / _TIMEOUT / _ERROR / _EMPTY

    @property
    def beautified(self) -> bool:
        return self.reason is None


@runtime_checkable
class Beautifier(Protocol):
    async def beautify(self, prompt: str) -> BeautifyResult: ...


# --------------------------------------------------------------------------------------------
# Cleaning of the LLM's answer
# --------------------------------------------------------------------------------------------

# Where the model starts a new turn of the conversation or ends its text.
_TURN_MARKERS = re.compile(r"###|</s>|<\|im_end\|>|<\|eot_id\|>|<\|end\|>|^\s*(?:user|assistant|system)\s*:", re.I | re.M)
# "Prompt:", "**Expanded prompt:**", "Here is the improved prompt for text to image generation:", ...
_LABEL = re.compile(
    r"""^\s*(?:[*_#>\-]+\s*)*                     # markdown decoration
        (?:
            (?:sure|okay|ok|certainly|of\s+course)[!,.]?\s*(?:here(?:'s|\s+is)[^:\n]*)? |
            here(?:'s|\s+is)[^:\n]* |
            (?:the\s+|an?\s+|my\s+|your\s+)?
            (?:(?:final|expanded|improved|enhanced|new|better|best|refined|detailed|optimi[sz]ed|rewritten|english)\s+)*
            (?:text[\s-]+to[\s-]+image\s+)?prompt(?:\s+(?:for|in)\s+[^:\n]*)?
        )
        \s*(?:[*_]+\s*)?:\s*(?:[*_]+\s*)?""",
    re.I | re.X,
)
# A line that starts the model's commentary after the prompt.
_CHATTER = re.compile(
    r"""^\s*(?:[*_]+\s*)?(?:
        note\b | notes\b | explanation\b | this\s+prompt\b | the\s+prompt\b | this\s+(?:expanded|improved|detailed)\b |
        i\s+hope\b | hope\s+this\b | feel\s+free\b | let\s+me\s+know\b | i\s+(?:have|'ve)\s+(?:expanded|added|included)\b |
        in\s+this\s+prompt\b | by\s+(?:adding|including)\b
    )""",
    re.I | re.X,
)
_QUOTES = {'"': '"', "'": "'", "`": "`", "“": "”", "„": "“", "«": "»", "‘": "’", "”": "”"}


def _strip_quotes(text: str) -> str:
    """A prompt wrapped in quotes, with or without commentary after the closing quote, loses both."""
    text = text.strip()
    while text and text[0] in _QUOTES:
        close = _QUOTES[text[0]]
        end = text.find(close, 1)
        if end == -1:  # an opening quote only (the answer was cut): drop it
            text = text[1:].strip()
            continue
        inner = text[1:end].strip()
        rest = text[end + 1 :].strip()
        # "A cat." — or '"A cat" This prompt adds...': the quoted part is the prompt. A quote that only
        # opens the prompt ('"Red" cat') is left alone: what follows it is not a new sentence.
        if not rest or rest[0] in "\n.!" or _CHATTER.match(rest) or rest[:1].isupper():
            text = inner
        else:
            break
    return text.strip("`").strip()


def clean_answer(text: str, max_chars: int = MAX_PROMPT_CHARS) -> str:
    """The prompt in an LLM's answer: no turn markers, labels, quotes or commentary; one line; <= max_chars."""
    if not text:
        return ""
    marker = _TURN_MARKERS.search(text)
    if marker:
        text = text[: marker.start()]
    text = text.strip()
    # Labels may be stacked ("Sure! Here is the prompt:\n\nPrompt: ...") and may stand on their own line.
    for _ in range(3):
        stripped = _LABEL.sub("", text, count=1).lstrip()
        if stripped == text:
            break
        text = stripped
    text = _strip_quotes(text)
    # The prompt is the first paragraph; commentary follows a blank line or starts its own line.
    text = re.split(r"\n\s*\n", text, maxsplit=1)[0]
    kept: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+|\n+", text):
        if kept and _CHATTER.match(sentence):
            break
        kept.append(sentence)
    text = _strip_quotes(" ".join(kept))
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > max_chars:
        cut = text[:max_chars]
        # Cut at a word boundary when there is one in the last part.
        space = cut.rfind(" ")
        if space > max_chars * 0.8:
            cut = cut[:space]
        text = cut.rstrip(" ,;:-")
    return text


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------


class NoBeautifier:
    """Beautification off: the user's prompt is used as it is."""

    async def beautify(self, prompt: str) -> BeautifyResult:
        return BeautifyResult(prompt=prompt, original=prompt, fell_back=False, reason=REASON_OFF)


class FakeBeautifier:
    """The stand-in of ``GENERATION_BACKEND=fake``: a fixed, visible expansion of the prompt at once,
    so the whole beautification path (caption, "Without beautification") is tried without an LLM."""

    SUFFIX = "highly detailed, soft natural light, rich colours, sharp focus"

    async def beautify(self, prompt: str) -> BeautifyResult:
        if not prompt.strip():
            return BeautifyResult(prompt=prompt, original=prompt, fell_back=True, reason=REASON_EMPTY)
        return BeautifyResult(prompt=f"{prompt.strip()}, {self.SUFFIX}", original=prompt, fell_back=False, reason=None)


class _AnswerBeautifier:
    """Shared fallback logic: subclasses only produce the raw answer."""

    timeout_s: float
    max_chars: int

    async def _answer(self, prompt: str) -> str:
        raise NotImplementedError

    async def _prepare(self) -> None:
        """Work before the answer that the timeout does not cover (loading a local model)."""

    async def beautify(self, prompt: str) -> BeautifyResult:
        original = prompt
        if not prompt.strip():
            return BeautifyResult(prompt=prompt, original=original, fell_back=True, reason=REASON_EMPTY)
        try:
            await self._prepare()
            async with asyncio.timeout(self.timeout_s):
                answer = await self._answer(prompt)
        except TimeoutError:
            logger.warning("%s: no answer within %.1f s; using the user's prompt", type(self).__name__, self.timeout_s)
            return BeautifyResult(prompt=original, original=original, fell_back=True, reason=REASON_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the LLM falls back to the user's prompt
            # Only the type and message: request objects may carry the API key in their headers.
            logger.warning("%s failed (%s: %s); using the user's prompt", type(self).__name__, type(exc).__name__, exc)
            return BeautifyResult(prompt=original, original=original, fell_back=True, reason=REASON_ERROR)
        cleaned = clean_answer(answer or "", self.max_chars)
        if not cleaned:
            logger.info("%s gave an empty answer; using the user's prompt", type(self).__name__)
            return BeautifyResult(prompt=original, original=original, fell_back=True, reason=REASON_EMPTY)
        return BeautifyResult(prompt=cleaned, original=original, fell_back=False, reason=None)


class OpenAIBeautifier(_AnswerBeautifier):
    """An OpenAI-compatible chat-completions server (vLLM, llama.cpp server, Ollama, OpenAI itself).

    ``base_url`` is the API root, e.g. ``http://127.0.0.1:8000/v1`` (vLLM) or ``http://127.0.0.1:11434/v1``
    (Ollama); the request goes to ``{base_url}/chat/completions``. The instruction goes as the system
    message and the user's prompt as the user message: the server's chat template then lays them out the
    way the model was trained (for neural-chat that is exactly :data:`INSTRUCTION_TEMPLATE`).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        max_tokens: int = 300,
        temperature: float = 0.7,
        max_chars: int = MAX_PROMPT_CHARS,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._api_key = api_key or None
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_chars = max_chars
        self._session = session
        self._own_session = session is None

    def __repr__(self) -> str:  # never shows the key
        key = "set" if self._api_key else "none"
        return f"OpenAIBeautifier(url={self.url!r}, model={self.model!r}, api_key={key})"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    async def _answer(self, prompt: str) -> str:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        payload = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_INSTRUCTION},
                {"role": "user", "content": prompt},
            ],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": False,
        }
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with self._session.post(self.url, json=payload, headers=self._headers(), timeout=timeout) as resp:
            if resp.status != 200:
                body = (await resp.text())[:200]
                raise RuntimeError(f"HTTP {resp.status} from {self.url}: {body!r}")
            data: Any = await resp.json(content_type=None)
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise RuntimeError(f"unexpected answer from {self.url}: {str(data)[:200]!r}") from exc
        return content if isinstance(content, str) else ""

    async def close(self) -> None:
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


class LocalLLMBeautifier(_AnswerBeautifier):
    """A transformers causal LM in this process, fed :data:`INSTRUCTION_TEMPLATE`.

    ``source`` is a hub id or a local folder (``GenerationConfig.source("beautifier-llm")``). The model
    loads on first use (or when the model manager calls :meth:`load`); fp16 on CUDA, fp32 on CPU.
    Loading and generation run in a worker thread, one generation at a time; the timeout covers the
    generation only (a first prompt waits for the model to load), and a timed-out generation is stopped at
    its next token.

    Under the model manager: the manager may park the model on the CPU with :meth:`to` (the dtype stays)
    and counts :meth:`memory_bytes` against the GPU budget; ``on_use`` is called in the worker thread
    before every generation so the manager can bring the model back to the GPU, moving image models
    out of the way. Without ``on_use`` the beautifier moves itself back.
    """

    name = "beautifier-llm"

    def __init__(
        self,
        source: str,
        *,
        device: str = "auto",
        dtype: str = "fp16",
        timeout_s: float = 60.0,
        max_new_tokens: int = 256,
        temperature: float = 0.0,  # 0: greedy (reproducible); > 0: sampling
        max_chars: int = MAX_PROMPT_CHARS,
        local_files_only: bool = False,
        on_use: Callable[[LocalLLMBeautifier], None] | None = None,
        retry_load_after_s: float = 300.0,
    ) -> None:
        self.source = source
        self.device_setting = device
        self.dtype_setting = dtype
        self.timeout_s = timeout_s
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.max_chars = max_chars
        self.local_files_only = local_files_only
        self.on_use = on_use
        self.retry_load_after_s = retry_load_after_s
        self._load_failed_at: float | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: str | None = None
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: GenerationConfig, **kwargs: Any) -> LocalLLMBeautifier:
        kwargs.setdefault("device", config.device)
        kwargs.setdefault("dtype", config.dtype)
        return cls(config.source("beautifier-llm"), **kwargs)

    def __repr__(self) -> str:
        return f"LocalLLMBeautifier(source={self.source!r}, loaded={self.loaded}, device={self._device!r})"

    # -- the model manager's interface -------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def device(self) -> str | None:
        return self._device

    @property
    def execution_device(self) -> str:
        """Where generation runs: the configured device ("auto": CUDA when there is one)."""
        return self._resolve_device(None)

    def _resolve_device(self, device: str | None) -> str:
        import torch

        device = device or self.device_setting
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return device

    def _torch_dtype(self, device: str) -> Any:
        import torch

        if not device.startswith("cuda"):
            return torch.float32  # fp16 matmuls on CPU are slow or missing
        return torch.bfloat16 if self.dtype_setting == "bf16" else torch.float16

    def load(self, device: str | None = None) -> None:
        """Load the tokenizer and the model onto ``device`` (default: the execution device), in the
        execution device's dtype (blocking; call it from a worker thread)."""
        with self._load_lock:
            if self._model is not None:
                if device is not None and self._resolve_device(device) != self._device:
                    self.to(device)
                return
            from transformers import AutoModelForCausalLM, AutoTokenizer

            target = self._resolve_device(device)
            tokenizer = AutoTokenizer.from_pretrained(self.source, local_files_only=self.local_files_only)
            model = AutoModelForCausalLM.from_pretrained(
                self.source, dtype=self._torch_dtype(self.execution_device), local_files_only=self.local_files_only
            )
            model.to(target)
            model.eval()
            self._tokenizer, self._model, self._device = tokenizer, model, target
            logger.info("beautifier LLM %s loaded on %s (%.2f GB)", self.source, target, self.memory_bytes() / 2**30)

    def unload(self) -> None:
        with self._load_lock, self._generate_lock:
            if self._model is None:
                return
            self._model = None
            self._tokenizer = None
            device, self._device = self._device, None
            import gc

            gc.collect()
            if device and device.startswith("cuda"):
                import torch

                torch.cuda.empty_cache()

    def to(self, device: str) -> None:
        """Move a loaded model (the manager offloads it to the CPU to make room, and back)."""
        target = self._resolve_device(device)
        with self._generate_lock:
            if self._model is None or target == self._device:
                return
            # The dtype stays: the manager parks the model on the CPU, it does not run it there.
            self._model.to(target)
            self._device = target
            if not target.startswith("cuda"):
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()

    def memory_bytes(self) -> int:
        model = self._model
        if model is None:
            return 0
        return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))

    # -- generation ---------------------------------------------------------------------------

    def generate_text(self, prompt: str, cancel: threading.Event | None = None) -> str:
        """The raw answer of the model to the instruction with ``prompt`` (blocking).

        Setting ``cancel`` stops the generation at its next token (what a timeout does).
        """
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        cancel = cancel or threading.Event()

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

        if not self.loaded:
            # Under the model manager the model is loaded parked on the CPU; the manager then makes
            # room on the GPU before moving it there.
            self.load("cpu" if self.on_use is not None else None)
        if self.on_use is not None:
            self.on_use(self)  # the model manager places the model on the GPU
        elif self._device != self.execution_device:
            self.to(self.execution_device)  # parked on the CPU: back to where it runs
        with self._generate_lock:
            if cancel.is_set():  # timed out while the model was loading or another prompt ran
                return ""
            tokenizer, model = self._tokenizer, self._model
            inputs = tokenizer(build_instruction(prompt), return_tensors="pt").to(self._device)
            eos = tokenizer.eos_token_id
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
            sampling: dict[str, Any] = (
                {"do_sample": True, "temperature": self.temperature, "top_p": 0.95}
                if self.temperature > 0
                else {"do_sample": False}
            )
            with torch.inference_mode():
                output = model.generate(
                    **inputs,
                    max_new_tokens=self.max_new_tokens,
                    eos_token_id=eos,
                    pad_token_id=pad,
                    stopping_criteria=StoppingCriteriaList([_Cancelled()]),
                    **sampling,
                )
            new_tokens = output[0, inputs["input_ids"].shape[1] :]
            return tokenizer.decode(new_tokens, skip_special_tokens=True)

    async def _prepare(self) -> None:
        # The first prompt waits for the model to load, like the first picture waits for the image
        # model; the timeout is for the answer only. After a failed load (a missing checkpoint, no
        # network) prompts fall back at once for a while instead of each waiting for the same failure.
        if self.loaded:
            return
        failed_at = self._load_failed_at
        if failed_at is not None and time.monotonic() - failed_at < self.retry_load_after_s:
            raise RuntimeError(f"the beautifier LLM {self.source} failed to load recently")
        try:
            await asyncio.to_thread(self.load)
        except Exception:
            self._load_failed_at = time.monotonic()
            raise
        self._load_failed_at = None

    async def _answer(self, prompt: str) -> str:
        # Never on the event loop: loading and generating block for seconds. A thread cannot be killed,
        # so a timeout (the task is cancelled) sets the event and the generation stops at its next token.
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(self.generate_text, prompt, cancel)
        finally:
            cancel.set()


# --------------------------------------------------------------------------------------------
# Settings and the factory
# --------------------------------------------------------------------------------------------

BackendName = Literal["local", "openai", "off", "fake"]


@dataclass
class BeautifierSettings:
    backend: BackendName = "local"
    timeout_s: float = 30.0
    max_chars: int = MAX_PROMPT_CHARS
    # local: None = GenerationConfig.source("beautifier-llm") (Intel/neural-chat-7b-v3-1)
    local_model: str | None = None
    local_max_new_tokens: int = 256
    local_temperature: float = 0.0
    # openai
    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_model: str = "Intel/neural-chat-7b-v3-1"
    openai_api_key: str | None = field(default=None, repr=False)
    openai_max_tokens: int = 300
    openai_temperature: float = 0.7


def build_beautifier(settings: BeautifierSettings, config: GenerationConfig | None = None) -> Beautifier:
    """The backend the settings name. ``config`` gives the local model's source, device and dtype."""
    if settings.backend == "off":
        return NoBeautifier()
    if settings.backend == "fake":
        return FakeBeautifier()
    if settings.backend == "openai":
        return OpenAIBeautifier(
            settings.openai_base_url,
            settings.openai_model,
            settings.openai_api_key,
            timeout_s=settings.timeout_s,
            max_tokens=settings.openai_max_tokens,
            temperature=settings.openai_temperature,
            max_chars=settings.max_chars,
        )
    if settings.backend == "local":
        from generation.sources import GenerationConfig

        config = config or GenerationConfig()
        source = settings.local_model or config.source("beautifier-llm")
        return LocalLLMBeautifier(
            source,
            device=config.device,
            dtype=config.dtype,
            timeout_s=settings.timeout_s,
            max_new_tokens=settings.local_max_new_tokens,
            temperature=settings.local_temperature,
            max_chars=settings.max_chars,
        )
    raise ValueError(f"unknown beautifier backend {settings.backend!r} (local | openai | off)")


def share_gpu_budget(beautifier: Beautifier, backend: object) -> None:
    """Put a local beautifier LLM under the image backend's model manager (its VRAM budget and LRU),
    when the backend has one (the diffusers backend); other beautifiers need no GPU."""
    manager = getattr(backend, "manager", None)
    if isinstance(beautifier, LocalLLMBeautifier) and manager is not None:
        beautifier.on_use = lambda llm: manager.use_external(llm.name, llm)
