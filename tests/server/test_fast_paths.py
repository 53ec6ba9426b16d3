"""The Predict path's fast paths answer exactly as the general paths they replace.

- `LoadedServable.run` calls the session's C run directly: same arrays, same errors (type and
  message) as `Session.run`, and feeds it would not pass as they are go through `Session.run`.
- `fill_output_protos` writes outputs into the response in place: the bytes are those of
  `outputs_to_protos` + `CopyFrom`, and a dtype it cannot encode is refused with the same words.
- The codec packs float/double `*_val` in one record and decodes `*_val` with `np.array`: the
  messages and arrays are those of the element-by-element forms.
"""

from __future__ import annotations

import numpy as np
import pytest

from model_server._errors import ServingError
from model_server._predict import fill_output_protos, outputs_to_protos
from model_server._servable import load_saved_model
from serving_client import _codec

_OUTPUTS = {
    "f32": np.array([[1.5, -0.0, np.inf], [np.nan, -np.inf, 3e38]], np.float32),
    "f64": np.array([1e300, -1e-300, np.nan], np.float64),
    "f32_big_endian": np.arange(6, dtype=">f4").reshape(2, 3),
    "f64_big_endian": np.arange(3, dtype=">f8"),
    "scalar": np.float32(7.25),
    "empty": np.zeros((0, 4), np.float32),
    "i32": np.array([-1, 2**31 - 1], np.int32),
    "i64": np.array([-(2**63), 2**63 - 1], np.int64),
    "u8": np.array([0, 255], np.uint8),
    "u64": np.array([2**64 - 1], np.uint64),
    "half": np.array([1.5, -np.inf], np.float16),
    "bool": np.array([True, False]),
    "c64": np.array([1 + 2j, np.nan - 1j], np.complex64),
    "string": np.array([b"a", b"\x00\xff"], dtype=object),
}


def _general_response(outputs):
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    for alias, proto in outputs_to_protos(outputs).items():
        response.outputs[alias].CopyFrom(proto)
    return response


def test_in_place_outputs_are_byte_identical_to_copied_ones() -> None:
    from tensorflow_serving.apis import predict_pb2

    fast = predict_pb2.PredictResponse()
    fill_output_protos(fast.outputs, _OUTPUTS)
    general = _general_response(_OUTPUTS)
    assert fast.SerializeToString(deterministic=True) == general.SerializeToString(deterministic=True)
    assert set(fast.outputs) == set(_OUTPUTS)


def test_in_place_refusal_keeps_the_general_wording() -> None:
    from tensorflow_serving.apis import predict_pb2

    bad = {"ok": np.ones(2, np.float32), "bad": np.array(["2026-01-01"], dtype="datetime64[D]")}
    with pytest.raises(ServingError) as general:
        _general_response(bad)
    with pytest.raises(ServingError) as fast:
        fill_output_protos(predict_pb2.PredictResponse().outputs, bad)
    assert (fast.value.code, fast.value.message) == (general.value.code, general.value.message)


@pytest.mark.parametrize("alias", [a for a in _OUTPUTS if _OUTPUTS[a].dtype.kind == "f" and _OUTPUTS[a].dtype.itemsize >= 4])
def test_packed_float_fields_equal_element_by_element_ones(alias: str) -> None:
    array = _OUTPUTS[alias]
    proto = _codec.encode(array, fields=True)
    reference = type(proto)()
    reference.CopyFrom(proto)
    field = "float_val" if array.dtype.itemsize == 4 else "double_val"
    reference.ClearField(field)
    getattr(reference, field).extend(array.astype(array.dtype.newbyteorder("=")).reshape(-1).tolist())
    assert proto.SerializeToString(deterministic=True) == reference.SerializeToString(deterministic=True)
    decoded = _codec.decode(proto)
    assert decoded.dtype == array.dtype.newbyteorder("=") and decoded.flags.writeable
    np.testing.assert_array_equal(decoded, array)


@pytest.mark.parametrize("alias", sorted(_OUTPUTS))
def test_val_fields_decode_as_element_by_element(alias: str) -> None:
    array = np.asarray(_OUTPUTS[alias])
    proto = _codec.encode(array, fields=True)
    decoded = _codec.decode(proto)
    assert decoded.shape == array.shape
    if array.dtype != object:
        assert decoded.dtype == array.dtype.newbyteorder("=")
        np.testing.assert_array_equal(decoded, array)
    else:
        assert decoded.tolist() == array.tolist()
    # Padding and a short list keep TensorFlow's broadcast rule.
    if array.size > 1 and array.dtype != object:
        proto.tensor_shape.dim[-1].size += 2
        padded = _codec.decode(proto)
        np.testing.assert_array_equal(padded.reshape(-1)[-3:], np.repeat(array.reshape(-1)[-1:], 3))


@pytest.mark.integration
def test_fast_run_matches_session_run_outputs_and_errors(export_pool) -> None:
    import tensorflow as tf

    servable = load_saved_model("m", 1, export_pool["scale1"])
    try:
        signature = servable.signature_defs["serving_default"]
        fetches = [signature.outputs[a].name for a in sorted(signature.outputs)]
        (alias,) = signature.inputs
        name = signature.inputs[alias].name
        inner = [d.size for d in signature.inputs[alias].tensor_shape.dim[1:]]
        images = np.random.default_rng(0).random((2, *inner), dtype=np.float32)
        for feed in (images, images.astype(np.float64), images.tolist()):
            expected = servable.session.run(fetches, feed_dict={name: feed})
            got = servable.run(fetches, {name: feed})
            for a, b in zip(got, expected, strict=True):
                np.testing.assert_array_equal(a, b)
        nan = np.full((1, *inner), np.nan, np.float32)  # CheckNumerics fails in the graph
        wrong_shape = np.zeros((1, *[s + 1 for s in inner]), np.float32)
        for feed, error in ((nan, tf.errors.OpError), (wrong_shape, ValueError)):
            with pytest.raises(error) as expected_error:
                servable.session.run(fetches, feed_dict={name: feed})
            with pytest.raises(error) as got_error:
                servable.run(fetches, {name: feed})
            assert type(got_error.value) is type(expected_error.value)
            assert str(got_error.value) == str(expected_error.value)
    finally:
        servable.close()
    with pytest.raises(RuntimeError, match="closed Session"):
        servable.run(fetches, {name: images})
