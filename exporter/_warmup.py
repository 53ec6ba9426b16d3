"""`assets.extra/tf_serving_warmup_requests`: requests TF Serving replays before serving.

Warmup runs each signature once at load time so the first real request does not pay
for graph optimization and memory allocation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from serving_client.contract import (
    FLOAT32,
    IMAGES,
    TARGET_CLASS,
    TARGET_CLASS_DEFAULT,
    UINT8,
    WARMUP_ASSET,
)

__all__ = ["WARMUP_FILE", "write_warmup_requests"]

WARMUP_FILE = Path(WARMUP_ASSET)


def write_warmup_requests(
    export_dir: Path,
    *,
    model_name: str,
    signature_inputs: Mapping[str, Sequence[str]],
    input_shape: tuple[int, int, int],
    batch_sizes: Sequence[int],
    seed: int = 0,
    input_format: str = FLOAT32,
    max_batch: Mapping[str, int] | None = None,
    defaults: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> Path:
    """Writes one PredictRequest per signature and batch size as a TFRecord of PredictionLogs.

    Every input is sent with one value per image (`target_class` as -1, "the predicted
    class", the per-request parameters at their defaults): with `--enable_batching`, TF Serving concatenates warmup requests like any
    other, and a length-1 default would not concatenate with a batch of 8.

    Args:
        export_dir: The SavedModel directory.
        model_name: `model_spec.name` of the requests.
        signature_inputs: signature name → its input aliases (`images`, and optionally
            `target_class`).
        input_shape: (H, W, C).
        batch_sizes: e.g. (1, 8).
        seed: For the random images.
        input_format: `float32` (random floats in [0, 1)), `uint8` (random pixels) or
            `image_bytes` (random pixels, PNG-encoded): what the signatures take.
        max_batch: signature name → the largest batch its graph accepts (`[limits]`):
            larger warmup batches are written at that size, so replay cannot be refused.
        defaults: signature name → optional input alias → its length-1 default (as recorded
            in the SignatureDef): each is sent repeated to the batch's dim 0 (a baseline
            default [1, 0, H, W, C] as [batch, 0, H, W, C]). `target_class` is sent as −1
            whether or not it is listed.

    Returns:
        The written file.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    rng = np.random.default_rng(seed)
    path = Path(export_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature in signature_inputs:
            ceiling = (max_batch or {}).get(signature)
            sizes = dict.fromkeys(batch if ceiling is None else min(batch, ceiling) for batch in batch_sizes)
            for batch in sizes:
                images = _images(rng, batch, input_shape, input_format)
                request = predict_pb2.PredictRequest(
                    model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
                )
                request.inputs[IMAGES].CopyFrom(tf.make_tensor_proto(images))
                if TARGET_CLASS in signature_inputs[signature]:
                    target = np.full((batch,), TARGET_CLASS_DEFAULT, np.int32)
                    request.inputs[TARGET_CLASS].CopyFrom(tf.make_tensor_proto(target))
                for alias, default in (defaults or {}).get(signature, {}).items():
                    if alias == TARGET_CLASS or alias not in signature_inputs[signature]:
                        continue
                    value = np.repeat(np.asarray(default), batch, axis=0)
                    request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
                log = prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)
                )
                writer.write(log.SerializeToString())
    return path


def _images(rng: np.random.Generator, batch: int, input_shape: tuple[int, int, int], input_format: str) -> np.ndarray:
    if input_format == FLOAT32:
        return rng.random((batch, *input_shape), dtype=np.float32)
    import tensorflow as tf

    pixels = rng.integers(0, 256, (batch, *input_shape), dtype=np.uint8)
    if input_format == UINT8:
        return pixels
    return np.array([tf.io.encode_png(p).numpy() for p in pixels], dtype=object)
