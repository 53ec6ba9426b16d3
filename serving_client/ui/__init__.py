"""A local web viewer for explanations: ``saliency-client ui --server HOST:PORT``.

The page (static HTML, JavaScript and CSS in this package; nothing from a CDN) talks only to
this app, which talks gRPC to TF Serving or the bundled server with
:class:`serving_client.ServingClient` and draws maps with :mod:`serving_client.render`.
Needs the ``ui`` extra (Starlette and uvicorn): ``pip install 'saliency-serving[ui]'``.

Uploads stay in memory; the app listens on loopback unless told otherwise, answers only
requests whose Host header names its address, and refuses uploads above a size limit.
"""

from ._app import DEFAULT_MAX_UPLOAD_BYTES, ViewerSettings, create_app
from ._server import URL_LINE, allowed_hosts, is_loopback, serve

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "URL_LINE",
    "ViewerSettings",
    "allowed_hosts",
    "create_app",
    "is_loopback",
    "serve",
]
