"""Explanation methods: one module per method over one base (`exporter.methods.base.Method`).

The registry below is the only list of methods. Everything else derives from it: the
signatures an export has (`exporter._signatures`), their verification against eager
references (`exporter._verify`), the config (`[methods] enabled` and one `[methods.<name>]`
table per method with parameters), the CLI's `--methods`, the contract check, the limits
and what the evaluation can recompute.

Adding a method is one new module:

    # exporter/methods/gradient_squared.py
    import dataclasses

    from exporter._attribution import vanilla_gradient
    from exporter._config_loader import check_int
    from exporter.methods.base import Graph, Method, clean_reference, numpy_saliency


    @dataclasses.dataclass(frozen=True)
    class GradientSquaredParams:              # the table [methods.gradient_squared]
        power: int = 2

        def __post_init__(self) -> None:      # validation lives here, and only here
            check_int("methods.gradient_squared.power", self.power, minimum=1)


    class GradientSquared(Method):
        name = "gradient_squared"             # signature: explain_gradient_squared
        params_type = GradientSquaredParams   # omit for a method without parameters

        def explain(self, graph: Graph, images, target_class, params):
            # In-graph (TF ops only): images float32 [B,H,W,C], target_class int32 [B] or [1].
            gradient, logits, target = vanilla_gradient(
                graph.head.logits_fn, images, graph.target_fn(target_class)
            )
            return graph.explanation(logits, target, graph.saliency(gradient**params.power))

        def reference(self, copy, images, target_class, reduction, params):
            # Eager and independent of `explain`: verification compares the two.
            out = clean_reference(copy, images, target_class)
            gradient = copy.gradient(images, out["target_class"])
            out["saliency"] = numpy_saliency(gradient**params.power, reduction)
            return out

then list it in `_BUILT_IN` below (or, from outside the package, `register(GradientSquared())`).
Optional hooks: `outputs` (extra output aliases), `checks`/`figures` (what verification
compares and records beyond `saliency`), `prepare` (look into the model once, e.g. Grad-CAM's
layer), `evaluated = False` when the evaluation cannot recompute it for a randomized model,
`request_inputs` (optional per-request parameters such as IG's `steps`: a tuple of
`base.RequestInput`, from which the signature's inputs, their SignatureDef defaults, the
in-graph bounds, the warmup requests and the limits' traces all derive; `explain` and
`reference` then take a `request` keyword, alias → per-image values).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from exporter._errors import ConfigError
from exporter.methods.base import Check, Graph, Method, NoParams, RequestInput, clean_reference
from exporter.methods.blur_integrated_gradients import (
    BlurIntegratedGradients,
    BlurIntegratedGradientsParams,
)
from exporter.methods.gradcam import GradCam, GradCamParams
from exporter.methods.gradient_x_input import GradientXInput
from exporter.methods.guided_integrated_gradients import (
    GuidedIntegratedGradients,
    GuidedIntegratedGradientsParams,
)
from exporter.methods.integrated_gradients import IntegratedGradients, IntegratedGradientsParams
from exporter.methods.smoothgrad import SmoothGrad, SmoothGradParams
from exporter.methods.vanilla import Vanilla
from exporter.methods.xrai import Xrai

__all__ = [
    "BlurIntegratedGradientsParams",
    "Check",
    "GradCam",
    "GradCamParams",
    "Graph",
    "GuidedIntegratedGradientsParams",
    "IntegratedGradientsParams",
    "Method",
    "NoParams",
    "RequestInput",
    "SmoothGradParams",
    "clean_reference",
    "get",
    "names",
    "params_types",
    "register",
    "registered",
    "registry",
    "unregister",
]

# The fixed order: signatures, reports, the CLI and the client list methods in it.
_BUILT_IN: tuple[Method, ...] = (
    Vanilla(),
    SmoothGrad(),
    IntegratedGradients(),
    GradientXInput(),
    GradCam(),
    BlurIntegratedGradients(),
    GuidedIntegratedGradients(),
    Xrai(),
)
_REGISTRY: dict[str, Method] = {method.name: method for method in _BUILT_IN}


def registry() -> tuple[Method, ...]:
    """Every registered method, built-ins first in their fixed order, then in registration order."""
    return tuple(_REGISTRY.values())


def names() -> tuple[str, ...]:
    """The registered methods' names, in registry order."""
    return tuple(_REGISTRY)


def get(name: str) -> Method:
    """The method called `name`.

    Raises:
        ConfigError: No method has that name (the message lists the registered ones).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"Unknown explanation method {name!r}; expected some of {', '.join(_REGISTRY)}."
        ) from None


def params_types() -> Mapping[str, type]:
    """Method name → its parameters dataclass, for the methods that have parameters."""
    return {m.name: m.params_type for m in _REGISTRY.values() if m.params_type is not NoParams}


def register(method: Method) -> Method:
    """Adds `method` to the registry (after the others) and returns it.

    Raises:
        ValueError: It is not a `Method`, its name is not a lower-case identifier, or the
            name is taken.
    """
    from serving_client.contract import signature_name

    if not isinstance(method, Method):
        raise ValueError(f"register() takes a Method instance; received {method!r}.")
    signature_name(method.name)  # raises on a name that cannot be a signature suffix
    if method.name in _REGISTRY:
        raise ValueError(f"Explanation method name {method.name!r} is taken by {_REGISTRY[method.name]!r}.")
    _REGISTRY[method.name] = method
    return method


def unregister(name: str) -> None:
    """Removes a method added with `register` (the built-ins stay).

    Raises:
        ValueError: `name` is a built-in method or not registered.
    """
    if any(m.name == name for m in _BUILT_IN):
        raise ValueError(f"{name!r} is a built-in explanation method; it cannot be unregistered.")
    if name not in _REGISTRY:
        raise ValueError(f"No explanation method {name!r} is registered; registered: {', '.join(_REGISTRY)}.")
    del _REGISTRY[name]


@contextmanager
def registered(method: Method) -> Iterator[Method]:
    """`register(method)` for the duration of a `with` block (tests, experiments)."""
    register(method)
    try:
        yield method
    finally:
        unregister(method.name)

