"""Hostile files built byte by byte: a PNG that is tiny on disk and huge once decoded, and an EPS.

The PNG is written row by row through zlib, so building a 9400x9400 file never holds its pixels.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def write_png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid RGBA PNG of ``width`` x ``height`` transparent pixels (a few hundred KB for 9400 px)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8 bits, RGBA, no interlace
    row = b"\x00" * (1 + width * 4)  # filter byte "none" + pixels
    packer = zlib.compressobj(9)
    parts = [packer.compress(row) for _ in range(height)]
    parts.append(packer.flush())
    with path.open("wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(_chunk(b"IHDR", header))
        out.write(_chunk(b"IDAT", b"".join(parts)))
        out.write(_chunk(b"IEND", b""))
    return path


# A minimal Encapsulated PostScript file: Pillow's EPS plugin recognises it by its first line and,
# to decode it, runs Ghostscript on it.
EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n"
    b"%%BoundingBox: 0 0 256 256\n"
    b"%%EndComments\n"
    b"newpath 0 0 moveto 256 256 lineto stroke\n"
    b"showpage\n"
    b"%%EOF\n"
)
