"""A crafted server over a real socket: the client refuses response tensors that declare more
than they hold or than its limits, naming the tensor, without allocating what they declare;
and it re-reads the input format after a refusal, or goes without it for a server that has
no GetModelMetadata.

The transport is real gRPC on 127.0.0.1; only the server is crafted (generic handlers over the
client's own message classes, so no TensorFlow either side). Model names pick the answer.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import pytest

import serving_client as sc
from serving_client import ServingClient, _codec, _protos

MiB = 1 << 20
IMAGE_SHAPE = (8, 8, 1)


def _tensor(dtype: str, shape: tuple[int, ...], **fields: Any) -> Any:
    proto = _protos.message_class("tensorflow.TensorProto")()
    proto.dtype = _protos.enum_value("tensorflow.DataType", dtype)
    for size in shape:
        proto.tensor_shape.dim.add().size = size
    for name, value in fields.items():
        if name == "tensor_content":
            proto.tensor_content = value
        else:
            getattr(proto, name).extend(value)
    return proto


def _saliency(shape: tuple[int, ...], values: list[float]) -> Any:
    return _tensor("DT_FLOAT", shape, float_val=values)


# Model name → the `saliency` output the server answers with (every other output is honest).
CRAFTED: dict[str, Callable[[int], Any]] = {
    "huge_declared": lambda batch: _saliency((batch, 1 << 20, 1 << 20), [0.5]),
    "overflowing_dims": lambda batch: _saliency((1 << 62, 1 << 62, 4), [0.5]),
    "huge_strings": lambda batch: _tensor("DT_STRING", (batch, 1 << 30), string_val=[b"x"]),
    "padded_128mib": lambda batch: _saliency((batch, 4096, 4096), [0.25]),
    "too_many_values": lambda batch: _saliency((batch, 2, 2), [0.0] * (batch * 4 + 3)),
    "short_content": lambda batch: _tensor("DT_FLOAT", (batch, 8, 8), tensor_content=b"\0" * 12),
    "broadcast": lambda batch: _saliency((batch, 8, 8), [0.75]),
    "padded_tail": lambda batch: _saliency((batch, 8, 8), [0.1, 0.2, 0.3]),
    "empty_values": lambda batch: _saliency((batch, 8, 8), []),
    "padded_360kb": lambda batch: _saliency((batch, 300, 300), [0.5]),
    "full_360kb": lambda batch: _saliency((batch, 300, 300), [0.5] * (batch * 300 * 300)),
}


CALLS: Counter = Counter()


def _metadata_response(request: Any, context: grpc.ServicerContext) -> Any:
    CALLS["metadata", request.model_spec.name] += 1
    if request.model_spec.name == "no_metadata":
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "GetModelMetadata is not implemented")
    response = _protos.message_class("tensorflow.serving.GetModelMetadataResponse")()
    response.model_spec.name = request.model_spec.name
    signature_map = _protos.message_class("tensorflow.serving.SignatureDefMap")()
    explain = signature_map.signature_def["explain"]
    explain.method_name = "tensorflow/serving/predict"
    images = explain.inputs["images"]
    images.dtype = _protos.enum_value("tensorflow.DataType", "DT_FLOAT")
    for size in (-1, *IMAGE_SHAPE):
        images.tensor_shape.dim.add().size = size
    response.metadata["signature_def"].Pack(signature_map)
    return response


def _predict_response(request: Any, context: grpc.ServicerContext) -> Any:
    CALLS["predict", request.model_spec.name] += 1
    if request.model_spec.name == "refuses":
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "input 'images' has the wrong dtype")
    batch = request.inputs["images"].tensor_shape.dim[0].size
    response = _protos.message_class("tensorflow.serving.PredictResponse")()
    response.model_spec.name = request.model_spec.name
    response.model_spec.signature_name = request.model_spec.signature_name
    outputs = response.outputs
    outputs["logits"].CopyFrom(_codec.encode(np.zeros((batch, 3), np.float32)))
    outputs["probabilities"].CopyFrom(_codec.encode(np.full((batch, 3), 1 / 3, np.float32)))
    outputs["predicted_class"].CopyFrom(_codec.encode(np.zeros(batch, np.int32)))
    outputs["target_class"].CopyFrom(_codec.encode(np.zeros(batch, np.int32)))
    outputs["saliency"].CopyFrom(CRAFTED.get(request.model_spec.name, CRAFTED["broadcast"])(batch))
    return response


@pytest.fixture(scope="module")
def crafted_target():
    def handler(name: str, function: Callable[[Any], Any], request_type: str) -> Any:
        return grpc.unary_unary_rpc_method_handler(
            function,
            request_deserializer=_protos.message_class(request_type).FromString,
            response_serializer=lambda message: message.SerializeToString(),
        )

    service = grpc.method_handlers_generic_handler(
        "tensorflow.serving.PredictionService",
        {
            "Predict": handler("Predict", _predict_response, "tensorflow.serving.PredictRequest"),
            "GetModelMetadata": handler(
                "GetModelMetadata", _metadata_response, "tensorflow.serving.GetModelMetadataRequest"
            ),
        },
    )
    limit = 512 * MiB
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        options=[("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)],
    )
    server.add_generic_rpc_handlers((service,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


def _explain(target: str, model: str, **kwargs: Any) -> sc.Explanation:
    with ServingClient(target, model, timeout=10.0, **kwargs) as client:
        return client.explain(np.ones((2, *IMAGE_SHAPE), np.float32))


@pytest.mark.parametrize(
    ("model", "error", "needle"),
    [
        ("huge_declared", sc.TensorTooLargeError, r"output 'saliency': shape \[2, 1048576, 1048576\]"),
        ("overflowing_dims", sc.TensorTooLargeError, "output 'saliency'.*declares"),
        ("huge_strings", sc.TensorTooLargeError, "output 'saliency'.*DT_STRING"),
        ("padded_128mib", sc.TensorTooLargeError, "output 'saliency': 1 value.*padded tensors"),
        ("too_many_values", sc.MalformedTensorError, "output 'saliency'.*holds 11 values"),
        ("short_content", sc.MalformedTensorError, "output 'saliency'.*12 bytes; expected 512"),
    ],
)
def test_crafted_tensors_are_refused_naming_the_output(crafted_target, model, error, needle):
    with pytest.raises(error, match=needle) as raised:
        _explain(crafted_target, model)
    assert isinstance(raised.value, sc.UnexpectedResponseError)
    assert isinstance(raised.value, sc.ServingError)
    assert raised.value.code == "UNEXPECTED_RESPONSE"


def test_tensorflows_short_value_rules_still_decode(crafted_target):
    # Tensor::FromProto / tf.make_ndarray: pad with the last value, zeros for none.
    np.testing.assert_array_equal(_explain(crafted_target, "broadcast").saliency, np.full((2, 8, 8), 0.75, np.float32))
    tail = _explain(crafted_target, "padded_tail").saliency.reshape(-1)
    np.testing.assert_array_equal(tail[:3], np.float32([0.1, 0.2, 0.3]))
    np.testing.assert_array_equal(tail[3:], np.float32(0.3))
    np.testing.assert_array_equal(_explain(crafted_target, "empty_values").saliency, np.zeros((2, 8, 8)))


def test_the_padding_limit_follows_max_message_bytes(crafted_target):
    # 2 x 300 x 300 float32 = 720 KB. A 4 MiB client pads at most 1 MiB: decoded.
    assert _explain(crafted_target, "padded_360kb", max_message_bytes=4 * MiB).saliency.shape == (2, 300, 300)
    # A 2 MiB client pads at most 512 KiB: refused ...
    with pytest.raises(sc.TensorTooLargeError, match="524288-byte limit"):
        _explain(crafted_target, "padded_360kb", max_message_bytes=2 * MiB)
    # ... while the same tensor with every value sent fits its messages and is decoded.
    full = _explain(crafted_target, "full_360kb", max_message_bytes=2 * MiB)
    np.testing.assert_array_equal(full.saliency, np.full((2, 300, 300), 0.5, np.float32))


def test_an_invalid_argument_answer_makes_the_client_read_the_format_again(crafted_target):
    with ServingClient(crafted_target, "refuses", timeout=10.0) as client:
        for _ in range(2):
            with pytest.raises(sc.InvalidArgumentError, match="wrong dtype"):
                client.explain(np.ones((1, *IMAGE_SHAPE), np.float32))
    # Each refusal may mean a new version with another format: metadata read before each.
    assert CALLS["metadata", "refuses"] == 2 and CALLS["predict", "refuses"] == 2


def test_a_server_without_metadata_gets_float32_and_is_asked_once(crafted_target):
    with ServingClient(crafted_target, "no_metadata", timeout=10.0) as client:
        assert client.input_format("explain") == "float32"
        for _ in range(3):
            assert client.explain(np.ones((1, *IMAGE_SHAPE), np.float32)).saliency.shape == (1, 8, 8)
    assert CALLS["metadata", "no_metadata"] == 1 and CALLS["predict", "no_metadata"] == 3


def test_decode_limits_validate_their_fields():
    with pytest.raises(ValueError, match="max_padded_bytes must be an int >= 0; got -1"):
        sc.DecodeLimits(max_padded_bytes=-1)
    assert sc.DecodeLimits.for_message_bytes(256 * MiB) == sc.DecodeLimits()


_PEAK_RSS_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import serving_client as sc
    from serving_client import _codec, _protos

    def peak_mib():
        # VmHWM: this process's own peak. ru_maxrss is not: Linux carries the forking
        # parent's peak (pytest with TensorFlow loaded) across exec into it.
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    target, model = sys.argv[1], sys.argv[2]
    with sc.ServingClient(target, model, timeout=30.0) as client:
        images = np.ones((2, 8, 8, 1), np.float32)
        client.input_format("explain")
        before = peak_mib()
        if model == "control":
            # The same declared tensor decoded with the limits lifted: what padding costs.
            proto = _protos.message_class("tensorflow.TensorProto")()
            proto.dtype = _protos.enum_value("tensorflow.DataType", "DT_FLOAT")
            for size in (2, 4096, 4096):
                proto.tensor_shape.dim.add().size = size
            proto.float_val.append(0.25)
            _codec.decode(proto, limits=sc.DecodeLimits(1 << 40, 1 << 40))
            outcome = "decoded"
        else:
            try:
                client.explain(images)
                outcome = "decoded"
            except sc.TensorTooLargeError as error:
                outcome = type(error).__name__
    print(outcome, peak_mib() - before)
    """
)


def _peak_rss_growth(target: str, model: str) -> tuple[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS_SCRIPT, target, model],
        capture_output=True, text=True, timeout=120, check=True,
    )
    outcome, growth = result.stdout.split()
    return outcome, float(growth)


@pytest.mark.parametrize("model", ["padded_128mib", "huge_declared"])
def test_refusal_costs_no_large_allocation_measured_by_peak_rss(crafted_target, model):
    outcome, growth_mib = _peak_rss_growth(crafted_target, model)
    assert outcome == "TensorTooLargeError"
    assert growth_mib < 16, f"peak RSS grew by {growth_mib:.1f} MiB while refusing"


def test_the_peak_rss_measurement_sees_unguarded_padding(crafted_target):
    # The same 128 MiB declared tensor decoded with the limits lifted lifts the peak (by ~100-120
    # MiB: the peak before already held some freed memory): the measurement above would see
    # the allocation it guards against.
    outcome, growth_mib = _peak_rss_growth(crafted_target, "control")
    assert outcome == "decoded"
    assert growth_mib > 64, f"unguarded padding grew peak RSS by only {growth_mib:.1f} MiB"
