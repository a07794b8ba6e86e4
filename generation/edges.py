"""Edge maps for "keep the shapes" on Kandinsky 3.1: HED, or Canny when the HED weights are absent.

HED (holistically-nested edge detection) here is the network ControlNet's annotators use and publish
as ``ControlNetHED.pth`` in ``lllyasviel/Annotators`` (Apache-2.0): five VGG-style stages (3x3 convs
with ReLU, 2x2 max-pooling before stages 2-5), each with a 1x1 side projection to one channel; the
input is the RGB photo in 0..255 minus a learned per-channel mean (``norm``). The edge map is the
sigmoid of the mean of the five side outputs, each resized to the photo's size. The weights are an
operator download (``lllyasviel/Annotators`` -> ``ControlNetHED.pth``); stage widths are read from
the file, so a small random-weight copy works for tests.

Without that file the edges come from OpenCV's Canny detector, and the result says so.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

log = logging.getLogger(__name__)

HED_FILE = "ControlNetHED.pth"
STAGE_CONVS = (2, 2, 3, 3, 3)  # 3x3 convs per stage
FULL_WIDTHS = (64, 128, 256, 512, 512)
CANNY_THRESHOLDS = (100, 200)


class _Stage(nn.Module):
    def __init__(self, cin: int, cout: int, convs: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(*[nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1) for i in range(convs)])
        self.projection = nn.Conv2d(cout, 1, 1)

    def forward(self, x: torch.Tensor, pool: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if pool:
            x = F.max_pool2d(x, 2, 2)
        for conv in self.convs:
            x = F.relu(conv(x))
        return x, self.projection(x)


class HEDNetwork(nn.Module):
    def __init__(self, widths: tuple[int, ...] = FULL_WIDTHS) -> None:
        super().__init__()
        self.norm = nn.Parameter(torch.zeros(1, 3, 1, 1))
        cin = 3
        for i, (width, convs) in enumerate(zip(widths, STAGE_CONVS, strict=True), start=1):
            self.add_module(f"block{i}", _Stage(cin, width, convs))
            cin = width

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """``image``: (B, 3, H, W) RGB in 0..255 -> the five side outputs (logits)."""
        x, sides = image - self.norm, []
        for i in range(1, len(STAGE_CONVS) + 1):
            x, side = getattr(self, f"block{i}")(x, pool=i > 1)
            sides.append(side)
        return sides

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> HEDNetwork:
        widths = tuple(int(state[f"block{i}.convs.0.weight"].shape[0]) for i in range(1, len(STAGE_CONVS) + 1))
        model = cls(widths)
        model.load_state_dict(state, strict=True)
        return model.eval()


class EdgeDetector:
    """HED when its weights are there, Canny otherwise; ``__call__`` gives the ControlNet hint."""

    def __init__(self, hed: HEDNetwork | None, device: str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.hed = hed.to(device=device, dtype=dtype) if hed is not None else None
        self.device, self.dtype = device, dtype

    @classmethod
    def load(cls, folder: str | None, device: str = "cpu", dtype: torch.dtype = torch.float32) -> EdgeDetector:
        """HED from ``folder``/ControlNetHED.pth (a local folder or a hub repository id); Canny when
        the file is not there."""
        path = _find(folder) if folder else None
        if path is None:
            log.warning("HED weights (%s) not found in %s: Kandinsky 3.1 'keep the shapes' uses Canny edges",
                        HED_FILE, folder)
            return cls(None)
        state = torch.load(path, map_location="cpu", weights_only=True)
        return cls(HEDNetwork.from_state_dict(state), device, dtype)

    @property
    def kind(self) -> str:
        return "hed" if self.hed is not None else "canny"

    def to(self, device: str) -> EdgeDetector:
        if self.hed is not None:
            self.hed.to(device)
        self.device = device
        return self

    def memory_bytes(self) -> int:
        if self.hed is None:
            return 0
        return sum(p.numel() * p.element_size() for p in self.hed.parameters())

    @torch.no_grad()
    def edges(self, image: Image.Image, width: int, height: int) -> np.ndarray:
        """The edge map of ``image`` at width x height, float32 in [0, 1]."""
        rgb = np.asarray(image.convert("RGB").resize((width, height), Image.BICUBIC))
        if self.hed is None:
            import cv2

            gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            return cv2.Canny(gray, *CANNY_THRESHOLDS).astype(np.float32) / 255.0
        x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].to(device=self.device, dtype=self.dtype)
        sides = [F.interpolate(s.float(), size=(height, width), mode="bilinear", align_corners=False)
                 for s in self.hed(x)]
        return torch.sigmoid(torch.stack(sides).mean(0))[0, 0].cpu().numpy()

    def __call__(self, image: Image.Image, width: int, height: int) -> tuple[torch.Tensor, str]:
        """(hint (1, 3, height, width) in [0, 1], "hed" | "canny")."""
        edges = torch.from_numpy(self.edges(image, width, height))
        return edges[None, None].repeat(1, 3, 1, 1), self.kind


def _find(folder: str) -> str | None:
    if os.path.isdir(folder):
        path = Path(folder) / HED_FILE
        return str(path) if path.is_file() else None
    if os.path.sep in folder and not os.path.exists(folder):
        return None  # a local folder that is not there
    try:
        from huggingface_hub import hf_hub_download

        return hf_hub_download(repo_id=folder, filename=HED_FILE)
    except Exception:  # noqa: BLE001 - offline, or no such file: fall back to Canny
        log.warning("cannot fetch %s from %s", HED_FILE, folder, exc_info=True)
        return None
