import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings, describe_error
from tests.fakes import TOKEN

ROOT = Path(__file__).resolve().parents[2]


def run_bot(env_overrides: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN",)}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-m", "app"], cwd=tmp_path, env=env | {"PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60,
    )


def test_missing_token_is_one_line(tmp_path):
    result = run_bot({}, tmp_path)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line.startswith("Configuration error: BOT_TOKEN is not set: a token looks like ") and "\n" not in line
    assert "@BotFather" in line and "/newbot" in line and "scripts/try.sh" in line


def test_malformed_token_is_one_line_without_echoing_it(tmp_path):
    result = run_bot({"BOT_TOKEN": "not-a-token-secret123"}, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "BOT_TOKEN is malformed: a token looks like 110201543:AAH" in lines[0]
    assert "@BotFather" in lines[0]
    assert "secret123" not in result.stderr


def test_the_readme_placeholder_is_refused_with_the_help(tmp_path):
    result = run_bot({"BOT_TOKEN": "123456789:your-token-from-botfather"}, tmp_path)
    assert result.returncode == 2
    assert "get one from @BotFather" in result.stderr


def test_settings_from_env_and_dotenv(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text(f"BOT_TOKEN={TOKEN}\nADMIN_IDS=1, 2,3\nMAX_IMAGE_SIDE=512\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BOT_TOKEN", raising=False)
    settings = Settings()
    assert settings.admin_ids == [1, 2, 3] and settings.max_image_side == 512
    assert settings.db_url == "sqlite+aiosqlite:///data/bot.db"
    assert TOKEN not in repr(settings)  # the token is a secret


def test_invalid_numbers_are_reported_by_name():
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, bot_token=TOKEN, max_pending_per_user=0)
    assert describe_error(info.value).startswith("Configuration error: MAX_PENDING_PER_USER")


async def test_the_fake_backend_uses_stand_ins_that_download_nothing(monkeypatch):
    import huggingface_hub
    from PIL import Image

    from faceswap.describe import FakeFaceDescriber, OmniFusionDescriber, make_describer
    from prompting.beautify import FakeBeautifier, LocalLLMBeautifier, build_beautifier

    def no_download(*args, **kwargs):
        raise AssertionError("a hub download with GENERATION_BACKEND=fake")

    for name in ("hf_hub_download", "snapshot_download"):
        monkeypatch.setattr(huggingface_hub, name, no_download)
    fake = Settings(_env_file=None, bot_token=TOKEN, generation_backend="fake")
    beautifier = build_beautifier(fake.beautifier_settings(), fake.generation_config())
    assert isinstance(beautifier, FakeBeautifier)
    result = await beautifier.beautify("a cat")
    assert result.beautified and result.prompt.startswith("a cat, ") and result.original == "a cat"
    describer = make_describer(fake.faceswap_config())
    assert isinstance(describer, FakeFaceDescriber)
    assert describer.describe(Image.new("RGB", (64, 64)), None)  # type: ignore[arg-type]

    # The operator's explicit choices stay: an OpenAI-compatible server, or the describer switched off.
    assert Settings(_env_file=None, bot_token=TOKEN, generation_backend="fake", beautify_backend="openai").beautifier_settings().backend == "openai"
    off = Settings(_env_file=None, bot_token=TOKEN, generation_backend="fake", faceswap_describer=False)
    assert isinstance(make_describer(off.faceswap_config()), OmniFusionDescriber)  # off: answers None
    real = Settings(_env_file=None, bot_token=TOKEN)
    assert isinstance(build_beautifier(real.beautifier_settings(), real.generation_config()), LocalLLMBeautifier)
    assert isinstance(make_describer(real.faceswap_config()), OmniFusionDescriber)


def test_torch_compile_mode_reaches_the_generation_config_and_a_wrong_one_is_named():
    settings = Settings(_env_file=None, bot_token=TOKEN, torch_compile=True, torch_compile_mode="reduce-overhead")
    config = settings.generation_config()
    assert config.compile and config.compile_mode == "reduce-overhead"
    assert Settings(_env_file=None, bot_token=TOKEN).generation_config().compile_mode == "default"
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, bot_token=TOKEN, torch_compile_mode="fastest")
    assert describe_error(info.value).startswith("Configuration error: TORCH_COMPILE_MODE")
