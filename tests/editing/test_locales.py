"""Every string the editing handlers build a key for exists in English and Russian."""

import re
from pathlib import Path

import pytest

from bot.i18n import LOCALES, translator
from handlers.editing.flow import STEP_KEYS, STRENGTHS

LOCALES_DIR = Path(__file__).resolve().parents[2] / "bot" / "locales"
REJECT_CODES = ("not_image", "animated", "sticker", "too_small", "bad_ratio", "too_big", "one_photo", "too_many")


def keys(locale: str) -> set[str]:
    text = (LOCALES_DIR / locale / "editing.ftl").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][\w-]*) =", text, flags=re.M))


def test_both_languages_have_the_same_keys():
    assert keys("en") == keys("ru")


@pytest.mark.parametrize("locale", LOCALES)
def test_dynamic_keys_exist(locale):
    t = translator()
    needed = [f"edit-reject-{code}" for code in REJECT_CODES]
    needed += [f"edit-strength-{level}" for level in STRENGTHS]
    needed += list(STEP_KEYS.values())
    needed += [k.replace("edit-restyle-", "edit-shapes-") for k in STEP_KEYS.values() if k.startswith("edit-restyle-")]
    needed += ["job-error-input_missing", "job-error-input_invalid"]
    needed += [f"cmd-{c}" for c in ("restyle", "restyle_shapes", "style", "fuse", "mix", "variations")]
    missing = [k for k in needed if not t.has(k, locale)]
    assert missing == []
