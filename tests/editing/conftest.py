"""The editing tests run the real bot on small images: outputs fit 256 px, albums close after 0.2 s."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings
from tests.conftest import make_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, max_image_side=256, album_wait_seconds=0.2)
