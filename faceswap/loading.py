"""Loading a face model once, and remembering why it failed.

A face-swap job may need OmniFusion, GHOST and GFPGAN. Each loads on first use (on the CPU), and the
model manager then places it on the GPU under the VRAM budget (``on_use``). When a checkpoint is
missing or broken the failure is remembered, so the next ``@me`` fails at once with the same clear
message instead of reading gigabytes again; the operator fixes the file and restarts the worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class FaceModelUnavailable(Exception):
    """A face model's checkpoint is missing or does not load; the message names the file."""


class LoadOnce(Generic[T]):
    def __init__(self, label: str, load: Callable[[], T], on_use: Callable[[T], None] | None = None) -> None:
        self.label = label
        self._load = load
        self.on_use = on_use
        self._value: T | None = None
        self._error: FaceModelUnavailable | None = None
        self._lock = threading.Lock()

    @property
    def failed(self) -> bool:
        return self._error is not None

    def get(self) -> T:
        with self._lock:
            if self._error is not None:
                raise self._error
            if self._value is None:
                try:
                    self._value = self._load()
                except FaceModelUnavailable as exc:
                    self._error = exc
                    raise
                except (OSError, ValueError, KeyError, RuntimeError, EOFError) as exc:
                    # A missing file, a truncated or foreign checkpoint, a state dict that does not
                    # fit: all the operator's to fix. (torch.OutOfMemoryError is a RuntimeError: it
                    # is not remembered, the next job tries again once memory is free.)
                    if type(exc).__name__ == "OutOfMemoryError":
                        raise
                    self._error = FaceModelUnavailable(f"{self.label}: {type(exc).__name__}: {exc}")
                    raise self._error from exc
            value = self._value
        if self.on_use is not None:
            self.on_use(value)  # placement on the GPU; an out-of-memory here leaves the model loaded
        return value
