"""Predict against one loaded servable, step for step as TF Serving's ``predict_util.cc``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
from tensorflow.core.framework import tensor_pb2

from serving_client._codec import encode
from serving_client.contract import SERVING_DEFAULT

from ._batching import BatchScheduler
from ._errors import ServingError, code_from_number, failed_precondition, invalid_argument
from ._servable import LoadedServable
from ._tensor_codec import (
    check_against_tensor_info,
    dtype_name,
    ndarray_to_tensor_proto,
    numpy_dtype,
    tensor_proto_to_ndarray,
)

DEFAULT_SIGNATURE = SERVING_DEFAULT

# A request input: a TensorProto (gRPC) or an array already decoded by the REST codec.
# SignatureDefs and TensorProtos are TensorFlow's messages (no stubs): Any to the checker.
InputValue: TypeAlias = "tensor_pb2.TensorProto | np.ndarray"


def resolve_signature(servable: LoadedServable, signature_name: str) -> tuple[str, Any]:
    """The SignatureDef for ``signature_name`` ('' means ``serving_default``).

    Raises:
        ServingError: FAILED_PRECONDITION ``Serving signature key "x" not found.``
    """
    key = signature_name or DEFAULT_SIGNATURE
    signature = servable.signature_defs.get(key)
    if signature is None:
        raise failed_precondition(f'Serving signature key "{key}" not found.')
    return key, signature


def run_predict(
    servable: LoadedServable,
    signature_name: str,
    inputs: Mapping[str, InputValue],
    output_filter: Sequence[str] = (),
    batcher: BatchScheduler | None = None,
) -> tuple[str, dict[str, np.ndarray]]:
    """Validate the inputs against the signature, run the session, return outputs by alias.

    Args:
        servable: the loaded version (the caller holds a reference).
        signature_name: the requested signature ('' means ``serving_default``).
        inputs: request inputs by alias (TensorProto or decoded array).
        output_filter: aliases to fetch; empty means every output.
        batcher: run inside a server-side batch (``--enable_batching``) instead of alone.

    Returns:
        The resolved signature key and the outputs by alias.

    Raises:
        ServingError: with TF Serving's code and message for every refusal; graph errors
            (CheckNumerics, Assert) keep their TensorFlow code (INVALID_ARGUMENT).
    """
    key, signature = resolve_signature(servable, signature_name)
    _verify_request_inputs_size(signature, inputs)
    feeds = _input_values(signature, inputs)
    aliases, fetch_names = _outputs_to_fetch(signature, output_filter)
    if batcher is None:
        values = _session_run(servable, fetch_names, feeds)
    else:
        values = batcher.run(
            servable, fetch_names, feeds, lambda fetches, feed: _session_run(servable, fetches, feed)
        )
    return key, dict(zip(aliases, values, strict=True))


def _verify_request_inputs_size(signature: Any, inputs: Mapping[str, InputValue]) -> None:
    # VerifyRequestInputsSize: with defaults present, fewer inputs are allowed here and
    # GetInputValues decides.
    n_req, n_sig = len(inputs), len(signature.inputs)
    if n_req > n_sig or (n_req < n_sig and not signature.defaults):
        req, sig = set(inputs), set(signature.inputs)
        raise invalid_argument(
            f"input size does not match signature: {n_req}!={n_sig} "
            f"len({{{','.join(sorted(req))}}}) != len({{{','.join(sorted(sig))}}}). "
            f"Sent extra: {{{','.join(sorted(req - sig))}}}. "
            f"Missing but required: {{{','.join(sorted(sig - req))}}}."
        )


def _input_values(signature: Any, inputs: Mapping[str, InputValue]) -> dict[str, np.ndarray]:
    # tensorflow/cc/saved_model/util.cc GetInputValues, plus our dtype/shape checks so a bad
    # tensor is refused with a clear message instead of failing deep inside the graph.
    feeds: dict[str, np.ndarray] = {}
    seen: set[str] = set()
    for arg_index, alias in enumerate(sorted(signature.inputs)):
        info = signature.inputs[alias]
        value = inputs.get(alias)
        if value is None:
            if alias not in signature.defaults:
                raise invalid_argument(
                    f"Signature input alias: {alias}(feed name: {info.name}) not found in "
                    f"request and no default value provided. Inputs expected to be in the "
                    f"request {{{','.join(sorted(inputs))}}}, or default input alias set: "
                    f"{','.join(sorted(signature.defaults))}"
                )
            value = signature.defaults[alias]
        else:
            seen.add(alias)
        if isinstance(value, np.ndarray):
            array = value
            expected = numpy_dtype(info.dtype)
            dtype = info.dtype if expected is not None and array.dtype == expected else -1
            if dtype == -1:
                raise invalid_argument(
                    f"input \"{alias}\" expects dtype {dtype_name(info.dtype)} (per the "
                    f"signature) but the request sent numpy {array.dtype}"
                )
        else:
            array = tensor_proto_to_ndarray(value, alias)
            dtype = value.dtype
        check_against_tensor_info(array, dtype, info, alias, arg_index)
        feeds[info.name] = array
    if inputs and len(seen) != len(inputs):
        raise invalid_argument(
            f"Inputs contains invalid name. Used request inputs: {','.join(sorted(seen))}, "
            f"request input: {','.join(sorted(inputs))}"
        )
    return feeds


def _outputs_to_fetch(signature: Any, output_filter: Sequence[str]) -> tuple[list[str], list[str]]:
    aliases: list[str] = []
    names: list[str] = []
    for alias in output_filter:
        info = signature.outputs.get(alias)
        if info is None:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be "
                f"in the set {{{','.join(sorted(signature.outputs))}}}."
            )
        if alias in aliases:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        aliases.append(alias)
        names.append(info.name)
    if not aliases:
        for alias in sorted(signature.outputs):
            aliases.append(alias)
            names.append(signature.outputs[alias].name)
    return aliases, names


def _session_run(servable: LoadedServable, fetches: list[str], feeds: dict) -> list:
    import tensorflow as tf

    try:
        return servable.run(fetches, feeds)
    except tf.errors.OpError as exc:
        raise ServingError(code_from_number(exc.error_code), _op_error_message(exc)) from exc
    except (ValueError, TypeError) as exc:
        # Python-side feed checks; our own validation should have caught these first.
        raise invalid_argument(str(exc)) from exc


def _op_error_message(exc: Any) -> str:  # a tf.errors.OpError
    # The Python session prefixes "Graph execution error:"; TF Serving returns the C++ status
    # message, which starts at the op's own text.
    message = exc.message or str(exc)
    prefix = "Graph execution error:"
    if message.startswith(prefix):
        message = message[len(prefix) :].strip()
    return message


def outputs_to_protos(outputs: Mapping[str, np.ndarray]) -> dict[str, tensor_pb2.TensorProto]:
    """Encode every output with ``AsProtoField`` semantics (``*_val`` fields)."""
    return {alias: ndarray_to_tensor_proto(value) for alias, value in outputs.items()}


def fill_output_protos(target: Any, outputs: Mapping[str, np.ndarray]) -> None:
    """Encode every output as :func:`outputs_to_protos` does, straight into ``target``.

    Args:
        target: a response's ``outputs`` map (alias → TensorProto); each entry is written in
            place, which saves copying a built tensor into it (0.2 ms at batch 32).
        outputs: the session's outputs by alias.

    Raises:
        ServingError: INVALID_ARGUMENT for an output without a TensorFlow dtype, worded as
            ``ndarray_to_tensor_proto`` words it.
    """
    for alias, value in outputs.items():
        try:
            encode(value, fields=True, into=target[alias])
        except TypeError:
            del target[alias]
            target[alias].CopyFrom(ndarray_to_tensor_proto(value))  # raises its ServingError
