"""The request logic both front ends share: Predict, GetModelMetadata, GetModelStatus."""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
)

from serving_client.contract import SERVING_DEFAULT

from ._batching import BatchScheduler
from ._errors import ServingError, invalid_argument
from ._limits import RequestLimits
from ._manager import ServableManager, State
from ._predict import InputValue, fill_output_protos, run_predict

SIGNATURE_DEF_FIELD = "signature_def"


class RequestCounters:
    """Requests per (model, api/signature, status code name); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[tuple[str, str, str]] = collections.Counter()

    def add(self, model: str, what: str, code: str) -> None:
        with self._lock:
            self._counts[(model, what, code)] += 1

    def snapshot(self) -> dict[tuple[str, str, str], int]:
        with self._lock:
            return dict(self._counts)


class ServingCore:
    """Answers requests from the servables a ``ServableManager`` holds."""

    def __init__(self, manager: ServableManager, batcher: BatchScheduler | None = None) -> None:
        self.manager = manager
        self.batcher = batcher
        self.counters = RequestCounters()
        self.limits = RequestLimits()

    # ---- Predict --------------------------------------------------------------------------

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        """PredictionService/Predict.

        Raises:
            ServingError: TF Serving's code and message.
        """
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        label = spec.version_label or None
        signature_name, served_version, outputs = self.predict_arrays(
            spec.name,
            version,
            label,
            spec.signature_name,
            request.inputs,
            list(request.output_filter),
        )
        response = predict_pb2.PredictResponse()
        _fill_model_spec(response.model_spec, spec.name, served_version, signature_name)
        fill_output_protos(response.outputs, outputs)
        return response

    def predict_arrays(
        self,
        name: str,
        version: int | None,
        label: str | None,
        signature_name: str,
        inputs: Mapping[str, InputValue],
        output_filter: Sequence[str] = (),
    ) -> tuple[str, int, dict[str, np.ndarray]]:
        """Predict with already-split arguments (REST decodes JSON straight to arrays).

        Returns:
            (signature key used, version that answered, outputs by alias).
        """
        what = f"predict/{signature_name or SERVING_DEFAULT}"
        try:
            if version is not None and label:
                raise invalid_argument(
                    f"Both model version ({version}) and model version label ({label}) "
                    "cannot be supplied."
                )
            with self.manager.handle(name, version, label) as servable:
                # The export's limits first: an oversize batch or a bomb is refused undecoded.
                self.limits.check(servable, signature_name or SERVING_DEFAULT, inputs)
                key, outputs = run_predict(
                    servable, signature_name, inputs, output_filter, self.batcher
                )
                served = servable.version
        except ServingError as exc:
            self.counters.add(name, what, exc.code_name)
            raise
        except Exception:
            self.counters.add(name, what, "INTERNAL")
            raise
        self.counters.add(name, what, "OK")
        return key, served, outputs

    def signature_inputs(
        self, name: str, version: int | None, label: str | None, signature: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The input TensorInfo map and the defaults of a signature (REST's GetInfoMap).

        Raises:
            ServingError: NOT_FOUND for the servable; INVALID_ARGUMENT
                ``Serving signature name: "x" not found in signature def`` as TF Serving's
                REST handler.
        """
        with self.manager.handle(name, version, label) as servable:
            key = signature or SERVING_DEFAULT
            sig = servable.signature_defs.get(key)
            if sig is None:
                raise invalid_argument(f'Serving signature name: "{key}" not found in signature def')
            return dict(sig.inputs), dict(sig.defaults)

    # ---- metadata and status --------------------------------------------------------------

    def get_model_metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """PredictionService/GetModelMetadata, as ``get_model_metadata_impl.cc``."""
        name = request.model_spec.name
        try:
            response = self._get_model_metadata(request)
        except ServingError as exc:
            self.counters.add(name, "metadata", exc.code_name)
            raise
        self.counters.add(name, "metadata", "OK")
        return response

    def _get_model_metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        if not request.metadata_field:
            raise invalid_argument(
                "GetModelMetadataRequest must specify at least one metadata_field"
            )
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise invalid_argument(f"Metadata field {field} is not supported")
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        with self.manager.handle(spec.name, version, spec.version_label or None) as servable:
            sig_map = get_model_metadata_pb2.SignatureDefMap()
            for key, sig in servable.signature_defs.items():
                sig_map.signature_def[key].CopyFrom(sig)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = servable.name
            response.model_spec.version.value = servable.version
            response.metadata[SIGNATURE_DEF_FIELD].Pack(sig_map)
        return response

    def get_model_status(
        self, request: get_model_status_pb2.GetModelStatusRequest
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """ModelService/GetModelStatus, as ``get_model_status_impl.cc``."""
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        if version is None and spec.version_label:
            version = self.manager.resolve_label(spec.name, spec.version_label)
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in self.manager.status(spec.name, version):
            entry = response.model_version_status.add()
            entry.version = status.version
            entry.state = int(status.state)
            # TF Serving always sets the status (OK when healthy), so REST shows error_code "OK".
            entry.status.SetInParent()
            if status.error is not None:
                entry.status.error_code = status.error.code.value[0]
                entry.status.error_message = status.error.message
        return response


def _fill_model_spec(spec: model_pb2.ModelSpec, name: str, version: int, signature: str) -> None:
    # MakeModelSpec(): name, resolved signature name, and the version that answered.
    spec.name = name
    spec.signature_name = signature
    spec.version.value = version


__all__ = ["RequestCounters", "ServingCore", "State"]
