"""Frozen result types returned by :class:`serving_client.ServingClient`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from . import contract


def methods_in_order(signatures: Iterable[str]) -> dict[str, str]:
    """An export's explanation methods (method → signature) by the contract's naming rule.

    ``vanilla`` (``explain``) first, then the others by signature name, so the order depends
    only on which signatures exist, never on the order a server lists them in.
    """
    ordered = sorted(signatures, key=lambda name: (name != contract.EXPLAIN, name))
    return contract.methods_of_signatures(ordered)


@dataclass(frozen=True)
class Prediction:
    """The ``serving_default`` outputs for a batch.

    Attributes:
        logits: float32 ``[batch, K]``.
        probabilities: float32 ``[batch, K]``.
        predicted_class: int32 ``[batch]``.
        model_name: the model name the server echoed.
        model_version: the version that answered (``None`` if the server did not say).
        signature_name: the signature that answered.
    """

    logits: np.ndarray
    probabilities: np.ndarray
    predicted_class: np.ndarray
    model_name: str
    model_version: int | None
    signature_name: str


@dataclass(frozen=True)
class Explanation:
    """The outputs of an explanation signature (``explain``, ``explain_smoothgrad``, ...).

    Attributes:
        logits: float32 ``[batch, K]``.
        probabilities: float32 ``[batch, K]``.
        predicted_class: int32 ``[batch]``.
        target_class: int32 ``[batch]``, the class each map explains (``-1`` resolved), or
            ``[batch, K]`` when several classes were asked for (``classes=`` / ``top_k=``).
        saliency: float32 ``[batch, H, W]`` in ``[0, 1]``; ``[batch, K, H, W]`` with a
            class axis (``saliency[i, k]`` explains ``target_class[i, k]``). Every output
            per explained class gains that axis; ``logits``, ``probabilities`` and
            ``predicted_class`` describe the image and do not.
        model_name: the model name the server echoed.
        model_version: the version that answered (``None`` if the server did not say).
        signature_name: the signature that answered.
        extras: every output beyond the five above, by key (``attributions`` and
            ``approximation_error`` of ``explain_integrated_gradients`` included).
        attributions: float32 ``[batch, H, W, C]`` (``[batch, K, H, W, C]``), the signed Integrated Gradients
            attributions, or ``None`` when the signature does not return them (same array as
            ``extras["attributions"]``). Reduce with :func:`serving_client.render.signed_map`.
        approximation_error: float32 ``[batch]`` (``[batch, K]``), IG's relative completeness error, or
            ``None`` (same array as ``extras["approximation_error"]``).
    """

    logits: np.ndarray
    probabilities: np.ndarray
    predicted_class: np.ndarray
    target_class: np.ndarray
    saliency: np.ndarray
    model_name: str
    model_version: int | None
    signature_name: str
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)
    attributions: np.ndarray | None = None
    approximation_error: np.ndarray | None = None

    @property
    def method(self) -> str | None:
        """The method the answering signature serves (``"vanilla"``, ...), or ``None``.

        By the contract's naming rule: ``explain`` is ``vanilla``, ``explain_<name>`` is
        ``<name>``; any other signature serves no method.
        """
        return contract.method_of_signature(self.signature_name)

    @property
    def classes_per_image(self) -> int | None:
        """K when the explanation has a class axis (``target_class`` ``[batch, K]``), else None."""
        return int(self.target_class.shape[1]) if self.target_class.ndim == 2 else None

    def for_class(self, k: int) -> Explanation:
        """Column ``k`` of the class axis as a one-class explanation (``saliency`` ``[batch, H, W]``).

        Every output per explained class (``target_class``, ``saliency``, ``attributions``,
        ``approximation_error`` and the extras) is cut at ``[:, k]``; ``logits``,
        ``probabilities`` and ``predicted_class`` are kept.

        Raises:
            ValueError: The explanation has no class axis, or ``k`` is not in ``0..K-1``.
        """
        count = self.classes_per_image
        if count is None:
            raise ValueError(
                f"This explanation has one class per image (target_class {list(self.target_class.shape)}); "
                "for_class needs one asked with classes= or top_k= ([batch, K])."
            )
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < count:
            raise ValueError(f"k must be a class column 0..{count - 1}; got {k!r}.")

        def cut(value: np.ndarray | None) -> np.ndarray | None:
            return None if value is None else np.asarray(value)[:, k]

        extras = {
            key: value if key in contract.PREDICT_OUTPUTS else np.asarray(value)[:, k]
            for key, value in self.extras.items()
        }
        return replace(
            self,
            target_class=self.target_class[:, k],
            saliency=self.saliency[:, k],
            extras=extras,
            attributions=cut(self.attributions),
            approximation_error=cut(self.approximation_error),
        )


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature, as the server describes it.

    Attributes:
        name: the key clients use (e.g. ``"images"``).
        dtype: numpy-style name (``"float32"``, ``"int32"``, ``"string"``) or the TF enum name.
        shape: one entry per dimension, ``None`` where unknown; ``None`` if the rank is unknown.
        tensor_name: the graph tensor behind the key.
    """

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None
    tensor_name: str


@dataclass(frozen=True)
class SignatureInfo:
    """One SignatureDef: its method and its inputs and outputs by key."""

    name: str
    method_name: str
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]
    #: Input key → the default the SignatureDef records (fed when a request omits it).
    defaults: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def request_inputs(self) -> tuple[str, ...]:
        """The optional per-request parameters this signature takes (``steps``, ``samples``,
        ``noise``, ``baseline``; see :data:`serving_client.contract.REQUEST_INPUTS`)."""
        return tuple(alias for alias in contract.REQUEST_INPUTS if alias in self.inputs)


@dataclass(frozen=True)
class ModelMetadata:
    """What ``GetModelMetadata`` says about a model version."""

    model_name: str
    model_version: int | None
    signatures: Mapping[str, SignatureInfo]

    @property
    def methods(self) -> tuple[str, ...]:
        """The explanation methods whose signatures this version has (``vanilla`` first).

        A method exists exactly when its signature does (``explain`` / ``explain_<method>``).
        """
        return tuple(methods_in_order(self.signatures))


@dataclass(frozen=True)
class ModelVersionStatus:
    """One version's state from ``GetModelStatus``.

    Attributes:
        version: the model version number.
        state: ``"START"``, ``"LOADING"``, ``"AVAILABLE"``, ``"UNLOADING"``, ``"END"`` or
            ``"UNKNOWN"``.
        error_code: ``"OK"`` or the TF error code name of a failed load.
        error_message: the load error, empty when ``error_code`` is ``"OK"``.
    """

    version: int
    state: str
    error_code: str
    error_message: str
