"""Fixtures for the Kandinsky 2.2 tests: tiny checkpoints written once per session, the loaded model,
and small real photos. Import the fixtures into a test module to use them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from generation.backend import GenerationRequest, Mode, ModelId


# Test modules import these fixtures, and pytest then makes a session fixture once per importing
# module: the cache keeps it to one write and one load per session.
_loaded: dict[Path, Any] = {}


@pytest.fixture(scope="session")
def k22_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from generation.tiny_k22 import write_k22

    root = tmp_path_factory.getbasetemp() / "k22-models"
    done = root / ".written"
    if not done.exists():
        write_k22(root)
        done.touch()
    return root


@pytest.fixture(scope="session")
def k22(k22_models_dir: Path) -> Any:
    """One loaded ``Kandinsky22`` shared by the tests that only run it (no placement changes)."""
    from generation.k22 import Kandinsky22
    from generation.sources import GenerationConfig

    if k22_models_dir not in _loaded:
        config = GenerationConfig(models_dir=k22_models_dir)
        _loaded[k22_models_dir] = Kandinsky22.load(config, "cpu", torch.float32)
    return _loaded[k22_models_dir]


@pytest.fixture
def torch_one_thread():
    """Run a test with one torch thread: the tiny models gain nothing from threads, and on a
    shared, busy CPU two spinning threads made these tests ten times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _photo(name: str, size: tuple[int, int]) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB").resize(size, Image.Resampling.BICUBIC)


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    """Real photos from scikit-image, small and of different shapes."""
    return {
        "astronaut": _photo("astronaut", (96, 96)),
        "coffee": _photo("coffee", (120, 80)),
        "chelsea": _photo("chelsea", (90, 60)),
        "rocket": _photo("rocket", (80, 120)),
    }


def k22_request(mode: Mode, **overrides: Any) -> GenerationRequest:
    """A small, quick request: 3 decoder steps, 2 prior steps."""
    values: dict[str, Any] = dict(
        mode=mode,
        model=ModelId.K22,
        prompt="a red cat, oil painting",
        negative_prompt=None,
        width=128,
        height=64,
        num_images=1,
        seed=7,
        steps=3,
        extra={"prior_steps": 2},
    )
    values.update(overrides)
    return GenerationRequest(**values)


def no_progress(step: int, total: int) -> None:
    pass


def arrays(images: list[Image.Image]) -> list[np.ndarray]:
    return [np.asarray(im).astype(np.int16) for im in images]


class StepRecorder:
    """A progress callback that records its calls and can cancel at a given step."""

    def __init__(self, cancel_at: int | None = None, exc: Callable[[], BaseException] | None = None) -> None:
        self.calls: list[tuple[int, int]] = []
        self.cancel_at = cancel_at
        self.exc = exc

    def __call__(self, step: int, total: int) -> None:
        self.calls.append((step, total))
        if self.cancel_at is not None and step == self.cancel_at:
            raise self.exc() if self.exc else RuntimeError("cancel")
