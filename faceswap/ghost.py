"""GHOST (ai-forever/ghost) face swap in PyTorch, from its published checkpoints.

The operator downloads two files from GHOST's releases (see README, "Face swap"):

- ``G_unet_2blocks.pth``: the AEI-Net generator (:class:`faceswap.ghost_nets.AEINet`);
- ``backbone.pth``: GHOST's own ArcFace iresnet100 (:class:`faceswap.ghost_nets.IResNet`).

GHOST's download script also fetches insightface's ``glintr100.onnx``: a *different* ArcFace whose
embedding the generator was not trained on. It is refused by name here and never loaded.

One swap does what GHOST's ``inference.py`` does for an image:

1. the source face is aligned to 224 px with insightface 0.2.1's five pose templates
   (:func:`estimate_norm`), scaled to [-1, 1], halved to 112 px (bilinear, corners aligned) and
   embedded by the ArcFace network; the embedding goes to the generator unnormalised;
2. the target face is aligned the same way, resized to 256 px, swapped by the generator, turned back
   to 8-bit (truncated, as GHOST does) and resized to 224 px;
3. the result is pasted back through the inverse alignment under GHOST's blending mask
   (:func:`blend_mask`: the landmark hull with raised eyebrows, eroded and blurred by how far the
   generated jaw line moved from the target's).

Each step is checked against GHOST's own code (tests/reference/ghost.npz).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from skimage.transform import SimilarityTransform

from faceswap.detect import Face

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# insightface 0.2.1's five pose templates at 112 px (left profile, left, frontal, right, right
# profile): eye centres, nose tip, mouth corners. GHOST aligns with mode "None" at 224 px: doubled.
TEMPLATES_112 = np.array(
    [
        [[51.642, 50.115], [57.617, 49.990], [35.740, 69.007], [51.157, 89.050], [57.025, 89.702]],
        [[45.031, 50.118], [65.568, 50.872], [39.677, 68.111], [45.177, 86.190], [64.246, 86.758]],
        [[39.730, 51.138], [72.270, 51.138], [56.000, 68.493], [42.463, 87.010], [69.537, 87.010]],
        [[46.845, 50.872], [67.382, 50.118], [72.737, 68.111], [48.167, 86.758], [67.236, 86.190]],
        [[54.796, 49.990], [60.771, 50.115], [76.673, 69.007], [55.388, 89.702], [61.257, 89.050]],
    ],
    dtype=np.float32,
)
CROP = 224  # GHOST's alignment size
GENERATOR_SIZE = 256
ARCFACE_SIZE = 112
WRONG_ARCFACE = "glintr100.onnx"  # insightface's ArcFace: runs, but carries the wrong identity


class GhostWeightsError(Exception):
    """GHOST's files are missing, are the wrong files, or do not load; the message says which."""


def estimate_norm(points5: np.ndarray, size: int = CROP) -> tuple[np.ndarray, int]:
    """The 2 x 3 similarity that maps the five points best onto one of the templates scaled to
    ``size``, and that template's index: a least-squares fit per template, smallest summed distance
    wins (insightface 0.2.1 ``face_align.estimate_norm(..., mode="None")``)."""
    points5 = np.asarray(points5, dtype=np.float64)
    best, best_index, best_error = None, 0, np.inf
    for index, template in enumerate(TEMPLATES_112.astype(np.float64) * (size / 112.0)):
        tform = SimilarityTransform.from_estimate(points5, template)
        if not tform:
            continue
        error = np.linalg.norm(tform(points5) - template, axis=1).sum()
        if error < best_error:
            best, best_index, best_error = tform.params[:2], index, error
    if best is None:
        raise ValueError("degenerate face landmarks")
    return best, best_index


def align(image: np.ndarray, points5: np.ndarray, size: int = CROP) -> tuple[np.ndarray, np.ndarray]:
    matrix, _ = estimate_norm(points5, size)
    return cv2.warpAffine(image, matrix, (size, size), borderValue=0.0), matrix


# -- the blending mask ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LandmarkLayout:
    """Which landmarks GHOST's mask rule reads: the jaw-line points on each side (how far the
    generated face moved inwards), and each eyebrow point with the eye point below it (the brows are
    raised away from the eyes so the mask covers the forehead)."""

    jaw_left: tuple[int, ...]
    jaw_right: tuple[int, ...]
    brows: tuple[int, ...]
    eyes: tuple[int, ...]


# insightface's 2d106det layout, which GHOST uses.
LAYOUT_106 = LandmarkLayout(
    jaw_left=(1, 2, 13),
    jaw_right=(17, 18, 29),
    brows=(43, 48, 49, 51, 50, 102, 103, 104, 105, 101),
    eyes=(35, 41, 40, 42, 39, 89, 95, 94, 96, 93),
)
# dlib's 68 points (iBUG 300-W): jaw 0-16 from the image's left, brows 17-26, eyes 36-47. The
# image's left jaw line plays the 106 layout's "left" side.
LAYOUT_68 = LandmarkLayout(
    jaw_left=(1, 2, 3),
    jaw_right=(15, 14, 13),
    brows=(17, 18, 19, 20, 21, 22, 23, 24, 25, 26),
    eyes=(36, 37, 38, 38, 39, 42, 43, 43, 44, 45),
)


def mask_settings(result: np.ndarray, target: np.ndarray, layout: LandmarkLayout) -> tuple[int, int, int]:
    """(erode, blur sigma x, blur sigma y) from how far the generated jaw line lies inside the
    target's: the further in, the more the mask shrinks so the target's own cheeks do not show."""
    left = float(np.sum(result[list(layout.jaw_left), 0] - target[list(layout.jaw_left), 0]))
    right = float(np.sum(target[list(layout.jaw_right), 0] - result[list(layout.jaw_right), 0]))
    offset = max(left, right)
    if offset > 6:
        return 15, 15, 10
    if offset > 3:
        return 10, 10, 8
    if offset < -3:
        return -5, 5, 10
    return 5, 5, 5


def blend_mask(
    shape: tuple[int, int], result: np.ndarray, target: np.ndarray, layout: LandmarkLayout = LAYOUT_106
) -> np.ndarray:
    """GHOST's mask (float in [0, 1], ``shape``) over the generated face in the crop.

    ``result`` and ``target`` are the landmarks of the generated face and of the target face in the
    crop. Pixel coordinates are truncated to integers first, as GHOST does.
    """
    erode, sigma_x, sigma_y = mask_settings(result, target, layout)
    raise_by = {15: 2.7, -5: 0.5}.get(erode, 2.0)
    points = np.array(result, dtype=np.int32)
    brows, eyes = list(layout.brows), list(layout.eyes)
    top, below = points[brows], points[eyes]
    points[brows] = top + raise_by * 0.5 * (top - below)  # float, truncated back into int32

    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(points), 255)
    kernel = np.ones((abs(erode), abs(erode)), np.uint8)
    mask = cv2.erode(mask, kernel) if erode > 0 else cv2.dilate(mask, kernel)
    border = sigma_y * 2  # the mask fades out before the crop's edge
    mask[:border, :] = 0
    mask[-border:, :] = 0
    mask[:, :border] = 0
    mask[:, -border:] = 0
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma_x, sigmaY=sigma_y)
    return mask / 255.0


def paste(frame: np.ndarray, face: np.ndarray, matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The crop ``face`` put back into ``frame`` through the inverse of ``matrix`` under ``mask``;
    8-bit by truncation, as GHOST's ``get_final_image``."""
    height, width = frame.shape[:2]
    inverse = cv2.invertAffineTransform(matrix)
    face_back = cv2.warpAffine(face, inverse, (width, height), borderMode=cv2.BORDER_REPLICATE)
    mask_back = cv2.warpAffine(mask, inverse, (width, height))[..., None]
    return np.array(mask_back * face_back + (1 - mask_back) * frame, dtype=np.uint8)


# -- weights ----------------------------------------------------------------------------------------


def _read_state_dict(path: Path, label: str) -> dict[str, Any]:
    import torch

    path = Path(path)
    if path.name.lower() == WRONG_ARCFACE or path.suffix.lower() == ".onnx":
        raise GhostWeightsError(
            f"{label}: {path.name} is not GHOST's checkpoint; use backbone.pth / G_unet_2blocks.pth "
            f"from GHOST's releases ({WRONG_ARCFACE} is a different ArcFace and gives the wrong identity)"
        )
    if not path.is_file():
        raise GhostWeightsError(f"{label}: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: say which file
        raise GhostWeightsError(f"{label}: cannot read {path}: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise GhostWeightsError(f"{label}: {path} holds no state dict")
    return state


def _build(factory: Callable[[], torch.nn.Module], state: dict[str, Any], label: str, path: Path):
    import torch

    with torch.device("meta"):
        net = factory()
    try:
        net.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise GhostWeightsError(f"{label}: {path} does not match the architecture: {exc}") from exc
    return net.eval().requires_grad_(False)


def generator_blocks(state: dict[str, Any]) -> int:
    """1, 2 or 3: the AAD layers per residual block (``G_unet_1block`` / ``_2blocks`` / ``_3blocks``)."""
    prefix = "generator.AADBlk1.add_blocks."
    convs = {key[len(prefix):].split(".")[0] for key in state if key.startswith(prefix) and key.endswith(".conv1.weight")}
    return max(1, len(convs))


def generator_from_state_dict(state: dict[str, Any], path: Path | str = "<memory>"):
    from faceswap.ghost_nets import AEINet

    blocks = generator_blocks(state)
    return _build(lambda: AEINet(num_blocks=blocks), state, "GHOST generator", Path(path))


def arcface_from_state_dict(state: dict[str, Any], path: Path | str = "<memory>"):
    from faceswap.ghost_nets import iresnet100

    return _build(iresnet100, state, "GHOST ArcFace", Path(path))


def load_generator(path: Path):
    return generator_from_state_dict(_read_state_dict(path, "GHOST generator"), path)


def load_arcface(path: Path):
    return arcface_from_state_dict(_read_state_dict(path, "GHOST ArcFace"), path)


# -- the swap ---------------------------------------------------------------------------------------


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> float (1, 3, H, W) in [-1, 1]."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(rgb)).float() / 255.0
    return ((x - 0.5) / 0.5).permute(2, 0, 1)[None]


class GhostNetworks:
    """The two networks, as one model the model manager can place (``to``, ``memory_bytes``)."""

    name = "ghost-faceswap"

    def __init__(self, generator, arcface, device: str = "cpu") -> None:
        self.generator = generator
        self.arcface = arcface
        self.device = device

    def to(self, device: str) -> GhostNetworks:
        import torch

        # As GHOST: the generator runs in half precision on the GPU, ArcFace in fp32.
        half = torch.float16 if str(device).startswith("cuda") else torch.float32
        self.generator.to(device=device, dtype=half)
        self.arcface.to(device=device)
        self.device = str(device)
        return self

    def memory_bytes(self) -> int:
        tensors = [*self.generator.parameters(), *self.generator.buffers(), *self.arcface.parameters(), *self.arcface.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors)


LandmarkFn = Callable[[np.ndarray, tuple[int, int, int, int]], np.ndarray]
"""(image, face box) -> 68 landmarks: used on the generated crop."""


class GhostFaceSwapper:
    """GHOST's swap. ``on_use(networks)`` runs before each swap: the worker passes the model
    manager's ``use_external`` so the networks live on the GPU under its VRAM budget."""

    name = "ghost"

    def __init__(
        self,
        generator_path: Path,
        arcface_path: Path,
        device: str = "auto",
        landmarks: LandmarkFn | None = None,
        on_use: Callable[[GhostNetworks], None] | None = None,
    ) -> None:
        self.generator_path = Path(generator_path)
        self.arcface_path = Path(arcface_path)
        self.device = device
        self._landmarks = landmarks
        self.on_use = on_use
        self._networks: GhostNetworks | None = None
        self._error: GhostWeightsError | None = None

    @classmethod
    def from_networks(cls, networks: GhostNetworks, landmarks: LandmarkFn | None = None) -> GhostFaceSwapper:
        swapper = cls(Path("<memory>"), Path("<memory>"), device=networks.device, landmarks=landmarks)
        swapper._networks = networks
        return swapper

    def networks(self) -> GhostNetworks:
        """Loaded once. A bad file is remembered: later jobs fail at once with the same message
        instead of reading hundreds of megabytes again."""
        if self._error is not None:
            raise self._error
        if self._networks is None:
            try:
                generator, arcface = load_generator(self.generator_path), load_arcface(self.arcface_path)
            except GhostWeightsError as exc:
                self._error = exc
                raise
            self._networks = GhostNetworks(generator, arcface)
            if self.on_use is None:
                from faceswap.restore import torch_device

                self._networks.to(torch_device(self.device))
        if self.on_use is not None:
            self.on_use(self._networks)
        return self._networks

    def landmarks(self, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        if self._landmarks is None:
            from faceswap.detect import DlibFaceDetector

            detector = DlibFaceDetector()
            self._landmarks = lambda img, b: detector.landmarks68(img, b)
        return self._landmarks(image, box)

    def identity(self, source: np.ndarray, source_face: Face) -> np.ndarray:
        """GHOST's source embedding (1, 512), unnormalised."""
        crop, _ = align(source, source_face.five_points)
        return self.embed_crop(crop)

    def embed_crop(self, crop_rgb: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        nets = self.networks()
        x = F.interpolate(to_tensor(crop_rgb), scale_factor=0.5, mode="bilinear", align_corners=True)
        parameter = next(nets.arcface.parameters())
        with torch.inference_mode():
            embedding = nets.arcface(x.to(parameter.device, parameter.dtype))
        return embedding.float().cpu().numpy()

    def generate_crop(self, crop_rgb: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        """The generator on an aligned 224 px target crop: the swapped face, 256 px RGB uint8."""
        import torch

        nets = self.networks()
        resized = cv2.resize(crop_rgb, (GENERATOR_SIZE, GENERATOR_SIZE))
        parameter = next(nets.generator.parameters())
        x = to_tensor(resized).to(parameter.device, parameter.dtype)
        identity = torch.from_numpy(np.asarray(embedding, np.float32)).to(parameter.device, parameter.dtype)
        with torch.inference_mode():
            y = nets.generator(x, identity)
        y = (y[0].permute(1, 2, 0) * 0.5 + 0.5) * 255
        return y.to(torch.uint8).cpu().numpy()  # truncated, as GHOST

    def swap(self, source: np.ndarray, source_face: Face, target: np.ndarray, target_face: Face) -> np.ndarray:
        embedding = self.identity(source, source_face)
        crop, matrix = align(target, target_face.five_points)
        generated = cv2.resize(self.generate_crop(crop, embedding), (CROP, CROP))
        # The mask needs landmarks of both faces in the crop: the target's moved there, the
        # generated face's found on it (inside the target's box moved there).
        target_points = cv2.transform(target_face.landmarks[None].astype(np.float64), matrix)[0]
        x0, y0 = target_points.min(axis=0)
        x1, y1 = target_points.max(axis=0)
        box = (int(x0), int(y0 - 0.1 * (y1 - y0)), int(x1), int(y1))
        result_points = self.landmarks(generated, box)
        mask = blend_mask((CROP, CROP), result_points, target_points, LAYOUT_68)
        return paste(target, generated, matrix, mask)
