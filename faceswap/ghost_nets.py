"""GHOST's two networks in PyTorch, laid out so that its published checkpoints load with ``strict=True``.

- :class:`AEINet`: the AEI-Net generator of FaceShifter as GHOST trained it (``G_unet_2blocks.pth``,
  also ``G_unet_1block.pth`` / ``G_unet_3blocks.pth``): a U-Net attribute encoder over the 256 px
  target face (seven stride-2 4x4 convolutions, six transposed ones with skip concatenation, a
  final bilinear x2), and a generator that grows the 512-d identity from 2x2 to 256x256 through
  eight AAD residual blocks. Each AAD layer instance-normalises its input and mixes an
  attribute-modulated copy (1x1 convolutions of the encoder features) with an identity-modulated
  copy (linear maps of the embedding) under a learned sigmoid mask.
- :class:`IResNet`: insightface's improved ResNet ("iresnet100": 3, 13, 30, 3 blocks) that GHOST uses
  as its ArcFace identity encoder (``backbone.pth``): 112 px RGB in [-1, 1] -> 512 numbers.

Parameter names follow the checkpoints (facts of the file format); the code is ours. Both networks
are checked against outputs of GHOST's own code (tests/faceswap/test_ghost.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (in, out) channels of the encoder's down and up convolutions, U-Net variant.
ENCODER_DOWN = ((3, 32), (32, 64), (64, 128), (128, 256), (256, 512), (512, 1024), (1024, 1024))
ENCODER_UP = ((1024, 1024), (2048, 512), (1024, 256), (512, 128), (256, 64), (128, 32))
# (in, out, attribute) channels of the generator's eight AAD residual blocks.
GENERATOR_BLOCKS = (
    (1024, 1024, 1024),
    (1024, 1024, 2048),
    (1024, 1024, 1024),
    (1024, 512, 512),
    (512, 256, 256),
    (256, 128, 128),
    (128, 64, 64),
    (64, 3, 64),
)
IDENTITY_DIM = 512  # GHOST builds AEI_Net(c_id=512) for its ArcFace embedding
SLOPE = 0.1  # leaky ReLU slope of the encoder


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class _Down(nn.Sequential):
    """conv 4x4 stride 2 (no bias) -> batch norm -> leaky ReLU; keys ``N.0`` and ``N.1``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(SLOPE))


class _Up(nn.Module):
    """Transposed conv 4x4 stride 2 -> batch norm -> leaky ReLU, then the skip is concatenated."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.leaky_relu(self.bn(self.deconv(x)), SLOPE), skip], dim=1)


class AttributeEncoder(nn.Module):
    """The target's multi-level attributes, coarse to fine: 2x2 up to 256x256."""

    def __init__(self) -> None:
        super().__init__()
        for index, (cin, cout) in enumerate(ENCODER_DOWN, start=1):
            self.add_module(f"conv{index}", _Down(cin, cout))
        for index, (cin, cout) in enumerate(ENCODER_UP, start=1):
            self.add_module(f"deconv{index}", _Up(cin, cout))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for index in range(1, len(ENCODER_DOWN) + 1):
            x = getattr(self, f"conv{index}")(x)
            skips.append(x)
        attributes = [skips.pop()]  # the 2x2 bottleneck
        for index in range(1, len(ENCODER_UP) + 1):
            attributes.append(getattr(self, f"deconv{index}")(attributes[-1], skips.pop()))
        attributes.append(_up2(attributes[-1]))
        return attributes


class AADLayer(nn.Module):
    def __init__(self, channels: int, attr_channels: int, id_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(attr_channels, channels, 1)  # attribute scale
        self.conv2 = nn.Conv2d(attr_channels, channels, 1)  # attribute shift
        self.fc1 = nn.Linear(id_dim, channels)  # identity scale
        self.fc2 = nn.Linear(id_dim, channels)  # identity shift
        self.conv_h = nn.Conv2d(channels, 1, 1)  # where identity wins over attributes

    def forward(self, h: torch.Tensor, attributes: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        h = F.instance_norm(h, eps=1e-5)
        from_attributes = self.conv1(attributes) * h + self.conv2(attributes)
        from_identity = self.fc1(identity)[:, :, None, None] * h + self.fc2(identity)[:, :, None, None]
        mask = torch.sigmoid(self.conv_h(h))
        return (1 - mask) * from_attributes + mask * from_identity


class _AADChain(nn.Module):
    """(AAD layer, ReLU, 3x3 conv) repeated; indices 0, 1, 2, 3, 4, 5... as in the checkpoints."""

    def __init__(self, channels: tuple[int, ...], attr_channels: int, id_dim: int) -> None:
        super().__init__()
        index = 0
        for cin, cout in zip(channels, channels[1:]):
            self.add_module(str(index), AADLayer(cin, attr_channels, id_dim))
            self.add_module(str(index + 1), nn.ReLU())
            self.add_module(str(index + 2), nn.Conv2d(cin, cout, 3, 1, 1, bias=False))
            index += 3

    def forward(self, h: torch.Tensor, attributes: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        modules = list(self.children())
        for aad, _, conv in zip(modules[0::3], modules[1::3], modules[2::3]):
            h = conv(F.relu(aad(h, attributes, identity)))
        return h


class AADResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, attr_channels: int, id_dim: int, num_blocks: int) -> None:
        super().__init__()
        self.add_blocks = _AADChain((cin,) * num_blocks + (cout,), attr_channels, id_dim)
        # A changing channel count gets its own AAD shortcut instead of the identity.
        self.last_add_block = _AADChain((cin, cout), attr_channels, id_dim) if cin != cout else None

    def forward(self, h: torch.Tensor, attributes: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        shortcut = h if self.last_add_block is None else self.last_add_block(h, attributes, identity)
        return self.add_blocks(h, attributes, identity) + shortcut


class AADGenerator(nn.Module):
    def __init__(self, id_dim: int = IDENTITY_DIM, num_blocks: int = 2) -> None:
        super().__init__()
        self.up1 = nn.ConvTranspose2d(id_dim, GENERATOR_BLOCKS[0][0], kernel_size=2, stride=1, padding=0)
        for index, (cin, cout, attr) in enumerate(GENERATOR_BLOCKS, start=1):
            self.add_module(f"AADBlk{index}", AADResBlock(cin, cout, attr, id_dim, num_blocks))

    def forward(self, attributes: list[torch.Tensor], identity: torch.Tensor) -> torch.Tensor:
        h = self.up1(identity.reshape(identity.shape[0], -1, 1, 1))
        last = len(GENERATOR_BLOCKS)
        for index in range(1, last + 1):
            h = getattr(self, f"AADBlk{index}")(h, attributes[index - 1], identity)
            if index < last:
                h = _up2(h)
        return torch.tanh(h)


class AEINet(nn.Module):
    """``(target (N, 3, 256, 256) RGB in [-1, 1], identity (N, 512))`` -> the swapped face, same range."""

    size = 256

    def __init__(self, num_blocks: int = 2, id_dim: int = IDENTITY_DIM) -> None:
        super().__init__()
        self.encoder = AttributeEncoder()
        self.generator = AADGenerator(id_dim, num_blocks)

    def forward(self, target: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        return self.generator(self.encoder(target), identity)


class IBasicBlock(nn.Module):
    """BN -> 3x3 conv -> BN -> PReLU -> 3x3 conv (stride here) -> BN, plus the shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=1e-5))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """ArcFace's iresnet: RGB (N, 3, 112, 112) in [-1, 1] -> the (N, 512) identity, unnormalised."""

    size = 112
    widths = (64, 128, 256, 512)

    def __init__(self, layers: tuple[int, int, int, int] = (3, 13, 30, 3), features: int = 512) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        cin = 64
        for stage, (width, count) in enumerate(zip(self.widths, layers), start=1):
            blocks = [IBasicBlock(cin if i == 0 else width, width, 2 if i == 0 else 1) for i in range(count)]
            self.add_module(f"layer{stage}", nn.Sequential(*blocks))
            cin = width
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.fc = nn.Linear(512 * 7 * 7, features)
        self.features = nn.BatchNorm1d(features, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.features(self.fc(torch.flatten(self.bn2(x), 1)))


def iresnet100() -> IResNet:
    return IResNet((3, 13, 30, 3))
