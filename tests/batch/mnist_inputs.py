"""Real MNIST test digits as batch inputs: PNG files, or TFRecord shards of ``tf.train.Example``.

Run: ``python -m tests.batch.mnist_inputs --out build/batch-demo/input`` (the 10,000 test digits
in 4 TFRecord shards with ``image`` PNG bytes, ``label`` and ``id`` features).
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _load_mnist():  # the demo's loader, kept with the example
    from examples.mnist.data import load_mnist

    return load_mnist()


def digits(count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` MNIST test digits as uint8 ``[N, 28, 28]`` and their int64 labels.

    The wheel stores ``byte / 256``, so ``x * 256`` gives the original bytes exactly.
    """
    data = _load_mnist()
    images = np.rint(data.test_images[:count, ..., 0] * 256.0).astype(np.uint8)
    return images, data.test_labels[:count]


def png_bytes(pixels: np.ndarray) -> bytes:
    """A grayscale PNG of uint8 ``[H, W]`` pixels."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def write_pngs(directory: Path, count: int) -> list[Path]:
    """Write ``digit_00000_label7.png`` ... for the first ``count`` test digits."""
    directory.mkdir(parents=True, exist_ok=True)
    images, labels = digits(count)
    paths = []
    for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        path = directory / f"digit_{index:05d}_label{int(label)}.png"
        path.write_bytes(png_bytes(pixels))
        paths.append(path)
    return paths


def write_tfrecords(directory: Path, count: int | None = None, shards: int = 4) -> list[Path]:
    """Write the test digits as ``mnist_test-0000S-of-0000N.tfrecord`` with image/label/id."""
    import tensorflow as tf

    directory.mkdir(parents=True, exist_ok=True)
    images, labels = digits(count)
    paths = [directory / f"mnist_test-{s:05d}-of-{shards:05d}.tfrecord" for s in range(shards)]
    writers = [tf.io.TFRecordWriter(str(path)) for path in paths]
    try:
        for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
            example = tf.train.Example(features=tf.train.Features(feature={
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png_bytes(pixels)])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
                "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"mnist_test/{index:05d}".encode()])),
            }))
            writers[index % shards].write(example.SerializeToString())
    finally:
        for writer in writers:
            writer.close()
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Write the TFRecord shards (skipped when they are already there)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=None, help="default: all 10,000")
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args(argv)
    marker = args.out / f".complete-{args.count or 'all'}-{args.shards}"
    if marker.exists():
        print(f"inputs={args.out} (already written)")
        return 0
    paths = write_tfrecords(args.out, args.count, args.shards)
    marker.touch()
    print(f"inputs={args.out}\tshards={len(paths)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
