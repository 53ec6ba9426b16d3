"""Request builders for the server tests, using only the official TF Serving protos."""

from __future__ import annotations

import numpy as np

from tests.server.server_test_models import C, H, W


def images(batch: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, H, W, C), dtype=np.float32)


def predict_request(
    name: str = "m",
    signature: str | None = None,
    *,
    version: int | None = None,
    label: str | None = None,
    output_filter: tuple[str, ...] = (),
    **inputs,
):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    req = predict_pb2.PredictRequest()
    req.model_spec.name = name
    if signature is not None:
        req.model_spec.signature_name = signature
    if version is not None:
        req.model_spec.version.value = version
    if label is not None:
        req.model_spec.version_label = label
    req.output_filter.extend(output_filter)
    for alias, value in inputs.items():
        req.inputs[alias].CopyFrom(value if hasattr(value, "dtype") and hasattr(value, "tensor_shape") else tf.make_tensor_proto(value))
    return req


def outputs(response) -> dict[str, np.ndarray]:
    import tensorflow as tf

    return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
