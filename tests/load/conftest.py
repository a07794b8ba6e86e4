"""Files for the load tests, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.load.bombs import write_png_bomb


@pytest.fixture(scope="session")
def png_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """0.34 MB on disk, 9400x9400 RGBA: 1.7 GB once Pillow decodes and converts it."""
    return write_png_bomb(tmp_path_factory.mktemp("bombs") / "bomb.png", 9400, 9400)
