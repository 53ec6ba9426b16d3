"""The exports of the compatibility matrix, built once into WORKDIR/exports (rebuilt when the exporter changes).

- `demo_<format>`: the demo CNN (random weights) with every method, for float32, uint8
  and image_bytes inputs;
- `batchnorm`: a CNN with BatchNormalization (non-trivial moving statistics);
- `mobilenet_v3_small`: `keras.applications.MobileNetV3Small`, 32×32, random weights
  (without Integrated Gradients: its export fails the exporter's own IG check today,
  approximation_error 0.036 from the eager reference, tolerance 0.001);
- `mixed_float16`: a CNN built under the `mixed_float16` policy, if it exports today
  (it does not yet: the Grad-CAM signature's logits come out float16).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ALL_METHODS = ("vanilla", "smoothgrad", "integrated_gradients", "gradient_x_input", "gradcam")
NUM_IMAGES = 3


def exporter_fingerprint() -> str:
    """Hash of the exporter's sources: exports are rebuilt when it changes."""
    import exporter

    root = Path(exporter.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _demo_cnn() -> Any:
    import keras

    from examples.mnist.model import build_mnist_cnn

    keras.utils.set_random_seed(10)
    return build_mnist_cnn()


def _batchnorm() -> Any:
    import keras

    keras.utils.set_random_seed(11)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(8, 3),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.full(layer.moving_mean.shape, 0.2, np.float32))
            layer.moving_variance.assign(np.full(layer.moving_variance.shape, 1.7, np.float32))
    return model


def _mobilenet() -> Any:
    import keras

    keras.utils.set_random_seed(12)
    return keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None, classes=5)


def _mixed_float16() -> Any:
    import keras

    keras.utils.set_random_seed(13)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        return keras.Sequential(
            [
                keras.Input((12, 12, 3)),
                keras.layers.Conv2D(8, 3, activation="relu"),
                keras.layers.Flatten(),
                keras.layers.Dense(4),
                keras.layers.Activation("softmax", dtype="float32"),
            ]
        )
    finally:
        keras.mixed_precision.set_global_policy(previous)


#: name → (model builder, input format, methods)
SPECS: dict[str, tuple[Callable[[], Any], str, tuple[str, ...]]] = {
    "demo_float32": (_demo_cnn, "float32", ALL_METHODS),
    "demo_uint8": (_demo_cnn, "uint8", ALL_METHODS),
    "demo_image_bytes": (_demo_cnn, "image_bytes", ALL_METHODS),
    "batchnorm": (_batchnorm, "float32", ("vanilla", "smoothgrad", "gradcam")),
    "mobilenet_v3_small": (_mobilenet, "float32", ("vanilla", "smoothgrad", "gradcam")),
    "mixed_float16": (_mixed_float16, "float32", ("vanilla", "gradcam")),
}


def build(name: str, workdir: Path) -> tuple[Path, np.ndarray] | str:
    """Exports `name` under WORKDIR/exports/name (reusing an up-to-date one).

    Returns:
        (version directory, the `images` feed), or the reason it does not export today.
    """
    from exporter import ExportConfig, SaliencyExporter
    from exporter._config import InputConfig, MethodsConfig, VerificationConfig
    from exporter._inputs import encode_samples
    from exporter.methods import IntegratedGradientsParams, SmoothGradParams

    base = workdir / "exports" / name
    stamp = base / "stamp.json"
    # The exporter's sources and this file's: a change to either rebuilds the exports.
    fingerprint = f"{exporter_fingerprint()}-{hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:8]}"
    if stamp.is_file():
        recorded = json.loads(stamp.read_text())
        if recorded.get("fingerprint") == fingerprint:
            if "error" in recorded:
                return recorded["error"]
            return base / "1", np.load(base / "images.npy", allow_pickle=True)
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    builder, input_format, methods = SPECS[name]
    try:
        model = builder()
        shape = tuple(int(d) for d in model.inputs[0].shape[1:])
        config = ExportConfig(
            name=name,
            # Fewer noise samples and IG steps than the defaults: the same ops and graph, a
            # cheaper export-time verification.
            methods=MethodsConfig(
                enabled=methods, params=[SmoothGradParams(samples=8), IntegratedGradientsParams(steps=16)]
            ),
            input=InputConfig(format=input_format),
            verification=VerificationConfig(num_samples=NUM_IMAGES),
        )
        samples = np.random.default_rng(7).random((NUM_IMAGES, *shape), dtype=np.float32)
        path = SaliencyExporter(model, config).write(base, 1, samples=samples).path
    except Exception as error:  # noqa: BLE001 — recorded and shown in the matrix as not exportable
        reason = f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
        stamp.write_text(json.dumps({"fingerprint": fingerprint, "error": reason}))
        return reason
    images, _ = encode_samples(samples, config.input)
    np.save(base / "images.npy", images, allow_pickle=True)
    stamp.write_text(json.dumps({"fingerprint": fingerprint}))
    return path, images
