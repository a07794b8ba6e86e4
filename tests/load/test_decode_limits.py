"""Hostile images: decode bombs cost nothing, only PNG, JPEG and WebP reach Pillow, decodes are capped.

Peak memory is measured in a fresh process per case (``tests/load/decode_probe.py``): the paths
are the editing input check, the face photo and the NSFW check of an upload.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from aiogram.methods import SendMessage
from PIL import Image, ImageFile

from faceswap.service import open_photo
from generation import images
from generation.images import InputImageError, decode_user_image, prepare_input_image
from prompting.safety import ImageSafety
from tests.editing.helpers import document_update
from tests.load.bombs import EPS
from tests.photos import photo_bytes

ROOT = Path(__file__).resolve().parents[2]
MB_LIMIT = 300


def _probe(path: Path, at_once: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.load.decode_probe", str(path), "--at-once", str(at_once)],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("at_once", [1, 4])
def test_png_bomb_is_refused_from_its_header(png_bomb, at_once):
    assert png_bomb.stat().st_size < 400_000
    result = _probe(png_bomb, at_once)
    grew = result["peak_mb"] - result["before_mb"]
    assert grew < MB_LIMIT, f"decoding path took {grew:.0f} MB"
    expected = [f"{path}:InputImageError:too_many_pixels" for path in ("edit", "face", "nsfw") for _ in range(at_once)]
    assert result["answers"] == expected


@pytest.fixture
def plugin_spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every Pillow plugin other than PNG, JPEG and WebP that is asked about (or given) a file."""
    Image.init()
    seen: list[str] = []
    for fmt, (factory, accept) in list(Image.OPEN.items()):
        if fmt in images.USER_IMAGE_FORMATS:
            continue

        def spy_accept(prefix: bytes, fmt: str = fmt, accept: Any = accept) -> Any:
            seen.append(fmt)
            return accept(prefix) if accept else True

        def spy_factory(*args: Any, fmt: str = fmt, factory: Any = factory) -> Any:
            seen.append(fmt)
            return factory(*args)

        monkeypatch.setitem(Image.OPEN, fmt, (spy_factory, spy_accept))
    return seen


def test_eps_never_reaches_another_plugin(plugin_spy):
    safety = ImageSafety()
    for label, call in {
        "edit": lambda: prepare_input_image(EPS, 1024),
        "decode": lambda: decode_user_image(EPS),
        "face": lambda: open_photo(EPS),
        "nsfw": lambda: safety.score(EPS),
    }.items():
        with pytest.raises(InputImageError) as err:
            call()
        assert err.value.code == "not_image", label
    assert plugin_spy == []


async def test_eps_named_png_is_refused_in_the_chat(harness, plugin_spy):
    harness.session.files["eps"] = EPS
    await harness.feed(document_update("eps", "image/png", "cat.png", caption="a watercolour"))
    replies = [m.text for m in harness.session.of(SendMessage)]
    assert len(replies) == 1 and "not a picture" in replies[0], replies
    assert await harness.jobs() == []
    assert plugin_spy == []


async def test_too_many_pixels_gets_its_answer(harness, tmp_path):
    from tests.load.bombs import write_png_bomb

    harness.session.files["big"] = write_png_bomb(tmp_path / "big.png", 6000, 5000).read_bytes()  # 30 MP
    await harness.feed(document_update("big", "image/png", "big.png", caption="a watercolour"))
    replies = [m.text for m in harness.session.of(SendMessage)]
    assert len(replies) == 1 and "at most 25 megapixels" in replies[0], replies
    assert await harness.jobs() == []


def test_decodes_run_at_most_two_at_once(monkeypatch):
    """Six users' photos at once: two decodes run, the others wait (and no decode runs on a caller's thread)."""
    data = photo_bytes("astronaut", "PNG")
    running = 0
    most = 0
    threads: set[str] = set()
    lock = threading.Lock()
    real_load = ImageFile.ImageFile.load

    def slow_load(self: ImageFile.ImageFile) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.add(threading.current_thread().name)
        try:
            time.sleep(0.2)
            return real_load(self)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(ImageFile.ImageFile, "load", slow_load)
    callers = [threading.Thread(target=prepare_input_image, args=(data, 256)) for _ in range(6)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert most == images.MAX_CONCURRENT_DECODES == 2
    assert all(name.startswith("image-decode") for name in threads), threads
