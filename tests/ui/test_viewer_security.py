"""The viewer's address rules and its TF-free import, without a browser or a model server."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from importlib import resources
from urllib.parse import urlsplit

import pytest

from serving_client.ui import allowed_hosts, is_loopback
from tests.ui.conftest import ROOT, start_viewer

UNUSED_TARGET = "127.0.0.1:9"  # discard port: nothing answers gRPC there


@pytest.fixture(scope="module")
def viewer():
    running = start_viewer(UNUSED_TARGET, "--model", "m")
    yield running
    running.stop()


def request(url: str, method: str = "GET", path: str = "/", headers=None, body: bytes | None = None):
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True)
        for key, value in {"Host": parts.netloc, **(headers or {})}.items():
            connection.putheader(key, value)
        connection.putheader("Content-Length", str(len(body or b"")))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_the_page_answers_its_own_address(viewer):
    status, headers, body = request(viewer.url)
    assert status == 200
    assert b"Saliency viewer" in body
    assert "default-src 'self'" in headers["content-security-policy"]
    port = urlsplit(viewer.url).port
    status, _, _ = request(viewer.url, headers={"Host": f"localhost:{port}"})
    assert status == 200


def test_another_host_header_is_refused_naming_both(viewer):
    """A page on evil.example that rebinds its name to 127.0.0.1 still sends Host: evil.example."""
    port = urlsplit(viewer.url).port
    status, _, body = request(viewer.url, path="/api/config", headers={"Host": f"evil.example:{port}"})
    assert status == 421
    message = json.loads(body)["error"]
    assert message.startswith(f"Host header 'evil.example:{port}' does not name this viewer; it answers only ")
    assert f"127.0.0.1:{port}" in message and f"localhost:{port}" in message


def test_a_cross_site_post_is_refused(viewer):
    status, _, body = request(
        viewer.url, "POST", "/api/explain?model=m", {"Origin": "http://evil.example"}, b"\x89PNG"
    )
    assert status == 403
    assert json.loads(body)["error"].startswith("Origin 'http://evil.example' is not this viewer (")


def test_an_unreachable_server_is_named(viewer):
    status, _, body = request(viewer.url, path="/api/model?model=m")
    assert status == 502
    answer = json.loads(body)
    assert answer["kind"] == "unavailable"
    assert answer["error"].startswith(f"Cannot reach the model server at {UNUSED_TARGET} (UNAVAILABLE: ")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "serving_client.cli", "ui", "--server", UNUSED_TARGET, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_binding_beyond_loopback_needs_the_explicit_flag():
    result = run_cli("--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "saliency-client: error: --host 0.0.0.0 listens beyond this machine's loopback interface, "
        "and the viewer has no authentication; pass --allow-remote to do it anyway, or use "
        "--host 127.0.0.1."
    )
    result = run_cli("--host", "0.0.0.0", "--port", "0", "--allow-remote")
    assert result.returncode == 1
    assert "pass --allowed-host NAME[:PORT]" in result.stderr


def test_allowed_hosts_follow_the_listen_address():
    assert allowed_hosts("127.0.0.1", 8080) == {"127.0.0.1:8080", "localhost:8080"}
    assert allowed_hosts("0.0.0.0", 80, ["viewer.lan"]) == {"viewer.lan:80"}  # noqa: S104
    assert allowed_hosts("::1", 8080) == {"[::1]:8080", "localhost:8080", "127.0.0.1:8080"}
    assert is_loopback("127.0.0.2") and is_loopback("localhost") and not is_loopback("10.0.0.1")


def test_the_viewer_never_imports_tensorflow():
    script = textwrap.dedent(
        """
        import sys
        import serving_client.cli, serving_client.ui
        from serving_client.ui import ViewerSettings, create_app
        create_app(ViewerSettings(server="127.0.0.1:9", model="m", allowed_hosts=frozenset()))
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")))
        """
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_page_loads_nothing_from_elsewhere():
    """Offline by construction: every src/href of the page is a path on the viewer itself."""

    class Links(HTMLParser):
        found: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.found += [value for key, value in attrs if key in ("src", "href") and value]

    page = resources.files("serving_client.ui").joinpath("static", "index.html").read_text()
    parser = Links()
    parser.feed(page)
    assert parser.found == ["/static/style.css", "/static/app.js"]
    script = resources.files("serving_client.ui").joinpath("static", "app.js").read_text()
    assert "http://" not in script and "https://" not in script and "//cdn" not in script
