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
    assert result.stderr.strip() == "Configuration error: BOT_TOKEN is not set"


def test_malformed_token_is_one_line_without_echoing_it(tmp_path):
    result = run_bot({"BOT_TOKEN": "not-a-token-secret123"}, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "BOT_TOKEN is malformed" in lines[0]
    assert "secret123" not in result.stderr


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
