"""Fixtures of the generation tests: the tiny checkpoints and a CPU backend on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures_models import tiny_models_dir  # noqa: F401 - a session fixture


def pytest_configure(config: pytest.Config) -> None:
    # The tiny models are far too small to gain from intra-op threads, and on a shared 2-core machine
    # OpenMP's spinning threads make every step 20x slower under load.
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_config(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    from generation.sources import GenerationConfig

    return GenerationConfig(
        models_dir=tiny_models_dir,
        device="cpu",
        max_image_side=1024,
        cache_dir=tmp_path_factory.mktemp("converted"),
    )


@pytest.fixture(scope="session")
def backend(tiny_config):
    """One backend for the session: the tiny models load once."""
    from generation.diffusers_backend import DiffusersBackend

    return DiffusersBackend(tiny_config)
