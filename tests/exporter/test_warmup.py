"""The warmup file is a TFRecord of PredictionLogs that replays against the export."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

pytestmark = pytest.mark.integration


def test_warmup_has_each_signature_at_two_batch_sizes_and_replays(fused_export, fused_saved):
    path = fused_export[1] / "assets.extra" / "tf_serving_warmup_requests"
    logs = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    seen = set()
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == "tiny"
        inputs = {alias: tf.make_ndarray(proto) for alias, proto in request.inputs.items()}
        batch = inputs["images"].shape[0]
        seen.add((request.model_spec.signature_name, batch))
        if request.model_spec.signature_name == "explain":
            # One target per image, so TF Serving's request batching can concatenate it.
            np.testing.assert_array_equal(inputs["target_class"], np.full(batch, -1))
        else:
            assert set(inputs) == {"images"}
        outputs = fused_saved.run(request.model_spec.signature_name, inputs)
        assert all(np.isfinite(v).all() for v in outputs.values())
    assert seen == {("serving_default", 1), ("serving_default", 8), ("explain", 1), ("explain", 8)}
