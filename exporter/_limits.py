"""Per-request cost bounds: each signature's maximum batch, measured at export, checked in the graph.

Production TF Serving runs the exported graph with none of our server's checks, so the
bound lives in the graph: every signature refuses a batch above its maximum with
INVALID_ARGUMENT before it does any work.

The default maximum comes from a memory budget (`[limits] memory_budget_mib`) and the
memory one image costs the signature on this model. That cost is computed, not sampled:
the signature is traced at batch 1 and batch 2 and the static sizes of every tensor its
graph produces are summed (a loop body once, since its iterations run one after the
other; a conditional's larger branch). The difference is the cost of one more image, the
rest is the request's fixed part. A sum over all tensors counts each as if it were never
freed, so it is an upper bound of the peak: deterministic, cheap (two traces, nothing
run) and on the safe side. The figures go into the export report.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from exporter._config import LimitsConfig

logger = logging.getLogger("exporter")

__all__ = [
    "MEASUREMENT",
    "SignatureCost",
    "SignatureLimits",
    "batch_refusal",
    "check_batch",
    "default_max_image_bytes",
    "default_max_pixels",
    "graph_bytes",
]

MiB = 1 << 20

#: How the per-image cost is obtained (recorded in the report).
MEASUREMENT = (
    "sum of the static sizes of every tensor the signature's graph produces (loop bodies "
    "once, the larger branch of a conditional), traced at batch 1 and 2: bytes_per_image = "
    "S(2) - S(1), fixed_bytes = S(1) - bytes_per_image; an upper bound of the peak, since "
    "no tensor is counted as freed"
)


def default_max_pixels(input_shape: tuple[int, int, int]) -> int:
    """Default of `[input] max_pixels`: 64 × the model's H×W, clamped to 1024² … 4096².

    A decoded image costs about 2 × C bytes per pixel before it is resized (uint8 pixels,
    then float32 of the resized copy only), so at the 1024² floor an RGB image takes
    ~6 MiB, and at the 4096² ceiling ~100 MiB: headroom for photographs larger than the
    model's input without letting a header decide the server's memory.
    """
    height, width, _ = input_shape
    return int(min(max(64 * height * width, 1024 * 1024), 4096 * 4096))


def default_max_image_bytes(max_pixels: int) -> int:
    """Default of `[input] max_image_bytes`: 4 bytes per allowed pixel plus 64 KiB.

    An uncompressed 32-bit BMP of the largest accepted size fits; compressed formats are
    far smaller, so no legitimate image within `max_pixels` is refused for its bytes.
    """
    return 4 * max_pixels + 64 * 1024


def _tensor_bytes(tensor: tf.Tensor) -> int:
    if tensor.dtype in (tf.resource, tf.variant, tf.string) or not tensor.shape.is_fully_defined():
        return 0
    return int(tensor.shape.num_elements()) * tensor.dtype.size


def graph_bytes(graph: tf.Graph, functions: dict[str, Any] | None = None) -> int:
    """Σ static bytes of every op output in `graph` and the functions its ops call.

    Args:
        graph: A traced graph (e.g. a `ConcreteFunction.graph`).
        functions: Function name → function with a `.graph` (the outer graph's library;
            nested graphs look names up here as well as in their own).

    Returns:
        The bytes; tensors of unknown shape, strings and handles count 0.
    """
    library = dict(functions or {})
    library.update(getattr(graph, "_functions", {}))
    total = 0
    for op in graph.get_operations():
        total += sum(_tensor_bytes(out) for out in op.outputs)
        called: list[list[str]] = []
        if op.type in ("While", "StatelessWhile"):
            called.append([op.get_attr("body").name, op.get_attr("cond").name])
        elif op.type in ("If", "StatelessIf"):
            called.append([op.get_attr("then_branch").name])
            called.append([op.get_attr("else_branch").name])
        elif op.type in ("Case", "StatelessCase"):
            called.extend([[b.name] for b in op.get_attr("branches")])
        elif op.type in ("PartitionedCall", "StatefulPartitionedCall"):
            called.append([op.get_attr("f").name])
        # Alternatives (branches) cost their maximum; parts of one op (body + cond) add up.
        options = [
            sum(graph_bytes(library[name].graph, library) for name in names if name in library)
            for names in called
        ]
        if op.type in ("While", "StatelessWhile"):
            total += sum(options)
        elif options:
            total += max(options)
    return total


@dataclasses.dataclass(frozen=True)
class SignatureCost:
    """The measured memory cost of one signature (see the module docstring).

    Attributes:
        bytes_per_image: Added by each image of the batch.
        fixed_bytes: Paid once per request, whatever its batch.
    """

    bytes_per_image: int
    fixed_bytes: int


def measure_cost(python_function: Callable[..., Any], specs_at: Callable[[int], list[tf.TensorSpec]]) -> SignatureCost:
    """Traces `python_function` at batch 1 and 2 (nothing is run) and sums its tensors.

    Args:
        python_function: The signature's body.
        specs_at: batch size → the input specs with that static batch.

    Returns:
        The cost; a per-image cost of at least one byte.
    """
    # Called eagerly or while the signature itself is traced: either way the traces are
    # separate graphs that are never run. (Not under tf.init_scope: it stops gradient tapes.)
    sizes = []
    for batch in (1, 2):
        concrete = tf.function(python_function, autograph=False).get_concrete_function(*specs_at(batch))
        sizes.append(graph_bytes(concrete.graph))
    per_image = max(sizes[1] - sizes[0], 1)
    return SignatureCost(bytes_per_image=per_image, fixed_bytes=max(sizes[0] - per_image, 0))


def batch_refusal(signature: str, maximum: int) -> str:
    """The refusal's wording after the batch size, shared by the graph and the bundled server."""
    # No apostrophe: TF's Assert prints string data C-escaped (\').
    return f" exceeds the maximum batch of {signature}: {maximum} (config [limits] {signature})"


def check_batch(images: tf.Tensor, signature: str, maximum: int, classes: tf.Tensor | None = None) -> tf.Tensor:
    """Graph ops: `images` once the rows the graph evaluates are known to be at most `maximum`.

    Args:
        images: The request's images (the batch B is dimension 0).
        signature: Its name, for the message.
        maximum: The signature's maximum batch.
        classes: int32 scalar K, the classes explained per image (a `[B, K]` `target_class`):
            the graph evaluates B·K rows, so B·K is what is bounded. None: K = 1.

    Raises (at run time, InvalidArgumentError → INVALID_ARGUMENT):
        `batch of 4096 exceeds the maximum batch of explain_integrated_gradients: 256
        (config [limits] explain_integrated_gradients)`, or with classes `batch of 64 images
        × 8 classes = 512 rows exceeds …`.
    """
    batch = tf.shape(images, out_type=tf.int64)[0]
    message = tf.strings.join(["batch of ", tf.strings.as_string(batch), batch_refusal(signature, maximum)])
    rows = batch
    if classes is not None:
        k = tf.cast(classes, tf.int64)
        rows = batch * k
        several = tf.strings.join(
            ["batch of ", tf.strings.as_string(batch), " images × ", tf.strings.as_string(k), " classes = ",
             tf.strings.as_string(rows), " rows", batch_refusal(signature, maximum)]
        )
        # One class per image keeps the one-class wording (the bundled server's too).
        message = tf.where(k > 1, several, message)
    check = tf.debugging.Assert(rows <= maximum, [message])
    with tf.control_dependencies([check]):
        return tf.identity(images)


class SignatureLimits:
    """Each signature's maximum batch: configured, or measured on first use and cached.

    Args:
        config: `[limits]`.
        specs_at: batch size → a signature's input specs at that static batch (images, and
            target_class for explanations).
    """

    def __init__(self, config: LimitsConfig, specs_at: Callable[[str, int], list[tf.TensorSpec]]) -> None:
        self.config = config
        self._specs_at = specs_at
        self._functions: dict[str, Callable[..., Any]] = {}
        self._costs: dict[str, SignatureCost] = {}
        self._measuring = False
        self._warned: set[str] = set()

    def register(self, name: str, python_function: Callable[..., Any]) -> None:
        """Makes `name`'s body available for measuring."""
        self._functions[name] = python_function

    def maximum(self, name: str) -> int | None:
        """The maximum batch of `name` (None while its cost is being measured: no check then).

        A signature whose single image already exceeds the budget gets a maximum of 1 (one
        image is what every request needs); the report and the log say so. A maximum is
        never below the batch the exporter itself runs the signature at (`LimitsConfig.floor`).
        """
        if self._measuring:
            return None
        return self._limit(name)

    def _limit(self, name: str) -> int:
        explicit = self.config.explicit(name)
        if explicit is not None:
            return explicit
        cost = self.cost(name)
        fits = (self.config.memory_budget_mib * MiB - cost.fixed_bytes) // cost.bytes_per_image
        if fits < max(1, self.config.floor_of(name)) and name not in self._warned:
            self._warned.add(name)
            logger.warning(
                "limits.memory_budget_mib = %d covers %d image(s) of %s (one may take up to %d MiB); its "
                "maximum batch is %d, the batch the export is verified at; raise the budget or lower "
                "methods.internal_batch",
                self.config.memory_budget_mib, max(fits, 0), name,
                math.ceil((cost.fixed_bytes + cost.bytes_per_image) / MiB), max(1, self.config.floor_of(name)),
            )
        return int(max(1, self.config.floor_of(name), min(fits, self.config.max_images)))

    def maxima(self) -> dict[str, int]:
        """Signature name → maximum batch, for every registered signature."""
        return {name: self._limit(name) for name in self._functions}

    def cost(self, name: str) -> SignatureCost:
        """The measured cost of `name` (traced on first call)."""
        if name not in self._costs:
            self._measuring = True
            try:
                self._costs[name] = measure_cost(self._functions[name], lambda b: self._specs_at(name, b))
            finally:
                self._measuring = False
        return self._costs[name]

    def report(self) -> dict[str, Any]:
        """The `limits` section of the export report: every signature's maximum and cost."""
        signatures = {}
        for name in self._functions:
            entry: dict[str, Any] = {"max_batch": self.maximum(name), "exporter_batch": self.config.floor_of(name)}
            if self.config.explicit(name) is not None:
                entry["source"] = f"config [limits] {name}"
            else:
                cost = self.cost(name)
                entry["source"] = "measured"
                entry["bytes_per_image"] = cost.bytes_per_image
                entry["fixed_bytes"] = cost.fixed_bytes
                entry["over_budget"] = (
                    cost.fixed_bytes + entry["max_batch"] * cost.bytes_per_image > self.config.memory_budget_mib * MiB
                )
            signatures[name] = entry
        return {
            "memory_budget_mib": self.config.memory_budget_mib,
            "max_images": self.config.max_images,
            "measurement": MEASUREMENT,
            "signatures": signatures,
        }
