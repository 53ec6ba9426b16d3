"""The export a batch job explains: which version, which signature, what its ``images`` take.

Also the Beam :class:`~apache_beam.ml.inference.base.ModelHandler` that runs one named
signature. Beam's own ``TFModelHandlerNumpy`` loads with ``tf.keras.models.load_model`` (Keras 3
cannot read a TF Serving SavedModel) and imports ``tensorflow_hub``; a TF Serving export is read
with ``tf.saved_model.load`` and called through ``signatures[name]``, as the server does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from serving_client import contract

from ._timing import NAMESPACE, record_batch, start_batch

__all__ = ["ExportSignature", "SignatureModelHandler", "read_signature", "resolve_version"]

_VERSION = re.compile(r"^\d+$")
#: Input formats of ``images``, as the export report names them.
FLOAT32, UINT8, IMAGE_BYTES = "float32", "uint8", "image_bytes"


@dataclass(frozen=True)
class ExportSignature:
    """What a batch job needs to know about one explanation signature of one version.

    Attributes:
        version_path: the version directory (``.../<base>/<N>``).
        version: ``N``.
        signature: e.g. ``explain`` or ``explain_integrated_gradients``.
        input_format: ``float32``, ``uint8`` or ``image_bytes``.
        image_shape: ``(H, W, C)`` of ``images`` (``None`` entries for image_bytes).
        outputs: the signature's output names.
        max_batch: the largest batch the signature's graph accepts (the export report's
            ``limits``), or ``None`` when the export records none.
        request_defaults: the signature's other inputs (per-request parameters such as
            ``steps`` or ``baseline``) and the export's default for each, from the
            SignatureDef's ``defaults`` (length 1: it broadcasts over the batch).
    """

    version_path: str
    version: int
    signature: str
    input_format: str
    image_shape: tuple[int | None, int | None, int | None]
    outputs: tuple[str, ...]
    max_batch: int | None = None
    request_defaults: dict[str, np.ndarray] = field(default_factory=dict)


def resolve_version(model_base_path: str) -> tuple[str, int]:
    """A version directory as given, or the newest numeric version under a base directory.

    Args:
        model_base_path: ``.../<base>/<N>`` (has ``saved_model.pb``) or ``.../<base>``.

    Returns:
        ``(version_path, version)``.

    Raises:
        FileNotFoundError: if neither it nor any numeric subdirectory holds ``saved_model.pb``.
    """
    import tensorflow as tf

    path = model_base_path.rstrip("/")
    name = path.rsplit("/", 1)[-1]
    if tf.io.gfile.exists(f"{path}/saved_model.pb"):
        if not _VERSION.match(name):
            raise FileNotFoundError(
                f"{model_base_path!r} holds a SavedModel but is not a numeric version directory; "
                "pass the version directory (.../<base>/<N>) or its base directory."
            )
        return path, int(name)
    if not tf.io.gfile.isdir(path):
        raise FileNotFoundError(f"--model_base_path {model_base_path!r} does not exist.")
    versions = sorted(
        int(entry.rstrip("/"))
        for entry in tf.io.gfile.listdir(path)
        if _VERSION.match(entry.rstrip("/")) and tf.io.gfile.exists(f"{path}/{entry.rstrip('/')}/saved_model.pb")
    )
    if not versions:
        raise FileNotFoundError(
            f"--model_base_path {model_base_path!r} has no numeric version directory with a "
            "saved_model.pb; expected .../<base>/<N>/saved_model.pb."
        )
    return f"{path}/{versions[-1]}", versions[-1]


def read_signature(model_base_path: str, signature: str) -> ExportSignature:
    """Read ``signature``'s input format and outputs from ``saved_model.pb`` (no variables).

    Raises:
        FileNotFoundError: see :func:`resolve_version`.
        ValueError: if the signature is not an explanation signature of this export, or its
            ``images`` input is not one of the contract's formats.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    version_path, version = resolve_version(model_base_path)
    if contract.method_of_signature(signature) is None:
        raise ValueError(
            f"--signature {signature!r} is not an explanation signature; expected "
            f"{contract.EXPLAIN!r} or {contract.EXPLAIN}_<method>."
        )
    saved = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(f"{version_path}/saved_model.pb", "rb") as stream:
        saved.ParseFromString(stream.read())
    signatures = saved.meta_graphs[0].signature_def
    if signature not in signatures:
        available = sorted(n for n in signatures if contract.method_of_signature(n) is not None)
        raise ValueError(
            f"Export {version_path!r} has no signature {signature!r}; its explanation "
            f"signatures are {', '.join(available) or 'none'}."
        )
    definition = signatures[signature]
    if contract.IMAGES not in definition.inputs:
        raise ValueError(
            f"Signature {signature!r} of {version_path!r} has no {contract.IMAGES!r} input; "
            f"it takes {', '.join(sorted(definition.inputs))}."
        )
    info = definition.inputs[contract.IMAGES]
    dtype = tf.dtypes.as_dtype(info.dtype)
    dims = tuple(None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim)
    max_batch = _max_batch(version_path, signature)
    # A batch job sends only images and target_class; every other input (the per-request
    # parameters) gets the export's default, which a signature function needs passed.
    request_defaults = {}
    for name in sorted(set(definition.inputs) - {contract.IMAGES, contract.TARGET_CLASS}):
        if name not in definition.defaults:
            raise ValueError(
                f"Signature {signature!r} of {version_path!r} takes input {name!r} with no default "
                f"in its SignatureDef; a batch job sends only {contract.IMAGES!r} and "
                f"{contract.TARGET_CLASS!r}."
            )
        request_defaults[name] = tf.make_ndarray(definition.defaults[name])
    if dtype == tf.string and len(dims) == 1:
        return ExportSignature(
            version_path, version, signature, IMAGE_BYTES, (None, None, None),
            tuple(sorted(definition.outputs)), max_batch, request_defaults,
        )
    if dtype not in (tf.float32, tf.uint8) or len(dims) != 4 or None in dims[1:]:
        raise ValueError(
            f"Signature {signature!r} takes {contract.IMAGES!r} as {dtype.name} {list(dims)}; "
            "expected float32 or uint8 [batch, H, W, C] with known H, W, C, or string [batch]."
        )
    return ExportSignature(
        version_path, version, signature, dtype.name, dims[1:],
        tuple(sorted(definition.outputs)), max_batch, request_defaults,
    )


def _max_batch(version_path: str, signature: str) -> int | None:
    """The signature's batch limit from the export report; None without a report or limits."""
    import json

    import tensorflow as tf

    from serving_client.report import ReportError, parse_report

    path = f"{version_path}/{contract.REPORT_ASSET}"
    if not tf.io.gfile.exists(path):
        return None  # a SavedModel not written by saliency-export: no recorded limit
    with tf.io.gfile.GFile(path, "r") as stream:
        text = stream.read()
    try:
        report = parse_report(json.loads(text))
    except (ValueError, ReportError) as error:
        raise ValueError(f"{path} is not a readable export report: {error}") from error
    if report.limits is None or signature not in report.limits.signatures:
        return None
    return int(report.limits.signatures[signature].max_batch)


@dataclass(frozen=True)
class ExplainInput:
    """One decoded image ready for the signature: ``pixels`` and the class to explain."""

    pixels: Any  # float32/uint8 [H, W, C], or the encoded bytes for image_bytes exports
    target_class: int


class SignatureModelHandler(ModelHandler[ExplainInput, PredictionResult, Any]):
    """Run one named signature of a TF Serving SavedModel on batches of :class:`ExplainInput`.

    Each :class:`PredictionResult`'s ``inference`` is a dict of numpy arrays, one row of every
    signature output.

    Every call has ``max_batch_size`` rows: a short batch is padded with copies of its first
    image, whose results are dropped. TensorFlow's CPU kernels round float32 differently for
    different batch sizes (measured on the demo CNN: batch 1 vs 64 move a logit of 19 by
    1.5e-5), so without padding a row's bits would depend on how Beam happened to batch it,
    and a rerun would not write the same table.
    """

    def __init__(
        self,
        version_path: str,
        signature: str,
        *,
        min_batch_size: int | None = None,
        max_batch_size: int | None = None,
        intra_op_threads: int | None = None,
        faithfulness_steps: int = 0,
        blur_sigma: float = 3.0,
        request_defaults: dict[str, np.ndarray] | None = None,
    ) -> None:
        """
        Args:
            version_path: the version directory to load.
            signature: the signature to call, e.g. ``explain``.
            min_batch_size, max_batch_size: passed to Beam's ``BatchElements``.
            intra_op_threads: TensorFlow's intra-op threads per worker process (``None``:
                TensorFlow's default, all cores). With several worker processes on one
                machine, cores / processes avoids oversubscription.
            faithfulness_steps: deletion/insertion steps per image (0: no scores); float32
                exports only, see :func:`_faithfulness`.
            blur_sigma: σ of the blurred image insertion starts from.
            request_defaults: the signature's other inputs and their defaults
                (:attr:`ExportSignature.request_defaults`), sent with every call.
        """
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size)
        self._version_path = version_path
        self._signature = signature
        self._intra_op_threads = intra_op_threads
        self._pad_to = max_batch_size
        self._steps = faithfulness_steps
        self._blur_sigma = blur_sigma
        self._request_defaults = dict(request_defaults or {})

    def load_model(self) -> Any:
        """Load the SavedModel once per worker process; return the signature's function."""
        import tensorflow as tf

        if self._intra_op_threads is not None:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(self._intra_op_threads)
                tf.config.threading.set_inter_op_parallelism_threads(self._intra_op_threads)
            except RuntimeError:
                pass  # this process's runtime is already initialised: keep its setting
        loaded = tf.saved_model.load(self._version_path)
        function = loaded.signatures[self._signature]
        function._loaded_module = loaded  # keep the variables alive with the function
        function._predict = loaded.signatures[contract.SERVING_DEFAULT]
        return function

    def run_inference(
        self,
        batch: Sequence[ExplainInput],
        model: Any,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        """Call the signature once on the whole batch and split its outputs per example."""
        import tensorflow as tf

        started = start_batch()
        padded = list(batch)
        if self._pad_to is not None and len(padded) < self._pad_to:
            padded += [batch[0]] * (self._pad_to - len(padded))
        images = _stack(padded)
        targets = np.asarray([example.target_class for example in padded], dtype=np.int32)
        outputs = model(
            **{name: tf.constant(value) for name, value in self._request_defaults.items()},
            **{contract.IMAGES: tf.constant(images), contract.TARGET_CLASS: tf.constant(targets)},
        )
        arrays = {name: tensor.numpy() for name, tensor in outputs.items()}
        if self._steps and not isinstance(batch[0].pixels, bytes) and images.dtype == np.float32:
            arrays.update(_faithfulness(model._predict, images[: len(batch)], arrays, self._steps, self._blur_sigma))
        results = [
            PredictionResult(example, {name: values[row] for name, values in arrays.items()})
            for row, example in enumerate(batch)
        ]
        record_batch(started)
        return results

    def get_num_bytes(self, batch: Sequence[ExplainInput]) -> int:
        """Bytes of pixels in the batch (Beam's throughput metrics)."""
        return sum(len(e.pixels) if isinstance(e.pixels, bytes) else e.pixels.nbytes for e in batch)

    def get_metrics_namespace(self) -> str:
        """The namespace of the RunInference metrics."""
        return NAMESPACE


#: Output names of the faithfulness scores (not signature outputs; computed beside them).
DELETION_AUC, INSERTION_AUC = "deletion_auc", "insertion_auc"


def _faithfulness(
    predict_signature: Any, images: np.ndarray, arrays: dict[str, np.ndarray], steps: int, blur_sigma: float
) -> dict[str, np.ndarray]:
    """Deletion and insertion AUC of each image's map for its explained class, with the
    evaluation module's curves (``exporter.evaluation``), through ``serving_default``.

    One ``predict`` call per image and curve (its ``steps + 1`` perturbations), so the scores'
    bits do not depend on how Beam batched the images either.
    """
    import tensorflow as tf

    from exporter.evaluation import auc, perturbation_curves, saliency_order

    def predict(perturbed: np.ndarray) -> np.ndarray:
        return predict_signature(**{contract.IMAGES: tf.constant(perturbed)})[contract.PROBABILITIES].numpy()

    count = len(images)
    target = arrays[contract.TARGET_CLASS][:count]
    order = saliency_order(arrays[contract.SALIENCY][:count])
    deletion, insertion = perturbation_curves(
        predict, images, target, order, steps=steps, blur_sigma=blur_sigma, chunk=steps + 1
    )
    return {DELETION_AUC: auc(deletion).astype(np.float32), INSERTION_AUC: auc(insertion).astype(np.float32)}


def _stack(batch: Sequence[ExplainInput]) -> np.ndarray:
    first = batch[0].pixels
    if isinstance(first, bytes):
        return np.asarray([example.pixels for example in batch], dtype=object)
    return np.stack([example.pixels for example in batch])
