"""Tiny random-weight checkpoints of every model, written once per test session.

Register in a conftest with ``from tests.fixtures_models import tiny_models_dir  # noqa: F401``.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A KANDINSKY_MODELS_DIR holding tiny checkpoints in the real layouts (generation.tiny)."""
    from generation.tiny import write_all

    root = tmp_path_factory.mktemp("tiny_models")
    write_all(root)
    return root
