"""Plurals through Fluent's plural selectors: English one/other, Russian one/few/many."""

import re

import pytest
from aiogram.methods import SendMessage

from bot.i18n import translator
from generation.fake import FakeBackend
from tests.conftest import make_settings, start_harness, stop_harness
from tests.fakes import callback_update, message_update


@pytest.mark.parametrize(
    ("locale", "limit", "expected"),
    [
        ("en", 1, "You already have 1 picture in progress. Wait for it or /cancel."),
        ("en", 2, "You already have 2 pictures in progress. Wait for them or /cancel."),
        ("ru", 1, "У вас уже 1 картинка в работе. Дождитесь её или нажмите /cancel."),
        ("ru", 3, "У вас уже 3 картинки в работе. Дождитесь их или нажмите /cancel."),
        ("ru", 5, "У вас уже 5 картинок в работе. Дождитесь их или нажмите /cancel."),
    ],
)
async def test_the_pending_limit_message_agrees_with_its_number(tmp_path, locale, limit, expected):
    # Slow steps: no job may finish (and free a place) while the messages are fed.
    h = await start_harness(make_settings(tmp_path, max_pending_per_user=limit), FakeBackend(step_seconds=0.5))
    try:
        if locale == "ru":
            await h.feed(callback_update("lang:ru"))
        for i in range(limit + 1):
            await h.feed(message_update(f"picture {i}"))
        assert h.session.of(SendMessage)[-1].text == expected
        assert len(await h.jobs()) == limit
    finally:
        await stop_harness(h)


async def test_a_prompt_one_character_too_long_in_russian(harness):
    await harness.feed(callback_update("lang:ru"))
    await harness.feed(message_update("я" * 1001))
    assert harness.session.of(SendMessage)[-1].text == (
        "В промпте 1\xa0001 символ, а можно не больше 1\xa0000. Сократите его, пожалуйста."  # Russian groups digits with a no-break space
    )


def test_russian_forms_and_terms():
    t = translator()
    assert t("result-album-buttons", "ru", count=2, seeds="1, 2") == "⬆️ 2 картинки, сиды 1, 2"
    assert t("result-album-buttons", "ru", count=4, seeds="s") == "⬆️ 4 картинки, сиды s"
    assert t("result-album-buttons", "en", count=2, seeds="1, 2") == "⬆️ 2 images, seeds 1, 2"
    assert t("negative-ask", "ru", limit=21).startswith("Пришлите негативный промпт (чего не должно быть на картинке), до 21 символа.")
    assert t("admin-btn-broadcast-send", "ru", count=1) == "📣 Отправить 1 пользователю"
    assert t("admin-btn-broadcast-send", "en", count=1) == "📣 Send to 1 user"
    # One Russian word for the prompt and one for the seed, everywhere.
    from pathlib import Path

    import bot

    texts = "\n".join(p.read_text() for p in (Path(bot.__file__).parent / "locales" / "ru").glob("*.ftl"))
    # The texts only: comments and message ids (``btn-reuse-seed = ...``) left out.
    messages = [re.sub(r"^[\w-]+ = ", "", line) for line in texts.splitlines() if not line.startswith("#")]
    assert not [m for m in messages if "seed" in m and "--seed" not in m and "$seed" not in m]
    for wrong in ("такой запрос", "Ваш запрос", "Улучшаю запрос", "Улучшение запроса", "другой запрос", "зерно", "промт "):
        assert not [m for m in messages if wrong in m], wrong
