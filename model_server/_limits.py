"""The export's request limits, enforced before the graph runs: refusal without decoding.

The exported graph refuses an oversize batch or an image whose header declares too many
pixels by itself (that is what protects stock TF Serving). The bundled server reads the
same limits from the version's export report (`assets.extra/export_report.json`,
section `limits`) and refuses such requests before a session run: the batch is read from
the tensor's shape and each image's size from its first bytes, no tensor is decoded, and
the refusal is counted and logged.
Versions without a report (not made by our exporter) are left to their graph.

The messages are the graph's, word for word (`exporter._limits`, `exporter._inputs`).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import struct
import threading
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from serving_client.contract import IMAGES, REPORT_ASSET
from serving_client.report import ReportError, read_report

from ._errors import invalid_argument

__all__ = ["ExportLimits", "RequestLimits", "declared_size", "read_limits"]

log = logging.getLogger("model_server")

REPORT = Path(REPORT_ASSET)


@dataclasses.dataclass(frozen=True)
class ExportLimits:
    """One version's limits, from its export report.

    Attributes:
        max_batch: signature name → the largest batch its graph accepts.
        max_pixels: image_bytes exports: the largest declared width × height.
        max_image_bytes: image_bytes exports: the largest encoded image.
    """

    max_batch: Mapping[str, int]
    max_pixels: int | None = None
    max_image_bytes: int | None = None


def read_limits(version_dir: Path) -> ExportLimits | None:
    """The limits recorded in `version_dir`'s export report; None without a report or section.

    A report that is present but unreadable is logged and ignored: the graph still enforces
    its own limits.
    """
    if not (Path(version_dir) / REPORT_ASSET).exists():
        return None
    try:
        report = read_report(version_dir)
    except ReportError as exc:
        log.warning("ignoring the limits of %s: %s", version_dir, exc)
        return None
    if report.limits is None:
        return None
    return ExportLimits(
        max_batch={name: entry.max_batch for name, entry in report.limits.signatures.items()},
        max_pixels=report.limits.max_pixels,
        max_image_bytes=report.limits.max_image_bytes,
    )


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    # Walk the marker segments to the first SOF (as libjpeg's header read does).
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # no length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame
            return None
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
        pos += 2 + length
    return None


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) an image's header declares, for PNG, JPEG and BMP; None otherwise.

    Reads what the exported graph reads (`exporter._inputs.declared_sizes`).
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack_from(">II", data, 16)
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg_size(data)
    if data.startswith(b"BM") and len(data) >= 26:
        width, height = struct.unpack_from("<ii", data, 18)
        return abs(width), abs(height)
    return None


def _describe_pixels(max_pixels: int) -> str:
    side = math.isqrt(max_pixels)
    square = f" ({side}×{side})" if side * side == max_pixels else ""
    return f"{max_pixels} pixels{square}"


def _batch_and_strings(value: Any) -> tuple[int | None, Iterable[bytes] | None]:
    """(dim 0, the string elements or None) of a TensorProto or an array, without decoding."""
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return None, None
        strings = value.reshape(-1) if value.dtype == object or value.dtype.kind == "S" else None
        return int(value.shape[0]), strings
    dims = value.tensor_shape.dim
    batch = int(dims[0].size) if len(dims) and dims[0].size >= 0 else None
    return batch, (value.string_val if len(value.string_val) else None)


class RequestLimits:
    """Checks requests against their version's limits; counts and logs the refusals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_servable: weakref.WeakKeyDictionary[Any, ExportLimits | None] = weakref.WeakKeyDictionary()
        self._refusals: collections.Counter[tuple[str, str, str]] = collections.Counter()

    def limits_of(self, servable: Any) -> ExportLimits | None:
        """The servable's limits (its report is read once per loaded version)."""
        with self._lock:
            if servable in self._by_servable:
                return self._by_servable[servable]
        limits = read_limits(servable.path)
        with self._lock:
            self._by_servable[servable] = limits
        return limits

    def refusals(self) -> dict[tuple[str, str, str], int]:
        """Refusals per (model, signature, limit): `max_batch`, `max_image_bytes`, `max_pixels`."""
        with self._lock:
            return dict(self._refusals)

    def check(self, servable: Any, signature: str, inputs: Mapping[str, Any]) -> None:
        """Refuses the request if its `images` break the version's limits.

        Args:
            servable: The loaded version (its `path` holds the report).
            signature: The resolved signature name.
            inputs: alias → TensorProto (gRPC) or array (REST).

        Raises:
            ServingError: INVALID_ARGUMENT with the graph's message.
        """
        value = inputs.get(IMAGES)
        if value is None or signature not in servable.signature_defs:
            return  # the request's other faults are answered by the usual checks
        limits = self.limits_of(servable)
        if limits is None:
            return
        batch, strings = _batch_and_strings(value)
        maximum = limits.max_batch.get(signature)
        if maximum is not None and batch is not None and batch > maximum:
            self._refuse(servable, signature, "max_batch",
                         f"batch of {batch} exceeds the maximum batch of {signature}: {maximum} "
                         f"(config [limits] {signature})")
        if strings is None or limits.max_pixels is None:
            return
        strings = [bytes(data) if not isinstance(data, bytes) else data for data in strings]
        # The graph's order: every image's size in bytes, then every image's declared pixels.
        if limits.max_image_bytes is not None:
            for i, data in enumerate(strings):
                if len(data) > limits.max_image_bytes:
                    self._refuse(servable, signature, "max_image_bytes",
                                 f"image {i} is {len(data)} bytes; this export accepts at most "
                                 f"{limits.max_image_bytes} bytes per image (input.max_image_bytes)")
        for i, data in enumerate(strings):
            size = declared_size(data[:65536] if data.startswith(b"\xff\xd8") else data[:32])
            if size is not None and max(size[0], size[1], size[0] * size[1]) > limits.max_pixels:
                self._refuse(servable, signature, "max_pixels",
                             f"image {i} declares {size[0]}×{size[1]} pixels; this export accepts at most "
                             f"{_describe_pixels(limits.max_pixels)} (input.max_pixels)")

    def _refuse(self, servable: Any, signature: str, limit: str, message: str) -> None:
        key = (servable.name, signature, limit)
        with self._lock:
            self._refusals[key] += 1
            count = self._refusals[key]
        # Every refusal is counted; the log says so at 1, 10, 100, ... so a flood cannot flood it.
        if math.log10(count).is_integer():
            log.warning("refused %s (version %s) %s: %s [%d refusals of %s so far]",
                        servable.name, servable.version, signature, message, count, limit)
        raise invalid_argument(message)
