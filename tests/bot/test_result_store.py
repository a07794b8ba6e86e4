"""The result store on a real photo: what is stored is what was generated, and an image is a result
only once it is published."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image
from skimage import data

from jobs.results import ResultStore


def photo(side: int = 512) -> Image.Image:
    return Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.LANCZOS)


def test_a_stored_picture_decodes_to_the_same_pixels(tmp_path):
    """Decoded by OpenCV's libpng, not by the Pillow that wrote it: the faster zlib level is lossless."""
    store = ResultStore(tmp_path)
    image = photo()
    (path,) = store.save(7, {0: image})
    decoded = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.array_equal(decoded, np.asarray(image))
    assert store.paths(7) == [path]


def test_staged_pictures_are_not_results_until_published(tmp_path):
    store = ResultStore(tmp_path)
    store.stage(3, {0: photo(64), 1: photo(64), 2: photo(64)})
    assert store.paths(3) == []  # nothing the "Original" button or a delivery could take yet
    assert [p.name for p in store.publish(3, [0, 2])] == ["0.png", "2.png"]
    assert [p.name for p in store.paths(3)] == ["0.png", "2.png"]
    assert sorted(p.name for p in store.folder(3).iterdir()) == ["0.png", "2.png"]  # image 1's file is gone


def test_discarded_staged_pictures_leave_nothing(tmp_path):
    store = ResultStore(tmp_path)
    store.stage(4, {0: photo(64)})
    store.discard_staged(4)
    assert list(store.folder(4).iterdir()) == []
