"""Restore stage: GFPGAN v1.4 on each face of the swapped picture.

Does what ``gfpgan.GFPGANer.enhance(img, has_aligned=False, paste_back=True)`` does, with the
faces the pipeline already found instead of facexlib's RetinaFace (whose weights facexlib would
download at run time): align each face to the FFHQ 5-point template at 512 px, run
GFPGANv1Clean, and paste the restored crop back through the inverse transform with a feathered
mask. The network is our own :mod:`faceswap.gfpgan_net` (checked against the gfpgan package's); the
checkpoint is the publisher's ``GFPGANv1.4.pth``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from faceswap.config import FaceSwapConfig
from faceswap.detect import Face
from faceswap.loading import LoadOnce

log = logging.getLogger(__name__)

# facexlib's FaceRestoreHelper template for 5 points (eyes, nose, mouth corners) at 512 px.
FFHQ_TEMPLATE_512 = np.array(
    [[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935], [201.26117, 371.41043], [313.08905, 371.15118]],
    dtype=np.float32,
)
# GFPGANer(arch="clean", channel_multiplier=2): the v1.3 / v1.4 generator (GFPGANClean's arguments).
GFPGAN_V14_ARCH: dict[str, Any] = dict(
    out_size=512, num_style_feat=512, channel_multiplier=2, num_mlp=8, narrow=1, sft_half=True
)


class FaceRestorer(Protocol):
    def restore(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """The picture (RGB uint8) with the given faces restored."""
        ...


def torch_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_gfpgan(model_path: Path, arch: dict[str, Any] | None = None, device: str = "cpu"):
    """:class:`faceswap.gfpgan_net.GFPGANClean` with the checkpoint's ``params_ema`` (or ``params``)
    loaded strictly."""
    import torch

    from faceswap.gfpgan_net import GFPGANClean

    with torch.device("meta"):
        net = GFPGANClean(**(arch or GFPGAN_V14_ARCH))
    checkpoint = torch.load(model_path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or not ({"params_ema", "params"} & set(checkpoint)):
        raise ValueError(f"{model_path} is not a GFPGAN checkpoint (no params_ema / params)")
    key = "params_ema" if "params_ema" in checkpoint else "params"
    net.load_state_dict(checkpoint[key], strict=True, assign=True)
    return net.eval().requires_grad_(False).to(device)


class PlacedModule:
    """One network as a model the model manager can place (``name``, ``device``, ``to``, ``memory_bytes``)."""

    def __init__(self, name: str, module, device: str = "cpu") -> None:
        self.name = name
        self.module = module
        self.device = device

    def to(self, device: str) -> PlacedModule:
        self.module.to(device)
        self.device = str(device)
        return self

    def memory_bytes(self) -> int:
        tensors = [*self.module.parameters(), *self.module.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors)


class GfpganRestorer:
    def __init__(
        self,
        model_path: Path,
        device: str = "auto",
        arch: dict[str, Any] | None = None,
        on_use=None,
    ) -> None:
        self.model_path = Path(model_path)
        self.device = device
        self.arch = dict(arch or GFPGAN_V14_ARCH)
        self.size = int(self.arch["out_size"])
        # Loaded on the CPU once; a bad file is remembered (LoadOnce). Without a model manager the
        # network goes straight to the configured device.
        place = on_use or (lambda model: model.to(torch_device(self.device)))
        self._model = LoadOnce(f"GFPGAN ({self.model_path})", self._load, place)

    def _load(self) -> PlacedModule:
        return PlacedModule("gfpgan", load_gfpgan(self.model_path, self.arch, "cpu"))

    @property
    def net(self):
        return self._model.get().module

    def restore(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        result = image
        for face in faces:
            result = self._restore_one(result, face)
        return result

    def _restore_one(self, image: np.ndarray, face: Face) -> np.ndarray:
        import torch

        template = FFHQ_TEMPLATE_512 * (self.size / 512.0)
        # facexlib aligns with a least-median similarity fit, as here.
        matrix, _ = cv2.estimateAffinePartial2D(face.five_points, template, method=cv2.LMEDS)
        if matrix is None:
            return image
        # facexlib pads with this grey outside the picture.
        crop = cv2.warpAffine(image, matrix, (self.size, self.size), borderValue=(135, 133, 132))
        net = self.net
        parameter = next(net.parameters())
        x = torch.from_numpy(crop.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
        with torch.inference_mode():
            # GFPGANer feeds RGB in [-1, 1] and reads RGB in [-1, 1].
            out = net(x.to(parameter.device, parameter.dtype))
        restored = ((out[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()

        # Paste back: the inverse transform, and a mask that fades out over the crop's border.
        height, width = image.shape[:2]
        inverse = cv2.invertAffineTransform(matrix)
        face_back = cv2.warpAffine(restored, inverse, (width, height))
        border = max(2, self.size // 16)
        mask = np.zeros((self.size, self.size), np.float32)
        mask[border:-border, border:-border] = 1.0
        mask = cv2.GaussianBlur(mask, (2 * border + 1, 2 * border + 1), 0)
        mask_back = cv2.warpAffine(mask, inverse, (width, height))[..., None]
        blended = mask_back * face_back.astype(np.float32) + (1 - mask_back) * image.astype(np.float32)
        return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def make_restorer(config: FaceSwapConfig, on_use=None) -> FaceRestorer | None:
    if not config.restore_enabled:
        log.info("face restore: switched off, skipped")
        return None
    if not config.gfpgan_path or not Path(config.gfpgan_path).is_file():
        log.info("face restore: GFPGAN weights not found, skipped")
        return None
    return GfpganRestorer(config.gfpgan_path, device=config.device, on_use=on_use)
