"""Small files that declare huge images (decompression bombs), and small valid images, per format.

Shared by the exporter tests (the graph's guard) and the server tests (the server's check).
No TensorFlow: the JPEG bomb is patched from a JPEG the caller encodes.
"""

from __future__ import annotations

import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int, height: int, *, real: bool = False) -> bytes:
    """A grayscale PNG declaring width × height.

    Args:
        real: Also write valid image data (all zeros), so that an unguarded decoder really
            allocates and fills width × height bytes; a 12000² bomb is ~140 KB. Otherwise
            the file ends after a token IDAT.
    """
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    if real:
        compressor = zlib.compressobj(9)
        row = bytes(width + 1)  # filter byte 0, then the pixels
        data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    else:
        data = zlib.compress(bytes(64))
    return b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def patch_jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    """`jpeg` with its SOF0/SOF2 frame header declaring width × height (at most 65535 each)."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = jpeg.find(marker)
        if at >= 0:
            # FF Cx, length (2), precision (1), height (2), width (2)
            return jpeg[: at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9 :]
    raise ValueError("no SOF0/SOF2 marker in the JPEG")


def bmp(width: int, height: int, pixels: bytes | None = None) -> bytes:
    """A 24-bit BMP declaring width × height; `pixels` (rows bottom-up, BGR, padded) or none."""
    body = pixels or b""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(body), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info) + len(body), 0, 0, 14 + len(info)) + info + body


def bmp_image(rows: list[list[tuple[int, int, int]]]) -> bytes:
    """A valid 24-bit BMP of `rows` (top row first) of (r, g, b) pixels."""
    height, width = len(rows), len(rows[0])
    pad = (4 - (width * 3) % 4) % 4
    data = b"".join(b"".join(bytes((b, g, r)) for r, g, b in row) + bytes(pad) for row in reversed(rows))
    return bmp(width, height, data)


def gif(width: int, height: int) -> bytes:
    """A GIF header declaring a width × height screen (one empty frame follows)."""
    return (
        b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
        + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00" + b"\x3b"
    )


def webp(width: int, height: int) -> bytes:
    """A lossless WebP (VP8L) header declaring width × height."""
    bits = (width - 1) | ((height - 1) << 14)
    vp8l = b"\x2f" + struct.pack("<I", bits) + bytes(8)
    chunk = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk
