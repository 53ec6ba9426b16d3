"""The viewer's web application: a page, its static files and a small JSON API over gRPC.

The browser only ever talks to this app; the app talks gRPC to the model server with
:class:`serving_client.ServingClient`, so neither CORS nor TF Serving's REST API is involved.
Maps are drawn here with :mod:`serving_client.render`, so the page shows exactly what the
client's ``render`` gives for the same options.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import _inputs, render
from .._client import ServingClient
from .._exceptions import ServingError, UnavailableError
from .._results import Explanation, ModelMetadata
from ..contract import IMAGES, SERVING_DEFAULT, signature_name
from ._images import ImageError, png_bytes, prepare, shown_at

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "ViewerSettings", "create_app"]

#: Uploads above this size are refused (``--max-upload-mb``).
DEFAULT_MAX_UPLOAD_BYTES = 8 * 1024 * 1024
#: How many classes the page lists, most probable first.
TOP_K = 5

_STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# The page loads nothing from elsewhere; the policy makes that a rule the browser enforces.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class ViewerSettings:
    """What the viewer serves and where it sends requests.

    Attributes:
        server: ``host:port`` of the model server's gRPC API.
        model: the model the page opens with (the page can name another).
        allowed_hosts: the ``Host`` header values the app answers (``host:port``); any other
            is refused, so a web page cannot reach the app by rebinding its own DNS name.
        timeout: deadline of each gRPC call, in seconds.
        max_upload_bytes: the largest upload accepted.
        class_names: names of the classes by index, e.g. the export's
            ``assets/class_names.txt``; ``None`` shows indices.
    """

    server: str
    model: str | None
    allowed_hosts: frozenset[str]
    timeout: float = 30.0
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    class_names: tuple[str, ...] | None = None
    _clients: dict[tuple[str, int | None], ServingClient] = field(
        default_factory=dict, compare=False, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def client(self, model: str, version: int | None) -> ServingClient:
        """One client per (model, version), kept for the app's lifetime."""
        with self._lock:
            key = (model, version)
            if key not in self._clients:
                self._clients[key] = ServingClient(
                    self.server, model, version=version, timeout=self.timeout
                )
            return self._clients[key]

    def close(self) -> None:
        """Close every client's channel."""
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


class _PageError(Exception):
    """An error shown in the page: an HTTP status, a kind the page reacts to and a message."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def create_app(settings: ViewerSettings) -> ASGIApp:
    """Build the viewer's ASGI application.

    Args:
        settings: the server to talk to and the app's limits.

    Returns:
        The Starlette application behind the Host-header check (an ASGI application). The caller closes the gRPC
        channels with ``settings.close()`` when the app is done.
    """
    routes = [
        Route("/", _static_route("index.html")),
        *(Route(f"/static/{name}", _static_route(name)) for name in _STATIC),
        Route("/api/config", _api(settings, _config), methods=["GET"]),
        Route("/api/model", _api(settings, _model), methods=["GET"]),
        Route("/api/explain", _api(settings, _explain), methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    return _HostCheck(app, settings.allowed_hosts)


class _HostCheck:
    """Refuse requests whose Host header (or, for writes, Origin) is not this app's address."""

    def __init__(self, app: ASGIApp, allowed_hosts: frozenset[str]) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        host = headers.get("host", "")
        expected = ", ".join(sorted(self.allowed_hosts))
        if host not in self.allowed_hosts:
            message = (
                f"Host header {host!r} does not name this viewer; it answers only {expected}. "
                "Open the viewer by the address it printed."
            )
            await _refuse(scope, receive, send, 421, message)
            return
        origin = headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1] not in self.allowed_hosts:
            message = f"Origin {origin!r} is not this viewer ({expected}); cross-site requests are refused."
            await _refuse(scope, receive, send, 403, message)
            return
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    response = JSONResponse({"error": message, "kind": "forbidden"}, status_code=status)
    await response(scope, receive, send)


def _static_route(name: str) -> Callable[[Request], Awaitable[Response]]:
    content = resources.files(__package__).joinpath("static", name).read_bytes()

    async def endpoint(request: Request) -> Response:
        return Response(content, media_type=_STATIC[name], headers=_SECURITY_HEADERS)

    return endpoint


def _api(
    settings: ViewerSettings,
    handler: Callable[[ViewerSettings, Mapping[str, str], bytes], dict[str, Any]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            body = await _read_body(request, settings.max_upload_bytes)
            result = await run_in_threadpool(handler, settings, request.query_params, body)
        except _PageError as error:
            return JSONResponse(
                {"error": error.message, "kind": error.kind},
                status_code=error.status,
                headers=_SECURITY_HEADERS,
            )
        return JSONResponse(result, headers=_SECURITY_HEADERS)

    return endpoint


async def _read_body(request: Request, limit: int) -> bytes:
    name = request.query_params.get("filename", "the upload")

    def too_large(size: int, exact: bool) -> _PageError:
        return _PageError(
            413,
            "too_large",
            f"{name} is {'' if exact else 'more than '}{_megabytes(size)}; the viewer accepts "
            f"uploads up to {_megabytes(limit)} (saliency-client ui --max-upload-mb).",
        )

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared), True)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit, False)
        chunks.append(chunk)
    return b"".join(chunks)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.3g} MB"


# -- handlers (run in a worker thread: the gRPC client blocks) ------------------------------------


def _config(settings: ViewerSettings, query: Mapping[str, str], body: bytes) -> dict[str, Any]:
    return {
        "server": settings.server,
        "model": settings.model,
        "max_upload_bytes": settings.max_upload_bytes,
        "colormaps": list(render.COLORMAPS),
        "polarities": list(render.POLARITIES),
        "overlay_types": list(render.OVERLAY_TYPES),
    }


def _model(settings: ViewerSettings, query: Mapping[str, str], body: bytes) -> dict[str, Any]:
    model, version = _model_and_version(query)
    client = settings.client(model, version)
    metadata = _call(settings, model, client.metadata)
    statuses = _call(settings, model, client.status)
    methods = list(metadata.methods)
    if not methods:
        raise _PageError(
            409,
            "no_methods",
            f"Model {model!r} version {metadata.model_version} has no explanation signatures "
            f"(it has {', '.join(_public(metadata.signatures)) or 'none'}); export it with "
            "saliency-export to add explain signatures.",
        )
    spec = _images_spec(metadata)
    return {
        "model": metadata.model_name,
        "version": metadata.model_version,
        "versions": sorted(
            (status.version for status in statuses if status.state == "AVAILABLE"), reverse=True
        ),
        "methods": methods,
        "input": {
            "format": client.input_format(SERVING_DEFAULT),
            "dtype": None if spec is None else spec.dtype,
            "shape": None if spec is None or spec.shape is None else list(spec.shape),
        },
        "class_names": None if settings.class_names is None else list(settings.class_names),
    }


def _explain(settings: ViewerSettings, query: Mapping[str, str], body: bytes) -> dict[str, Any]:
    model, version = _model_and_version(query)
    filename = query.get("filename") or "the upload"
    method = query.get("method") or "vanilla"
    target = _optional_int(query, "target_class")
    options = _render_options(query)
    if not body:
        raise _PageError(400, "bad_request", f"{filename} is empty; upload a PNG or JPEG picture.")
    client = settings.client(model, version)
    metadata = _call(settings, model, client.metadata)
    if method not in metadata.methods:
        raise _PageError(
            404,
            "unknown_method",
            f"Model {model!r} has no {method!r} explanation; it offers "
            f"{', '.join(metadata.methods) or 'none'}.",
        )
    signature = signature_name(method)
    input_format = _call(settings, model, lambda: client.input_format(signature))
    spec = _images_spec(metadata, signature)
    shape = None if spec is None or spec.shape is None else tuple(spec.shape[1:])
    try:
        prepared = prepare(
            body, filename, input_format=input_format, expected_shape=shape, model=model
        )
    except ImageError as error:
        raise _PageError(422, "bad_image", str(error)) from error
    sent = [prepared.sent] if input_format == _inputs.IMAGE_BYTES else prepared.sent[np.newaxis]
    explanation = _call(settings, model, lambda: client.explain(sent, target, signature=signature))
    height, width = explanation.saliency.shape[1:]
    shown = shown_at(prepared.shown, height, width)
    picture = _overlay(shown, explanation, options)
    probabilities = explanation.probabilities[0].astype(float)
    order = np.argsort(-probabilities, kind="stable")[:TOP_K]
    names = settings.class_names
    approximation = explanation.approximation_error
    return {
        "filename": filename,
        "model": explanation.model_name,
        "version": explanation.model_version,
        "method": method,
        "signature": explanation.signature_name,
        "predicted_class": int(explanation.predicted_class[0]),
        "target_class": int(explanation.target_class[0]),
        "top": [
            {
                "class": int(index),
                "name": names[index] if names is not None and index < len(names) else str(index),
                "probability": float(probabilities[index]),
            }
            for index in order
        ],
        "approximation_error": None if approximation is None else float(approximation[0]),
        "width": int(width),
        "height": int(height),
        "image_png": _data_url(png_bytes(shown)),
        "overlay_png": _data_url(png_bytes(picture)),
    }


# -- helpers -----------------------------------------------------------------------------------


def _call(settings: ViewerSettings, model: str, function: Callable[[], Any]) -> Any:
    """Run a client call, turning its errors into messages for the page."""
    try:
        return function()
    except UnavailableError as error:
        raise _PageError(
            502,
            "unavailable",
            f"Cannot reach the model server at {settings.server} ({error.code}: {error.details}). "
            "Is it running? Start it, then press Reload.",
        ) from error
    except ServingError as error:
        kind = "not_found" if error.code == "NOT_FOUND" else "server_error"
        raise _PageError(
            502, kind, f"The model server at {settings.server} answered for model {model!r}: "
            f"{error.code}: {error.details}"
        ) from error
    except ValueError as error:  # the client's own checks, e.g. an input it cannot encode
        raise _PageError(422, "bad_request", str(error)) from error


def _model_and_version(query: Mapping[str, str]) -> tuple[str, int | None]:
    model = query.get("model", "").strip()
    if not model:
        raise _PageError(400, "bad_request", "Name a model: the model= query parameter is empty.")
    return model, _optional_int(query, "version")


def _optional_int(query: Mapping[str, str], key: str) -> int | None:
    text = query.get(key, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError as error:
        raise _PageError(400, "bad_request", f"{key} must be an integer; received {text!r}.") from error


def _render_options(query: Mapping[str, str]) -> dict[str, Any]:
    colormap = query.get("colormap") or None
    if colormap is not None and colormap not in render.COLORMAPS:
        raise _PageError(
            400, "bad_request",
            f"Unknown colormap {colormap!r}; expected one of {', '.join(render.COLORMAPS)}.",
        )
    try:
        alpha = float(query.get("alpha") or 0.5)
        low = float(query.get("clip_low") or 0.0)
        high = float(query.get("clip_high") or 100.0)
    except ValueError as error:
        raise _PageError(400, "bad_request", f"alpha, clip_low and clip_high are numbers: {error}") from error
    return {
        "colormap": colormap,
        "alpha": alpha,
        "clip_percentiles": (low, high),
        "polarity": query.get("polarity") or "positive",
        "overlay_type": query.get("overlay_type") or "original",
    }


def _overlay(image: np.ndarray, explanation: Explanation, options: dict[str, Any]) -> np.ndarray:
    """As ``saliency-client explain``: signed IG attributions when the polarity needs a sign."""
    if options["polarity"] == "positive":
        values = explanation.saliency[0]
    elif explanation.attributions is not None:
        values = render.signed_map(explanation.attributions[0])
    else:
        raise _PageError(
            422, "needs_sign",
            f"Polarity {options['polarity']!r} needs signed attributions; "
            f"{explanation.signature_name!r} returns only a [0, 1] saliency map. Choose "
            "integrated_gradients, or polarity positive.",
        )
    try:
        return render.overlay(image, values, **options)
    except ValueError as error:
        raise _PageError(400, "bad_request", str(error)) from error


def _images_spec(metadata: ModelMetadata, signature: str = SERVING_DEFAULT) -> Any:
    info = metadata.signatures.get(signature) or metadata.signatures.get(SERVING_DEFAULT)
    return None if info is None else info.inputs.get(IMAGES)


def _public(signatures: Mapping[str, Any]) -> list[str]:
    """Signature names a user chose (not TF's ``__saved_model_init_op``)."""
    return sorted(name for name in signatures if not name.startswith("__"))


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
