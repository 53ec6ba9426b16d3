"""A small digit classifier exported with three methods, the bundled server on it, the viewer
(``saliency-client ui`` as a subprocess) and headless Chromium driven by Playwright.

Chromium is Debian's (``make test-browser`` installs it); Playwright drives that executable,
no browser is downloaded. Without it these tests skip, unless ``SALIENCY_BROWSER_TESTS=required``
(what ``make test-browser`` sets) turns the skip into a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

MODEL = "digits"
SHAPE = (28, 28, 1)
CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# In the order the client lists an export's methods: vanilla first, then by signature name.
METHODS = ("vanilla", "gradient_x_input", "integrated_gradients")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "ui-screenshots"
CHROMIUM = os.environ.get("SALIENCY_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking switches Chromium dials out at start (updates, sync,
# QUIC probes); on a closed network those connections fail and can stall the page.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
URL = re.compile(r"Saliency viewer at (http://\S+) ")


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (make install)"
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (make test-browser installs Debian's chromium)"
    return None


@pytest.fixture(scope="session")
def browser_available() -> None:
    missing = _browser_missing()
    if missing is None:
        return
    if os.environ.get("SALIENCY_BROWSER_TESTS") == "required":
        pytest.fail(f"browser tests are required here but {missing}")
    pytest.skip(missing)


@dataclass(frozen=True)
class Export:
    base: Path
    version: Path
    class_names: Path


@pytest.fixture(scope="session")
def export(tmp_path_factory: pytest.TempPathFactory) -> Export:
    """A random-weight CNN on 28x28 digits: pixels, not accuracy, are what the tests compare."""
    import keras

    from exporter import export_model, load_config

    keras.utils.set_random_seed(7)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(6, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    work = tmp_path_factory.mktemp("ui-export")
    names = ", ".join(f'"{name}"' for name in CLASS_NAMES)
    methods = ", ".join(f'"{name}"' for name in METHODS)
    config = work / "export.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [model]
            name = "{MODEL}"
            class_names = [{names}]

            [methods]
            enabled = [{methods}]

            [methods.integrated_gradients]
            steps = 16
            """
        )
    )
    base = work / MODEL
    result = export_model(model, base, config=load_config(config))
    version = Path(getattr(result, "path", result))
    return Export(base, version, version / "assets" / "class_names.txt")


@dataclass
class Viewer:
    url: str
    process: subprocess.Popen[str]
    lines: list[str]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)


def start_viewer(target: str, *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> Viewer:
    """``saliency-client ui`` in a child process (as a user runs it); the URL from its line."""
    command = [sys.executable, "-m", "serving_client.cli", "ui", "--server", target, "--port", "0", *args]
    process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **(env or {})},
    )  # fmt: skip
    lines: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            match = URL.search(line)
            if match and not url:
                url.append(match.group(1))
                found.set()
        found.set()

    threading.Thread(target=pump, daemon=True).start()
    found.wait(60)
    if not url:
        process.kill()
        raise RuntimeError("the viewer printed no URL; its output:\n" + "\n".join(lines))
    return Viewer(url[0], process, lines)


@pytest.fixture(scope="module")
def server(export: Export) -> Iterator[object]:
    from model_server._process import ServerProcess

    with ServerProcess(MODEL, export.base, rest_api_port=0) as process:
        yield process


@pytest.fixture(scope="module")
def viewer(server, export: Export) -> Iterator[Viewer]:
    running = start_viewer(
        server.grpc_target, "--model", MODEL, "--class-names", str(export.class_names),
        "--max-upload-mb", "0.05",
    )  # fmt: skip
    yield running
    running.stop()


@pytest.fixture(scope="session")
def chromium(browser_available: None) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="saliency-ui-chromium-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(chromium):
    page = chromium.new_page()
    yield page
    page.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def image_pixels(page, selector: str) -> np.ndarray:
    """The RGB pixels of an ``<img>`` as the browser decoded it, at its natural size."""
    data = page.eval_on_selector(
        selector,
        """async (img) => {
            await img.decode();
            const canvas = document.createElement("canvas");
            canvas.width = img.naturalWidth;
            canvas.height = img.naturalHeight;
            const context = canvas.getContext("2d");
            context.drawImage(img, 0, 0);
            const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
            return {width: canvas.width, height: canvas.height, rgba: Array.from(rgba)};
        }""",
    )
    rgba = np.asarray(data["rgba"], dtype=np.uint8).reshape(data["height"], data["width"], 4)
    return rgba[..., :3]
