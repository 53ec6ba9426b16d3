"""A real gRPC server on 127.0.0.1 built from TF Serving's official stubs, with canned answers.

The servicer computes its answers from the request so tests can check values, and it switches
behaviour on the model name, which lets tests drive error mapping and retries over a socket:

- ``mnist``: answers; ``serving_default`` and ``explain_vals`` encode outputs in ``*_val``
  fields (single-value broadcast included), other signatures in ``tensor_content``;
  signature ``bad`` aborts INVALID_ARGUMENT, ``no_saliency`` omits the saliency output.
- ``multi``: answers like ``mnist``; its metadata also lists ``explain_smoothgrad``,
  ``explain_integrated_gradients`` and ``custom_saliency``, an explanation-shaped signature
  whose name serves no method by the contract's rule. ``every``: its metadata lists every
  built-in method's signature.
- ``missing``: NOT_FOUND. ``down``: always UNAVAILABLE. ``flaky``: UNAVAILABLE twice, then
  answers like ``mnist``. ``broken``: FAILED_PRECONDITION. ``slow``: sleeps 2 s.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest

NUM_CLASSES = 3
IMAGE_SHAPE = (8, 8, 1)


def logits_for(images: np.ndarray) -> np.ndarray:
    """The fake model: class 0 likes bright images, class 1 dark ones, class 2 is neutral."""
    total = images.reshape(images.shape[0], -1).sum(axis=1)
    return np.stack([total, -total, np.zeros_like(total)], axis=1).astype(np.float32)


def saliency_for(images: np.ndarray) -> np.ndarray:
    magnitude = np.abs(images).max(axis=-1)
    peak = magnitude.reshape(magnitude.shape[0], -1).max(axis=1)
    peak = np.where(peak > 0, peak, 1.0)
    return (magnitude / peak[:, None, None]).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


@dataclass
class FakeServing:
    """The running test server: its address and what it saw."""

    target: str
    tls_target: str | None = None  # the same services over TLS (None without openssl)
    tls_root_certificate: bytes | None = None
    calls: Counter = field(default_factory=Counter)
    requests: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.requests.clear()


@pytest.fixture(scope="session")
def official():
    """TF Serving's official generated modules (imports TensorFlow, ~4 s, once)."""
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    class Namespace:
        pass

    ns = Namespace()
    ns.tf = tf
    ns.tensor_pb2 = tensor_pb2
    ns.meta_graph_pb2 = meta_graph_pb2
    ns.get_model_metadata_pb2 = get_model_metadata_pb2
    ns.get_model_status_pb2 = get_model_status_pb2
    ns.model_service_pb2_grpc = model_service_pb2_grpc
    ns.predict_pb2 = predict_pb2
    ns.prediction_service_pb2_grpc = prediction_service_pb2_grpc
    return ns


def _val_proto(official, array: np.ndarray, *, broadcast: bool = False):
    """A TensorProto in *_val form (what the Predict examples read), optionally one value."""
    tf = official.tf
    proto = official.tensor_pb2.TensorProto(
        dtype=tf.as_dtype(array.dtype).as_datatype_enum,
        tensor_shape=tf.TensorShape(array.shape).as_proto(),
    )
    flat = array.reshape(-1)[:1] if broadcast else array.reshape(-1)
    field_name = {"f": "float_val", "i": "int_val"}[array.dtype.kind]
    getattr(proto, field_name).extend(flat.tolist())
    return proto


def _signature_def_map(official, extra_explain: tuple[str, ...] = ()):
    meta = official.meta_graph_pb2
    tf = official.tf
    result = official.get_model_metadata_pb2.SignatureDefMap()

    def info(name, dtype, shape):
        return meta.TensorInfo(
            name=name,
            dtype=tf.as_dtype(dtype).as_datatype_enum,
            tensor_shape=tf.TensorShape(shape).as_proto(),
        )

    images = info("serving_default_images:0", "float32", [None, *IMAGE_SHAPE])
    common_outputs = {
        "logits": info("out:0", "float32", [None, NUM_CLASSES]),
        "probabilities": info("out:1", "float32", [None, NUM_CLASSES]),
        "predicted_class": info("out:2", "int32", [None]),
    }
    default = result.signature_def["serving_default"]
    default.method_name = "tensorflow/serving/predict"
    default.inputs["images"].CopyFrom(images)
    for key, value in common_outputs.items():
        default.outputs[key].CopyFrom(value)
    explain = result.signature_def["explain"]
    explain.method_name = "tensorflow/serving/predict"
    explain.inputs["images"].CopyFrom(images)
    explain.inputs["target_class"].CopyFrom(info("explain_target_class:0", "int32", [None]))
    for key, value in common_outputs.items():
        explain.outputs[key].CopyFrom(value)
    explain.outputs["target_class"].CopyFrom(info("out:3", "int32", [None]))
    explain.outputs["saliency"].CopyFrom(info("out:4", "float32", [None, *IMAGE_SHAPE[:2]]))
    explain.defaults["target_class"].CopyFrom(official.tf.make_tensor_proto([-1], "int32"))
    for name in extra_explain:
        result.signature_def[name].CopyFrom(explain)
    return result


def _self_signed_certificate() -> tuple[bytes, bytes] | None:
    """(key, cert) PEM for 127.0.0.1 made with the openssl CLI, or None if it is missing."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    with tempfile.TemporaryDirectory() as workdir:
        key, cert = Path(workdir, "key.pem"), Path(workdir, "cert.pem")
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=60,
        )
        return key.read_bytes(), cert.read_bytes()


@pytest.fixture(scope="session")
def fake_serving(official):
    """Start the fake TF Serving on 127.0.0.1 (free port) for the whole session."""
    tf = official.tf
    state = FakeServing(target="")
    predict_pb2 = official.predict_pb2
    flaky_failures = 2

    def gate(request_name: str, context) -> None:
        with state.lock:
            state.calls[request_name] += 1
            count = state.calls[request_name]
        if request_name == "missing":
            context.abort(grpc.StatusCode.NOT_FOUND, "Servable not found for request: missing")
        if request_name == "down":
            context.abort(grpc.StatusCode.UNAVAILABLE, "server is down")
        if request_name == "flaky" and count <= flaky_failures:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"warming up ({count})")
        if request_name == "broken":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "version not loaded")
        if request_name == "slow":
            time.sleep(2.0)

    class PredictionService(official.prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 - gRPC method name
            with state.lock:
                state.requests.append(request.SerializeToString())
            gate(request.model_spec.name, context)
            signature = request.model_spec.signature_name or "serving_default"
            if signature == "bad":
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "input 'images' has wrong shape")
            images = tf.make_ndarray(request.inputs["images"])
            logits = logits_for(images)
            probabilities = softmax(logits)
            predicted = logits.argmax(axis=1).astype(np.int32)
            outputs = {
                "logits": logits,
                "probabilities": probabilities,
                "predicted_class": predicted,
            }
            if signature.startswith("explain") or signature in ("no_saliency", "custom_saliency"):
                if "target_class" in request.inputs:
                    target = tf.make_ndarray(request.inputs["target_class"]).astype(np.int32)
                else:
                    target = np.array([-1], np.int32)
                target = np.broadcast_to(target, predicted.shape)
                outputs["target_class"] = np.where(target < 0, predicted, target).astype(np.int32)
                outputs["saliency"] = saliency_for(images)
            if signature == "no_saliency":
                del outputs["saliency"]
            if signature == "explain_integrated_gradients":
                outputs["attributions"] = images * 0.5
                outputs["approximation_error"] = np.full(images.shape[:1], 0.01, np.float32)
            response = predict_pb2.PredictResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = request.model_spec.version.value or 1
            response.model_spec.signature_name = signature
            wanted = set(request.output_filter) or set(outputs)
            for key, value in outputs.items():
                if key not in wanted:
                    continue
                if signature in ("serving_default", "explain_vals"):
                    proto = _val_proto(official, value)
                    if key == "saliency" and not value.any():
                        proto = _val_proto(official, value, broadcast=True)
                else:
                    proto = tf.make_tensor_proto(value)
                response.outputs[key].CopyFrom(proto)
            return response

        def GetModelMetadata(self, request, context):  # noqa: N802
            gate(request.model_spec.name, context)
            if list(request.metadata_field) != ["signature_def"]:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "metadata_field must be signature_def")
            response = official.get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = 1
            extra = ()
            if request.model_spec.name == "multi":
                extra = ("explain_smoothgrad", "explain_integrated_gradients", "custom_saliency")
            if request.model_spec.name == "every":
                extra = (
                    "explain_smoothgrad",
                    "explain_integrated_gradients",
                    "explain_gradient_x_input",
                    "explain_gradcam",
                )
            response.metadata["signature_def"].Pack(_signature_def_map(official, extra))
            return response

    class ModelService(official.model_service_pb2_grpc.ModelServiceServicer):
        def GetModelStatus(self, request, context):  # noqa: N802
            gate(request.model_spec.name, context)
            status_pb2 = official.get_model_status_pb2
            response = status_pb2.GetModelStatusResponse()
            available = response.model_version_status.add()
            available.version = 2
            available.state = status_pb2.ModelVersionStatus.AVAILABLE
            ended = response.model_version_status.add()
            ended.version = 1
            ended.state = status_pb2.ModelVersionStatus.END
            ended.status.error_code = 9  # FAILED_PRECONDITION
            ended.status.error_message = "unloaded after a failed load"
            return response

    limit = 256 * 1024 * 1024
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
        ],
    )
    official.prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(), server
    )
    official.model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    certificate = _self_signed_certificate()
    if certificate is not None:
        key, cert = certificate
        credentials = grpc.ssl_server_credentials([(key, cert)])
        state.tls_target = f"127.0.0.1:{server.add_secure_port('127.0.0.1:0', credentials)}"
        state.tls_root_certificate = cert
    server.start()
    state.target = f"127.0.0.1:{port}"
    yield state
    server.stop(grace=None)


@pytest.fixture
def serving(fake_serving):
    """The session server with its call counters cleared for this test."""
    fake_serving.reset()
    return fake_serving
