"""Deterministic stand-in weights for full-size networks, the same on every machine.

The GHOST golden fixtures (tests/reference/ghost.npz) were made by running GHOST's own networks on
weights filled by :func:`seeded_state_dict`; the tests fill our networks the same way and compare
outputs. The numbers come from integer hashing (splitmix64) of the tensor's name and each element's
index, so they do not depend on torch's or numpy's random generators, on the platform or on the
order of the keys: the full-size checkpoints (hundreds of MB) never have to be stored.

Scales keep activations in a useful range through deep stacks: weights uniform with variance
1/fan_in, batch-norm statistics near the identity, PReLU slopes near 0.25.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping

import numpy as np
import torch

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


PERIOD = 100_003  # a prime: long tensors repeat with a period that matches none of their dimensions


def uniform(name: str, count: int, seed: int) -> np.ndarray:
    """``count`` float32 numbers in [-1, 1), a pure function of (name, index, seed).

    At most :data:`PERIOD` numbers are hashed per tensor and repeated: hashing every element of a
    200M-parameter network would cost seconds per test run.
    """
    key = np.uint64((zlib.crc32(name.encode()) << 16) ^ (seed & 0xFFFF))
    x = np.arange(min(count, PERIOD), dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x + key) * _GOLDEN
        x ^= x >> np.uint64(30)
        x *= _MIX1
        x ^= x >> np.uint64(27)
        x *= _MIX2
        x ^= x >> np.uint64(31)
    # The top 24 bits are exact in float32.
    base = (x >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-23) - np.float32(1.0)
    return base if count <= PERIOD else np.resize(base, count)


def seeded_tensor(name: str, shape: Iterable[int], seed: int) -> torch.Tensor:
    shape = tuple(int(s) for s in shape)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return torch.zeros(shape, dtype=torch.long)
    count = int(np.prod(shape)) if shape else 1
    u = uniform(name, count, seed).reshape(shape)
    is_norm = "bn" in name or "features" in name or ".norm" in name or (leaf in ("running_mean", "running_var"))
    if leaf == "running_var":
        values = 1.0 + 0.5 * u
    elif leaf == "running_mean":
        values = 0.1 * u
    elif leaf == "weight" and len(shape) == 1 and "prelu" in name:
        values = 0.25 + 0.05 * u
    elif leaf == "weight" and len(shape) == 1 and name.endswith("bn3.weight"):
        # The last norm of a residual branch starts small (as with zero_init_residual), so a
        # hundred stacked blocks do not blow the activations up.
        values = 0.1 + 0.01 * u
    elif leaf == "weight" and len(shape) == 1 and is_norm:
        values = 1.0 + 0.1 * u
    elif leaf == "bias" and (len(shape) == 1):
        values = 0.1 * u
    elif leaf == "weight" and len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        values = u * np.float32(np.sqrt(3.0 / fan_in))
    else:
        values = 0.1 * u
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))


def seeded_state_dict(shapes: Mapping[str, Iterable[int]], seed: int) -> dict[str, torch.Tensor]:
    """A state dict with the given keys and shapes, filled deterministically."""
    return {name: seeded_tensor(name, shape, seed) for name, shape in shapes.items()}
