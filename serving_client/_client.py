"""``ServingClient``: TF Serving's gRPC API for image classifiers with saliency signatures."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import grpc
import numpy as np

from . import _codec, _inputs, _protos, contract
from ._exceptions import (
    ClientClosedError,
    DeadlineExceededError,
    InvalidArgumentError,
    ServerError,
    UnavailableError,
    UnexpectedResponseError,
    from_rpc_error,
)
from ._results import (
    Explanation,
    ModelMetadata,
    ModelVersionStatus,
    Prediction,
    SignatureInfo,
    TensorSpec,
    methods_in_order,
)

MiB = 1024 * 1024
DEFAULT_MAX_MESSAGE_BYTES = 256 * MiB

_PREDICTION_OUTPUTS = contract.PREDICT_OUTPUTS
_EXPLANATION_OUTPUTS = contract.EXPLAIN_OUTPUTS
_SIGNATURE_DEF_MAP = "tensorflow.serving.SignatureDefMap"

# Backoff between UNAVAILABLE retries: full jitter over an exponentially growing window.
_BACKOFF_BASE_S = 0.05
_BACKOFF_CAP_S = 2.0


class ServingClient:
    """A gRPC client for a model served by TF Serving (or the bundled compatible server).

    Use it as a context manager, or call :meth:`close`; it owns the channel it creates.
    Every call has a deadline of ``timeout`` seconds, UNAVAILABLE answers are retried with
    exponential backoff and jitter within that deadline, and gRPC failures are raised as
    :class:`~serving_client.ServingError` subclasses.

    Args:
        target: ``"host:port"`` of the server.
        model_name: the model name the server was configured with.
        version: ask for this model version (default: the server's latest).
        version_label: ask for the version with this label, e.g. ``"stable"``; exclusive
            with ``version``.
        timeout: deadline in seconds for each method call, retries included.
        root_certificates: PEM root certificates; setting any of the three TLS options
            makes the channel secure.
        private_key: PEM client key (mutual TLS); needs ``certificate_chain``.
        certificate_chain: PEM client certificate chain (mutual TLS).
        credentials: ready ``grpc.ChannelCredentials``, instead of the three options above.
        max_message_bytes: send and receive message limit; the 256 MiB default fits 256
            saliency maps of 224x224 plus logits. It also bounds decoding: no response tensor
            may declare more than this many bytes (see :class:`serving_client.DecodeLimits`).
        retries: how many times to retry a call answered with UNAVAILABLE.
        channel: use this channel instead of creating one (e.g. an intercepted channel). The
            caller keeps ownership: :meth:`close` does not close it.

    Raises:
        ValueError: for contradictory or out-of-range options.
    """

    def __init__(
        self,
        target: str,
        model_name: str,
        *,
        version: int | None = None,
        version_label: str | None = None,
        timeout: float = 10.0,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        retries: int = 3,
        channel: grpc.Channel | None = None,
    ) -> None:
        if not model_name:
            raise ValueError("model_name must be a non-empty string; got an empty name.")
        if version is not None and version_label is not None:
            raise ValueError(
                f"Pass version or version_label, not both; got version={version!r} and "
                f"version_label={version_label!r}."
            )
        if version is not None and (isinstance(version, bool) or int(version) != version):
            raise ValueError(f"version must be an int; got {version!r}.")
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds; got {timeout!r}.")
        if retries < 0:
            raise ValueError(f"retries must be >= 0; got {retries!r}.")
        if max_message_bytes <= 0:
            raise ValueError(f"max_message_bytes must be positive; got {max_message_bytes!r}.")
        tls_options = (root_certificates, private_key, certificate_chain)
        if credentials is not None and any(option is not None for option in tls_options):
            raise ValueError(
                "Pass credentials or root_certificates/private_key/certificate_chain, not both."
            )
        if (private_key is None) != (certificate_chain is None):
            raise ValueError(
                "Mutual TLS needs both private_key and certificate_chain; got only one of them."
            )

        self.target = target
        self.model_name = model_name
        self.version = None if version is None else int(version)
        self.version_label = version_label
        self.timeout = float(timeout)
        self.retries = int(retries)
        self._owns_channel = channel is None
        if channel is None:
            options = [
                ("grpc.max_send_message_length", int(max_message_bytes)),
                ("grpc.max_receive_message_length", int(max_message_bytes)),
            ]
            if credentials is None and any(option is not None for option in tls_options):
                credentials = grpc.ssl_channel_credentials(*tls_options)
            if credentials is not None:
                channel = grpc.secure_channel(target, credentials, options=options)
            else:
                channel = grpc.insecure_channel(target, options=options)
        self._channel = channel
        self._stubs: dict[str, Callable[..., Any]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._decode_limits = _codec.DecodeLimits.for_message_bytes(int(max_message_bytes))
        # Signature name → its `images` input format, read once from GetModelMetadata.
        self._formats: dict[str, str] | None = None
        self._signatures: dict[str, SignatureInfo] | None = None
        self._formats_lock = threading.Lock()
        self._no_metadata = False

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel (if this client created it). Further calls raise ClientClosedError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._owns_channel:
                self._channel.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def __enter__(self) -> ServingClient:
        self._check_open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        selector = (
            f", version={self.version}"
            if self.version is not None
            else f", version_label={self.version_label!r}"
            if self.version_label is not None
            else ""
        )
        state = ", closed" if self._closed else ""
        return f"ServingClient({self.target!r}, {self.model_name!r}{selector}{state})"

    # -- the API -----------------------------------------------------------------------------

    def predict(self, images: Any, *, signature: str = contract.SERVING_DEFAULT) -> Prediction:
        """Classify a batch of images.

        Args:
            images: what the signature's ``images`` input takes, by its dtype (read once
                from the model's metadata): for float32 and uint8 exports ``[H, W, C]`` or
                ``[batch, H, W, C]`` arrays (uint8: pixel values 0..255, refused rather than
                cast when out of range or not whole numbers); for ``image_bytes`` exports file
                paths, encoded image bytes, PIL images or pixel arrays (PNG-encoded), one or a
                sequence. See :func:`serving_client.as_image_batch`.
            signature: the signature to call.

        Returns:
            A :class:`Prediction`.

        Raises:
            TypeError, ValueError: for images the export's input format cannot take.
            FileNotFoundError: for a missing image file (``image_bytes`` exports).
            ServingError: a subclass for each gRPC failure; UnexpectedResponseError if an
                output of the contract is missing or a response tensor is malformed or over
                the decoding limits.
        """
        batch = self._image_batch(images, signature)
        outputs, spec = self._predict_typed({contract.IMAGES: batch}, signature)
        required = _take(outputs, _PREDICTION_OUTPUTS, signature)
        return Prediction(**required, **spec)

    def explain(
        self,
        images: Any,
        target_class: int | Sequence[int] | np.ndarray | None = None,
        *,
        method: str | None = None,
        signature: str | None = None,
        steps: int | Sequence[int] | np.ndarray | None = None,
        samples: int | Sequence[int] | np.ndarray | None = None,
        noise: float | Sequence[float] | np.ndarray | None = None,
        baseline: Any = None,
        classes: Sequence[int] | Sequence[Sequence[int]] | np.ndarray | None = None,
        top_k: int | None = None,
    ) -> Explanation:
        """Classify images and get a saliency map for each, in one call.

        Args:
            images: what the signature's ``images`` input takes, as for :meth:`predict`.
            target_class: the class to explain, one for all images or one per image; ``None``
                (or ``-1``) explains each image's predicted class. It is always sent as one
                value per image: TF Serving's request batching concatenates inputs along
                the batch dimension, so a request relying on the signature's length-1
                default would fail there once it holds more than one image.
            method: the explanation method (``"vanilla"``, ``"smoothgrad"``,
                ``"integrated_gradients"``, ...), default ``"vanilla"``; it is served by
                the signature the contract names for it (``explain`` /
                ``explain_<method>``), and must be one the model offers (:meth:`methods`,
                read from its metadata).
            signature: call this signature by name instead (any explanation signature with
                the same outputs). Given together with ``method``, both must name the same
                signature.
            steps: the path's intervals (IG, Blur IG, Guided IG), one for all images or one
                per image; ``None``: the export's default.
            samples: noisy copies averaged (SmoothGrad, and SmoothGrad inside IG).
            noise: the noise σ as a fraction of the input range (SmoothGrad, IG).
            baseline: IG's baselines, in the model's input space (the float values the model
                sees): one image ``[H, W, C]`` for all, one per image ``[B, H, W, C]``, or N
                per image ``[B, N, H, W, C]`` (their attributions are averaged); ``None``:
                the export's constant baseline.
            classes: several classes per image in one call: K class ids for every image, or
                one row of K per image (``[B, K]``); ``-j`` is each image's j-th most probable
                class. The per-class outputs then have a class axis after the batch
                (``saliency`` ``[B, K, H, W]``, ``target_class`` ``[B, K]``, see
                :class:`Explanation`). Not together with ``target_class`` or ``top_k``.
            top_k: explain each image's ``top_k`` most probable classes (``classes=[-1, ...,
                -top_k]``), most probable first.

            Each per-request parameter the signature has is sent with one value per image
            (the signature's default, read from the model's metadata, for those not
            given), so TF Serving's request batching can concatenate requests. The graph
            checks the bounds (INVALID_ARGUMENT names the input, the value and the bound).

        Returns:
            An :class:`Explanation`; outputs beyond the contract are in ``extras``, and IG's
            ``attributions`` / ``approximation_error`` also in the typed fields of that name.

        Raises:
            TypeError, ValueError: for images the export's input format cannot take,
                malformed target classes (or ``classes`` / ``top_k``; ``target_class`` with
                either, or both), a ``method`` the model's metadata does not list
                (the message lists those it has; nothing is sent), a ``method`` and
                ``signature`` that disagree, or a per-request parameter the signature does
                not take (the message names the method's per-request inputs).
            FileNotFoundError: for a missing image file (``image_bytes`` exports).
            ServingError: a subclass for each gRPC failure (FailedPreconditionError for an
                explicit ``signature`` the model lacks, or a ``method`` the metadata could
                not be read for); UnexpectedResponseError if an output of the contract is
                missing.
        """
        explicit = signature is not None
        signature = signature_for(method, signature)
        if not explicit:
            self._check_offered(method or contract.VANILLA, signature)
        batch = self._image_batch(images, signature)
        if classes is not None or top_k is not None:
            target = _class_matrix(target_class, classes, top_k, batch.shape[0])
        else:
            requested = contract.TARGET_CLASS_DEFAULT if target_class is None else target_class
            target = _inputs.as_target_class(requested, batch.shape[0])
        inputs = {contract.IMAGES: batch, contract.TARGET_CLASS: target}
        given = {
            contract.STEPS: steps,
            contract.SAMPLES: samples,
            contract.NOISE: noise,
            contract.BASELINE: baseline,
        }
        inputs.update(
            self._request_inputs(
                {k: v for k, v in given.items() if v is not None}, signature, method, batch.shape[0]
            )
        )
        outputs, spec = self._predict_typed(inputs, signature)
        required = _take(outputs, _EXPLANATION_OUTPUTS, signature)
        extras = {key: value for key, value in outputs.items() if key not in required}
        return Explanation(
            **required,
            **spec,
            extras=extras,
            attributions=extras.get("attributions"),
            approximation_error=extras.get("approximation_error"),
        )

    def methods(self) -> tuple[str, ...]:
        """The explanation methods the served model offers (from its metadata).

        Returns:
            The methods whose signatures the model has, by the contract's naming rule
            (``explain`` → ``"vanilla"``, ``explain_<name>`` → ``"<name>"``): ``"vanilla"``
            first, then the others by signature name.

        Raises:
            ServingError: a subclass for each gRPC failure.
        """
        return self.metadata().methods

    def raw_predict(
        self,
        inputs: Mapping[str, Any],
        *,
        signature: str,
        output_filter: Iterable[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Call any signature with any inputs.

        Args:
            inputs: input key → array (encoded with its own dtype: cast beforehand).
            signature: the signature to call.
            output_filter: only ask for these outputs (default: all).

        Returns:
            Output key → numpy array.

        Raises:
            TypeError: for an array dtype TensorFlow has no equivalent for.
            ServingError: a subclass for each gRPC failure.
        """
        outputs, _ = self._predict(dict(inputs), signature, output_filter)
        return outputs

    def metadata(self) -> ModelMetadata:
        """Describe the model's signatures (GetModelMetadata with ``signature_def``).

        Returns:
            A :class:`ModelMetadata` with every signature's inputs and outputs.

        Raises:
            ServingError: a subclass for each gRPC failure; UnexpectedResponseError if the
                response lacks the signature map.
        """
        request = _protos.message_class("tensorflow.serving.GetModelMetadataRequest")()
        self._fill_model_spec(request.model_spec, signature=None)
        request.metadata_field.append("signature_def")
        response = self._call(
            _protos.GET_MODEL_METADATA_METHOD,
            request,
            "tensorflow.serving.GetModelMetadataResponse",
        )
        if "signature_def" not in response.metadata:
            raise UnexpectedResponseError(
                "GetModelMetadata response has no 'signature_def' entry; got keys "
                f"{sorted(response.metadata)}."
            )
        packed = response.metadata["signature_def"]
        if not packed.type_url.endswith("/" + _SIGNATURE_DEF_MAP):
            raise UnexpectedResponseError(
                f"metadata['signature_def'] should pack a {_SIGNATURE_DEF_MAP}; got "
                f"{packed.type_url!r}."
            )
        signature_map = _protos.message_class(_SIGNATURE_DEF_MAP).FromString(packed.value)
        signatures = {
            name: _signature_info(name, signature_map.signature_def[name])
            for name in sorted(signature_map.signature_def)
        }
        self._signatures = signatures
        self._formats = {
            name: info.inputs[contract.IMAGES].dtype
            for name, info in signatures.items()
            if contract.IMAGES in info.inputs
        }
        return ModelMetadata(
            model_name=response.model_spec.name,
            model_version=_version_of(response.model_spec),
            signatures=signatures,
        )

    def status(self) -> list[ModelVersionStatus]:
        """List the model's versions and their states (ModelService.GetModelStatus).

        Returns:
            One :class:`ModelVersionStatus` per version the server reports.

        Raises:
            ServingError: a subclass for each gRPC failure (NotFoundError for an unknown model).
        """
        request = _protos.message_class("tensorflow.serving.GetModelStatusRequest")()
        self._fill_model_spec(request.model_spec, signature=None)
        response = self._call(
            _protos.GET_MODEL_STATUS_METHOD,
            request,
            "tensorflow.serving.GetModelStatusResponse",
        )
        return [
            ModelVersionStatus(
                version=entry.version,
                state=_protos.enum_name("tensorflow.serving.ModelVersionStatus.State", entry.state),
                error_code=_protos.enum_name("tensorflow.error.Code", entry.status.error_code),
                error_message=entry.status.error_message,
            )
            for entry in response.model_version_status
        ]

    def input_format(self, signature: str = contract.SERVING_DEFAULT) -> str:
        """The format ``signature``'s ``images`` input takes, from the model's metadata.

        Read with one GetModelMetadata call per client and kept (thread-safe); the cache is
        dropped when the server refuses a typed request as INVALID_ARGUMENT, so a new model
        version with another format is picked up on the next call.

        Args:
            signature: the signature name.

        Returns:
            ``"float32"``, ``"uint8"`` or ``"image_bytes"`` (:data:`serving_client.INPUT_FORMATS`).
            ``"float32"`` too when the server does not describe the signature (unknown name:
            the server's own error follows) or implements no GetModelMetadata.

        Raises:
            ValueError: for an ``images`` dtype the typed client cannot send.
            ServingError: a subclass for each gRPC failure of the metadata call.
        """
        formats = self._formats
        if not self._no_metadata and (formats is None or signature not in formats):
            with self._formats_lock:
                formats = self._formats
                if not self._no_metadata and (formats is None or signature not in formats):
                    try:
                        self.metadata()
                    except ServerError as error:
                        if error.code != "UNIMPLEMENTED":
                            raise
                        self._no_metadata = True  # such a server stays without metadata
                    formats = self._formats
        formats = formats or {}
        dtype = formats.get(signature)
        if dtype is None:
            return _inputs.FLOAT32
        return _inputs.input_format_of(dtype, signature)

    # -- plumbing ----------------------------------------------------------------------------

    def _check_offered(self, method: str, signature: str) -> None:
        """Refuse, before sending, a method whose signature the model's metadata lacks."""
        self.input_format(signature)  # reads the metadata once per client
        formats = self._formats
        if self._no_metadata or formats is None or signature in formats:
            return
        offered = methods_in_order(formats)
        raise ValueError(
            f"Model {self.model_name!r} has no explanation method {method!r} (no signature "
            f"{signature!r}); it offers {', '.join(offered) or 'no explanation method'}."
        )

    def _request_inputs(
        self, given: dict[str, Any], signature: str, method: str | None, batch: int
    ) -> dict[str, np.ndarray]:
        """The per-request parameters to send: every one the signature has, per image."""
        info = (self._signatures or {}).get(signature)
        if info is None:  # no metadata: send what was given, as given
            return {alias: _per_image(alias, value, batch, None) for alias, value in given.items()}
        offered = info.request_inputs
        unknown = [alias for alias in given if alias not in offered]
        if unknown:
            name = method or contract.method_of_signature(signature) or signature
            raise ValueError(
                f"Method {name!r} (signature {signature!r}) takes no {', '.join(unknown)}; its "
                f"per-request inputs are {', '.join(offered) or 'none'}."
            )
        out = {}
        for alias in offered:
            if alias in given:
                out[alias] = _per_image(alias, given[alias], batch, info)
            elif alias in info.defaults:
                # The signature's default, one per image: batching cannot concatenate a length-1
                # value with a batch of more.
                out[alias] = np.repeat(info.defaults[alias], batch, axis=0)
        return out

    def _image_batch(self, images: Any, signature: str) -> np.ndarray:
        return _inputs.as_image_batch(images, self.input_format(signature))

    def _predict_typed(
        self, inputs: dict[str, Any], signature: str
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        try:
            return self._predict(inputs, signature, None)
        except InvalidArgumentError:
            # Perhaps a new version with another input format: read the metadata again next time.
            self._formats = None
            self._signatures = None
            raise

    def _predict(
        self,
        inputs: dict[str, Any],
        signature: str,
        output_filter: Iterable[str] | None,
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        request = _protos.message_class("tensorflow.serving.PredictRequest")()
        self._fill_model_spec(request.model_spec, signature=signature)
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(_codec.encode(value))
        if output_filter is not None:
            request.output_filter.extend(output_filter)
        response = self._call(
            _protos.PREDICT_METHOD, request, "tensorflow.serving.PredictResponse"
        )
        outputs = {
            key: _codec.decode(
                response.outputs[key], name=f"output {key!r}", limits=self._decode_limits
            )
            for key in sorted(response.outputs)
        }
        spec = {
            # TF Serving echoes the spec; fall back to the request for servers that do not.
            "model_name": response.model_spec.name or self.model_name,
            "model_version": _version_of(response.model_spec),
            "signature_name": response.model_spec.signature_name or signature,
        }
        return outputs, spec

    def _fill_model_spec(self, spec: Any, *, signature: str | None) -> None:
        spec.name = self.model_name
        if signature is not None:
            spec.signature_name = signature
        if self.version is not None:
            spec.version.value = self.version
        elif self.version_label is not None:
            spec.version_label = self.version_label

    def _stub(self, method: str, response_type: str) -> Callable[..., Any]:
        stub = self._stubs.get(method)
        if stub is None:
            stub = self._channel.unary_unary(
                method,
                request_serializer=lambda message: message.SerializeToString(),
                response_deserializer=_protos.message_class(response_type).FromString,
            )
            self._stubs[method] = stub
        return stub

    def _call(self, method: str, request: Any, response_type: str) -> Any:
        """Call ``method`` with a deadline, retrying UNAVAILABLE; the one place RpcError is caught."""
        self._check_open()
        stub = self._stub(method, response_type)
        deadline = time.monotonic() + self.timeout
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceededError(
                    "DEADLINE_EXCEEDED",
                    f"{method} did not succeed within the {self.timeout:g} s timeout "
                    f"({attempt} attempt(s)).",
                )
            try:
                return stub(request, timeout=remaining)
            except grpc.RpcError as rpc_error:
                error = from_rpc_error(rpc_error)
                if self._closed:
                    raise ClientClosedError() from rpc_error
                if not isinstance(error, UnavailableError) or attempt >= self.retries:
                    raise error from rpc_error
                delay = random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt))
                if time.monotonic() + delay >= deadline:
                    raise error from rpc_error
            time.sleep(delay)
            attempt += 1

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError(
                f"This ServingClient for {self.target!r} is closed; create a new one."
            )


def signature_for(method: str | None, signature: str | None = None) -> str:
    """The signature to call for ``method`` (default ``"vanilla"``) or an explicit ``signature``.

    Args:
        method: an explanation method name (the contract's naming rule gives its signature:
            ``vanilla`` → ``explain``, ``<name>`` → ``explain_<name>``), or ``None``.
        signature: an explicit signature name, or ``None``.

    Returns:
        The signature name.

    Raises:
        ValueError: for a method name that is not a lower-case identifier, or a method and a
            signature that disagree.
    """
    if signature is None:
        return contract.signature_name(method or contract.VANILLA)
    if method is not None and contract.signature_name(method) != signature:
        raise ValueError(
            f"method={method!r} calls signature {contract.signature_name(method)!r}, but signature="
            f"{signature!r} was also given; pass one of them."
        )
    return signature


def _class_matrix(target_class: Any, classes: Any, top_k: int | None, batch: int) -> np.ndarray:
    """``classes`` / ``top_k`` as the int32 ``[batch, K]`` target the signature takes."""
    if target_class is not None:
        given = "classes" if classes is not None else "top_k"
        raise ValueError(
            f"explain() takes target_class (one class per image) or {given} (several), not both; "
            f"got target_class={target_class!r} and {given}={classes if classes is not None else top_k!r}."
        )
    if classes is not None and top_k is not None:
        raise ValueError(f"explain() takes classes or top_k, not both; got classes={classes!r} and top_k={top_k!r}.")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k must be an int >= 1; got {top_k!r}.")
        return np.broadcast_to(-np.arange(1, int(top_k) + 1, dtype=np.int32), (batch, int(top_k))).copy()
    array = np.asarray(classes)
    if array.dtype.kind not in "iu":
        raise TypeError(f"classes must be ints (K for all images, or [B, K]); got {classes!r} (dtype {array.dtype}).")
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] < 1 or array.shape[0] not in (1, batch):
        raise ValueError(
            f"classes must be K >= 1 class ids for every image or one row of K per image ([{batch}, K]); "
            f"got shape {list(np.shape(classes))}."
        )
    if array.min() < np.iinfo(np.int32).min or array.max() > np.iinfo(np.int32).max:
        raise ValueError(f"classes must fit in int32; got {array.tolist()}.")
    return np.broadcast_to(array.astype(np.int32), (batch, array.shape[1])).copy()


def _take(outputs: dict[str, np.ndarray], names: Sequence[str], signature: str) -> dict[str, Any]:
    missing = [name for name in names if name not in outputs]
    if missing:
        raise UnexpectedResponseError(
            f"Signature {signature!r} answered without output(s) {missing}; expected "
            f"{list(names)}, got {sorted(outputs)}."
        )
    return {name: outputs[name] for name in names}


def _version_of(model_spec: Any) -> int | None:
    return model_spec.version.value if model_spec.HasField("version") else None


def _signature_info(name: str, signature_def: Any) -> SignatureInfo:
    def specs(tensor_infos: Any) -> dict[str, TensorSpec]:
        return {key: _tensor_spec(key, tensor_infos[key]) for key in sorted(tensor_infos)}

    return SignatureInfo(
        name=name,
        method_name=signature_def.method_name,
        inputs=specs(signature_def.inputs),
        outputs=specs(signature_def.outputs),
        defaults={
            key: _codec.decode(signature_def.defaults[key], name=f"default of {key!r}")
            for key in sorted(signature_def.defaults)
        },
    )


def _per_image(alias: str, value: Any, batch: int, info: SignatureInfo | None) -> np.ndarray:
    """A per-request parameter as the signature takes it, with the batch's dim 0.

    ``steps``/``samples``: int32 ``[batch]``; ``noise``: float32 ``[batch]``; ``baseline``:
    float32 ``[batch, N, H, W, C]`` from ``[H, W, C]``, ``[B, H, W, C]`` or ``[B, N, H, W, C]``.
    """
    if alias == contract.BASELINE:
        array = np.asarray(value, np.float32)
        if array.ndim == 3:
            array = array[None, None]
        elif array.ndim == 4:
            array = array[:, None]
        if array.ndim != 5 or array.shape[0] not in (1, batch):
            raise ValueError(
                f"baseline must be an image [H, W, C], one per image [{batch}, H, W, C] or N per "
                f"image [{batch}, N, H, W, C]; got shape {list(np.shape(value))}."
            )
        spec = info.inputs.get(alias) if info is not None else None
        expected = spec.shape[2:] if spec is not None and spec.shape is not None else None
        if expected is not None and None not in expected and tuple(array.shape[2:]) != tuple(expected):
            raise ValueError(
                f"baseline images must be {list(expected)} (the model's input, H, W, C); got "
                f"{list(array.shape[2:])}."
            )
        return np.broadcast_to(array, (batch, *array.shape[1:])).copy()
    integer = alias in (contract.STEPS, contract.SAMPLES)
    array = np.asarray(value)
    if integer and array.dtype.kind not in "iu":
        raise TypeError(f"{alias} must be an int or one int per image; got {value!r} (dtype {array.dtype}).")
    if not integer and array.dtype.kind not in "iuf":
        raise TypeError(f"{alias} must be a number or one number per image; got {value!r}.")
    array = array.reshape(-1)
    if array.size not in (1, batch):
        raise ValueError(f"{alias} must hold 1 or {batch} values (one per image); got {array.size}.")
    if integer and (array.min() < np.iinfo(np.int32).min or array.max() > np.iinfo(np.int32).max):
        raise ValueError(f"{alias} values must fit in int32; got {array.tolist()}.")
    return np.broadcast_to(array.astype(np.int32 if integer else np.float32), (batch,)).copy()


def _tensor_spec(key: str, tensor_info: Any) -> TensorSpec:
    shape_proto = tensor_info.tensor_shape
    shape = (
        None
        if shape_proto.unknown_rank
        else tuple(dim.size if dim.size >= 0 else None for dim in shape_proto.dim)
    )
    return TensorSpec(
        name=key,
        dtype=_codec.dtype_name(tensor_info.dtype),
        shape=shape,
        tensor_name=tensor_info.name,
    )
